/**
 * The instance reconciler against the real engine and the embedded store, driven key by key:
 * we check the state of the world after each pass, not which calls were made.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Catalog } from '../../src/catalog/catalog.ts';
import { loadTestCatalog } from '../helpers/catalog.ts';
import { FlagFiles } from '../../src/controller/flag-files.ts';
import { instanceReconciler } from '../../src/controller/instance-reconciler.ts';
import { Semaphore } from '../../src/controller/semaphore.ts';
import { deriveFlag, flagDigest } from '../../src/core/flag.ts';
import type { Instance } from '../../src/core/instance.ts';
import { newInstanceId, ownerKey, portHostname } from '../../src/core/naming.ts';
import { DockerRuntime } from '../../src/runtime/docker.ts';
import { MemoryStore } from '../../src/store/memory.ts';
import { haveDocker } from '../helpers/deps.ts';
import { cleanupByLabel, docker, testManagerId } from '../helpers/docker.ts';
import { memoryLogger } from '../helpers/log.ts';

const t = suite('instance reconciler (real engine)');
const enabled = haveDocker();
const mgr = testManagerId();
const dir = mkdtempSync(path.join(tmpdir(), 'poseidon-rec-'));
const runtime = new DockerRuntime(mgr);
const store = new MemoryStore();
let catalog: Catalog;
let routeChanges = 0;
const orphansCleared = new Set<string>();
let clock = Date.now();
let built: ReturnType<typeof instanceReconciler> | undefined;
// Built once, after `before` loaded the catalog: the reconciler keeps per-process crash counts.
const reconcile = (c: ReturnType<typeof ctx>, id: string) => (built ??= instanceReconciler({
  store, runtime, catalog, flagFiles: new FlagFiles(path.join(dir, 'data')), log: memoryLogger(),
  settings: { managerId: mgr, flagSecret: 'x'.repeat(20), baseDomain: 'localhost', publishAddress: '', retentionMs: 60_000, flagRetentionMs: 60_000 },
  mayRemoveOrphan: (orphanId: string) => orphansCleared.has(orphanId),
  onRoutesChanged: () => { routeChanges++; },
  launches: new Semaphore(2),
}))(c, id);
const ctx = () => ({ signal: new AbortController().signal, now: () => new Date(clock) });

function challenge(id: string, lines: string[]): void {
  mkdirSync(path.join(dir, 'challenges', id), { recursive: true });
  writeFileSync(path.join(dir, 'challenges', id, 'challenge.yaml'), [`id: ${id}`, `name: ${id}`, ...lines, ''].join('\n'));
}
const HTTPD = 'command: [sh, -c, "mkdir -p /tmp/w && echo ok > /tmp/w/index.html && exec httpd -f -p 8080 -h /tmp/w"]';
const WEB = 'expose: [{ name: web, port: 8080 }]';

t.before(async () => {
  if (!enabled) return;
  challenge('ok', ['image: busybox:1.35', HTTPD, WEB, 'healthcheck: { type: http, port: web, path: / }']);
  challenge('sick', ['image: busybox:1.35', 'command: [sleep, "600"]', WEB, 'healthcheck: { type: command, command: ["false"], timeout: 1s }']);
  challenge('crashy', ['image: busybox:1.35', 'command: [sh, -c, "exit 3"]', WEB]);
  challenge('noimage', ['image: 127.0.0.1:1/poseidon-test/none:1', WEB]);
  catalog = await loadTestCatalog(path.join(dir, 'challenges'), { prepareOn: { worker: Object.assign(runtime, { id: 'local' }), managerId: mgr } });
});
t.after(async () => {
  if (enabled) await cleanupByLabel(mgr);
  rmSync(dir, { recursive: true, force: true });
});

async function launch(challengeId: string, team = 'red'): Promise<Instance> {
  const entry = catalog.get(challengeId)!;
  const id = newInstanceId();
  const inst: Instance = {
    id, challenge: challengeId, team, owner: ownerKey(entry.spec, team, undefined), generation: 1, desired: 'running',
    status: 'pending', hostname: portHostname(id, entry.spec, 0, 'localhost'), endpoints: [], specHash: entry.hash,
    createdAt: clock, updatedAt: clock, renewals: 0, expiresAt: clock + 600_000, maxExpiresAt: clock + 600_000,
  };
  assert.ok((await store.createInstance(inst, clock)).created);
  return inst;
}

/** Reconciles until `done` holds or 20 s pass; returns the last instance read. */
async function converge(id: string, done: (i: Instance | undefined) => boolean): Promise<Instance | undefined> {
  for (let n = 0; n < 100; n++) {
    try { await reconcile(ctx(), id); } catch { /* transient: retried, as the queue would */ }
    const inst = await store.getInstance(id);
    if (done(inst)) return inst;
    await sleep(200);
  }
  throw new Error(`did not converge: ${JSON.stringify(await store.getInstance(id))}`);
}

const containersOf = async (id: string) => docker.listContainers({ all: true, filters: { label: [`poseidon.instance=${id}`] } });
const it = (name: string, fn: () => Promise<void>) => t(name, async () => { if (enabled) await fn(); });

