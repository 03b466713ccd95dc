/**
 * The store contract against real Redis, plus what only the Redis adapter has: failure when
 * Redis is unreachable, cross-process change events, the key layout, and reconnection.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { inspect } from 'node:util';
import { Redis } from 'ioredis';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { isPoseidonError } from '../../src/core/errors.ts';
import type { Instance } from '../../src/core/instance.ts';
import { openStore } from '../../src/store/open.ts';
import { RedisStore } from '../../src/store/redis.ts';
import { redisKeys } from '../../src/store/redis-layout.ts';
import { withScripts } from '../../src/store/redis-scripts.ts';
import { haveRedis, REDIS_URL } from '../helpers/deps.ts';
import { storeContract } from './contract.ts';
import { count, listenSettled, makeInstance, NOW, waitFor } from './helpers.ts';

const DEAD_URL = 'redis://:s3cret@127.0.0.1:1';

/**
 * A fresh test prefix; everything under it is removed by `dropPrefix`. Hash-tagged, as a Redis
 * Cluster deployment's prefix must be: spec/store/redis-keys.test.ts runs this file on a Cluster node.
 */
function testPrefix(): string {
  return `{poseidon-test-${randomBytes(6).toString('hex')}}:`;
}

/** Deletes every key under `prefix` (SCAN, bounded) with a connection of its own. */
async function dropPrefix(prefix: string): Promise<void> {
  const admin = new Redis(REDIS_URL, { maxRetriesPerRequest: 1, connectTimeout: 2000 });
  try {
    let cursor = '0';
    for (let round = 0; round < 10_000; round++) {
      const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      if (keys.length > 0) await admin.del(...keys);
      cursor = next;
      if (cursor === '0') break;
    }
  } finally {
    admin.disconnect();
  }
}

/** Asserts `run` rejects with E_STORE within `ms`, leaking no password; returns the error. */
async function failsFast(run: () => Promise<unknown>, ms: number): Promise<void> {
  const started = Date.now();
  const err = await run().then(() => undefined, (e: unknown) => e);
  assert.ok(isPoseidonError(err, 'E_STORE'), `expected E_STORE, got ${String(err)}`);
  assert.ok(Date.now() - started < ms, `took ${Date.now() - started} ms`);
  assert.not.match(inspect(err, { depth: 5 }), 's3cret');
}

// Needs no Redis: nothing listens on port 1.
const dead = suite('redis store: unreachable');
dead('openStore rejects with E_STORE within 3 s, password redacted', async () => {
  await failsFast(() => openStore({ redisUrl: DEAD_URL }), 3000);
  const err = await openStore({ redisUrl: DEAD_URL }).catch((e: Error) => e);
  assert.match((err as Error).message, 'redis://:***@127.0.0.1:1');
});
dead('calls on an unreachable RedisStore reject with E_STORE within 3 s', async () => {
  const store = new RedisStore({ url: DEAD_URL, prefix: testPrefix() });
  try {
    await failsFast(() => store.getInstance('x'), 3000);
    await failsFast(() => store.createInstance(makeInstance(), NOW), 3000);
    await failsFast(() => store.listInstances(), 3000);
  } finally {
    await store.close();
  }
});
dead.run();

if (haveRedis()) {
  storeContract('redis', async () => {
    const prefix = testPrefix();
    const store = new RedisStore({ url: REDIS_URL, prefix });
    return {
      store,
      cleanup: async () => {
        await store.close();
        await dropPrefix(prefix);
      },
    };
  });
  redisOnly();
}

interface Ctx {
  prefix: string;
  stores: RedisStore[];
  open(prefix?: string): RedisStore;
}

