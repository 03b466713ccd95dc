/**
 * Contract cases for placement in the store (issue 9): `assign` is a compare-and-set on the
 * placement `{epoch, worker}` that bumps the epoch and moves the instance between per-worker
 * indexes atomically; `listInstances({worker})` reads those indexes. Registered into the same
 * per-adapter suite as the basics, so memory and Redis cannot drift.
 */
import { Redis } from 'ioredis';
import type { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { isPoseidonError } from '../../src/core/errors.ts';
import type { Instance } from '../../src/core/instance.ts';
import { CONFLICT, type Store } from '../../src/core/store.ts';
import { RedisStore } from '../../src/store/redis.ts';
import { REDIS_URL } from '../helpers/deps.ts';
import { count, listenSettled, makeInstance, NOW, waitFor } from './helpers.ts';

type Test = ReturnType<typeof suite<any>>;
type Get = (ctx: any) => Store;

/** A stored, unplaced instance (epoch 0). */
async function created(st: Store, over: Partial<Instance> = {}): Promise<Instance> {
  const inst = makeInstance({ epoch: 0, ...over });
  const res = await st.createInstance(inst, NOW);
  assert.ok(res.created, 'created');
  return inst;
}

/** Ids listed under each of `workers` (a stale index entry shows up here: listing reads the index). */
async function byWorker(st: Store, workers: readonly string[]): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const w of workers) out[w] = (await st.listInstances({ worker: w })).map((i) => i.id);
  return out;
}

export function registerPlacement(test: Test, s: Get): void {
  registerAssign(test, s);
  registerIndexes(test, s);
  registerOldRecords(test, s);
}

