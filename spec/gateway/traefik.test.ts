import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv } from 'ajv';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parse } from 'yaml';
import { isPoseidonError } from '../../src/core/errors.ts';
import {
  type GatewayOptions,
  type GatewayRoute,
  renderTraefikConfig,
  serializeTraefikConfig,
} from '../../src/gateway/traefik.ts';
import { oracle, ROOT } from '../helpers/deps.ts';
import { GOLDEN_ROUTES, OPTS } from './routes.ts';

const GOLDEN = path.join(ROOT, 'spec', 'fixtures', 'gateway', 'two-instances.yml');
const base = GOLDEN_ROUTES[0]!;

function render(routes: GatewayRoute[], opts: GatewayOptions = OPTS): string {
  return serializeTraefikConfig(renderTraefikConfig(routes, opts));
}

/** Deterministic Fisher-Yates with a tiny LCG so a failure reproduces. */
function shuffled<T>(xs: readonly T[], seed: number): T[] {
  const out = [...xs];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

test('golden: the fixed route set renders to exactly two-instances.yml', () => {
  assert.is(render(GOLDEN_ROUTES), readFileSync(GOLDEN, 'utf8'));
});

test('golden: with TLS and a resolver, exactly two-instances-tls.yml', () => {
  const tls: GatewayOptions = { ...OPTS, tls: { entryPoints: ['websecure'], certResolver: 'le' } };
  assert.is(render(GOLDEN_ROUTES, tls), readFileSync(GOLDEN.replace('.yml', '-tls.yml'), 'utf8'));
});

test('golden: YAML round-trips to the rendered object', () => {
  const cfg = renderTraefikConfig(GOLDEN_ROUTES, OPTS);
  assert.equal(parse(serializeTraefikConfig(cfg)), cfg);
});

test('oracle: empty and golden configs validate against the Traefik v3 file-provider schema', () => {
  const schemaPath = oracle('traefik-v3-file-provider.json');
  if (!schemaPath) return;
  const validate = new Ajv().compile(JSON.parse(readFileSync(schemaPath, 'utf8')) as object);
  const cases: [string, GatewayRoute[], GatewayOptions][] = [
    ['empty', [], OPTS],
    ['golden', GOLDEN_ROUTES, OPTS],
    ['middlewares + two entry points', GOLDEN_ROUTES, { ...OPTS, entryPoints: ['web', 'websecure'], middlewares: ['auth@file'] }],
    ['tls with resolver', GOLDEN_ROUTES, { ...OPTS, tls: { entryPoints: ['websecure'], certResolver: 'le' } }],
    ['tls with resolver, per host', GOLDEN_ROUTES, { ...OPTS, tls: { entryPoints: ['websecure'], certResolver: 'le', domains: 'host' } }],
    ['tls with certificate file', GOLDEN_ROUTES, { ...OPTS, tls: { entryPoints: ['websecure', 'alt'], certFile: '/c/a.crt', keyFile: '/c/a.key' } }],
    ['tls with the default certificate', GOLDEN_ROUTES, { ...OPTS, tls: { entryPoints: ['websecure'] } }],
  ];
  for (const [label, routes, opts] of cases) {
    const json = JSON.parse(JSON.stringify(parse(render(routes, opts)))) as unknown;
    const ok = validate(json);
    assert.ok(ok, `${label}: ${JSON.stringify(validate.errors)}`);
  }
});

test('oracle sanity: the schema rejects a misspelt router key', () => {
  const schemaPath = oracle('traefik-v3-file-provider.json');
  if (!schemaPath) return;
  const validate = new Ajv().compile(JSON.parse(readFileSync(schemaPath, 'utf8')) as object);
  const cfg = renderTraefikConfig([], OPTS) as unknown as { http: { routers: Record<string, object> } };
  cfg.http.routers['poseidon'] = { ...cfg.http.routers['poseidon'], entrypoints: ['web'] };
  assert.not.ok(validate(cfg));
});

test('determinism: shuffled input gives identical bytes', () => {
  const expected = render(GOLDEN_ROUTES);
  for (let seed = 1; seed <= 25; seed++) assert.is(render(shuffled(GOLDEN_ROUTES, seed)), expected, `seed ${seed}`);
});

test('never empty: no routes still yields the fixed routers, service and middlewares', () => {
  const cfg = renderTraefikConfig([], OPTS);
  assert.equal(Object.keys(cfg.http.routers), ['poseidon', 'poseidon-catchall']);
  assert.equal(Object.keys(cfg.http.middlewares), ['poseidon-authz', 'poseidon-page', 'poseidon-strip']);
  assert.equal(cfg.http.routers['poseidon'], {
    entryPoints: ['web'],
    rule: 'Host(`poseidon.localhost`)',
    service: 'poseidon',
  });
  assert.equal(cfg.http.services['poseidon'], {
    loadBalancer: { servers: [{ url: 'http://poseidon:8080' }], passHostHeader: true },
  });
  assert.is(cfg.tcp, undefined);
  assert.is(cfg.tls, undefined);
});

test('forwardAuth: Poseidon /v1/authz, client X-Forwarded-* never trusted, only identifying headers passed', () => {
  const cfg = renderTraefikConfig([], { ...OPTS, poseidonUrl: 'http://poseidon:8080/' });
  assert.equal(cfg.http.middlewares['poseidon-authz'], {
    forwardAuth: {
      address: 'http://poseidon:8080/v1/authz',
      trustForwardHeader: false,
      authRequestHeaders: ['Accept', 'Authorization', 'Cookie', 'X-Poseidon-Access'],
    },
  });
  // The header token is removed before the request reaches the backend (empty value = remove).
  assert.equal(cfg.http.middlewares['poseidon-strip'], { headers: { customRequestHeaders: { 'X-Poseidon-Access': '' } } });
});

test('every instance router runs forward-auth then the strip, then extra middlewares; fixed routers do not', () => {
  const cfg = renderTraefikConfig(GOLDEN_ROUTES, { ...OPTS, middlewares: ['auth@file', 'ratelimit'] });
  for (const [name, router] of Object.entries(cfg.http.routers)) {
    const expected = name === 'poseidon' ? undefined : name === 'poseidon-catchall' ? ['poseidon-page']
      : ['poseidon-authz', 'poseidon-strip', 'auth@file', 'ratelimit'];
    assert.equal(router.middlewares, expected, name);
  }
  // An empty list is the same as none.
  assert.is(render(GOLDEN_ROUTES, { ...OPTS, middlewares: [] }), render(GOLDEN_ROUTES));
});

/** The catch-all HostRegexp as a JavaScript RegExp (Go's `(?i)` becomes the i flag). */
function catchAll(opts: GatewayOptions): RegExp {
  const rule = renderTraefikConfig([], opts).http.routers['poseidon-catchall']!.rule;
  const m = /^HostRegexp\(`\^\(\?i\)(.*)`\)$/.exec(rule);
  assert.ok(m, rule);
  return new RegExp(`^${m![1]}`, 'i');
}

test('catch-all: lowest priority, to the page, matching instance hostnames only', () => {
  const cfg = renderTraefikConfig(GOLDEN_ROUTES, OPTS);
  const router = cfg.http.routers['poseidon-catchall']!;
  assert.is(router.priority, 1);
  assert.is(router.service, 'poseidon');
  assert.equal(cfg.http.middlewares['poseidon-page'], { replacePath: { path: '/v1/gateway/page' } });
  for (const r of Object.values(cfg.http.routers)) if (r !== router) assert.ok(r.priority === undefined || r.priority >= 1);
  const re = catchAll({ ...OPTS, baseDomain: 'ctf.example.org' });
  for (const host of ['8865fea8edb69716.web.ctf.example.org', '8865fea8edb69716-admin.two-ports.ctf.example.org', '8865FEA8EDB69716.WEB.CTF.EXAMPLE.ORG']) {
    assert.ok(re.test(host), host);
  }
  for (const host of ['poseidon.ctf.example.org', 'ctf.example.org', '8865fea8edb69716.web.ctfXexample.org', 'x.8865fea8edb69716.web.ctf.example.org.evil', '8865fea8edb6971.web.ctf.example.org']) {
    assert.not.ok(re.test(host), host);
  }
});

test('TCP routes become HostSNI routers over TLS to the backend', () => {
  const tcp = GOLDEN_ROUTES.filter((r) => r.protocol === 'tcp');
  assert.equal(tcp.length, 1);
  const cfg = renderTraefikConfig(tcp, OPTS);
  assert.equal(Object.keys(cfg.http.routers), ['poseidon', 'poseidon-catchall'], 'no HTTP router for a TCP port');
  assert.equal(cfg.tcp, {
    routers: { 'i-fedcba9876543210fedcba98-nc': { entryPoints: ['web'], rule: 'HostSNI(`e48413078d794d23-nc.sqli-lab.localhost`)', service: 'i-fedcba9876543210fedcba98-nc', tls: {} } },
    services: { 'i-fedcba9876543210fedcba98-nc': { loadBalancer: { servers: [{ address: 'poseidon-fedcba9876543210fedcba98:31337' }] } } },
  });
});

const TLS_RESOLVER: GatewayOptions = { ...OPTS, tls: { entryPoints: ['websecure'], certResolver: 'le' } };
const TLS_FILE: GatewayOptions = { ...OPTS, tls: { entryPoints: ['websecure'], certFile: '/certs/wild.crt', keyFile: '/certs/wild.key' } };

test('TLS: every router on the TLS entry points with tls, plain HTTP redirected to https', () => {
  for (const opts of [TLS_RESOLVER, TLS_FILE]) {
    const cfg = renderTraefikConfig(GOLDEN_ROUTES, opts);
    for (const [name, r] of Object.entries(cfg.http.routers)) {
      if (name === 'poseidon-redirect') continue;
      assert.equal(r.entryPoints, ['websecure'], name);
      assert.ok(r.tls, `${name} has tls`);
    }
    const redirect = cfg.http.routers['poseidon-redirect']!;
    assert.equal(redirect.entryPoints, ['web']);
    assert.equal(redirect.middlewares, ['poseidon-https']);
    assert.is(redirect.priority, 1);
    assert.equal(cfg.http.middlewares['poseidon-https'], { redirectScheme: { scheme: 'https', permanent: true } });
    for (const r of Object.values(cfg.tcp!.routers)) assert.equal(r.entryPoints, ['websecure']);
  }
});

test('TLS with a resolver: one wildcard certificate per challenge by default, or per host', () => {
  const cfg = renderTraefikConfig(GOLDEN_ROUTES, TLS_RESOLVER);
  assert.equal(cfg.http.routers['i-0123456789abcdef01234567-admin']!.tls, { certResolver: 'le', domains: [{ main: 'web-hello.localhost', sans: ['*.web-hello.localhost'] }] });
  assert.equal(cfg.tcp!.routers['i-fedcba9876543210fedcba98-nc']!.tls, { certResolver: 'le', domains: [{ main: 'sqli-lab.localhost', sans: ['*.sqli-lab.localhost'] }] });
  assert.equal(cfg.http.routers['poseidon']!.tls, { certResolver: 'le', domains: [{ main: 'poseidon.localhost' }] });
  assert.equal(cfg.http.routers['poseidon-catchall']!.tls, {}, 'no certificate request from a regexp');
  const perHost = renderTraefikConfig(GOLDEN_ROUTES, { ...TLS_RESOLVER, tls: { ...TLS_RESOLVER.tls!, domains: 'host' } });
  assert.equal(perHost.http.routers['i-0123456789abcdef01234567-admin']!.tls, { certResolver: 'le', domains: [{ main: '8865fea8edb69716-admin.web-hello.localhost' }] });
  assert.is(cfg.tls, undefined);
});

test('TLS with a certificate file: listed once, routers use the store', () => {
  const cfg = renderTraefikConfig(GOLDEN_ROUTES, TLS_FILE);
  assert.equal(cfg.tls, { certificates: [{ certFile: '/certs/wild.crt', keyFile: '/certs/wild.key' }] });
  for (const r of Object.values(cfg.http.routers)) if (r.tls) assert.equal(r.tls, {});
});

type Bad = [label: string, patch: Partial<GatewayRoute>];
const INJECTIONS: Bad[] = [
  ['hostname with backtick', { hostname: 'a`) || Host(`evil.com.web-hello.localhost' }],
  ['hostname with ||', { hostname: 'a||b.web-hello.localhost' }],
  ['uppercase hostname', { hostname: 'ABC.web-hello.localhost' }],
  ['hostname with space', { hostname: 'a b.web-hello.localhost' }],
  ['hostname with newline', { hostname: 'a\nrule: x.web-hello.localhost' }],
  ['hostname with trailing newline', { hostname: 'a.web-hello.localhost\n' }],
  ['hostname with empty label', { hostname: 'a..web-hello.localhost' }],
  ['hostname with leading hyphen', { hostname: '-a.web-hello.localhost' }],
  ['hostname outside its challenge', { hostname: 'a.other.localhost' }],
  ['hostname stealing poseidon', { hostname: 'poseidon.localhost' }],
  ['hostname under a foreign domain', { hostname: 'a.web-hello.localhost.evil.com' }],
  ['hostname not in the instance shape', { hostname: 'not-hex-prefix.web-hello.localhost' }],
  ['hostname with an extra label', { hostname: 'a.8865fea8edb69716.web-hello.localhost' }],
  ['backend with /', { backend: 'poseidon-x:8080/admin' }],
  ['backend with scheme', { backend: 'http://poseidon-x:8080' }],
  ['backend without port', { backend: 'poseidon-x' }],
  ['backend port out of range', { backend: 'poseidon-x:99999' }],
  ['backend with space', { backend: 'poseidon-x :80' }],
  ['instance uppercase', { instance: '0123456789ABCDEF01234567' }],
  ['instance too short', { instance: 'abc' }],
  ['name with backtick', { name: 'w`b' }],
  ['name uppercase', { name: 'Web' }],
  ['name too long', { name: 'a'.repeat(64) }],
  ['challenge with dot', { challenge: 'web.hello' }],
  ['protocol unknown', { protocol: 'udp' as 'tcp' }],
];

test('injection attempts throw an error naming the bad value', () => {
  for (const [label, patch] of INJECTIONS) {
    const badValue = Object.values(patch)[0];
    for (const protocol of ['http', 'tcp'] as const) {
      const route = { ...base, protocol, ...patch };
      try {
        renderTraefikConfig([...GOLDEN_ROUTES.slice(1), route], OPTS);
        assert.unreachable(`${label} (${protocol}) rendered`);
      } catch (err) {
        if (err instanceof assert.Assertion) throw err;
        assert.ok(isPoseidonError(err), `${label}: ${String(err)}`);
        assert.ok(err.message.includes(JSON.stringify(badValue)), `${label}: ${err.message}`);
      }
    }
  }
});

test('bad options throw: baseDomain, entry point, middleware, poseidonUrl', () => {
  const bad: Partial<GatewayOptions>[] = [
    { baseDomain: 'Local`host' },
    { baseDomain: '' },
    { entryPoints: ['web', 'a b'] },
    { middlewares: ['auth\n'] },
    { poseidonUrl: 'not a url' },
    { poseidonUrl: 'ftp://poseidon' },
    { poseidonUrl: 'http://user:pw@poseidon:8080' },
    { poseidonUrl: 'http://poseidon:8080/?x=1' },
    { entryPoints: [] },
    { tls: { entryPoints: [] } },
    { tls: { entryPoints: ['websecure'], certResolver: 'le"' } },
    { tls: { entryPoints: ['websecure'], certFile: '/a.crt' } },
    { tls: { entryPoints: ['websecure'], certFile: '/a.crt', keyFile: '/a.key', certResolver: 'le' } },
    { tls: { entryPoints: ['websecure'], certFile: 'relative.crt', keyFile: '/a.key' } },
    { tls: { entryPoints: ['websecure'], certFile: '/a.crt\n', keyFile: '/a.key' } },
  ];
  for (const patch of bad) assert.throws(() => renderTraefikConfig([], { ...OPTS, ...patch }), JSON.stringify(patch));
});

test('duplicate router names and duplicate hostnames throw', () => {
  assert.throws(() => renderTraefikConfig([base, { ...base }], OPTS), /duplicate/);
  const sameHost = { ...base, name: 'other', backend: 'poseidon-x:81' };
  assert.throws(() => renderTraefikConfig([base, sameHost], OPTS), /duplicate hostname/);
});

test.run();
