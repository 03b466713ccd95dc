/**
 * Launch settings an admin sets over a worker's configuration while it runs (`Fleet.setLaunchOverride`,
 * `PUT /v1/workers/:id/launch-settings`), over the real local engine, through the worker agent:
 * a worker configured without a network pool gets one (made, joined by the gateway, handed to
 * launches, refilled), reports the settings in effect with its heartbeat, and gives the free
 * networks back when the override shrinks or is cleared; networks handed out stay with their
 * instances.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Catalog } from '../../src/catalog/catalog.ts';
import { catalogVersions } from '../../src/catalog/version-source.ts';
import { LABELS } from '../../src/core/runtime.ts';
import { newSealingKeys } from '../../src/core/seal.ts';
import type { LaunchSettings } from '../../src/core/worker.ts';
import { DockerRuntime } from '../../src/runtime/docker.ts';
import { MemoryFleet } from '../../src/store/memory-fleet.ts';
import { MemoryLeaseStore } from '../../src/store/memory-leases.ts';
import { MemoryStore } from '../../src/store/memory.ts';
import { WorkerAgent } from '../../src/worker/agent.ts';
import { loadTestCatalog } from '../helpers/catalog.ts';
import { haveDocker } from '../helpers/deps.ts';
import { cleanupByLabel, docker, startProbe } from '../helpers/docker.ts';
import { memoryLogger } from '../helpers/log.ts';
import { challengeTree, createPlaced, rand, testOwner, until } from '../helpers/worker.ts';

const t = suite('worker: launch settings set while it runs (real engine)');
const enabled = haveDocker();
const owner = testOwner();
const mgr = owner.managerId;
const WORKER = `w-launch-${rand()}`;
const GATEWAY = `${mgr}-lgw`;
const CONFIGURED: LaunchSettings = { networkPool: 0, launchConcurrency: 2 };
const keys = newSealingKeys();
const tree = challengeTree('poseidon-wlaunch-');
const dataDir = mkdtempSync(path.join(tmpdir(), 'poseidon-wlaunch-data-'));
const store = new MemoryStore();
const fleet = new MemoryFleet();
const runtime = new DockerRuntime(owner);
const log = memoryLogger();
let agent: WorkerAgent | undefined;
let catalog: Catalog;

t.before(async () => {
  if (!enabled) return;
  tree.challenge('svc', ['image: busybox:1.35', 'command: [sleep, "600"]', 'expose: [{ name: web, port: 8080 }]']);
  catalog = await loadTestCatalog(tree.root);
  await startProbe(mgr, GATEWAY);
  agent = new WorkerAgent({
    owner, store, fleet, runtime, versions: catalogVersions(catalog), leases: new MemoryLeaseStore(), keys, log,
    settings: {
      id: WORKER, address: '127.0.0.1', labels: {}, leaseAddress: '127.0.0.1', leaseHost: 'localhost', publishAddress: '',
      heartbeatMs: 200, resyncMs: 600_000, orphanBreakerRatio: 0.5, ...CONFIGURED, dataDir, gatewayContainer: GATEWAY,
    },
  });
});

t.after(async () => {
  await agent?.stop().catch(() => undefined);
  if (enabled) await cleanupByLabel(mgr);
  tree.dispose();
  rmSync(dataDir, { recursive: true, force: true });
});

const it = (name: string, fn: (a: WorkerAgent) => Promise<void>) => t(name, async () => { if (agent) await fn(agent); });

/** Pooled networks of this test's deployment that no container names (free), by name. */
async function freeNetworks(): Promise<string[]> {
  const nets = await docker.listNetworks({ filters: { label: [`${LABELS.managedBy}=${mgr}`, LABELS.pool] } });
  const containers = await docker.listContainers({ all: true, filters: { label: [`${LABELS.managedBy}=${mgr}`] } });
  const used = new Set(containers.map((c) => c.Labels[LABELS.network]));
  return nets.map((n) => n.Name).filter((n) => !used.has(n)).sort();
}

/** The settings the worker's last heartbeat reported. */
async function reported(): Promise<LaunchSettings | undefined> {
  return (await fleet.list()).workers.find((w) => w.record.id === WORKER)?.record.launch;
}

async function gatewayNetworks(): Promise<string[]> {
  return runtime.networksOf(GATEWAY);
}

it('a worker reports the settings of its configuration; with no pool configured it makes no pooled network', async (a) => {
  await a.start();
  assert.equal(await reported(), CONFIGURED);
  assert.is(a.networkPool.size, 0);
  assert.equal(await freeNetworks(), []);
});

