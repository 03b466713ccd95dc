/**
 * The worker's fenced instance reconciler against the real local engine and the MemoryStore,
 * driven key by key: after each pass we check the world (containers, networks, the record), not
 * which calls were made. Instances are placed the way the manager places them (an atomic assign
 * with endpoints, an epoch and a flag sealed for this worker). Ported from the single-host
 * suite (spec/controller/instance-reconciler.test.ts), plus placement: epochs, moves with a
 * grace, fenced status writes and sealed flags.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Catalog, CatalogEntry } from '../../src/catalog/catalog.ts';
import { catalogVersions } from '../../src/catalog/version-source.ts';
import type { Instance } from '../../src/core/instance.ts';
import { newInstanceId } from '../../src/core/naming.ts';
import { newSealingKeys, seal, sealedFlagField } from '../../src/core/seal.ts';
import { Semaphore } from '../../src/core/semaphore.ts';
import type { Store } from '../../src/core/store.ts';
import { Exposure } from '../../src/gateway/exposure.ts';
import { DockerRuntime } from '../../src/runtime/docker.ts';
import { MemoryFleet } from '../../src/store/memory-fleet.ts';
import { MemoryLeaseStore } from '../../src/store/memory-leases.ts';
import { MemoryStore } from '../../src/store/memory.ts';
import { FlagFiles } from '../../src/worker/flag-files.ts';
import { ReadinessProbes } from '../../src/worker/readiness.ts';
import { WorkerImages } from '../../src/worker/images.ts';
import { workerReconciler, type WorkerReconcilerDeps } from '../../src/worker/instance-reconciler.ts';
import { loadTestCatalog } from '../helpers/catalog.ts';
import { haveDocker } from '../helpers/deps.ts';
import { cleanupByLabel, docker, exec, startProbe } from '../helpers/docker.ts';
import { memoryLogger } from '../helpers/log.ts';
import { challengeTree, createPlaced, place, rand, sealFor, testOwner, until, type Placing } from '../helpers/worker.ts';

const t = suite('worker: instance reconciler (real engine)');
const enabled = haveDocker();
const owner = testOwner();
const mgr = owner.managerId;
const ME = 'w-here';
const OTHER = 'w-there';
const keys = newSealingKeys();
const otherKeys = newSealingKeys();
const MOVE_GRACE_MS = 60_000;
const tree = challengeTree('poseidon-wrec-');
const dataDir = mkdtempSync(path.join(tmpdir(), 'poseidon-wrec-data-'));
const runtime = new DockerRuntime(owner);
const store = new MemoryStore();
const fleet = new MemoryFleet();
const log = memoryLogger();
const cleared = new Set<string>();
/** Hooks run right after the worker's pass read an instance: a write landing during the pass. */
const races = new Map<string, () => Promise<void>>();
let catalog: Catalog;
let routeChanges = 0;
let clock = Date.now();

/** The store as the worker sees it: a racing write (see `races`) can land right after its read. */
const workerStore = new Proxy(store, {
  get(target, prop) {
    if (prop === 'getInstance') {
      return async (id: string) => {
        const read = await target.getInstance(id);
        const race = races.get(id);
        races.delete(id);
        await race?.();
        return read;
      };
    }
    const v = Reflect.get(target, prop, target) as unknown;
    return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
  },
}) as Store;

/** A worker reconciler of this worker (built after `before` loaded the catalog). */
function reconciler(over: Partial<WorkerReconcilerDeps> = {}) {
  const rt = over.runtime ?? runtime;
  return workerReconciler({
    workerId: ME, owner, store: workerStore, runtime: rt, versions: catalogVersions(catalog),
    images: new WorkerImages({ workerId: ME, runtime: rt, fleet, owner, log }),
    flagFiles: new FlagFiles(dataDir), privateKey: keys.privateKey, log, publishAddress: '',
    exposure: new Exposure({ leases: new MemoryLeaseStore(), leaseAddress: '127.0.0.1', leaseHost: 'localhost', log }),
    launches: new Semaphore(2), mayRemoveOrphan: (id) => cleared.has(id), routesChanged: () => { routeChanges++; },
    moveGraceMs: MOVE_GRACE_MS, readiness: new ReadinessProbes({ runtime: rt }), ...over,
  });
}

