/**
 * `npm run bench launch`: issue 11's launch goals on the host engine, each against the raw Engine
 * API doing the same work in the same run (`launch-raw.ts`), with medians of interleaved runs and
 * a per-phase breakdown of Poseidon's launches (queue, network, create, start, ready, route).
 *
 * Two `poseidon serve` processes (Redis store, embedded worker, a gateway stand-in) run side by
 * side: `cold` without a network pool, `pooled` with one (BENCH_NETWORK_POOL networks, default 8). Launches go one at a time,
 * rotating raw / cold / pooled, each torn down before the next. The burst fires N launches at
 * once at `pooled` (over keep-alive connections opened first, `burst-client.ts`; the same POSTs
 * at a bare fastify route give the floor of a burst's POST latency) and compares the time until every one runs with the raw engine doing the same
 * N at its best concurrency. A third server, `warm`, keeps a warm pool (BENCH_WARM_POOL members,
 * default 3) of the same service with its flag as a file: its launches claim a member (goal 3).
 * Last, the same burst at an `event` server, set up as for an event's start: started with the
 * default settings, then given live, as an admin would (`PUT /v1/workers/:id/launch-settings`), a
 * network pool as large as the burst, filled before it, and a launch concurrency of
 * BENCH_EVENT_CONCURRENCY (default 8); it starts after the raw measurements and once `pooled` and
 * everything it made are gone, so the raw baseline's engine held none of its networks. Each burst
 * is judged against a raw burst of the same size measured just before it (the VM's speed drifts
 * over the minutes between them).
 * Sizes: BENCH_LAUNCH_RUNS (default 15), BENCH_LAUNCH_BURST (100); BENCH_LAUNCH_CONCURRENCY sets
 * POSEIDON_LAUNCH_CONCURRENCY of the servers (default: Poseidon's).
 * Everything created carries its server's manager id (or the raw label) and is removed by it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Docker from 'dockerode';
import { Catalog } from '../src/catalog/catalog.ts';
import { loadSnapshot } from '../src/catalog/load-snapshot.ts';
import type { ChallengeSpec } from '../src/core/challenge.ts';
import { POOL_TEAM } from '../src/core/instance.ts';
import { cleanupByLabel, testManagerId } from '../spec/helpers/docker.ts';
import { cleanupRedisPrefix } from '../spec/helpers/redis.ts';
import type { BenchResult } from './harness.ts';
import { phases, PHASES, type Phase, type Timeline } from './launch-observer.ts';
import { RawEngine, type RawTiming } from './launch-raw.ts';
import { bareServer, burstPosts } from './burst-client.ts';
import { benchServe, type BenchServe } from './launch-serve.ts';

const SOCKET = '/var/run/docker.sock';
const RUNS = Number(process.env.BENCH_LAUNCH_RUNS ?? 15);
const BURST = Number(process.env.BENCH_LAUNCH_BURST ?? 100);
/** The `pooled` server's POSEIDON_NETWORK_POOL (BENCH_NETWORK_POOL, default 8). */
const NETWORK_POOL = Number(process.env.BENCH_NETWORK_POOL ?? 8);
/** POSEIDON_LAUNCH_CONCURRENCY of the `event` server (BENCH_EVENT_CONCURRENCY, default 8), whose network pool is as large as the burst. */
const EVENT_CONCURRENCY = Number(process.env.BENCH_EVENT_CONCURRENCY ?? 8);
/** POSEIDON_LAUNCH_CONCURRENCY of every server (BENCH_LAUNCH_CONCURRENCY; unset: Poseidon's default). */
const CONCURRENCY: Record<string, string> = process.env.BENCH_LAUNCH_CONCURRENCY ? { POSEIDON_LAUNCH_CONCURRENCY: process.env.BENCH_LAUNCH_CONCURRENCY } : {};
/** Concurrency levels the raw engine is tried at to find its best. */
const LEVELS = [1, 2, 4, 6, 8, 12];

export const WEB = [
  'image: busybox:1.35',
  'command: [sh, -c, "mkdir -p /tmp/w && echo ok > /tmp/w/index.html && exec httpd -f -p 8080 -h /tmp/w"]',
  'expose: [{ name: web, port: 8080 }]',
  'healthcheck: { type: http, port: web, path: / }',
];

/** The warm-pool side: the same service, its flag as a file, a pool of WARM_POOL members. */
const WARM_POOL = Number(process.env.BENCH_WARM_POOL ?? 3);
const WARM = [...WEB, 'flag: { file: /flag.txt }', `pool: { size: ${WARM_POOL} }`];

export function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] ?? NaN;
}
const ms = (x: number): string => `${Math.round(x)} ms`;
const ratio = (a: number, b: number): string => `${(a / b).toFixed(2)}x`;

