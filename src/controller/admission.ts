import type { Catalog } from '../catalog/catalog.ts';
import type { Store } from '../core/store.ts';
import type { Logger, ReconcileContext, ReconcileResult } from '../core/reconcile.ts';

export interface AdmissionDeps {
  store: Store;
  catalog: Catalog;
  log: Logger;
  /** Most admitted live instances now (it follows the fleet); 0 means no limit. */
  capacity(): number;
  queueMaxWaitMs: number;
  /** Called with each admitted id so its reconcile starts at once. */
  admitted(id: string): void;
}

/**
 * The admission pass (key `admission`): admits queued instances strictly in arrival order while
 * capacity allows, starting their lifetime at admission, and fails those that waited longer
 * than the limit. Requeues itself for the head's wait deadline.
 */
export function admissionReconciler(deps: AdmissionDeps) {
  return async (ctx: ReconcileContext): Promise<ReconcileResult> => {
    const now = ctx.now().getTime();
    for (const id of await deps.store.queuedIds()) {
      const inst = await deps.store.getInstance(id);
      if (!inst || inst.status !== 'queued') continue;
      const deadline = inst.createdAt + deps.queueMaxWaitMs;
      const spec = deps.catalog.get(inst.challenge)?.spec;
      if (now >= deadline || !spec) {
        const reason = spec ? `waited in the queue longer than ${Math.round(deps.queueMaxWaitMs / 1000)}s` : `challenge ${inst.challenge} is no longer in the catalog`;
        await deps.store.compareAndUpdate(id, { status: 'queued' }, { status: 'failed', reason }, now);
        deps.log.info({ instance: id, reason }, 'queued instance failed');
        continue;
      }
      const times = { expiresAt: now + spec.ttl.defaultSeconds * 1000, maxExpiresAt: now + spec.ttl.maxSeconds * 1000 };
      const result = await deps.store.admit(id, now, deps.capacity(), times);
      if (result === 'full') return { requeueAfterMs: Math.max(0, deadline - now) };
      if (result === 'admitted') {
        deps.log.info({ instance: id, waitedMs: now - inst.createdAt }, 'instance admitted');
        deps.admitted(id);
      }
    }
    return {};
  };
}