function redisOnly(): void {
  const test = suite<Ctx>('redis store: redis only', { prefix: '', stores: [], open: () => undefined as never });
  test.before.each((ctx) => {
    ctx.prefix = testPrefix();
    ctx.stores = [];
    ctx.open = (prefix = ctx.prefix) => {
      const store = new RedisStore({ url: REDIS_URL, prefix });
      ctx.stores.push(store);
      return store;
    };
  });
  test.after.each(async (ctx) => {
    await Promise.all(ctx.stores.splice(0).map((store) => store.close()));
    await dropPrefix(ctx.prefix);
  });

  test('a second RedisStore on the same prefix sees the first one\'s changes', async (ctx) => {
    const [writer, watcher, stranger] = [ctx.open(), ctx.open(), ctx.open(testPrefix())];
    const { seen } = await listenSettled(watcher, writer);
    const strangerSeen: string[] = [];
    stranger.onChange((id) => strangerSeen.push(id));
    const inst = makeInstance();
    await writer.createInstance(inst, NOW);
    await waitFor(() => count(seen, inst.id) === 1, 2000, 'create event in the other store');
    await writer.updateInstance(inst.id, { status: 'running' }, NOW);
    await writer.deleteInstance(inst.id);
    await waitFor(() => count(seen, inst.id) === 3, 2000, 'update and delete events');
    assert.is(count(strangerSeen, inst.id), 0, 'another prefix hears nothing');
  });

  test('key layout: escaped index keys, string fields, absent optionals omitted', async (ctx) => {
    const store = ctx.open();
    const inst = makeInstance({ team: 'a:b%', owner: 'team:a:b%', challenge: 'web' });
    await store.createInstance(inst, NOW);
    const admin = new Redis(REDIS_URL);
    try {
      const keys = (await admin.keys(`${ctx.prefix}*`)).map((k) => k.slice(ctx.prefix.length)).sort();
      assert.equal(keys, ['admitted-by-expiry', 'challenge:web', 'ids', `inst:${inst.id}`, 'schema', 'slot:team%3Aa%3Ab%25:web', 'team-live:a%3Ab%25', 'team:a%3Ab%25']);
      assert.equal(await admin.zrange(`${ctx.prefix}admitted-by-expiry`, 0, -1, 'WITHSCORES'), [inst.id, String(inst.expiresAt)]);
      assert.is(await admin.get(`${ctx.prefix}schema`), '2');
      const hash = await admin.hgetall(`${ctx.prefix}inst:${inst.id}`);
      assert.is(hash.endpoints, '[]');
      assert.is(hash.createdAt, String(NOW));
      assert.equal(['user', 'reason', 'finishedAt'].filter((f) => f in hash), []);
      assert.is(await admin.get(`${ctx.prefix}slot:team%3Aa%3Ab%25:web`), inst.id);
    } finally {
      admin.disconnect();
    }
  });

  test('records stored before the zset indexes are indexed once, before the first count', async (ctx) => {
    const p = ctx.prefix;
    const admitted = makeInstance({ team: 'old-a' });
    const expired = makeInstance({ team: 'old-e', expiresAt: NOW - 1 });
    const waiting = makeInstance({ team: 'old-w', status: 'queued' });
    const cancelled = makeInstance({ team: 'old-c', status: 'queued', desired: 'stopped' });
    const admin = new Redis(REDIS_URL);
    try {
      const write = admin.multi();
      for (const inst of [admitted, expired, waiting, cancelled]) {
        write.hset(`${p}inst:${inst.id}`, rawFields(inst)).sadd(`${p}ids`, inst.id).sadd(`${p}team:${inst.team}`, inst.id);
      }
      // The schema-1 layout: a set of admitted ids pruned lazily, a queue that kept dead entries.
      write.sadd(`${p}admitted`, admitted.id, expired.id).zadd(`${p}queue`, 1, waiting.id, 2, cancelled.id).set(`${p}queue-seq`, 2);
      await write.exec();
      const store = ctx.open();
      assert.is(await store.countAdmitted(NOW), 1);
      assert.equal(await store.queuedIds(), [waiting.id]);
      assert.is(await store.admittedExpiry(1, NOW), admitted.expiresAt);
      assert.equal([await admin.get(`${p}schema`), await admin.exists(`${p}admitted`)], ['2', 0]);
      assert.equal(await admin.zrange(`${p}team-live:old-w`, 0, -1, 'WITHSCORES'), [waiting.id, 'inf']);
      const refused = await store.createInstance(makeInstance({ team: 'old-a', challenge: 'other' }), NOW, { teamLimit: 1 });
      assert.ok(!refused.created && refused.reason === 'team-limit' && refused.existing.id === admitted.id);
      assert.is(await store.admit(waiting.id, NOW, 2, { expiresAt: NOW + 10, maxExpiresAt: NOW + 20 }), 'admitted');
    } finally {
      admin.disconnect();
    }
  });

  test('a write naming another team than the record\'s writes nothing and answers retry', async (ctx) => {
    const store = ctx.open();
    const inst = makeInstance({ team: 'red' });
    await store.createInstance(inst, NOW);
    // What a write would send had the record been replaced under another team since its team read.
    const raw = withScripts(new Redis(REDIS_URL));
    try {
      const k = redisKeys(ctx.prefix);
      const index = [k.inst(inst.id), k.admitted, k.queue, k.queueSeq, k.teamLive('blue')];
      const reply = await raw.poseidonUpdate(...index, k.fence, '', k.changes, inst.id, 'blue', 2, 'desired', 'stopped');
      assert.is(reply, 'retry');
      assert.equal(await store.getInstance(inst.id), inst);
      assert.equal(await raw.zrange(k.teamLive('red'), 0, -1), [inst.id]);
      assert.is(await raw.exists(k.teamLive('blue')), 0);
    } finally {
      raw.disconnect();
    }
  });

  test('listInstances skips an id whose hash vanished', async (ctx) => {
    const store = ctx.open();
    const [a, b] = [makeInstance({ team: 'x', owner: 'team:x' }), makeInstance({ team: 'y', owner: 'team:y' })];
    await store.createInstance(a, NOW);
    await store.createInstance(b, NOW);
    const admin = new Redis(REDIS_URL);
    await admin.del(`${ctx.prefix}inst:${a.id}`).finally(() => admin.disconnect());
    assert.equal((await store.listInstances()).map((i) => i.id), [b.id]);
  });

  test.run();
  reconnectSuite();
}

