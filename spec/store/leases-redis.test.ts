/** The lease contract against real Redis (two clients: two processes' worth), and its failure mode. */
import { randomBytes } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { isPoseidonError } from '../../src/core/errors.ts';
import { parsePortRange } from '../../src/core/leases.ts';
import { RedisLeaseStore } from '../../src/store/redis-leases.ts';
import { haveRedis, REDIS_URL } from '../helpers/deps.ts';
import { cleanupRedisPrefix } from '../helpers/redis.ts';
import { inst, leaseContract } from './leases-contract.ts';

if (haveRedis()) {
  leaseContract('redis', async () => {
    const prefix = `poseidon-test-${randomBytes(6).toString('hex')}:`;
    const store = new RedisLeaseStore({ url: REDIS_URL, prefix });
    const other = new RedisLeaseStore({ url: REDIS_URL, prefix });
    return {
      store, other,
      cleanup: async () => {
        await store.close();
        await other.close();
        await cleanupRedisPrefix(prefix);
      },
    };
  });
}

test('an unreachable Redis rejects with E_STORE and never shows its password', async () => {
  const store = new RedisLeaseStore({ url: 'redis://:s3cret-pw@127.0.0.1:1', prefix: 'x:' });
  try {
    await store.acquire(inst(1), ['p'], { lo: 30000, hi: 30001 }, 0);
    assert.unreachable('resolved');
  } catch (err) {
    if (err instanceof assert.Assertion) throw err;
    assert.ok(isPoseidonError(err, 'E_STORE'), String(err));
    assert.not.ok(String((err as Error).message).includes('s3cret-pw'));
  } finally {
    await store.close();
  }
});

test('port ranges parse strictly', () => {
  assert.equal(parsePortRange('30000-30999'), { lo: 30000, hi: 30999 });
  assert.equal(parsePortRange('31337'), { lo: 31337, hi: 31337 });
  for (const bad of ['', '0-10', '30000-29999', '1-70000', 'a-b', '30000-', '-1', '1,2']) assert.throws(() => parsePortRange(bad), bad);
});

test.run();
