/**
 * The worker agent over the real local engine, a MemoryStore and a MemoryFleet: registration
 * (runtimes detected from the engine, capacity, public key), heartbeats, converging what is
 * placed on it, the firewall hook at each resync, the orphan circuit breaker, and stop/restart
 * leaving containers running. We assert the fleet record, the store and the engine.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Catalog } from '../../src/catalog/catalog.ts';
import { catalogVersions } from '../../src/catalog/version-source.ts';
import { newInstanceId } from '../../src/core/naming.ts';
import { newSealingKeys } from '../../src/core/seal.ts';
import type { WorkerRecord } from '../../src/core/worker.ts';
import { DockerRuntime } from '../../src/runtime/docker.ts';
import { MemoryFleet } from '../../src/store/memory-fleet.ts';
import { MemoryLeaseStore } from '../../src/store/memory-leases.ts';
import { MemoryStore } from '../../src/store/memory.ts';
import { VERSION } from '../../src/version.ts';
import { CPU_OVERCOMMIT, WorkerAgent, type WorkerSettings } from '../../src/worker/agent.ts';
import { loadTestCatalog } from '../helpers/catalog.ts';
import { haveDocker } from '../helpers/deps.ts';
import { cleanupByLabel, docker } from '../helpers/docker.ts';
import { memoryLogger } from '../helpers/log.ts';
import { challengeTree, createPlaced, rand, testOwner, until } from '../helpers/worker.ts';

const t = suite('worker: agent (real engine)');
const enabled = haveDocker();
const owner = testOwner();
const mgr = owner.managerId;
const WORKER = `w-agent-${rand()}`;
const keys = newSealingKeys();
const tree = challengeTree('poseidon-wagent-');
const dataDir = mkdtempSync(path.join(tmpdir(), 'poseidon-wagent-data-'));
const store = new MemoryStore();
const fleet = new MemoryFleet();
const leases = new MemoryLeaseStore();
const runtime = new DockerRuntime(owner);
const log = memoryLogger();
const agents: WorkerAgent[] = [];
let catalog: Catalog;
let firewallChecks = 0;
/** The instance the agent runs (set by the convergence case, used by the later ones). */
let placed: { id: string; container: string } | undefined;
const orphans: string[] = [];

function agent(over: Partial<WorkerSettings> = {}): WorkerAgent {
  const a = new WorkerAgent({
    owner, store, fleet, runtime, versions: catalogVersions(catalog), leases, keys, log,
    firewall: { ensure: async () => { firewallChecks++; return []; } },
    settings: {
      id: WORKER, address: '127.0.0.1', labels: { zone: 'test' }, leaseAddress: '127.0.0.1', leaseHost: 'localhost', publishAddress: '',
      // Resyncs are driven by the test (controller.resync()); heartbeats run on their own.
      heartbeatMs: 200, resyncMs: 600_000, orphanBreakerRatio: 0.5, launchConcurrency: 2, dataDir, slots: 7, ...over,
    },
  });
  agents.push(a);
  return a;
}

t.before(async () => {
  if (!enabled) return;
  tree.challenge('svc', ['image: busybox:1.35', 'command: [sleep, "600"]', 'expose: [{ name: web, port: 8080 }]']);
  catalog = await loadTestCatalog(tree.root);
});

t.after(async () => {
  for (const a of agents) await a.stop().catch(() => undefined);
  if (enabled) await cleanupByLabel(mgr);
  tree.dispose();
  rmSync(dataDir, { recursive: true, force: true });
});

const it = (name: string, fn: () => Promise<void>) => t(name, async () => { if (enabled) await fn(); });

async function record(): Promise<WorkerRecord | undefined> {
  return (await fleet.list()).workers.find((w) => w.record.id === WORKER)?.record;
}

/** A container of our ownership with no instance record (what a lost record leaves behind). Created, not started. */
async function orphan(): Promise<string> {
  const id = newInstanceId();
  await docker.createContainer({
    name: `poseidon-${id}`, Image: 'busybox:1.35', Cmd: ['sleep', '600'], HostConfig: { NetworkMode: 'none' },
    Labels: { 'poseidon.managed-by': mgr, 'poseidon.deployment': owner.deployment, 'poseidon.instance': id, 'poseidon.epoch': '1', 'poseidon.generation': '1' },
  });
  orphans.push(id);
  return id;
}

const containersOf = (id: string) => docker.listContainers({ all: true, filters: { label: [`poseidon.instance=${id}`, `poseidon.managed-by=${mgr}`] } });
async function remaining(ids: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const id of ids) if ((await containersOf(id)).length > 0) out.push(id);
  return out;
}