let reconcile: ReturnType<typeof workerReconciler> | undefined;
const pass = (id: string) => {
  // Built once: the reconciler keeps per-process crash counts.
  reconcile ??= reconciler();
  return reconcile({ signal: new AbortController().signal, now: () => new Date(clock) }, id);
};

const VOL = `vol-${rand()}`;
const HTTPD = 'command: [sh, -c, "mkdir -p /tmp/w && echo ok > /tmp/w/index.html && exec httpd -f -p 8080 -h /tmp/w"]';
const SLEEP = 'command: [sleep, "600"]';
const WEB = 'expose: [{ name: web, port: 8080 }]';

t.before(async () => {
  if (!enabled) return;
  tree.challenge('ok', ['image: busybox:1.35', HTTPD, WEB, 'healthcheck: { type: http, port: web, path: / }']);
  tree.challenge('filed', ['image: busybox:1.35', SLEEP, WEB, 'flag: { file: /flag }']);
  tree.challenge('sick', ['image: busybox:1.35', SLEEP, WEB, 'healthcheck: { type: command, command: ["false"], timeout: 1s }']);
  tree.challenge('crashy', ['image: busybox:1.35', 'command: [sh, -c, "exit 3"]', WEB]);
  tree.challenge('noimage', ['image: 127.0.0.1:1/none:1', WEB]);
  // Created fine, but the engine refuses to start it (no such user in the image).
  tree.challenge('baduser', ['image: busybox:1.35', SLEEP, WEB, 'user: nosuchuser']);
  tree.challenge('writable', ['image: busybox:1.35', SLEEP, WEB, 'filesystem: { readOnly: false, size: 64m }']);
  // Built here (no registry): an image with a VOLUME, run as a non-root uid.
  tree.challenge(VOL, ['build: src', SLEEP, WEB, 'user: "1234"', 'filesystem: { tmpfs: 4m }'], { 'src/Dockerfile': 'FROM busybox:1.35\nVOLUME /data\n' });
  catalog = await loadTestCatalog(tree.root);
  // Registered, so the fleet lists this worker's image reports.
  await fleet.heartbeat({ id: ME, address: '127.0.0.1', runtimes: ['runc'], labels: {}, capacity: { slots: 10, cpu: 4, memoryBytes: 1 << 30 }, publicKey: keys.publicKey, version: 'test', startedAt: clock });
});

t.after(async () => {
  if (enabled) await cleanupByLabel(mgr);
  tree.dispose();
  rmSync(dataDir, { recursive: true, force: true });
});

const it = (name: string, fn: () => Promise<void>) => t(name, async () => { if (enabled) await fn(); });

function entry(id: string): CatalogEntry {
  const e = catalog.get(id);
  if (!e) throw new Error(`no challenge ${id} in the test catalog`);
  return e;
}

/** An instance of `challenge` placed on this worker (epoch 1) with `flag` sealed for it. */
function launch(challenge: string, over: Partial<Placing> = {}): Promise<Instance> {
  const e = entry(challenge);
  return createPlaced(store, { spec: e.spec, specHash: e.hash, worker: ME, publicKey: keys.publicKey, flag: `flag{${rand()}${rand()}}`, now: clock, ...over });
}

/** Reconciles `id` until `done` holds for its record (passes that throw are retried, as the queue would). */
async function converge(id: string, done: (i: Instance) => boolean, what: string): Promise<Instance> {
  return until(`${id} ${what}`, async () => {
    try { await pass(id); } catch { /* transient: the work queue retries */ }
    const inst = await store.getInstance(id);
    return inst && done(inst) ? inst : undefined;
  }, 90_000, 250);
}

const running = (id: string) => converge(id, (i) => i.status === 'running', 'running');
const labelled = (id: string) => [`poseidon.instance=${id}`, `poseidon.managed-by=${mgr}`];
const containersOf = (id: string) => docker.listContainers({ all: true, filters: { label: labelled(id) } });
const networksOf = (id: string) => docker.listNetworks({ filters: { label: labelled(id) } });
const record = async (id: string) => (await store.getInstance(id)) as Instance;

async function only(id: string) {
  const list = await containersOf(id);
  assert.is(list.length, 1, `one container for ${id}`);
  return list[0]!;
}

