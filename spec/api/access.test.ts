/**
 * Player access in token mode, through the API and forward-auth exactly as Traefik calls it, on
 * a real Redis store: links, the exchange, cookies bound to team and hostname, bad tokens,
 * spoofed headers, bypass tokens, and revocation when an instance stops elsewhere.
 */
import { randomBytes } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { AccessTokens } from '../../src/gateway/access-token.ts';
import { RedisStore } from '../../src/store/redis.ts';
import { ADMIN_KEY, accessApp, authz, BASE, cookieOf, getAccess, launchRunning, PLATFORM_KEY, RED_KEY, SECRET, type AccessApp } from '../helpers/access.ts';
import { haveRedis, REDIS_URL } from '../helpers/deps.ts';
import { cleanupRedisPrefix } from '../helpers/redis.ts';
import { waitFor } from '../helpers/server.ts';

const t = suite('access: token mode (real Redis)');
const enabled = haveRedis();
const prefix = `poseidon-test-${randomBytes(6).toString('hex')}:`;
let a: AccessApp;
let red: { id: string; hostname: string };
let blue: { id: string; hostname: string };

t.before(async () => {
  if (!enabled) return;
  a = await accessApp({ store: new RedisStore({ url: REDIS_URL, prefix }) });
  red = await launchRunning(a, 'web', 'red');
  blue = await launchRunning(a, 'web', 'blue');
});
t.after(async () => {
  if (!enabled) return;
  await a.close();
  await a.store.close();
  await cleanupRedisPrefix(prefix);
});
const it = (name: string, fn: () => Promise<void>) => t(name, async () => { if (enabled) await fn(); });

/** Exchanges a fresh link for red's instance and returns the cookie pair. */
async function redCookie(): Promise<string> {
  const acc = await getAccess(a, red.id);
  const res = await authz(a, red.hostname, { uri: `/?poseidon_access=${acc.link}` });
  assert.is(res.statusCode, 302);
  return cookieOf(res.headers['set-cookie']);
}

it('the platform gets a signed link for the instance hostname, short-lived, and a header token', async () => {
  const before = Date.now();
  const acc = await getAccess(a, red.id);
  assert.is(acc.hostname, red.hostname);
  assert.match(acc.url, new RegExp(`^http://${red.hostname.replaceAll('.', '\\.')}/\\?poseidon_access=[slb]\\.[A-Za-z0-9_.-]+$`));
  const life = Date.parse(acc.expiresAt) - before;
  assert.ok(life > 110_000 && life <= 120_000, `link lifetime ${life}`);
  assert.ok(Date.parse(acc.tokenExpiresAt) > Date.parse(acc.expiresAt));
  assert.is(acc.endpoint, 'web');
});

it('an access token in a URI the exchange does not take never travels to the backend', async () => {
  const cookie = await redCookie();
  const acc = await getAccess(a, red.id);
  for (const uri of [`/x?y?poseidon_access=${acc.link}`, `/x?poseidon%5Faccess=${acc.link}`, `/x;poseidon_access=${acc.link}`, `/x?POSEIDON_ACCESS=${acc.link}`]) {
    const res = await authz(a, red.hostname, { uri, cookie });
    // Either the exchange takes it (a redirect to the URL without it) or the request is refused.
    assert.ok(res.statusCode === 400 || res.statusCode === 302, `${uri}: ${res.statusCode}`);
    if (res.statusCode === 302) assert.not.ok(String(res.headers.location).toLowerCase().includes('poseidon'), String(res.headers.location));
  }
  assert.is((await authz(a, red.hostname, { uri: '/x?y=1', cookie })).statusCode, 200, 'the session itself still works');
});

it('token exchange: the link answers 302 to the clean URL with a host-only HttpOnly Lax cookie', async () => {
  const acc = await getAccess(a, red.id);
  const res = await authz(a, red.hostname, { uri: `/deep/path?x=1&poseidon_access=${acc.link}&y=a%20b` });
  assert.is(res.statusCode, 302);
  assert.is(res.headers.location, '/deep/path?x=1&y=a%20b');
  assert.is(res.headers['cache-control'], 'no-store');
  assert.is(res.headers['referrer-policy'], 'no-referrer');
  const set = String(res.headers['set-cookie']);
  assert.match(set, /^poseidon=s\.[^;]+; Path=\/; Max-Age=\d+; HttpOnly; SameSite=Lax$/);
  assert.not.match(set, /Domain=/i);
  const ok = await authz(a, red.hostname, { uri: '/deep/path?x=1', cookie: cookieOf(res.headers['set-cookie']) });
  assert.is(ok.statusCode, 200);
  assert.is(ok.body, '');
});