function registerAssign(test: Test, s: Get): void {
  test('assign from {epoch: 0} to w1: epoch 1, worker, placedAt and fields written; listed under w1', async (ctx) => {
    const st = s(ctx);
    const inst = await created(st);
    const res = await st.assign(inst.id, { epoch: 0 }, 'w1', { sealedFlag: 'v1.sealed-for-w1' }, NOW + 5);
    const want: Instance = { ...inst, epoch: 1, worker: 'w1', placedAt: NOW + 5, updatedAt: NOW + 5, sealedFlag: 'v1.sealed-for-w1' };
    assert.equal(res, want);
    assert.equal(await st.getInstance(inst.id), want);
    assert.equal(await byWorker(st, ['w1', 'w2']), { w1: [inst.id], w2: [] });
    assert.equal((await st.listInstances({ worker: 'w1', team: inst.team })).map((i) => i.id), [inst.id]);
    assert.equal(await st.listInstances({ worker: 'w1', team: 'someone-else' }), []);
    assert.equal((await st.listInstances()).map((i) => i.id), [inst.id]);
  });

  test('updatedAt versions the record: a write whose caller read an older clock still raises it', async (ctx) => {
    const st = s(ctx);
    const inst = await created(st, { updatedAt: NOW + 100 });
    // The placement read its clock (NOW) before a write stamped NOW + 100 landed; the worker's is older still.
    const placed = await st.assign(inst.id, { epoch: 0 }, 'w1', { status: 'pending' }, NOW);
    assert.ok(placed && placed !== CONFLICT);
    assert.is(placed.updatedAt, NOW + 101, 'assign');
    const updated = await st.updateInstance(inst.id, { status: 'starting' }, NOW - 50);
    assert.is(updated?.updatedAt, NOW + 102, 'update');
    const cas = await st.compareAndUpdate(inst.id, { epoch: 1 }, { status: 'running' }, NOW + 500);
    assert.is(cas !== CONFLICT && cas?.updatedAt, NOW + 500, 'a later clock is taken as it is');
    const again = await st.compareAndUpdate(inst.id, { epoch: 1 }, { reason: 'x' }, NOW + 500);
    assert.is(again !== CONFLICT && again?.updatedAt, NOW + 501, 'the same clock twice still raises it');
    assert.is((await st.getInstance(inst.id))?.updatedAt, NOW + 501);
  });

  test('assign: the epoch is always the expected one plus one, whatever the fields say', async (ctx) => {
    const st = s(ctx);
    const inst = await created(st);
    const res = await st.assign(inst.id, { epoch: 0 }, 'w1', { epoch: 99, worker: 'elsewhere' }, NOW);
    assert.equal(res !== CONFLICT && res && [res.epoch, res.worker], [1, 'w1']);
    assert.equal(await byWorker(st, ['w1', 'elsewhere']), { w1: [inst.id], elsewhere: [] });
  });

  const stale: Array<[string, { epoch: number; worker?: string }]> = [
    ['the old epoch', { epoch: 0 }],
    ['the right epoch without its worker', { epoch: 1 }],
    ['the right epoch with another worker', { epoch: 1, worker: 'w2' }],
    ['a future epoch', { epoch: 2, worker: 'w1' }],
  ];
  for (const [label, from] of stale) {
    test(`a second assign expecting ${label} gets CONFLICT and writes nothing`, async (ctx) => {
      const st = s(ctx);
      const inst = await created(st);
      const placed = await st.assign(inst.id, { epoch: 0 }, 'w1', {}, NOW + 1);
      assert.is(await st.assign(inst.id, from, 'w2', { sealedFlag: 'v1.for-w2' }, NOW + 2), CONFLICT);
      assert.equal(await st.getInstance(inst.id), placed);
      assert.equal(await byWorker(st, ['w1', 'w2']), { w1: [inst.id], w2: [] });
    });
  }

  test('50 concurrent assigns of one instance to different workers: exactly one wins, one index holds it', async (ctx) => {
    const st = s(ctx);
    const inst = await created(st);
    const workers = Array.from({ length: 50 }, (_, i) => `w${i}`);
    const results = await Promise.all(workers.map((w) => st.assign(inst.id, { epoch: 0 }, w, { sealedFlag: `v1.for-${w}` }, NOW + 1)));
    const winners = results.flatMap((r, i) => (r === CONFLICT ? [] : [{ r, w: workers[i]! }]));
    assert.is(winners.length, 1, `winners: ${winners.map((x) => x.w).join(', ')}`);
    assert.is(results.filter((r) => r === CONFLICT).length, 49);
    const { r, w } = winners[0]!;
    const stored = await st.getInstance(inst.id);
    assert.equal(stored, r);
    assert.equal([stored!.worker, stored!.epoch, stored!.sealedFlag], [w, 1, `v1.for-${w}`]);
    const listed = await byWorker(st, workers);
    assert.equal(Object.entries(listed).filter(([, ids]) => ids.length > 0), [[w, [inst.id]]]);
  });

  test('re-assign w1 -> w2 moves it between the worker indexes', async (ctx) => {
    const st = s(ctx);
    const inst = await created(st);
    const other = await created(st, { team: 'other', owner: 'team:other' });
    await st.assign(other.id, { epoch: 0 }, 'w1', {}, NOW);
    await st.assign(inst.id, { epoch: 0 }, 'w1', {}, NOW + 1);
    const moved = await st.assign(inst.id, { epoch: 1, worker: 'w1' }, 'w2', {}, NOW + 2);
    assert.equal(moved !== CONFLICT && moved && [moved.epoch, moved.worker, moved.placedAt], [2, 'w2', NOW + 2]);
    assert.equal(await byWorker(st, ['w1', 'w2']), { w1: [other.id], w2: [inst.id] });
    const back = await st.assign(inst.id, { epoch: 2, worker: 'w2' }, 'w1', {}, NOW + 3);
    assert.equal(back !== CONFLICT && back && back.epoch, 3);
    assert.equal((await byWorker(st, ['w1', 'w2'])).w2, []);
    assert.equal((await byWorker(st, ['w1'])).w1!.sort(), [inst.id, other.id].sort());
  });

  test('assign to undefined removes the worker and the index entry; it can be placed again', async (ctx) => {
    const st = s(ctx);
    const inst = await created(st);
    await st.assign(inst.id, { epoch: 0 }, 'w1', { sealedFlag: 'v1.for-w1' }, NOW + 1);
    const res = await st.assign(inst.id, { epoch: 1, worker: 'w1' }, undefined, { sealedFlag: undefined }, NOW + 2);
    assert.ok(res && res !== CONFLICT);
    assert.equal(['worker', 'sealedFlag'].filter((k) => k in (res as Instance)), []);
    assert.is((res as Instance).epoch, 2);
    assert.equal(await st.getInstance(inst.id), res);
    assert.equal(await byWorker(st, ['w1']), { w1: [] });
    assert.is(await st.assign(inst.id, { epoch: 2, worker: 'w1' }, 'w3', {}, NOW + 3), CONFLICT, 'no worker now');
    const again = await st.assign(inst.id, { epoch: 2 }, 'w3', {}, NOW + 3);
    assert.equal(again !== CONFLICT && again && [again.epoch, again.worker], [3, 'w3']);
    assert.equal(await byWorker(st, ['w1', 'w3']), { w1: [], w3: [inst.id] });
  });

  test('assign of a missing id -> undefined, and nothing is created', async (ctx) => {
    const st = s(ctx);
    assert.is(await st.assign('0'.repeat(24), { epoch: 0 }, 'w1', {}, NOW), undefined);
    assert.is(await st.getInstance('0'.repeat(24)), undefined);
    assert.equal(await st.listIds(), []);
    assert.equal(await byWorker(st, ['w1']), { w1: [] });
  });

  test('assign refuses an identity field with E_INTERNAL and writes nothing', async (ctx) => {
    const st = s(ctx);
    const inst = await created(st);
    const err = await st.assign(inst.id, { epoch: 0 }, 'w1', { team: 'x' } as never, NOW).then(() => undefined, (e: unknown) => e);
    assert.ok(isPoseidonError(err, 'E_INTERNAL'), `got ${String(err)}`);
    assert.equal(await st.getInstance(inst.id), inst);
    assert.equal(await byWorker(st, ['w1']), { w1: [] });
  });

  test('onChange fires after an assign', async (ctx) => {
    const st = s(ctx);
    const inst = await created(st);
    const { seen, stop } = await listenSettled(st, st);
    await st.assign(inst.id, { epoch: 0 }, 'w1', {}, NOW);
    await waitFor(() => count(seen, inst.id) >= 1, 3000, 'assign event');
    stop();
  });
}

