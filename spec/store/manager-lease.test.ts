/**
 * The manager lease (issue 12) on both adapters, one contract: acquisition increments the
 * fencing token, renewals keep it, a live lease is not taken, an expired one is (with a higher
 * token), and fenced store writes with an older token are refused while the current one passes.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { isPoseidonError } from '../../src/core/errors.ts';
import type { ManagerLease } from '../../src/core/manager-lease.ts';
import type { Store } from '../../src/core/store.ts';
import { MemoryManagerLease } from '../../src/store/memory-manager-lease.ts';
import { MemoryStore } from '../../src/store/memory.ts';
import { RedisManagerLease } from '../../src/store/redis-manager-lease.ts';
import { RedisStore } from '../../src/store/redis.ts';
import { haveRedis, REDIS_URL } from '../helpers/deps.ts';
import { cleanupRedisPrefix } from '../helpers/redis.ts';
import { makeInstance, NOW } from './helpers.ts';

interface Rig { lease: ManagerLease; store: Store; close(): Promise<void> }

function contract(name: string, make: () => Promise<Rig>): void {
  const t = suite(`manager lease contract: ${name}`);
  let r: Rig;
  t.before.each(async () => { r = await make(); });
  t.after.each(async () => { await r.close(); });

  t('the first holder gets token 1; renewing keeps it; another replica gets 0 while it is live', async () => {
    assert.is(await r.lease.acquire('a', 5000), 1);
    assert.is(await r.lease.acquire('a', 5000), 1, 'acquire by the holder renews');
    assert.ok(await r.lease.renew('a', 1, 5000));
    assert.is(await r.lease.acquire('b', 5000), 0);
    assert.not.ok(await r.lease.renew('b', 1, 5000), 'only the holder renews');
    assert.not.ok(await r.lease.renew('a', 7, 5000), 'only with its own token');
    const s = await r.lease.state();
    assert.equal([s.holder, s.token], ['a', 1]);
  });

  t('an expired lease goes to the next replica with a higher token; the old holder cannot renew', async () => {
    assert.is(await r.lease.acquire('a', 150), 1);
    await sleep(400);
    assert.not.ok(await r.lease.renew('a', 1, 5000), 'too late');
    assert.is(await r.lease.acquire('b', 5000), 2);
    assert.is(await r.lease.acquire('a', 5000), 0);
  });

  t('release hands over at once; a release with a stale token does nothing', async () => {
    assert.is(await r.lease.acquire('a', 60_000), 1);
    await r.lease.release('a', 9);
    assert.is(await r.lease.acquire('b', 5000), 0);
    await r.lease.release('a', 1);
    assert.is(await r.lease.acquire('b', 5000), 2);
  });

  t('20 replicas racing for a free lease: exactly one wins', async () => {
    const tokens = await Promise.all(Array.from({ length: 20 }, (_, i) => r.lease.acquire(`r${i}`, 5000)));
    assert.is(tokens.filter((x) => x > 0).length, 1);
  });

  t('fenced writes: the current token writes, an older one is refused (E_FENCED) and writes nothing', async () => {
    const inst = makeInstance({ team: 'fence' });
    await r.store.createInstance(inst, NOW);
    assert.is(await r.lease.acquire('a', 100), 1);
    await sleep(300);
    assert.is(await r.lease.acquire('b', 5000), 2);
    const stale = { token: 1 };
    const refused = async (what: string, p: Promise<unknown>) => {
      try {
        await p;
        assert.unreachable(`${what} with a stale token was accepted`);
      } catch (err) {
        assert.ok(isPoseidonError(err, 'E_FENCED'), `${what}: ${String(err)}`);
      }
    };
    await refused('assign', r.store.assign(inst.id, { epoch: 0 }, 'w1', {}, NOW, stale));
    await refused('compareAndUpdate', r.store.compareAndUpdate(inst.id, { epoch: 0 }, { status: 'failed' }, NOW, stale));
    await refused('updateInstance', r.store.updateInstance(inst.id, { status: 'failed' }, NOW, stale));
    await refused('deleteInstance', r.store.deleteInstance(inst.id, stale));
    const after = await r.store.getInstance(inst.id);
    assert.equal([after?.status, after?.worker, after?.epoch], ['pending', undefined, 0], 'nothing was written');
    const placed = await r.store.assign(inst.id, { epoch: 0 }, 'w1', {}, NOW, { token: 2 });
    assert.ok(placed && placed !== 'conflict' && placed.worker === 'w1', 'the current token writes');
    assert.ok(await r.store.updateInstance(inst.id, { reason: 'api writes carry no fence' }, NOW), 'unfenced writes are not affected');
  });

  t.run();
}

contract('memory', async () => {
  const lease = new MemoryManagerLease();
  const store = new MemoryStore();
  store.useFence(() => lease.fence());
  return { lease, store, close: async () => { await store.close(); } };
});

if (haveRedis()) {
  contract('redis', async () => {
    const prefix = `poseidon-test-lease-${randomBytes(5).toString('hex')}:`;
    const lease = new RedisManagerLease({ url: REDIS_URL, prefix });
    const store = new RedisStore({ url: REDIS_URL, prefix });
    return {
      lease, store,
      async close() {
        await lease.close();
        await store.close();
        await cleanupRedisPrefix(prefix);
      },
    };
  });
}