it('launches a placed instance to running; a second pass writes nothing and keeps the container', async () => {
  const routes = routeChanges;
  const inst = await launch('ok');
  assert.equal([inst.worker, inst.epoch], [ME, 1]);
  const up = await running(inst.id);
  assert.is(up.endpoints[0]?.backend, `poseidon-${inst.id}:8080`);
  assert.is(up.endpoints[0]?.url, `http://${inst.hostname}/`);
  assert.is(up.reason, undefined);
  const c = await only(inst.id);
  assert.is(c.State, 'running');
  assert.equal([c.Labels['poseidon.epoch'], c.Labels['poseidon.generation'], c.Labels['poseidon.deployment']], ['1', '1', owner.deployment]);
  assert.is((await networksOf(inst.id)).length, 1);
  assert.ok(routeChanges > routes, 'entering running changes the ingress routes');
  const changes = routeChanges;
  const again = await pass(inst.id);
  await pass(inst.id);
  assert.ok((again.requeueAfterMs ?? 0) > 0 && (again.requeueAfterMs ?? 0) <= inst.expiresAt - clock, 'looks again at expiry');
  assert.is((await record(inst.id)).updatedAt, up.updatedAt, 'no status write on an idempotent pass');
  assert.is((await only(inst.id)).Id, c.Id);
  assert.is(routeChanges, changes);
});

it('the flag inside the container is the one sealed for this worker (environment and file)', async () => {
  const flag = `flag{${rand()}-sealed-${rand()}}`;
  const inst = await launch('ok', { flag });
  await running(inst.id);
  const env = await exec((await only(inst.id)).Id, ['sh', '-c', 'echo "$FLAG"']);
  assert.is(env.out.trim(), flag);
  assert.not.match(JSON.stringify(await record(inst.id)), flag, 'the record holds only the sealed form');
  const fileFlag = `flag{${rand()}-file-${rand()}}`;
  const filed = await launch('filed', { flag: fileFlag });
  await running(filed.id);
  const read = await exec((await only(filed.id)).Id, ['cat', '/flag']);
  assert.is(read.out.trim(), fileFlag);
  assert.ok(existsSync(path.join(dataDir, 'flags', filed.id)));
});

it('a new generation replaces the container and keeps the hostname', async () => {
  const inst = await launch('ok');
  await running(inst.id);
  const old = await only(inst.id);
  await store.updateInstance(inst.id, { generation: 2, status: 'pending' }, clock);
  const again = await converge(inst.id, (i) => i.status === 'running', 'running at generation 2');
  const now = await only(inst.id);
  assert.is.not(now.Id, old.Id);
  assert.is(now.Labels['poseidon.generation'], '2');
  assert.is(again.hostname, inst.hostname);
  assert.equal(again.endpoints.map((e) => e.hostname), inst.endpoints.map((e) => e.hostname));
});

it('a new epoch (re-placed on this same worker) replaces the container', async () => {
  const inst = await launch('ok');
  const flag = `flag{${rand()}-epoch2}`;
  await running(inst.id);
  const old = await only(inst.id);
  const replaced = await place(store, await record(inst.id), { spec: entry('ok').spec, worker: ME, publicKey: keys.publicKey, flag, now: clock });
  assert.is(replaced.epoch, 2);
  const again = await converge(inst.id, (i) => i.status === 'running' && i.epoch === 2, 'running at epoch 2');
  const now = await only(inst.id);
  assert.is.not(now.Id, old.Id);
  assert.is(now.Labels['poseidon.epoch'], '2');
  assert.is(again.hostname, inst.hostname);
  assert.is((await exec(now.Id, ['sh', '-c', 'echo "$FLAG"'])).out.trim(), flag, 'the flag sealed for epoch 2');
});

/** A running instance of `ok` here, then re-placed on OTHER (pending there). */
async function movedAway(): Promise<{ inst: Instance; moved: Instance; container: string }> {
  const inst = await launch('ok');
  await running(inst.id);
  const container = (await only(inst.id)).Id;
  const moved = await place(store, await record(inst.id), { spec: entry('ok').spec, worker: OTHER, publicKey: otherKeys.publicKey, flag: 'flag{moved}', now: clock });
  return { inst, moved, container };
}

