import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { buildApp } from '../../src/api/app.ts';
import type { Catalog } from '../../src/catalog/catalog.ts';
import { instanceView } from '../../src/api/views.ts';
import { InstanceIndex } from '../../src/gateway/instance-index.ts';
import { MemoryStore } from '../../src/store/memory.ts';
import { loadTestCatalog } from '../helpers/catalog.ts';

const t = suite('api (inject)');
const KEY = 'api-test-key-0123456789';
const dir = mkdtempSync(path.join(tmpdir(), 'poseidon-api-'));
const store = new MemoryStore();
let catalog: Catalog;
const lifecycle = {
  teamLimit: 0, capacity: 0, rateLimits: new Map(), renewMaxLoad: 1, idempotencyTtlMs: 60_000,
  flagSecret: 'api-test-flag-secret', flagRetentionMs: 60_000,
};
let app: ReturnType<typeof buildApp>;
const headers = { 'x-api-key': KEY };

t.before(async () => {
  for (const [id, extra] of [['solo', 'scope: user'], ['web', '']] as const) {
    mkdirSync(path.join(dir, id));
    writeFileSync(path.join(dir, id, 'challenge.yaml'), `id: ${id}\nname: ${id}\nimage: busybox:1.35\nexpose: [{ name: web, port: 80 }]\n${extra}\n`);
  }
  mkdirSync(path.join(dir, 'broken'));
  writeFileSync(path.join(dir, 'broken', 'challenge.yaml'), 'id: broken\nname: b\nimage: busybox:1.35\nexpose: []\n');
  catalog = await loadTestCatalog(dir);
  app = buildApp({ store, catalog, apiKey: KEY, baseDomain: 'ctf.test', lifecycle });
});
t.after(async () => {
  await app.close();
  rmSync(dir, { recursive: true, force: true });
});

const post = (body: unknown, extra: Record<string, string> = {}) =>
  app.inject({ method: 'POST', url: '/v1/instances', headers: { ...headers, ...extra }, payload: body as object });

t('healthz needs no key; every /v1 route does, compared exactly', async () => {
  assert.is((await app.inject('/healthz')).statusCode, 200);
  for (const key of [undefined, '', 'api-test-key-012345678', `${KEY}x`, KEY.toUpperCase()]) {
    const res = await app.inject({ url: '/v1/instances', headers: key === undefined ? {} : { 'x-api-key': key } });
    assert.is(res.statusCode, 401, String(key));
    assert.is(res.json().code, 'E_UNAUTHORIZED');
    assert.not.ok(res.body.includes(KEY));
  }
});

t('percent-encoded paths reach routes but never skip the key check', async () => {
  for (const url of ['/%761/instances', '/%76%31/instances', '/v%31/challenges', '/%2Fv1/instances']) {
    const res = await app.inject({ url });
    assert.ok([401, 404].includes(res.statusCode), `${url}: ${res.statusCode}`);
    if (res.statusCode !== 401) assert.is(res.json().code, 'E_NOT_FOUND');
  }
  const post = await app.inject({ method: 'POST', url: '/%761/instances', payload: { challenge: 'web', team: 'x' } });
  assert.is(post.statusCode, 401);
  assert.equal(await store.listIds(), [], 'nothing was created');
});

t('launch returns 202 pending with hostname and expiry from the spec', async () => {
  const res = await post({ challenge: 'web', team: 'red' });
  assert.is(res.statusCode, 202);
  const body = res.json();
  assert.is(body.status, 'pending');
  assert.match(body.hostname, /^[0-9a-f]{16}\.web\.ctf\.test$/);
  const ttl = Date.parse(body.expiresAt) - Date.parse(body.createdAt);
  assert.is(ttl, 1800 * 1000);
  assert.is(body.endpoints, undefined, 'no endpoints until running');
});

t('user-scoped challenges need a user and limit per user', async () => {
  const noUser = await post({ challenge: 'solo', team: 'red' });
  assert.is(noUser.statusCode, 400);
  assert.match(noUser.json().detail, /user/);
  assert.is((await post({ challenge: 'solo', team: 'red', user: 'alice' })).statusCode, 202);
  assert.is((await post({ challenge: 'solo', team: 'red', user: 'bob' })).statusCode, 202);
  assert.is((await post({ challenge: 'solo', team: 'red', user: 'alice' })).statusCode, 409);
});

t('hostile and malformed bodies are refused with a named field and nothing is stored', async () => {
  const before = (await store.listIds()).length;
  const cases: [string, string | object, Record<string, string>, number, RegExp][] = [
    ['proto', '{"challenge":"web","team":"x","__proto__":{"admin":true}}', { 'content-type': 'application/json' }, 400, /prototype/],
    ['constructor', { challenge: 'web', team: 'x', constructor: { prototype: {} } }, {}, 400, /prototype|constructor/],
    ['bad json', '{"challenge":', { 'content-type': 'application/json' }, 400, /./],
    ['not json', 'challenge=web', { 'content-type': 'application/x-www-form-urlencoded' }, 415, /./],
    ['oversized', JSON.stringify({ challenge: 'web', team: 'x', pad: 'a'.repeat(70 * 1024) }), { 'content-type': 'application/json' }, 413, /too large/],
    ['array', '[]', { 'content-type': 'application/json' }, 400, /./],
    ['number team', { challenge: 'web', team: 5 }, {}, 400, /team/],
    ['long team', { challenge: 'web', team: 'a'.repeat(65) }, {}, 400, /team/],
    ['slash team', { challenge: 'web', team: 'a/b' }, {}, 400, /team/],
    ['newline', { challenge: 'web\n', team: 'a' }, {}, 400, /challenge/],
    ['invalid challenge', { challenge: 'broken', team: 'a' }, {}, 404, /broken/],
  ];
  for (const [name, body, extra, status, detail] of cases) {
    const res = await app.inject({ method: 'POST', url: '/v1/instances', headers: { ...headers, ...extra }, payload: body });
    assert.is(res.statusCode, status, `${name}: ${res.body}`);
    assert.match(res.headers['content-type'] as string, /application\/problem\+json/);
    assert.match(res.json().detail, detail, name);
  }
  assert.is((await store.listIds()).length, before);
});

