import type { Logger, ReconcileContext, ReconcileResult } from '../core/reconcile.ts';
import { WorkQueue } from './work-queue.ts';

/** Something that calls `enqueue(key)` when a key may need a pass; returns unsubscribe. */
export type KeySource = (enqueue: (key: string) => void) => () => void;

export interface ControllerDeps {
  log: Logger;
  /** One pass for one key (an instance id, or a named key such as `gateway`). */
  reconcile(ctx: ReconcileContext, key: string): Promise<ReconcileResult>;
  /** Every key that exists in desired or observed state; never resolves on a failed read. */
  keys(): Promise<Iterable<string>>;
  /** Period of the full resync (jittered ±10%). */
  resyncMs: number;
  /** Hints: store changes, engine events, fleet changes, timers. */
  sources?: KeySource[];
  concurrency?: number;
}

/**
 * Drives reconciliation (after controller-runtime): sources only enqueue keys, and a periodic
 * jittered resync enqueues every key seen in desired or observed state, because events are only
 * hints (Docker keeps 256 events, Redis pub/sub drops messages on reconnect). The queue never
 * runs one key twice at once and retries failures with backoff.
 */
export class Controller {
  readonly queue: WorkQueue;
  private readonly abort = new AbortController();
  private resyncTimer: NodeJS.Timeout | undefined;
  private readonly unsubscribe: (() => void)[] = [];

  constructor(private readonly deps: ControllerDeps) {
    this.queue = new WorkQueue((ctx, key) => deps.reconcile(ctx, key), {
      concurrency: deps.concurrency ?? 8,
      baseBackoffMs: 250,
      maxBackoffMs: 30_000,
      log: deps.log,
    });
  }

  /** Subscribes to the sources, runs a first resync, then keeps resyncing. */
  async start(): Promise<void> {
    for (const source of this.deps.sources ?? []) this.unsubscribe.push(source((key) => this.queue.add(key)));
    await this.resync();
    this.scheduleResync();
  }

  /** Enqueues every key. Rejects (and enqueues nothing) when a read fails. */
  async resync(): Promise<void> {
    for (const key of await this.deps.keys()) this.queue.add(key);
  }

  async stop(): Promise<void> {
    this.abort.abort();
    if (this.resyncTimer) clearTimeout(this.resyncTimer);
    for (const u of this.unsubscribe.splice(0)) u();
    await this.queue.stop();
  }

  /** Signals aborted when the controller stops (for sources that need one). */
  get signal(): AbortSignal {
    return this.abort.signal;
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
}

/** A source that enqueues `key` every `ms` (for level-based checks no event announces, such as a heartbeat going stale). */
export function every(ms: number, key: string): KeySource {
  return (enqueue) => {
    const timer = setInterval(() => enqueue(key), ms);
    timer.unref();
    return () => clearInterval(timer);
  };
}