/** `inst` as hash fields, the way the store writes them. */
function rawFields(inst: Instance): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(inst)) if (v !== undefined) out[k] = k === 'endpoints' ? JSON.stringify(v) : String(v);
  return out;
}

/** A port nothing listens on right now. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** Starts a throwaway redis-server (no persistence) and resolves once it answers. */
async function startRedis(port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  });
  const probe = new Redis({ port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on('error', () => {});
  child.on('error', () => {}); // e.g. no redis-server binary: reported below as "did not answer"
  try {
    for (let i = 0; i < 50; i++) {
      if (await probe.connect().then(() => true, () => false)) return child;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`redis-server on ${port} did not answer`);
  } finally {
    probe.disconnect();
  }
}

function reconnectSuite(): void {
  const test = suite<{ child?: ChildProcess }>('redis store: outage', {});
  test.after.each((ctx) => {
    if (ctx.child && ctx.child.exitCode === null) ctx.child.kill('SIGKILL');
  });

  test('fails fast while Redis is down; commands and change events recover by themselves', async (ctx) => {
    const port = await freePort();
    ctx.child = await startRedis(port);
    const store = new RedisStore({ url: `redis://127.0.0.1:${port}`, prefix: 'poseidon-test-outage:' });
    try {
      const { seen } = await listenSettled(store, store);
      const inst = makeInstance();
      assert.ok((await store.createInstance(inst, NOW)).created);
      const exited = new Promise((resolve) => ctx.child!.once('exit', resolve));
      ctx.child.kill('SIGKILL');
      await exited;
      await failsFast(() => store.getInstance(inst.id), 3000);
      ctx.child = await startRedis(port);
      let back = false;
      for (let i = 0; i < 50 && !back; i++) {
        back = await store.listIds().then(() => true, () => false);
        if (!back) await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.ok(back, 'store did not recover within ~5 s');
      // The subscriber resubscribes by itself; Redis lost everything (no persistence), so write anew.
      const again = makeInstance();
      await store.createInstance(again, NOW);
      for (let i = 0; i < 40 && count(seen, again.id) === 0; i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        await store.updateInstance(again.id, { renewals: i }, NOW);
      }
      assert.ok(count(seen, again.id) > 0, 'no change events after the outage');
    } finally {
      await store.close();
    }
  });

  test.run();
}
