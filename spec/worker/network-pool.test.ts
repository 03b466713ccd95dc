/**
 * The network pool (POSEIDON_NETWORK_POOL) over the real local engine, driven through the worker
 * agent with a MemoryStore: networks made ahead of time, one per launch and never two, refilled,
 * removed with their instance (stop, restart), never handed out again, not used by challenges that
 * need their own network shape, removed on stop, and a later process removes (never reuses) what
 * an earlier one left free. A label naming a network is checked before anything is removed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Catalog } from '../../src/catalog/catalog.ts';
import { catalogVersions } from '../../src/catalog/version-source.ts';
import { restartFields } from '../../src/core/lifecycle.ts';
import { newInstanceId, POOL_NETWORK_PATTERN } from '../../src/core/naming.ts';
import { LABELS, type Ownership } from '../../src/core/runtime.ts';
import { newSealingKeys } from '../../src/core/seal.ts';
import { DockerRuntime } from '../../src/runtime/docker.ts';
import { MemoryFleet } from '../../src/store/memory-fleet.ts';
import { MemoryLeaseStore } from '../../src/store/memory-leases.ts';
import { MemoryStore } from '../../src/store/memory.ts';
import { WorkerAgent } from '../../src/worker/agent.ts';
import { loadTestCatalog } from '../helpers/catalog.ts';
import { haveDocker } from '../helpers/deps.ts';
import { cleanupByLabel, docker, TEST_LABEL } from '../helpers/docker.ts';
import { memoryLogger } from '../helpers/log.ts';
import { challengeTree, createPlaced, rand, testOwner, until } from '../helpers/worker.ts';

const t = suite('worker: network pool (real engine)');
const enabled = haveDocker();
const owner = testOwner();
const mgr = owner.managerId;
const WORKER = `w-pool-${rand()}`;
const POOL = 2;
const keys = newSealingKeys();
const tree = challengeTree('poseidon-wpool-');
const dataDir = mkdtempSync(path.join(tmpdir(), 'poseidon-wpool-data-'));
const store = new MemoryStore();
const fleet = new MemoryFleet();
const runtime = new DockerRuntime(owner);
const log = memoryLogger();
const agents: WorkerAgent[] = [];
let catalog: Catalog;

function agent(gatewayContainer?: string): WorkerAgent {
  const a = new WorkerAgent({
    owner, store, fleet, runtime, versions: catalogVersions(catalog), leases: new MemoryLeaseStore(), keys, log,
    settings: {
      id: WORKER, address: '127.0.0.1', labels: {}, leaseAddress: '127.0.0.1', leaseHost: 'localhost', publishAddress: '',
      heartbeatMs: 1000, resyncMs: 600_000, orphanBreakerRatio: 0.5, launchConcurrency: 4, networkPool: POOL, dataDir,
      ...(gatewayContainer ? { gatewayContainer } : {}),
    },
  });
  agents.push(a);
  return a;
}

t.before(async () => {
  if (!enabled) return;
  tree.challenge('svc', ['image: busybox:1.35', 'command: [sleep, "600"]', 'expose: [{ name: web, port: 8080 }]']);
  tree.challenge('out', ['image: busybox:1.35', 'command: [sleep, "600"]', 'expose: [{ name: web, port: 8080 }]', 'network: { egress: true }']);
  catalog = await loadTestCatalog(tree.root);
});

t.after(async () => {
  for (const a of agents) await a.stop().catch(() => undefined);
  if (enabled) await cleanupByLabel(mgr);
  tree.dispose();
  rmSync(dataDir, { recursive: true, force: true });
});

const it = (name: string, fn: () => Promise<void>) => t(name, async () => { if (enabled) await fn(); });

/** Pooled networks of this test's deployment, by name. */
async function poolNetworks(): Promise<string[]> {
  const nets = await docker.listNetworks({ filters: { label: [`${LABELS.managedBy}=${mgr}`, LABELS.pool] } });
  return nets.map((n) => n.Name).sort();
}

async function containerOf(id: string): Promise<{ network: string | undefined; networks: string[] }> {
  const [c] = await docker.listContainers({ all: true, filters: { label: [`${LABELS.instance}=${id}`, `${LABELS.managedBy}=${mgr}`] } });
  if (!c) throw new Error(`no container for ${id}`);
  return { network: c.Labels[LABELS.network], networks: Object.keys(c.NetworkSettings?.Networks ?? {}) };
}

async function launched(challenge: string): Promise<string> {
  const e = catalog.get(challenge)!;
  const inst = await createPlaced(store, { spec: e.spec, specHash: e.hash, worker: WORKER, publicKey: keys.publicKey, flag: 'flag{pool}', now: Date.now() });
  await until(`${inst.id} running`, async () => (await store.getInstance(inst.id))?.status === 'running', 90_000);
  return inst.id;
}

async function resync(a: WorkerAgent): Promise<void> {
  await a.controller.resync();
  await a.controller.queue.idle();
}

