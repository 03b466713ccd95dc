/**
 * Contract cases for warm-pool claims (issue 11): `claimPooled` hands a running, unclaimed pool
 * member to the owner of a just-created instance in one atomic step, or writes nothing. Registered
 * into the per-adapter suite, so memory and Redis cannot drift.
 */
import type { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { isLive, POOL_TEAM, type Instance } from '../../src/core/instance.ts';
import { CONFLICT, type Store } from '../../src/core/store.ts';
import { makeInstance, NOW } from './helpers.ts';

type Test = ReturnType<typeof suite<any>>;
type Get = (ctx: any) => Store;

/** A running pool member placed on `w1` (created, placed, reported running, as the real path does). */
async function member(st: Store, over: Partial<Instance> = {}): Promise<Instance> {
  const m = makeInstance({ team: POOL_TEAM, expiresAt: NOW + 86_400_000, maxExpiresAt: NOW + 86_400_000, ...over });
  m.owner = `pool:${m.id}`;
  const res = await st.createInstance(m, NOW);
  assert.ok(res.created, 'member created');
  const placed = await st.assign(m.id, { epoch: 0 }, 'w1', { sealedFlag: 'h:k:sealed-for-the-pool' }, NOW);
  assert.ok(placed && placed !== CONFLICT, 'member placed');
  const running = await st.updateInstance(m.id, { status: 'running' }, NOW);
  return running as Instance;
}

/** A team's fresh request, as the API creates it before claiming. */
async function claimant(st: Store, over: Partial<Instance> = {}, opts: Parameters<Store['createInstance']>[2] = {}): Promise<Instance> {
  const x = makeInstance({ team: 'team-a', user: 'alice', createdAt: NOW + 10, expiresAt: NOW + 1_800_000, maxExpiresAt: NOW + 3_600_000, ...over });
  const res = await st.createInstance(x, NOW + 10, opts);
  assert.ok(res.created, 'claimant created');
  return res.created ? res.instance : x;
}

export function registerPool(test: Test, s: Get): void {
  test('claimPooled: the member takes the owner, times and slot; the claimant goes; the flag is resealed later', async (ctx) => {
    const st = s(ctx);
    const m = await member(st);
    const x = await claimant(st, {}, { idempotency: { key: 'k1', fingerprint: 'fp', ttlMs: 60_000 } });
    const claimed = await st.claimPooled(x, m, { reason: 'claimed from the warm pool', idempotencyKey: 'k1' }, NOW + 20);
    assert.ok(claimed !== CONFLICT);
    assert.is(claimed.id, m.id);
    assert.equal([claimed.team, claimed.user, claimed.owner, claimed.createdAt, claimed.expiresAt, claimed.maxExpiresAt], ['team-a', 'alice', x.owner, x.createdAt, x.expiresAt, x.maxExpiresAt]);
    assert.equal([claimed.status, claimed.reason, claimed.worker, claimed.epoch, claimed.generation, claimed.renewals], ['starting', 'claimed from the warm pool', 'w1', m.epoch, m.generation, 0]);
    assert.is(claimed.sealedFlag, undefined, 'the pool\'s flag is dropped');
    assert.equal(await st.getInstance(m.id), claimed);
    assert.is(await st.getInstance(x.id), undefined, 'the claimant record is gone');
    assert.equal((await st.listIds()).sort(), [m.id]);
    assert.equal((await st.listInstances({ team: 'team-a' })).map((i) => i.id), [m.id]);
    assert.equal(await st.listInstances({ team: POOL_TEAM }), []);
    assert.is(await st.idempotentInstance('k1', NOW + 30), m.id, 'the idempotency key now names the member');
    // The owner's slot is the member's: a second request of the same owner is refused with it.
    const again = await st.createInstance(makeInstance({ team: 'team-a', user: 'alice' }), NOW + 40);
    assert.ok(!again.created && again.reason === 'owner' && again.existing.id === m.id, JSON.stringify(again));
    assert.is(await st.countAdmitted(NOW + 40), 1, 'one admitted: the claimed member');
    assert.ok(isLive(claimed, NOW + 40));
  });

  test('claimPooled: the owner\'s flag sealed by the caller replaces the pool\'s', async (ctx) => {
    const st = s(ctx);
    const m = await member(st);
    const x = await claimant(st);
    const claimed = await st.claimPooled(x, m, { reason: 'r', sealedFlag: 'h:k:sealed-for-team-a' }, NOW + 20);
    assert.ok(claimed !== CONFLICT);
    assert.is(claimed.sealedFlag, 'h:k:sealed-for-team-a');
    assert.is((await st.getInstance(m.id))?.sealedFlag, 'h:k:sealed-for-team-a');
  });

  test('claimPooled: a queued claimant takes a member (the member already holds a place)', async (ctx) => {
    const st = s(ctx);
    const m = await member(st);
    const x = await claimant(st, {}, { capacity: 1 });
    assert.is(x.status, 'queued');
    const claimed = await st.claimPooled(x, m, { reason: 'r' }, NOW + 20);
    assert.ok(claimed !== CONFLICT);
    assert.equal(await st.queuedIds(), []);
    assert.is(await st.countAdmitted(NOW + 20), 1);
  });

  test('claimPooled: one member goes to one claimant; the other is refused and keeps its record', async (ctx) => {
    const st = s(ctx);
    const m = await member(st);
    const a = await claimant(st, { team: 'team-a', user: undefined, owner: 'team:team-a' });
    const b = await claimant(st, { team: 'team-b', user: undefined, owner: 'team:team-b' });
    const results = await Promise.all([st.claimPooled(a, m, { reason: 'r' }, NOW + 20), st.claimPooled(b, m, { reason: 'r' }, NOW + 20)]);
    assert.is(results.filter((r) => r !== CONFLICT).length, 1, 'exactly one claim wins');
    const winner = results.find((r) => r !== CONFLICT) as Instance;
    const loser = winner.team === 'team-a' ? b : a;
    assert.ok(await st.getInstance(loser.id), 'the loser keeps its own (cold) request');
  });

  test('claimPooled: refused without writing when the member is not an unclaimed running member or the claimant moved on', async (ctx) => {
    const st = s(ctx);
    const cases: Array<[string, () => Promise<[Instance, Instance]>]> = [
      ['member still starting', async () => {
        const m = await member(st);
        return [await claimant(st), (await st.updateInstance(m.id, { status: 'starting' }, NOW)) as Instance];
      }],
      ['member of another version', async () => [await claimant(st), await member(st, { specHash: 'sha256:other' })]],
      ['member expired', async () => [await claimant(st), await member(st, { expiresAt: NOW + 5, maxExpiresAt: NOW + 5 })]],
      ['member asked to stop', async () => {
        const m = await member(st);
        return [await claimant(st), (await st.updateInstance(m.id, { desired: 'stopped' }, NOW)) as Instance];
      }],
      ['member owned by a team', async () => [await claimant(st), (await member(st, { team: 'team-z' }))]],
      ['claimant placed already', async () => {
        const x = await claimant(st);
        const placed = await st.assign(x.id, { epoch: 0 }, 'w2', {}, NOW + 15);
        return [placed as Instance, await member(st)];
      }],
    ];
    for (const [label, make] of cases) {
      const [x, m] = await make();
      const before = [await st.getInstance(x.id), await st.getInstance(m.id)];
      assert.is(await st.claimPooled(x, m, { reason: 'r' }, NOW + 20), CONFLICT, label);
      assert.equal([await st.getInstance(x.id), await st.getInstance(m.id)], before, `${label}: nothing written`);
      await st.deleteInstance(x.id);
      await st.deleteInstance(m.id);
    }
  });
}
