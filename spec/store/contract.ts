/**
 * The `Store` contract: one uvu suite run against every adapter (memory, Redis) so they cannot
 * drift. Each case gets a fresh, empty store from `make()`; `cleanup()` runs even when it fails.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { isPoseidonError } from '../../src/core/errors.ts';
import type { Instance } from '../../src/core/instance.ts';
import type { Store } from '../../src/core/store.ts';
import { registerCapacity } from './contract-capacity.ts';
import { registerLifecycle } from './contract-lifecycle.ts';
import { registerPlacement } from './contract-placement.ts';
import { registerPool } from './contract-pool.ts';
import { count, listenSettled, makeFullInstance, makeInstance, NOW, waitFor, existingId } from './helpers.ts';

/** What an adapter's factory returns: an empty store and a function removing all it wrote. */
export interface StoreFixture {
  store: Store;
  cleanup: () => Promise<void>;
}

interface Ctx {
  fx?: StoreFixture;
}

/** Registers and runs the contract suite `store contract: <name>` against stores from `make`. */
export function storeContract(name: string, make: () => Promise<StoreFixture>): void {
  const test = suite<Ctx>(`store contract: ${name}`, {});
  test.before.each(async (ctx) => {
    ctx.fx = await make();
  });
  test.after.each(async (ctx) => {
    const fx = ctx.fx;
    ctx.fx = undefined; // after.each can run twice when it throws itself; clean once
    await fx?.cleanup();
  });
  const s = (ctx: Ctx): Store => {
    if (!ctx.fx) throw new Error('no store');
    return ctx.fx.store;
  };
  registerBasics(test, s);
  registerSlots(test, s);
  registerUpdates(test, s);
  registerListing(test, s);
  registerEvents(test, s);
  registerLifecycle(test, s);
  registerPlacement(test, s);
  registerCapacity(test, s);
  registerPool(test, s);
  test.run();
}

type Test = ReturnType<typeof suite<Ctx>>;
type Get = (ctx: Ctx) => Store;

async function rejectsWith(promise: Promise<unknown>, code: string, kind?: string): Promise<void> {
  try {
    await promise;
  } catch (err) {
    assert.ok(isPoseidonError(err, code), `expected ${code}, got ${String(err)}`);
    if (kind !== undefined) assert.is(err.kind, kind);
    return;
  }
  assert.unreachable(`expected a rejection with ${code}`);
}

function registerBasics(test: Test, s: Get): void {
  const roundTrips: Array<[string, Instance]> = [
    ['minimal (no optional fields, no endpoints)', makeInstance()],
    ['every optional field and two endpoints', makeFullInstance()],
  ];
  for (const [label, inst] of roundTrips) {
    test(`create/get round trip: ${label}`, async (ctx) => {
      const res = await s(ctx).createInstance(inst, NOW);
      assert.equal(res, { created: true, instance: inst });
      const got = await s(ctx).getInstance(inst.id);
      assert.equal(got, inst);
      for (const key of ['user', 'reason', 'finishedAt'] as const) assert.is(key in (got as Instance), key in inst);
      assert.equal(await s(ctx).listIds(), [inst.id]);
    });
  }

  test('get/update of a missing id -> undefined; delete of one resolves', async (ctx) => {
    assert.is(await s(ctx).getInstance('0'.repeat(24)), undefined);
    assert.is(await s(ctx).updateInstance('0'.repeat(24), { status: 'running' }, NOW), undefined);
    await s(ctx).deleteInstance('0'.repeat(24));
    assert.equal(await s(ctx).listIds(), []);
  });

  test('an existing id is never overwritten: E_STORE terminal', async (ctx) => {
    const a = makeInstance({ team: 'a', owner: 'team:a' });
    await s(ctx).createInstance(a, NOW);
    await rejectsWith(s(ctx).createInstance({ ...a, team: 'b', owner: 'team:b' }, NOW), 'E_STORE', 'terminal');
    assert.equal(await s(ctx).getInstance(a.id), a);
    assert.equal(await s(ctx).listInstances({ team: 'b' }), []);
  });

  const invalid: Array<[string, Instance]> = [
    ['missing hostname', { ...makeInstance(), hostname: undefined } as unknown as Instance],
    ['NaN expiresAt', makeInstance({ expiresAt: Number.NaN })],
    ['endpoints not an array', { ...makeInstance(), endpoints: 'x' } as unknown as Instance],
  ];
  for (const [label, inst] of invalid) {
    test(`an invalid instance is rejected before writing: ${label}`, async (ctx) => {
      await rejectsWith(s(ctx).createInstance(inst, NOW), 'E_INTERNAL', 'terminal');
      assert.equal(await s(ctx).listIds(), []);
    });
  }

  test('returned objects are copies', async (ctx) => {
    const inst = makeFullInstance();
    const pristine = structuredClone(inst);
    const res = await s(ctx).createInstance(inst, NOW);
    inst.endpoints.pop();
    inst.status = 'failed';
    if (res.created) res.instance.endpoints.length = 0;
    (await s(ctx).getInstance(pristine.id))!.endpoints[0]!.port = 1;
    (await s(ctx).listInstances())[0]!.reason = 'mutated';
    (await s(ctx).updateInstance(pristine.id, { renewals: 2 }, NOW))!.endpoints.length = 0;
    // The update wrote what was there; its stamp is the only change (`updatedAt` only rises).
    assert.equal(await s(ctx).getInstance(pristine.id), { ...pristine, updatedAt: Math.max(NOW, pristine.updatedAt + 1) });
  });

  test('a listing of 2,500 records holds each once, in creation order (the Redis adapter reads them in pipelines of 1,000)', async (ctx) => {
    const st = s(ctx);
    const made = Array.from({ length: 2500 }, (_, i) => makeInstance({ team: `big-${i}`, createdAt: NOW - 2500 + i }));
    for (let i = 0; i < made.length; i += 250) await Promise.all(made.slice(i, i + 250).map((m) => st.createInstance(m, NOW)));
    const listed = await st.listInstances();
    assert.equal(listed.map((i) => i.id), made.map((m) => m.id));
    assert.equal(listed[1999], await st.getInstance(made[1999]!.id), 'a record across a pipeline boundary is whole');
  });

  test('close is idempotent; later calls reject with E_STORE', async (ctx) => {
    await s(ctx).close();
    await s(ctx).close();
    await rejectsWith(s(ctx).getInstance('x'), 'E_STORE');
  });
}

