/**
 * The status page through the app (fastify inject): sign-in and sign-out, the session cookie in
 * the API's auth hook (an operator reads, only an admin acts; every action needs the CSRF header
 * and the same origin), the page's headers, and the audit trail (this process's ring; shared on
 * Redis in replicas.test.ts).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { buildApp } from '../../src/api/app.ts';
import { keyDigest } from '../../src/api/auth.ts';
import type { WorkerRouteDeps } from '../../src/api/worker-routes.ts';
import type { WorkerAdmin, WorkerView } from '../../src/core/worker.ts';
import { MemoryStore } from '../../src/store/memory.ts';
import { loadTestCatalog } from '../helpers/catalog.ts';

const t = suite('status: routes and session auth (inject)');
const ADMIN_KEY = 'status-admin-key-0123456789';
const OPERATOR_KEY = 'status-operator-key-0123456789';
const PLATFORM_KEY = 'status-platform-key-0123456789';
const SECRET = 'status-routes-access-secret-0123456789';
const FLAG_SECRET = 'status-routes-flag-secret-0123456789';
const HOST = 'poseidon.ctf.test';
const ORIGIN = `http://${HOST}`;
const dir = mkdtempSync(path.join(tmpdir(), 'poseidon-status-'));
const store = new MemoryStore();
const clock = { now: Date.now() };
let app: ReturnType<typeof buildApp>;

const admins: Record<string, WorkerAdmin> = { w1: 'active' };
const worker = (id: string): WorkerView => ({
  id, address: '10.0.0.1', runtimes: ['runc'], labels: {}, capacity: { slots: 10, cpu: 4, memoryBytes: 2 ** 30 }, publicKey: 'k', version: 'test',
  heartbeatAt: clock.now, startedAt: clock.now, admin: admins[id] ?? 'active', state: admins[id] === 'active' ? 'ready' : (admins[id] as 'cordoned'),
});
const workers: WorkerRouteDeps = {
  view: { workers: () => Object.keys(admins).map(worker), images: () => ({}), loads: () => new Map(), now: () => clock.now, refresh: async () => undefined },
  fleet: { setAdmin: async (id: string, admin: WorkerAdmin) => { if (!(id in admins)) return false; admins[id] = admin; return true; }, setLaunchOverride: async (id: string) => id in admins },
  changed: () => undefined,
};

t.before(async () => {
  mkdirSync(path.join(dir, 'web'));
  writeFileSync(path.join(dir, 'web', 'challenge.yaml'), 'id: web\nname: web\nimage: busybox:1.35\nexpose: [{ name: web, port: 80 }]\n');
  const catalog = await loadTestCatalog(dir);
  const lifecycle = { teamLimit: 0, capacity: 0, rateLimits: new Map(), renewMaxLoad: 1, idempotencyTtlMs: 60_000, flagSecret: FLAG_SECRET, flagRetentionMs: 60_000 };
  app = buildApp({
    store, catalog, apiKey: ADMIN_KEY, baseDomain: 'ctf.test', lifecycle, workers, statusSecret: SECRET, now: () => clock.now,
    apiKeys: [{ name: 'ops', role: 'operator', digest: keyDigest(OPERATOR_KEY) }, { name: 'ctfd', role: 'platform', digest: keyDigest(PLATFORM_KEY) }],
    authFailures: { attempts: 5, windowMs: 60_000 },
  });
});
t.after(async () => {
  await app.close();
  rmSync(dir, { recursive: true, force: true });
});

type Headers = Record<string, string>;
const browser = (extra: Headers = {}): Headers => ({ host: HOST, origin: ORIGIN, 'sec-fetch-site': 'same-origin', ...extra });
let address = 0;
/** A fresh client address per sign-in, so the failure limit of one test never blocks another. */
const from = () => `10.9.0.${++address}`;

async function signIn(key: string): Promise<{ cookie: string; csrf: string; setCookie: string }> {
  const res = await app.inject({ method: 'POST', url: '/status/login', headers: browser(), payload: { key }, remoteAddress: from() });
  assert.is(res.statusCode, 200, res.body);
  const setCookie = String(res.headers['set-cookie']);
  const cookie = setCookie.split(';')[0] as string;
  const page = await app.inject({ url: '/status', headers: browser({ cookie }) });
  const csrf = /<meta name="poseidon-csrf" content="([^"]+)">/.exec(page.body)?.[1];
  assert.ok(csrf, 'the shell carries the CSRF token');
  return { cookie, csrf, setCookie };
}

