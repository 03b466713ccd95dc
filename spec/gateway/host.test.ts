import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { accessCookie, accessCookieName, cookieValues } from '../../src/gateway/cookies.ts';
import { parseInstanceHost } from '../../src/gateway/host.ts';

const BASE = 'ctf.example.org';
const P = '8865fea8edb69716';

test('instance hosts parse to prefix, port and challenge', () => {
  assert.equal(parseInstanceHost(`${P}.web-hello.${BASE}`, BASE), { ok: true, value: { host: `${P}.web-hello.${BASE}`, prefix: P, challenge: 'web-hello' } });
  assert.equal(parseInstanceHost(`${P}-admin.two-ports.${BASE}`, BASE), {
    ok: true, value: { host: `${P}-admin.two-ports.${BASE}`, prefix: P, port: 'admin', challenge: 'two-ports' },
  });
});

test('upper case maps to the same instance (DNS is case-insensitive)', () => {
  const lower = parseInstanceHost(`${P}.web.${BASE}`, BASE);
  for (const variant of [`${P.toUpperCase()}.WEB.${BASE.toUpperCase()}`, `${P}.Web.${BASE}`]) {
    assert.equal(parseInstanceHost(variant, BASE), lower, variant);
  }
});

test('a port (Traefik on a non-default entry point sends host:8443) names the same host', () => {
  for (const raw of [`${P}.web.${BASE}:8443`, `${P}.WEB.${BASE}:443`, `${P}.web.${BASE}:65535`, `${P}.web.${BASE}:1`]) {
    assert.equal(parseInstanceHost(raw, BASE), { ok: true, value: { host: `${P}.web.${BASE}`, prefix: P, challenge: 'web' } }, raw);
  }
});

test('ambiguous or foreign hosts are refused, each with a reason', () => {
  const bad: [unknown, RegExp][] = [
    [undefined, /no host/], ['', /no host/],
    [[`${P}.web.${BASE}`, `${P}.web.${BASE}`], /more than one/],
    [`${P}.web.${BASE}, ${P}.other.${BASE}`, /more than one/],
    [`${P}.web.${BASE}:0`, /port/], [`${P}.web.${BASE}:65536`, /port/], [`${P}.web.${BASE}:080`, /port/], [`${P}.web.${BASE}:`, /port/],
    [`${P}.web.${BASE}:80:80`, /port/], [`${P}.web.${BASE}:8o`, /port/], [`[::1]:80`, /port/], [`${P}.web.${BASE}.:443`, /trailing dot/],
    [`${P}.web.${BASE}.`, /trailing dot/],
    [`${P}.web.${BASE} `, /invalid characters/], [`${P}.we_b.${BASE}`, /invalid characters/], [`${P}.wéb.${BASE}`, /invalid characters/],
    [`${P}.web.evil.org`, /outside/], [`${P}.web.${BASE}.evil.org`, /outside/], [`x${BASE}`, /outside/],
    [`poseidon.${BASE}`, /not an instance/], [`${P}.${BASE}`, /not an instance/], [`a.${P}.web.${BASE}`, /not an instance/],
    [`${P.slice(1)}.web.${BASE}`, /not an instance/], [`${P}0.web.${BASE}`, /not an instance/], [`${P}-.web.${BASE}`, /not an instance/],
    [`${P}..web.${BASE}`, /not an instance/], [`${P}.-web.${BASE}`, /not an instance/], ['a'.repeat(254), /too long/],
  ];
  for (const [raw, reason] of bad) {
    const r = parseInstanceHost(raw as string, BASE);
    assert.not.ok(r.ok, JSON.stringify(raw));
    if (!r.ok) assert.match(r.reason, reason, JSON.stringify(raw));
  }
});

test('cookie values: every occurrence of the name, only at a boundary, bounded', () => {
  assert.equal(cookieValues('a=1; poseidon=x; b=2; poseidon=y', 'poseidon'), ['x', 'y']);
  assert.equal(cookieValues('xposeidon=no; poseidon_old=no; poseidon=yes', 'poseidon'), ['yes']);
  assert.equal(cookieValues(['a=1', 'poseidon=z'], 'poseidon'), ['z']);
  assert.equal(cookieValues(undefined, 'poseidon'), []);
  assert.equal(cookieValues(Array.from({ length: 50 }, (_, i) => `poseidon=${i}`).join('; '), 'poseidon').length, 8);
});

test('the access cookie is host-only, HttpOnly, Lax; Secure under __Host- with TLS', () => {
  const plain = accessCookie('tok', 3600.7, false);
  assert.is(plain, 'poseidon=tok; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax');
  const tls = accessCookie('tok', 60, true);
  assert.is(tls, '__Host-poseidon=tok; Path=/; Max-Age=60; HttpOnly; SameSite=Lax; Secure');
  assert.not.match(tls, /Domain=/i);
  assert.is(accessCookieName(true), '__Host-poseidon');
});

test.run();
