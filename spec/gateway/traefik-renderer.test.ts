/**
 * The incremental Traefik file renderer: its text is byte for byte the full render's
 * (`serializeTraefikConfig(renderTraefikConfig(...))`) for every option set and for route sets
 * that change between renders (routes added, removed, moved to another backend or worker), and
 * it refuses what the full render refuses.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { hostPrefix } from '../../src/core/naming.ts';
import { renderTraefikConfig, serializeTraefikConfig, TraefikFileRenderer, type GatewayOptions, type GatewayRoute } from '../../src/gateway/traefik.ts';
import { GOLDEN_ROUTES, OPTS } from './routes.ts';

const EDGE = 'edge-secret-0123456789abcdef';
const OPTION_SETS: [string, GatewayOptions][] = [
  ['plain', OPTS],
  ['middlewares', { ...OPTS, middlewares: ['z', 'a'] }],
  ['tls with resolver', { ...OPTS, tls: { entryPoints: ['websecure'], certResolver: 'le' } }],
  ['tls per host', { ...OPTS, tls: { entryPoints: ['websecure'], certResolver: 'le', domains: 'host' } }],
  ['tls certificate file', { ...OPTS, tls: { entryPoints: ['websecure', 'alt'], certFile: '/c/a.crt', keyFile: '/c/a.key' } }],
  ['tls default certificate', { ...OPTS, tls: { entryPoints: ['websecure'] } }],
  ['edge secret', { ...OPTS, edgeSecret: EDGE }],
];

/** A deterministic pseudo-random route set: http and tcp ports, some through a worker's ingress. */
function routes(seed: number, n: number): GatewayRoute[] {
  let x = seed;
  const next = (): number => (x = (x * 1103515245 + 12345) % 2 ** 31);
  const out: GatewayRoute[] = [];
  for (let i = 0; i < n; i++) {
    const instance = (next() * 7919 + i).toString(16).padStart(24, '0').slice(-24);
    const challenge = `chal-${next() % 5}`;
    const via = next() % 3 === 0 ? { via: { http: `10.0.0.${next() % 200}:80`, tls: `10.0.0.${next() % 200}:443` } } : {};
    out.push({ instance, challenge, name: 'web', protocol: 'http', hostname: `${hostPrefix(instance)}.${challenge}.localhost`, backend: `poseidon-${instance}:${8000 + (next() % 100)}`, ...via });
    if (next() % 4 === 0) out.push({ instance, challenge, name: 'pwn', protocol: 'tcp', hostname: `${hostPrefix(instance)}-pwn.${challenge}.localhost`, backend: `poseidon-${instance}:9000`, ...via });
  }
  return out;
}

const full = (r: readonly GatewayRoute[], o: GatewayOptions): string => serializeTraefikConfig(renderTraefikConfig(r, o));

for (const [label, opts] of OPTION_SETS) {
  test(`${label}: the same bytes as the full render, across changing route sets`, () => {
    const renderer = new TraefikFileRenderer(opts);
    const withVia = opts.edgeSecret !== undefined;
    const pick = (rs: GatewayRoute[]): GatewayRoute[] => (withVia ? rs : rs.map(({ via: _v, ...r }) => r));
    assert.is(renderer.render([]), full([], opts), 'no routes');
    assert.is(renderer.render(GOLDEN_ROUTES), full(GOLDEN_ROUTES, opts), 'golden routes');
    let current = pick(routes(7, 300));
    assert.is(renderer.render(current), full(current, opts), 'first render');
    for (let round = 0; round < 4; round++) {
      // Some go, some come, one moves to another backend (or another worker's ingress).
      const fresh = pick(routes(100 + round, 20));
      const moved = current[round] ? [{ ...current[round]!, backend: `poseidon-${current[round]!.instance}:1234` }] : [];
      current = [...current.slice(round + 1).filter((_, i) => i % 7 !== round), ...moved, ...fresh];
      assert.is(renderer.render(current), full(current, opts), `round ${round}`);
    }
  });
}

test('refuses what the full render refuses: a bad route, a duplicate router, a hostname used twice, ingress routes without an edge secret', () => {
  const renderer = new TraefikFileRenderer(OPTS);
  const [a, b] = GOLDEN_ROUTES as [GatewayRoute, GatewayRoute];
  const cases: [string, GatewayRoute[], GatewayOptions][] = [
    ['bad hostname', [{ ...a, hostname: 'evil.example.com' }], OPTS],
    ['duplicate router', [a, { ...a, hostname: `${hostPrefix(a.instance)}-x.${a.challenge}.localhost`, backend: 'poseidon-x:1' }], OPTS],
    ['hostname twice', [a, { ...b, instance: a.instance, name: 'other', hostname: a.hostname }], OPTS],
    ['via without secret', [{ ...a, via: { http: '10.0.0.1:80', tls: '10.0.0.1:443' } }], OPTS],
  ];
  for (const [what, rs, opts] of cases) {
    assert.throws(() => full(rs, opts), undefined, `full render: ${what}`);
    assert.throws(() => new TraefikFileRenderer(opts).render(rs), undefined, `incremental: ${what}`);
  }
  // A refused render leaves the renderer usable.
  assert.is(renderer.render(GOLDEN_ROUTES), full(GOLDEN_ROUTES, OPTS));
});

test.run();
