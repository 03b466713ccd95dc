import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { decideVersion, wantsCurrent, type RolloutInput, type RolloutReason, type UpdatePolicy, type VersionRef } from '../../src/core/rollout.ts';

const OLD: VersionRef = { hash: 'old', state: 'ready' };
const NEW: VersionRef = { hash: 'new', state: 'ready' };
const BUILDING: VersionRef = { hash: 'new', state: 'building' };
const BROKEN: VersionRef = { hash: 'new', state: 'image-missing', error: 'pull access denied' };

type Case = [UpdatePolicy, RolloutReason, VersionRef | undefined, VersionRef | undefined, string];
const decide = (policy: UpdatePolicy, reason: RolloutReason, running: VersionRef | undefined, current: VersionRef | undefined) => {
  const input: RolloutInput = { policy, reason, launched: 'old', ...(running ? { running } : {}), ...(current ? { current } : {}) };
  const d = decideVersion(input);
  return d.action === 'run' ? `run ${d.hash}` : d.action;
};

test('policies x reasons, with the new version ready', () => {
  const cases: Case[] = [
    ['keep', 'reconcile', OLD, NEW, 'run old'],
    ['keep', 'renew', OLD, NEW, 'run old'],
    ['keep', 'restart', OLD, NEW, 'run new'],
    ['on-renew', 'reconcile', OLD, NEW, 'run old'],
    ['on-renew', 'renew', OLD, NEW, 'run new'],
    ['on-renew', 'restart', OLD, NEW, 'run new'],
    ['recreate', 'reconcile', OLD, NEW, 'run new'],
    ['recreate', 'renew', OLD, NEW, 'run new'],
    ['recreate', 'restart', OLD, NEW, 'run new'],
  ];
  for (const [policy, reason, running, current, want] of cases) assert.is(decide(policy, reason, running, current), want, `${policy}/${reason}`);
});

test('a move waits for the new image while the own version runs; a broken new image never replaces it', () => {
  assert.is(decide('recreate', 'reconcile', OLD, BUILDING), 'run old');
  assert.is(decide('recreate', 'reconcile', OLD, BROKEN), 'run old');
  assert.is(decide('keep', 'restart', OLD, BUILDING), 'run old');
  // Nothing else to run: wait for a build, stop on a missing image (with its error).
  assert.is(decide('recreate', 'reconcile', undefined, BUILDING), 'wait');
  const d = decideVersion({ policy: 'keep', reason: 'reconcile', launched: 'new', current: BROKEN });
  assert.is(d.action, 'stop');
  assert.match(d.action === 'stop' ? d.why : '', /image .* is not available: pull access denied/);
});

test('a removed challenge stops instances whose policy would move them; the others finish on their version', () => {
  assert.is(decide('recreate', 'reconcile', OLD, undefined), 'stop');
  assert.is(decide('on-renew', 'reconcile', OLD, undefined), 'run old');
  assert.is(decide('keep', 'reconcile', OLD, undefined), 'run old');
  assert.is(decide('on-renew', 'renew', OLD, undefined), 'stop');
  assert.is(decide('keep', 'restart', OLD, undefined), 'stop');
  assert.is(decide('keep', 'reconcile', undefined, undefined), 'stop');
});

test('an instance whose version is gone falls back to the current one', () => {
  const d = decideVersion({ policy: 'keep', reason: 'reconcile', launched: 'gone', current: NEW });
  assert.equal(d.action === 'run' && [d.hash, d.update], ['new', true]);
  assert.match(d.action === 'run' ? d.why : '', /no longer available/);
  const same = decideVersion({ policy: 'recreate', reason: 'reconcile', launched: 'new', running: NEW, current: NEW });
  assert.equal(same.action === 'run' && same.update, false);
});

test('wantsCurrent', () => {
  assert.ok(wantsCurrent('keep', 'restart'));
  assert.not.ok(wantsCurrent('keep', 'renew'));
  assert.ok(wantsCurrent('on-renew', 'renew'));
  assert.not.ok(wantsCurrent('on-renew', 'reconcile'));
  assert.ok(wantsCurrent('recreate', 'reconcile'));
});

test.run();
