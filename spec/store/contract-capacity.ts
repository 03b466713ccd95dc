/**
 * Contract cases for counting (issue 12): capacity, the queue and the team limit must stay exact
 * through every transition the store offers (renewals, expiry with no write at all, failures,
 * deletes, placement writes, concurrent creates), whether an adapter counts by walking records or
 * by indexes it keeps. Clocks only move forward within a case: counting at a later `now` may
 * forget what expired, as it is allowed to.
 */
import type { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { CONFLICT, type CreateResult, type Store } from '../../src/core/store.ts';
import { makeInstance, NOW, existingId } from './helpers.ts';

type Test = ReturnType<typeof suite<any>>;
type Get = (ctx: any) => Store;
const times = { expiresAt: NOW + 60_000, maxExpiresAt: NOW + 120_000 };

function status(r: CreateResult): string {
  return r.created ? r.instance.status : `refused: ${r.reason}`;
}

/** Registers the counting cases into an adapter's contract suite (see contract.ts). */
export function registerCapacity(test: Test, s: Get): void {
  for (const group of [registerExpiry, registerTransitions, registerConcurrency]) group(test, s);
}

function registerExpiry(test: Test, s: Get): void {
  test('capacity counts an admitted instance until its renewed expiry, not its first one', async (ctx) => {
    const st = s(ctx);
    const a = makeInstance({ team: 'a', expiresAt: NOW + 1000 });
    assert.is(status(await st.createInstance(a, NOW, { capacity: 1 })), 'pending');
    const renewed = await st.compareAndUpdate(a.id, { renewals: 0 }, { renewals: 1, expiresAt: NOW + 5000 }, NOW + 500);
    assert.ok(renewed && renewed !== CONFLICT);
    assert.is(await st.countAdmitted(NOW + 2000), 1);
    assert.is(await st.admittedExpiry(1, NOW + 2000), NOW + 5000);
    const b = makeInstance({ team: 'b' });
    assert.is(status(await st.createInstance(b, NOW + 2000, { capacity: 1 })), 'queued');
    assert.is(await st.admit(b.id, NOW + 2000, 1, times), 'full');
    assert.is(await st.countAdmitted(NOW + 5000), 0, 'expired at its renewed expiry');
    assert.is(await st.admit(b.id, NOW + 5000, 1, times), 'admitted');
  });

  test('an admitted instance stops counting at its expiry with no write at all', async (ctx) => {
    const st = s(ctx);
    const [a, b] = [makeInstance({ team: 'a', expiresAt: NOW + 1000 }), makeInstance({ team: 'b', expiresAt: NOW + 3000 })];
    for (const inst of [a, b]) assert.is(status(await st.createInstance(inst, NOW, { capacity: 2 })), 'pending');
    assert.is(await st.countAdmitted(NOW), 2);
    assert.equal([await st.admittedExpiry(1, NOW), await st.admittedExpiry(2, NOW)], [NOW + 1000, NOW + 3000]);
    assert.is(await st.countAdmitted(NOW + 1000), 1, 'now == expiresAt is expired');
    assert.equal([await st.admittedExpiry(1, NOW + 1000), await st.admittedExpiry(2, NOW + 1000)], [NOW + 3000, undefined]);
    assert.is(status(await st.createInstance(makeInstance({ team: 'c' }), NOW + 1000, { capacity: 2 })), 'pending', 'the expired place is free');
    assert.is(status(await st.createInstance(makeInstance({ team: 'd' }), NOW + 1000, { capacity: 2 })), 'queued');
  });

  test('team limit: expiry with no write frees a place, a renewal keeps it', async (ctx) => {
    const st = s(ctx);
    const a = makeInstance({ team: 'tl', challenge: 'a', expiresAt: NOW + 1000 });
    assert.ok((await st.createInstance(a, NOW, { teamLimit: 1 })).created);
    await st.compareAndUpdate(a.id, { renewals: 0 }, { renewals: 1, expiresAt: NOW + 2000 }, NOW + 500);
    const refused = await st.createInstance(makeInstance({ team: 'tl', challenge: 'b' }), NOW + 1500, { teamLimit: 1 });
    assert.ok(!refused.created && refused.reason === 'team-limit', status(refused));
    if (!refused.created && refused.reason === 'team-limit') assert.equal(refused.holders.map((h) => [h.id, h.expiresAt]), [[a.id, NOW + 2000]]);
    assert.ok((await st.createInstance(makeInstance({ team: 'tl', challenge: 'b' }), NOW + 2000, { teamLimit: 1 })).created);
  });

  test('a queued instance keeps its place and counts for its team past its nominal expiry', async (ctx) => {
    const st = s(ctx);
    const holder = makeInstance({ team: 'h' });
    await st.createInstance(holder, NOW, { capacity: 1 });
    const q = makeInstance({ team: 'q', challenge: 'a', expiresAt: NOW + 10 });
    assert.is(status(await st.createInstance(q, NOW, { capacity: 1 })), 'queued');
    assert.equal(await st.queuedIds(), [q.id]);
    assert.is(await st.queuePosition(q.id), 1);
    const other = await st.createInstance(makeInstance({ team: 'q', challenge: 'b' }), NOW + 1000, { teamLimit: 1, capacity: 1 });
    assert.ok(!other.created && other.reason === 'team-limit' && existingId(other) === q.id, status(other));
    assert.is(await st.countAdmitted(NOW + 1000), 1, 'queued ones are not admitted');
    await st.updateInstance(holder.id, { desired: 'stopped' }, NOW + 1000);
    assert.is(await st.admit(q.id, NOW + 1000, 1, times), 'admitted');
    assert.equal(await st.queuedIds(), []);
    assert.is(await st.countAdmitted(NOW + 1000), 1);
  });
}

function registerTransitions(test: Test, s: Get): void {
  test('deletes free capacity, the queue place and the slot', async (ctx) => {
    const st = s(ctx);
    const a = makeInstance({ team: 'a' });
    const [q1, q2] = [makeInstance({ team: 'q1' }), makeInstance({ team: 'q2' })];
    for (const inst of [a, q1, q2]) await st.createInstance(inst, NOW, { capacity: 1 });
    await st.deleteInstance(q1.id);
    assert.equal(await st.queuedIds(), [q2.id]);
    assert.is(await st.queuePosition(q2.id), 1);
    assert.is(await st.queuePosition(q1.id), undefined);
    await st.deleteInstance(a.id);
    assert.is(await st.countAdmitted(NOW), 0);
    assert.is(await st.admit(q2.id, NOW, 1, times), 'admitted');
    const again = await st.createInstance(makeInstance({ team: 'a' }), NOW, { capacity: 1 });
    assert.is(status(again), 'queued', 'the slot is free again; the place is q2\'s');
  });

  test('a failure written by a placement or a CAS frees the place and leaves the queue', async (ctx) => {
    const st = s(ctx);
    const a = makeInstance({ team: 'a' });
    const [q1, q2] = [makeInstance({ team: 'q1' }), makeInstance({ team: 'q2' })];
    for (const inst of [a, q1, q2]) await st.createInstance(inst, NOW, { capacity: 1 });
    const failed = await st.assign(a.id, { epoch: 0 }, undefined, { status: 'failed', reason: 'no worker fits' }, NOW);
    assert.ok(failed && failed !== CONFLICT && failed.status === 'failed');
    assert.is(await st.countAdmitted(NOW), 0);
    assert.ok(await st.compareAndUpdate(q1.id, { status: 'queued' }, { status: 'failed', reason: 'waited too long' }, NOW));
    assert.equal(await st.queuedIds(), [q2.id]);
    assert.is(await st.admit(q1.id, NOW, 1, times), 'gone');
    assert.is(await st.admit(q2.id, NOW, 1, times), 'admitted');
  });

  test('an admitted instance whose status reads stopped while desired running still counts', async (ctx) => {
    const st = s(ctx);
    const a = makeInstance({ team: 'a' });
    await st.createInstance(a, NOW, { capacity: 1 });
    await st.updateInstance(a.id, { status: 'stopped' }, NOW);
    assert.is(await st.countAdmitted(NOW), 1, 'a restart is coming: it keeps its place');
    await st.updateInstance(a.id, { desired: 'stopped' }, NOW);
    assert.is(await st.countAdmitted(NOW), 0);
  });

  test('an idempotency key whose instance was deleted creates anew', async (ctx) => {
    const st = s(ctx);
    const idem = { key: 'gone', fingerprint: 'f', ttlMs: 60_000 };
    const first = makeInstance({ team: 'idem-gone' });
    await st.createInstance(first, NOW, { idempotency: idem });
    await st.deleteInstance(first.id);
    const second = makeInstance({ team: 'idem-gone' });
    const res = await st.createInstance(second, NOW, { idempotency: idem });
    assert.ok(res.created && res.instance.id === second.id, status(res));
    const replay = await st.createInstance(makeInstance({ team: 'idem-gone' }), NOW, { idempotency: idem });
    assert.ok(!replay.created && replay.reason === 'replay' && replay.existing.id === second.id);
  });
}

function registerConcurrency(test: Test, s: Get): void {
  test('20 concurrent creates of distinct owners with capacity 5: five admitted, fifteen queued', async (ctx) => {
    const st = s(ctx);
    const insts = Array.from({ length: 20 }, (_, i) => makeInstance({ team: `c${i}` }));
    const results = await Promise.all(insts.map((inst) => st.createInstance(inst, NOW, { capacity: 5 })));
    assert.is(results.filter((r) => status(r) === 'pending').length, 5);
    assert.is(await st.countAdmitted(NOW), 5);
    const queued = results.flatMap((r) => (r.created && r.instance.status === 'queued' ? [r.instance.id] : []));
    assert.equal((await st.queuedIds()).sort(), queued.sort());
  });

  test('30 concurrent creates of one team with limit 3: three created, the rest name those three', async (ctx) => {
    const st = s(ctx);
    const insts = Array.from({ length: 30 }, (_, i) => makeInstance({ team: 'burst', challenge: `ch${i}` }));
    const results = await Promise.all(insts.map((inst) => st.createInstance(inst, NOW, { teamLimit: 3 })));
    const created = results.flatMap((r) => (r.created ? [r.instance.id] : [])).sort();
    assert.is(created.length, 3);
    for (const r of results) {
      if (r.created) continue;
      assert.is(r.reason, 'team-limit');
      if (r.reason === 'team-limit') assert.equal(r.holders.map((h) => h.id).sort(), created);
    }
  });
}
