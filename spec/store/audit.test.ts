/**
 * The audit trail contract against the in-memory ring and Redis (two clients: two replicas), and
 * what only Redis does: the trail outlives its clients (a restart), and an unreachable Redis
 * rejects with E_STORE without showing its password.
 */
import { randomBytes } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { isPoseidonError } from '../../src/core/errors.ts';
import { MemoryAuditTrail } from '../../src/status/audit.ts';
import { RedisAuditTrail } from '../../src/store/redis-audit.ts';
import { haveRedis, REDIS_URL } from '../helpers/deps.ts';
import { cleanupRedisPrefix } from '../helpers/redis.ts';
import { auditContract, entry, SIZE } from './audit-contract.ts';

auditContract('memory', async () => {
  const trail = new MemoryAuditTrail(SIZE);
  return { trail, other: trail, scope: 'process', cleanup: () => trail.close() };
});

const prefix = (): string => `poseidon-test-${randomBytes(6).toString('hex')}:`;

if (haveRedis()) {
  auditContract('redis', async () => {
    const p = prefix();
    const trail = new RedisAuditTrail({ url: REDIS_URL, prefix: p, size: SIZE });
    const other = new RedisAuditTrail({ url: REDIS_URL, prefix: p, size: SIZE });
    return {
      trail, other, scope: 'shared',
      cleanup: async () => {
        await trail.close();
        await other.close();
        await cleanupRedisPrefix(p);
      },
    };
  });

  test('redis: the trail survives its clients (a restart), and prefixes keep deployments apart', async () => {
    const p = prefix();
    const first = new RedisAuditTrail({ url: REDIS_URL, prefix: p });
    const elsewhere = new RedisAuditTrail({ url: REDIS_URL, prefix: prefix() });
    try {
      await first.append(entry(1));
      await first.append(entry(2));
      await first.close();
      const again = new RedisAuditTrail({ url: REDIS_URL, prefix: p });
      assert.equal((await again.list()).map((e) => e.who), ['k2', 'k1']);
      await again.close();
      assert.equal(await elsewhere.list(), []);
    } finally {
      await elsewhere.close();
      await cleanupRedisPrefix(p);
    }
  });
}

test('an unreachable Redis rejects append and list with E_STORE and never shows its password', async () => {
  const trail = new RedisAuditTrail({ url: 'redis://:s3cret-pw@127.0.0.1:1', prefix: 'x:' });
  try {
    for (const call of [() => trail.append(entry(1)), () => trail.list()]) {
      await call().then(() => assert.unreachable('resolved'), (err: unknown) => {
        if (err instanceof assert.Assertion) throw err;
        assert.ok(isPoseidonError(err, 'E_STORE'), String(err));
        assert.match((err as Error).message, /audit trail/);
        assert.not.ok((err as Error).message.includes('s3cret-pw'));
      });
    }
  } finally {
    await trail.close();
  }
});

test.run();
