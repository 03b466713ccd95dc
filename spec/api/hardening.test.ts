/**
 * Issue 8 through the HTTP API (inject, embedded store): keys and roles, failed-attempt limits,
 * real-client bodies, errors before routing, idempotent copies against the rate limit, access
 * links of queued instances, flag attribution by role, delegate cookies.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { buildApp } from '../../src/api/app.ts';
import { keyDigest } from '../../src/api/auth.ts';
import { parseRateLimits } from '../../src/core/lifecycle.ts';
import { deriveFlag, flagDigest } from '../../src/core/flag.ts';
import { MemoryStore } from '../../src/store/memory.ts';
import { accessApp, ADMIN_KEY, BASE, PLATFORM_KEY, RED_KEY, type AccessApp } from '../helpers/access.ts';
import { Catalog } from '../../src/catalog/catalog.ts';

const t = suite('api: hardening (issue 8)');
const GATEWAY_KEY = 'gateway-key-for-traefik-0123';
const OPERATOR_KEY = 'operator-key-for-people-0123';
let a: AccessApp;

const call = (method: string, url: string, key?: string, extra: { payload?: string | object; headers?: Record<string, string>; remoteAddress?: string } = {}) =>
  a.app.inject({
    method: method as 'GET', url, remoteAddress: extra.remoteAddress ?? '127.0.0.1',
    headers: { ...(key ? { 'x-api-key': key } : {}), ...extra.headers },
    ...(extra.payload !== undefined ? { payload: extra.payload } : {}),
  });
const launch = (team: string, challenge = 'web', key = PLATFORM_KEY, headers: Record<string, string> = {}) =>
  call('POST', '/v1/instances', key, { payload: { challenge, team }, headers });

t.before.each(async () => {
  a = await accessApp({
    store: new MemoryStore(),
    extraKeys: [
      { name: 'traefik', role: 'gateway', digest: keyDigest(GATEWAY_KEY) },
      { name: 'ops', role: 'operator', digest: keyDigest(OPERATOR_KEY) },
    ],
    lifecycle: { rateLimits: parseRateLimits(['launch=10/60']) },
    authFailures: { attempts: 20, windowMs: 60_000 },
  });
});
t.after.each(async () => a.close());

t('an empty or short key never matches, even if the configured key were empty', async () => {
  const app = buildApp({
    store: new MemoryStore(), catalog: new Catalog(), apiKey: '', baseDomain: BASE,
    lifecycle: { teamLimit: 0, capacity: 0, rateLimits: new Map(), renewMaxLoad: 1, idempotencyTtlMs: 1, flagSecret: 'x'.repeat(16), flagRetentionMs: 1 },
  });
  for (const key of ['', ' ', 'short']) {
    const r = await app.inject({ method: 'GET', url: '/v1/flags/incidents', headers: { 'x-api-key': key } });
    assert.is(r.statusCode, 401, JSON.stringify(key));
  }
  await app.close();
});

t('the gateway role reads the Traefik configuration and nothing else', async () => {
  a.snapshot.set('# header\n{"http":{}}\n');
  assert.is((await call('GET', '/v1/traefik/config', GATEWAY_KEY)).statusCode, 200);
  for (const [m, u, body] of [['GET', '/v1/instances'], ['POST', '/v1/instances', { challenge: 'web', team: 'red' }], ['GET', '/v1/flags/incidents'], ['GET', '/v1/catalog']] as const) {
    const r = await call(m, u, GATEWAY_KEY, body ? { payload: body } : {});
    assert.is(r.statusCode, 403, `${m} ${u}`);
    assert.is(r.json().code, 'E_FORBIDDEN');
  }
  assert.is((await call('GET', '/v1/traefik/config', PLATFORM_KEY)).statusCode, 403, 'platform keys do not read every hostname');
  assert.is((await call('GET', '/v1/flags/incidents', OPERATOR_KEY)).statusCode, 200, 'operators read');
  assert.is((await launch('red', 'web', OPERATOR_KEY)).statusCode, 403, 'operators do not act');
});

t('failed key attempts are limited per client address, with Retry-After; other addresses are unaffected', async () => {
  for (let i = 0; i < 20; i++) assert.is((await call('GET', '/v1/instances', 'wrong-key-0123456789', { remoteAddress: '10.9.9.9' })).statusCode, 401);
  const blocked = await call('GET', '/v1/instances', PLATFORM_KEY, { remoteAddress: '10.9.9.9' });
  assert.is(blocked.statusCode, 429, 'even a right key waits once the address is blocked');
  assert.is(blocked.headers['content-type'], 'application/problem+json; charset=utf-8');
  assert.ok(Number(blocked.headers['retry-after']) >= 1);
  assert.is((await call('GET', '/v1/instances', PLATFORM_KEY, { remoteAddress: '10.9.9.8' })).statusCode, 200);
});

t('bodiless DELETE, renew and restart with content-type: application/json are not 400', async () => {
  const json = { 'content-type': 'application/json' };
  const inst = (await launch('red')).json();
  await a.store.updateInstance(inst.id, { status: 'running' }, Date.now());
  assert.is((await call('POST', `/v1/instances/${inst.id}/renew`, PLATFORM_KEY, { headers: json, payload: '' })).statusCode, 200);
  assert.is((await call('POST', `/v1/instances/${inst.id}/restart`, PLATFORM_KEY, { headers: json, payload: '' })).statusCode, 202);
  assert.is((await call('POST', `/v1/instances/${inst.id}/access`, PLATFORM_KEY, { headers: json, payload: '' })).statusCode, 200);
  assert.is((await call('DELETE', `/v1/instances/${inst.id}`, PLATFORM_KEY, { headers: json, payload: '  \n' })).statusCode, 202);
  const noBody = await call('POST', '/v1/instances', PLATFORM_KEY, { headers: json, payload: '' });
  assert.is(noBody.statusCode, 400, 'a route that needs a body says so');
  assert.match(noBody.json().detail, /body/);
});

t('errors before routing need a key and answer problem+json quoting a bounded part of the input', async () => {
  const long = `/v1/instances/${'a'.repeat(5000)}`;
  assert.is((await call('GET', long)).statusCode, 401, 'no key: 401 first');
  const r = await call('GET', long, PLATFORM_KEY);
  assert.is(r.statusCode, 400);
  assert.is(r.headers['content-type'], 'application/problem+json; charset=utf-8');
  assert.is(r.json().code, 'E_BAD_REQUEST');
  assert.ok(r.body.length < 1000, 'the URL is not echoed whole');
  assert.is((await call('GET', '/v1/instances/%zz')).statusCode, 401);
  const bad = await call('GET', '/v1/instances/%zz', PLATFORM_KEY);
  assert.equal([bad.statusCode, bad.json().code], [400, 'E_BAD_REQUEST']);
  const missing = await call('GET', `/v1/${'<script>'.repeat(400)}`, PLATFORM_KEY);
  assert.is(missing.statusCode, 404);
  assert.ok(missing.json().detail.length < 300);
  const media = await call('POST', '/v1/instances', PLATFORM_KEY, { headers: { 'content-type': `text/${'x'.repeat(3000)}` }, payload: 'a' });
  assert.is(media.statusCode, 415);
  assert.ok(media.json().detail.length < 300);
});

t('200 copies of one idempotent launch all get the instance and cost one launch of the rate', async () => {
  const key = { 'idempotency-key': 'retry-storm-1' };
  const results = await Promise.all(Array.from({ length: 200 }, () => launch('red', 'web', PLATFORM_KEY, key)));
  assert.equal([...new Set(results.map((r) => r.statusCode))], [202]);
  assert.is(new Set(results.map((r) => r.json().id)).size, 1);
  for (let i = 0; i < 9; i++) await launch('red', 'two', PLATFORM_KEY, { 'idempotency-key': `other-${i}` });
  const over = await launch('red', 'pwn');
  assert.is(over.statusCode, 429, 'the 11th distinct launch is limited: the 200 copies counted once');
  assert.ok(Number(over.headers['retry-after']) >= 1);
});

t('an access link of a queued instance outlasts the latest end admission can give it', async () => {
  await a.close();
  a = await accessApp({ store: new MemoryStore(), lifecycle: { capacity: 1 }, queueMaxWaitMs: 600_000 });
  await launch('blue');
  const queued = (await launch('red')).json();
  assert.is(queued.status, 'queued');
  const link = (await call('POST', `/v1/instances/${queued.id}/access`, PLATFORM_KEY)).json();
  const latestEnd = Date.parse(queued.createdAt) + 600_000 + 7200 * 1000;
  assert.ok(Date.parse(link.tokenExpiresAt) >= latestEnd - 1000, `${link.tokenExpiresAt} covers admission at the end of the wait plus the maximum lifetime`);
});

t('flag attribution: admins and unscoped platform keys see the owner, a team-scoped key only "wrong"', async () => {
  const blue = (await launch('blue')).json();
  const flag = deriveFlag('s'.repeat(16), { team: 'blue', challenge: 'web', instance: blue.id }, 'flag{%s}');
  await a.store.recordFlag(flagDigest(flag), { team: 'blue', challenge: 'web', instance: blue.id, issuedAt: Date.now() }, 60_000);
  const body = { challenge: 'web', team: 'red', flag };
  const scoped = await call('POST', '/v1/flags/verify', RED_KEY, { payload: body });
  assert.equal(scoped.json(), { correct: false });
  assert.equal((await call('POST', '/v1/flags/verify', PLATFORM_KEY, { payload: body })).json().owner.instance, blue.id);
  assert.equal((await call('POST', '/v1/flags/verify', ADMIN_KEY, { payload: body })).json().owner.team, 'blue');
  assert.is((await call('GET', '/v1/flags/incidents', ADMIN_KEY)).json().incidents.length, 3, 'every submission is still recorded');
});

t('delegate mode forwards only the session cookie and caches by it', async () => {
  const seen: string[] = [];
  const platform: Server = createServer((req, res) => {
    seen.push(req.headers.cookie ?? '');
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ team: 'red' }));
  });
  await new Promise<void>((r) => platform.listen(0, '127.0.0.1', () => r()));
  await a.close();
  a = await accessApp({ store: new MemoryStore(), delegate: { url: `http://127.0.0.1:${(platform.address() as AddressInfo).port}/who`, cookies: ['session'] } });
  try {
    const inst = (await launch('red')).json();
    await a.store.updateInstance(inst.id, { status: 'running' }, Date.now());
    await a.context.index.refresh();
    for (let i = 0; i < 25; i++) {
      const r = await a.app.inject({
        method: 'GET', url: '/v1/authz',
        headers: { 'x-forwarded-host': inst.hostname, 'x-forwarded-uri': '/', 'x-forwarded-method': 'GET', cookie: `chal_${i}=${'z'.repeat(i)}; session=abc; theme=dark` },
      });
      assert.is(r.statusCode, 200);
    }
    assert.equal(seen, ['session=abc'], 'one call, carrying only the session cookie');
    const none = await a.app.inject({ method: 'GET', url: '/v1/authz', headers: { 'x-forwarded-host': inst.hostname, 'x-forwarded-uri': '/', cookie: 'theme=dark' } });
    assert.is(none.statusCode, 401, 'no session cookie: anonymous without asking');
    assert.is(seen.length, 1);
  } finally {
    platform.close();
  }
});

t.run();