async function launch(team: string): Promise<string> {
  const res = await app.inject({ method: 'POST', url: '/v1/instances', headers: { 'x-api-key': ADMIN_KEY }, payload: { challenge: 'web', team } });
  assert.is(res.statusCode, 202, res.body);
  return res.json().id as string;
}

t('signed out, /status is the sign-in page, with the page headers and nothing inline', async () => {
  const res = await app.inject({ url: '/status', headers: { host: HOST } });
  assert.is(res.statusCode, 200);
  assert.match(String(res.headers['content-type']), /^text\/html/);
  assert.match(String(res.headers['content-security-policy']), /script-src 'self'; style-src 'self'/);
  assert.match(String(res.headers['content-security-policy']), /frame-ancestors 'none'/);
  assert.is(res.headers['x-frame-options'], 'DENY');
  assert.is(res.headers['cache-control'], 'no-store');
  assert.match(res.body, /id="login"/);
  assert.not.match(res.body, /<script>|<style>| style=| on[a-z]+=/i);
  const js = await app.inject({ url: '/status/app.js' });
  assert.is(js.statusCode, 200);
  assert.match(String(js.headers['content-type']), /^text\/javascript/);
  assert.is((await app.inject({ url: '/status/app.js', headers: { 'if-none-match': String(js.headers.etag) } })).statusCode, 304);
  assert.is((await app.inject({ url: '/status/app.css' })).statusCode, 200);
  assert.is((await app.inject({ url: '/status/../package.json' })).statusCode, 401, 'no file outside the assets');
});

t('sign-in: a wrong key is 401 (and counted), a platform key 403, another origin 403', async () => {
  const ip = from();
  const login = (key: string, headers = browser()) => app.inject({ method: 'POST', url: '/status/login', headers, payload: { key }, remoteAddress: ip });
  assert.is((await login('not-the-key-0123456789')).statusCode, 401);
  const platform = await login(PLATFORM_KEY);
  assert.is(platform.statusCode, 403);
  assert.is(platform.headers['set-cookie'], undefined);
  const cross = await login(ADMIN_KEY, browser({ origin: 'http://evil.test', 'sec-fetch-site': 'cross-site' }));
  assert.is(cross.statusCode, 403);
  assert.is(cross.headers['set-cookie'], undefined);
  for (let i = 0; i < 4; i++) await login('not-the-key-0123456789');
  const blocked = await login(ADMIN_KEY);
  assert.is(blocked.statusCode, 429, 'failed sign-ins count toward the per-address limit');
  assert.ok(Number(blocked.headers['retry-after']) > 0);
});

t('the cookie is HttpOnly, SameSite=Strict, Path=/ and carries neither key nor secret', async () => {
  const { cookie, setCookie } = await signIn(ADMIN_KEY);
  assert.match(setCookie, /^poseidon_status=o\.[^;]+; Path=\/; Max-Age=43200; HttpOnly; SameSite=Strict$/);
  for (const secret of [ADMIN_KEY, SECRET, FLAG_SECRET]) assert.not.ok(cookie.includes(secret));
  const page = await app.inject({ url: '/status', headers: browser({ cookie }) });
  assert.match(page.body, /data-page="status"/);
  assert.match(page.body, /Signed in as <b>POSEIDON_API_KEY<\/b> \(admin\)/);
  for (const secret of [ADMIN_KEY, SECRET, FLAG_SECRET, cookie.split('=')[1] as string]) assert.not.ok(page.body.includes(secret));
  const tls = await app.inject({ method: 'POST', url: '/status/login', headers: browser({ 'x-forwarded-proto': 'https' }), payload: { key: ADMIN_KEY }, remoteAddress: from() });
  assert.is(tls.statusCode, 200);
});

