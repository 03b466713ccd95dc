/**
 * `npm run bench scale`: one manager with 10,000 desired instances in Redis (issue 11 goal 6).
 * The instances are admitted, placed on a registered worker, sealed and `running`, so the
 * manager's pass over every one of them (the periodic resync) has nothing to do. Measured:
 * - the no-op resync: the instance view's full refresh (every record from Redis), then the
 *   manager's controller enqueues every id and its placement pass checks each (on the view's
 *   copy, as the manager runs it), against what that at least needs in the same run (listing
 *   every record from Redis, plus listing the engine's containers);
 * - memory: the RSS of this process (it also holds the benchmark: an upper bound), and of a real
 *   `poseidon serve` (manager and embedded worker) whose Redis holds 10,000 records (finished
 *   ones, so that nothing launches on this machine), run as the image runs it (the bundle of
 *   `npm run build`) and as `npm start` runs it (the sources through tsx);
 * - the Traefik file for the 10,000 routes rendered, serialised and written (atomically).
 * Needs Redis at POSEIDON_TEST_REDIS_URL and the local Docker engine. Size: BENCH_SCALE (10000).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Controller } from '../src/controller/controller.ts';
import { FleetView } from '../src/controller/fleet-view.ts';
import { PLACEMENT_CONCURRENCY, placementReconciler } from '../src/controller/placement-reconciler.ts';
import { newSealingKeys } from '../src/core/seal.ts';
import type { Instance } from '../src/core/instance.ts';
import { ownerKey, portHostname, newInstanceId } from '../src/core/naming.ts';
import { playerEndpoints } from '../src/gateway/exposure.ts';
import { InstanceIndex } from '../src/gateway/instance-index.ts';
import { TraefikFileWriter } from '../src/gateway/file-writer.ts';
import type { GatewayRoute } from '../src/gateway/traefik.ts';
import { TraefikFileRenderer } from '../src/gateway/traefik-file.ts';
import { DockerRuntime } from '../src/runtime/docker.ts';
import { MemoryFleet } from '../src/store/memory-fleet.ts';
import { RedisStore } from '../src/store/redis.ts';
import { REDIS_URL } from '../spec/helpers/deps.ts';
import { cleanupRedisPrefix } from '../spec/helpers/redis.ts';
import { sealFor, testOwner } from '../spec/helpers/worker.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import { cleanupByLabel, testManagerId } from '../spec/helpers/docker.ts';
import { freePort, startServe } from '../spec/helpers/server.ts';
import { loadCatalog, webCatalog, type BenchResult } from './harness.ts';

const N = Number(process.env.BENCH_SCALE ?? 10_000);
const RUNS = 3;
const WORKER = 'w-scale';
const SILENT = { debug() {}, info() {}, warn() {}, error() {} };
const BASE = 'ctf.example.org';

function median(xs: number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

/** VmRSS of a process, in MB. */
function rssOf(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:')) ?? '';
  return Number(/(\d+)/.exec(line)?.[1] ?? 0) / 1024;
}

/**
 * Starts `serve` over a Redis prefix holding `N` finished instances of `challengesDir`'s `web`
 * (kept for an hour: every record is in the manager's view, nothing runs) and returns its peak
 * RSS over 15 s after it answers, once its listing of them is done.
 */