let first: WorkerAgent;
/** Every pooled network an instance was created on, over the whole suite. */
const handedOut: string[] = [];

it('start() fills the pool: that many internal networks, labelled as pooled, listed by no instance', async () => {
  first = agent();
  await first.start();
  await until('the pool full', async () => ((await poolNetworks()).length === POOL ? true : undefined), 60_000);
  for (const name of await poolNetworks()) {
    assert.match(name, POOL_NETWORK_PATTERN);
    const info = await docker.getNetwork(name).inspect() as { Internal: boolean; Options: Record<string, string>; Labels: Record<string, string> };
    assert.ok(info.Internal, 'internal: no route out');
    assert.match(info.Options['com.docker.network.bridge.name'] ?? '', /^pz[0-9a-f]{12}$/, 'a pz bridge: the host firewall covers it');
    assert.is(info.Labels[LABELS.instance], undefined);
  }
  assert.equal(await runtime.listNetworks(), [], 'pooled networks are no instance\'s');
});

it('launches take pooled networks, one each, never shared; the pool refills; an empty pool means a network of its own', async () => {
  const before = await poolNetworks();
  const nets: string[] = [];
  const check = async (id: string): Promise<void> => {
    const c = await containerOf(id);
    assert.ok(c.network, `${id}'s container names its pooled network`);
    assert.equal(c.networks, [c.network], 'attached to that network only');
    nets.push(c.network!);
  };
  for (const id of await Promise.all(before.map(() => launched('svc')))) await check(id);
  assert.equal([...nets].sort(), before, 'the free ones went, one each');
  handedOut.push(...nets);
  const refilled = await until('the pool refilled', async () => {
    const free = (await poolNetworks()).filter((n) => !handedOut.includes(n));
    return free.length === POOL ? free : undefined;
  }, 60_000);
  await check(await launched('svc'));
  assert.ok(refilled.includes(nets.at(-1)!), 'the next launch took a refilled one');
  handedOut.push(nets.at(-1)!);
  assert.equal(await runtime.listNetworks(), [], 'no launch made a network of its own');
  // More launches at once than free networks: the rest make their own, none waits for the pool.
  const burst = await Promise.all(Array.from({ length: POOL + 2 }, () => launched('svc')));
  const own = (await Promise.all(burst.map(containerOf))).filter((c) => c.network === undefined);
  assert.ok(own.length >= 1, 'at least one launch found the pool empty');
  for (const c of own) assert.match(c.networks[0] ?? '', /^poseidon-[0-9a-f]{24}$/);
  handedOut.push(...(await Promise.all(burst.map(containerOf))).flatMap((c) => (c.network ? [c.network] : [])));
  assert.is(new Set(handedOut).size, handedOut.length, `no network went to two containers: ${handedOut.join(', ')}`);
});

it('a challenge with egress makes its own network, never a pooled one', async () => {
  const id = await launched('out');
  const c = await containerOf(id);
  assert.is(c.network, undefined);
  assert.equal(c.networks, [`poseidon-${id}`]);
  await store.updateInstance(id, { desired: 'stopped' }, Date.now());
  await until('egress instance gone', async () => ((await docker.listNetworks({ filters: { name: [`poseidon-${id}`] } })).length === 0 ? true : undefined), 60_000);
});

it('a stopped instance takes its pooled network with it; a restarted one moves to a fresh network', async () => {
  await until('the pool full again', async () => (first.networkPool?.free === POOL ? true : undefined), 60_000);
  const [stopId, restartId] = await Promise.all([launched('svc'), launched('svc')]);
  const stopped = (await containerOf(stopId)).network!;
  const old = (await containerOf(restartId)).network!;
  handedOut.push(stopped, old);
  await store.updateInstance(stopId, { desired: 'stopped' }, Date.now());
  await until('the stopped instance\'s network removed', async () => (!(await poolNetworks()).includes(stopped) ? true : undefined), 60_000);
  const inst = (await store.getInstance(restartId))!;
  await store.updateInstance(restartId, restartFields(inst, inst.specHash, Date.now()), Date.now());
  // On a pooled network again if one was free by then, else on one of its own: never the old one.
  const moved = await until('the new generation on another network', async () => {
    const i = await store.getInstance(restartId);
    if (i?.generation !== 2 || i.status !== 'running') return undefined;
    const c = await containerOf(restartId).catch(() => undefined);
    return c && c.networks.length === 1 && c.networks[0] !== old ? c : undefined;
  }, 90_000);
  if (moved.network) handedOut.push(moved.network);
  else assert.equal(moved.networks, [`poseidon-${restartId}`]);
  assert.not.ok((await poolNetworks()).includes(old), 'the old generation\'s network is gone');
  assert.is(new Set(handedOut).size, handedOut.length, `no network went to two containers: ${handedOut.join(', ')}`);
});

