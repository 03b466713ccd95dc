/**
 * Edge routes across workers (`routesFor` in src/controller/gateway-reconciler.ts, pure) and
 * their rendering (`renderTraefikConfig`): only instances running on a worker that is not lost
 * are routed; through the worker's ingress when it has one (HTTP with the edge secret set by the
 * `poseidon-edge` middleware, TCP passed through to the ingress TLS entry point), straight to
 * the container otherwise. Every rendered file validates against the Traefik v3 oracle.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Ajv } from 'ajv';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parse } from 'yaml';
import { FleetView } from '../../src/controller/fleet-view.ts';
import { gatewayReconciler, routesFor } from '../../src/controller/gateway-reconciler.ts';
import { isPoseidonError } from '../../src/core/errors.ts';
import type { Endpoint, Instance } from '../../src/core/instance.ts';
import { newSealingKeys } from '../../src/core/seal.ts';
import type { WorkerState, WorkerView } from '../../src/core/worker.ts';
import { TraefikFileWriter } from '../../src/gateway/file-writer.ts';
import {
  EDGE_HEADER, EDGE_MIDDLEWARE, renderTraefikConfig, serializeTraefikConfig, type GatewayOptions, type GatewayRoute,
} from '../../src/gateway/traefik.ts';
import { MemoryFleet } from '../../src/store/memory-fleet.ts';
import { MemoryStore } from '../../src/store/memory.ts';
import { oracle } from '../helpers/deps.ts';
import { memoryLogger } from '../helpers/log.ts';
import { makeInstance } from '../helpers/specs.ts';
import { GOLDEN_ROUTES, OPTS } from '../gateway/routes.ts';

const NOW = 1_900_000_000_000;
const SECRET = 'edge-secret-0123456789abcdef';
const VIA_OPTS: GatewayOptions = { ...OPTS, edgeSecret: SECRET };
const INGRESS = { http: '10.0.0.12:18080', tls: '10.0.0.12:18443' };

/** Endpoints of the golden instances (A: two HTTP ports, B: one HTTP and one TCP port). */
function endpointsOf(instance: string): Endpoint[] {
  return GOLDEN_ROUTES.filter((r) => r.instance === instance).map((r) => ({
    name: r.name, protocol: r.protocol, port: Number(r.backend.split(':')[1]), hostname: r.hostname, backend: r.backend,
    url: r.protocol === 'http' ? `http://${r.hostname}/` : `tls://${r.hostname}:80`,
  }));
}

const A = '0123456789abcdef01234567';
const B = 'fedcba9876543210fedcba98';

function inst(id: string, over: Partial<Instance> = {}): Instance {
  const challenge = GOLDEN_ROUTES.find((r) => r.instance === id)?.challenge ?? 'web-hello';
  return makeInstance({
    id, challenge, status: 'running', worker: 'w1', epoch: 1, endpoints: endpointsOf(id), expiresAt: NOW + 60_000, maxExpiresAt: NOW + 120_000, ...over,
  });
}

function worker(id: string, state: WorkerState, over: Partial<WorkerView> = {}): WorkerView {
  return {
    id, address: '10.0.0.12', runtimes: ['runc'], labels: {}, capacity: { slots: 10, cpu: 8, memoryBytes: 8 * 1024 ** 3 },
    publicKey: 'pem', version: 'test', heartbeatAt: NOW, startedAt: NOW, admin: state === 'lost' || state === 'ready' ? 'active' : state, state, ...over,
  };
}

function workers(...ws: WorkerView[]): Map<string, WorkerView> {
  return new Map(ws.map((w) => [w.id, w]));
}

/* ---------------------------------------------------------------- which instances are routed */

interface Row {
  label: string;
  inst: Partial<Instance>;
  workers: WorkerView[];
  /** Whether the instance's routes appear, and whether through the ingress. */
  routed: 'none' | 'direct' | 'via';
}

