/**
 * The catch-all page route as Traefik reaches it (replacePath to /v1/gateway/page, the player's
 * Host header kept, X-Replaced-Path set), and the page rules themselves.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Instance } from '../../src/core/instance.ts';
import { pageFor, renderPage, type PageKind } from '../../src/gateway/page.ts';
import { MemoryStore } from '../../src/store/memory.ts';
import { accessApp, authz, cookieOf, getAccess, launchRunning, type AccessApp } from '../helpers/access.ts';

const t = suite('access: catch-all page');
let a: AccessApp;

t.before(async () => { a = await accessApp({ store: new MemoryStore() }); });
t.after(async () => {
  await a.close();
  await a.store.close();
});

function page(host: string, opts: { query?: string; replaced?: string; accept?: string } = {}) {
  return a.app.inject({
    method: 'GET', url: `/v1/gateway/page${opts.query ?? ''}`,
    headers: { host, accept: opts.accept ?? 'text/html', ...(opts.replaced ? { 'x-replaced-path': opts.replaced } : {}) },
  });
}

const NOW = 1_900_000_000_000;
const base: Instance = {
  id: '0123456789abcdef01234567', challenge: 'web', team: 'red', owner: 'team:red', generation: 1, epoch: 0, desired: 'running', status: 'starting',
  hostname: 'x', endpoints: [], specHash: 'h', createdAt: NOW - 1000, updatedAt: NOW, expiresAt: NOW + 60_000, maxExpiresAt: NOW + 120_000, renewals: 0,
};

t('which page an instance calls for', () => {
  const cases: [Partial<Instance> | undefined, PageKind][] = [
    [undefined, 'unknown'],
    [{ status: 'pending' }, 'starting'], [{ status: 'starting' }, 'starting'], [{ status: 'running' }, 'starting'],
    [{ status: 'queued' }, 'queued'], [{ status: 'queued', expiresAt: NOW - 1 }, 'queued'],
    [{ status: 'failed', reason: 'boom' }, 'failed'],
    [{ desired: 'stopped', status: 'stopping' }, 'stopped'], [{ desired: 'stopped', status: 'stopped', finishedAt: NOW - 5 }, 'stopped'],
    [{ status: 'running', expiresAt: NOW - 1 }, 'expired'], [{ status: 'stopped', reason: 'expired', expiresAt: NOW - 10, finishedAt: NOW - 9 }, 'expired'],
  ];
  for (const [patch, kind] of cases) assert.is(pageFor(patch && { ...base, ...patch }, NOW), kind, JSON.stringify(patch));
});

t('pages: status per state, refresh only while starting, text for non-browsers', () => {
  const statuses = (['starting', 'expired', 'stopped', 'failed', 'unknown', 'needs-link', 'forbidden'] as PageKind[]).map((k) => renderPage(k, 'text/html').status);
  assert.equal(statuses, [503, 410, 410, 503, 404, 401, 403]);
  assert.match(renderPage('starting', 'text/html').body, /<meta http-equiv="refresh" content="2">/);
  assert.is(renderPage('starting', 'text/html').headers['retry-after'], '2');
  assert.not.match(renderPage('stopped', 'text/html').body, /refresh/);
  const text = renderPage('stopped', '*/*');
  assert.is(text.contentType, 'text/plain; charset=utf-8');
  assert.is(text.body.split('\n').length, 2);
});

t('the route reads the Host the player used; unknown and malformed hosts get the unknown page', async () => {
  const inst = await launchRunning(a, 'web', 'red');
  const res = await page(inst.hostname);
  assert.is(res.statusCode, 503);
  assert.match(res.body, /data-state="starting"/);
  assert.is(res.headers['cache-control'], 'no-store');
  assert.match(res.headers['content-security-policy'] as string, /^default-src 'none'; style-src 'sha256-/);
  assert.is((await page(inst.hostname.toUpperCase())).statusCode, 503);
  assert.is((await page(`${inst.hostname}:8080`)).statusCode, 503, 'an entry point on another port: the same host');
  for (const host of ['0000000000000000.web.ctf.test', `${inst.hostname}:0`, `${inst.hostname}:80:80`, 'poseidon.ctf.test', 'evil.example']) {
    const r = await page(host);
    assert.is(r.statusCode, 404, host);
    assert.match(r.body, /No instance here/, host);
  }
});

t('a link opened on the page of a starting instance sets the cookie and returns to the original path', async () => {
  const inst = await launchRunning(a, 'web', 'blue');
  await a.store.updateInstance(inst.id, { status: 'starting' }, Date.now());
  const acc = await getAccess(a, inst.id);
  const res = await page(inst.hostname, { query: `?a=1&poseidon_access=${acc.link}`, replaced: '/deep' });
  assert.is(res.statusCode, 302);
  assert.is(res.headers.location, '/deep?a=1');
  const cookie = cookieOf(res.headers['set-cookie']);
  assert.is((await authz(a, inst.hostname, { cookie })).statusCode, 200, 'the cookie is ready for when the route appears');
  const bad = await page(inst.hostname, { query: '?poseidon_access=l.nope.nope' });
  assert.is(bad.statusCode, 401);
  assert.match(bad.body, /Link expired/);
});

t('pages never name the team, instance, reason or expiry', async () => {
  const inst = await launchRunning(a, 'web', 'secretteam');
  await a.store.updateInstance(inst.id, { status: 'failed', reason: 'image registry.internal/secret failed' }, Date.now());
  // The page reads the in-memory instance view, fed by the store's change feed: let it catch up.
  let res = await page(inst.hostname);
  for (let i = 0; i < 50 && !/Could not start/.test(res.body); i++) {
    await new Promise((r) => setTimeout(r, 20));
    res = await page(inst.hostname);
  }
  assert.match(res.body, /Could not start/);
  for (const leak of ['secretteam', inst.id, 'registry.internal', 'expires']) assert.not.ok(res.body.includes(leak), leak);
});

t.run();