function registerSlots(test: Test, s: Get): void {
  test('50 concurrent creates for one owner+challenge: exactly one created', async (ctx) => {
    const attempts = Array.from({ length: 50 }, () => makeInstance());
    const results = await Promise.all(attempts.map((inst) => s(ctx).createInstance(inst, NOW)));
    const winners = results.flatMap((r) => (r.created ? [r.instance.id] : []));
    assert.is(winners.length, 1);
    const losers = results.flatMap((r) => (r.created ? [] : [existingId(r)]));
    assert.equal(losers, Array.from({ length: 49 }, () => winners[0]));
    assert.equal(await s(ctx).listIds(), winners);
  });

  const holders: Array<{ label: string; patch: Partial<Instance>; now: number; frees: boolean }> = [
    { label: 'desired stopped', patch: { desired: 'stopped' }, now: NOW, frees: true },
    { label: 'status failed', patch: { status: 'failed' }, now: NOW, frees: true },
    { label: 'expired (now == expiresAt)', patch: {}, now: NOW + 3_600_000, frees: true },
    { label: 'running, 1 ms before expiry', patch: { status: 'running' }, now: NOW + 3_599_999, frees: false },
    { label: 'status stopped but desired running', patch: { status: 'stopped' }, now: NOW, frees: false },
  ];
  for (const row of holders) {
    test(`slot ${row.frees ? 'frees' : 'holds'} when the holder is ${row.label}`, async (ctx) => {
      const first = makeInstance(row.patch);
      await s(ctx).createInstance(first, NOW);
      const second = makeInstance();
      const res = await s(ctx).createInstance(second, row.now);
      assert.is(res.created, row.frees);
      if (!res.created) assert.is(existingId(res), first.id);
      else {
        const third = await s(ctx).createInstance(makeInstance(), NOW); // second is live at NOW
        assert.equal(third.created ? undefined : existingId(third), second.id);
      }
      assert.equal(await s(ctx).getInstance(first.id), first); // the old record stays
    });
  }

  test('team-scoped and user-scoped owners do not share a slot', async (ctx) => {
    const owners = [
      makeInstance({ team: 't', owner: 'team:t' }),
      makeInstance({ team: 't', user: 'u1', owner: 'user:t/u1' }),
      makeInstance({ team: 't', user: 'u2', owner: 'user:t/u2' }),
    ];
    for (const inst of owners) assert.ok((await s(ctx).createInstance(inst, NOW)).created, inst.owner);
    for (const inst of owners) {
      const again = await s(ctx).createInstance(makeInstance({ team: 't', owner: inst.owner }), NOW);
      assert.equal(again.created ? undefined : existingId(again), inst.id);
    }
  });

  test('delete frees the slot, is idempotent, and a late update does not resurrect', async (ctx) => {
    const a = makeInstance();
    await s(ctx).createInstance(a, NOW);
    await s(ctx).deleteInstance(a.id);
    await s(ctx).deleteInstance(a.id);
    assert.is(await s(ctx).updateInstance(a.id, { status: 'running' }, NOW), undefined);
    assert.is(await s(ctx).getInstance(a.id), undefined);
    assert.equal(await s(ctx).listInstances({ team: a.team }), []);
    const b = makeInstance();
    assert.ok((await s(ctx).createInstance(b, NOW)).created);
    assert.equal(await s(ctx).listIds(), [b.id]);
  });

  test('deleting a former holder leaves the current holder its slot', async (ctx) => {
    const a = makeInstance({ desired: 'stopped' });
    const b = makeInstance();
    await s(ctx).createInstance(a, NOW);
    assert.ok((await s(ctx).createInstance(b, NOW)).created);
    await s(ctx).deleteInstance(a.id);
    const c = await s(ctx).createInstance(makeInstance(), NOW);
    assert.equal(c.created ? undefined : existingId(c), b.id);
  });
}

