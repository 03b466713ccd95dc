/**
 * A worker host's ingress (`renderIngressConfig` in src/gateway/traefik.ts, `IngressWriter` in
 * src/worker/ingress.ts): HTTP routers match only requests carrying the edge secret and strip it
 * before the container; TCP routers terminate the TLS the edge passed through, by SNI; only
 * running, desired, unexpired instances get routes; bad values throw; the file validates against
 * the Traefik v3 oracle; the writer rewrites the file only when its content changes.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Ajv } from 'ajv';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parse } from 'yaml';
import { isPoseidonError } from '../../src/core/errors.ts';
import type { Endpoint, Instance } from '../../src/core/instance.ts';
import { EDGE_HEADER, EDGE_STRIP_MIDDLEWARE, renderIngressConfig, serializeTraefikConfig, type IngressOptions, type IngressRoute } from '../../src/gateway/traefik.ts';
import { ingressRoutes, IngressWriter } from '../../src/worker/ingress.ts';
import { oracle } from '../helpers/deps.ts';
import { memoryLogger } from '../helpers/log.ts';
import { makeInstance } from '../helpers/specs.ts';

const SECRET = 'edge-secret-0123456789abcdef';
const OPTS: IngressOptions = { edgeSecret: SECRET, httpEntryPoint: 'web', tlsEntryPoint: 'websecure' };
const NOW = 1_900_000_000_000;
const A = '0123456789abcdef01234567';
const B = 'fedcba9876543210fedcba98';

const HTTP: IngressRoute = { instance: A, name: 'web', protocol: 'http', hostname: '8865fea8edb69716.web-hello.localhost', backend: `poseidon-${A}:8080` };
const TCP: IngressRoute = { instance: B, name: 'nc', protocol: 'tcp', hostname: 'e48413078d794d23-nc.sqli-lab.localhost', backend: `poseidon-${B}:31337` };
const B_WEB: IngressRoute = { instance: B, name: 'web', protocol: 'http', hostname: 'e48413078d794d23.sqli-lab.localhost', backend: `poseidon-${B}:80` };

const schemaPath = oracle('traefik-v3-file-provider.json');
const validate = schemaPath ? new Ajv().compile(JSON.parse(readFileSync(schemaPath, 'utf8')) as object) : undefined;

/** The file text read back as YAML, checked against the oracle. */
function checkedFile(text: string): unknown {
  const doc = JSON.parse(JSON.stringify(parse(text))) as unknown;
  if (validate) assert.ok(validate(doc), JSON.stringify(validate.errors));
  return doc;
}

/* ---------------------------------------------------------------- rendering */

test('HTTP: the router requires the host and the edge secret, strips the secret, and reaches the container', () => {
  const cfg = renderIngressConfig([HTTP], OPTS);
  assert.equal(cfg.http.routers[`i-${A}-web`], {
    entryPoints: ['web'], middlewares: [EDGE_STRIP_MIDDLEWARE],
    rule: `Host(\`${HTTP.hostname}\`) && Header(\`X-Poseidon-Edge\`, \`${SECRET}\`)`, service: `i-${A}-web`,
  });
  assert.equal(cfg.http.services[`i-${A}-web`], { loadBalancer: { passHostHeader: true, servers: [{ url: `http://${HTTP.backend}` }] } });
  // An empty value makes Traefik remove the header: the secret never reaches a container.
  assert.equal(cfg.http.middlewares, { [EDGE_STRIP_MIDDLEWARE]: { headers: { customRequestHeaders: { [EDGE_HEADER]: '' } } } });
  assert.is(cfg.tcp, undefined);
});

test('TCP: the router terminates TLS (default certificate) by SNI on the TLS entry point', () => {
  const cfg = renderIngressConfig([TCP], OPTS);
  assert.equal(cfg.tcp?.routers[`i-${B}-nc`], { entryPoints: ['websecure'], rule: `HostSNI(\`${TCP.hostname}\`)`, service: `i-${B}-nc`, tls: {} });
  assert.equal(cfg.tcp?.services[`i-${B}-nc`], { loadBalancer: { servers: [{ address: TCP.backend }] } });
  assert.equal(cfg.http.routers, {});
});

test('nothing routable without the secret: every HTTP router has the Header matcher, no catch-all exists', () => {
  const cfg = renderIngressConfig([HTTP, B_WEB, TCP], OPTS);
  const rules = Object.values(cfg.http.routers).map((r) => r.rule);
  assert.is(rules.length, 2);
  for (const rule of rules) assert.ok(rule.endsWith(` && Header(\`X-Poseidon-Edge\`, \`${SECRET}\`)`), rule);
  assert.equal(Object.keys(cfg.http.services).sort(), Object.keys(cfg.http.routers).sort(), 'no service without its router');
});

