/**
 * The one call the instance reconciler makes to the catalog: which version to converge on now,
 * after the challenge's update policy (`core/rollout.ts`). A move to another version is recorded
 * on the instance (`specHash`) before anything is replaced, so labels, plans and renewals agree.
 */
import type { Logger } from '../core/reconcile.ts';
import type { Instance } from '../core/instance.ts';
import type { Store } from '../core/store.ts';
import type { Catalog, CatalogEntry } from './catalog.ts';

/** `run` this version; `wait` (requeue, nothing to run yet); `stop` (fail the instance with `reason`). */
export type ReconcileVersion =
  | { kind: 'run'; entry: CatalogEntry }
  | { kind: 'wait'; reason: string }
  | { kind: 'stop'; reason: string };

/**
 * Decides the version for a reconcile of `inst`; on a move, writes the new `specHash` and
 * updates `inst` in place (containers labelled with another hash are then stale).
 */
export async function versionToRun(catalog: Catalog, store: Store, inst: Instance, now: number, log: Logger): Promise<ReconcileVersion> {
  const pick = catalog.versionFor(inst, 'reconcile');
  if (pick.action === 'wait') return { kind: 'wait', reason: pick.why };
  if (pick.action === 'stop' || !pick.entry) return { kind: 'stop', reason: pick.action === 'stop' ? pick.why : 'no version to run' };
  if (pick.update) {
    log.info({ instance: inst.id, challenge: inst.challenge, from: inst.specHash, to: pick.hash, why: pick.why }, 'instance moves to another version');
    const updated = await store.updateInstance(inst.id, { specHash: pick.hash }, now);
    Object.assign(inst, updated ?? { specHash: pick.hash });
  }
  return { kind: 'run', entry: pick.entry };
}