it('a later process removes the free networks an earlier one left, keeps the ones in use, and makes new ones', async () => {
  await until('the first process\'s pool full again', async () => (first.networkPool?.free === POOL ? true : undefined), 60_000);
  const inUse = (await Promise.all((await store.listInstances({ worker: WORKER })).filter((i) => i.desired === 'running').map((i) => containerOf(i.id)))).flatMap((c) => (c.network ? [c.network] : []));
  const free = (await poolNetworks()).filter((n) => !inUse.includes(n));
  assert.is(free.length, POOL);
  // As if the first process died: nothing of it stops or removes anything.
  first.controller.stop();
  const second = agent();
  await second.start();
  await resync(second);
  const now = await until('fresh free networks', async () => {
    const nets = await poolNetworks();
    const fresh = nets.filter((n) => !inUse.includes(n));
    return fresh.length === POOL && fresh.every((n) => !free.includes(n)) ? nets : undefined;
  }, 60_000);
  assert.ok(inUse.every((n) => now.includes(n)), 'networks of running instances stay');
  for (const id of (await store.listInstances({ worker: WORKER })).filter((i) => i.desired === 'running').map((i) => i.id)) {
    assert.is((await store.getInstance(id))?.status, 'running');
  }
  await second.stop();
  const left = await poolNetworks();
  assert.equal(left.sort(), [...inUse].sort(), 'stop() removed the free networks; those in use stay with their containers');
});

it('a label naming a network never makes us remove a network that is not our pooled one', async () => {
  // Another deployment's pooled network, and a container of ours whose label names it.
  const other: Ownership = { managerId: mgr, deployment: `other-${rand()}` };
  const theirs = new DockerRuntime(other);
  const name = `poseidon-pool-${rand().padEnd(12, '0').slice(0, 12).replace(/[^0-9a-f]/g, 'a')}`;
  await theirs.createPoolNetwork(name, `pz${name.slice(-12)}`);
  await runtime.removePoolNetwork(name);
  await runtime.removePoolNetwork('bridge');
  assert.is((await docker.listNetworks({ filters: { name: [name] } })).length, 1, 'another deployment\'s pooled network stays');
  assert.is((await docker.listNetworks({ filters: { name: ['bridge'] } })).length, 1);
  const id = newInstanceId();
  await docker.createContainer({
    name: `poseidon-${id}`, Image: 'busybox:1.35', Cmd: ['sleep', '600'], HostConfig: { NetworkMode: 'none' },
    Labels: { [LABELS.managedBy]: mgr, [LABELS.deployment]: owner.deployment, [LABELS.instance]: id, [LABELS.network]: 'bridge' },
  });
  const [c] = await runtime.listContainers(id);
  assert.is(c?.network, undefined, 'a label that is not a pooled network\'s name is not read as one');
  await theirs.removePoolNetwork(name);
  assert.is((await docker.listNetworks({ filters: { name: [name] } })).length, 0, 'its own deployment removes it');
});

it('the gateway joins pooled networks as they are made, again at launch when it lost them, and at a resync', async () => {
  const gateway = `poseidon-test-gw-${rand()}`;
  const gw = await docker.createContainer({ name: gateway, Image: 'busybox:1.35', Cmd: ['sleep', '600'], Labels: { [TEST_LABEL]: mgr } });
  await gw.start();
  const joined = async (): Promise<string[]> => Object.keys(((await gw.inspect()) as { NetworkSettings: { Networks: Record<string, unknown> } }).NetworkSettings.Networks);
  const third = agent(gateway);
  await third.start();
  await until('the pool full', async () => (third.networkPool?.free === POOL ? true : undefined), 60_000);
  const free = (await poolNetworks()).filter((n) => !handedOut.includes(n));
  assert.is(free.length, POOL);
  const ahead = await joined();
  for (const n of free) assert.ok(ahead.includes(n), `the gateway joined ${n} when the pool made it`);
  // As if the gateway were recreated since: it holds none of the free networks; the launch joins it.
  for (const n of free) await docker.getNetwork(n).disconnect({ Container: gateway, Force: true }).catch(() => undefined);
  const id = await launched('svc');
  const net = (await containerOf(id)).network!;
  assert.ok(net, 'on a pooled network');
  assert.ok((await joined()).includes(net), 'joined during the launch');
  await docker.getNetwork(net).disconnect({ Container: gateway, Force: true });
  assert.not.ok((await joined()).includes(net));
  await resync(third);
  await until('joined again by the resync', async () => ((await joined()).includes(net) ? true : undefined), 30_000);
  await store.updateInstance(id, { desired: 'stopped' }, Date.now());
  await until('the network gone with the instance, the gateway detached', async () => (!(await poolNetworks()).includes(net) && !(await joined()).includes(net) ? true : undefined), 60_000);
  await until('the pool full again', async () => (third.networkPool?.free === POOL ? true : undefined), 60_000);
  await third.stop();
  assert.equal((await poolNetworks()).filter((n) => !handedOut.includes(n)), [], 'stop() removed the free networks, joined gateway and all');
  assert.equal((await joined()).filter((n) => POOL_NETWORK_PATTERN.test(n) && !handedOut.includes(n)), [], 'the gateway holds no pooled network but those of running instances');
});

t.run();
