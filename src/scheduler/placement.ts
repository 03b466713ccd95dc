/**
 * Placement, shaped like the Kubernetes scheduler framework: every worker goes through the
 * filters (can the instance run there?), the survivors are scored by weighted plugins (how good
 * is it there?), and the best score wins with the worker id as a deterministic tie-break. Pure:
 * the placement reconciler feeds it the fleet view and the loads, and records the choice.
 */
import type { PlacementNeeds, WorkerImageState, WorkerLoad, WorkerView } from '../core/worker.ts';

/** A worker as placement sees it: its view, what it already runs, and the image's state there. */
export interface Candidate {
  worker: WorkerView;
  load: WorkerLoad;
  image?: WorkerImageState;
}

/** A filter answers why the instance cannot run on `c` (a short phrase), or undefined when it can. */
export interface FilterPlugin {
  name: string;
  filter(needs: PlacementNeeds, c: Candidate): string | undefined;
}

/** A score plugin rates a feasible worker from 0 (worst) to 100 (best), given all feasible ones. */
export interface ScorePlugin {
  name: string;
  weight: number;
  score(needs: PlacementNeeds, c: Candidate, all: readonly Candidate[]): number;
}

export type PlacementResult =
  | { ok: true; worker: string; score: number }
  | { ok: false; reason: string; rejected: Record<string, number> };

const share = (used: number, total: number): number => (total > 0 ? used / total : 1);

export const FILTERS: readonly FilterPlugin[] = [
  { name: 'ready', filter: (_n, c) => (c.worker.state === 'ready' ? undefined : c.worker.state) },
  { name: 'runtime', filter: (n, c) => (c.worker.runtimes.includes(n.runtime) ? undefined : `without ${n.runtime}`) },
  {
    name: 'labels',
    filter: (n, c) => {
      const missing = Object.entries(n.constraints).find(([k, v]) => c.worker.labels[k] !== v);
      return missing ? `without label ${missing[0]}=${missing[1]}` : undefined;
    },
  },
  { name: 'leases', filter: (n, c) => (n.leases > 0 && !c.worker.leasePorts ? 'without a lease port range' : undefined) },
  {
    name: 'image',
    filter: (_n, c) => {
      if (c.image?.state === 'present') return undefined;
      return c.image?.state === 'failed' ? 'whose image pull failed' : 'without the image yet';
    },
  },
  {
    name: 'fits',
    filter: (n, c) => {
      const cap = c.worker.capacity;
      // Phrases name the cause only (no per-worker figures), so the no-fit reason can count workers per cause.
      if (c.load.slots + 1 > cap.slots) return 'full';
      if (c.load.cpu + n.cpu > cap.cpu + 1e-9) return 'out of CPU';
      if (c.load.memoryBytes + n.memoryBytes > cap.memoryBytes) return 'out of memory';
      return undefined;
    },
  },
];

export const SCORES: readonly ScorePlugin[] = [
  {
    // Least reserved share of the scarcest resource after placing: spreads load across workers
    // (weighted over the per-challenge spread, so constrained challenges do not skew the load).
    name: 'least-reserved', weight: 2,
    score: (n, c) => {
      const cap = c.worker.capacity;
      const worst = Math.max(share(c.load.slots + 1, cap.slots), share(c.load.cpu + n.cpu, cap.cpu), share(c.load.memoryBytes + n.memoryBytes, cap.memoryBytes));
      return 100 * (1 - Math.min(1, worst));
    },
  },
  {
    // Fewest instances of the same challenge: one broken host takes fewer of one challenge down.
    name: 'spread', weight: 1,
    score: (n, c, all) => {
      const max = challengeMax(n.challenge, all);
      return max === 0 ? 100 : (100 * (max - (c.load.byChallenge[n.challenge] ?? 0))) / max;
    },
  },
];

/*
 * The most instances of `challenge` on any of `all`, computed once per `all` (place() hands every
 * candidate the same fresh `feasible` array): scanning `all` for every candidate made a placement
 * quadratic in the number of workers (bench/placement.bench.ts: 8x the rest of the work at 50).
 */
const maxima = new WeakMap<readonly Candidate[], Map<string, number>>();
function challengeMax(challenge: string, all: readonly Candidate[]): number {
  let byChallenge = maxima.get(all);
  if (!byChallenge) maxima.set(all, (byChallenge = new Map()));
  let max = byChallenge.get(challenge);
  if (max === undefined) {
    max = 0;
    for (const x of all) max = Math.max(max, x.load.byChallenge[challenge] ?? 0);
    byChallenge.set(challenge, max);
  }
  return max;
}

/**
 * Picks the worker for `needs` among `candidates`: the feasible one with the highest weighted
 * score, ties broken by the smaller id. When none is feasible the reason names, per cause, how
 * many workers it excluded, most frequent first, then alphabetically, so it does not depend on
 * the candidates' order (`no worker fits: 2 full, 1 without gvisor`).
 */
export function place(needs: PlacementNeeds, candidates: readonly Candidate[], filters = FILTERS, scores = SCORES): PlacementResult {
  const feasible: Candidate[] = [];
  const rejected: Record<string, number> = {};
  const phrases = new Map<string, number>();
  for (const c of candidates) {
    let why: string | undefined;
    for (const f of filters) {
      why = f.filter(needs, c);
      if (why !== undefined) {
        rejected[f.name] = (rejected[f.name] ?? 0) + 1;
        phrases.set(why, (phrases.get(why) ?? 0) + 1);
        break;
      }
    }
    if (why === undefined) feasible.push(c);
  }
  if (feasible.length === 0) {
    const detail = [...phrases]
      .sort(([pa, na], [pb, nb]) => nb - na || (pa < pb ? -1 : pa > pb ? 1 : 0))
      .map(([p, n]) => `${n} ${p}`)
      .join(', ');
    return { ok: false, reason: candidates.length === 0 ? 'no worker is registered' : `no worker fits: ${detail}`, rejected };
  }
  let best: { c: Candidate; score: number } | undefined;
  for (const c of feasible) {
    const score = scores.reduce((sum, s) => sum + s.weight * s.score(needs, c, feasible), 0);
    if (!best || score > best.score + 1e-9 || (Math.abs(score - best.score) <= 1e-9 && c.worker.id < best.c.worker.id)) best = { c, score };
  }
  const chosen = best as { c: Candidate; score: number };
  return { ok: true, worker: chosen.c.worker.id, score: chosen.score };
}

/** `load` with one more instance of `needs` (what the next placement in the same pass sees). */
export function withPlaced(load: WorkerLoad, needs: Pick<PlacementNeeds, 'challenge' | 'cpu' | 'memoryBytes'>): WorkerLoad {
  return {
    slots: load.slots + 1,
    cpu: load.cpu + needs.cpu,
    memoryBytes: load.memoryBytes + needs.memoryBytes,
    byChallenge: { ...load.byChallenge, [needs.challenge]: (load.byChallenge[needs.challenge] ?? 0) + 1 },
  };
}