it('the catalog marks pullable-nowhere images missing and local ones ready', async () => {
  assert.is(catalog.get('ok')?.state, 'ready');
  assert.is(catalog.get('noimage')?.state, 'image-missing');
});

it('launches to running, and a further pass changes nothing', async () => {
  const inst = await launch('ok');
  const running = await converge(inst.id, (i) => i?.status === 'running');
  assert.is(running!.endpoints[0]?.backend, `poseidon-${inst.id}:8080`);
  const before = await containersOf(inst.id);
  const changes = routeChanges;
  await reconcile(ctx(), inst.id);
  await reconcile(ctx(), inst.id);
  const after = await store.getInstance(inst.id);
  assert.equal((await containersOf(inst.id)).map((c) => c.Id), before.map((c) => c.Id));
  assert.is(after!.updatedAt, running!.updatedAt, 'no status write on an idempotent pass');
  assert.is(routeChanges, changes);
});

it('a new generation replaces the container and keeps the hostname', async () => {
  const inst = await launch('ok', 'gen');
  await converge(inst.id, (i) => i?.status === 'running');
  const [old] = await containersOf(inst.id);
  await store.updateInstance(inst.id, { generation: 2, status: 'pending' }, clock);
  const again = await converge(inst.id, (i) => i?.status === 'running');
  const now = await containersOf(inst.id);
  assert.is(now.length, 1);
  assert.is.not(now[0]!.Id, old!.Id);
  assert.is(now[0]!.Labels['poseidon.generation'], '2');
  assert.is(again!.hostname, inst.hostname);
});

it('expiry tears down and says so; the record goes after retention', async () => {
  const inst = await launch('ok', 'exp');
  await converge(inst.id, (i) => i?.status === 'running');
  clock = inst.expiresAt;
  const res = await reconcile(ctx(), inst.id);
  assert.equal(await containersOf(inst.id), []);
  const stopped = await store.getInstance(inst.id);
  assert.equal([stopped!.status, stopped!.reason, stopped!.endpoints], ['stopped', 'expired', []]);
  assert.is(res.requeueAfterMs, 60_000);
  clock += 60_000;
  await reconcile(ctx(), inst.id);
  assert.is(await store.getInstance(inst.id), undefined);
  clock = Date.now();
});

it('a failing health check ends in failed with a reason, then nothing runs', async () => {
  const inst = await launch('sick');
  const failed = await converge(inst.id, (i) => i?.status === 'failed');
  assert.match(failed!.reason ?? '', /health check failed/);
  await reconcile(ctx(), inst.id);
  assert.equal(await containersOf(inst.id), []);
});

it('a crashing container is recreated with the exit code shown, and fails after repeated crashes', async () => {
  const inst = await launch('crashy');
  const seen = await converge(inst.id, (i) => /exited with code 3/.test(i?.reason ?? ''));
  assert.is(seen!.status, 'starting');
  assert.ok((await containersOf(inst.id)).length <= 1, 'never two containers');
  const failed = await converge(inst.id, (i) => i?.status === 'failed');
  assert.match(failed!.reason ?? '', /exited 5 times \(last code 3\)/);
});

it('a flag is recorded from the version that runs, so it verifies after the instance is gone', async () => {
  const inst = await launch('ok', 'flagged');
  await converge(inst.id, (i) => i?.status === 'running');
  const flag = deriveFlag('x'.repeat(20), { team: 'flagged', challenge: 'ok', instance: inst.id }, 'flag{%s}');
  const rec = await store.findFlag(flagDigest(flag));
  assert.equal([rec?.team, rec?.challenge, rec?.instance], ['flagged', 'ok', inst.id]);
});

it('missing images and unknown challenges fail with a reason instead of starting', async () => {
  const a = await launch('noimage');
  const fa = await converge(a.id, (i) => i?.status === 'failed');
  assert.match(fa!.reason ?? '', /image .* is not available/);
  const b = await launch('ok', 'ghost');
  await store.updateInstance(b.id, { status: 'pending' }, clock);
  const ghost = { ...(await store.getInstance(b.id))!, challenge: 'gone' };
  await store.deleteInstance(b.id);
  await store.createInstance(ghost, clock);
  const fb = await converge(b.id, (i) => i?.status === 'failed');
  assert.match(fb!.reason ?? '', /not in the catalog/);
});

it('objects whose instance has no record are removed only once the resync cleared them', async () => {
  const inst = await launch('ok', 'orphan');
  await converge(inst.id, (i) => i?.status === 'running');
  await store.deleteInstance(inst.id);
  await reconcile(ctx(), inst.id);
  assert.is((await containersOf(inst.id)).length, 1, 'an engine event alone must not bypass the breaker');
  orphansCleared.add(inst.id);
  await reconcile(ctx(), inst.id);
  assert.equal(await containersOf(inst.id), []);
  assert.equal(await docker.listNetworks({ filters: { label: [`poseidon.instance=${inst.id}`] } }), []);
});

t.run();
