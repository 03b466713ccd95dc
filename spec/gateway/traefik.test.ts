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

test('never empty: no routes still yields the fixed poseidon router and service', () => {
  const cfg = renderTraefikConfig([], OPTS);
  assert.equal(Object.keys(cfg.http.routers), ['poseidon']);
  assert.equal(cfg.http.routers['poseidon'], {
    entryPoints: ['web'],
    rule: 'Host(`poseidon.localhost`)',
    service: 'poseidon',
  });
  assert.equal(cfg.http.services['poseidon'], {
    loadBalancer: { servers: [{ url: 'http://poseidon:8080' }], passHostHeader: true },
  });
});

test('tcp routes are skipped (no router, no service)', () => {
  const tcp = GOLDEN_ROUTES.filter((r) => r.protocol === 'tcp');
  assert.equal(tcp.length, 1);
  assert.equal(Object.keys(renderTraefikConfig(tcp, OPTS).http.routers), ['poseidon']);
});

test('middlewares attach to every instance router, never to the poseidon router', () => {
  const cfg = renderTraefikConfig(GOLDEN_ROUTES, { ...OPTS, middlewares: ['auth@file', 'ratelimit'] });
  for (const [name, router] of Object.entries(cfg.http.routers)) {
    assert.equal(router.middlewares, name === 'poseidon' ? undefined : ['auth@file', 'ratelimit'], name);
  }
  // An empty list is the same as none.
  assert.is(render(GOLDEN_ROUTES, { ...OPTS, middlewares: [] }), render(GOLDEN_ROUTES));
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
  ];
  for (const patch of bad) assert.throws(() => renderTraefikConfig([], { ...OPTS, ...patch }), JSON.stringify(patch));
});

test('duplicate router names and duplicate hostnames throw', () => {
  assert.throws(() => renderTraefikConfig([base, { ...base }], OPTS), /duplicate/);
  const sameHost = { ...base, name: 'other', backend: 'poseidon-x:81' };
  assert.throws(() => renderTraefikConfig([base, sameHost], OPTS), /duplicate hostname/);
});

test.run();