t('an operator session reads what an operator reads and acts on nothing', async () => {
  const id = await launch('red');
  const { cookie, csrf } = await signIn(OPERATOR_KEY);
  for (const url of ['/v1/instances', `/v1/instances/${id}`, '/v1/catalog', '/v1/challenges', '/v1/workers', '/v1/flags/incidents', '/status/audit']) {
    const res = await app.inject({ url, headers: browser({ cookie }) });
    assert.is(res.statusCode, 200, `${url}: ${res.body}`);
  }
  const stop = await app.inject({ method: 'DELETE', url: `/v1/instances/${id}`, headers: browser({ cookie, 'x-poseidon-csrf': csrf }) });
  assert.is(stop.statusCode, 403);
  const cordon = await app.inject({ method: 'POST', url: '/v1/workers/w1/cordon', headers: browser({ cookie, 'x-poseidon-csrf': csrf }) });
  assert.is(cordon.statusCode, 403);
  assert.is(admins.w1, 'active');
  assert.is((await store.getInstance(id))?.desired, 'running');
});

t('an admin session acts only with the CSRF header and from the same origin', async () => {
  const id = await launch('blue');
  const { cookie, csrf } = await signIn(ADMIN_KEY);
  const other = await signIn(ADMIN_KEY);
  const del = (headers: Headers) => app.inject({ method: 'DELETE', url: `/v1/instances/${id}`, headers });
  const refused: [string, Headers][] = [
    ['no CSRF header', browser({ cookie })],
    ['a wrong CSRF header', browser({ cookie, 'x-poseidon-csrf': 'A'.repeat(43) })],
    ["another session's CSRF token", browser({ cookie, 'x-poseidon-csrf': other.csrf })],
    ['another origin', browser({ cookie, 'x-poseidon-csrf': csrf, origin: 'http://127.0.0.1:9999', 'sec-fetch-site': 'cross-site' })],
    ['a sibling site', browser({ cookie, 'x-poseidon-csrf': csrf, origin: 'http://evil.ctf.test', 'sec-fetch-site': 'same-site' })],
    ['no Origin nor Sec-Fetch-Site', { host: HOST, cookie, 'x-poseidon-csrf': csrf }],
  ];
  for (const [why, headers] of refused) {
    const res = await del(headers);
    assert.is(res.statusCode, 403, why);
    assert.is(res.json().code, 'E_FORBIDDEN', why);
  }
  assert.is((await store.getInstance(id))?.desired, 'running', 'nothing happened');
  const ok = await del(browser({ cookie, 'x-poseidon-csrf': csrf }));
  assert.is(ok.statusCode, 202, ok.body);
  assert.is((await store.getInstance(id))?.desired, 'stopped');
  const cordon = await app.inject({ method: 'POST', url: '/v1/workers/w1/cordon', headers: browser({ cookie, 'x-poseidon-csrf': csrf }) });
  assert.is(cordon.statusCode, 200, cordon.body);
  assert.is(cordon.json().state, 'cordoned');
  const uncordon = await app.inject({ method: 'POST', url: '/v1/workers/w1/uncordon', headers: browser({ cookie, 'x-poseidon-csrf': csrf }) });
  assert.is(uncordon.json().state, 'ready');
});

t('a bad or expired cookie is 401; an x-api-key always decides over a cookie', async () => {
  const { cookie } = await signIn(ADMIN_KEY);
  const tampered = `${cookie.slice(0, -2)}xx`;
  const bad = await app.inject({ url: '/v1/instances', headers: browser({ cookie: tampered }) });
  assert.is(bad.statusCode, 401);
  assert.match(bad.json().detail, /session/);
  assert.is((await app.inject({ url: '/v1/instances', headers: browser() })).statusCode, 401, 'no cookie, no key');
  assert.is((await app.inject({ url: '/v1/instances', headers: browser({ cookie, 'x-api-key': 'wrong-key-0123456789' }) })).statusCode, 401);
  const platform = await app.inject({ url: '/v1/workers', headers: browser({ cookie, 'x-api-key': PLATFORM_KEY }) });
  assert.is(platform.statusCode, 403, 'the key, not the admin cookie, is who asks');
  assert.is((await app.inject({ url: '/status', headers: browser({ cookie: tampered }) })).body.includes('id="login"'), true);
  const saved = clock.now;
  clock.now += 12 * 3_600_000 + 1000;
  try {
    assert.is((await app.inject({ url: '/v1/instances', headers: browser({ cookie }) })).statusCode, 401, 'expired after 12 h');
  } finally {
    clock.now = saved;
  }
});