t('ids are validated before any lookup', async () => {
  for (const [id, status] of [['..%2F..', 400], ['ABCDEF0123456789abcdef01', 400], ['%00', 400], ['x'.repeat(300), 400], ['x'.repeat(5000), 400]] as const) {
    assert.is((await app.inject({ url: `/v1/instances/${id}`, headers })).statusCode, status, id);
  }
  const miss = await app.inject({ url: '/v1/instances/ffffffffffffffffffffffff', headers });
  assert.is(miss.statusCode, 404);
  assert.is(miss.json().code, 'E_NOT_FOUND');
});

t('stop is idempotent and frees the slot', async () => {
  const a = (await post({ challenge: 'web', team: 'stopper' })).json();
  const s1 = await app.inject({ method: 'DELETE', url: `/v1/instances/${a.id}`, headers });
  const s2 = await app.inject({ method: 'DELETE', url: `/v1/instances/${a.id}`, headers });
  assert.equal([s1.statusCode, s2.statusCode], [202, 202]);
  // The API records the request only; whoever runs the instance reports stopping and stopped.
  assert.equal([s1.json().desired, s1.json().status], ['stopped', a.status]);
  assert.is((await store.getInstance(a.id))?.desired, 'stopped');
  assert.is((await post({ challenge: 'web', team: 'stopper' })).statusCode, 202);
});

t('challenges list shows valid ones and invalid files with file:line errors', async () => {
  const res = (await app.inject({ url: '/v1/challenges', headers })).json();
  assert.equal(res.challenges.map((c: { id: string }) => c.id), ['solo', 'web']);
  assert.is(res.invalid.length, 1);
  assert.match(res.invalid[0].file, /broken\/challenge\.yaml$/);
  assert.ok(res.invalid[0].errors[0].line >= 1);
});

t('unknown routes are problem+json 404s', async () => {
  const res = await app.inject({ url: '/v1/nope', headers });
  assert.is(res.statusCode, 404);
  assert.is(res.json().code, 'E_NOT_FOUND');
});

t('reads through the instance view send each record\'s serialised view, anew whenever the record changes', async () => {
  const indexed = new MemoryStore();
  const index = new InstanceIndex(indexed, { refreshMs: 60_000, log: { debug() {}, info() {}, warn() {}, error() {} } });
  await index.start();
  const viewApp = buildApp({ store: indexed, catalog, apiKey: KEY, baseDomain: 'ctf.test', lifecycle, index });
  try {
    const launched = await viewApp.inject({ method: 'POST', url: '/v1/instances', headers, payload: { challenge: 'web', team: 'cached' } });
    assert.is(launched.statusCode, 202);
    const id = launched.json().id as string;
    const read = () => viewApp.inject({ url: `/v1/instances/${id}`, headers });
    const [a, b] = [await read(), await read()];
    assert.is(a.statusCode, 200);
    assert.is(a.headers['content-type'], 'application/json; charset=utf-8');
    assert.is(a.body, b.body, 'the same bytes twice');
    assert.equal(a.json(), JSON.parse(JSON.stringify(instanceView(index.byId(id)!))), 'what the view says');
    // Running, through the store's change feed: endpoints appear, backends never.
    const before = (await indexed.getInstance(id))!;
    await indexed.updateInstance(id, { status: 'running', worker: 'w1', endpoints: [{ name: 'web', port: 80, protocol: 'http', hostname: before.hostname, url: `http://${before.hostname}/`, backend: `poseidon-${id}:80` }] }, Date.now());
    // Waits for the change feed, bounded generously (10 s).
    for (let n = 0; n < 1000 && (await read()).json().status !== 'running'; n++) await new Promise((r) => setTimeout(r, 10));
    const running = await read();
    assert.is(running.json().status, 'running', running.body);
    assert.is(running.json().endpoints.length, 1);
    assert.not.ok(running.body.includes('backend'), 'no backend in the API');
    // A record updated in place with a new stamp is not served from the old bytes.
    const held = index.byId(id)!;
    Object.assign(held, { reason: 'changed in place', updatedAt: held.updatedAt + 1 });
    assert.is((await read()).json().reason, 'changed in place');
    // A stop through the API is read back at once.
    assert.is((await viewApp.inject({ method: 'DELETE', url: `/v1/instances/${id}`, headers })).statusCode, 202);
    assert.is((await read()).json().desired, 'stopped');
    // An unknown key reads nothing, cached or not.
    assert.is((await viewApp.inject({ url: `/v1/instances/${id}`, headers: { 'x-api-key': 'nobody-key-0123456789abc' } })).statusCode, 401);
  } finally {
    index.stop();
    await viewApp.close();
  }
});

t.run();