export async function specOf(work: string): Promise<ChallengeSpec> {
  const dir = path.join(work, 'raw-spec', 'web');
  const { mkdirSync, writeFileSync } = await import('node:fs');
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'challenge.yaml'), ['id: web', 'name: web', ...WEB, ''].join('\n'));
  const catalog = new Catalog();
  catalog.apply(await loadSnapshot({ revision: 'bench', root: path.join(work, 'raw-spec'), path: '.' }), Date.now());
  const e = catalog.get('web');
  if (!e) throw new Error('bench challenge did not load');
  return e.spec;
}

function breakdown(name: string, timelines: readonly Timeline[]): string {
  const rows = timelines.map(phases);
  const cells = PHASES.map((p: Phase) => `${p} ${Math.round(quantile(rows.map((r) => r[p]), 0.5))}`);
  return `${name} phase medians (ms): ${cells.join(', ')}`;
}

function rawBreakdown(timings: readonly RawTiming[]): string {
  const keys = ['networkMs', 'createMs', 'startMs', 'readyMs'] as const;
  return `raw phase medians (ms): ${keys.map((k) => `${k.replace('Ms', '')} ${Math.round(quantile(timings.map((t) => t[k]), 0.5))}`).join(', ')}`;
}

/** One Poseidon launch, timed from the POST to running with its route, then stopped. */
async function poseidonOnce(s: BenchServe): Promise<Timeline> {
  const { id, timeline } = await s.launch('web');
  await s.stop(id);
  return timeline;
}

const total = (t: Timeline): number => Math.max(t.running ?? Infinity, t.route ?? Infinity) - t.post;

interface Sequential { raw: RawTiming[]; cold: Timeline[]; pooled: Timeline[] }

async function sequential(raw: RawEngine, cold: BenchServe, pooled: BenchServe): Promise<Sequential> {
  const out: Sequential = { raw: [], cold: [], pooled: [] };
  const steps: (() => Promise<void>)[] = [
    async () => { const l = await raw.launch(); out.raw.push(l.timing); await raw.remove(l); },
    async () => { out.cold.push(await poseidonOnce(cold)); },
    async () => { out.pooled.push(await poseidonOnce(pooled)); },
  ];
  for (let i = 0; i < RUNS; i++) {
    // Rotate the order so no side always runs right after another's teardown.
    for (let k = 0; k < steps.length; k++) await (steps[(i + k) % steps.length] as () => Promise<void>)();
  }
  return out;
}

/**
 * Resolves once `s`'s pool of `warm` is at rest: every member running, none starting (a refill
 * starting a container while a claim is timed measures the engine's busy time, not the claim).
 */
