/**
 * Contract cases for the lifecycle features of the store (issue 4): team limits, the admission
 * queue, idempotency keys, conditional updates, rate windows and flag records. Registered into
 * the same per-adapter suite as the basics, so memory and Redis cannot drift.
 */
import type { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { CONFLICT, type Store } from '../../src/core/store.ts';
import { makeInstance, NOW, existingId } from './helpers.ts';

type Test = ReturnType<typeof suite<any>>;
type Get = (ctx: any) => Store;
const times = { expiresAt: NOW + 60_000, maxExpiresAt: NOW + 120_000 };

export function registerLifecycle(test: Test, s: Get): void {
  test('team limit counts live instances across challenges and names them', async (ctx) => {
    const a = makeInstance({ team: 'red', challenge: 'a' });
    const b = makeInstance({ team: 'red', challenge: 'b' });
    assert.ok((await s(ctx).createInstance(a, NOW, { teamLimit: 2 })).created);
    assert.ok((await s(ctx).createInstance(b, NOW, { teamLimit: 2 })).created);
    const c = await s(ctx).createInstance(makeInstance({ team: 'red', challenge: 'c' }), NOW, { teamLimit: 2 });
    assert.ok(!c.created && c.reason === 'team-limit');
    if (!c.created && c.reason === 'team-limit') assert.equal(c.holders.map((h) => h.id).sort(), [a.id, b.id].sort());
    assert.ok((await s(ctx).createInstance(makeInstance({ team: 'blue', challenge: 'c' }), NOW, { teamLimit: 2 })).created, 'other teams unaffected');
    await s(ctx).updateInstance(a.id, { desired: 'stopped' }, NOW);
    assert.ok((await s(ctx).createInstance(makeInstance({ team: 'red', challenge: 'c' }), NOW, { teamLimit: 2 })).created, 'a stopped instance frees a place');
  });

  test('beyond capacity instances queue in arrival order and are admitted head first', async (ctx) => {
    const st = s(ctx);
    const first = makeInstance({ team: 't0' });
    assert.is((await st.createInstance(first, NOW, { capacity: 1 })).created && 'ok', 'ok');
    assert.is((await st.getInstance(first.id))!.status, 'pending');
    const queued = [1, 2, 3].map((n) => makeInstance({ team: `t${n}`, createdAt: NOW + n }));
    for (const q of queued) {
      const r = await st.createInstance(q, NOW, { capacity: 1 });
      assert.ok(r.created && r.instance.status === 'queued');
    }
    assert.equal(await st.queuedIds(), queued.map((q) => q.id));
    assert.is(await st.queuePosition(queued[2]!.id), 3);
    assert.is(await st.admit(queued[1]!.id, NOW, 1, times), 'full', 'not the head');
    assert.is(await st.admit(queued[0]!.id, NOW, 1, times), 'full', 'no capacity');
    await st.updateInstance(first.id, { desired: 'stopped' }, NOW);
    assert.is(await st.countAdmitted(NOW), 0);
    assert.is(await st.admit(queued[0]!.id, NOW, 1, times), 'admitted');
    const admitted = await st.getInstance(queued[0]!.id);
    assert.equal([admitted!.status, admitted!.expiresAt, admitted!.maxExpiresAt], ['pending', times.expiresAt, times.maxExpiresAt]);
    assert.is(await st.countAdmitted(NOW), 1);
    assert.is(await st.queuePosition(queued[2]!.id), 2);
    assert.is(await st.admittedExpiry(1, NOW), times.expiresAt, 'the first place frees when the admitted one expires');
    assert.is(await st.admittedExpiry(2, NOW), undefined, 'only one is admitted');
  });

  test('a cancelled queued instance leaves the queue and the next one moves up', async (ctx) => {
    const st = s(ctx);
    await st.createInstance(makeInstance({ team: 'holder' }), NOW, { capacity: 1 });
    const [q1, q2] = [makeInstance({ team: 'q1' }), makeInstance({ team: 'q2' })];
    await st.createInstance(q1, NOW, { capacity: 1 });
    await st.createInstance(q2, NOW, { capacity: 1 });
    await st.updateInstance(q1.id, { desired: 'stopped', status: 'stopped' }, NOW);
    assert.equal(await st.queuedIds(), [q2.id]);
    assert.is(await st.admit(q1.id, NOW, 5, times), 'gone');
    assert.is(await st.admit(q2.id, NOW, 5, times), 'admitted');
  });

  test('a queued instance holds its owner slot even past its nominal expiry', async (ctx) => {
    const st = s(ctx);
    await st.createInstance(makeInstance({ team: 'busy' }), NOW, { capacity: 1 });
    const q = makeInstance({ team: 'w', expiresAt: NOW + 10 });
    await st.createInstance(q, NOW, { capacity: 1 });
    const again = await st.createInstance(makeInstance({ team: 'w' }), NOW + 1000, { capacity: 1 });
    assert.ok(!again.created && again.reason === 'owner' && again.existing.id === q.id);
  });

  test('idempotency: same key and body replay the first instance, another body is refused', async (ctx) => {
    const st = s(ctx);
    const idem = { key: 'k1', fingerprint: 'f1', ttlMs: 60_000 };
    const first = makeInstance({ team: 'idem' });
    assert.ok((await st.createInstance(first, NOW, { idempotency: idem })).created);
    const replays = await Promise.all(Array.from({ length: 50 }, () => st.createInstance(makeInstance({ team: 'idem' }), NOW, { idempotency: idem })));
    assert.ok(replays.every((r) => !r.created && r.reason === 'replay' && r.existing.id === first.id));
    const other = await st.createInstance(makeInstance({ team: 'idem', challenge: 'x' }), NOW, { idempotency: { ...idem, fingerprint: 'f2' } });
    assert.ok(!other.created && other.reason === 'key-reused' && other.existing.id === first.id);
  });

  test('1000 concurrent identical idempotent creates make one instance', async (ctx) => {
    const st = s(ctx);
    const idem = { key: 'burst', fingerprint: 'same', ttlMs: 60_000 };
    const results = await Promise.all(Array.from({ length: 1000 }, () => st.createInstance(makeInstance({ team: 'burst' }), NOW, { idempotency: idem })));
    const created = results.filter((r) => r.created);
    assert.is(created.length, 1);
    const id = created[0]!.created ? created[0]!.instance.id : '';
    assert.ok(results.every((r) => r.created || existingId(r) === id));
    assert.is((await st.listInstances({ team: 'burst' })).length, 1);
  });

  test('a create sent again (a retried command) answers created and stores it once', async (ctx) => {
    const st = s(ctx);
    const inst = makeInstance({ team: 'retry' });
    const first = await st.createInstance(inst, NOW, { teamLimit: 1 });
    const again = await st.createInstance(inst, NOW, { teamLimit: 1 });
    assert.ok(first.created && again.created, 'both answers say created');
    assert.is(again.created && again.instance.id, inst.id);
    assert.is((await st.listInstances({ team: 'retry' })).length, 1);
  });

  test('the launch rate counts inside create: refusals count, replays and concurrent copies cost one hit', async (ctx) => {
    const st = s(ctx);
    const rate = { key: 'launch:rt', limit: 2, windowMs: 60_000 };
    const idem = { key: 'copy', fingerprint: 'f', ttlMs: 60_000 };
    const copies = await Promise.all(Array.from({ length: 100 }, () => st.createInstance(makeInstance({ team: 'rt', challenge: 'a' }), NOW, { idempotency: idem, rate })));
    assert.is(copies.filter((r) => r.created).length, 1, 'one instance');
    assert.ok(copies.every((r) => r.created || (!r.created && r.reason === 'replay')), 'no copy is rate-limited');
    const owner = await st.createInstance(makeInstance({ team: 'rt', challenge: 'a' }), NOW, { rate });
    assert.ok(!owner.created && owner.reason === 'owner', 'second hit: refused by the owner slot, but counted');
    const third = await st.createInstance(makeInstance({ team: 'rt', challenge: 'b' }), NOW, { rate });
    assert.ok(!third.created && third.reason === 'rate-limited' && third.retryAfterMs > 0 && third.retryAfterMs <= 60_000);
    assert.ok((await st.createInstance(makeInstance({ team: 'rt2', challenge: 'b' }), NOW, { rate: { ...rate, key: 'launch:rt2' } })).created, 'other keys unaffected');
  });

  test('compareAndUpdate writes only when expectations hold', async (ctx) => {
    const st = s(ctx);
    const inst = makeInstance({ renewals: 0 });
    await st.createInstance(inst, NOW);
    const ok = await st.compareAndUpdate(inst.id, { renewals: 0 }, { renewals: 1, expiresAt: NOW + 99 }, NOW);
    assert.ok(ok !== CONFLICT && ok?.renewals === 1 && ok.expiresAt === NOW + 99);
    assert.is(await st.compareAndUpdate(inst.id, { renewals: 0 }, { renewals: 1 }, NOW), CONFLICT);
    assert.is(await st.compareAndUpdate('f'.repeat(24), { renewals: 0 }, { renewals: 1 }, NOW), undefined);
    const racers = await Promise.all(Array.from({ length: 20 }, () => st.compareAndUpdate(inst.id, { generation: 1 }, { generation: 2 }, NOW)));
    assert.is(racers.filter((r) => r !== CONFLICT).length, 1, 'exactly one concurrent CAS wins');
  });

  test('rate windows allow the limit and then refuse with a retry time', async (ctx) => {
    const st = s(ctx);
    const res = [];
    for (let i = 0; i < 4; i++) res.push(await st.hitRate('launch:red', 3, 60_000, NOW));
    assert.equal(res.map((r) => r.allowed), [true, true, true, false]);
    assert.ok(res[3]!.retryAfterMs > 0 && res[3]!.retryAfterMs <= 60_000);
    assert.ok((await st.hitRate('launch:blue', 3, 60_000, NOW)).allowed, 'keys are independent');
  });

  test('flag records and incidents outlive instances', async (ctx) => {
    const st = s(ctx);
    const rec = { team: 'red', challenge: 'web', instance: 'a'.repeat(24), issuedAt: NOW };
    await st.recordFlag('d'.repeat(64), rec, 60_000);
    assert.equal(await st.findFlag('d'.repeat(64)), rec);
    assert.is(await st.findFlag('e'.repeat(64)), undefined);
    await st.addIncident({ at: 1, challenge: 'web', submittedBy: 'blue', owner: 'red', instance: rec.instance });
    await st.addIncident({ at: 2, challenge: 'web', submittedBy: 'green', owner: 'red', instance: rec.instance });
    assert.equal((await st.listIncidents(10)).map((i) => i.submittedBy), ['green', 'blue']);
    assert.is((await st.listIncidents(1)).length, 1);
  });
}
