/**
 * Instance API throughput and p99 (autocannon, 127.0.0.1), against a bare fastify route measured
 * in the same run, in interleaved rounds (issue 11 goal 5: POST >= 0.5x with p99 <= 3 ms, GET
 * >= 0.7x). GET runs first, over 1,000 instances launched through the API.
 * Uses the Redis store and the instance view, as `serve` does; needs Redis at POSEIDON_TEST_REDIS_URL.
 */
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import Fastify from 'fastify';
import { buildApp } from '../src/api/app.ts';
import { InstanceIndex } from '../src/gateway/instance-index.ts';
import { RedisStore } from '../src/store/redis.ts';
import { cleanupRedisPrefix } from '../spec/helpers/redis.ts';
import { REDIS_URL } from '../spec/helpers/deps.ts';
import { apiClient } from '../spec/helpers/server.ts';
import { describe, load, type BenchResult, type LoadStats, listenLocal, webCatalog } from './harness.ts';

const KEY = 'bench-key-0123456789';
const SECONDS = 3;
/** Rounds of (bare, API) windows, interleaved: this VM's speed moves between windows. */
const ROUNDS = 3;
/** Instances launched before the GET load. */
const POPULATION = 1000;

type LoadOpts = Parameters<typeof load>[0];

/** ROUNDS rounds of the bare route then the API; the round with the median throughput ratio, and every ratio. */
async function interleaved(base: LoadOpts, api: LoadOpts): Promise<{ base: LoadStats; api: LoadStats; ratio: number; ratios: number[] }> {
  const rounds: { base: LoadStats; api: LoadStats; ratio: number }[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const b = await load(base);
    const a = await load(api);
    rounds.push({ base: b, api: a, ratio: a.requestsPerSec / b.requestsPerSec });
  }
  const ratios = rounds.map((r) => r.ratio);
  const mid = [...rounds].sort((x, y) => x.ratio - y.ratio)[ROUNDS >> 1]!;
  return { ...mid, ratios };
}

/** Issue 11 goal 5: at least `minRatio` of the bare route's throughput, p99 within `p99` of `p99Ms`, no errors. */
function judge(name: string, r: Awaited<ReturnType<typeof interleaved>>, minRatio: number, p99: { ms: number; absolute: boolean }): BenchResult {
  const p99Ok = r.api.p99Ms <= (p99.absolute ? p99.ms : r.base.p99Ms + p99.ms);
  const ok = p99Ok && r.ratio >= minRatio && r.api.errors === 0;
  return {
    name, ok,
    measured: `${describe(r.api)} (${r.ratio.toFixed(2)}x; rounds ${r.ratios.map((x) => `${x.toFixed(2)}x`).join(', ')})`,
    baseline: `bare fastify route, same round: ${describe(r.base)}`,
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
    const get = await interleaved({ url: `${bareUrl}/bare`, seconds: SECONDS }, { url: `${apiUrl}/v1/instances/${ids[ids.length >> 1]}`, headers: { 'x-api-key': KEY }, seconds: SECONDS });
    const post = await interleaved({ url: `${bareUrl}/bare`, method: 'POST', headers, body, seconds: SECONDS }, {
      url: `${apiUrl}/v1/instances`, method: 'POST', headers, seconds: SECONDS,
      setupRequestFile: fileURLToPath(new URL('./requests/vary-team.cjs', import.meta.url)),
    });
    return [
      judge('goal 5: POST /v1/instances (Redis)', post, 0.5, { ms: 3, absolute: true }),
      judge(`goal 5: GET /v1/instances/:id (Redis, ${POPULATION.toLocaleString('en')} instances held)`, get, 0.7, { ms: 2, absolute: false }),
    ];
  } finally {
    index.stop();
    await app.close();
    await bare.close();
    await store.close();
    await cleanupRedisPrefix(prefix);
    rmSync(dir, { recursive: true, force: true });
  }
}