test('entry points come from the options', () => {
  const cfg = renderIngressConfig([HTTP, TCP], { ...OPTS, httpEntryPoint: 'edge-in', tlsEntryPoint: 'edge-tls' });
  assert.equal(cfg.http.routers[`i-${A}-web`]?.entryPoints, ['edge-in']);
  assert.equal(cfg.tcp?.routers[`i-${B}-nc`]?.entryPoints, ['edge-tls']);
});

test('deterministic: any order of the routes gives the same bytes', () => {
  const a = serializeTraefikConfig(renderIngressConfig([HTTP, B_WEB, TCP], OPTS));
  for (const order of [[TCP, B_WEB, HTTP], [B_WEB, HTTP, TCP], [TCP, HTTP, B_WEB]]) {
    assert.is(serializeTraefikConfig(renderIngressConfig(order, OPTS)), a);
  }
});

const ORACLE_CASES: [string, IngressRoute[]][] = [
  ['no routes', []],
  ['one HTTP route', [HTTP]],
  ['one TCP route', [TCP]],
  ['HTTP and TCP routes of two instances', [HTTP, B_WEB, TCP]],
];

for (const [label, routes] of ORACLE_CASES) {
  test(`oracle: ${label} validates against the Traefik v3 file-provider schema`, () => {
    checkedFile(serializeTraefikConfig(renderIngressConfig(routes, OPTS)));
  });
}

/* ---------------------------------------------------------------- refusals */

const BAD: [string, IngressRoute[], IngressOptions][] = [
  ['an empty edge secret', [HTTP], { ...OPTS, edgeSecret: '' }],
  ['a short edge secret', [HTTP], { ...OPTS, edgeSecret: 'short-secret' }],
  ['an edge secret with a backtick', [HTTP], { ...OPTS, edgeSecret: 'edge-secret-0123456789`) || Host(`x' }],
  ['an edge secret with a space', [HTTP], { ...OPTS, edgeSecret: 'edge secret 0123456789abcdef' }],
  ['an edge secret over 128 characters', [HTTP], { ...OPTS, edgeSecret: 'a'.repeat(129) }],
  ['a bad edge secret even without routes', [], { ...OPTS, edgeSecret: 'x' }],
  ['a hostname with a backtick', [{ ...HTTP, hostname: 'a`) || Host(`b.localhost' }], OPTS],
  ['an upper-case hostname', [{ ...HTTP, hostname: 'A.web-hello.localhost' }], OPTS],
  ['an empty hostname', [{ ...HTTP, hostname: '' }], OPTS],
  ['a TCP hostname with a space', [{ ...TCP, hostname: 'e4 nc.sqli-lab.localhost' }], OPTS],
  ['a bad instance id', [{ ...HTTP, instance: 'ZZ' }], OPTS],
  ['a backend without a port', [{ ...HTTP, backend: `poseidon-${A}` }], OPTS],
  ['a backend with port 0', [{ ...HTTP, backend: `poseidon-${A}:0` }], OPTS],
];

for (const [label, routes, opts] of BAD) {
  test(`refused: ${label}`, () => {
    try {
      renderIngressConfig(routes, opts);
      assert.unreachable('rendered');
    } catch (err) {
      assert.ok(isPoseidonError(err), String(err));
      if (opts.edgeSecret.length > 0) assert.not.ok((err as Error).message.includes(opts.edgeSecret), 'the secret is not echoed');
    }
  });
}

/* ---------------------------------------------------------------- which instances */

function endpoints(id: string): Endpoint[] {
  return [HTTP, B_WEB, TCP].filter((r) => r.instance === id).map((r) => ({
    name: r.name, protocol: r.protocol, port: Number(r.backend.split(':')[1]), hostname: r.hostname, backend: r.backend, url: `http://${r.hostname}/`,
  }));
}

function inst(id: string, over: Partial<Instance> = {}): Instance {
  return makeInstance({ id, status: 'running', worker: 'w1', epoch: 1, endpoints: endpoints(id), expiresAt: NOW + 60_000, maxExpiresAt: NOW + 120_000, ...over });
}

