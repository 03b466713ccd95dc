/**
 * The status page's rolling window (src/metrics/summary.ts), on a clock the test moves: per-minute
 * buckets, the 15-minute horizon, percentiles, error breakdowns, the sample bound.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { percentile, RollingWindow } from '../../src/metrics/summary.ts';

const MIN = 60_000;
const T0 = Date.UTC(2030, 0, 1, 12, 0, 0);

function clock(start = T0): { now: () => number; at(ms: number): void; advance(ms: number): void } {
  let t = start;
  return { now: () => t, at: (ms) => { t = start + ms; }, advance: (ms) => { t += ms; } };
}

test('percentile: nearest rank over sorted values; null without samples', () => {
  const cases: [number[], number, number | null][] = [
    [[], 50, null],
    [[7], 50, 7],
    [[7], 95, 7],
    [[1, 2, 3, 4], 50, 2],
    [[1, 2, 3, 4], 95, 4],
    [Array.from({ length: 100 }, (_, i) => i + 1), 95, 95],
    [Array.from({ length: 100 }, (_, i) => i + 1), 50, 50],
    [[1, 2], 0, 1],
  ];
  for (const [values, p, want] of cases) assert.is(percentile(values, p), want, `p${p} of ${values.length} values`);
});

test('an empty window: zeros, 15 minute buckets, null percentiles', () => {
  const c = clock();
  const s = new RollingWindow({ now: c.now }).summary();
  assert.is(s.windowSeconds, 900);
  assert.is(s.at, new Date(T0).toISOString());
  for (const r of [s.launches, s.stops, s.failures, s.reconcileErrors]) {
    assert.is(r.total, 0);
    assert.equal(r.perMinute, new Array(15).fill(0));
  }
  assert.equal(s.launchDuration, { count: 0, p50: null, p95: null, max: null });
  assert.equal(s.queueWait, { count: 0, p50: null, p95: null, max: null });
  assert.equal(s.failures.byReason, {});
});

test('launches and stops land in their minute back from now; the last bucket is the last 60 seconds', () => {
  const c = clock();
  const w = new RollingWindow({ now: c.now });
  w.launch(); w.launch(); // minute 0
  c.at(MIN + 5_000); w.launch(); w.stop(); // minute 1
  c.at(4 * MIN + 30_000); w.launch(); w.stop(); w.stop(); // now
  const s = w.summary();
  assert.is(s.launches.total, 4);
  assert.is(s.stops.total, 3);
  // Now is 4:30 after T0: T0 is 4.5 minutes ago (bucket 4 back), 1:05 is 3:25 ago (bucket 3 back).
  assert.equal(s.launches.perMinute.slice(-5), [2, 1, 0, 0, 1]);
  assert.equal(s.stops.perMinute.slice(-5), [0, 1, 0, 0, 2]);
  assert.is(s.launches.perMinute.reduce((a, b) => a + b, 0), 4);
});

test('events older than 15 minutes leave the window (totals, buckets, durations)', () => {
  const c = clock();
  const w = new RollingWindow({ now: c.now });
  w.launch(); w.launchDuration(100); w.queueWait(50); w.failure('E_UNHEALTHY'); w.reconcileError('worker', 'E_RUNTIME');
  c.at(10 * MIN);
  w.launch(); w.launchDuration(2);
  let s = w.summary();
  assert.is(s.launches.total, 2);
  assert.is(s.launchDuration.count, 2);
  assert.is(s.launchDuration.max, 100);
  c.at(15 * MIN + 1);
  s = w.summary();
  assert.is(s.launches.total, 1);
  assert.equal(s.launchDuration, { count: 1, p50: 2, p95: 2, max: 2 });
  assert.equal(s.queueWait, { count: 0, p50: null, p95: null, max: null });
  assert.is(s.failures.total, 0);
  assert.equal(s.failures.byReason, {});
  assert.is(s.reconcileErrors.total, 0);
  c.at(26 * MIN);
  s = w.summary();
  assert.is(s.launches.total, 0);
  assert.equal(s.launches.perMinute, new Array(15).fill(0));
});

test('launch durations: p50, p95 and max of the window', () => {
  const c = clock();
  const w = new RollingWindow({ now: c.now });
  for (let i = 1; i <= 20; i++) w.launchDuration(i); // 1..20 s
  for (const secs of [30, 10, 20]) w.queueWait(secs);
  const s = w.summary();
  assert.equal(s.launchDuration, { count: 20, p50: 10, p95: 19, max: 20 });
  assert.equal(s.queueWait, { count: 3, p50: 20, p95: 30, max: 30 });
});

test('failures by reason code, reconcile errors by reconciler and by code', () => {
  const c = clock();
  const w = new RollingWindow({ now: c.now });
  w.failure('E_UNHEALTHY'); w.failure('E_UNHEALTHY'); w.failure('E_WORKER_LOST');
  w.reconcileError('placement', 'E_STORE');
  w.reconcileError('worker', 'E_RUNTIME');
  w.reconcileError('worker', 'E_RUNTIME');
  w.reconcileError('gateway', 'E_STORE');
  const s = w.summary();
  assert.is(s.failures.total, 3);
  assert.equal(s.failures.byReason, { E_UNHEALTHY: 2, E_WORKER_LOST: 1 });
  assert.is(s.reconcileErrors.total, 4);
  assert.equal(s.reconcileErrors.byReconciler, { placement: 1, worker: 2, gateway: 1 });
  assert.equal(s.reconcileErrors.byCode, { E_STORE: 2, E_RUNTIME: 2 });
  assert.is(s.reconcileErrors.perMinute.at(-1), 4);
});

test('a clock step backwards counts the event in the current minute, never outside the buckets', () => {
  const c = clock(T0 + 5 * MIN);
  const w = new RollingWindow({ now: c.now });
  w.launch();
  c.advance(-30_000);
  const s = w.summary();
  assert.is(s.launches.total, 1);
  assert.is(s.launches.perMinute.at(-1), 1);
  assert.is(s.launches.perMinute.length, 15);
});

test('samples are bounded: the oldest go first', () => {
  const c = clock();
  const w = new RollingWindow({ now: c.now, maxSamples: 100 });
  for (let i = 0; i < 1000; i++) {
    w.launch();
    w.launchDuration(i);
  }
  const s = w.summary();
  assert.is(s.launches.total, 100);
  assert.is(s.launchDuration.count, 100);
  assert.is(s.launchDuration.max, 999);
  assert.is(s.launchDuration.p50, 949);
});

test('another window length: buckets follow it', () => {
  const c = clock();
  const w = new RollingWindow({ now: c.now, windowMs: 5 * MIN });
  w.launch();
  c.at(3 * MIN);
  w.launch();
  const s = w.summary();
  assert.is(s.windowSeconds, 300);
  assert.equal(s.launches.perMinute, [0, 1, 0, 0, 1]);
});

test.run();
