/** The lease contract against the in-memory adapter, and its closed state. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { isPoseidonError } from '../../src/core/errors.ts';
import { MemoryLeaseStore } from '../../src/store/memory-leases.ts';
import { inst, leaseContract } from './leases-contract.ts';

leaseContract('memory', async () => {
  const store = new MemoryLeaseStore();
  return { store, other: store, cleanup: () => store.close() };
});

test('a closed memory lease store rejects with E_STORE', async () => {
  const store = new MemoryLeaseStore();
  await store.close();
  for (const call of [() => store.acquire(inst(1), ['p'], { lo: 1, hi: 2 }, 0), () => store.release(inst(1)), () => store.list()]) {
    await call().then(() => assert.unreachable('resolved'), (err: unknown) => assert.ok(isPoseidonError(err, 'E_STORE')));
  }
});

test.run();
