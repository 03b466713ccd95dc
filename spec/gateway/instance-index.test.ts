/** The in-memory instance view behind forward-auth and the page: feeds, races and fallbacks. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Instance } from '../../src/core/instance.ts';
import { hostPrefix } from '../../src/core/naming.ts';
import type { Store } from '../../src/core/store.ts';
import { InstanceIndex } from '../../src/gateway/instance-index.ts';
import { MemoryStore } from '../../src/store/memory.ts';
import { memoryLogger } from '../helpers/log.ts';
import { waitFor } from '../helpers/server.ts';

const NOW = Date.now();
function inst(n: number, patch: Partial<Instance> = {}): Instance {
  const id = n.toString(16).padStart(24, '0');
  return {
    id, challenge: 'web', team: `t${n}`, owner: `team:t${n}`, generation: 1, epoch: 0, desired: 'running', status: 'running', hostname: 'x',
    endpoints: [], specHash: 'h', createdAt: NOW, updatedAt: NOW, expiresAt: NOW + 60_000, maxExpiresAt: NOW + 120_000, renewals: 0, ...patch,
  };
}

/** A store whose reads are counted (and whose listing can be held back to stage races). */
function counted(store: MemoryStore) {
  const calls = { get: 0, list: 0 };
  let gate: Promise<void> | undefined;
  const wrapped = Object.create(store) as Store;
  wrapped.getInstance = async (id) => { calls.get++; return store.getInstance(id); };
  wrapped.listInstances = async (f) => { calls.list++; const l = await store.listInstances(f); await gate; return l; };
  wrapped.onChange = (l) => store.onChange(l);
  return { store: wrapped, calls, hold(p: Promise<void>) { gate = p; }, release() { gate = undefined; } };
}

test('loads at start, then follows creates, updates and deletes by change notification', async () => {
  const mem = new MemoryStore();
  await mem.createInstance(inst(1), NOW);
  const index = new InstanceIndex(mem, { refreshMs: 60_000, log: memoryLogger() });
  await index.start();
  try {
    assert.is(index.byId(inst(1).id)?.team, 't1');
    assert.is(index.byHost(hostPrefix(inst(1).id), 'web')?.id, inst(1).id);
    assert.is(index.byHost(hostPrefix(inst(1).id), 'other'), undefined);
    await mem.createInstance(inst(2), NOW);
    await waitFor('created', async () => index.byId(inst(2).id));
    await mem.updateInstance(inst(2).id, { desired: 'stopped', status: 'stopping' }, NOW + 1);
    await waitFor('updated', async () => (index.byId(inst(2).id)?.desired === 'stopped' ? true : undefined));
    await mem.deleteInstance(inst(2).id);
    await waitFor('deleted', async () => (index.byId(inst(2).id) ? undefined : true));
    assert.is(index.byHost(hostPrefix(inst(2).id), 'web'), undefined);
  } finally {
    index.stop();
  }
});

test('an older record never replaces a newer one', () => {
  const index = new InstanceIndex(new MemoryStore(), { refreshMs: 60_000, log: memoryLogger() });
  index.put(inst(3, { updatedAt: NOW + 10, status: 'running' }));
  index.put(inst(3, { updatedAt: NOW + 5, status: 'starting' }));
  assert.is(index.byId(inst(3).id)?.status, 'running');
});

test('a move written with a clock read before another write still replaces the held copy (no ghost on the old worker)', async () => {
  const mem = new MemoryStore();
  const index = new InstanceIndex(mem, { refreshMs: 60_000, log: memoryLogger() });
  const one = inst(7, { worker: 'w3', epoch: 1 });
  await mem.createInstance(one, NOW);
  await index.start();
  try {
    // The placement pass read its clock, then waited its turn; meanwhile the old worker wrote.
    const placementClock = NOW + 10;
    await mem.updateInstance(one.id, { reason: 'health check failing' }, NOW + 500);
    await waitFor('the worker\'s write seen', async () => (index.byId(one.id)?.reason ? true : undefined), 10_000, 10);
    const moved = await mem.assign(one.id, { epoch: 1, worker: 'w3' }, 'w1', { status: 'pending', reason: 'moved' }, placementClock);
    assert.ok(moved && typeof moved === 'object');
    index.put(moved);
    await waitFor('the move seen', async () => (index.byId(one.id)?.worker === 'w1' ? true : undefined), 10_000, 10);
    await index.refresh();
    assert.equal([index.byId(one.id)?.worker, index.byId(one.id)?.epoch], ['w1', 2], 'a full refresh keeps the move too');
  } finally {
    index.stop();
  }
});