/** One full resync, then every key it enqueued reconciled. */
async function resync(a: WorkerAgent): Promise<void> {
  await a.controller.resync();
  await a.controller.queue.idle();
}

let first: WorkerAgent;

it('start() registers the worker: runtimes detected from the engine, capacity, labels and public key', async () => {
  const info = await runtime.info();
  assert.ok(info.runtimes.includes('runsc'), 'precondition: the engine has runsc registered (environment.md)');
  first = agent();
  await first.start();
  const rec = await record();
  assert.ok(rec, 'registered');
  assert.equal(rec.runtimes, ['runc', 'gvisor'], 'gVisor offered because the engine has runsc');
  assert.equal(rec.capacity, { slots: 7, cpu: info.cpus * CPU_OVERCOMMIT, memoryBytes: Math.floor(info.memoryBytes * 0.9) });
  assert.is(rec.publicKey, keys.publicKey);
  assert.equal([rec.address, rec.labels, rec.version], ['127.0.0.1', { zone: 'test' }, VERSION]);
  assert.equal((await fleet.list()).workers.find((w) => w.record.id === WORKER)?.admin, 'active');
  assert.ok(firewallChecks >= 1, 'the firewall was checked at the first resync');
  // The first resync prepares the current images and reports them.
  await until('busybox:1.35 reported present', async () => (await fleet.list()).images[WORKER]?.['busybox:1.35']?.state === 'present', 60_000);
});

it('heartbeats advance heartbeatAt', async () => {
  let last = (await record())!.heartbeatAt;
  for (let n = 0; n < 2; n++) {
    const seen: number = last;
    last = await until('a newer heartbeat', async () => { const h = (await record())?.heartbeatAt ?? 0; return h > seen ? h : undefined; }, 30_000, 100);
  }
});

it('converges an instance placed on it from the store\'s change notification', async () => {
  const e = catalog.get('svc')!;
  const inst = await createPlaced(store, { spec: e.spec, specHash: e.hash, worker: WORKER, publicKey: keys.publicKey, flag: 'flag{agent}', now: Date.now() });
  const up = await until('the placed instance running', async () => { const i = await store.getInstance(inst.id); return i?.status === 'running' ? i : undefined; }, 90_000);
  assert.is(up.worker, WORKER);
  const [c, ...more] = await containersOf(inst.id);
  assert.equal(more, []);
  assert.is(c?.State, 'running');
  placed = { id: inst.id, container: c!.Id };
});

it('the firewall hook runs at every resync', async () => {
  const before = firewallChecks;
  await first.controller.resync();
  assert.is(firewallChecks, before + 1);
  await first.controller.resync();
  assert.is(firewallChecks, before + 2);
  await first.controller.queue.idle();
});

it('orphan breaker: more record-less containers than the ratio allows are all kept, and the breaker says so', async () => {
  assert.ok(placed, 'needs the running instance');
  for (let n = 0; n < 6; n++) await orphan();
  // 7 managed containers, 6 without a record: ratio 0.5 allows max(5, floor(0.5 * 7)) = 5.
  await resync(first);
  assert.equal(await remaining(orphans), orphans, 'nothing removed');
  assert.ok(first.breaker, 'breaker set');
  assert.equal([first.breaker.orphans, first.breaker.managed], [6, 7]);
  assert.is((await containersOf(placed.id))[0]?.Id, placed.container, 'the placed instance is untouched');
});

it('stop() leaves every container running (and the orphans in place)', async () => {
  assert.ok(placed, 'needs the running instance');
  await first.stop();
  const [c, ...more] = await containersOf(placed.id);
  assert.equal(more, []);
  assert.equal([c?.Id, c?.State], [placed.container, 'running']);
  assert.equal(await remaining(orphans), orphans);
  assert.is((await store.getInstance(placed.id))?.status, 'running');
});

it('restarted with a ratio that allows them: the orphans go, the breaker clears, the running container is adopted', async () => {
  assert.ok(placed, 'needs the running instance');
  const before = (await store.getInstance(placed.id))!;
  const second = agent({ orphanBreakerRatio: 1 });
  await second.start();
  // 7 managed containers, 6 orphans: ratio 1 allows max(5, 7) = 7.
  await until('the orphans removed', async () => (await remaining(orphans)).length === 0, 60_000);
  assert.is(second.breaker, undefined);
  await resync(second);
  const [c, ...more] = await containersOf(placed.id);
  assert.equal(more, [], 'no duplicate');
  assert.equal([c?.Id, c?.State], [placed.container, 'running'], 'the same container, not a new one');
  const after = (await store.getInstance(placed.id))!;
  assert.equal([after.status, after.updatedAt], ['running', before.updatedAt], 'nothing to write');
  await second.stop();
});

t.run();