it('placed on another worker: our container serves until the new placement runs, then goes', async () => {
  const { inst, moved, container } = await movedAway();
  const res = await pass(inst.id);
  assert.ok((res.requeueAfterMs ?? 0) > 0 && (res.requeueAfterMs ?? 0) <= MOVE_GRACE_MS, 'looks again within the grace');
  const kept = await only(inst.id);
  assert.equal([kept.Id, kept.State], [container, 'running'], 'make-before-break');
  assert.is((await record(inst.id)).updatedAt, moved.updatedAt, 'this worker writes nothing for a placement that is not its own');
  // The other worker reports its copy running.
  await store.compareAndUpdate(inst.id, { epoch: moved.epoch }, { status: 'running' }, clock);
  await pass(inst.id);
  assert.equal(await containersOf(inst.id), []);
  assert.equal(await networksOf(inst.id), []);
  const after = await record(inst.id);
  assert.equal([after.worker, after.epoch, after.status], [OTHER, 2, 'running']);
});

it('placed on another worker that never gets it running: our container goes after the grace', async () => {
  const { inst, container } = await movedAway();
  clock += MOVE_GRACE_MS - 1000;
  await pass(inst.id);
  assert.is((await only(inst.id)).Id, container, 'still within the grace');
  clock += 2000;
  await pass(inst.id);
  assert.equal(await containersOf(inst.id), []);
  assert.equal(await networksOf(inst.id), []);
  const after = await record(inst.id);
  assert.equal([after.worker, after.status], [OTHER, 'pending'], 'the new placement\'s status is left alone');
});

it('a status write is refused when the placement moved during the pass (fencing by epoch)', async () => {
  const inst = await launch('ok');
  // Right after this pass read the record, the manager re-places it and the other worker reports running.
  races.set(inst.id, async () => {
    const moved = await place(store, await record(inst.id), { spec: entry('ok').spec, worker: OTHER, publicKey: otherKeys.publicKey, flag: 'flag{elsewhere}', now: clock });
    await store.compareAndUpdate(inst.id, { epoch: moved.epoch }, { status: 'running', reason: undefined }, clock);
  });
  try { await pass(inst.id); } catch { /* a failed pass also writes nothing */ }
  assert.is(races.size, 0, 'the race ran');
  const after = await record(inst.id);
  assert.equal([after.worker, after.epoch, after.status, after.reason], [OTHER, 2, 'running', undefined], 'not overwritten by the stale pass');
  // The next pass reads the new placement and removes what the stale pass may have started.
  await pass(inst.id);
  assert.equal(await containersOf(inst.id), []);
  assert.equal(await networksOf(inst.id), []);
  assert.equal([(await record(inst.id)).status], ['running']);
});

it('a flag sealed for another worker, epoch, key, instance or version, or not at all, waits instead of launching', async () => {
  const flag = 'flag{not-for-you}';
  const cases: [string, Placing['sealedFlag']][] = [
    ['another worker', (i, epoch) => sealFor(i, flag, { worker: OTHER, publicKey: keys.publicKey, epoch })],
    ['another epoch', (i, epoch) => sealFor(i, flag, { worker: ME, publicKey: keys.publicKey, epoch: epoch + 1 })],
    ['another key', (i, epoch) => sealFor(i, flag, { worker: ME, publicKey: otherKeys.publicKey, epoch })],
    ['another instance (a copied seal)', (i, epoch) => sealFor({ id: newInstanceId(), specHash: i.specHash }, flag, { worker: ME, publicKey: keys.publicKey, epoch })],
    ['another version', (i, epoch) => sealedFlagField('0'.repeat(16), keys.publicKey, seal(keys.publicKey, flag, { instance: i.id, epoch, worker: ME }))],
    ['no seal yet', null],
  ];
  for (const [name, sealedFlag] of cases) {
    const inst = await launch('ok', { sealedFlag });
    await pass(inst.id);
    const after = await record(inst.id);
    assert.is(after.status, 'pending', name);
    assert.match(after.reason ?? '', /seal/, name);
    assert.equal(await containersOf(inst.id), [], `${name}: no container`);
    assert.equal(await networksOf(inst.id), [], `${name}: no network`);
  }
  // The manager seals it again for this placement: it launches.
  const inst = await launch('ok', { sealedFlag: null });
  await pass(inst.id);
  const current = await record(inst.id);
  await store.updateInstance(inst.id, { sealedFlag: sealFor(current, flag, { worker: ME, publicKey: keys.publicKey, epoch: current.epoch }) }, clock);
  await running(inst.id);
  assert.is((await exec((await only(inst.id)).Id, ['sh', '-c', 'echo "$FLAG"'])).out.trim(), flag);
});