function registerUpdates(test: Test, s: Get): void {
  test('update writes only the given fields; concurrent updates do not clobber', async (ctx) => {
    const inst = makeFullInstance();
    await s(ctx).createInstance(inst, NOW);
    const endpoints = [makeFullInstance().endpoints[0]!];
    const [r1] = await Promise.all([
      s(ctx).updateInstance(inst.id, { status: 'running', endpoints }, NOW + 10),
      s(ctx).updateInstance(inst.id, { desired: 'stopped', expiresAt: NOW + 99 }, NOW + 10),
    ]);
    assert.is(r1?.challenge, inst.challenge); // the full record comes back
    // Two writes at the same clock: the second one's stamp is one more (`updatedAt` versions the record).
    const want = { ...inst, status: 'running', endpoints, desired: 'stopped', expiresAt: NOW + 99, updatedAt: NOW + 11 };
    assert.equal(await s(ctx).getInstance(inst.id), want);
  });

  const removals: Array<[string, Record<string, undefined>, (i: Instance) => Instance]> = [
    ['reason: undefined removes reason', { reason: undefined }, ({ reason: _, ...rest }) => rest],
    ['finishedAt: undefined removes finishedAt', { finishedAt: undefined }, ({ finishedAt: _, ...rest }) => rest],
    ['status: undefined leaves the required status', { status: undefined }, (i) => i],
  ];
  for (const [label, patch, expected] of removals) {
    test(`update ${label}`, async (ctx) => {
      const inst = makeFullInstance();
      await s(ctx).createInstance(inst, NOW);
      const want = { ...expected(inst), updatedAt: NOW + 1 };
      assert.equal(await s(ctx).updateInstance(inst.id, patch, NOW + 1), want);
      assert.equal(await s(ctx).getInstance(inst.id), want);
    });
  }

  const refused: Array<[string, Record<string, unknown>]> = [
    ['an identity field (team)', { team: 'other' }],
    ['a non-finite number', { expiresAt: Number.POSITIVE_INFINITY }],
  ];
  for (const [label, patch] of refused) {
    test(`update refuses ${label} with E_INTERNAL and writes nothing`, async (ctx) => {
      const inst = makeInstance();
      await s(ctx).createInstance(inst, NOW);
      await rejectsWith(s(ctx).updateInstance(inst.id, { status: 'running', ...patch }, NOW + 1), 'E_INTERNAL');
      assert.equal(await s(ctx).getInstance(inst.id), inst);
    });
  }
}

