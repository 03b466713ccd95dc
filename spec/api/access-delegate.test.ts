/**
 * Delegate mode against a small real HTTP server standing in for the platform (CTFd-style
 * session cookies): team match, caching, single flight, and failing closed when the platform is
 * down, slow or answers nonsense.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { MemoryStore } from '../../src/store/memory.ts';
import { ADMIN_KEY, accessApp, authz, launchRunning, type AccessApp } from '../helpers/access.ts';

const t = suite('access: delegate mode');
const calls: string[] = [];
let platform: Server;
let url = '';
let a: AccessApp;
let red: { id: string; hostname: string };
let blue: { id: string; hostname: string };

const SESSIONS: Record<string, (res: import('node:http').ServerResponse) => void> = {
  'red-s': (res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"team":"red","user":"alice"}'),
  'bob-s': (res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"team":"red","user":"bob"}'),
  'blue-s': (res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"team":"blue"}'),
  'cache-s': (res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"team":"blue"}'),
  'nojson-s': (res) => res.writeHead(200).end('<html>hi</html>'),
  'evil-s': (res) => res.writeHead(200).end('{"team":"red\\nadmin"}'),
  'big-s': (res) => res.writeHead(200).end(`{"team":"red","pad":"${'x'.repeat(40_000)}"}`),
  'boom-s': (res) => res.writeHead(500).end('oops'),
  'login-s': (res) => res.writeHead(302, { location: '/login' }).end(),
  'slow-s': (res) => { setTimeout(() => res.writeHead(200).end('{"team":"red"}'), 3000).unref(); },
};

function startPlatform(port = 0): Promise<void> {
  platform = createServer((req, res) => {
    const session = /(?:^|; )session=([^;]+)/.exec(req.headers.cookie ?? '')?.[1] ?? '';
    calls.push(session);
    const answer = SESSIONS[session];
    if (answer) answer(res);
    else res.writeHead(401).end();
  });
  return new Promise((resolve) => platform.listen(port, '127.0.0.1', () => resolve()));
}

t.before(async () => {
  await startPlatform();
  url = `http://127.0.0.1:${(platform.address() as AddressInfo).port}/api/whoami`;
  a = await accessApp({ store: new MemoryStore(), delegate: { url, cacheMs: 2000, timeoutMs: 300 } });
  red = await launchRunning(a, 'web', 'red');
  blue = await launchRunning(a, 'web', 'blue');
});
t.after(async () => {
  await a.close();
  await a.store.close();
  platform.closeAllConnections();
  await new Promise((r) => platform.close(r));
});
t.before.each(() => { calls.length = 0; });

const as = (session: string, host: string, extra: Record<string, string> = {}) =>
  authz(a, host, { cookie: `other=1; session=${session}`, accept: 'text/html', headers: extra });

t("the platform's team decides: own instance 200, another team's 403", async () => {
  assert.is((await as('red-s', red.hostname)).statusCode, 200);
  const other = await as('red-s', blue.hostname);
  assert.is(other.statusCode, 403);
  assert.match(other.body, /No access/);
  assert.is((await as('blue-s', blue.hostname)).statusCode, 200);
});

t('answers are cached per session for a few seconds, and concurrent questions share one call', async () => {
  const first = await Promise.all(Array.from({ length: 25 }, () => as('cache-s', blue.hostname)));
  assert.ok(first.every((r) => r.statusCode === 200));
  for (let i = 0; i < 10; i++) assert.is((await as('cache-s', blue.hostname)).statusCode, 200);
  assert.equal(calls, ['cache-s']);
});

t('no session: 401 "sign in" without asking; an unknown session is asked once', async () => {
  const res = await authz(a, red.hostname, { accept: 'text/html' });
  assert.is(res.statusCode, 401);
  assert.match(res.body, /Sign in/);
  assert.equal(calls, []);
  assert.is((await as('stranger', red.hostname)).statusCode, 401);
  assert.is((await as('stranger', red.hostname)).statusCode, 401);
  assert.equal(calls, ['stranger']);
  assert.is((await as('login-s', red.hostname)).statusCode, 401, 'a redirect to a login page means not signed in');
});

t('fails closed: nonsense, oversized, invalid team, 5xx and timeouts deny with 503 and are not cached', async () => {
  for (const s of ['nojson-s', 'evil-s', 'big-s', 'boom-s']) {
    const res = await as(s, red.hostname);
    assert.is(res.statusCode, 503, s);
    assert.match(res.body, /Try again shortly/, s);
  }
  const started = Date.now();
  assert.is((await as('slow-s', red.hostname)).statusCode, 503);
  assert.ok(Date.now() - started < 1500, 'bounded by the timeout');
  calls.length = 0;
  await as('boom-s', red.hostname);
  assert.equal(calls, ['boom-s'], 'a failure is asked again');
});

t('platform down: every request is refused (503); back up: allowed again', async () => {
  const port = (platform.address() as AddressInfo).port;
  platform.closeAllConnections();
  await new Promise((r) => platform.close(r));
  try {
    const warned = a.log.lines.filter((l) => l.msg.includes('refusing access')).length;
    for (let i = 0; i < 3; i++) assert.is((await as(`alice-fresh-${i}`, red.hostname)).statusCode, 503);
    assert.is(a.log.lines.filter((l) => l.msg.includes('refusing access')).length - warned <= 1, true, 'the outage is logged, not once per request');
    assert.ok(a.log.lines.some((l) => l.msg.includes('refusing access')), 'the outage is logged');
  } finally {
    await startPlatform(port);
  }
  SESSIONS['alice-fresh'] = SESSIONS['red-s'] as never;
  assert.is((await as('alice-fresh', red.hostname)).statusCode, 200);
});

t('user-scoped instances need the same user; Poseidon tokens still work alongside', async () => {
  const solo = await launchRunning(a, 'solo', 'red', 'alice');
  assert.is((await as('red-s', solo.hostname)).statusCode, 200, 'alice');
  assert.is((await as('bob-s', solo.hostname)).statusCode, 403, 'bob, same team');
  const bypass = (await a.app.inject({ method: 'POST', url: '/v1/access/bypass', headers: { 'x-api-key': ADMIN_KEY }, payload: { name: 'bot' } })).json();
  assert.is((await authz(a, solo.hostname, { access: bypass.token })).statusCode, 200);
});

t('a team-scoped instance launched with a user admits every teammate', async () => {
  const shared = await launchRunning(a, 'two', 'red', 'alice');
  assert.is((await as('red-s', shared.hostname)).statusCode, 200, 'alice');
  assert.is((await as('bob-s', shared.hostname)).statusCode, 200, 'bob, same team');
  assert.is((await as('blue-s', shared.hostname)).statusCode, 403, 'another team');
});

t('unknown hostnames are refused without asking the platform', async () => {
  assert.is((await as('red-s', `0000000000000000.web.ctf.test`)).statusCode, 403);
  assert.equal(calls, []);
});

t.run();
