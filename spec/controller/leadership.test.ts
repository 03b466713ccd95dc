/**
 * Leader election (issue 12): one leader at a time; a leader that cannot renew steps down
 * before its lease can be taken; a stopped leader hands over at once; the deposed one rejoins
 * as a follower. Conditions are awaited with generous bounds, never timed.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Leadership } from '../../src/controller/leadership.ts';
import type { ManagerLease } from '../../src/core/manager-lease.ts';
import { MemoryManagerLease } from '../../src/store/memory-manager-lease.ts';
import { memoryLogger } from '../helpers/log.ts';
import { waitFor } from '../helpers/server.ts';

const t = suite('controller: leadership');

function replica(lease: ManagerLease, id: string, timing = { leaseMs: 600, renewDeadlineMs: 400, retryMs: 50 }) {
  const terms: number[] = [];
  let leading = false;
  const l = new Leadership({
    lease, id, ...timing, log: memoryLogger(),
    onElected: async (token) => { leading = true; terms.push(token); },
    onDeposed: async () => { leading = false; },
  });
  return { l, terms, leading: () => leading };
}

t('a lone replica leads as soon as it starts; a second one follows', async () => {
  const lease = new MemoryManagerLease();
  const a = replica(lease, 'a');
  const b = replica(lease, 'b');
  await a.l.start();
  assert.ok(a.leading() && a.l.token === 1);
  await b.l.start();
  assert.not.ok(b.leading());
  await a.l.stop();
  await b.l.stop();
});

t('a stopped leader hands over at once, with a higher token', async () => {
  const lease = new MemoryManagerLease();
  const a = replica(lease, 'a');
  const b = replica(lease, 'b');
  await a.l.start();
  await b.l.start();
  await a.l.stop();
  await waitFor('b leads', async () => (b.leading() ? true : undefined), 30_000, 20);
  assert.is(b.l.token, 2);
  await b.l.stop();
});

t('a leader that cannot renew steps down by its deadline; another takes over after the lease; the deposed one follows', async () => {
  const inner = new MemoryManagerLease();
  let partitioned = false;
  // A replica cut off from the lease store: its calls fail (as they would with Redis unreachable).
  const cut: ManagerLease = {
    acquire: (h, ms) => (partitioned ? Promise.reject(new Error('unreachable')) : inner.acquire(h, ms)),
    renew: (h, t, ms) => (partitioned ? Promise.reject(new Error('unreachable')) : inner.renew(h, t, ms)),
    release: (h, t) => inner.release(h, t),
    state: () => (partitioned ? Promise.reject(new Error('unreachable')) : inner.state()),
  };
  const a = replica(cut, 'a');
  const b = replica(inner, 'b');
  await a.l.start();
  await b.l.start();
  assert.ok(a.leading());
  partitioned = true;
  await waitFor('a steps down', async () => (a.leading() ? undefined : true), 30_000, 20);
  assert.not.ok(b.leading(), 'a stepped down before its lease ran out: nobody leads in between');
  await waitFor('b leads', async () => (b.leading() ? true : undefined), 30_000, 20);
  assert.is(b.l.token, 2);
  partitioned = false;
  await new Promise((r) => setTimeout(r, 300));
  assert.not.ok(a.leading(), 'the deposed replica rejoins as a follower');
  assert.equal(a.terms, [1]);
  await a.l.stop();
  await b.l.stop();
});

t('a renew deadline not shorter than the lease is refused', () => {
  assert.throws(() => replica(new MemoryManagerLease(), 'x', { leaseMs: 500, renewDeadlineMs: 500, retryMs: 50 }), /shorter/);
});

t.run();
