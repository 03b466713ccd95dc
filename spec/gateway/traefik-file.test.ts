/**
 * The incremental renderer against the object renderer: every render, across a sequence of route
 * sets (routes added, removed, changed, moved behind an ingress), gives exactly the bytes of
 * `serializeTraefikConfig(renderTraefikConfig(...))`, under every option variant; errors are the
 * same, and a failed render leaves the kept fragments as they were.
 */
import { createHash } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { hostPrefix } from '../../src/core/naming.ts';
import { renderTraefikConfig, serializeTraefikConfig, type GatewayOptions, type GatewayRoute } from '../../src/gateway/traefik.ts';
import { TraefikFileRenderer } from '../../src/gateway/traefik-file.ts';
import { GOLDEN_ROUTES, OPTS } from './routes.ts';

const VIA = { http: '10.0.0.2:8081', tls: '10.0.0.2:8443' };
const VARIANTS: GatewayOptions[] = [
  OPTS,
  { ...OPTS, middlewares: ['z', 'a@file'] },
  { ...OPTS, tls: { entryPoints: ['websecure'], certResolver: 'le' } },
  { ...OPTS, tls: { entryPoints: ['websecure'], certResolver: 'le', domains: 'host' } },
  { ...OPTS, tls: { entryPoints: ['websecure'], certFile: '/c.crt', keyFile: '/c.key' } },
  { ...OPTS, tls: { entryPoints: ['websecure'] }, edgeSecret: 'edge-secret-0123456789abcdef' },
  { ...OPTS, edgeSecret: 'edge-secret-0123456789abcdef' },
];

function id(n: number): string {
  return createHash('sha256').update(`route-${n}`).digest('hex').slice(0, 24);
}

/** Instance `n`: an HTTP port, and on every third a TCP port too. */
function routesOf(n: number, backendPort = 8080, via?: GatewayRoute['via']): GatewayRoute[] {
  const instance = id(n);
  const challenge = `chal-${n % 4}`;
  const out: GatewayRoute[] = [{ instance, challenge, name: 'web', protocol: 'http', hostname: `${hostPrefix(instance)}.${challenge}.localhost`, backend: `poseidon-${instance}:${backendPort}`, ...(via ? { via } : {}) }];
  if (n % 3 === 0) out.push({ instance, challenge, name: 'pwn', protocol: 'tcp', hostname: `${hostPrefix(instance)}-pwn.${challenge}.localhost`, backend: `poseidon-${instance}:9000`, ...(via ? { via } : {}) });
  return out;
}

function reference(routes: GatewayRoute[], opts: GatewayOptions): string {
  return serializeTraefikConfig(renderTraefikConfig(routes, opts));
}

/** A sequence of route sets, each a change of the one before. */
function steps(withVia: boolean): GatewayRoute[][] {
  const base = Array.from({ length: 30 }, (_, n) => routesOf(n)).flat();
  const added = [...base, ...routesOf(30), ...routesOf(31)];
  const removed = added.filter((r) => r.instance !== id(5) && r.instance !== id(6));
  const changed = removed.map((r) => (r.instance === id(7) && r.name === 'web' ? { ...r, backend: `poseidon-${r.instance}:81` } : r));
  const moved = withVia ? changed.flatMap((r) => (r.instance === id(9) ? routesOf(9, 8080, VIA).filter((x) => x.name === r.name) : [r])) : changed;
  const back = withVia ? moved.flatMap((r) => (r.instance === id(9) ? routesOf(9).filter((x) => x.name === r.name) : [r])) : moved;
  return [base, added, removed, changed, moved, back, [...back].reverse(), [], GOLDEN_ROUTES, base];
}

test('every render equals the object renderer, step by step, under every option variant', () => {
  for (const opts of VARIANTS) {
    const renderer = new TraefikFileRenderer(opts);
    steps(opts.edgeSecret !== undefined).forEach((routes, i) => {
      assert.is(renderer.render(routes), reference(routes, opts), `step ${i} of ${JSON.stringify(opts)}`);
    });
  }
});

test('a route edited in place (same object, new backend) is rendered anew', () => {
  const routes = routesOf(1);
  const renderer = new TraefikFileRenderer(OPTS);
  renderer.render(routes);
  routes[0]!.backend = `poseidon-${routes[0]!.instance}:1234`;
  const text = renderer.render(routes);
  assert.ok(text.includes(`poseidon-${routes[0]!.instance}:1234`));
  assert.is(text, reference(routes, OPTS));
});

test('errors are the object renderer\'s; a failed render keeps what was kept', () => {
  const renderer = new TraefikFileRenderer(OPTS);
  const good = routesOf(1);
  renderer.render(good);
  const cases: [string, GatewayRoute[]][] = [
    ['duplicate hostname', [...good, { ...good[0]!, name: 'other' }]],
    ['duplicate router', [...good, { ...good[0]! }]],
    ['bad backend', [...good, { ...routesOf(2)[0]!, backend: 'x y:80' }]],
    ['foreign hostname', [...good, { ...routesOf(2)[0]!, hostname: 'evil.example.com' }]],
  ];
  for (const [what, routes] of cases) {
    let expected = '';
    try {
      reference(routes, OPTS);
    } catch (err) {
      expected = (err as Error).message;
    }
    assert.ok(expected.length > 0, `${what}: the object renderer throws`);
    assert.throws(() => renderer.render(routes), (err: Error) => err.message === expected, what);
    assert.is(renderer.render(good), reference(good, OPTS), `${what}: the next render is still right`);
  }
  assert.throws(() => renderer.render(routesOf(3, 80, VIA)), /edge secret/i, 'an ingress route needs the edge secret');
});

test('problem(): the validation error of a route, none for a kept one or a good one', () => {
  const renderer = new TraefikFileRenderer(OPTS);
  const [good] = routesOf(1);
  assert.is(renderer.problem(good!), undefined);
  renderer.render([good!]);
  assert.is(renderer.problem(good!), undefined);
  const bad = { ...good!, hostname: 'poseidon.localhost' };
  assert.match(renderer.problem(bad)?.message ?? '', /hostname/);
  assert.match(renderer.problem({ ...good!, backend: 'a:b:c' })?.message ?? '', /backend/);
});

test('bad options throw at construction, as the object renderer throws', () => {
  assert.throws(() => new TraefikFileRenderer({ ...OPTS, baseDomain: 'Bad Domain' }), /domain/i);
  assert.throws(() => new TraefikFileRenderer({ ...OPTS, entryPoints: [] }));
});

test.run();