function registerIndexes(test: Test, s: Get): void {
  test('deleteInstance removes it from its worker index (a re-created id is not listed there)', async (ctx) => {
    const st = s(ctx);
    const inst = await created(st);
    await st.assign(inst.id, { epoch: 0 }, 'w1', {}, NOW);
    await st.deleteInstance(inst.id);
    assert.equal(await byWorker(st, ['w1']), { w1: [] });
    // Same id again, unplaced: a stale `w1` index entry would list it under w1.
    await created(st, { id: inst.id });
    assert.equal(await byWorker(st, ['w1']), { w1: [] });
  });

  test('a move leaves no stale entry in the old index, even for a re-created id', async (ctx) => {
    const st = s(ctx);
    const inst = await created(st);
    await st.assign(inst.id, { epoch: 0 }, 'w1', {}, NOW);
    await st.assign(inst.id, { epoch: 1, worker: 'w1' }, 'w2', {}, NOW);
    await st.deleteInstance(inst.id);
    await created(st, { id: inst.id });
    assert.equal(await byWorker(st, ['w1', 'w2']), { w1: [], w2: [] });
  });

  for (const order of ['delete first', 'assign first'] as const) {
    test(`deleteInstance racing a re-assign (${order}) leaves no worker index entry`, async (ctx) => {
      const st = s(ctx);
      const inst = await created(st);
      await st.assign(inst.id, { epoch: 0 }, 'w1', {}, NOW);
      const move = (): Promise<unknown> => st.assign(inst.id, { epoch: 1, worker: 'w1' }, 'w2', {}, NOW + 1);
      const del = (): Promise<unknown> => st.deleteInstance(inst.id);
      // Issued in the same tick: with pipelining both reach the backend interleaved.
      await Promise.all(order === 'delete first' ? [del(), move()] : [move(), del()]);
      assert.is(await st.getInstance(inst.id), undefined);
      await created(st, { id: inst.id });
      assert.equal(await byWorker(st, ['w1', 'w2']), { w1: [], w2: [] });
    });
  }
}