const ROWS: Row[] = [
  { label: 'running on a ready worker without an ingress', inst: {}, workers: [worker('w1', 'ready')], routed: 'direct' },
  { label: 'running on a ready worker with an ingress', inst: {}, workers: [worker('w1', 'ready', { ingress: INGRESS })], routed: 'via' },
  { label: 'running on a cordoned worker (it still serves)', inst: {}, workers: [worker('w1', 'cordoned', { ingress: INGRESS })], routed: 'via' },
  { label: 'running on a draining worker (make-before-break)', inst: {}, workers: [worker('w1', 'draining')], routed: 'direct' },
  { label: 'running on a lost worker', inst: {}, workers: [worker('w1', 'lost', { ingress: INGRESS })], routed: 'none' },
  { label: 'placed on a worker that is not registered', inst: {}, workers: [worker('w2', 'ready')], routed: 'none' },
  { label: 'not placed', inst: { worker: undefined, epoch: 0 }, workers: [worker('w1', 'ready')], routed: 'none' },
  { label: 'pending', inst: { status: 'pending' }, workers: [worker('w1', 'ready')], routed: 'none' },
  { label: 'starting', inst: { status: 'starting' }, workers: [worker('w1', 'ready')], routed: 'none' },
  { label: 'stopping', inst: { status: 'stopping' }, workers: [worker('w1', 'ready')], routed: 'none' },
  { label: 'failed', inst: { status: 'failed' }, workers: [worker('w1', 'ready')], routed: 'none' },
  { label: 'running but asked to stop', inst: { desired: 'stopped' }, workers: [worker('w1', 'ready')], routed: 'none' },
  { label: 'running but expired (at the expiry instant)', inst: { expiresAt: NOW }, workers: [worker('w1', 'ready')], routed: 'none' },
  { label: 'running, one millisecond before expiry', inst: { expiresAt: NOW + 1 }, workers: [worker('w1', 'ready')], routed: 'direct' },
];

for (const row of ROWS) {
  test(`routesFor: ${row.label} -> ${row.routed}`, () => {
    const routes = routesFor([inst(B, row.inst)], workers(...row.workers), NOW);
    if (row.routed === 'none') {
      assert.equal(routes, []);
      return;
    }
    const expected: GatewayRoute[] = GOLDEN_ROUTES.filter((r) => r.instance === B).map((r) => ({ ...r, ...(row.routed === 'via' ? { via: INGRESS } : {}) }));
    assert.equal(routes, expected);
  });
}

test('routesFor: every endpoint of every routed instance, each through its own worker', () => {
  const routes = routesFor(
    [inst(A, { worker: 'w1' }), inst(B, { worker: 'w2' })],
    workers(worker('w1', 'ready'), worker('w2', 'ready', { ingress: INGRESS })),
    NOW,
  );
  assert.equal(routes.map((r) => [r.instance, r.name, r.via ?? null]), [[A, 'web', null], [A, 'admin', null], [B, 'web', INGRESS], [B, 'nc', INGRESS]]);
});

/* ---------------------------------------------------------------- rendering */

const schemaPath = oracle('traefik-v3-file-provider.json');
const validate = schemaPath ? new Ajv().compile(JSON.parse(readFileSync(schemaPath, 'utf8')) as object) : undefined;

/** Renders, serialises, reads the file back as YAML and checks it against the oracle. */
function renderChecked(routes: GatewayRoute[], opts: GatewayOptions) {
  const cfg = renderTraefikConfig(routes, opts);
  const fromFile = JSON.parse(JSON.stringify(parse(serializeTraefikConfig(cfg)))) as unknown;
  if (validate) assert.ok(validate(fromFile), JSON.stringify(validate.errors));
  return cfg;
}

const MIXED = routesFor(
  [inst(A, { worker: 'local' }), inst(B, { worker: 'remote' })],
  workers(worker('local', 'ready'), worker('remote', 'ready', { ingress: INGRESS })),
  NOW,
);

test('render: an HTTP route via an ingress sets the edge secret and targets the ingress, keeping the Host header', () => {
  const cfg = renderChecked(MIXED, VIA_OPTS);
  assert.equal(cfg.http.middlewares[EDGE_MIDDLEWARE], { headers: { customRequestHeaders: { [EDGE_HEADER]: SECRET } } });
  assert.is(EDGE_HEADER, 'X-Poseidon-Edge');
  const router = cfg.http.routers[`i-${B}-web`];
  assert.equal(router?.middlewares, ['poseidon-authz', 'poseidon-strip', EDGE_MIDDLEWARE]);
  assert.is(router?.rule, 'Host(`e48413078d794d23.sqli-lab.localhost`)');
  assert.equal(cfg.http.services[`i-${B}-web`], { loadBalancer: { passHostHeader: true, servers: [{ url: `http://${INGRESS.http}` }] } });
});

test('render: a TCP route via an ingress passes TLS through to the ingress TLS address', () => {
  const cfg = renderChecked(MIXED, VIA_OPTS);
  assert.equal(cfg.tcp?.routers[`i-${B}-nc`], { entryPoints: ['web'], rule: 'HostSNI(`e48413078d794d23-nc.sqli-lab.localhost`)', service: `i-${B}-nc`, tls: { passthrough: true } });
  assert.equal(cfg.tcp?.services[`i-${B}-nc`], { loadBalancer: { servers: [{ address: INGRESS.tls }] } });
});

