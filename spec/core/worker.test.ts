/** Workers (src/core/worker.ts): the effective state at the lost boundary, and label parsing. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseLabels, workerState, type WorkerAdmin, type WorkerState } from '../../src/core/worker.ts';

const HB = 1_700_000_000_000;
const LOST_AFTER = 10_000;

const STATES: Array<[string, WorkerAdmin, number, WorkerState]> = [
  ['active, heartbeat just now', 'active', HB, 'ready'],
  ['active, clock a little behind the registry', 'active', HB - 50, 'ready'],
  ['active, 1 ms before the deadline', 'active', HB + LOST_AFTER - 1, 'ready'],
  ['active, exactly at the deadline', 'active', HB + LOST_AFTER, 'ready'],
  ['active, 1 ms past the deadline', 'active', HB + LOST_AFTER + 1, 'lost'],
  ['cordoned, fresh', 'cordoned', HB + 1, 'cordoned'],
  ['cordoned, at the deadline', 'cordoned', HB + LOST_AFTER, 'cordoned'],
  ['cordoned, past the deadline', 'cordoned', HB + LOST_AFTER + 1, 'lost'],
  ['draining, fresh', 'draining', HB + 1, 'draining'],
  ['draining, past the deadline', 'draining', HB + LOST_AFTER + 1, 'lost'],
  ['active, never heard of for an hour', 'active', HB + 3_600_000, 'lost'],
];

for (const [label, admin, now, want] of STATES) {
  test(`workerState: ${label} -> ${want}`, () => {
    assert.is(workerState({ heartbeatAt: HB }, admin, now, LOST_AFTER), want);
  });
}

test('workerState: the deadline is the one given', () => {
  assert.is(workerState({ heartbeatAt: HB }, 'active', HB + 2_500, 2_000), 'lost');
  assert.is(workerState({ heartbeatAt: HB }, 'active', HB + 2_500, 3_000), 'ready');
  assert.is(workerState({ heartbeatAt: HB }, 'active', HB, 0), 'ready', 'a zero deadline still accepts a heartbeat at now');
  assert.is(workerState({ heartbeatAt: HB }, 'active', HB + 1, 0), 'lost');
});

const LABELS: Array<[string, Record<string, string>]> = [
  ['', {}],
  ['zone=eu', { zone: 'eu' }],
  ['zone=eu,gpu=yes', { zone: 'eu', gpu: 'yes' }],
  [' zone = eu , gpu=yes ', { zone: 'eu', gpu: 'yes' }],
  ['zone=eu,,gpu=yes,', { zone: 'eu', gpu: 'yes' }],
  ['k=', { k: '' }],
  ['url=a=b', { url: 'a=b' }],
  ['zone=eu,zone=us', { zone: 'us' }],
  ['novalue,zone=eu', { zone: 'eu' }],
  ['=orphan,zone=eu', { zone: 'eu' }],
  [' =orphan,zone=eu', { zone: 'eu' }],
  ['tier=gold', { tier: 'gold' }],
];

for (const [text, want] of LABELS) {
  test(`parseLabels(${JSON.stringify(text)})`, () => {
    assert.equal(parseLabels(text), want);
  });
}

test('parseLabels: keys like __proto__ are plain labels, not prototypes', () => {
  const got = parseLabels('__proto__=x,constructor=y');
  assert.is(Object.getPrototypeOf(got), Object.prototype);
  assert.is(got.constructor, 'y');
});

test.run();
