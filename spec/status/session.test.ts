/**
 * Status page sessions, pure: signing and verifying, what ends a session (tampering, expiry, a
 * removed or re-roled key, another secret), the CSRF token, the cookie's attributes and the
 * same-origin rule.
 */
import type { FastifyRequest } from 'fastify';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { keyDigest, type ApiKey } from '../../src/api/auth.ts';
import { AuditLog, MemoryAuditTrail, type AuditTrail } from '../../src/status/audit.ts';
import { sameOrigin, SESSION_MS, sessionCookie, StatusSessions } from '../../src/status/session.ts';

const t = suite('status: sessions');
const SECRET = 'status-test-access-secret-0123456789';
const ADMIN_KEY = 'admin-key-0123456789abcdef';
const OPERATOR_KEY = 'operator-key-0123456789abcdef';
const admin: ApiKey = { name: 'root', role: 'admin', digest: keyDigest(ADMIN_KEY) };
const operator: ApiKey = { name: 'ops', role: 'operator', digest: keyDigest(OPERATOR_KEY) };
const platform: ApiKey = { name: 'ctfd', role: 'platform', digest: keyDigest('platform-key-0123456789abcdef') };

function clock(start = 1_800_000_000_000) {
  const c = { now: start, fn: () => c.now };
  return c;
}

t('a session carries the key name and role, not the key, and verifies', () => {
  const c = clock();
  const s = new StatusSessions(SECRET, [admin, operator], c.fn);
  const token = s.sign(operator) as string;
  assert.ok(token.startsWith('o.'));
  assert.not.ok(token.includes(OPERATOR_KEY));
  const payload = Buffer.from(token.split('.')[1] as string, 'base64url').toString('utf8');
  assert.not.ok(payload.includes(OPERATOR_KEY) || payload.includes(keyDigest(OPERATOR_KEY).toString('hex')) || payload.includes(keyDigest(OPERATOR_KEY).toString('base64url')));
  const got = s.verify(token);
  assert.equal({ name: got?.name, role: got?.role, exp: got?.exp }, { name: 'ops', role: 'operator', exp: Math.floor((c.now + SESSION_MS) / 1000) * 1000 });
});

t('platform and gateway keys cannot sign in', () => {
  const s = new StatusSessions(SECRET, [platform]);
  assert.is(s.sign(platform), undefined);
  assert.is(s.sign({ ...platform, role: 'gateway' }), undefined);
});

t('tampering, expiry, another secret, a removed or re-roled key all end a session', () => {
  const c = clock();
  const s = new StatusSessions(SECRET, [admin, operator], c.fn);
  const token = s.sign(operator) as string;
  const [, payload, mac] = token.split('.') as [string, string, string];
  const forged = Buffer.from(Buffer.from(payload, 'base64url').toString('utf8').replace('"operator"', '"admin"')).toString('base64url');
  assert.is(s.verify(`o.${forged}.${mac}`), undefined, 'role raised in the payload');
  assert.is(s.verify(`${token}x`), undefined);
  assert.is(s.verify(`s.${payload}.${mac}`), undefined, 'another kind');
  assert.is(s.verify(''), undefined);
  assert.is(s.verify('o.'.padEnd(5000, 'a')), undefined);
  assert.is(new StatusSessions(`${SECRET}-rotated`, [admin, operator], c.fn).verify(token), undefined, 'rotated secret');
  assert.is(new StatusSessions(SECRET, [admin], c.fn).verify(token), undefined, 'key removed');
  assert.is(new StatusSessions(SECRET, [admin, { ...operator, role: 'admin' }], c.fn).verify(token), undefined, 'key re-roled');
  assert.is(new StatusSessions(SECRET, [admin, { ...operator, digest: keyDigest('another-operator-key-0123') }], c.fn).verify(token), undefined, 'key changed under the same name');
  c.now += SESSION_MS - 1000;
  assert.ok(s.verify(token), 'valid until its expiry');
  c.now += 1000;
  assert.is(s.verify(token), undefined, 'expired');
});