/** Stores `inst` without an epoch: a raw hash on Redis (as written before placement existed), a create elsewhere. */
async function storeOld(st: Store, inst: Omit<Instance, 'epoch'>): Promise<void> {
  if (st instanceof RedisStore) await writeRawHash(st.prefix, inst);
  else assert.ok((await st.createInstance(inst as Instance, NOW)).created);
}

function registerOldRecords(test: Test, s: Get): void {
  test('a record written before placement existed (no epoch) reads as epoch 0 and can be placed', async (ctx) => {
    const st = s(ctx);
    const { epoch: _e, ...old } = makeInstance({ epoch: 0 });
    await storeOld(st, old);
    const want = { ...old, epoch: 0 };
    assert.equal(await st.getInstance(old.id), want);
    assert.equal(await st.listInstances({ team: old.team }), [want]);
    assert.equal(await byWorker(st, ['w1']), { w1: [] });
    const placed = await st.assign(old.id, { epoch: 0 }, 'w1', {}, NOW + 1);
    assert.equal(placed, { ...want, epoch: 1, worker: 'w1', placedAt: NOW + 1, updatedAt: NOW + 1 });
    assert.equal(await byWorker(st, ['w1']), { w1: [old.id] });
  });

  test('a record without an epoch matches compareAndUpdate expecting epoch 0 (as it reads)', async (ctx) => {
    const st = s(ctx);
    const { epoch: _e, ...old } = makeInstance({ epoch: 0 });
    await storeOld(st, old);
    assert.is(await st.compareAndUpdate(old.id, { epoch: 1 }, { status: 'running' }, NOW + 1), CONFLICT);
    const res = await st.compareAndUpdate(old.id, { epoch: 0 }, { status: 'running' }, NOW + 1);
    assert.equal(res, { ...old, epoch: 0, status: 'running', updatedAt: NOW + 1 });
  });

  test('re-assign to the same worker bumps the epoch and keeps it listed there once', async (ctx) => {
    const st = s(ctx);
    const inst = await created(st);
    await st.assign(inst.id, { epoch: 0 }, 'w1', {}, NOW);
    const again = await st.assign(inst.id, { epoch: 1, worker: 'w1' }, 'w1', {}, NOW + 1);
    assert.equal(again !== CONFLICT && again && [again.epoch, again.worker], [2, 'w1']);
    assert.equal(await byWorker(st, ['w1']), { w1: [inst.id] });
  });
}

/** Writes `inst` the way the Redis store did before placement: a plain hash plus its indexes. */
async function writeRawHash(prefix: string, inst: Omit<Instance, 'epoch'>): Promise<void> {
  const fields: Record<string, string> = {};
  for (const [k, v] of Object.entries(inst)) if (v !== undefined) fields[k] = k === 'endpoints' ? JSON.stringify(v) : String(v);
  assert.not.ok('epoch' in fields);
  const admin = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  try {
    await admin
      .multi()
      .hset(`${prefix}inst:${inst.id}`, fields)
      .sadd(`${prefix}ids`, inst.id)
      .sadd(`${prefix}team:${inst.team}`, inst.id)
      .sadd(`${prefix}challenge:${inst.challenge}`, inst.id)
      .exec();
  } finally {
    admin.disconnect();
  }
}
