/**
 * Instance API throughput and p99 (autocannon, 127.0.0.1), against a bare fastify route measured
 * in the same run, in interleaved rounds (issue 11 goal 5: POST >= 0.5x with p99 <= 3 ms, GET
 * >= 0.7x). GET runs first, over 1,000 instances launched through the API.
 * POST rounds also load two more routes. `floor`: the bare route awaiting one no-op Lua script on
 * the same Redis through an auto-pipelined client, as the store sends its CREATE; no create can
 * beat it. `store`: the bare route making the store's own create of the record a launch makes
 * (`newInstance`, then `RedisStore.createInstance`: the CREATE script with its checks and its
 * change message, which still reaches the instance view), without the API's auth, schema
 * validation or response view; the API cannot beat it, so it says how much of a create's cost is
 * the store's and how much the API's. Every window reports the CPU it cost per answered request,
 * in this process (the servers and the load generator's thread) and in Redis (INFO cpu): on a
 * machine whose cores are all busy, throughput is the inverse of that sum, and the figures say
 * where a request's cost lies.
 * Uses the Redis store and the instance view, as `serve` does; needs Redis at POSEIDON_TEST_REDIS_URL.
 */
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import Fastify from 'fastify';
import type { Redis } from 'ioredis';
import { buildApp } from '../src/api/app.ts';
import { newInstance } from '../src/api/instance-routes.ts';
import { InstanceIndex } from '../src/gateway/instance-index.ts';
import { createRedisClient } from '../src/store/redis-client.ts';
import { RedisStore } from '../src/store/redis.ts';
import { cleanupRedisPrefix } from '../spec/helpers/redis.ts';
import { REDIS_URL } from '../spec/helpers/deps.ts';
import { apiClient } from '../spec/helpers/server.ts';
import { describe, load, type BenchResult, type LoadStats, listenLocal, webCatalog } from './harness.ts';

const KEY = 'bench-key-0123456789';
const SECONDS = 3;
/** Rounds of (bare, [floor,] API) windows, interleaved: this VM's speed moves between windows. */
const ROUNDS = 3;
/** Instances launched before the GET load. */
const POPULATION = 1000;

type LoadOpts = Parameters<typeof load>[0];

/** A measured window, with the CPU it cost per answered request (microseconds). */
interface Window extends LoadStats {
  /** This process: the servers and the load generator's thread. */
  cpuUs: number;
  /** The Redis server (everything it did during the window). */
  redisUs: number;
}

/** used_cpu_user + used_cpu_sys of the Redis server, in microseconds. */
async function redisCpuUs(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const field = (name: string): number => Number(new RegExp(`^${name}:([0-9.]+)`, 'm').exec(info)?.[1]);
  return (field('used_cpu_user') + field('used_cpu_sys')) * 1e6;
}

/** One window after a 1 s unmeasured warm-up, with its CPU per request. */
async function measured(opts: LoadOpts, redis: Redis): Promise<Window> {
  await load({ ...opts, seconds: 1, warmupSeconds: 0 });
  const [cpu0, redis0] = [process.cpuUsage(), await redisCpuUs(redis)];
  const stats = await load({ ...opts, warmupSeconds: 0 });
  const [cpu, redis1] = [process.cpuUsage(cpu0), await redisCpuUs(redis)];
  const n = Math.max(1, stats.requests);
  return { ...stats, cpuUs: (cpu.user + cpu.system) / n, redisUs: (redis1 - redis0) / n };
}

interface Rounds {
  /** The round with the median API / bare throughput ratio. */
  base: Window;
  api: Window;
  /** The floor routes' windows (POST), by name. */
  floors: Array<[string, Window]>;
  ratio: number;
  ratios: number[];
}

/** ROUNDS rounds of the bare route, the floor routes in order, then the API. */
async function interleaved(redis: Redis, sides: { base: LoadOpts; floors?: Array<[string, LoadOpts]>; api: LoadOpts }): Promise<Rounds> {
  const rounds: Omit<Rounds, 'ratios'>[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const base = await measured(sides.base, redis);
    const floors: Array<[string, Window]> = [];
    for (const [name, opts] of sides.floors ?? []) floors.push([name, await measured(opts, redis)]);
    const api = await measured(sides.api, redis);
    rounds.push({ base, api, floors, ratio: api.requestsPerSec / base.requestsPerSec });
  }
  const ratios = rounds.map((r) => r.ratio);
  const mid = [...rounds].sort((x, y) => x.ratio - y.ratio)[ROUNDS >> 1]!;
  return { ...mid, ratios };
}

/** What each floor route is, as the result line names it. */
const FLOORS: Record<string, string> = {
  floor: 'the same route awaiting one no-op Redis script (the floor of a create)',
  store: 'the same route making the store\'s create alone (no auth, validation or response view; its change message still reaches the instance view)',
};

const us = (w: Window): string => `${Math.round(w.cpuUs)} µs + Redis ${Math.round(w.redisUs)} µs`;
/** Throughput `w` would reach against `base` if CPU were the only limit (every core busy): their cost ratio. */
const byCpu = (w: Window, base: Window): string => `${(base.cpuUs / (w.cpuUs + w.redisUs)).toFixed(2)}x`;