t('the CSRF token is per session and says nothing about the cookie', () => {
  const s = new StatusSessions(SECRET, [admin]);
  const a = s.verify(s.sign(admin) as string);
  const b = s.verify(s.sign(admin) as string);
  assert.ok(a && b);
  assert.is.not(s.csrf(a), s.csrf(b));
  assert.match(s.csrf(a), /^[A-Za-z0-9_-]{43}$/);
  assert.not.ok(a.token.includes(s.csrf(a)));
});

t('the cookie is HttpOnly, SameSite=Strict, Path=/, 12 h; Secure over TLS; clearing it expires it', () => {
  assert.is(sessionCookie('o.x.y', false), 'poseidon_status=o.x.y; Path=/; Max-Age=43200; HttpOnly; SameSite=Strict');
  assert.is(sessionCookie('o.x.y', true), 'poseidon_status=o.x.y; Path=/; Max-Age=43200; HttpOnly; SameSite=Strict; Secure');
  assert.is(sessionCookie(undefined, false), 'poseidon_status=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict');
});

t('same origin: Origin must name the Host; Sec-Fetch-Site must say same-origin; one of them is needed', () => {
  const req = (headers: Record<string, string>) => ({ headers: { host: 'poseidon.ctf.test:8080', ...headers } }) as unknown as FastifyRequest;
  const cases: [Record<string, string>, boolean][] = [
    [{ origin: 'http://poseidon.ctf.test:8080' }, true],
    [{ origin: 'https://poseidon.ctf.test:8080', 'sec-fetch-site': 'same-origin' }, true],
    [{ 'sec-fetch-site': 'same-origin' }, true],
    [{}, false],
    [{ origin: 'http://evil.test' }, false],
    [{ origin: 'http://poseidon.ctf.test:8081' }, false],
    [{ origin: 'http://poseidon.ctf.test' }, false],
    [{ origin: 'null' }, false],
    [{ origin: 'file://poseidon.ctf.test:8080' }, false],
    [{ origin: 'http://poseidon.ctf.test:8080', 'sec-fetch-site': 'same-site' }, false],
    [{ origin: 'http://poseidon.ctf.test:8080', 'sec-fetch-site': 'cross-site' }, false],
    [{ 'sec-fetch-site': 'none' }, false],
  ];
  for (const [headers, want] of cases) assert.is(sameOrigin(req(headers)), want, JSON.stringify(headers));
});

t('the audit log keeps the newest entries of its trail, newest first, and logs each one', async () => {
  const lines: object[] = [];
  const log = { debug() {}, info: (o: object) => lines.push(o), warn() {}, error() {} };
  const audit = new AuditLog(log, new MemoryAuditTrail(3));
  for (let i = 0; i < 5; i++) audit.record({ who: `k${i}`, role: 'admin', action: 'sync', status: i === 4 ? 502 : 200, via: 'key' });
  assert.equal((await audit.list()).map((e) => [e.who, e.result]), [['k4', 'error'], ['k3', 'ok'], ['k2', 'ok']]);
  assert.is(lines.length, 5);
  assert.equal(Object.keys(lines[0] as object), ['audit'], 'the log line is the entry, as ever');
  const first = new AuditLog(log, new MemoryAuditTrail(3));
  first.record({ who: 'a', role: 'operator', action: 'cordon worker', target: 'w1', status: 403, via: 'session' });
  assert.equal((await first.list()).map((e) => [e.who, e.target, e.result]), [['a', 'w1', 'refused']]);
});

t('a trail that cannot be written never fails the action: the log line is written, the failure logged', async () => {
  const infos: object[] = [];
  const warns: [object, string][] = [];
  const log = { debug() {}, info: (o: object) => infos.push(o), warn: (o: object, m: string) => warns.push([o, m]), error() {} };
  const broken: AuditTrail = {
    scope: 'shared',
    append: () => Promise.reject(new Error('the audit trail (Redis) unavailable: connection refused')),
    list: () => Promise.reject(new Error('unreadable')),
    close: async () => undefined,
  };
  const entry = new AuditLog(log, broken).record({ who: 'root', role: 'admin', action: 'sync', status: 200, via: 'key' });
  assert.is(entry.result, 'ok');
  assert.is(infos.length, 1);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(warns.map(([o, m]) => [m, (o as { action: string }).action]), [['audit trail write failed', 'sync']]);
});

t.run();
