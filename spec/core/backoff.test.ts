import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { backoffMs } from '../../src/core/backoff.ts';

const mid = () => 0.5;

test('doubles from the base per attempt and stops at the cap', () => {
  assert.equal([1, 2, 3, 4, 5, 6, 7].map((n) => backoffMs(n, 1000, 30_000, 0.2, mid)), [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]);
});

test('jitter spreads by the given share on both sides, never beyond', () => {
  assert.is(backoffMs(3, 1000, 60_000, 0.2, () => 0), 3200);
  assert.is(backoffMs(3, 1000, 60_000, 0.2, () => 1), 4800);
  assert.is(backoffMs(3, 1000, 60_000, 0, () => 1), 4000, 'no jitter');
  for (let i = 0; i < 200; i++) {
    const d = backoffMs(10, 500, 30_000);
    assert.ok(d >= 24_000 && d <= 36_000, String(d));
  }
});

test('odd attempts: zero or below counts as the first, huge ones stay finite at the cap', () => {
  assert.is(backoffMs(0, 1000, 30_000, 0, mid), 1000);
  assert.is(backoffMs(-3, 1000, 30_000, 0, mid), 1000);
  assert.is(backoffMs(10_000, 1000, 30_000, 0, mid), 30_000);
});

test.run();