it("team A's cookie is admitted on A's hostname and refused on B's", async () => {
  const cookie = await redCookie();
  assert.is((await authz(a, red.hostname, { cookie })).statusCode, 200);
  const onBlue = await authz(a, blue.hostname, { cookie, accept: 'text/html' });
  assert.is(onBlue.statusCode, 401);
  assert.match(onBlue.headers['content-type'] as string, /text\/html/);
  assert.match(onBlue.body, /Access link needed/);
  assert.not.ok(onBlue.body.includes('red'), 'the page names no team');
  assert.not.ok(onBlue.body.includes(blue.id) || onBlue.body.includes(red.id), 'the page names no instance');
});

it('no credentials: 401 with a page; a second port of the same instance needs its own cookie', async () => {
  assert.is((await authz(a, red.hostname)).statusCode, 401);
  const two = await launchRunning(a, 'two', 'red');
  const web = await getAccess(a, two.id);
  const admin = await getAccess(a, two.id, 'admin');
  assert.match(admin.hostname, /^[0-9a-f]{16}-admin\.two\.ctf\.test$/);
  const cookie = cookieOf((await authz(a, web.hostname, { uri: `/?poseidon_access=${web.link}` })).headers['set-cookie']);
  assert.is((await authz(a, admin.hostname, { cookie })).statusCode, 401, 'web cookie is not valid on the admin host');
  assert.is((await authz(a, admin.hostname, { uri: `/?poseidon_access=${web.link}` })).statusCode, 401, 'web link is not valid on the admin host');
  assert.is((await authz(a, admin.hostname, { uri: `/?poseidon_access=${admin.link}` })).statusCode, 302);
});

it('tampered, expired, cross-host and rotated-secret tokens are refused', async () => {
  const acc = await getAccess(a, red.id);
  const cookie = await redCookie();
  const value = cookie.slice('poseidon='.length);
  const flipped = (s: string, i: number) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
  const tokens = new AccessTokens(SECRET);
  const expired = tokens.sign({ kind: 'session', instance: red.id, team: 'red', host: red.hostname, exp: Date.now() - 1000 });
  const expiredLink = tokens.sign({ kind: 'link', instance: red.id, team: 'red', host: red.hostname, exp: Date.now() - 1000 });
  const rotated = new AccessTokens('a-completely-different-secret').sign({ kind: 'session', instance: red.id, team: 'red', host: red.hostname, exp: Date.now() + 60_000 });
  const otherTeam = tokens.sign({ kind: 'session', instance: red.id, team: 'blue', host: red.hostname, exp: Date.now() + 60_000 });
  const wrongInstance = tokens.sign({ kind: 'session', instance: blue.id, team: 'blue', host: red.hostname, exp: Date.now() + 60_000 });
  const linkAsCookie = acc.link;
  for (const [name, bad] of [['payload', flipped(value, 5)], ['mac', flipped(value, value.length - 3)], ['expired', expired], ['rotated', rotated],
    ['other team', otherTeam], ['other instance', wrongInstance], ['link as cookie', linkAsCookie], ['truncated', value.slice(0, -1)]] as const) {
    assert.is((await authz(a, red.hostname, { cookie: `poseidon=${bad}` })).statusCode, 401, `cookie: ${name}`);
    assert.is((await authz(a, red.hostname, { access: bad })).statusCode, 401, `header: ${name}`);
  }
  for (const [name, bad] of [['expired link', expiredLink], ['tampered link', flipped(acc.link, 8)], ['session as link', value]] as const) {
    const res = await authz(a, red.hostname, { uri: `/?poseidon_access=${bad}`, accept: 'text/html' });
    assert.is(res.statusCode, 401, name);
    assert.match(res.body, /Link expired/, name);
    assert.is(res.headers['set-cookie'], undefined, name);
  }
  assert.is((await authz(a, blue.hostname, { uri: `/?poseidon_access=${acc.link}` })).statusCode, 401, "red's link on blue's host");
  // The same secret in a fresh process still accepts them; only rotation refuses.
  const restarted = await accessApp({ store: a.store, secret: 'access-test-secret-rotated-1' });
  try {
    assert.is((await authz(restarted, red.hostname, { cookie })).statusCode, 401, 'cookie after rotation');
    assert.is((await authz(restarted, red.hostname, { uri: `/?poseidon_access=${acc.link}` })).statusCode, 401, 'link after rotation');
  } finally {
    await restarted.close();
  }
});

it('the header form (X-Poseidon-Access) works for curl and pwntools, bound the same way', async () => {
  const acc = await getAccess(a, red.id);
  assert.is((await authz(a, red.hostname, { access: acc.token })).statusCode, 200);
  assert.is((await authz(a, blue.hostname, { access: acc.token })).statusCode, 401);
  assert.is((await authz(a, red.hostname, { access: `garbage, ${acc.token}` })).statusCode, 200, 'any of several values');
});

