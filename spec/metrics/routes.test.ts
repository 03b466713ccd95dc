/**
 * Metrics over HTTP through the app (inject): `/metrics` behind the bearer token (problem+json
 * 401 otherwise), not on the API port without one, the separate listener's app, the summary for
 * operators and admins only, and HTTP metrics labelled by route template, never by raw URL.
 */
import { createHash } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { buildApp } from '../../src/api/app.ts';
import { parseApiKeys } from '../../src/api/auth.ts';
import { authzResult, bearerMatches, buildMetricsApp } from '../../src/api/metrics-routes.ts';
import { Catalog } from '../../src/catalog/catalog.ts';
import { listenAddress } from '../../src/metrics/compose.ts';
import { Metrics } from '../../src/metrics/metrics.ts';
import { MemoryStore } from '../../src/store/memory.ts';

const t = suite('metrics routes (inject)');
const ADMIN = 'metrics-admin-key-0123456789';
const OPERATOR = 'metrics-operator-key-0123456789';
const PLATFORM = 'metrics-platform-key-0123456789';
const TOKEN = 'metrics-bearer-token-0123456789';
const sha = (s: string): string => createHash('sha256').update(s).digest('hex');
const lifecycle = {
  teamLimit: 0, capacity: 0, rateLimits: new Map(), renewMaxLoad: 1, idempotencyTtlMs: 60_000,
  flagSecret: 'metrics-test-flag-secret', flagRetentionMs: 60_000,
};
const metrics = new Metrics();
const base = {
  store: new MemoryStore(), catalog: new Catalog(), apiKey: ADMIN, baseDomain: 'ctf.test', lifecycle,
  apiKeys: parseApiKeys([`ops:operator:${sha(OPERATOR)}`, `plat:platform:${sha(PLATFORM)}`]),
};
const app = buildApp({ ...base, metrics: { metrics, scrape: true, token: TOKEN } });
const noScrape = buildApp({ ...base, metrics: { metrics: new Metrics(), scrape: false } });
const separate = buildMetricsApp(metrics, TOKEN);

t.after(async () => {
  await app.close();
  await noScrape.close();
  await separate.close();
});

t('bearerMatches: exactly `Bearer <token>`', () => {
  const cases: [string | undefined, boolean][] = [
    [`Bearer ${TOKEN}`, true], [`bearer ${TOKEN}`, true], [`Bearer  ${TOKEN}`, true],
    [undefined, false], ['', false], [TOKEN, false], [`Basic ${TOKEN}`, false], [`Bearer ${TOKEN}x`, false],
    [`Bearer ${TOKEN.slice(0, -1)}`, false], [`Bearer ${TOKEN} extra`, false],
  ];
  for (const [header, want] of cases) assert.is(bearerMatches(header, TOKEN), want, String(header));
});

t('authzResult and listenAddress', () => {
  assert.equal([200, 204, 302, 401, 403, 410, 503].map(authzResult), ['allow', 'allow', 'redirect', 'deny', 'deny', 'deny', 'error']);
  assert.equal(listenAddress('127.0.0.1:9464'), { host: '127.0.0.1', port: 9464 });
  assert.equal(listenAddress('[::1]:9464'), { host: '::1', port: 9464 });
  assert.equal(listenAddress('metrics.internal:80'), { host: 'metrics.internal', port: 80 });
});

t('/metrics: 401 problem+json without the token (an API key is no substitute), the exposition with it', async () => {
  for (const headers of [{}, { authorization: `Bearer ${TOKEN}x` }, { authorization: `Basic ${TOKEN}` }, { 'x-api-key': ADMIN }]) {
    const res = await app.inject({ url: '/metrics', headers });
    assert.is(res.statusCode, 401, JSON.stringify(headers));
    assert.match(String(res.headers['content-type']), /^application\/problem\+json/);
    assert.is(res.json().code, 'E_UNAUTHORIZED');
    assert.match(String(res.headers['www-authenticate']), /^Bearer /);
    assert.not.ok(res.body.includes('poseidon_'));
  }
  const res = await app.inject({ url: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } });
  assert.is(res.statusCode, 200);
  assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  assert.match(res.body, /^poseidon_build_info\{version="[^"]+"\} 1$/m);
  assert.match(res.body, /^# TYPE poseidon_instance_launch_duration_seconds histogram$/m);
  assert.match(res.body, /^process_cpu_seconds_total /m);
  assert.not.match(res.body, /nodejs_active_handles_total/);
});

t('without a token /metrics is not on the API port (only on the separate address)', async () => {
  assert.is((await noScrape.inject('/metrics')).statusCode, 401);
  const res = await noScrape.inject({ url: '/metrics', headers: { 'x-api-key': ADMIN } });
  assert.is(res.statusCode, 404);
  assert.is(res.json().code, 'E_NOT_FOUND');
});

t('the separate listener serves /metrics only, with the token when one is set', async () => {
  assert.is((await separate.inject('/metrics')).statusCode, 401);
  assert.is((await separate.inject({ url: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } })).statusCode, 200);
  const other = await separate.inject('/v1/instances');
  assert.is(other.statusCode, 404);
  assert.match(String(other.headers['content-type']), /^application\/problem\+json/);
  const open = buildMetricsApp(metrics, undefined);
  const res = await open.inject('/metrics');
  await open.close();
  assert.is(res.statusCode, 200);
  assert.match(res.body, /poseidon_build_info/);
});

t('/v1/status/summary: operators and admins; platform keys 403; no key 401', async () => {
  assert.is((await app.inject('/v1/status/summary')).statusCode, 401);
  assert.is((await app.inject({ url: '/v1/status/summary', headers: { 'x-api-key': PLATFORM } })).statusCode, 403);
  for (const key of [OPERATOR, ADMIN]) {
    const res = await app.inject({ url: '/v1/status/summary', headers: { 'x-api-key': key } });
    assert.is(res.statusCode, 200);
    const s = res.json();
    assert.is(s.windowSeconds, 900);
    assert.is(s.launches.perMinute.length, 15);
    assert.equal(s.launchDuration, { count: 0, p50: null, p95: null, max: null });
    assert.equal(Object.keys(s.instances.byState).sort(), ['failed', 'pending', 'queued', 'running', 'starting', 'stopped', 'stopping']);
    assert.equal(s.breakers, []);
  }
});

t('HTTP metrics: labelled by route template and status, never by the raw URL or an odd method', async () => {
  const id = 'abcdef0123456789abcdef01';
  await app.inject({ url: `/v1/instances/${id}`, headers: { 'x-api-key': ADMIN } });
  await app.inject({ url: `/no/such/${id}`, headers: { 'x-api-key': ADMIN } });
  await app.inject({ method: 'PROPFIND' as 'GET', url: `/v1/instances/${id}`, headers: { 'x-api-key': ADMIN } });
  const body = (await app.inject({ url: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } })).body;
  assert.match(body, /poseidon_http_request_duration_seconds_count\{method="GET",route="\/v1\/instances\/:id",status="404"\} 1/);
  assert.match(body, /poseidon_http_request_duration_seconds_count\{method="GET",route="unmatched",status="404"\} 1/);
  assert.match(body, /poseidon_http_request_duration_seconds_count\{method="GET",route="\/metrics",status="401"\} \d+/);
  assert.not.ok(body.includes(id), 'an id from a URL became a label value');
  assert.not.ok(body.includes('PROPFIND'));
});

t.run();