/** Issue 11 goal 5: at least `minRatio` of the bare route's throughput, p99 within `p99` of `p99Ms`, no errors. */
function judge(name: string, r: Rounds, minRatio: number, p99: { ms: number; absolute: boolean }): BenchResult {
  const p99Ok = r.api.p99Ms <= (p99.absolute ? p99.ms : r.base.p99Ms + p99.ms);
  const ok = p99Ok && r.ratio >= minRatio && r.api.errors === 0;
  const floor = r.floors.map(([name, w]) => `; ${FLOORS[name] ?? name}: ${describe(w)} (${(w.requestsPerSec / r.base.requestsPerSec).toFixed(2)}x)`).join('');
  const floorsCpu = r.floors.map(([name, w]) => `, ${name} ${us(w)} (${byCpu(w, r.base)} by CPU)`).join('');
  const cpu = `CPU per request (this process, servers and load generator; Redis): bare ${us(r.base)}${floorsCpu}, API ${us(r.api)} (${byCpu(r.api, r.base)} by CPU)`;
  return {
    name, ok,
    measured: `${describe(r.api)} (${r.ratio.toFixed(2)}x; rounds ${r.ratios.map((x) => `${x.toFixed(2)}x`).join(', ')}); ${cpu}`,
    baseline: `bare fastify route, same round: ${describe(r.base)}${floor}`,
    target: `throughput >= ${minRatio}x baseline (median of ${ROUNDS} interleaved rounds), p99 <= ${p99.absolute ? `${p99.ms} ms` : `baseline p99 + ${p99.ms} ms`}, no errors`,
  };
}

export async function run(): Promise<BenchResult[]> {
  const { dir, catalog } = await webCatalog('api', 80);
  const prefix = `poseidon-bench-${process.pid}:`;
  const store = new RedisStore({ url: REDIS_URL, prefix });
  await store.ping();
  const lifecycle = { teamLimit: 0, capacity: 0, rateLimits: new Map(), renewMaxLoad: 1, idempotencyTtlMs: 60_000, flagSecret: 'bench-secret-0123456789', flagRetentionMs: 60_000 };
  const index = new InstanceIndex(store, { refreshMs: 10_000, log: { debug() {}, info() {}, warn() {}, error() {} } });
  await index.start();
  const app = buildApp({ store, catalog, apiKey: KEY, baseDomain: 'bench.test', lifecycle, index });
  const bare = Fastify();
  bare.get('/bare', async () => ({ ok: true }));
  bare.post('/bare', async (req) => ({ ok: true, got: req.body }));
  // The floor: the bare route plus one round trip to Redis, sent the way the store sends its CREATE.
  const floorRedis = createRedisClient(REDIS_URL, { enableAutoPipelining: true });
  floorRedis.defineCommand('poseidonBenchNoop', { numberOfKeys: 1, lua: 'return 1' });
  const noop = (floorRedis as Redis & { poseidonBenchNoop(key: string): Promise<number> }).poseidonBenchNoop.bind(floorRedis);
  bare.post('/floor', async (req) => ({ ok: (await noop(`${prefix}floor`)) === 1, got: req.body }));
  // The store floor: the bare route plus the store's create of a record like the API's, a new team each time.
  let teams = 0;
  bare.post('/store', async (req) => {
    const at = Date.now();
    const record = newInstance({ catalog, baseDomain: 'bench.test' }, { challenge: 'web', team: `store-${teams++}` }, at);
    const result = await store.createInstance(record, at, { teamLimit: 0, capacity: 0 });
    return { ok: result.created, got: req.body };
  });
  try {
    const [apiUrl, bareUrl] = [await listenLocal(app), await listenLocal(bare)];
    const headers = { 'x-api-key': KEY, 'content-type': 'application/json' };
    const body = JSON.stringify({ challenge: 'web', team: 'x' });
    // GET first, over a fixed population (1,000 launched through the API): measured after the
    // POST phase, its figure moved with how many records that phase left in the view.
    const api = apiClient(apiUrl, KEY);
    const ids: string[] = [];
    for (let i = 0; i < POPULATION; i += 50) {
      ids.push(...await Promise.all(Array.from({ length: 50 }, async (_, j) => {
        const res = await api('POST', '/v1/instances', { challenge: 'web', team: `pop-${i + j}` });
        if (res.status !== 202) throw new Error(`launch refused: ${res.status} ${JSON.stringify(res.body)}`);
        return res.body.id as string;
      })));
    }
    const get = await interleaved(floorRedis, {
      base: { url: `${bareUrl}/bare`, seconds: SECONDS },
      api: { url: `${apiUrl}/v1/instances/${ids[ids.length >> 1]}`, headers: { 'x-api-key': KEY }, seconds: SECONDS },
    });
    const post = await interleaved(floorRedis, {
      base: { url: `${bareUrl}/bare`, method: 'POST', headers, body, seconds: SECONDS },
      floors: [
        ['floor', { url: `${bareUrl}/floor`, method: 'POST', headers, body, seconds: SECONDS }],
        ['store', { url: `${bareUrl}/store`, method: 'POST', headers, body, seconds: SECONDS }],
      ],
      api: {
        url: `${apiUrl}/v1/instances`, method: 'POST', headers, seconds: SECONDS,
        setupRequestFile: fileURLToPath(new URL('./requests/vary-team.cjs', import.meta.url)),
      },
    });
    return [
      judge('goal 5: POST /v1/instances (Redis)', post, 0.5, { ms: 3, absolute: true }),
      judge(`goal 5: GET /v1/instances/:id (Redis, ${POPULATION.toLocaleString('en')} instances held)`, get, 0.7, { ms: 2, absolute: false }),
    ];
  } finally {
    index.stop();
    await app.close();
    await bare.close();
    floorRedis.disconnect();
    await store.close();
    await cleanupRedisPrefix(prefix);
    rmSync(dir, { recursive: true, force: true });
  }
}
