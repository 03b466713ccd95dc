/**
 * The leader's warm-pool pass (`controller/pool-keeper.ts`) on the embedded store: it fills each
 * pooled challenge's current version to its size within the capacity, and asks to stop members of
 * old versions, members beyond the size and members of challenges that no longer pool.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { CatalogEntry } from '../../src/catalog/catalog.ts';
import type { ChallengeSpec } from '../../src/core/challenge.ts';
import { isPoolMember, POOL_TEAM, wantsRunning, type Instance } from '../../src/core/instance.ts';
import { SILENT } from '../../src/core/reconcile.ts';
import { MemoryStore } from '../../src/store/memory.ts';
import { MEMBER_LIFETIME_MS, poolKeeper } from '../../src/controller/pool-keeper.ts';
import { makeInstance } from '../store/helpers.ts';

const t = suite('controller: warm pools (pool keeper)');
const NOW = 1_900_000_000_000;
const ctx = { signal: new AbortController().signal, now: () => new Date(NOW) };

function entry(id: string, hash: string, size: number | undefined, state: CatalogEntry['state'] = 'ready'): CatalogEntry {
  const spec = { id, name: id, expose: [{ name: 'web', port: 80, protocol: 'http' }], flag: { file: '/flag.txt', format: 'f{%s}' }, ...(size ? { pool: { size } } : {}) } as unknown as ChallengeSpec;
  return { spec, hash, image: 'busybox:1.35', state, revision: 'r1', file: `${id}/challenge.yaml`, workers: {} };
}

interface Rig {
  store: MemoryStore;
  entries: CatalogEntry[];
  capacity: number;
  pass(): Promise<void>;
  members(challenge?: string): Promise<Instance[]>;
}

function rig(entries: CatalogEntry[], capacity = 0): Rig {
  const store = new MemoryStore();
  let view: Instance[] = [];
  const r: Rig = {
    store, entries, capacity,
    async pass() {
      view = await store.listInstances();
      const keep = poolKeeper({
        store, catalog: { list: () => r.entries }, instances: () => view, capacity: () => r.capacity, baseDomain: 'ctf.test', log: SILENT,
        remember: (inst) => { view = [...view.filter((i) => i.id !== inst.id), inst]; },
      });
      await keep(ctx);
    },
    async members(challenge) {
      return (await store.listInstances({ team: POOL_TEAM })).filter((m) => wantsRunning(m, NOW) && (challenge === undefined || m.challenge === challenge));
    },
  };
  return r;
}

t('fills each pooled challenge to its size with ownerless members of the current version; a second pass adds none', async () => {
  const r = rig([entry('web', 'h1', 3), entry('pwn', 'h2', undefined), entry('new', 'h3', 2, 'building')]);
  await r.pass();
  const web = await r.members('web');
  assert.is(web.length, 3);
  for (const m of web) {
    assert.ok(isPoolMember(m));
    assert.equal([m.specHash, m.owner, m.status, m.desired, m.expiresAt], ['h1', `pool:${m.id}`, 'pending', 'running', NOW + MEMBER_LIFETIME_MS]);
  }
  assert.is((await r.members()).length, 3, 'none for a challenge without a pool or a version still building');
  await r.pass();
  assert.is((await r.members()).length, 3, 'level-based: nothing more');
});

t('the capacity bounds the pool: members never queue behind teams', async () => {
  const r = rig([entry('web', 'h1', 5)], 4);
  for (const team of ['a', 'b']) await r.store.createInstance(makeInstance({ team, owner: `team:${team}`, challenge: 'web', createdAt: NOW, expiresAt: NOW + 60_000 }), NOW, { capacity: 4 });
  await r.pass();
  assert.is((await r.members()).length, 2, 'two places left, two members');
  assert.equal(await r.store.queuedIds(), []);
  r.capacity = 0;
  await r.pass();
  assert.is((await r.members()).length, 5);
});

t('a new version drains the old members; a smaller size stops the extras (not-yet-running first); no pool drains all', async () => {
  const r = rig([entry('web', 'h1', 3)]);
  await r.pass();
  const old = await r.members();
  await r.store.updateInstance(old[0]!.id, { status: 'running' }, NOW);
  r.entries = [entry('web', 'h2', 3)];
  await r.pass();
  const now = await r.members();
  assert.equal(now.map((m) => m.specHash), ['h2', 'h2', 'h2']);
  assert.ok(old.every((o) => !now.some((m) => m.id === o.id)));
  await r.store.updateInstance(now[2]!.id, { status: 'running' }, NOW);
  r.entries = [entry('web', 'h2', 1)];
  await r.pass();
  assert.equal((await r.members()).map((m) => m.id), [now[2]!.id], 'the running member stays');
  r.entries = [entry('web', 'h2', undefined)];
  await r.pass();
  assert.equal(await r.members(), []);
});

t('claimed members are the team\'s: the pass neither counts nor stops them, and refills', async () => {
  const r = rig([entry('web', 'h1', 1)]);
  await r.pass();
  const [m] = await r.members();
  await r.store.assign(m!.id, { epoch: 0 }, 'w1', {}, NOW);
  await r.store.updateInstance(m!.id, { status: 'running' }, NOW);
  const claimant = makeInstance({ challenge: 'web', specHash: 'h1', team: 'red', owner: 'team:red', createdAt: NOW, expiresAt: NOW + 60_000 });
  await r.store.createInstance(claimant, NOW);
  const claimed = await r.store.claimPooled(claimant, (await r.store.getInstance(m!.id))!, { reason: 'claimed' }, NOW);
  assert.ok(claimed !== 'conflict');
  await r.pass();
  const members = await r.members();
  assert.is(members.length, 1);
  assert.is.not(members[0]!.id, m!.id);
  assert.is((await r.store.getInstance(m!.id))!.desired, 'running', 'the claimed one runs on');
});

t.run();
