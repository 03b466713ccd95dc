/**
 * Instance API throughput and p99 (autocannon, 127.0.0.1), against a bare fastify route measured
 * in the same run. Target: p99 within 2 ms of the baseline's, throughput at least half of it.
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
import { describe, load, type BenchResult, listenLocal, webCatalog } from './harness.ts';

const KEY = 'bench-key-0123456789';
const SECONDS = 5;


function judge(name: string, measured: Awaited<ReturnType<typeof load>>, base: Awaited<ReturnType<typeof load>>): BenchResult {
  const ok = measured.p99Ms <= base.p99Ms + 2 && measured.requestsPerSec >= base.requestsPerSec / 2 && measured.errors === 0;
  return { name, measured: describe(measured), baseline: describe(base), target: 'p99 <= baseline p99 + 2 ms, throughput >= 0.5 x baseline, no errors', ok };
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
    const basePost = await load({ url: `${bareUrl}/bare`, method: 'POST', headers, body, seconds: SECONDS });
    const post = await load({
      url: `${apiUrl}/v1/instances`, method: 'POST', headers, seconds: SECONDS,
      setupRequestFile: fileURLToPath(new URL('./requests/vary-team.cjs', import.meta.url)),
    });
    const [one] = await store.listInstances();
    const baseGet = await load({ url: `${bareUrl}/bare`, seconds: SECONDS });
    const get = await load({ url: `${apiUrl}/v1/instances/${one?.id ?? 'missing'}`, headers: { 'x-api-key': KEY }, seconds: SECONDS });
    return [judge('POST /v1/instances (Redis)', post, basePost), judge('GET /v1/instances/:id (Redis)', get, baseGet)];
  } finally {
    index.stop();
    await app.close();
    await bare.close();
    await store.close();
    await cleanupRedisPrefix(prefix);
    rmSync(dir, { recursive: true, force: true });
  }
}