it('spoofed client headers change nothing: only X-Forwarded-Host decides, and a doubled one is refused', async () => {
  const cookie = await redCookie();
  // What a client might add: none of it is read (Traefik overwrites X-Forwarded-*; Host is Poseidon's own).
  const spoof = { host: red.hostname, 'x-real-ip': '127.0.0.1', 'x-original-host': red.hostname, forwarded: `host=${red.hostname}`, 'x-forwarded-server': red.hostname };
  assert.is((await authz(a, blue.hostname, { cookie, headers: spoof })).statusCode, 401);
  // With trustForwardHeader: true, Traefik would append its value to the client's: refused outright.
  assert.is((await authz(a, `${red.hostname}, ${blue.hostname}`, { cookie })).statusCode, 403);
  assert.is((await authz(a, `${blue.hostname},${red.hostname}`, { cookie })).statusCode, 403);
});

it('ambiguous hosts: upper case and a port map to the same instance; a malformed port or a trailing dot is refused', async () => {
  const cookie = await redCookie();
  assert.is((await authz(a, red.hostname.toUpperCase(), { cookie })).statusCode, 200);
  assert.is((await authz(a, `${red.hostname}:8443`, { cookie })).statusCode, 200, 'Traefik on a non-default entry point sends the port');
  for (const host of [`${red.hostname}:0`, `${red.hostname}:8o`, `${red.hostname}.`, `${red.hostname} `, `x.${red.hostname}`, `poseidon.${BASE}`, '']) {
    assert.is((await authz(a, host, { cookie })).statusCode, 403, JSON.stringify(host));
  }
});

it('a link is only exchanged on GET/HEAD and never travels on to the backend', async () => {
  const acc = await getAccess(a, red.id);
  const cookie = await redCookie();
  assert.is((await authz(a, red.hostname, { method: 'POST', uri: `/?poseidon_access=${acc.link}`, cookie })).statusCode, 400);
  assert.is((await authz(a, red.hostname, { method: 'HEAD', uri: `/?poseidon_access=${acc.link}` })).statusCode, 302);
  // An old link with a valid cookie: straight to the clean URL, no new cookie.
  const stale = await authz(a, red.hostname, { uri: '/a?poseidon_access=s.bogus.x&b=1', cookie });
  assert.is(stale.statusCode, 302);
  assert.is(stale.headers.location, '/a?b=1');
  assert.is(stale.headers['set-cookie'], undefined);
});

it('redirects never leave the host: protocol-relative and odd URIs become local paths', async () => {
  const cases: [string, string][] = [
    ['//evil.example/x?poseidon_access=L', '/evil.example/x'], ['/\\evil.example?poseidon_access=L', '/evil.example'],
    ['https://evil.example/?poseidon_access=L', '/https://evil.example/'], ['?poseidon_access=L', '/'],
    ['/p%0d%0aSet-Cookie:%20x?poseidon_access=L', '/p%0d%0aSet-Cookie:%20x'], ['/a b?poseidon_access=L', '/'],
  ];
  for (const [uri, expected] of cases) {
    const acc = await getAccess(a, red.id);
    const res = await authz(a, red.hostname, { uri: uri.replace('=L', `=${acc.link}`) });
    assert.is(res.statusCode, 302, uri);
    assert.is(res.headers.location, expected, uri);
  }
});

it('access links: 404 unknown, 409 not live, 400 bad endpoint, team-scoped keys only for their team', async () => {
  const call = (id: string, key: string, payload?: object) => a.app.inject({ method: 'POST', url: `/v1/instances/${id}/access`, headers: { 'x-api-key': key }, ...(payload ? { payload } : {}) });
  assert.is((await call('ffffffffffffffffffffffff', PLATFORM_KEY)).statusCode, 404);
  assert.is((await call(blue.id, RED_KEY)).statusCode, 403);
  assert.is((await call(red.id, RED_KEY)).statusCode, 200);
  assert.is((await call(red.id, 'wrong-key-0123456789')).statusCode, 401);
  const bad = await call(red.id, PLATFORM_KEY, { endpoint: 'nope' });
  assert.is(bad.statusCode, 400);
  assert.match(bad.json().detail, /HTTP endpoints: web/);
  assert.is((await call(red.id, PLATFORM_KEY, { endpoint: 'web', extra: 1 })).statusCode, 400);
  const pwn = await launchRunning(a, 'pwn', 'red');
  assert.match((await call(pwn.id, PLATFORM_KEY)).json().detail, /TCP endpoints need no link/);
  const gone = await launchRunning(a, 'web', 'green');
  await a.app.inject({ method: 'DELETE', url: `/v1/instances/${gone.id}`, headers: { 'x-api-key': ADMIN_KEY } });
  const refused = await call(gone.id, PLATFORM_KEY);
  assert.is(refused.statusCode, 409);
  assert.is(refused.json().code, 'E_NOT_RUNNING');
});

