/**
 * A real Prometheus (Debian's 2.42) scraping a real `poseidon serve` every second with the bearer
 * token, the alert rules loaded: after N launches PromQL answers N running; the exposition passes
 * `promtool check metrics`; every expression of the dashboard and the alert rules runs and names
 * metrics that exist; every rule evaluates healthy; `/metrics` needs the token (401 problem+json
 * without it, on the API port and on the separate address); no team, instance id or hostname
 * ever appears in a label value; the summary matches what happened.
 */
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { haveDocker, ROOT } from '../helpers/deps.ts';
import { cleanupByLabel, testManagerId } from '../helpers/docker.ts';
import { firstValue, havePrometheus, promtool, startPrometheus, type PrometheusProcess } from '../helpers/prometheus.ts';
import { apiClient, freePort, startServe, waitFor, type ServeProcess } from '../helpers/server.ts';
import { ALERTS, alertExpressions, dashboardExpressions, metricNames } from './expressions.ts';

const t = suite('metrics: a real Prometheus scraping poseidon serve');
const enabled = haveDocker() && havePrometheus();
const mgr = testManagerId();
const KEY = 'metrics-e2e-admin-key-0123456789';
const OPERATOR = 'metrics-e2e-operator-key-0123456789';
const TOKEN = 'metrics-e2e-bearer-token-0123456789';
const TEAMS = ['metricsteam-alpha', 'metricsteam-bravo', 'metricsteam-charlie'];
const N = TEAMS.length;
const work = mkdtempSync(path.join(tmpdir(), 'poseidon-metrics-'));
let server: ServeProcess | undefined;
let prom: PrometheusProcess | undefined;
let api: ReturnType<typeof apiClient>;
let metricsUrl = '';
const launched: { id: string; hostname: string; team: string }[] = [];

t.before(async () => {
  if (!enabled) return;
  const challenges = path.join(work, 'challenges');
  cpSync(path.join(ROOT, 'challenges', 'web-hello'), path.join(challenges, 'web-hello'), { recursive: true });
  const metricsPort = await freePort();
  metricsUrl = `http://127.0.0.1:${metricsPort}`;
  server = await startServe({
    POSEIDON_API_KEY: KEY, POSEIDON_MANAGER_ID: mgr, POSEIDON_CHALLENGES_DIR: challenges,
    POSEIDON_TRAEFIK_DIR: path.join(work, 'traefik'), POSEIDON_DATA_DIR: path.join(work, 'data'), POSEIDON_RESYNC_SECONDS: '2',
    POSEIDON_API_KEYS: `ops:operator:${createHash('sha256').update(OPERATOR).digest('hex')}`, POSEIDON_TEAM_LIMIT: '0',
    POSEIDON_METRICS_TOKEN: TOKEN, POSEIDON_METRICS_ADDRESS: `127.0.0.1:${metricsPort}`,
  });
  api = apiClient(server.url, KEY);
  prom = await startPrometheus({ target: new URL(server.url).host, token: TOKEN, ruleFiles: [ALERTS] });
});

t.after(async () => {
  if (!enabled) return;
  await prom?.stop();
  await server?.stop();
  await cleanupByLabel(mgr);
  rmSync(work, { recursive: true, force: true });
});

const it = (name: string, fn: () => Promise<void>) => t(name, async () => { if (enabled) await fn(); });

/** Waits (bounded) until `expr`'s first sample satisfies `ok`; returns it. */
async function promWait(expr: string, ok: (v: number) => boolean, timeoutMs = 60_000): Promise<number> {
  return waitFor(`Prometheus: ${expr}`, async () => {
    const v = firstValue(await (prom as PrometheusProcess).query(expr));
    return v !== undefined && ok(v) ? v : undefined;
  }, timeoutMs, 250);
}