test('a refresh that listed before a delete does not resurrect it; one that listed before a create keeps it', async () => {
  const mem = new MemoryStore();
  await mem.createInstance(inst(4), NOW);
  const c = counted(mem);
  const index = new InstanceIndex(c.store, { refreshMs: 60_000, log: memoryLogger() });
  await index.start();
  try {
    let open!: () => void;
    c.hold(new Promise<void>((r) => { open = r; }));
    const refreshing = index.refresh();
    await new Promise((r) => setTimeout(r, 10));
    await mem.deleteInstance(inst(4).id);
    await mem.createInstance(inst(5), NOW);
    await waitFor('changes seen', async () => (index.byId(inst(5).id) && !index.byId(inst(4).id) ? true : undefined));
    c.release();
    open();
    await refreshing;
    assert.is(index.byId(inst(4).id), undefined, 'deleted stays deleted');
    assert.ok(index.byId(inst(5).id), 'created stays');
  } finally {
    index.stop();
  }
});

test('resolve reads the store once for an unknown id and remembers the answer briefly', async () => {
  const mem = new MemoryStore();
  const c = counted(mem);
  let now = NOW;
  const index = new InstanceIndex(c.store, { refreshMs: 60_000, log: memoryLogger(), negativeMs: 1000, now: () => now });
  const missing = inst(6).id;
  for (let i = 0; i < 20; i++) assert.is(await index.resolve(missing), undefined);
  assert.is(c.calls.get, 1);
  now += 1001;
  await index.resolve(missing);
  assert.is(c.calls.get, 2);
  await mem.createInstance(inst(7), NOW);
  assert.is((await index.resolve(inst(7).id))?.id, inst(7).id);
  assert.ok(index.byId(inst(7).id), 'found ids are kept');
});

test('a creation arrives with its record: no read, announced in order; other changes are read', async () => {
  const mem = new MemoryStore();
  const c = counted(mem);
  const index = new InstanceIndex(c.store, { refreshMs: 60_000, log: memoryLogger() });
  await index.start();
  const announced: string[] = [];
  index.onUpdate((id, i) => announced.push(`${id}:${i?.status ?? 'gone'}`));
  try {
    // As the API does: create, then put what it wrote.
    const own = inst(7, { status: 'pending' });
    const created = await mem.createInstance(own, NOW);
    assert.ok(created.created);
    index.put(created.instance);
    // Another writer's creation: held from its notification alone.
    const other = inst(8, { status: 'pending' });
    await mem.createInstance(other, NOW);
    await waitFor('both creations announced', async () => (announced.includes(`${own.id}:pending`) && announced.includes(`${other.id}:pending`) ? true : undefined), 30_000);
    assert.is(index.byId(other.id)?.team, 't8');
    assert.is(c.calls.get, 0, 'no read for a creation');
    // An update: read (the notification says only which record).
    await mem.updateInstance(own.id, { status: 'running' }, NOW + 1);
    await waitFor('update read', async () => (index.byId(own.id)?.status === 'running' ? true : undefined), 30_000);
    assert.is(c.calls.get, 1);
    // Created then updated at once: both announced, in order, the update read.
    const quick = inst(9, { status: 'pending' });
    await mem.createInstance(quick, NOW);
    await mem.updateInstance(quick.id, { status: 'running' }, NOW + 1);
    await waitFor('quick update read', async () => (index.byId(quick.id)?.status === 'running' ? true : undefined), 30_000);
    assert.equal(announced.filter((a) => a.startsWith(quick.id)), [`${quick.id}:pending`, `${quick.id}:running`]);
    assert.is(c.calls.get, 2);
  } finally {
    index.stop();
  }
});

test.run();
