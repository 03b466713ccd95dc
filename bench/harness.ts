/**
 * Benchmark harness: every `bench/*.bench.ts` exports `run(): Promise<BenchResult[]>`.
 * Targets are ratios against a baseline measured in the same run, never absolute times.
 */
import autocannon from 'autocannon';

export interface BenchResult {
  name: string;
  /** Human-readable measurement, e.g. "p99 1.2 ms, 9,800 req/s". */
  measured: string;
  /** The baseline it is compared with, measured in the same run. */
  baseline: string;
  target: string;
  ok: boolean;
}

export interface LoadStats {
  requestsPerSec: number;
  p99Ms: number;
  errors: number;
  non2xx: number;
}

/** Runs autocannon against 127.0.0.1 for a bounded time (default 5 s) and summarises. */
export async function load(opts: { url: string; method?: string; headers?: Record<string, string>; body?: string; seconds?: number; connections?: number }): Promise<LoadStats> {
  const result = await autocannon({
    url: opts.url,
    method: (opts.method ?? 'GET') as 'GET',
    headers: opts.headers ?? {},
    ...(opts.body ? { body: opts.body } : {}),
    duration: opts.seconds ?? 5,
    connections: opts.connections ?? 10,
  });
  return { requestsPerSec: result.requests.average, p99Ms: result.latency.p99, errors: result.errors, non2xx: result.non2xx };
}

export function describe(s: LoadStats): string {
  return `p99 ${s.p99Ms.toFixed(2)} ms, ${Math.round(s.requestsPerSec).toLocaleString('en')} req/s${s.errors || s.non2xx ? `, ${s.errors} errors, ${s.non2xx} non-2xx` : ''}`;
}
