/**
 * Image readiness per version, from what workers report: `ready` when a worker that may run it
 * (not lost, offering its runtime) has it, `image-missing` when the manager could not publish it
 * or every such worker failed to get it, `building` otherwise. One unreachable host never blocks
 * a challenge: placement uses the workers that have its image.
 */
import type { Catalog, ChallengeState, WorkerImage } from '../catalog/catalog.ts';
import type { FleetView } from './fleet-view.ts';

/** Updates every current version's state from the fleet; returns the challenges whose state changed. */
export function deriveImageStates(catalog: Catalog, fleet: Pick<FleetView, 'workers' | 'images'>): string[] {
  const workers = fleet.workers().filter((w) => w.state !== 'lost');
  const changed: string[] = [];
  for (const entry of catalog.list()) {
    const eligible = workers.filter((w) => w.runtimes.includes(entry.spec.runtime));
    const byWorker: Record<string, WorkerImage> = {};
    for (const w of eligible) {
      const s = fleet.images(w.id)[entry.image];
      byWorker[w.id] = s ? { state: s.state, ...(s.error ? { error: s.error } : {}) } : { state: 'preparing' };
    }
    const states = Object.values(byWorker);
    let state: ChallengeState = 'building';
    let error: string | undefined;
    if (entry.publishError !== undefined) {
      state = 'image-missing';
      error = `the manager could not build or push it: ${entry.publishError}`;
    } else if (states.some((s) => s.state === 'present')) {
      state = 'ready';
    } else if (states.length > 0 && states.every((s) => s.state === 'failed')) {
      state = 'image-missing';
      const [id, first] = Object.entries(byWorker)[0] ?? [];
      error = `worker ${id}: ${first?.error ?? 'failed'}`;
    }
    const before = entry.state;
    const sameWorkers = JSON.stringify(entry.workers) === JSON.stringify(byWorker);
    if (before === state && sameWorkers && entry.error === error) continue;
    catalog.markImage(entry.hash, state, byWorker, error);
    if (before !== state) changed.push(entry.spec.id);
  }
  return changed;
}