function registerListing(test: Test, s: Get): void {
  test('list filters by team, challenge, both; oldest first', async (ctx) => {
    const mk = (team: string, challenge: string, age: number): Instance =>
      makeInstance({ team, owner: `team:${team}`, challenge, createdAt: NOW - age });
    const [a1, a2, b1, b2] = [mk('a', 'c1', 1), mk('a', 'c2', 3), mk('b', 'c1', 4), mk('b', 'c2', 2)];
    for (const inst of [a1!, a2!, b1!, b2!]) await s(ctx).createInstance(inst, NOW);
    const cases: Array<[object, Instance[]]> = [
      [{}, [b1!, a2!, b2!, a1!]],
      [{ team: 'a' }, [a2!, a1!]],
      [{ challenge: 'c1' }, [b1!, a1!]],
      [{ team: 'b', challenge: 'c2' }, [b2!]],
      [{ team: 'nobody' }, []],
    ];
    for (const [filter, want] of cases) {
      const got = await s(ctx).listInstances(filter);
      assert.equal(got.map((i) => i.id), want.map((i) => i.id), JSON.stringify(filter));
    }
    assert.equal((await s(ctx).listIds()).sort(), [a1!, a2!, b1!, b2!].map((i) => i.id).sort());
  });

  test('hostile strings round-trip and never collide', async (ctx) => {
    // Braces would pick a Cluster hash slot if the prefix had no tag (redis-keys.test.ts runs this on Cluster).
    const teams = ['a:b', 'a', '__proto__', 'constructor', 'ünï-😀-团队', 'x'.repeat(200), '%3A', 'a%3Ab', 'a b*?[]', '{x}', 'a}{b'];
    const insts = teams.map((team) => makeInstance({ team, owner: `team:${team}`, challenge: 'c' }));
    insts.push(makeInstance({ team: 'a', user: 'b', owner: 'user:a/b', challenge: 'c' }));
    // Unescaped, both slots would be `slot:team:a:b:c`.
    insts.push(makeInstance({ team: 'a', owner: 'team:a', challenge: 'b:c' }));
    for (const inst of insts) assert.ok((await s(ctx).createInstance(inst, NOW)).created, inst.owner);
    for (const inst of insts) assert.equal(await s(ctx).getInstance(inst.id), inst);
    for (const team of teams) {
      const ids = insts.filter((i) => i.team === team).map((i) => i.id).sort();
      assert.equal((await s(ctx).listInstances({ team })).map((i) => i.id).sort(), ids, team);
    }
    assert.is((await s(ctx).listInstances({ challenge: 'b:c' })).length, 1);
  });
}

function registerEvents(test: Test, s: Get): void {
  test('onChange fires for create, update and delete; throwing listeners are isolated', async (ctx) => {
    const stopThrower = s(ctx).onChange(() => {
      throw new Error('listener bug');
    });
    const { seen, stop } = await listenSettled(s(ctx), s(ctx));
    const inst = makeInstance();
    await s(ctx).createInstance(inst, NOW);
    await waitFor(() => count(seen, inst.id) >= 1, 2000, 'create event');
    await s(ctx).updateInstance(inst.id, { status: 'running' }, NOW);
    await waitFor(() => count(seen, inst.id) >= 2, 2000, 'update event');
    await s(ctx).deleteInstance(inst.id);
    await waitFor(() => count(seen, inst.id) >= 3, 2000, 'delete event');
    stop();
    stopThrower();
    const later = makeInstance({ team: 'later', owner: 'team:later' });
    await s(ctx).createInstance(later, NOW);
    await new Promise((resolve) => setTimeout(resolve, 150));
    assert.is(count(seen, later.id), 0, 'no events after unsubscribe');
  });

  test('onChange carries the created record with a creation, and nothing with other changes', async (ctx) => {
    const { stop: stopSettled } = await listenSettled(s(ctx), s(ctx));
    const seen: { id: string; created?: Instance }[] = [];
    const stop = s(ctx).onChange((id, created) => seen.push({ id, ...(created ? { created } : {}) }));
    try {
      const inst = makeInstance({ team: 'marks', owner: 'team:marks' });
      const made = await s(ctx).createInstance(inst, NOW);
      assert.ok(made.created);
      await s(ctx).updateInstance(inst.id, { status: 'running' }, NOW);
      await s(ctx).deleteInstance(inst.id);
      await waitFor(() => seen.filter((x) => x.id === inst.id).length >= 3, 30_000, 'three changes');
      const mine = seen.filter((x) => x.id === inst.id);
      assert.equal(mine[0]?.created, made.instance, 'the record as stored');
      assert.equal(mine.slice(1).map((x) => x.created), [undefined, undefined]);
      // A create that queues (capacity full) carries the record with its queued status.
      const holder = makeInstance({ team: 'holds', owner: 'team:holds' });
      const waiter = makeInstance({ team: 'waits', owner: 'team:waits' });
      assert.ok((await s(ctx).createInstance(holder, NOW, { capacity: 1 })).created);
      const queued = await s(ctx).createInstance(waiter, NOW, { capacity: 1 });
      assert.ok(queued.created && queued.instance.status === 'queued', 'queued behind the holder');
      await waitFor(() => seen.some((x) => x.id === waiter.id), 30_000, 'the queued creation');
      const change = seen.find((x) => x.id === waiter.id)?.created;
      assert.is(change?.status, 'queued');
      assert.equal(change, queued.instance, 'the queued record as stored');
      assert.equal(change, await s(ctx).getInstance(waiter.id), 'as a read returns it');
    } finally {
      stop();
      stopSettled();
    }
  });
}