it('a version this worker does not know waits with the reason', async () => {
  const inst = await launch('ok', { specHash: 'f'.repeat(16) });
  await pass(inst.id);
  const after = await record(inst.id);
  assert.is(after.status, 'pending');
  assert.match(after.reason ?? '', /version f{16} is not known on worker w-here/);
  assert.equal(await containersOf(inst.id), []);
});

it('containers whose instance has no record are removed only once the resync cleared them', async () => {
  const inst = await launch('ok');
  await running(inst.id);
  await store.deleteInstance(inst.id);
  await pass(inst.id);
  assert.is((await containersOf(inst.id)).length, 1, 'an engine event alone must not bypass the breaker');
  assert.is((await networksOf(inst.id)).length, 1);
  cleared.add(inst.id);
  await pass(inst.id);
  assert.equal(await containersOf(inst.id), []);
  assert.equal(await networksOf(inst.id), []);
});

it('stop: container, network and flag file go; stopped on request with finishedAt; then nothing more', async () => {
  const inst = await launch('filed');
  await running(inst.id);
  assert.ok(existsSync(path.join(dataDir, 'flags', inst.id)));
  await store.updateInstance(inst.id, { desired: 'stopped' }, clock);
  await pass(inst.id);
  assert.equal(await containersOf(inst.id), []);
  assert.equal(await networksOf(inst.id), []);
  assert.not.ok(existsSync(path.join(dataDir, 'flags', inst.id)), 'flag file removed');
  const stopped = await record(inst.id);
  assert.equal([stopped.status, stopped.reason, stopped.endpoints, stopped.finishedAt], ['stopped', 'stopped on request', [], clock]);
  await pass(inst.id);
  assert.is((await record(inst.id)).updatedAt, stopped.updatedAt);
});

it('expiry tears down and says so', async () => {
  const inst = await launch('ok');
  await running(inst.id);
  clock = inst.expiresAt;
  await pass(inst.id);
  assert.equal(await containersOf(inst.id), []);
  assert.equal(await networksOf(inst.id), []);
  const stopped = await record(inst.id);
  assert.equal([stopped.status, stopped.reason, stopped.endpoints, stopped.finishedAt], ['stopped', 'expired', [], clock]);
  clock += 1000;
});

it('a crashing container is recreated with the exit code shown, and fails after 5 crashes', async () => {
  const inst = await launch('crashy');
  let most = 0;
  const seen = await converge(inst.id, (i) => /exited with code 3/.test(i.reason ?? ''), 'a crash reported');
  assert.is(seen.status, 'starting');
  const failed = await until('failed after repeated crashes', async () => {
    try { await pass(inst.id); } catch { /* each crash is a transient error */ }
    most = Math.max(most, (await containersOf(inst.id)).length);
    const i = await record(inst.id);
    return i.status === 'failed' ? i : undefined;
  }, 90_000, 250);
  assert.ok(most <= 1, 'never two containers');
  assert.match(failed.reason ?? '', /exited 5 times \(last code 3\)/);
  await pass(inst.id);
  assert.equal(await containersOf(inst.id), []);
  assert.equal(await networksOf(inst.id), []);
  const final = await record(inst.id);
  assert.equal([final.status, final.finishedAt], ['failed', clock]);
  assert.match(final.reason ?? '', /exited 5 times/, 'the reason survives the teardown');
});

it('a container the engine refuses to start is retried with the reason shown, and fails after 5 attempts', async () => {
  const inst = await launch('baduser');
  const seen = await converge(inst.id, (i) => /failed to start/.test(i.reason ?? ''), 'a start failure reported');
  assert.is(seen.status, 'starting');
  assert.match(seen.reason ?? '', /unable to find user nosuchuser/);
  const failed = await converge(inst.id, (i) => i.status === 'failed', 'failed');
  assert.match(failed.reason ?? '', /^container failed to start 5 times: .*unable to find user nosuchuser/);
  await pass(inst.id);
  assert.equal(await containersOf(inst.id), []);
  assert.equal(await networksOf(inst.id), []);
});

