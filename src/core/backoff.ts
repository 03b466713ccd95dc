/**
 * The one retry delay every loop uses (the work queue, the catalog sync, webhook deliveries):
 * exponential from `baseMs`, doubled per failed attempt, capped at `maxMs`, then spread by
 * ±`jitter` so that many retries started by one outage do not fire in the same instant.
 */
export function backoffMs(attempt: number, baseMs: number, maxMs: number, jitter = 0.2, random: () => number = Math.random): number {
  const n = Math.max(1, Math.floor(attempt));
  const delay = Math.min(maxMs, baseMs * 2 ** Math.min(n - 1, 52));
  return Math.round(delay * (1 - jitter + random() * 2 * jitter));
}
