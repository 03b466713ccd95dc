import { isPoseidonError } from '../core/errors.ts';
import { backoffMs } from '../core/backoff.ts';
import type { Logger, ReconcileContext, Reconciler } from '../core/reconcile.ts';

export interface WorkQueueOptions {
  concurrency: number;
  baseBackoffMs: number;
  maxBackoffMs: number;
  log: Logger;
  now?: () => Date;
  /** See `ReconcileObserver` (metrics); a queue built by a `Controller` gets one with `observeWith`. */
  observe?: ReconcileObserver;
}

/** Told after each pass: its key, how long it took, and the error code when it failed (never throws into the queue). */
export type ReconcileObserver = (key: string, durationMs: number, errorCode?: string) => void;

/**
 * A controller work queue (after client-go's): keys are deduplicated while waiting, one key is
 * never reconciled twice at once (a key added while in flight runs again afterwards), failures
 * retry with jittered exponential backoff, and `requeueAfterMs` schedules the next pass.
 * Terminal errors are not retried until the key is added again.
 */
export class WorkQueue {
  private readonly pending = new Set<string>();
  private readonly active = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly failures = new Map<string, number>();
  private readonly abort = new AbortController();
  private idleWaiters: (() => void)[] = [];
  private observer: ReconcileObserver | undefined;

  constructor(private readonly reconcile: Reconciler, private readonly opts: WorkQueueOptions) {}

  /** Enqueues `key` now. */
  add(key: string): void {
    if (this.abort.signal.aborted) return;
    if (this.active.has(key)) {
      this.dirty.add(key);
      return;
    }
    this.pending.add(key);
    this.pump();
  }

  /** Enqueues `key` after `ms`; an earlier scheduled time for the same key wins. */
  addAfter(key: string, ms: number): void {
    if (this.abort.signal.aborted) return;
    const at = Date.now() + Math.max(0, ms);
    const existing = this.timers.get(key);
    if (existing && existing.at <= at) return;
    if (existing) clearTimeout(existing.timer);
    // Timers cap at ~24.8 days; longer waits are re-evaluated by the periodic resync anyway.
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, Math.min(ms, 2 ** 31 - 1));
    timer.unref();
    this.timers.set(key, { at, timer });
  }

  /** Replaces the `observe` option. */
  observeWith(observe: ReconcileObserver): void {
    this.observer = observe;
  }

  /** Number of keys waiting or in flight. */
  get size(): number {
    return this.pending.size + this.active.size;
  }

  /** Resolves when nothing is waiting or in flight (scheduled timers do not count). */
  idle(): Promise<void> {
    if (this.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops taking work, cancels timers, aborts in-flight reconciles and waits for them. */
  async stop(): Promise<void> {
    this.abort.abort();
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    this.pending.clear();
    this.dirty.clear();
    await this.idle();
  }

  private pump(): void {
    while (this.active.size < this.opts.concurrency && this.pending.size > 0) {
      const key = this.pending.values().next().value as string;
      this.pending.delete(key);
      this.active.add(key);
      void this.run(key);
    }
    if (this.size === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  private async run(key: string): Promise<void> {
    const ctx: ReconcileContext = { signal: this.abort.signal, now: this.opts.now ?? (() => new Date()) };
    const started = performance.now();
    try {
      const result = await this.reconcile(ctx, key);
      this.report(key, started);
      this.failures.delete(key);
      if (result.requeueAfterMs !== undefined) this.addAfter(key, result.requeueAfterMs);
    } catch (err) {
      this.report(key, started, isPoseidonError(err) ? err.code : 'E_INTERNAL');
      this.onError(key, err);
    } finally {
      this.active.delete(key);
      if (this.dirty.delete(key)) this.pending.add(key);
      this.pump();
    }
  }

  private report(key: string, started: number, code?: string): void {
    try {
      (this.observer ?? this.opts.observe)?.(key, performance.now() - started, code);
    } catch {
      // Metrics never break reconciling.
    }
  }

  private onError(key: string, err: unknown): void {
    if (isPoseidonError(err) && err.kind === 'terminal') {
      this.opts.log.warn({ key, code: err.code, err: err.message }, 'reconcile stalled');
      return;
    }
    const n = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, n);
    const jittered = backoffMs(n, this.opts.baseBackoffMs, this.opts.maxBackoffMs);
    const code = isPoseidonError(err) ? err.code : 'E_INTERNAL';
    this.opts.log.warn({ key, code, attempt: n, retryInMs: jittered, err: (err as Error).message }, 'reconcile failed');
    this.addAfter(key, jittered);
  }
}