it('a launch cut short after its create (the gateway join failed) resumes: the gateway joins before the start', async () => {
  const gateway = `${mgr}-wgw`;
  await startProbe(mgr, gateway);
  let refuse = true;
  // The engine refuses the first join (as under a network race); the create runs meanwhile.
  const flaky = new Proxy(runtime, {
    get(target, prop) {
      if (prop === 'connect') {
        return async (network: string, container: string) => {
          if (refuse) { refuse = false; throw new Error('connect refused by the test'); }
          return target.connect(network, container);
        };
      }
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  }) as DockerRuntime;
  const rec = reconciler({ runtime: flaky, gatewayContainer: gateway });
  const ctx = () => ({ signal: new AbortController().signal, now: () => new Date(clock) });
  const inst = await launch('ok');
  // Passes before it wait for this reconciler's image check.
  const first = await until(`${inst.id} launch`, () => rec(ctx(), inst.id).then(() => undefined, (err: Error) => err.message), 60_000, 100);
  assert.match(first, /connect refused by the test/);
  assert.is((await only(inst.id)).State, 'created', 'created while the join failed, not started');
  const up = await until(`${inst.id} running`, async () => {
    try { await rec(ctx(), inst.id); } catch { /* transient: the work queue retries */ }
    const i = await record(inst.id);
    return i.status === 'running' ? i : undefined;
  }, 90_000, 250);
  assert.is(up.reason, undefined);
  const [net] = await networksOf(inst.id);
  assert.ok((await runtime.networksOf(gateway)).includes(net?.Name ?? '?'), 'the gateway joined the instance network');
});

it('a failing health check fails the instance, then nothing runs', async () => {
  const inst = await launch('sick');
  const failed = await converge(inst.id, (i) => i.status === 'failed', 'failed');
  assert.match(failed.reason ?? '', /health check failed/);
  await pass(inst.id);
  assert.equal(await containersOf(inst.id), []);
  assert.equal(await networksOf(inst.id), []);
});

it('an image that cannot be pulled fails the instance with the reason, creating nothing', async () => {
  const inst = await launch('noimage');
  const failed = await converge(inst.id, (i) => i.status === 'failed', 'failed');
  assert.match(failed.reason ?? '', /^image 127\.0\.0\.1:1\/none:1 is not available on worker w-here: docker pull 127\.0\.0\.1:1\/none:1 failed/);
  assert.equal(await containersOf(inst.id), []);
  assert.equal(await networksOf(inst.id), []);
  const images = (await fleet.list()).images[ME] ?? {};
  assert.is(images['127.0.0.1:1/none:1']?.state, 'failed', 'reported to the fleet');
});

it('an image VOLUME gets a size-limited tmpfs (no anonymous volume); user "1234" runs as uid 1234', async () => {
  const inst = await launch(VOL);
  await running(inst.id);
  const c = await only(inst.id);
  const info = await docker.getContainer(c.Id).inspect();
  const opts = `rw,nosuid,nodev,size=${4 << 20}`;
  assert.equal(info.HostConfig.Tmpfs, { '/tmp': opts, '/data': opts });
  assert.equal(info.Mounts.filter((m) => m.Type === 'volume'), [], 'no unbounded anonymous volume');
  const mounts = await exec(c.Id, ['grep', ' /data ', '/proc/mounts']);
  assert.match(mounts.out, /^tmpfs \/data tmpfs .*size=4096k/);
  assert.is((await exec(c.Id, ['id', '-u'])).out.trim(), '1234');
  assert.match((await exec(c.Id, ['grep', '^Uid:', '/proc/1/status'])).out, /^Uid:\s+1234\s/, 'the main process too');
  const image = await docker.getImage(entry(VOL).image).inspect();
  assert.is(image.Config.Labels?.['poseidon.managed-by'], mgr, 'built here, labelled for cleanup');
});

it('readOnly:false with a size on an engine without disk quotas: created anyway, without StorageOpt', async () => {
  assert.is((await runtime.info()).diskQuota, false, 'precondition: overlay2 on ext4/extfs has no quota');
  const inst = await launch('writable');
  await running(inst.id);
  const c = await only(inst.id);
  const info = await docker.getContainer(c.Id).inspect();
  assert.is(info.HostConfig.ReadonlyRootfs, false);
  assert.equal(Object.keys(info.HostConfig.StorageOpt ?? {}), [], 'no --storage-opt size');
  assert.is((await exec(c.Id, ['sh', '-c', 'echo hi > /written && cat /written'])).out.trim(), 'hi');
});

t.run();