t('sign-out clears the cookie; from another origin it is refused', async () => {
  const { cookie } = await signIn(OPERATOR_KEY);
  assert.is((await app.inject({ method: 'POST', url: '/status/logout', headers: browser({ cookie, origin: 'http://evil.test', 'sec-fetch-site': 'cross-site' }) })).statusCode, 403);
  const out = await app.inject({ method: 'POST', url: '/status/logout', headers: browser({ cookie }) });
  assert.is(out.statusCode, 204);
  assert.is(String(out.headers['set-cookie']), 'poseidon_status=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict');
});

t('every operator and admin action is audited with who, what, target and result; never a key', async () => {
  const id = await launch('green');
  const { cookie, csrf } = await signIn(ADMIN_KEY);
  const ops = await signIn(OPERATOR_KEY);
  await app.inject({ method: 'POST', url: `/v1/instances/${id}/restart`, headers: browser({ cookie, 'x-poseidon-csrf': csrf }) });
  await app.inject({ method: 'POST', url: '/v1/workers/w1/drain', headers: browser({ cookie: ops.cookie, 'x-poseidon-csrf': ops.csrf }) });
  await app.inject({ method: 'POST', url: '/v1/workers/w1/drain', headers: browser({ cookie }) });
  await app.inject({ method: 'DELETE', url: `/v1/instances/${id}`, headers: { 'x-api-key': ADMIN_KEY } });
  await app.inject({ method: 'POST', url: '/v1/instances', headers: { 'x-api-key': PLATFORM_KEY }, payload: { challenge: 'web', team: 'plat' } });
  await app.inject({ method: 'POST', url: '/v1/flags/verify', headers: { 'x-api-key': ADMIN_KEY }, payload: { challenge: 'web', team: 'green', flag: 'flag{not-to-be-quoted}' } });
  const res = await app.inject({ url: '/status/audit', headers: { 'x-api-key': OPERATOR_KEY } });
  assert.is(res.statusCode, 200);
  assert.is(res.json().scope, 'process', 'without Redis the trail is this process\'s');
  assert.is(res.json().size, 500);
  for (const secret of [ADMIN_KEY, OPERATOR_KEY, PLATFORM_KEY, SECRET, csrf, cookie, 'not-to-be-quoted']) assert.not.ok(res.body.includes(secret));
  const entries = (res.json().entries as { who: string; role: string; action: string; target?: string; status: number; result: string; via: string; at: string }[]);
  const recent = entries.slice(0, 8).map((e) => [e.who, e.action, e.target ?? '', e.status, e.result, e.via]);
  assert.equal(recent, [
    ['POSEIDON_API_KEY', 'verify flag', '', 200, 'ok', 'key'],
    ['POSEIDON_API_KEY', 'stop instance', id, 202, 'ok', 'key'],
    ['POSEIDON_API_KEY', 'drain worker', 'w1', 403, 'refused', 'session'],
    ['ops', 'drain worker', 'w1', 403, 'refused', 'session'],
    ['POSEIDON_API_KEY', 'restart instance', id, 202, 'ok', 'session'],
    ['ops', 'sign in', '', 200, 'ok', 'key'],
    ['POSEIDON_API_KEY', 'sign in', '', 200, 'ok', 'key'],
    ['POSEIDON_API_KEY', 'launch instance', 'green/web', 202, 'ok', 'key'],
  ]);
  assert.not.ok(entries.some((e) => e.who === 'ctfd' && e.action !== 'sign in'), 'platform calls are not operator actions');
  assert.ok(entries.some((e) => e.who === 'ctfd' && e.action === 'sign in' && e.status === 403), 'a refused sign-in is');
  assert.ok(entries.every((e) => !Number.isNaN(Date.parse(e.at))));
  assert.is((await app.inject({ url: '/status/audit', headers: { 'x-api-key': PLATFORM_KEY } })).statusCode, 403);
});

t.run();