async function serveRss(challengesDir: string, work: string, image: boolean): Promise<{ mb: number; held: number; heapMb: number }> {
  const mgr = testManagerId();
  const prefix = `${mgr}:`;
  const store = new RedisStore({ url: REDIS_URL, prefix });
  const entry = (await loadCatalog(challengesDir)).get('web')!;
  const now = Date.now();
  try {
    for (let i = 0; i < N; i += 200) {
      await Promise.all(Array.from({ length: Math.min(200, N - i) }, async (_, j) => {
        const id = newInstanceId();
        const team = `team-${i + j}`;
        await store.createInstance({
          id, challenge: 'web', team, owner: ownerKey(entry.spec, team, undefined), generation: 1, epoch: 0, desired: 'running', status: 'pending',
          hostname: portHostname(id, entry.spec, 0, BASE), endpoints: [], specHash: entry.hash, createdAt: now, updatedAt: now, renewals: 0,
          expiresAt: now + 3_600_000, maxExpiresAt: now + 3_600_000,
        }, now);
        await store.updateInstance(id, { desired: 'stopped', status: 'stopped', reason: 'stopped on request', finishedAt: now }, now);
      }));
    }
    const metricsPort = await freePort();
    const serve = await startServe({
      POSEIDON_METRICS_ADDRESS: `127.0.0.1:${metricsPort}`,
      POSEIDON_API_KEY: 'bench-scale-key-0123456789', POSEIDON_FLAG_SECRET: 'bench-scale-secret-0123456789', REDIS_URL, POSEIDON_REDIS_PREFIX: prefix,
      POSEIDON_MANAGER_ID: mgr, POSEIDON_CHALLENGES_DIR: challengesDir, POSEIDON_TRAEFIK_DIR: path.join(work, 'serve-traefik'),
      POSEIDON_DATA_DIR: path.join(work, 'serve-data'), POSEIDON_RETENTION_SECONDS: '3600', POSEIDON_FIREWALL: 'off', POSEIDON_LOG_LEVEL: 'warn',
    }, [], { image });
    try {
      const pid = serve.proc.pid!;
      let mb = 0;
      for (let n = 0; n < 15; n++) {
        await sleep(1000);
        mb = Math.max(mb, rssOf(pid));
      }
      const res = await fetch(`${serve.url}/v1/instances?live=false`, { headers: { 'x-api-key': 'bench-scale-key-0123456789' } });
      const held = ((await res.json()) as { instances?: unknown[] }).instances?.length ?? 0;
      // Where it is: the V8 heap in use now (prom-client's default metric), against the peak RSS.
      const scraped = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
      if (!scraped.ok) throw new Error(`/metrics answered ${scraped.status}`);
      const metrics = await scraped.text();
      const heapMb = Number(/^nodejs_heap_size_used_bytes\S* (\d+(?:\.\d+)?(?:e\+\d+)?)/m.exec(metrics)?.[1] ?? 0) / 2 ** 20;
      return { mb, held, heapMb };
    } finally {
      await serve.stop();
    }
  } finally {
    await store.close();
    await cleanupByLabel(mgr);
    await cleanupRedisPrefix(prefix);
  }
}

