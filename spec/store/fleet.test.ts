/**
 * The fleet contract against the in-memory adapter and against the real Redis (a unique key
 * prefix per case, removed afterwards), plus what only the Redis adapter has: several processes
 * sharing one registry, prefix isolation, and failing fast when Redis is unreachable.
 */
import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { Redis } from 'ioredis';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { isPoseidonError } from '../../src/core/errors.ts';
import { MemoryFleet } from '../../src/store/memory-fleet.ts';
import { RedisFleet } from '../../src/store/redis-fleet.ts';
import { haveRedis, REDIS_URL } from '../helpers/deps.ts';
import { cleanupRedisPrefix } from '../helpers/redis.ts';
import { fleetContract, workerRecord } from './fleet-contract.ts';
import { waitFor } from './helpers.ts';

/** A fresh prefix for one case; `cleanupRedisPrefix` removes everything under it. */
function testPrefix(): string {
  return `poseidon-test-fleet-${randomBytes(6).toString('hex')}:`;
}

/** The Redis server's clock (TIME), epoch ms, as the adapter computes it. */
async function redisClock(admin: Redis): Promise<number> {
  const [s, us] = await admin.time();
  return Number(s) * 1000 + Math.floor(Number(us) / 1000);
}

// The memory registry's clock is injected and far from the wall clock, so a stamp taken from
// Date.now() instead of the registry clock cannot pass.
fleetContract('memory', async () => {
  let t = 1_600_000_000_000;
  const fleet = new MemoryFleet(() => ++t);
  return { fleet, clock: async () => t, cleanup: () => fleet.close() };
});

if (haveRedis()) {
  fleetContract('redis', async () => {
    const prefix = testPrefix();
    const fleet = new RedisFleet({ url: REDIS_URL, prefix });
    const admin = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    return {
      fleet,
      clock: () => redisClock(admin),
      cleanup: async () => {
        await fleet.close();
        admin.disconnect();
        await cleanupRedisPrefix(prefix);
      },
    };
  });
  redisOnly();
}

interface Ctx {
  prefixes: string[];
  fleets: RedisFleet[];
  open(prefix: string): RedisFleet;
}

function redisOnly(): void {
  const test = suite<Ctx>('redis fleet: redis only', { prefixes: [], fleets: [], open: () => undefined as never });
  test.before.each((ctx) => {
    ctx.prefixes = [];
    ctx.fleets = [];
    ctx.open = (prefix) => {
      if (!ctx.prefixes.includes(prefix)) ctx.prefixes.push(prefix);
      const fleet = new RedisFleet({ url: REDIS_URL, prefix });
      ctx.fleets.push(fleet);
      return fleet;
    };
  });
  test.after.each(async (ctx) => {
    await Promise.all(ctx.fleets.splice(0).map((f) => f.close()));
    for (const p of ctx.prefixes.splice(0)) await cleanupRedisPrefix(p);
  });

  test('a second RedisFleet on the same prefix shares workers, admin states and events; another prefix sees nothing', async (ctx) => {
    const prefix = testPrefix();
    const [worker, manager, stranger] = [ctx.open(prefix), ctx.open(prefix), ctx.open(testPrefix())];
    let heard = 0;
    let strangerHeard = 0;
    manager.onChange(() => {
      heard += 1;
    });
    stranger.onChange(() => {
      strangerHeard += 1;
    });
    // Wait until the manager's subscription is live (forget of an unknown id is a change).
    for (let i = 0; i < 30 && heard === 0; i++) {
      await worker.forget('probe');
      await waitFor(() => heard > 0, 100, 'probe').catch(() => undefined);
    }
    assert.ok(heard > 0, 'subscription never became active');
    const h0 = heard;
    const stored = await worker.heartbeat(workerRecord('w1'));
    await waitFor(() => heard > h0, 3000, 'registration heard by the manager');
    assert.equal((await manager.list()).workers, [{ record: stored, admin: 'active', launchOverride: {} }]);
    assert.is(await manager.setAdmin('w1', 'draining'), true);
    await worker.heartbeat(workerRecord('w1'));
    assert.equal((await worker.list()).workers.map((w) => w.admin), ['draining'], 'the worker\'s heartbeat kept the manager\'s state');
    assert.is(await manager.shared('deployment', 'from-manager'), 'from-manager');
    assert.is(await worker.shared('deployment', 'from-worker'), 'from-manager');
    assert.equal((await stranger.list()).workers, []);
    assert.is(await stranger.shared('deployment', 'other'), 'other');
    assert.is(strangerHeard, 0, 'another prefix hears nothing');
  });

  test('key layout: everything lives under <prefix>fleet:, the shared values included', async (ctx) => {
    const prefix = testPrefix();
    const fleet = ctx.open(prefix);
    await fleet.heartbeat(workerRecord('w:1'));
    await fleet.reportImages('w:1', { 'reg/web:1': { state: 'present' } });
    await fleet.shared('edge-secret', 's');
    const admin = new Redis(REDIS_URL);
    try {
      const keys = (await admin.keys(`${prefix}*`)).map((k) => k.slice(prefix.length)).sort();
      assert.equal(keys, ['fleet:images:w:1', 'fleet:shared:edge-secret', 'fleet:worker:w:1', 'fleet:workers']);
      const hash = await admin.hgetall(`${prefix}fleet:worker:w:1`);
      assert.equal(Object.keys(hash).sort(), ['admin', 'hb', 'record', 'sig']);
      assert.not.ok('heartbeatAt' in JSON.parse(hash.record!), 'the heartbeat is not part of the record');
      await fleet.forget('w:1');
      const left = (await admin.keys(`${prefix}*`)).map((k) => k.slice(prefix.length));
      assert.equal(left, ['fleet:shared:edge-secret'], 'forget leaves only the shared values');
    } finally {
      admin.disconnect();
    }
  });

  test.run();

  const dead = suite('redis fleet: unreachable');
  dead('calls reject with E_STORE (transient) within 3 s, password redacted', async () => {
    const fleet = new RedisFleet({ url: 'redis://:s3cret@127.0.0.1:1', prefix: testPrefix() });
    try {
      for (const call of [() => fleet.heartbeat(workerRecord('w1')), () => fleet.list(), () => fleet.shared('deployment', 'x')]) {
        const started = Date.now();
        const err = await call().then(() => undefined, (e: unknown) => e);
        assert.ok(isPoseidonError(err, 'E_STORE'), `expected E_STORE, got ${String(err)}`);
        assert.is(err.kind, 'transient');
        assert.ok(Date.now() - started < 3000, `took ${Date.now() - started} ms`);
        assert.not.match(inspect(err, { depth: 5 }), 's3cret');
      }
    } finally {
      await fleet.close();
    }
  });
  dead.run();
}