async function poolAtRest(s: BenchServe): Promise<void> {
  for (let n = 0; n < 1200; n++) {
    const members = (await s.store.listInstances({ team: POOL_TEAM, challenge: 'warm' })).filter((m) => m.desired === 'running');
    if (members.length === WARM_POOL && members.every((m) => m.status === 'running')) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('the warm pool did not refill within 60 s');
}

/**
 * One launch of the pooled challenge once a member runs: POST -> running for its owner with its
 * route. `claimed`: it took a member (placed before it was requested), not a cold start.
 */
async function warmOnce(s: BenchServe): Promise<{ totalMs: number; claimed: boolean }> {
  await poolAtRest(s);
  const { id, timeline } = await s.launch('warm');
  const routed = await s.observer.routedFromNow(timeline.hostname ?? '');
  const inst = await s.store.getInstance(id);
  const totalMs = Math.max(timeline.running ?? Infinity, routed) - timeline.post;
  await s.stop(id);
  return { totalMs, claimed: inst?.placedAt !== undefined && inst.placedAt < inst.createdAt };
}

async function bestConcurrency(raw: RawEngine): Promise<{ level: number; wallMs: number; table: string }> {
  const probe = Math.min(BURST, 36);
  const rows: { level: number; perSec: number }[] = [];
  for (const level of LEVELS) {
    const { wallMs } = await raw.burst(probe, level);
    rows.push({ level, perSec: (probe * 1000) / wallMs });
  }
  const best = rows.reduce((a, b) => (b.perSec > a.perSec ? b : a));
  const { wallMs } = await raw.burst(BURST, best.level);
  return { level: best.level, wallMs, table: rows.map((r) => `${r.level}: ${r.perSec.toFixed(1)}/s`).join(', ') };
}

/** The same burst of POSTs, same client, at a bare fastify route in its own process: p99 ms. */
async function bareBurstP99(): Promise<number> {
  const bare = await bareServer();
  try {
    const bodies = Array.from({ length: BURST }, (_, i) => JSON.stringify({ challenge: 'web', team: `bare-${i}` }));
    await burstPosts({ base: bare.url, warmPath: '/warm', postPath: '/bare', headers: {}, bodies }); // JIT
    return quantile((await burstPosts({ base: bare.url, warmPath: '/warm', postPath: '/bare', headers: {}, bodies })).map((a) => a.ms), 0.99);
  } finally {
    await bare.stop();
  }
}

/**
 * Resolves once `s`'s worker reports `size` pooled networks ready (made and joined by the
 * gateway; nothing of its runs then, so every pooled network is free), as an operator would
 * watch `poseidon workers`, or after 120 s: how many, and how long the fill took.
 */
async function poolFull(s: BenchServe, size: number): Promise<{ ready: number; ms: number }> {
  const t0 = Date.now();
  let ready = 0;
  for (const deadline = t0 + 120_000; Date.now() < deadline; await sleep(250)) {
    ready = await s.networkPoolReady();
    if (ready >= size) break;
  }
  return { ready, ms: Date.now() - t0 };
}

async function burst(s: BenchServe): Promise<{ wallMs: number; postP99: number; postMax: number; failed: number; timelines: Timeline[] }> {
  const t0 = Date.now();
  const posts = await s.burst('web', BURST);
  const timelines = await Promise.all(posts.map((p) => s.observer.done(p.id, 600_000)));
  const wallMs = Math.max(...timelines.map((t) => Math.max(t.running ?? 0, t.route ?? 0))) - t0;
  const failed = (await Promise.all(posts.map((p) => s.store.getInstance(p.id)))).filter((i) => i?.status !== 'running').length;
  const queue = [...posts];
  await Promise.all(Array.from({ length: 8 }, async () => { for (let p = queue.shift(); p; p = queue.shift()) await s.stop(p.id); }));
  return { wallMs, postP99: quantile(posts.map((p) => p.postMs), 0.99), postMax: Math.max(...posts.map((p) => p.postMs)), failed, timelines };
}

export async function run(): Promise<BenchResult[]> {
  const work = mkdtempSync(path.join(tmpdir(), 'poseidon-bench-launch-'));
  const docker = new Docker({ socketPath: SOCKET });
  const rawLabel = testManagerId();
  const servers: BenchServe[] = [];
  try {
    const raw = new RawEngine({ socketPath: SOCKET, label: rawLabel, spec: await specOf(work) });
    const cold = await benchServe({ name: 'cold', work, docker, challenges: { web: WEB }, env: { POSEIDON_NETWORK_POOL: '0', ...CONCURRENCY } });
    servers.push(cold);
    const pooled = await benchServe({ name: 'pooled', work, docker, challenges: { web: WEB }, env: { POSEIDON_NETWORK_POOL: String(NETWORK_POOL), ...CONCURRENCY } });
    servers.push(pooled);
    const warm = await benchServe({ name: 'warm', work, docker, challenges: { warm: WARM } });
    servers.push(warm);
    // Warm-up (images, JIT, connections): not measured.
    for (const s of [cold, pooled]) for (let i = 0; i < 2; i++) await poseidonOnce(s);
    await raw.remove(await raw.launch());
    const seq = await sequential(raw, cold, pooled);
    const rawTotals = seq.raw.map((t) => t.totalMs);
    const [r50, r95] = [quantile(rawTotals, 0.5), quantile(rawTotals, 0.95)];
    const coldTotals = seq.cold.map(total);
    const [c50, c95] = [quantile(coldTotals, 0.5), quantile(coldTotals, 0.95)];
    const p50 = quantile(seq.pooled.map(total), 0.5);
    console.log(`\n  launch bench: ${RUNS} interleaved runs each; machine: ${(await docker.info() as { NCPU: number; ServerVersion: string }).NCPU} cores, engine ${(await docker.version()).Version}`);
    console.log(`  ${rawBreakdown(seq.raw)}`);
    console.log(`  ${breakdown('cold', seq.cold)}`);
    console.log(`  ${breakdown('pooled', seq.pooled)}`);
    // Warm pool: one launch at a time, each once the pool is full again (the refill is not timed).
    await warmOnce(warm);
    const warmRuns: { totalMs: number; claimed: boolean }[] = [];
    for (let i = 0; i < RUNS; i++) warmRuns.push(await warmOnce(warm));
    const w50 = quantile(warmRuns.map((r) => r.totalMs), 0.5);
    const claims = warmRuns.filter((r) => r.claimed).length;
    console.log(`  warm pool (size ${WARM_POOL}): ${claims}/${RUNS} launches took a member; POST -> running with route: ${warmRuns.map((r) => Math.round(r.totalMs)).join(', ')} ms`);
    const best = await bestConcurrency(raw);
    console.log(`  raw engine launches per second by concurrency: ${best.table}; best ${best.level}`);
    const bareP99 = await bareBurstP99();
    const free = await poolFull(pooled, NETWORK_POOL);
    const b = await burst(pooled);
    console.log(`  ${breakdown(`burst of ${BURST} (${free.ready} of ${NETWORK_POOL} pooled networks ready at its start)`, b.timelines)}`);
    // The settings for an event's start: a network pool as large as the burst, filled before it
    // (after every raw measurement: its networks make the engine slower for everyone).
    await pooled.close();
    await cleanupByLabel(pooled.managerId);
    await cleanupRedisPrefix(`${pooled.managerId}:`);
    // The raw engine again, just before the event burst: this VM's speed drifts over the minutes
    // between the two bursts, so each burst is judged against the raw burst next to it.
    const { wallMs: rawAgainMs } = await raw.burst(BURST, best.level);
    console.log(`  raw burst of ${BURST} at ${best.level}: ${ms(best.wallMs)} before the default-settings burst, ${ms(rawAgainMs)} before the event burst`);
    // Started with the default settings; an admin applies the event settings live, as before a CTF's start.
    const event = await benchServe({ name: 'event', work, docker, challenges: { web: WEB }, env: { ...CONCURRENCY } });
    servers.push(event);
    await poseidonOnce(event);
    await event.launchSettings({ networkPool: BURST, launchConcurrency: EVENT_CONCURRENCY });
    const fill = await poolFull(event, BURST);
    const e = await burst(event);
    console.log(`  ${breakdown(`burst of ${BURST} with the event settings (${fill.ready} of ${BURST} pooled networks ready at its start, filled in ${(fill.ms / 1000).toFixed(1)} s after the settings were applied)`, e.timelines)}`);
    const burstRow = (name: string, r: typeof b, rawMs: number): BenchResult => ({
      name,
      measured: `all running in ${ms(r.wallMs)} (${ratio(r.wallMs, rawMs)}), POST p99 ${r.postP99.toFixed(1)} ms (${ratio(r.postP99, bareP99)} bare; max ${r.postMax.toFixed(1)}), ${r.failed} failed`,
      baseline: `raw engine, same ${BURST} at its best concurrency (${best.level}), measured just before: ${ms(rawMs)}; the same ${BURST} POSTs, same client, at a bare fastify route: p99 ${bareP99.toFixed(1)} ms`,
      target: 'all running <= 1.2x raw, POST p99 <= 20 ms, none failed',
      ok: r.wallMs <= 1.2 * rawMs && r.postP99 <= 20 && r.failed === 0,
    });
    return [
      {
        name: 'goal 1: cold launch (no pool), POST -> running with route',
        measured: `p50 ${ms(c50)} (${ratio(c50, r50)}), p95 ${ms(c95)} (${ratio(c95, r95)})`,
        baseline: `raw network + create + start + first answer: p50 ${ms(r50)}, p95 ${ms(r95)}`,
        target: 'p50 <= 1.15x raw, p95 <= 1.3x raw', ok: c50 <= 1.15 * r50 && c95 <= 1.3 * r95,
      },
      {
        name: 'goal 2: launch with the network pool',
        measured: `p50 ${ms(p50)} (${ratio(p50, r50)})`, baseline: `raw p50 ${ms(r50)}`, target: 'p50 <= 1.0x raw', ok: p50 <= r50,
      },
      {
        name: 'goal 3: launch from a warm pool (claim -> running for the owner, with route)',
        measured: `p50 ${ms(w50)} (${ratio(w50, c50)} of cold), ${claims}/${RUNS} claims`,
        baseline: `cold launch p50 ${ms(c50)} (goal 1, same run)`,
        target: 'p50 <= 100 ms and <= 0.2x cold', ok: w50 <= 100 && w50 <= 0.2 * c50 && claims === RUNS,
      },
      burstRow(`goal 4: burst of ${BURST} launches for ${BURST} teams at once (network pool ${NETWORK_POOL}, launch concurrency ${CONCURRENCY.POSEIDON_LAUNCH_CONCURRENCY ?? 'default'})`, b, best.wallMs),
      burstRow(`goal 4: the same burst with the event settings set live (network pool ${BURST}, filled before; launch concurrency ${EVENT_CONCURRENCY})`, e, rawAgainMs),
    ];
  } finally {
    for (const s of servers) {
      await s.close().catch(() => undefined);
      await cleanupByLabel(s.managerId);
      await cleanupRedisPrefix(`${s.managerId}:`);
    }
    await cleanupByLabel(rawLabel);
    rmSync(work, { recursive: true, force: true });
  }
}