async function scrape(url: string, token?: string): Promise<Response> {
  return fetch(`${url}/metrics`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
}

it('/metrics: 401 problem+json without the token, 200 with it, on the API port and on the separate address', async () => {
  const url = (server as ServeProcess).url;
  for (const base of [url, metricsUrl]) {
    for (const token of [undefined, 'wrong-token-0123456789abcdef']) {
      const res = await scrape(base, token);
      assert.is(res.status, 401, `${base} ${token}`);
      assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/);
      assert.is((await res.json()).code, 'E_UNAUTHORIZED');
    }
    const ok = await scrape(base, TOKEN);
    assert.is(ok.status, 200);
    assert.match(await ok.text(), /^poseidon_build_info\{/m);
  }
  const keyed = await fetch(`${url}/metrics`, { headers: { 'x-api-key': KEY } });
  assert.is(keyed.status, 401, 'an API key does not open /metrics');
});

it('Prometheus scrapes serve with the bearer token', async () => {
  await promWait('up{job="poseidon"}', (v) => v === 1);
  await promWait('sum(poseidon_workers{state="ready"})', (v) => v === 1);
  await promWait('max(poseidon_catalog_last_sync_success)', (v) => v === 1);
});

it(`after ${N} launches, PromQL answers ${N} running`, async () => {
  for (const team of TEAMS) {
    const res = await api('POST', '/v1/instances', { challenge: 'web-hello', team });
    assert.is(res.status, 202, JSON.stringify(res.body));
    launched.push({ id: res.body.id, hostname: res.body.hostname, team });
  }
  // Generous: the first launch waits for the image build on a loaded machine.
  for (const inst of launched) {
    await waitFor(`instance ${inst.id} running`, async () => ((await api('GET', `/v1/instances/${inst.id}`)).body?.status === 'running' ? true : undefined), 180_000, 250);
  }
  await promWait('sum(poseidon_instances{state="running"})', (v) => v === N);
  await promWait('sum(poseidon_instances{state="running", challenge="web-hello"})', (v) => v === N);
  await promWait('sum(poseidon_instance_launches_total)', (v) => v === N);
  await promWait('sum(poseidon_instance_launch_duration_seconds_count)', (v) => v === N);
  await promWait('sum(poseidon_worker_reserved_slots)', (v) => v === N);
  await promWait('sum(poseidon_docker_api_duration_seconds_count{operation="createContainer"})', (v) => v >= N);
  await promWait('sum(poseidon_reconcile_duration_seconds_count{reconciler="placement"})', (v) => v >= N);
  await promWait('sum(poseidon_reconcile_duration_seconds_count{reconciler="worker"})', (v) => v >= N);
  await promWait('max(poseidon_engine_networks)', (v) => v === N, 30_000);
});

it('SSE clients and forward-auth decisions reach Prometheus', async () => {
  const abort = new AbortController();
  const stream = await fetch(`${(server as ServeProcess).url}/v1/events`, { headers: { 'x-api-key': KEY }, signal: abort.signal });
  assert.is(stream.status, 200);
  try {
    await promWait('sum(poseidon_sse_clients)', (v) => v === 1);
  } finally {
    abort.abort();
  }
  await promWait('sum(poseidon_sse_clients)', (v) => v === 0);
  const denied = await fetch(`${(server as ServeProcess).url}/v1/authz`, { headers: { 'x-forwarded-host': 'nothing.web-hello.localhost', 'x-forwarded-uri': '/', 'x-forwarded-method': 'GET' } });
  assert.ok(denied.status >= 400 && denied.status < 500, String(denied.status));
  await promWait('sum(poseidon_authz_decisions_total{result="deny"})', (v) => v >= 1);
  await promWait('sum(poseidon_http_request_duration_seconds_count{route="/v1/authz"})', (v) => v >= 1);
});

it('a stop is counted and running follows', async () => {
  const first = launched[0] as { id: string };
  assert.is((await api('DELETE', `/v1/instances/${first.id}`)).status, 202);
  await promWait('sum(poseidon_instance_stops_total)', (v) => v === 1, 90_000);
  await promWait('sum(poseidon_instances{state="running"})', (v) => v === N - 1);
});

it('promtool check metrics passes on the exposition', async () => {
  const text = await (await scrape((server as ServeProcess).url, TOKEN)).text();
  const r = promtool(['check', 'metrics'], text);
  assert.is(r.code, 0, r.out);
});

it('every dashboard and alert expression runs against Prometheus and names metrics /metrics exports', async () => {
  const text = await (await scrape((server as ServeProcess).url, TOKEN)).text();
  const exported = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1] as string));
  const all = [...dashboardExpressions(), ...alertExpressions()];
  const failures: string[] = [];
  for (const e of all) {
    const r = await (prom as PrometheusProcess).query(e.expr);
    if (r.status !== 'success') failures.push(`${e.where}: ${r.errorType}: ${r.error}\n  ${e.expr}`);
    for (const name of metricNames(e.expr)) if (!exported.has(name)) failures.push(`${e.where}: ${name} is not exported`);
  }
  assert.equal(failures, [], failures.join('\n'));
  assert.ok(all.length > 60, `${all.length} expressions ran`);
});

it('every alert rule is loaded and evaluates healthy', async () => {
  const want = alertExpressions().length;
  const rules = await waitFor('rules evaluated', async () => {
    const body = await (prom as PrometheusProcess).api('rules');
    const list = (body.data?.groups ?? []).flatMap((g: any) => g.rules) as { name: string; health: string; lastError?: string; lastEvaluation: string }[];
    return list.length === want && list.every((r) => !r.lastEvaluation.startsWith('0001')) ? list : undefined;
  }, 30_000, 250);
  const bad = rules.filter((r) => r.health !== 'ok').map((r) => `${r.name}: ${r.health} ${r.lastError ?? ''}`);
  assert.equal(bad, []);
});

it('no team, instance id or hostname in any label value (exposition and Prometheus series)', async () => {
  const text = await (await scrape((server as ServeProcess).url, TOKEN)).text();
  const values = new Set([...text.matchAll(/[a-zA-Z_]+="((?:[^"\\]|\\.)*)"/g)].map((m) => m[1] as string));
  const series = await (prom as PrometheusProcess).api(`series?match[]=${encodeURIComponent('{__name__=~"poseidon_.+"}')}`);
  assert.is(series.status, 'success');
  for (const s of series.data as Record<string, string>[]) for (const v of Object.values(s)) values.add(v);
  const secrets = [...TEAMS, ...launched.flatMap((i) => [i.id, i.hostname, i.hostname.split('.')[0] as string])];
  const leaks = [...values].filter((v) => secrets.some((s) => v.includes(s)));
  assert.equal(leaks, []);
  assert.ok(values.has('web-hello'), 'challenge ids are labels');
});

it('/v1/status/summary for operators matches what happened', async () => {
  const res = await fetch(`${(server as ServeProcess).url}/v1/status/summary`, { headers: { 'x-api-key': OPERATOR } });
  assert.is(res.status, 200);
  const s = await res.json();
  assert.is(s.launches.total, N);
  assert.is(s.stops.total, 1);
  assert.is(s.launchDuration.count, N);
  assert.ok(s.launchDuration.p95 > 0 && s.launchDuration.p95 >= s.launchDuration.p50);
  assert.is(s.instances.byState.running, N - 1);
  assert.is(s.workers.byState.ready, 1);
  assert.is(s.catalog.lastSync.ok, true);
  assert.equal(s.breakers, []);
  const body = JSON.stringify(s);
  for (const team of TEAMS) assert.not.ok(body.includes(team));
});

t.run();
