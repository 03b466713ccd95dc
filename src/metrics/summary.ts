/**
 * A small in-memory rolling window (default the last 15 minutes) for the operator page: launches,
 * stops and failures per minute, launch durations and queue waits with their percentiles, and
 * reconcile errors by reconciler and code. Per process and lost on restart: Prometheus holds the
 * durable history; this answers "how is it going right now" without one. Pure apart from the
 * clock it is given.
 */

export interface WindowOptions {
  /** Length of the window (default 15 minutes). */
  windowMs?: number;
  /** Samples kept per series at most; the oldest go first (default 10,000). */
  maxSamples?: number;
  now?: () => number;
}

/** Percentiles of the durations in the window, in seconds (null when there is no sample). */
export interface DurationSummary {
  count: number;
  p50: number | null;
  p95: number | null;
  max: number | null;
}

/** Events in the window: the total and one count per minute, oldest first (the last entry is the last 60 seconds). */
export interface RateSummary {
  total: number;
  perMinute: number[];
}

/** What `WindowSummary` answers (JSON for `GET /v1/status/summary`). */
export interface WindowSummary {
  windowSeconds: number;
  /** ISO time of the answer. */
  at: string;
  launches: RateSummary;
  stops: RateSummary;
  failures: RateSummary & { byReason: Record<string, number> };
  launchDuration: DurationSummary;
  queueWait: DurationSummary;
  reconcileErrors: RateSummary & { byReconciler: Record<string, number>; byCode: Record<string, number> };
}

const MINUTE = 60_000;

interface Sample {
  at: number;
  value: number;
}

interface Tagged {
  at: number;
  tags: readonly string[];
}

/** A time-ordered series pruned by age and by count. */
class Series<T extends { at: number }> {
  items: T[] = [];

  constructor(private readonly max: number) {}

  push(item: T): void {
    this.items.push(item);
    if (this.items.length > this.max) this.items.splice(0, this.items.length - this.max);
  }

  /** Drops items older than `since` (items arrive in time order, give or take a clock step). */
  prune(since: number): void {
    let i = 0;
    while (i < this.items.length && (this.items[i] as T).at < since) i++;
    if (i > 0) this.items.splice(0, i);
  }
}

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] ?? null;
}

/** See the module comment. */
export class RollingWindow {
  readonly #windowMs: number;
  readonly #now: () => number;
  readonly #launches: Series<Tagged>;
  readonly #stops: Series<Tagged>;
  readonly #failures: Series<Tagged>;
  readonly #errors: Series<Tagged>;
  readonly #durations: Series<Sample>;
  readonly #waits: Series<Sample>;

  constructor(opts: WindowOptions = {}) {
    this.#windowMs = opts.windowMs ?? 15 * MINUTE;
    this.#now = opts.now ?? Date.now;
    const max = opts.maxSamples ?? 10_000;
    this.#launches = new Series(max);
    this.#stops = new Series(max);
    this.#failures = new Series(max);
    this.#errors = new Series(max);
    this.#durations = new Series(max);
    this.#waits = new Series(max);
  }

  /** A launch was requested. */
  launch(): void {
    this.#launches.push({ at: this.#now(), tags: [] });
  }

  /** An instance stopped. */
  stop(): void {
    this.#stops.push({ at: this.#now(), tags: [] });
  }

  /** An instance failed with the reason `code` (a stable code, never free text). */
  failure(code: string): void {
    this.#failures.push({ at: this.#now(), tags: [code] });
  }

  /** A launch reached `running` after `seconds`. */
  launchDuration(seconds: number): void {
    this.#durations.push({ at: this.#now(), value: seconds });
  }

  /** A queued launch was admitted after `seconds`. */
  queueWait(seconds: number): void {
    this.#waits.push({ at: this.#now(), value: seconds });
  }

  /** A reconcile pass of `reconciler` failed with `code`. */
  reconcileError(reconciler: string, code: string): void {
    this.#errors.push({ at: this.#now(), tags: [reconciler, code] });
  }

  /** The window now (see `WindowSummary`). */
  summary(): WindowSummary {
    const now = this.#now();
    const since = now - this.#windowMs;
    for (const s of [this.#launches, this.#stops, this.#failures, this.#errors, this.#durations, this.#waits]) s.prune(since);
    const failures = this.#rate(this.#failures.items, now);
    const errors = this.#rate(this.#errors.items, now);
    return {
      windowSeconds: Math.round(this.#windowMs / 1000),
      at: new Date(now).toISOString(),
      launches: this.#rate(this.#launches.items, now),
      stops: this.#rate(this.#stops.items, now),
      failures: { ...failures, byReason: countBy(this.#failures.items, 0) },
      launchDuration: durations(this.#durations.items),
      queueWait: durations(this.#waits.items),
      reconcileErrors: { ...errors, byReconciler: countBy(this.#errors.items, 0), byCode: countBy(this.#errors.items, 1) },
    };
  }

  /** Counts per minute back from now: the last entry covers the last 60 seconds, the one before the 60 before them. */
  #rate(items: readonly { at: number }[], now: number): RateSummary {
    const minutes = Math.max(1, Math.ceil(this.#windowMs / MINUTE));
    const perMinute = new Array<number>(minutes).fill(0);
    for (const { at } of items) {
      // A clock step may put an event slightly ahead or at the very edge: clamp into the window.
      const ago = Math.min(minutes - 1, Math.max(0, Math.floor((now - at) / MINUTE)));
      perMinute[minutes - 1 - ago] = (perMinute[minutes - 1 - ago] ?? 0) + 1;
    }
    return { total: items.length, perMinute };
  }
}

function durations(items: readonly Sample[]): DurationSummary {
  const sorted = items.map((s) => s.value).sort((a, b) => a - b);
  return { count: sorted.length, p50: percentile(sorted, 50), p95: percentile(sorted, 95), max: sorted.at(-1) ?? null };
}

function countBy(items: readonly Tagged[], tag: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const item of items) {
    const key = item.tags[tag];
    if (key !== undefined) out[key] = (out[key] ?? 0) + 1;
  }
  return out;
}
