import { INSTANCE_ID_PATTERN } from '../core/naming.ts';
import type { ContainerRuntime } from '../core/runtime.ts';
import type { Store } from '../core/store.ts';
import type { Logger, ReconcileContext, ReconcileResult } from '../core/reconcile.ts';
import { WorkQueue } from './work-queue.ts';

export const GATEWAY_KEY = 'gateway';
export const ADMISSION_KEY = 'admission';

export interface ControllerDeps {
  store: Store;
  runtime: ContainerRuntime;
  log: Logger;
  reconcileInstance(ctx: ReconcileContext, id: string): Promise<ReconcileResult>;
  reconcileGateway(ctx: ReconcileContext): Promise<ReconcileResult>;
  /** The admission pass; absent when there is no capacity limit. */
  reconcileAdmission?(ctx: ReconcileContext): Promise<ReconcileResult>;
  resyncMs: number;
  /** Largest share of managed containers one resync may find orphaned and remove. */
  orphanBreakerRatio: number;
  concurrency?: number;
}

/** Orphan counts at or below this never trip the breaker (a test rig or a small host). */
const BREAKER_MIN = 5;

/**
 * Drives reconciliation. Store changes, engine events and timers only enqueue keys (an instance
 * id or `gateway`); a periodic jittered resync enqueues every key seen in desired or observed
 * state, because events are only hints. Orphans (managed objects whose instance has no record)
 * are removed unless too many at once, which trips the circuit breaker instead.
 */
export class Controller {
  readonly queue: WorkQueue;
  private readonly abort = new AbortController();
  private resyncTimer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  /** Last breaker trip, shown to operators; undefined when the last resync was clean. */
  breaker: { orphans: number; managed: number; at: number } | undefined;
  /** Orphans the last resync let through the breaker: the only unknown ids that may be removed. */
  private cleared = new Set<string>();

  constructor(private readonly deps: ControllerDeps) {
    this.queue = new WorkQueue((ctx, key) => this.dispatch(ctx, key), {
      concurrency: deps.concurrency ?? 8,
      baseBackoffMs: 250,
      maxBackoffMs: 30_000,
      log: deps.log,
    });
  }

  /** Subscribes to changes and events, runs a first resync (the start-up orphan sweep), then keeps resyncing. */
  async start(): Promise<void> {
    this.unsubscribe = this.deps.store.onChange((id) => {
      this.queue.add(id);
      // Any change may free a place or add a waiter.
      if (this.deps.reconcileAdmission) this.queue.add(ADMISSION_KEY);
    });
    this.deps.runtime.watchEvents((id) => this.queue.add(id), this.abort.signal);
    await this.resync();
    this.scheduleResync();
  }

  /** Whether the last resync cleared `id` (no record) for removal; see `ControllerDeps.orphanBreakerRatio`. */
  mayRemoveOrphan(id: string): boolean {
    return this.cleared.has(id);
  }

  /** Enqueues the gateway render. */
  routesChanged(): void {
    this.queue.add(GATEWAY_KEY);
  }

  /** Enqueues every key in desired and observed state. Never acts on a failed read. */
  async resync(): Promise<void> {
    const [ids, containers, networks] = await Promise.all([
      this.deps.store.listIds(),
      this.deps.runtime.listContainers(),
      this.deps.runtime.listNetworks(),
    ]);
    const desired = new Set(ids);
    const observed = new Set([...containers, ...networks].map((o) => o.instance));
    const orphans = [...observed].filter((id) => !desired.has(id));
    const limit = Math.max(BREAKER_MIN, Math.floor(this.deps.orphanBreakerRatio * containers.length));
    if (orphans.length > limit) {
      this.breaker = { orphans: orphans.length, managed: containers.length, at: Date.now() };
      this.cleared = new Set();
      this.deps.log.error({ orphans: orphans.length, managed: containers.length }, 'orphan circuit breaker tripped; not removing');
    } else {
      this.breaker = undefined;
      this.cleared = new Set(orphans);
      for (const id of orphans) this.queue.add(id);
    }
    for (const id of desired) this.queue.add(id);
    this.queue.add(GATEWAY_KEY);
    if (this.deps.reconcileAdmission) this.queue.add(ADMISSION_KEY);
  }

  async stop(): Promise<void> {
    this.abort.abort();
    if (this.resyncTimer) clearTimeout(this.resyncTimer);
    this.unsubscribe?.();
    await this.queue.stop();
  }

  private scheduleResync(): void {
    const ms = this.deps.resyncMs * (0.9 + Math.random() * 0.2);
    this.resyncTimer = setTimeout(() => {
      this.resync()
        .catch((err: unknown) => this.deps.log.warn({ err: (err as Error).message }, 'resync failed'))
        .finally(() => { if (!this.abort.signal.aborted) this.scheduleResync(); });
    }, ms);
    this.resyncTimer.unref();
  }

  private dispatch(ctx: ReconcileContext, key: string): Promise<ReconcileResult> {
    if (key === GATEWAY_KEY) return this.deps.reconcileGateway(ctx);
    if (key === ADMISSION_KEY && this.deps.reconcileAdmission) return this.deps.reconcileAdmission(ctx);
    if (INSTANCE_ID_PATTERN.test(key)) return this.deps.reconcileInstance(ctx, key);
    // A managed object with a malformed instance label: nothing can desire it; the reconciler removes it.
    this.deps.log.warn({ key }, 'unexpected key');
    return this.deps.reconcileInstance(ctx, key);
  }
}