test('render: direct routes are what a single host renders (no edge middleware, the container backend)', () => {
  const direct = GOLDEN_ROUTES.filter((r) => r.instance === A);
  const cfg = renderChecked(MIXED, VIA_OPTS);
  const alone = renderChecked(direct, OPTS);
  for (const r of direct) {
    const name = `i-${r.instance}-${r.name}`;
    assert.equal(cfg.http.routers[name], alone.http.routers[name], name);
    assert.equal(cfg.http.services[name], { loadBalancer: { passHostHeader: true, servers: [{ url: `http://${r.backend}` }] } });
    assert.not.ok(cfg.http.routers[name]?.middlewares?.includes(EDGE_MIDDLEWARE));
  }
  // Without any route through an ingress there is no edge middleware to render.
  assert.not.ok(EDGE_MIDDLEWARE in alone.http.middlewares);
});

test('render: a direct TCP route still terminates at the edge with the zone certificate', () => {
  const cfg = renderChecked(routesFor([inst(B)], workers(worker('w1', 'ready')), NOW), { ...OPTS, tls: { entryPoints: ['websecure'], certResolver: 'le' } });
  assert.equal(cfg.tcp?.routers[`i-${B}-nc`]?.tls, { certResolver: 'le', domains: [{ main: 'sqli-lab.localhost', sans: ['*.sqli-lab.localhost'] }] });
  assert.equal(cfg.tcp?.services[`i-${B}-nc`], { loadBalancer: { servers: [{ address: `poseidon-${B}:31337` }] } });
});

test('render: via routes with TLS at the edge and certificate files validate too', () => {
  renderChecked(MIXED, { ...VIA_OPTS, tls: { entryPoints: ['websecure'], certResolver: 'le' } });
  renderChecked(MIXED, { ...VIA_OPTS, tls: { entryPoints: ['websecure'], certFile: '/c/a.crt', keyFile: '/c/a.key' } });
});

const BAD_SECRETS: [string, GatewayOptions][] = [
  ['no edge secret', OPTS],
  ['an empty edge secret', { ...OPTS, edgeSecret: '' }],
  ['a short edge secret', { ...OPTS, edgeSecret: 'short' }],
  ['an edge secret with a backtick', { ...OPTS, edgeSecret: 'edge-secret-0123456789`abc' }],
];

for (const [label, opts] of BAD_SECRETS) {
  test(`render: HTTP routes via an ingress with ${label} throw (without echoing it)`, () => {
    try {
      renderTraefikConfig(MIXED, opts);
      assert.unreachable('rendered');
    } catch (err) {
      assert.ok(isPoseidonError(err), String(err));
      if (opts.edgeSecret) assert.not.ok((err as Error).message.includes(opts.edgeSecret), 'the secret is not in the error');
    }
  });
}

test('render: TCP-only routes via an ingress need no edge secret (TLS is passed through untouched)', () => {
  const tcpOnly = MIXED.filter((r) => r.protocol === 'tcp');
  const cfg = renderChecked(tcpOnly, OPTS);
  assert.is(cfg.tcp?.routers[`i-${B}-nc`]?.tls.passthrough, true);
  assert.not.ok(EDGE_MIDDLEWARE in cfg.http.middlewares);
});

/* ---------------------------------------------------------------- the pass, on the fleet view */

test('gateway pass: a late fleet listing does not drop the routes of workers that keep heartbeating', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'poseidon-edge-'));
  try {
    let clock = NOW;
    const fleet = new MemoryFleet(() => clock);
    const view = new FleetView({ fleet, instances: { all: () => [] }, lostAfterMs: 10_000, resources: () => ({ cpu: 0, memoryBytes: 0 }), now: () => clock });
    const store = new MemoryStore();
    const { admin: _a, state: _s, heartbeatAt: _h, ...record } = { ...worker('remote', 'ready', { ingress: INGRESS }), publicKey: newSealingKeys().publicKey };
    await fleet.heartbeat(record);
    await store.createInstance(inst(B, { worker: 'remote', expiresAt: NOW + 3_600_000, maxExpiresAt: NOW + 3_600_000 }), NOW);
    const writer = new TraefikFileWriter(dir);
    const pass = gatewayReconciler({ store, workers: () => view.workers(), writer, options: VIA_OPTS, log: memoryLogger() });
    const ctx = { signal: new AbortController().signal, now: () => new Date(clock) };
    const routers = () => Object.keys((parse(readFileSync(writer.target, 'utf8')) as { http: { routers: object } }).http.routers);
    await view.refresh();
    await pass(ctx);
    assert.ok(routers().includes(`i-${B}-web`));
    // The worker heartbeats on; this manager's fleet pass is late by more than the lost timeout.
    for (let i = 0; i < 6; i++) {
      clock += 2000;
      await fleet.heartbeat(record);
    }
    await pass(ctx);
    assert.ok(routers().includes(`i-${B}-web`), 'routes kept');
    // Really lost (its heartbeat, listed, is older than the timeout): the routes go.
    clock += 10_001;
    await view.refresh();
    await pass(ctx);
    assert.not.ok(routers().includes(`i-${B}-web`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