it('an override gives it a pool: made, joined by the gateway, reported, handed to a launch and refilled', async (a) => {
  assert.is(await fleet.setLaunchOverride(WORKER, { networkPool: 3, launchConcurrency: 6 }), true);
  await until('the override reported', async () => ((await reported())?.networkPool === 3 ? true : undefined), 30_000);
  assert.equal(await reported(), { networkPool: 3, launchConcurrency: 6 });
  const free = await until('three free pooled networks', async () => { const f = await freeNetworks(); return f.length === 3 ? f : undefined; }, 60_000);
  const joined = await until('the gateway on all three', async () => { const g = await gatewayNetworks(); return free.every((n) => g.includes(n)) ? g : undefined; }, 30_000);
  assert.ok(free.every((n) => joined.includes(n)));
  const e = catalog.get('svc')!;
  const inst = await createPlaced(store, { spec: e.spec, specHash: e.hash, worker: WORKER, publicKey: keys.publicKey, flag: 'flag{launch}', now: Date.now() });
  await until(`${inst.id} running`, async () => (await store.getInstance(inst.id))?.status === 'running', 90_000);
  const [c] = await docker.listContainers({ filters: { label: [`${LABELS.instance}=${inst.id}`, `${LABELS.managedBy}=${mgr}`] } });
  assert.ok(c && free.includes(c.Labels[LABELS.network] ?? ''), 'the launch took one of the pooled networks');
  const refilled = await until('the pool refilled to three', async () => { const f = await freeNetworks(); return f.length === 3 ? f : undefined; }, 60_000);
  assert.not.ok(refilled.includes(c!.Labels[LABELS.network]!), 'the handed-out network is not free again');
});

it('shrunk, the extra free networks go (and the gateway leaves them); cleared, the configuration applies and the networks in use stay', async (a) => {
  const inUse = (await docker.listContainers({ filters: { label: [`${LABELS.managedBy}=${mgr}`, LABELS.instance] } })).map((c) => c.Labels[LABELS.network]);
  assert.is(inUse.length, 1);
  const before = await freeNetworks();
  await fleet.setLaunchOverride(WORKER, { networkPool: 1 });
  const left = await until('one free pooled network', async () => { const f = await freeNetworks(); return f.length === 1 ? f : undefined; }, 60_000);
  assert.ok(before.includes(left[0]!), 'the one kept is one of the free ones, not a new one');
  await until('reported', async () => ((await reported())?.networkPool === 1 ? true : undefined), 30_000);
  assert.equal(await reported(), { networkPool: 1, launchConcurrency: CONFIGURED.launchConcurrency }, 'the bound is the configuration\'s again');
  const gone = before.filter((n) => !left.includes(n));
  assert.is(gone.length, 2, 'two free networks removed');
  const g = await gatewayNetworks();
  assert.ok(gone.every((n) => !g.includes(n)), 'the gateway is on none of the removed networks');
  await fleet.setLaunchOverride(WORKER, {});
  await until('no free pooled network', async () => ((await freeNetworks()).length === 0 ? true : undefined), 60_000);
  await until('the configuration reported', async () => ((await reported())?.networkPool === 0 ? true : undefined), 30_000);
  assert.equal(await reported(), CONFIGURED);
  assert.is(a.networkPool.size, 0);
  const nets = (await docker.listNetworks({ filters: { label: [`${LABELS.managedBy}=${mgr}`, LABELS.pool] } })).map((n) => n.Name);
  assert.equal(nets, inUse, 'the network the instance runs on stays');
});

it('resizes in quick succession while the pool fills end at the last size, with nothing left over', async (a) => {
  const pool = a.networkPool;
  const inUse = new Set((await docker.listContainers({ all: true, filters: { label: [`${LABELS.managedBy}=${mgr}`, LABELS.instance] } })).map((c) => c.Labels[LABELS.network]));
  // Short pauses only to land the next resize while a network is being made or removed.
  const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
  for (const [steps, last] of [[[2, 0], 3], [[3, 1, 0], 2], [[1, 0, 2, 0], 1]] as const) {
    for (const size of steps) {
      void pool.resize(size);
      await pause(40);
    }
    await pool.resize(last);
    const free = await until(`${last} free after ${steps.join(', ')}, ${last}`, async () => {
      const f = await freeNetworks();
      return f.length === last && pool.free === last ? f : undefined;
    }, 60_000);
    assert.is(free.length, last);
  }
  // Shrunk while a network is being made, grown again while that network (one too many then) is
  // being removed: the fill under way must go on to the new size. The window moves with the
  // engine's speed, so several delays are tried.
  for (const delay of [60, 120, 180, 240, 320]) {
    void pool.resize(1);
    await pause(10);
    void pool.resize(0);
    await pause(delay);
    await pool.resize(2);
    await until(`2 free after 1, 0, (${delay} ms) 2`, async () => ((await freeNetworks()).length === 2 && pool.free === 2 ? true : undefined), 60_000);
    await pool.resize(0);
    await until('none free', async () => ((await freeNetworks()).length === 0 && pool.free === 0 ? true : undefined), 60_000);
  }
  await pool.resize(0);
  await until('no free pooled network', async () => ((await freeNetworks()).length === 0 && pool.free === 0 ? true : undefined), 60_000);
  const nets = (await docker.listNetworks({ filters: { label: [`${LABELS.managedBy}=${mgr}`, LABELS.pool] } })).map((n) => n.Name);
  assert.ok(nets.every((n) => inUse.has(n)), `only networks in use remain: ${nets.join(', ')}`);
});

t.run();