it('an instance stopped elsewhere is refused within a moment (Redis change feed), with its page', async () => {
  const inst = await launchRunning(a, 'web', 'violet');
  const acc = await getAccess(a, inst.id);
  const cookie = cookieOf((await authz(a, inst.hostname, { uri: `/?poseidon_access=${acc.link}` })).headers['set-cookie']);
  assert.is((await authz(a, inst.hostname, { cookie })).statusCode, 200);
  const elsewhere = new RedisStore({ url: REDIS_URL, prefix });
  try {
    await elsewhere.updateInstance(inst.id, { desired: 'stopped', status: 'stopping' }, Date.now());
  } finally {
    await elsewhere.close();
  }
  const res = await waitFor('refused', async () => {
    const r = await authz(a, inst.hostname, { cookie, accept: 'text/html' });
    return r.statusCode === 200 ? undefined : r;
  }, 3000, 20);
  assert.is(res.statusCode, 410);
  assert.match(res.body, /Stopped/);
});

it('bypass tokens: admin only, per challenge, header or link, never as a raw cookie, and logged by name', async () => {
  const issue = (key: string, body: object) => a.app.inject({ method: 'POST', url: '/v1/access/bypass', headers: { 'x-api-key': key }, payload: body });
  assert.is((await issue(PLATFORM_KEY, { name: 'xss-bot', challenge: 'web' })).statusCode, 403);
  const res = await issue(ADMIN_KEY, { name: 'xss-bot', challenge: 'web', ttlSeconds: 600 });
  assert.is(res.statusCode, 200);
  const { token, expiresAt } = res.json();
  assert.ok(Math.abs(Date.parse(expiresAt) - Date.now() - 600_000) < 2000);
  for (const inst of [red, blue]) assert.is((await authz(a, inst.hostname, { access: token })).statusCode, 200);
  const two = await launchRunning(a, 'two', 'blue');
  assert.is((await authz(a, two.hostname, { access: token })).statusCode, 401, 'other challenge');
  assert.is((await authz(a, red.hostname, { cookie: `poseidon=${token}` })).statusCode, 401, 'not as a raw cookie: it would reach the backend');
  const exchanged = await authz(a, red.hostname, { uri: `/?poseidon_access=${token}` });
  assert.is(exchanged.statusCode, 302);
  const botCookie = cookieOf(exchanged.headers['set-cookie']);
  assert.is((await authz(a, red.hostname, { cookie: botCookie })).statusCode, 200);
  assert.is((await authz(a, blue.hostname, { cookie: botCookie })).statusCode, 401, 'the bot cookie is bound to the host it was made for');
  const all = (await issue(ADMIN_KEY, { name: 'checker' })).json();
  assert.is(all.challenge, '*');
  assert.is((await authz(a, two.hostname, { access: all.token })).statusCode, 200);
  const used = a.log.lines.filter((l) => l.msg.startsWith('access bypass'));
  assert.ok(used.some((l) => (l.obj as { bypass?: string }).bypass === 'xss-bot'));
  assert.ok(used.some((l) => (l.obj as { bypass?: string }).bypass === 'checker'));
  const logged = JSON.stringify(a.log.lines);
  assert.not.ok(logged.includes(token) || logged.includes(all.token) || logged.includes(botCookie.split('=')[1] as string), 'no token in logs');
});

it('the HTTP provider endpoint needs an admin key and serves the last rendered configuration', async () => {
  const cfg = (u: string, key?: string, extra: Record<string, string> = {}) => a.app.inject({ url: u, headers: { ...(key ? { 'x-api-key': key } : {}), ...extra } });
  assert.is((await cfg('/v1/traefik/config')).statusCode, 401);
  assert.is((await cfg('/v1/traefik/config', PLATFORM_KEY)).statusCode, 403);
  const notYet = await cfg('/v1/traefik/config', ADMIN_KEY);
  assert.is(notYet.statusCode, 503);
  assert.is(notYet.json().code, 'E_NOT_READY');
  const doc = { http: { middlewares: {}, routers: { poseidon: { rule: 'Host(`poseidon.ctf.test`)', service: 'poseidon' } }, services: {} } };
  a.snapshot.set(`# header\n${JSON.stringify(doc, null, 2)}\n`);
  const res = await cfg('/v1/traefik/config', ADMIN_KEY);
  assert.is(res.statusCode, 200);
  assert.equal(res.json(), doc);
  assert.match(res.headers['content-type'] as string, /application\/json/);
  const etag = res.headers.etag as string;
  assert.is((await cfg('/v1/traefik/config', ADMIN_KEY, { 'if-none-match': etag })).statusCode, 304);
});

t.run();