const WHICH: [string, Partial<Instance>, boolean][] = [
  ['running, desired, unexpired', {}, true],
  ['one millisecond before expiry', { expiresAt: NOW + 1 }, true],
  ['expired (at the expiry instant)', { expiresAt: NOW }, false],
  ['asked to stop, still running', { desired: 'stopped' }, false],
  ['pending', { status: 'pending' }, false],
  ['starting', { status: 'starting' }, false],
  ['stopping', { status: 'stopping' }, false],
  ['failed', { status: 'failed' }, false],
  ['stopped', { status: 'stopped' }, false],
];

for (const [label, over, routed] of WHICH) {
  test(`instances: ${label} -> ${routed ? 'routed' : 'not routed'}`, () => {
    const routes = ingressRoutes([inst(B, over)], NOW);
    assert.equal(routes, routed ? [B_WEB, TCP] : []);
  });
}

test('instances: the file of a writer holds exactly the routable instances, and validates', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'poseidon-ingress-'));
  try {
    const writer = new IngressWriter({ dir, edgeSecret: async () => SECRET, log: memoryLogger() });
    const text = await writer.render([inst(A), inst(B, { status: 'starting' })], NOW);
    const doc = checkedFile(text) as { http: { routers: Record<string, unknown> }; tcp?: unknown };
    assert.equal(Object.keys(doc.http.routers), [`i-${A}-web`]);
    assert.is(doc.tcp, undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/* ---------------------------------------------------------------- the writer */

test('writer: writes the file, leaves it untouched while nothing changes, rewrites it when routes change', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'poseidon-ingress-'));
  try {
    const writer = new IngressWriter({ dir, edgeSecret: async () => SECRET, log: memoryLogger(), httpEntryPoint: 'web', tlsEntryPoint: 'websecure' });
    const file = path.join(dir, 'poseidon-ingress.yml');
    const later = Date.now() + 3_600_000;
    const first = [inst(A, { expiresAt: later })];
    await writer.write(first);
    const text1 = readFileSync(file, 'utf8');
    assert.is(text1, await writer.render(first));
    checkedFile(text1);
    const ino1 = statSync(file).ino;

    await writer.write(first.map((i) => ({ ...i, updatedAt: i.updatedAt + 1 })));
    assert.is(statSync(file).ino, ino1, 'same content: the file is not replaced');
    assert.is(readFileSync(file, 'utf8'), text1);

    const second = [...first, inst(B, { expiresAt: later })];
    await writer.write(second);
    const text2 = readFileSync(file, 'utf8');
    assert.is.not(statSync(file).ino, ino1, 'new content: replaced atomically (a new file renamed over it)');
    assert.is(text2, await writer.render(second));
    assert.ok(text2.includes(`i-${B}-nc`));
    checkedFile(text2);

    await writer.write([]);
    const doc = checkedFile(readFileSync(file, 'utf8')) as { http: { routers: Record<string, unknown> }; tcp?: unknown };
    assert.equal(doc.http.routers, {}, 'no instances: no routes (the file stays, with the strip middleware only)');
    assert.is(doc.tcp, undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('edge sources: every router also requires the edge\'s address (ClientIP), TCP included; a bad source throws', () => {
  const cfg = renderIngressConfig([
    { instance: A, name: 'web', protocol: 'http', hostname: 'h1.web.ctf.test', backend: `poseidon-${A}:80` },
    { instance: A, name: 'nc', protocol: 'tcp', hostname: 'h1-nc.web.ctf.test', backend: `poseidon-${A}:9000` },
  ], { edgeSecret: SECRET, httpEntryPoint: 'web', tlsEntryPoint: 'websecure', edgeSources: ['10.250.0.1', '10.0.0.0/8'] });
  const from = ' && (ClientIP(`10.250.0.1`) || ClientIP(`10.0.0.0/8`))';
  assert.ok(Object.values(cfg.http.routers).every((r) => r.rule.endsWith(from)), JSON.stringify(cfg.http.routers));
  assert.ok(Object.values(cfg.tcp?.routers ?? {}).every((r) => r.rule.endsWith(from)));
  assert.throws(() => renderIngressConfig([], { edgeSecret: SECRET, httpEntryPoint: 'web', tlsEntryPoint: 'websecure', edgeSources: ['10.0.0.1`) || Host(`x'] }), /edge source/);
});

test('writer: a bad edge secret throws and writes nothing', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'poseidon-ingress-'));
  try {
    const writer = new IngressWriter({ dir, edgeSecret: async () => 'short', log: memoryLogger() });
    let threw = false;
    try {
      await writer.write([inst(A, { expiresAt: Date.now() + 60_000 })]);
    } catch (err) {
      threw = isPoseidonError(err);
    }
    assert.ok(threw);
    assert.throws(() => statSync(path.join(dir, 'poseidon-ingress.yml')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