export async function run(): Promise<BenchResult[]> {
  const { dir, catalog } = await webCatalog('scale', 8080);
  const entry = catalog.get('web')!;
  const prefix = `poseidon-bench-scale-${process.pid}:`;
  const store = new RedisStore({ url: REDIS_URL, prefix });
  const keys = newSealingKeys();
  const fleet = new MemoryFleet();
  const runtime = new DockerRuntime(testOwner());
  const index = new InstanceIndex(store, { refreshMs: 3_600_000, log: SILENT });
  try {
    await store.ping();
    await fleet.heartbeat({
      id: WORKER, address: '127.0.0.1', runtimes: ['runc'], labels: {}, capacity: { slots: N * 2, cpu: N, memoryBytes: N * 2 ** 30 },
      publicKey: keys.publicKey, version: 'bench', startedAt: Date.now(),
    });
    // Seed: admitted, placed, sealed and running, as the manager and the worker leave them.
    const now = Date.now();
    const endpointsOf = (id: string) => playerEndpoints(id, entry.spec, { baseDomain: BASE, tls: false });
    for (let i = 0; i < N; i += 200) {
      await Promise.all(Array.from({ length: Math.min(200, N - i) }, async (_, j) => {
        const id = newInstanceId();
        const team = `team-${i + j}`;
        const inst: Instance = {
          id, challenge: 'web', team, owner: ownerKey(entry.spec, team, undefined), generation: 1, epoch: 0, desired: 'running', status: 'pending',
          hostname: portHostname(id, entry.spec, 0, BASE), endpoints: [], specHash: entry.hash, createdAt: now, updatedAt: now, renewals: 0,
          expiresAt: now + 3_600_000, maxExpiresAt: now + 3_600_000,
        };
        await store.createInstance(inst, now);
        await store.assign(id, { epoch: 0 }, WORKER, {
          status: 'running', endpoints: endpointsOf(id), sealedFlag: sealFor(inst, 'flag{scale}', { worker: WORKER, publicKey: keys.publicKey, epoch: 1 }),
        }, now);
      }));
    }
    await index.start();
    const fleetView = new FleetView({ fleet, instances: index, lostAfterMs: 3_600_000, resources: () => entry.spec.resources });
    await fleetView.refresh();
    let writes = 0;
    const unsubscribe = store.onChange(() => { writes++; });
    const place = placementReconciler({
      store, catalog, fleet: fleetView, log: SILENT, remember: (inst) => index.put(inst), held: (id) => index.byId(id),
      settings: { baseDomain: BASE, tls: false, flagSecret: 'bench-flag-secret-0123456789', flagRetentionMs: 60_000, retentionMs: 60_000, onWorkerLost: 'reschedule' },
    });
    const controller = new Controller({ log: SILENT, resyncMs: 3_600_000, keys: () => store.listIds(), reconcile: place, sources: [], concurrency: PLACEMENT_CONCURRENCY });
    // Warm-up: JIT, script loading, connections.
    await store.listInstances();
    await controller.resync();
    await controller.queue.idle();
    const baseline: number[] = [];
    const pass: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      baseline.push(await timed(() => Promise.all([store.listInstances(), runtime.listContainers()])));
      // The pass decides on the view's copies, so the view's own full refresh (same period) is
      // counted in: the manager's work per resync period, not the pass alone.
      pass.push(await timed(async () => { await index.refresh(); await controller.resync(); await controller.queue.idle(); }));
    }
    await new Promise((r) => setTimeout(r, 200));
    unsubscribe();
    controller.stop();
    const [b, p] = [median(baseline), median(pass)];

    // The Traefik file of every route, as the gateway writes it.
    const routes: GatewayRoute[] = [];
    for (const inst of index.all()) {
      for (const e of inst.endpoints) routes.push({ instance: inst.id, challenge: inst.challenge, name: e.name, protocol: e.protocol, hostname: e.hostname, backend: `poseidon-${inst.id}:${e.port}` });
    }
    const opts = { baseDomain: BASE, entryPoints: ['web'], poseidonUrl: 'http://poseidon:8080' };
    // What the gateway pass does on every change (a launch, a stop): one route differs from the
    // last render, the rest are kept as text by its renderer. And from nothing (start-up).
    const renderer = new TraefikFileRenderer(opts);
    renderer.render(routes);
    let last = routes;
    const renders: number[] = [];
    const fresh: number[] = [];
    for (let r = 0; r < 3 + 7; r++) {
      // A fresh directory each time: the writer skips content already on disk.
      const writer = new TraefikFileWriter(path.join(dir, `traefik-${r}`));
      // One route differs from the last render (the route changed before stays as it was changed).
      last = last.map((x, k) => (k === r ? { ...x, backend: `poseidon-${x.instance}:${1000 + r}` } : x));
      const changed = last;
      const t = await timed(async () => { if (!(await writer.write(renderer.render(changed)))) throw new Error('not written'); });
      const cold = new TraefikFileWriter(path.join(dir, `traefik-cold-${r}`));
      const c = await timed(async () => { if (!(await cold.write(new TraefikFileRenderer(opts).render(routes)))) throw new Error('not written'); });
      if (r >= 3) { renders.push(t); fresh.push(c); }
    }
    const render = median(renders);
    (globalThis as { gc?: () => void }).gc?.();
    const rss = process.memoryUsage().rss / 2 ** 20;
    const work = mkdtempSync(path.join(tmpdir(), 'poseidon-bench-scale-serve-'));
    // Both forms: the sources through tsx (`npm start`) and the image's command (the bundle `npm run build` writes, with the Dockerfile's node flags).
    const served = await serveRss(dir, work, false).finally(() => rmSync(work, { recursive: true, force: true }));
    const work2 = mkdtempSync(path.join(tmpdir(), 'poseidon-bench-scale-serve-'));
    const bundled = await serveRss(dir, work2, true).finally(() => rmSync(work2, { recursive: true, force: true }));
    console.log(`\n  scale bench: ${N.toLocaleString('en')} instances, ${routes.length.toLocaleString('en')} routes; resync passes ${pass.map((x) => x.toFixed(0)).join(', ')} ms; baselines ${baseline.map((x) => x.toFixed(0)).join(', ')} ms; ${writes} writes during the passes`);
    return [
      {
        name: `goal 6: no-op resync of ${N.toLocaleString('en')} instances (manager)`,
        measured: `${p.toFixed(0)} ms median of ${RUNS} (${(p / b).toFixed(2)}x), ${writes} writes`,
        baseline: `list every record from Redis + list the engine's containers: ${b.toFixed(0)} ms`,
        target: '<= 1.5x baseline + 50 ms, no writes', ok: p <= 1.5 * b + 50 && writes === 0,
      },
      {
        name: `goal 6: memory of poseidon serve with ${N.toLocaleString('en')} instance records`,
        measured: `peak RSS over 15 s: the image's command ${bundled.mb.toFixed(0)} MB, sources through tsx ${served.mb.toFixed(0)} MB; V8 heap in use after it ${bundled.heapMb.toFixed(0)} / ${served.heapMb.toFixed(0)} MB (${bundled.held.toLocaleString('en')} / ${served.held.toLocaleString('en')} records listed by its API)`,
        baseline: `this benchmark process holding the view: ${rss.toFixed(0)} MB`, target: '<= 150 MB (the image\'s command: the bundle, node --max-semi-space-size=2)', ok: bundled.mb <= 150 && bundled.held === N && served.held === N,
      },
      {
        name: `goal 6: Traefik file for ${routes.length.toLocaleString('en')} routes rendered, serialised and written after one route changed`,
        measured: `${render.toFixed(1)} ms median (from nothing, as at start-up: ${median(fresh).toFixed(1)} ms)`, baseline: 'none (absolute)', target: '<= 100 ms', ok: render <= 100,
      },
    ];
  } finally {
    index.stop();
    await store.close();
    await cleanupRedisPrefix(prefix);
    rmSync(dir, { recursive: true, force: true });
  }
}
