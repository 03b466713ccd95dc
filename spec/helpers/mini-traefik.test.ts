/**
 * The Traefik stand-in (mini-traefik.ts) against Traefik v3's documented behaviour: the rule
 * language, HTTP routing and middlewares, the multi-host chain (edge -> ingress, the secret
 * header), TCP routers with SNI passthrough and TLS termination (real handshakes), container
 * backends reached through a probe container on the real engine, and the CLI process.
 * Traffic goes only to 127.0.0.1, to 10.250.x.x test-host addresses, or inside Docker.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, request, type IncomingHttpHeaders, type OutgoingHttpHeaders, type Server as HttpServer } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect as netConnect, createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { Ajv } from 'ajv';
import Docker from 'dockerode';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { haveDocker, oracle, ROOT } from './deps.ts';
import { TEST_LABEL } from './docker.ts';
import { dockerFor, inNamespace, testHosts, type TestHost } from './hosts.ts';
import { parseCliArgs } from './mini-traefik-cli.ts';
import { fileConfigSource, parseDynamicConfig } from './mini-traefik-config.ts';
import { isDirectAddress } from './mini-traefik-dial.ts';
import { compileHttpRule, compileTcpRule, goRegExp, httpRulePriority, parseRule, ruleValues, tcpRulePriority, type HttpMatchInput } from './mini-traefik-rules.ts';
import { matchDomain, parseClientHello } from './mini-traefik-tls.ts';
import { startMiniTraefik, type MiniTraefik, type MiniTraefikOptions, type TraefikConfig } from './mini-traefik.ts';
import { waitFor } from './server.ts';
import { haveOpenssl, makeCertificate, type TlsFixture } from './tls-fixture.ts';

// ---------------------------------------------------------------------------------------------
// Small real servers and clients

interface Echoed { method: string; url: string; headers: Record<string, string[]>; body: string }

/** An HTTP backend on 127.0.0.1 answering what it received as JSON (`/status/<n>` answers n). */
async function echoHttp(): Promise<{ url: string; port: number; seen: Echoed[]; close(): Promise<void> }> {
  const seen: Echoed[] = [];
  const server = createHttpServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => { body += c.toString(); });
    req.on('end', () => {
      const e: Echoed = { method: req.method ?? '', url: req.url ?? '', headers: req.headersDistinct as Record<string, string[]>, body };
      seen.push(e);
      const status = Number(/^\/status\/(\d{3})/.exec(req.url ?? '')?.[1] ?? 200);
      res.writeHead(status, { 'content-type': 'application/json', 'x-backend': 'echo', 'set-cookie': ['a=1', 'b=2'] }).end(JSON.stringify(e));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}`, port, seen, close: () => closeServer(server) };
}

function closeServer(s: HttpServer | NetServer): Promise<void> {
  if ('closeAllConnections' in s) s.closeAllConnections();
  return new Promise((r) => s.close(() => r()));
}

/** A forward-auth endpoint: 200 for `X-Poseidon-Access: good` (setting a cookie), else 401. */
async function authServer(): Promise<{ url: string; seen: IncomingHttpHeaders[]; close(): Promise<void> }> {
  const seen: IncomingHttpHeaders[] = [];
  const server = createHttpServer((req, res) => {
    seen.push(req.headers);
    if (req.headers['x-poseidon-access'] === 'good') res.writeHead(200, { 'set-cookie': 'session=s1', 'x-user': 'alice', 'x-auth-role': 'admin', 'x-other': 'o' }).end();
    else res.writeHead(401, { 'content-type': 'text/plain', 'x-auth': 'no' }).end('denied by auth');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/authz`, seen, close: () => closeServer(server) };
}

/**
 * A plain TCP backend on `host` (default 127.0.0.1): answers `echo:<bytes>` as they come, says
 * `bye` and closes after the client half-closes. `banner`: speaks first.
 */
async function tcpEcho(opts: { host?: string; banner?: string } = {}): Promise<{ port: number; address: string; connections: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const state = { connections: 0 };
  const server = createNetServer({ allowHalfOpen: true }, (s) => {
    state.connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
    if (opts.banner) s.write(opts.banner);
    s.on('data', (c: Buffer) => s.write(`echo:${c.toString()}`));
    s.on('end', () => s.end('bye\n'));
  });
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((r) => server.listen(0, host, () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    port, address: `${host}:${port}`,
    get connections() { return state.connections; },
    close: () => {
      for (const s of sockets) s.destroy();
      return closeServer(server);
    },
  };
}

interface Answer { status: number; headers: IncomingHttpHeaders; body: string }

/** One HTTP request to `127.0.0.1:port` (or `address`), bounded in time. */
function http(port: number, o: { host?: string; path?: string; method?: string; headers?: OutgoingHttpHeaders; body?: string; address?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: o.address ?? '127.0.0.1', port, path: o.path ?? '/', method: o.method ?? 'GET', agent: false,
      headers: { ...(o.host ? { host: o.host } : {}), ...(o.headers ?? {}) }, timeout: 20_000,
    }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => { body += c.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(o.body);
  });
}

interface TlsResult { out: string; authorized: boolean; fingerprint?: string; error?: string; handshake: boolean }

/**
 * Opens TLS to `127.0.0.1:port` (or `address`) with SNI `servername`, trusting only `ca` (when
 * given), writes `send`, half-closes, and collects everything until the server closes (bounded).
 */
function tlsTalk(port: number, servername: string, o: { ca?: string; send?: string; address?: string; keepOpen?: boolean } = {}): Promise<TlsResult> {
  return new Promise((resolve) => {
    const r: TlsResult = { out: '', authorized: false, handshake: false };
    const s = tlsConnect({ host: o.address ?? '127.0.0.1', port, servername, ...(o.ca ? { ca: o.ca } : { rejectUnauthorized: false }) }, () => {
      r.handshake = true;
      r.authorized = s.authorized;
      r.fingerprint = s.getPeerCertificate().fingerprint256;
      if (o.send !== undefined) s.write(o.send);
      if (!o.keepOpen) s.end();
    });
    const timer = setTimeout(() => s.destroy(new Error('timeout')), 20_000);
    s.on('data', (c: Buffer) => { r.out += c.toString(); });
    s.on('error', (err) => { r.error = err.message; });
    s.on('close', () => {
      clearTimeout(timer);
      resolve(r);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Configurations as Poseidon renders them (edge and ingress, see the multi-host design)

const SECRET = `edge-secret-${randomBytes(8).toString('hex')}`;
const WEB_HOST = '0123456789abcdef.web-hello.ctf.test';
const PWN_HOST = 'fedcba9876543210.pwn-echo.ctf.test';
const AUTH_HEADERS = ['Accept', 'Authorization', 'Cookie', 'X-Poseidon-Access'];

function edgeConfig(o: { authUrl: string; ingressHttp: string; ingressTls: string }): TraefikConfig {
  return {
    http: {
      middlewares: {
        'poseidon-authz': { forwardAuth: { address: o.authUrl, authRequestHeaders: AUTH_HEADERS, trustForwardHeader: false } },
        'poseidon-edge': { headers: { customRequestHeaders: { 'X-Poseidon-Edge': SECRET } } },
        'poseidon-strip': { headers: { customRequestHeaders: { 'X-Poseidon-Access': '' } } },
      },
      routers: {
        'i-0123-web': { entryPoints: ['web'], middlewares: ['poseidon-authz', 'poseidon-strip', 'poseidon-edge'], rule: `Host(\`${WEB_HOST}\`)`, service: 'i-0123-web' },
      },
      services: { 'i-0123-web': { loadBalancer: { passHostHeader: true, servers: [{ url: `http://${o.ingressHttp}` }] } } },
    },
    tcp: {
      routers: { 'i-fedc-pwn': { entryPoints: ['websecure'], rule: `HostSNI(\`${PWN_HOST}\`)`, service: 'i-fedc-pwn', tls: { passthrough: true } } },
      services: { 'i-fedc-pwn': { loadBalancer: { servers: [{ address: o.ingressTls }] } } },
    },
  };
}

function ingressConfig(o: { backendUrl: string; tcpBackend: string }): TraefikConfig {
  return {
    http: {
      middlewares: { 'poseidon-edge-strip': { headers: { customRequestHeaders: { 'X-Poseidon-Edge': '' } } } },
      routers: {
        'i-0123-web': { entryPoints: ['web'], middlewares: ['poseidon-edge-strip'], rule: `Host(\`${WEB_HOST}\`) && Header(\`X-Poseidon-Edge\`, \`${SECRET}\`)`, service: 'i-0123-web' },
      },
      services: { 'i-0123-web': { loadBalancer: { passHostHeader: true, servers: [{ url: o.backendUrl }] } } },
    },
    tcp: {
      routers: { 'i-fedc-pwn': { entryPoints: ['websecure'], rule: `HostSNI(\`${PWN_HOST}\`)`, service: 'i-fedc-pwn', tls: {} } },
      services: { 'i-fedc-pwn': { loadBalancer: { servers: [{ address: o.tcpBackend }] } } },
    },
  };
}

/** Two entry points on 127.0.0.1 (`web`, `websecure`) with these options. */
function twoEntryPoints(extra: Partial<MiniTraefikOptions> & { config: () => Promise<TraefikConfig> }): MiniTraefikOptions {
  return { entryPoints: { web: { address: '127.0.0.1:0' }, websecure: { address: '127.0.0.1:0' } }, ...extra };
}

const validTraefik = (() => {
  const p = oracle('traefik-v3-file-provider.json');
  return p ? new Ajv().compile(JSON.parse(readFileSync(p, 'utf8'))) : undefined;
})();

function assertValidConfig(cfg: TraefikConfig): void {
  if (validTraefik) assert.ok(validTraefik(cfg), JSON.stringify(validTraefik.errors));
}

// ---------------------------------------------------------------------------------------------

type Body = () => Promise<void> | void;

/**
 * A uvu suite whose `before` failure is not lost: uvu swallows an error thrown by a before hook
 * (the run even exits 0), so the error is kept and every test of the suite fails with it.
 */
function guardedSuite(title: string): ((name: string, fn: Body) => void) & { before(fn: Body): void; after(fn: Body): void; run(): void } {
  const s = suite(title);
  let setupError: unknown;
  const t = (name: string, fn: Body) => s(name, async () => {
    if (setupError !== undefined) throw setupError;
    await fn();
  });
  return Object.assign(t, {
    before: (fn: Body) => s.before(async () => {
      try {
        await fn();
      } catch (err) {
        setupError = err ?? new Error('setup failed');
      }
    }),
    after: (fn: Body) => s.after(async () => { await fn(); }),
    run: () => s.run(),
  });
}

// ---------------------------------------------------------------------------------------------
// The rule language (pure)

const rules = suite('mini-traefik: Traefik v3 rule language');

function req(o: Partial<HttpMatchInput> = {}): HttpMatchInput {
  return { host: 'a.example.com', path: '/', query: '', method: 'GET', headers: {}, clientIp: '127.0.0.1', ...o };
}

rules('Host: exact, case-insensitive, port ignored, trailing dots either side', () => {
  const table: [string, string, boolean][] = [
    ['Host(`a.example.com`)', 'a.example.com', true],
    ['Host(`a.example.com`)', 'A.Example.COM', true],
    ['Host(`A.EXAMPLE.com`)', 'a.example.com', true],
    ['Host(`a.example.com`)', 'a.example.com:8080', true],
    ['Host(`a.example.com`)', 'a.example.com.', true],
    ['Host(`a.example.com.`)', 'a.example.com', true],
    ['Host(`a.example.com`)', 'b.example.com', false],
    ['Host(`a.example.com`)', 'x.a.example.com', false],
    ['Host(`a.example.com`)', '', false],
    ['Host(`::1`)', '[::1]:80', true],
    ['host(`a.example.com`)', 'a.example.com', true],
    ['HOST(`a.example.com`)', 'a.example.com', true],
  ];
  for (const [rule, host, want] of table) assert.is(compileHttpRule(rule)(req({ host })), want, `${rule} on ${host}`);
});

rules('HostRegexp: Go syntax, unanchored unless anchored, on the lower-cased host without port', () => {
  const catchAll = 'HostRegexp(`^(?i)[0-9a-f]{16}(-[a-z0-9-]+)?\\.[a-z0-9-]+\\.ctf\\.test$`)';
  const table: [string, string, boolean][] = [
    [catchAll, '0123456789abcdef.web.ctf.test', true],
    [catchAll, '0123456789ABCDEF-api.web.ctf.test:80', true],
    [catchAll, 'x0123456789abcdef.web.ctf.test', false],
    ['HostRegexp(`example`)', 'www.example.org', true],
    ['HostRegexp(`^example`)', 'www.example.org', false],
    ['HostRegexp(`^[[:alpha:]]+\\.org$`)', 'example.org', true],
    ['HostRegexp(`^(?P<sub>[a-z]+)\\.example\\.org\\z`)', 'api.example.org', true],
    ['HostRegexp(`^API\\.`)', 'api.example.org', false],
    ['HostRegexp(`^(?i)API\\.`)', 'api.example.org', true],
  ];
  for (const [rule, host, want] of table) assert.is(compileHttpRule(rule)(req({ host })), want, `${rule} on ${host}`);
});

rules('Header: exact value (case-sensitive), name case-insensitive, any of several values', () => {
  const m = compileHttpRule('Header(`X-Poseidon-Edge`, `s3cret`)');
  assert.ok(m(req({ headers: { 'x-poseidon-edge': ['s3cret'] } })));
  assert.ok(compileHttpRule('Header(`x-poseidon-edge`, `s3cret`)')(req({ headers: { 'x-poseidon-edge': ['s3cret'] } })));
  assert.ok(m(req({ headers: { 'x-poseidon-edge': ['wrong', 's3cret'] } })), 'one of the header lines');
  assert.not.ok(m(req({ headers: { 'x-poseidon-edge': ['S3CRET'] } })));
  assert.not.ok(m(req({ headers: { 'x-poseidon-edge': ['s3cret, other'] } })), 'a comma-joined value is one value');
  assert.not.ok(m(req({ headers: { 'x-poseidon-edge': [' s3cret'] } })));
  assert.not.ok(m(req({ headers: {} })));
  const re = compileHttpRule('HeaderRegexp(`X-Team`, `^red|blue$`)');
  assert.ok(re(req({ headers: { 'x-team': ['blue'] } })));
  assert.not.ok(re(req({ headers: { 'x-team': ['green'] } })));
});

rules('PathPrefix, Path, PathRegexp, Method, Query, ClientIP', () => {
  const table: [string, Partial<HttpMatchInput>, boolean][] = [
    ['PathPrefix(`/api`)', { path: '/api/v1' }, true],
    ['PathPrefix(`/api`)', { path: '/apiary' }, true],
    ['PathPrefix(`/api/`)', { path: '/api' }, false],
    ['PathPrefix(`/a b`)', { path: '/a b/c' }, true],
    ['Path(`/x`)', { path: '/x' }, true],
    ['Path(`/x`)', { path: '/x/' }, false],
    ['PathRegexp(`\\.php$`)', { path: '/index.php' }, true],
    ['Method(`post`)', { method: 'POST' }, true],
    ['Method(`POST`)', { method: 'GET' }, false],
    ['Query(`debug`)', { query: 'debug' }, true],
    ['Query(`debug`, `1`)', { query: 'a=2&debug=1' }, true],
    ['Query(`debug`, `1`)', { query: 'debug=2' }, false],
    ['QueryRegexp(`id`, `^[0-9]+$`)', { query: 'id=42' }, true],
    ['ClientIP(`10.250.0.0/16`)', { clientIp: '10.250.3.4' }, true],
    ['ClientIP(`10.250.0.0/16`)', { clientIp: '10.251.0.1' }, false],
    ['ClientIP(`127.0.0.1`)', { clientIp: '::ffff:127.0.0.1' }, true],
  ];
  for (const [rule, input, want] of table) assert.is(compileHttpRule(rule)(req(input)), want, `${rule} on ${JSON.stringify(input)}`);
});

rules('operators: && binds tighter than ||, ! and parentheses, De Morgan down to the leaves', () => {
  const A = 'Host(`a.example.com`)';
  const P = 'PathPrefix(`/p`)';
  const H = 'Header(`X-K`, `v`)';
  const cases: [string, Partial<HttpMatchInput>, boolean][] = [
    [`${A} && ${P}`, { path: '/p' }, true],
    [`${A} && ${P}`, { path: '/q' }, false],
    [`${A} && !${P}`, { path: '/q' }, true],
    [`!${A}`, {}, false],
    [`!!${A}`, {}, true],
    // a || b && c  ==  a || (b && c)
    [`${H} || ${A} && ${P}`, { path: '/q', headers: { 'x-k': ['v'] } }, true],
    [`${H} || ${A} && ${P}`, { path: '/q' }, false],
    [`(${H} || ${A}) && ${P}`, { path: '/q' }, false],
    [`!(${A} && ${P})`, { path: '/q' }, true],
    [`!(${A} || ${P})`, { path: '/q' }, false],
    [`( ${A} )\n  &&\t${P}`, { path: '/p' }, true],
    ['Host("a.example.com") && PathPrefix("/p")', { path: '/p' }, true],
    ['Header(`X-K`, "\\x76")', { headers: { 'x-k': ['v'] } }, true],
  ];
  for (const [rule, input, want] of cases) assert.is(compileHttpRule(rule)(req(input)), want, `${rule} on ${JSON.stringify(input)}`);
  assert.equal(parseRule(`!(${A} && ${P})`), {
    op: 'or',
    left: { op: 'leaf', matcher: 'Host', args: ['a.example.com'], not: true },
    right: { op: 'leaf', matcher: 'PathPrefix', args: ['/p'], not: true },
  });
});

rules('what Traefik refuses throws: unknown matcher, arity, empty or non-string arguments, syntax, bad values', () => {
  const bad: [string, RegExp][] = [
    ['Hosts(`a`)', /unknown HTTP matcher Hosts/],
    ['hOST(`a`)', /unknown HTTP matcher hOST/],
    ['HostSNI(`a`)', /unknown HTTP matcher HostSNI/],
    ['Host(`a`, `b`)', /unexpected number of parameters/],
    ['Header(`X`)', /unexpected number of parameters/],
    ['Host()', /no args/],
    ['Host(``)', /empty args/],
    ['Host(a)', /string literals/],
    ['Host(1)', /string literals/],
    ['Host(`a`) & Path(`/`)', /unexpected "&"/],
    ['Host(`a`) &&', /expected a matcher/],
    ['(Host(`a`)', /expected \)/],
    ['Host(`a`))', /unexpected "\)"/],
    ['Host(`a`', /expected , or \)/],
    ['Host(`a)', /not terminated/],
    ['', /empty rule/],
    ['Host(`a`) Path(`/`)', /unexpected "Path"/],
    ['Host(`a`) == Host(`b`)', /unexpected "="/],
    ['Path(`x`)', /does not start with a '\/'/],
    ['PathPrefix(`x`)', /does not start with a '\/'/],
    ['Host(`ünïcode.test`)', /non-ASCII/],
    ['HostRegexp(`(?=x)`)', /look-arounds are not RE2/],
    ['HostRegexp(`(a)\\1`)', /back-references are not RE2/],
    ['HostRegexp(`[`)', /compiling HostRegexp/],
    ['ClientIP(`not-an-ip`)', /neither an IP nor a CIDR/],
  ];
  for (const [rule, msg] of bad) assert.throws(() => compileHttpRule(rule), msg, rule);
  assert.throws(() => compileHttpRule('Host(`a`)', 'v2'), /ruleSyntax "v2"/);
});

rules('priority: the rule length in bytes by default; TCP HostSNI(`*`) alone is -1', () => {
  assert.is(httpRulePriority('Host(`a.b`)'), 11);
  assert.is(httpRulePriority('Host(`é.b`)'), 12, 'bytes, as Go len()');
  assert.is(tcpRulePriority('HostSNI(`a.b`)'), 14);
  assert.is(tcpRulePriority('HostSNI(`*`)'), -1);
  assert.is(tcpRulePriority('hostsni(`*`)'), -1);
  assert.is(tcpRulePriority('HostSNI(`*`) && ClientIP(`127.0.0.1`)'), 37);
  assert.equal(ruleValues('Host(`A.b`) || (PathPrefix(`/x`) && !Host(`c.d`))', 'Host'), ['a.b', 'c.d']);
});

rules('TCP rules: HostSNI exact (catch-all `*` matches no SNI too), HostSNIRegexp, ALPN, ClientIP', () => {
  const conn = (serverName: string, alpn: string[] = [], clientIp = '127.0.0.1') => ({ serverName, alpn, clientIp });
  const sni = compileTcpRule('HostSNI(`a.ctf.test`)');
  assert.ok(sni(conn('a.ctf.test')));
  assert.not.ok(sni(conn('b.ctf.test')));
  assert.not.ok(sni(conn('')));
  assert.ok(compileTcpRule('HostSNI(`a.ctf.test.`)')(conn('a.ctf.test')));
  assert.not.ok(compileTcpRule('HostSNI(`A.ctf.test`)')(conn('a.ctf.test')), 'the rule value is compared as written');
  assert.ok(compileTcpRule('HostSNI(`*`)')(conn('')));
  assert.ok(compileTcpRule('HostSNI(`*`)')(conn('x.y')));
  assert.ok(compileTcpRule('HostSNIRegexp(`^[a-f0-9]{16}\\.pwn\\.ctf\\.test$`)')(conn('fedcba9876543210.pwn.ctf.test')));
  assert.ok(compileTcpRule('HostSNI(`a.ctf.test`) && ALPN(`h2`)')(conn('a.ctf.test', ['h2', 'http/1.1'])));
  assert.not.ok(compileTcpRule('HostSNI(`a.ctf.test`) && !ClientIP(`127.0.0.0/8`)')(conn('a.ctf.test')));
  assert.throws(() => compileTcpRule('HostSNI(`a b`)'), /not a valid hostname/);
  assert.throws(() => compileTcpRule('Host(`a`)'), /unknown TCP matcher Host/);
  assert.throws(() => compileTcpRule('ALPN(`acme-tls/1`)'), /not allowed/);
});

rules('Go regexps translate to JavaScript; the certificate store matches names as Traefik does', () => {
  assert.ok(goRegExp('\\Aa.c\\z').test('abc'));
  assert.not.ok(goRegExp('\\Aa.c\\z').test('abcd'));
  assert.ok(goRegExp('(?i)^x$').test('X'));
  assert.ok(goRegExp('\\Qa.b\\E').test('a.b'));
  assert.not.ok(goRegExp('\\Qa.b\\E').test('axb'));
  assert.ok(matchDomain('a.pwn.ctf.test', '*.pwn.ctf.test'));
  assert.ok(matchDomain('a.pwn.ctf.test', '*.*.ctf.test'));
  assert.not.ok(matchDomain('a.b.pwn.ctf.test', '*.pwn.ctf.test'));
  assert.not.ok(matchDomain('pwn.ctf.test', '*.pwn.ctf.test'));
});

rules('direct addresses are this machine and the 10.250.0.0/16 test hosts only', () => {
  for (const h of ['127.0.0.1', '127.3.2.1', 'localhost', '::1', '10.250.0.11', '10.250.7.2']) assert.ok(isDirectAddress(h), h);
  for (const h of ['10.213.0.2', '10.221.1.5', '172.17.0.2', '192.168.1.1', 'poseidon-0123456789abcdef01234567', '10.2500.0.1']) assert.not.ok(isDirectAddress(h), h);
});

rules('dynamic configuration files: Poseidon\'s JSON after `#` comments, or YAML', () => {
  assert.equal(parseDynamicConfig('# Generated by Poseidon\n# second line\n{\n  "http": {"routers": {}}\n}\n'), { http: { routers: {} } });
  assert.equal(parseDynamicConfig('http:\n  routers:\n    r: {rule: "Host(`a`)", service: s}\n'), { http: { routers: { r: { rule: 'Host(`a`)', service: 's' } } } });
  assert.equal(parseDynamicConfig('# only a comment\n'), {});
  assert.equal(parseCliArgs(['--config', 'c.yml', '--http', '10.250.0.11:18080', '--tls', 'tls=10.250.0.11:18443', '--probe', 'p']).entryPoints, {
    web: { address: '10.250.0.11:18080' }, tls: { address: '10.250.0.11:18443' },
  });
  assert.throws(() => parseCliArgs(['--http', '127.0.0.1:0']), /--config is required/);
  assert.throws(() => parseCliArgs(['--config', 'c', '--http', '127.0.0.1:0', '--cert', 'x']), /go together/);
});

rules('ClientHello parsing: SNI and ALPN from a real handshake\'s first bytes, not TLS otherwise', async () => {
  const got = await new Promise<Buffer>((resolve) => {
    const server = createNetServer((s) => {
      let buf = Buffer.alloc(0);
      s.on('data', (c: Buffer) => {
        buf = Buffer.concat([buf, c]);
        if (parseClientHello(buf)) {
          s.destroy();
          server.close();
          resolve(buf);
        }
      });
    });
    server.listen(0, '127.0.0.1', () => {
      const c = tlsConnect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, servername: 'Some.Host.test', ALPNProtocols: ['h2', 'http/1.1'], rejectUnauthorized: false });
      c.on('error', () => undefined);
    });
  });
  assert.equal(parseClientHello(got), { isTLS: true, serverName: 'some.host.test', alpn: ['h2', 'http/1.1'] });
  assert.is(parseClientHello(got.subarray(0, 20)), undefined, 'needs the whole hello');
  assert.equal(parseClientHello(Buffer.from('GET / HTTP/1.1\r\n')), { isTLS: false, serverName: '', alpn: [] });
});

rules.run();

// ---------------------------------------------------------------------------------------------
// HTTP routing on one stand-in

const httpSuite = guardedSuite('mini-traefik: HTTP routers, middlewares and services');
let echo: Awaited<ReturnType<typeof echoHttp>>;
let mtHttp: MiniTraefik | undefined;
let httpCfg: TraefikConfig = {};

httpSuite.before(async () => {
  echo = await echoHttp();
  mtHttp = await startMiniTraefik({ config: async () => httpCfg, serverName: 'mt-test' });
});
httpSuite.after(async () => {
  await mtHttp?.close();
  await echo?.close();
});

const svc = (url: string, passHostHeader = true) => ({ loadBalancer: { passHostHeader, servers: [{ url }] } });

httpSuite('routers by priority: explicit beats length, the longer rule beats the shorter; no match is 404', async () => {
  httpCfg = {
    http: {
      routers: {
        catchall: { rule: 'HostRegexp(`^.+\\.ctf\\.test$`)', priority: 1, service: 'low' },
        host: { rule: `Host(\`${WEB_HOST}\`)`, service: 'host' },
        deeper: { rule: `Host(\`${WEB_HOST}\`) && PathPrefix(\`/api\`)`, service: 'deeper' },
        forced: { rule: 'PathPrefix(`/forced`)', priority: 10_000, service: 'forced' },
      },
      services: { low: svc(`${echo.url}/low`), host: svc(`${echo.url}/host`), deeper: svc(`${echo.url}/deeper`), forced: svc(`${echo.url}/forced`) },
    },
  };
  assertValidConfig(httpCfg);
  const url = async (host: string, p: string) => JSON.parse((await http(mtHttp!.port, { host, path: p })).body).url as string;
  assert.is(await url(WEB_HOST, '/x'), '/host/x');
  assert.is(await url(WEB_HOST, '/api/v1'), '/deeper/api/v1');
  assert.is(await url('ffffffffffffffff.web-hello.ctf.test', '/x'), '/low/x');
  assert.is(await url(WEB_HOST, '/forced'), '/forced/forced');
  const none = await http(mtHttp!.port, { host: 'elsewhere.test' });
  assert.is(none.status, 404);
  assert.is(none.body, '404 page not found\n');
  assert.is(none.headers['content-type'], 'text/plain; charset=utf-8');
});

httpSuite('proxying: method, streamed body, status, response headers, Host kept; X-Forwarded-* are the entry point\'s own', async () => {
  httpCfg = {
    http: {
      routers: { r: { rule: `Host(\`${WEB_HOST}\`)`, service: 's' }, nohost: { rule: 'Host(`nohost.test`)', service: 'n' } },
      services: { s: svc(echo.url), n: svc(echo.url, false) },
    },
  };
  const big = 'x'.repeat(300_000);
  const res = await http(mtHttp!.port, {
    host: WEB_HOST, path: '/status/201?q=1', method: 'POST', body: big,
    headers: { 'content-type': 'text/plain', 'x-forwarded-for': '6.6.6.6', 'x-forwarded-host': 'evil.test', 'x-real-ip': '6.6.6.6', connection: 'keep-alive, x-drop-me', 'x-drop-me': '1' },
  });
  assert.is(res.status, 201);
  assert.is(res.headers['x-backend'], 'echo');
  assert.equal(res.headers['set-cookie'], ['a=1', 'b=2']);
  const seen = JSON.parse(res.body) as Echoed;
  assert.is(seen.method, 'POST');
  assert.is(seen.url, '/status/201?q=1');
  assert.is(seen.body.length, big.length);
  assert.equal(seen.headers.host, [WEB_HOST]);
  assert.equal(seen.headers['x-forwarded-for'], ['127.0.0.1'], 'a client cannot choose its forwarded address');
  assert.equal(seen.headers['x-forwarded-host'], [WEB_HOST]);
  assert.equal(seen.headers['x-real-ip'], ['127.0.0.1']);
  assert.equal(seen.headers['x-forwarded-proto'], ['http']);
  assert.equal(seen.headers['x-forwarded-port'], ['80']);
  assert.equal(seen.headers['x-forwarded-server'], ['mt-test']);
  assert.is(seen.headers['x-drop-me'], undefined, 'headers named by Connection are hop-by-hop');
  const other = JSON.parse((await http(mtHttp!.port, { host: 'nohost.test' })).body) as Echoed;
  assert.equal(other.headers.host, [`127.0.0.1:${echo.port}`], 'passHostHeader: false sends the server\'s host');
});

httpSuite('proxy-form requests (a browser using the entry point as its proxy) route by the URL\'s host', async () => {
  httpCfg = { http: { routers: { r: { rule: `Host(\`${WEB_HOST}\`)`, service: 's' } }, services: { s: svc(echo.url) } } };
  const res = await http(mtHttp!.port, { path: `http://${WEB_HOST}/page?x=1`, host: 'ignored.test', headers: { 'proxy-connection': 'keep-alive' } });
  assert.is(res.status, 200);
  const seen = JSON.parse(res.body) as Echoed;
  assert.is(seen.url, '/page?x=1');
  assert.equal(seen.headers.host, [WEB_HOST]);
  assert.is(seen.headers['proxy-connection'], undefined);
});

httpSuite('middlewares: headers set/remove (client value overwritten), replacePath, stripPrefix, redirectScheme', async () => {
  httpCfg = {
    http: {
      middlewares: {
        set: { headers: { customRequestHeaders: { 'X-Poseidon-Edge': 'from-proxy', 'X-Poseidon-Access': '' }, customResponseHeaders: { 'X-Backend': '', 'X-Added': 'yes' } } },
        page: { replacePath: { path: '/v1/gateway/page' } },
        strip: { stripPrefix: { prefixes: ['/strip'] } },
        https: { redirectScheme: { permanent: true, scheme: 'https' } },
      },
      routers: {
        h: { rule: 'Host(`h.test`)', middlewares: ['set'], service: 's' },
        p: { rule: 'Host(`p.test`)', middlewares: ['page@file'], service: 's' },
        st: { rule: 'Host(`st.test`)', middlewares: ['strip'], service: 's' },
        r: { rule: 'Host(`r.test`)', middlewares: ['https'], service: 's' },
      },
      services: { s: svc(echo.url) },
    },
  };
  assertValidConfig(httpCfg);
  const h = await http(mtHttp!.port, { host: 'h.test', headers: { 'x-poseidon-edge': ['client-1', 'client-2'], 'x-poseidon-access': 'token' } });
  const seen = JSON.parse(h.body) as Echoed;
  assert.equal(seen.headers['x-poseidon-edge'], ['from-proxy']);
  assert.is(seen.headers['x-poseidon-access'], undefined);
  assert.is(h.headers['x-backend'], undefined);
  assert.is(h.headers['x-added'], 'yes');
  const p = JSON.parse((await http(mtHttp!.port, { host: 'p.test', path: '/a/b?c=d' })).body) as Echoed;
  assert.is(p.url, '/v1/gateway/page?c=d');
  assert.equal(p.headers['x-replaced-path'], ['/a/b']);
  const st = JSON.parse((await http(mtHttp!.port, { host: 'st.test', path: '/strip/x' })).body) as Echoed;
  assert.is(st.url, '/x');
  assert.equal(st.headers['x-forwarded-prefix'], ['/strip']);
  const r = await http(mtHttp!.port, { host: 'r.test:8080', path: '/a?b=1' });
  assert.is(r.status, 301);
  assert.is(r.headers.location, 'https://r.test/a?b=1');
  assert.is((await http(mtHttp!.port, { host: 'r.test', method: 'POST' })).status, 308);
});

httpSuite('routers with `tls` only serve TLS: a plain request to them is 404', async () => {
  httpCfg = { http: { routers: { r: { rule: 'Host(`t.test`)', service: 's', tls: {} } }, services: { s: svc(echo.url) } } };
  assert.is((await http(mtHttp!.port, { host: 't.test' })).status, 404);
});

httpSuite('an unreachable backend is 502; a container backend without probe or callback is 502, never dialled', async () => {
  const dead = await echoHttp();
  await dead.close();
  httpCfg = {
    http: {
      routers: { a: { rule: 'Host(`dead.test`)', service: 'a' }, b: { rule: 'Host(`ctr.test`)', service: 'b' } },
      services: { a: svc(dead.url), b: svc('http://poseidon-0123456789abcdef01234567:8080') },
    },
  };
  const a = await http(mtHttp!.port, { host: 'dead.test' });
  assert.is(a.status, 502);
  assert.is(a.body, 'Bad Gateway');
  const b = await http(mtHttp!.port, { host: 'ctr.test' });
  assert.is(b.status, 502);
  assert.match(mtHttp!.events.at(-1)?.detail ?? '', /no probe container configured/);
});

httpSuite('configuration errors: strict answers 502 naming them; lenient leaves the faulty router out, as Traefik', async () => {
  const cfg = {
    http: {
      routers: {
        good: { rule: 'Host(`good.test`)', service: 's' },
        bad: { rule: 'Host(`bad.test`) && Hots(`x`)', service: 's' },
        nomw: { rule: 'Host(`nomw.test`)', middlewares: ['missing'], service: 's' },
      },
      services: { s: svc(echo.url) },
    },
  };
  httpCfg = cfg;
  const strict = await http(mtHttp!.port, { host: 'good.test' });
  assert.is(strict.status, 502);
  assert.match(strict.body, /http router bad: .*unknown HTTP matcher Hots/);
  assert.match(strict.body, /http router nomw: middleware "missing" does not exist/);
  assert.ok(mtHttp!.errors.some((e) => e.includes('Hots')));
  const lenient = await startMiniTraefik({ config: async () => cfg, strict: false });
  try {
    assert.is((await http(lenient.port, { host: 'good.test' })).status, 200);
    assert.is((await http(lenient.port, { host: 'bad.test' })).status, 404);
    assert.is((await http(lenient.port, { host: 'nomw.test' })).status, 404);
  } finally {
    await lenient.close();
  }
});

httpSuite('the older API keeps working: `backend` callback for container backends, authCalls', async () => {
  const auth = await authServer();
  const calls: [string, string, Record<string, string>][] = [];
  const cfg: TraefikConfig = {
    http: {
      middlewares: { authz: { forwardAuth: { address: auth.url, authRequestHeaders: AUTH_HEADERS, trustForwardHeader: false } } },
      routers: { r: { entryPoints: ['web'], rule: `Host(\`${WEB_HOST}\`)`, middlewares: ['authz'], service: 'r' } },
      services: { r: svc('http://poseidon-0123456789abcdef01234567:8080') },
    },
  };
  const mt = await startMiniTraefik({
    config: async () => cfg,
    backend: async (hostPort, p, headers) => {
      calls.push([hostPort, p, headers]);
      return { status: 200, headers: { 'content-type': 'text/html; charset=utf-8' }, body: '<p>flag</p>' };
    },
  });
  try {
    assert.match(mt.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const denied = await http(mt.port, { host: WEB_HOST, headers: { 'x-poseidon-access': 'bad' } });
    assert.is(denied.status, 401);
    assert.is(denied.body, 'denied by auth');
    assert.is(denied.headers['x-auth'], 'no');
    const ok = await http(mt.port, { host: WEB_HOST, path: '/p', headers: { 'x-poseidon-access': 'good' } });
    assert.is(ok.status, 200);
    assert.is(ok.body, '<p>flag</p>');
    assert.equal(ok.headers['set-cookie'], ['session=s1'], 'forward-auth cookies reach the client');
    assert.equal(calls.map(([hp, p]) => [hp, p]), [['poseidon-0123456789abcdef01234567:8080', '/p']]);
    assert.is(calls[0]![2].host, WEB_HOST);
    assert.equal(mt.authCalls, [[WEB_HOST, 401], [WEB_HOST, 200]]);
    assert.is(auth.seen[0]!['x-forwarded-host'], WEB_HOST);
    assert.is(auth.seen[0]!['x-forwarded-uri'], '/');
    assert.is(auth.seen[0]!['x-forwarded-method'], 'GET');
  } finally {
    await mt.close();
    await auth.close();
  }
});

httpSuite('forwardAuth: authResponseHeaders and authResponseHeadersRegex reach the backend; an auth server that cannot be reached is 500', async () => {
  const auth = await authServer();
  httpCfg = {
    http: {
      middlewares: {
        authz: { forwardAuth: { address: auth.url, authRequestHeaders: AUTH_HEADERS, authResponseHeaders: ['X-User'], authResponseHeadersRegex: '^X-Auth-', trustForwardHeader: false } },
        dead: { forwardAuth: { address: 'http://127.0.0.1:1/authz', trustForwardHeader: false } },
      },
      routers: { r: { rule: 'Host(`a.test`)', middlewares: ['authz'], service: 's' }, d: { rule: 'Host(`d.test`)', middlewares: ['dead'], service: 's' } },
      services: { s: svc(echo.url) },
    },
  };
  assertValidConfig(httpCfg);
  try {
    const seen = JSON.parse((await http(mtHttp!.port, { host: 'a.test', headers: { 'x-poseidon-access': 'good', 'x-user': 'mallory', 'x-auth-role': 'root' } })).body) as Echoed;
    assert.equal(seen.headers['x-user'], ['alice']);
    assert.equal(seen.headers['x-auth-role'], ['admin']);
    assert.is(seen.headers['x-other'], undefined);
    assert.is(auth.seen.at(-1)!['x-user'], undefined, 'only authRequestHeaders go to the auth server');
    assert.is((await http(mtHttp!.port, { host: 'd.test' })).status, 500);
  } finally {
    await auth.close();
  }
});

httpSuite('services: round robin over the servers; addPrefix; a bad percent-encoding is 400', async () => {
  httpCfg = {
    http: {
      middlewares: { pre: { addPrefix: { prefix: '/pre' } } },
      routers: { r: { rule: 'Host(`rr.test`)', service: 'two' }, p: { rule: 'Host(`p.test`)', middlewares: ['pre'], service: 'one' } },
      services: { two: { loadBalancer: { servers: [{ url: `${echo.url}/one` }, { url: `${echo.url}/two` }] } }, one: svc(echo.url) },
    },
  };
  const urls: string[] = [];
  for (let i = 0; i < 4; i++) urls.push((JSON.parse((await http(mtHttp!.port, { host: 'rr.test', path: '/x' })).body) as Echoed).url);
  assert.equal(urls.sort(), ['/one/x', '/one/x', '/two/x', '/two/x']);
  assert.is((JSON.parse((await http(mtHttp!.port, { host: 'p.test', path: '/x' })).body) as Echoed).url, '/pre/x');
  assert.is((await http(mtHttp!.port, { host: 'p.test', path: '/%zz' })).status, 400);
});

httpSuite('entry points: routers naming none use the asDefault ones; trusted forwarders keep their X-Forwarded-*', async () => {
  const cfg: TraefikConfig = {
    http: {
      routers: { any: { rule: 'Host(`any.test`)', service: 's' }, onC: { entryPoints: ['c'], rule: 'Host(`c.test`)', service: 's' } },
      services: { s: svc(echo.url) },
    },
  };
  const mt = await startMiniTraefik({
    config: async () => cfg,
    entryPoints: { a: { asDefault: true }, b: {}, c: { forwardedHeaders: { trustedIPs: ['127.0.0.0/8'] } } },
  });
  try {
    assert.is((await http(mt.entryPoints.a!.port, { host: 'any.test' })).status, 200);
    assert.is((await http(mt.entryPoints.b!.port, { host: 'any.test' })).status, 404);
    assert.is((await http(mt.entryPoints.a!.port, { host: 'c.test' })).status, 404);
    cfg.http.routers.nowhere = { entryPoints: ['websecure'], rule: 'Host(`nowhere.test`)', service: 's' };
    assert.is((await http(mt.entryPoints.a!.port, { host: 'any.test' })).status, 200, 'a router on an entry point that is not there fails nothing');
    assert.ok(mt.errors.some((e) => /router nowhere: no valid entryPoint/.test(e)), mt.errors.join('\n'));
    const seen = JSON.parse((await http(mt.entryPoints.c!.port, { host: 'c.test', headers: { 'x-forwarded-for': '203.0.113.9', 'x-forwarded-host': 'front.test', 'x-forwarded-proto': 'https' } })).body) as Echoed;
    assert.equal(seen.headers['x-forwarded-for'], ['203.0.113.9, 127.0.0.1']);
    assert.equal(seen.headers['x-forwarded-host'], ['front.test']);
    assert.equal(seen.headers['x-forwarded-proto'], ['https']);
  } finally {
    await mt.close();
  }
});

httpSuite.run();

// ---------------------------------------------------------------------------------------------
// The multi-host chain: edge -> ingress -> backend, both stand-ins on 127.0.0.1

const chain = guardedSuite('mini-traefik: edge -> ingress (the secret header)');
const ch: {
  backend?: Awaited<ReturnType<typeof echoHttp>>; tcp?: Awaited<ReturnType<typeof tcpEcho>>; auth?: Awaited<ReturnType<typeof authServer>>;
  edge?: MiniTraefik; ingress?: MiniTraefik; edgeCert?: TlsFixture; ingressCert?: TlsFixture;
} = {};
const tlsOk = haveOpenssl();

chain.before(async () => {
  ch.backend = await echoHttp();
  ch.tcp = await tcpEcho();
  ch.auth = await authServer();
  if (tlsOk) {
    ch.edgeCert = makeCertificate(['edge.ctf.test']);
    ch.ingressCert = makeCertificate(['*.pwn-echo.ctf.test', '*.web-hello.ctf.test']);
  }
  const ingressCfg = ingressConfig({ backendUrl: ch.backend.url, tcpBackend: ch.tcp.address });
  ch.ingress = await startMiniTraefik(twoEntryPoints({
    config: async () => ingressCfg,
    ...(ch.ingressCert ? { defaultCertificate: { cert: ch.ingressCert.cert, key: ch.ingressCert.key } } : {}),
  }));
  const edgeCfg = edgeConfig({ authUrl: ch.auth.url, ingressHttp: ch.ingress.entryPoints.web!.address, ingressTls: ch.ingress.entryPoints.websecure!.address });
  ch.edge = await startMiniTraefik(twoEntryPoints({
    config: async () => edgeCfg,
    ...(ch.edgeCert ? { defaultCertificate: { cert: ch.edgeCert.cert, key: ch.edgeCert.key } } : {}),
  }));
});
chain.after(async () => {
  await ch.edge?.close();
  await ch.ingress?.close();
  await ch.backend?.close();
  await ch.tcp?.close();
  await ch.auth?.close();
  ch.edgeCert?.cleanup();
  ch.ingressCert?.cleanup();
});

chain('the rendered edge and ingress configurations are valid Traefik v3', () => {
  assertValidConfig(edgeConfig({ authUrl: 'http://poseidon:8080/v1/authz', ingressHttp: '10.250.0.11:18080', ingressTls: '10.250.0.11:18443' }));
  assertValidConfig(ingressConfig({ backendUrl: 'http://poseidon-0123456789abcdef01234567:8080', tcpBackend: 'poseidon-0123456789abcdef01234567:9000' }));
});

chain('through the edge: forward-auth passes, the edge adds its secret, the ingress routes with it and strips it', async () => {
  const before = ch.backend!.seen.length;
  const res = await http(ch.edge!.port, { host: WEB_HOST, path: '/index.html?x=1', headers: { 'x-poseidon-access': 'good', cookie: 'c=1' } });
  assert.is(res.status, 200, res.body);
  assert.is(ch.backend!.seen.length, before + 1);
  const seen = JSON.parse(res.body) as Echoed;
  assert.is(seen.url, '/index.html?x=1');
  assert.equal(seen.headers.host, [WEB_HOST], 'the Host header survives both hops');
  assert.is(seen.headers['x-poseidon-edge'], undefined, 'the backend never sees the secret');
  assert.is(seen.headers['x-poseidon-access'], undefined, 'nor the access token');
  assert.equal(seen.headers.cookie, ['c=1']);
  assert.equal(res.headers['set-cookie'], ['a=1', 'b=2', 'session=s1']);
  assert.equal(ch.edge!.authCalls.at(-1), [WEB_HOST, 200]);
  assert.is(ch.ingress!.events.at(-1)?.router, 'i-0123-web');
  assert.is(ch.auth!.seen.at(-1)!['x-poseidon-edge'], undefined, 'forward-auth does not get the secret either');
});

chain('straight to the ingress: without the secret, or with a wrong one, or for another host: 404, nothing reaches the backend', async () => {
  const before = ch.backend!.seen.length;
  const none = await http(ch.ingress!.port, { host: WEB_HOST });
  assert.is(none.status, 404);
  assert.is(none.body, '404 page not found\n');
  assert.is((await http(ch.ingress!.port, { host: WEB_HOST, headers: { 'x-poseidon-edge': 'guess' } })).status, 404);
  assert.is((await http(ch.ingress!.port, { host: WEB_HOST, headers: { 'x-poseidon-edge': SECRET.toUpperCase() } })).status, 404);
  assert.is((await http(ch.ingress!.port, { host: 'other.web-hello.ctf.test', headers: { 'x-poseidon-edge': SECRET } })).status, 404);
  assert.is(ch.backend!.seen.length, before);
  // Whoever knows the secret is the edge: that is why it must stay secret (and leave no hop).
  assert.is((await http(ch.ingress!.port, { host: WEB_HOST, headers: { 'x-poseidon-edge': SECRET } })).status, 200);
});

chain('a client-sent X-Poseidon-Edge is overwritten at the edge (one value, the edge\'s)', async () => {
  const before = ch.backend!.seen.length;
  const res = await http(ch.edge!.port, { host: WEB_HOST, headers: { 'x-poseidon-access': 'good', 'x-poseidon-edge': ['forged-1', 'forged-2'] } });
  assert.is(res.status, 200);
  assert.is(ch.backend!.seen.length, before + 1);
  // What the ingress received: an edge pointed at the echo backend shows the header as sent on.
  const edgeOnly = edgeConfig({ authUrl: ch.auth!.url, ingressHttp: `127.0.0.1:${ch.backend!.port}`, ingressTls: '127.0.0.1:1' });
  const spyEdge = await startMiniTraefik({ config: async () => edgeOnly });
  try {
    const seen = JSON.parse((await http(spyEdge.port, { host: WEB_HOST, headers: { 'x-poseidon-access': 'good', 'x-poseidon-edge': ['forged-1', 'forged-2'] } })).body) as Echoed;
    assert.equal(seen.headers['x-poseidon-edge'], [SECRET]);
    assert.is(seen.headers['x-poseidon-access'], undefined);
    assert.equal(seen.headers['x-forwarded-for'], ['127.0.0.1']);
  } finally {
    await spyEdge.close();
  }
});

chain('forward-auth denies at the edge: its answer goes back, the ingress sees nothing', async () => {
  const events = ch.ingress!.events.length;
  const res = await http(ch.edge!.port, { host: WEB_HOST, headers: { 'x-poseidon-access': 'stolen' } });
  assert.is(res.status, 401);
  assert.is(res.body, 'denied by auth');
  assert.is(ch.ingress!.events.length, events);
});

chain('TCP: passthrough at the edge, TLS terminated by the ingress with its certificate, plaintext to the backend', async () => {
  if (!tlsOk) return console.warn('  !! SKIPPED: openssl missing');
  const before = ch.tcp!.connections;
  const r = await tlsTalk(ch.edge!.entryPoints.websecure!.port, PWN_HOST, { ca: ch.ingressCert!.cert, send: 'hello\n' });
  assert.is(r.error, undefined);
  assert.ok(r.authorized, 'the client verified the ingress certificate for the hostname');
  assert.is(r.fingerprint, ch.ingressCert!.fingerprint256, 'the edge did not terminate TLS');
  assert.is.not(r.fingerprint, ch.edgeCert!.fingerprint256);
  assert.is(r.out, 'echo:hello\nbye\n', 'bytes both ways, and the half-close reached the backend');
  assert.is(ch.tcp!.connections, before + 1);
  assert.equal(ch.edge!.events.at(-1), { entryPoint: 'websecure', kind: 'passthrough', router: 'i-fedc-pwn', host: PWN_HOST, via: 'direct', target: ch.ingress!.entryPoints.websecure!.address });
  assert.is(ch.ingress!.events.at(-1)?.kind, 'terminate');
});

chain('TCP: an SNI no router names is refused: never passed on, never reaching a backend', async () => {
  if (!tlsOk) return console.warn('  !! SKIPPED: openssl missing');
  const before = ch.tcp!.connections;
  const ingressEvents = ch.ingress!.events.length;
  // At the edge: Traefik's HTTPS fallback with the edge's default certificate; `hello` is no HTTP request.
  const atEdge = await tlsTalk(ch.edge!.entryPoints.websecure!.port, 'ffffffffffffffff.pwn-echo.ctf.test', { send: 'hello\n' });
  assert.is(atEdge.fingerprint, ch.edgeCert!.fingerprint256);
  assert.match(atEdge.out, /^HTTP\/1\.1 400 Bad Request/);
  assert.is(ch.ingress!.events.length, ingressEvents, 'nothing went on to the ingress');
  // A client that checks the certificate does not even get that far.
  const strict = await tlsTalk(ch.edge!.entryPoints.websecure!.port, 'ffffffffffffffff.pwn-echo.ctf.test', { ca: ch.ingressCert!.cert, send: 'hello\n' });
  assert.ok(strict.error);
  assert.is(strict.out, '');
  // At the ingress directly.
  const atIngress = await tlsTalk(ch.ingress!.entryPoints.websecure!.port, 'ffffffffffffffff.pwn-echo.ctf.test', { send: 'hello\n' });
  assert.not.ok(atIngress.out.includes('echo:'));
  assert.is(ch.tcp!.connections, before);
  // A stand-in with no certificate at all closes the connection.
  const bare = await startMiniTraefik({ config: async () => ingressConfig({ backendUrl: ch.backend!.url, tcpBackend: ch.tcp!.address }), entryPoints: { websecure: {} } });
  try {
    const r = await tlsTalk(bare.port, PWN_HOST, { send: 'hello\n' });
    assert.not.ok(r.handshake);
    assert.is(r.out, '');
    assert.is(bare.events.at(-1)?.kind, 'refused');
  } finally {
    await bare.close();
  }
  assert.is(ch.tcp!.connections, before);
});

chain.run();

// ---------------------------------------------------------------------------------------------
// TCP and TLS on one stand-in

const tcp = guardedSuite('mini-traefik: TCP routers and TLS');
const tc: { echo?: Awaited<ReturnType<typeof tcpEcho>>; banner?: Awaited<ReturnType<typeof tcpEcho>>; http?: Awaited<ReturnType<typeof echoHttp>>; cert?: TlsFixture; other?: TlsFixture } = {};

tcp.before(async () => {
  tc.echo = await tcpEcho();
  tc.banner = await tcpEcho({ banner: 'SSH-2.0-banner\n' });
  tc.http = await echoHttp();
  if (tlsOk) {
    tc.cert = makeCertificate(['*.pwn-echo.ctf.test', '*.web-hello.ctf.test']);
    tc.other = makeCertificate(['special.pwn-echo.ctf.test']);
  }
});
tcp.after(async () => {
  await tc.echo?.close();
  await tc.banner?.close();
  await tc.http?.close();
  tc.cert?.cleanup();
  tc.other?.cleanup();
});

tcp('a terminating router (tls: {} and with certResolver) completes a real handshake and pipes plaintext', async () => {
  if (!tlsOk) return console.warn('  !! SKIPPED: openssl missing');
  const cfg: TraefikConfig = {
    tcp: {
      routers: {
        a: { entryPoints: ['websecure'], rule: `HostSNI(\`${PWN_HOST}\`)`, service: 'e', tls: {} },
        b: { entryPoints: ['websecure'], rule: 'HostSNI(`0000000000000000.pwn-echo.ctf.test`)', service: 'e', tls: { certResolver: 'le', domains: [{ main: 'pwn-echo.ctf.test', sans: ['*.pwn-echo.ctf.test'] }] } },
        c: { entryPoints: ['websecure'], rule: 'HostSNI(`special.pwn-echo.ctf.test`)', service: 'e', tls: {} },
      },
      services: { e: { loadBalancer: { servers: [{ address: tc.echo!.address }] } } },
    },
    tls: { certificates: [{ certFile: tc.other!.certFile, keyFile: tc.other!.keyFile }] },
  };
  assertValidConfig(cfg);
  const mt = await startMiniTraefik({ config: async () => cfg, entryPoints: { websecure: {} }, certificates: [{ cert: tc.cert!.cert, key: tc.cert!.key }] });
  try {
    for (const host of [PWN_HOST, '0000000000000000.pwn-echo.ctf.test']) {
      const r = await tlsTalk(mt.port, host, { ca: tc.cert!.cert, send: 'ping\n' });
      assert.ok(r.authorized, host);
      assert.is(r.out, 'echo:ping\nbye\n');
    }
    // The configuration's own certificate is picked for the name it covers exactly.
    const special = await tlsTalk(mt.port, 'special.pwn-echo.ctf.test', { ca: tc.other!.cert, send: 'x' });
    assert.is(special.fingerprint, tc.other!.fingerprint256);
    assert.is(special.out, 'echo:xbye\n');
  } finally {
    await mt.close();
  }
});

tcp('HTTPS on the TLS entry point: an HTTP router with tls is served over TLS, and wins over a TCP router for its host', async () => {
  if (!tlsOk) return console.warn('  !! SKIPPED: openssl missing');
  const cfg: TraefikConfig = {
    http: {
      middlewares: { https: { redirectScheme: { permanent: true, scheme: 'https' } } },
      routers: { web: { entryPoints: ['websecure'], rule: `Host(\`${WEB_HOST}\`)`, middlewares: ['https'], service: 'w', tls: {} } },
      services: { w: svc(tc.http!.url) },
    },
    tcp: {
      routers: {
        shadow: { entryPoints: ['websecure'], rule: `HostSNI(\`${WEB_HOST}\`)`, service: 'e', tls: {} },
        pwn: { entryPoints: ['websecure'], rule: `HostSNI(\`${PWN_HOST}\`)`, service: 'e', tls: {} },
      },
      services: { e: { loadBalancer: { servers: [{ address: tc.echo!.address }] } } },
    },
  };
  assertValidConfig(cfg);
  const mt = await startMiniTraefik({ config: async () => cfg, entryPoints: { websecure: {} }, defaultCertificate: { cert: tc.cert!.cert, key: tc.cert!.key } });
  try {
    const res = await new Promise<Answer>((resolve, reject) => {
      const r = httpsRequest({ host: '127.0.0.1', port: mt.port, servername: WEB_HOST, ca: tc.cert!.cert, headers: { host: WEB_HOST }, path: '/s', agent: false }, (m) => {
        let body = '';
        m.on('data', (c: Buffer) => { body += c.toString(); });
        m.on('end', () => resolve({ status: m.statusCode ?? 0, headers: m.headers, body }));
      });
      r.on('error', reject);
      r.end();
    });
    assert.is(res.status, 200, 'already https: redirectScheme lets it through');
    const seen = JSON.parse(res.body) as Echoed;
    assert.equal(seen.headers['x-forwarded-proto'], ['https']);
    assert.equal(seen.headers['x-forwarded-port'], ['443']);
    assert.equal(mt.events.at(-1)?.kind, 'https');
    const pwn = await tlsTalk(mt.port, PWN_HOST, { ca: tc.cert!.cert, send: 'z' });
    assert.is(pwn.out, 'echo:zbye\n');
  } finally {
    await mt.close();
  }
});

tcp('a TLS HostSNI(`*`) router catches every other SNI, and connections without SNI, after the specific routers', async () => {
  if (!tlsOk) return console.warn('  !! SKIPPED: openssl missing');
  const cfg: TraefikConfig = {
    tcp: {
      routers: {
        all: { entryPoints: ['websecure'], rule: 'HostSNI(`*`)', service: 'banner', tls: {} },
        one: { entryPoints: ['websecure'], rule: `HostSNI(\`${PWN_HOST}\`)`, service: 'echo', tls: {} },
      },
      services: { echo: { loadBalancer: { servers: [{ address: tc.echo!.address }] } }, banner: { loadBalancer: { servers: [{ address: tc.banner!.address }] } } },
    },
  };
  assertValidConfig(cfg);
  const mt = await startMiniTraefik({ config: async () => cfg, entryPoints: { websecure: {} }, defaultCertificate: { cert: tc.cert!.cert, key: tc.cert!.key } });
  try {
    assert.is((await tlsTalk(mt.port, PWN_HOST, { send: 'a' })).out, 'echo:abye\n');
    assert.is((await tlsTalk(mt.port, 'other.pwn-echo.ctf.test', { send: 'b' })).out, 'SSH-2.0-banner\necho:bbye\n');
    assert.is((await tlsTalk(mt.port, '', { send: 'c' })).out, 'SSH-2.0-banner\necho:cbye\n');
    assert.equal(mt.events.slice(-3).map((e) => [e.router, e.host]), [['one', PWN_HOST], ['all', 'other.pwn-echo.ctf.test'], ['all', '']]);
  } finally {
    await mt.close();
  }
});

tcp('a non-TLS catch-all TCP router (HostSNI(`*`), no tls) routes at once: the backend may speak first', async () => {
  const cfg: TraefikConfig = {
    tcp: { routers: { ssh: { entryPoints: ['ssh'], rule: 'HostSNI(`*`)', service: 'b' } }, services: { b: { loadBalancer: { servers: [{ address: tc.banner!.address }] } } } },
  };
  assertValidConfig(cfg);
  const mt = await startMiniTraefik({ config: async () => cfg, entryPoints: { ssh: {} } });
  try {
    const banner = await new Promise<string>((resolve, reject) => {
      const s = createNetConnection(mt.port);
      s.once('data', (c: Buffer) => {
        s.destroy();
        resolve(c.toString());
      });
      s.on('error', reject);
    });
    assert.is(banner, 'SSH-2.0-banner\n');
  } finally {
    await mt.close();
  }
});

function createNetConnection(port: number): Socket {
  const s = netConnect({ host: '127.0.0.1', port });
  s.setTimeout(20_000, () => s.destroy(new Error('timeout')));
  return s;
}

tcp('a certificate file that cannot be read is reported and left out; everything else keeps working', async () => {
  if (!tlsOk) return console.warn('  !! SKIPPED: openssl missing');
  const cfg: TraefikConfig = {
    tcp: {
      routers: { a: { entryPoints: ['websecure'], rule: `HostSNI(\`${PWN_HOST}\`)`, service: 'e', tls: {} } },
      services: { e: { loadBalancer: { servers: [{ address: tc.echo!.address }] } } },
    },
    tls: { certificates: [{ certFile: '/nonexistent/poseidon.crt', keyFile: '/nonexistent/poseidon.key' }] },
  };
  const mt = await startMiniTraefik({ config: async () => cfg, entryPoints: { websecure: {} }, defaultCertificate: { cert: tc.cert!.cert, key: tc.cert!.key } });
  try {
    const r = await tlsTalk(mt.port, PWN_HOST, { ca: tc.cert!.cert, send: 'still\n' });
    assert.is(r.out, 'echo:still\nbye\n');
    assert.ok(mt.errors.some((e) => e.includes('/nonexistent/poseidon.crt')), mt.errors.join('\n'));
  } finally {
    await mt.close();
  }
});

tcp('a HostSNI router without tls is a configuration error (Traefik refuses it)', async () => {
  const cfg = { tcp: { routers: { x: { rule: `HostSNI(\`${PWN_HOST}\`)`, service: 'b' } }, services: { b: { loadBalancer: { servers: [{ address: tc.echo!.address }] } } } } };
  const mt = await startMiniTraefik({ config: async () => cfg, strict: false });
  try {
    assert.is((await http(mt.port, { host: 'x.test' })).status, 404, 'HTTP still served, the router is left out');
    assert.ok(mt.errors.some((e) => /has HostSNI matcher, but no TLS on router/.test(e)), mt.errors.join('\n'));
  } finally {
    await mt.close();
  }
});

tcp.run();

// ---------------------------------------------------------------------------------------------
// Container backends through a probe container (real engine)

const dock = guardedSuite('mini-traefik: container backends reached through a probe container');
const dockerOk = haveDocker();
/**
 * Registers a case only where what it needs exists. Under CI=true `haveDocker` and `haveOpenssl`
 * throw at import when their dependency is missing, so no case of this suite can skip in CI;
 * elsewhere they print a SKIPPED warning.
 */
const dockCase = (name: string, available: boolean, fn: () => Promise<void>): void => {
  if (available) dock(name, fn);
};
const RUN_ID = `mt-${randomBytes(4).toString('hex')}`;
const dk: { docker?: Docker; probe?: string; webName?: string; echoName?: string; echoIp?: string; cert?: TlsFixture; mt?: MiniTraefik } = {};

async function cleanupLabel(docker: Docker, id: string): Promise<void> {
  for (const c of await docker.listContainers({ all: true, filters: { label: [`${TEST_LABEL}=${id}`] } })) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
  for (const n of await docker.listNetworks({ filters: { label: [`${TEST_LABEL}=${id}`] } })) await docker.getNetwork(n.Id).remove().catch(() => undefined);
}

/** A probe, an HTTP backend that prints its CGI environment (request headers) and body, and a TCP echo, on one internal network. */
async function startBackends(docker: Docker, id: string, prefix: string): Promise<{ probe: string; web: string; echo: string; echoIp: string }> {
  const labels = { [TEST_LABEL]: id };
  const net = `${prefix}-net`;
  await docker.createNetwork({ Name: net, Internal: true, Labels: labels, CheckDuplicate: true });
  const run = async (name: string, cmd: string) => {
    const c = await docker.createContainer({ name, Image: 'busybox:1.35', Labels: labels, Cmd: ['sh', '-c', cmd], HostConfig: { NetworkMode: net } });
    await c.start();
    return c;
  };
  const cgi = '#!/bin/sh\\necho "Content-Type: text/plain"\\necho\\nenv | grep -E "^(HTTP_|REQUEST_METHOD|QUERY_STRING)" | sort\\n[ -n "$CONTENT_LENGTH" ] && echo "body=$(head -c $CONTENT_LENGTH)"\\n';
  await run(`${prefix}-probe`, 'exec sleep 3600');
  await run(`${prefix}-web`, `mkdir -p /www/cgi-bin && printf '${cgi}' > /www/cgi-bin/env && chmod +x /www/cgi-bin/env && exec httpd -f -p 8080 -h /www`);
  const echoC = await run(`${prefix}-echo`, 'exec nc -ll -p 9000 -e cat');
  const echoIp = (await echoC.inspect()).NetworkSettings.Networks[net]!.IPAddress;
  return { probe: `${prefix}-probe`, web: `${prefix}-web`, echo: `${prefix}-echo`, echoIp };
}

if (dockerOk) dock.before(async () => {
  dk.docker = new Docker({ socketPath: '/var/run/docker.sock' });
  try {
    const b = await startBackends(dk.docker, RUN_ID, RUN_ID);
    Object.assign(dk, { probe: b.probe, webName: b.web, echoName: b.echo, echoIp: b.echoIp });
    if (tlsOk) dk.cert = makeCertificate(['*.pwn-echo.ctf.test']);
    const cfg: TraefikConfig = {
      http: {
        routers: {
          web: { entryPoints: ['web'], rule: `Host(\`${WEB_HOST}\`)`, service: 'web' },
          gone: { entryPoints: ['web'], rule: 'Host(`gone.test`)', service: 'gone' },
        },
        services: { web: svc(`http://${b.web}:8080`), gone: svc(`http://${RUN_ID}-nosuch:8080`) },
      },
      tcp: {
        routers: {
          byName: { entryPoints: ['websecure'], rule: `HostSNI(\`${PWN_HOST}\`)`, service: 'byName', tls: {} },
          byIp: { entryPoints: ['websecure'], rule: 'HostSNI(`0000000000000000.pwn-echo.ctf.test`)', service: 'byIp', tls: {} },
        },
        services: { byName: { loadBalancer: { servers: [{ address: `${b.echo}:9000` }] } }, byIp: { loadBalancer: { servers: [{ address: `${b.echoIp}:9000` }] } } },
      },
    };
    assertValidConfig(cfg);
    dk.mt = await startMiniTraefik(twoEntryPoints({
      config: async () => cfg, docker: '/var/run/docker.sock', probe: b.probe,
      ...(dk.cert ? { defaultCertificate: { cert: dk.cert.cert, key: dk.cert.key } } : {}),
    }));
    // busybox needs a moment to listen: wait for the backend to answer through the probe.
    await waitFor('web backend answers', async () => ((await http(dk.mt!.port, { host: WEB_HOST, path: '/cgi-bin/env' })).status === 200 ? true : undefined), 60_000, 200);
  } catch (err) {
    await cleanupLabel(dk.docker, RUN_ID);
    throw err;
  }
});
if (dockerOk) dock.after(async () => {
  await dk.mt?.close();
  dk.cert?.cleanup();
  await cleanupLabel(dk.docker!, RUN_ID);
});

dockCase('HTTP to a container by name: request headers, Host and body arrive; the answer comes back', dockerOk, async () => {
  const res = await http(dk.mt!.port, { host: WEB_HOST, path: '/cgi-bin/env?a=b', method: 'POST', body: 'payload-123', headers: { 'x-team': 'red', 'content-type': 'text/plain' } });
  assert.is(res.status, 200, res.body);
  assert.match(res.body, new RegExp(`^HTTP_HOST=${WEB_HOST.replaceAll('.', '\\.')}$`, 'm'));
  assert.match(res.body, /^HTTP_X_TEAM=red$/m);
  assert.match(res.body, /^HTTP_X_FORWARDED_FOR=127\.0\.0\.1$/m);
  assert.match(res.body, /^REQUEST_METHOD=POST$/m);
  assert.match(res.body, /^QUERY_STRING=a=b$/m);
  assert.match(res.body, /^body=payload-123$/m);
  assert.equal({ via: dk.mt!.events.at(-1)?.via, target: dk.mt!.events.at(-1)?.target }, { via: 'probe', target: `${dk.webName}:8080` });
});

dockCase('HTTP to a container that does not exist: 502 Bad Gateway', dockerOk, async () => {
  const res = await http(dk.mt!.port, { host: 'gone.test' });
  assert.is(res.status, 502);
  assert.match(dk.mt!.events.at(-1)?.detail ?? '', /unresolved/);
});

dockCase('TCP over TLS to a container, by name and by container IP, always from inside Docker', dockerOk && tlsOk, async () => {
  for (const [host, target] of [[PWN_HOST, `${dk.echoName}:9000`], ['0000000000000000.pwn-echo.ctf.test', `${dk.echoIp}:9000`]] as const) {
    const r = await tlsTalk(dk.mt!.entryPoints.websecure!.port, host, { ca: dk.cert!.cert, send: 'hello from tls\n' });
    assert.ok(r.authorized, host);
    assert.is(r.out, 'hello from tls\n', `${host}: echoed by the container, and closed after the half-close`);
    const e = dk.mt!.events.filter((x) => x.kind === 'terminate').at(-1);
    assert.equal({ via: e?.via, target: e?.target }, { via: 'probe', target });
  }
});

dockCase('several TCP streams through the probe at once keep their own bytes', dockerOk && tlsOk, async () => {
  const results = await Promise.all(Array.from({ length: 4 }, (_, i) => tlsTalk(dk.mt!.entryPoints.websecure!.port, PWN_HOST, { ca: dk.cert!.cert, send: `stream-${i}-${'z'.repeat(20_000)}\n` })));
  results.forEach((r, i) => assert.is(r.out, `stream-${i}-${'z'.repeat(20_000)}\n`));
});

dock.run();

// ---------------------------------------------------------------------------------------------
// The CLI: its own process, a file provider, reloads, SIGTERM

const cli = guardedSuite('mini-traefik: the CLI process');
const cl: { dir?: string; cert?: TlsFixture; http?: Awaited<ReturnType<typeof echoHttp>>; echo?: Awaited<ReturnType<typeof tcpEcho>>; procs: ChildProcess[] } = { procs: [] };
const CLI = path.join(ROOT, 'spec/helpers/mini-traefik-cli.ts');

/** Writes `cfg` as Poseidon does: a `#` header, JSON, to a temp name then renamed over the file. */
function writeConfig(file: string, cfg: TraefikConfig): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(3).toString('hex')}.tmp`);
  writeFileSync(tmp, `# Generated by Poseidon; do not edit.\n# Written as JSON, which is YAML.\n${JSON.stringify(cfg, null, 2)}\n`);
  renameSync(tmp, file);
}

/** Spawns the CLI (optionally inside a namespace) and waits for its `ready` line (bounded). */
async function spawnCli(args: string[], host?: TestHost): Promise<{ proc: ChildProcess; http: string; tls: string; logs: () => string }> {
  const argv = ['--import', 'tsx', CLI, ...args];
  const proc = host ? inNamespace(host, process.execPath, argv, { cwd: ROOT }) : spawn(process.execPath, argv, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  cl.procs.push(proc);
  let out = '';
  let err = '';
  proc.stderr?.on('data', (d: Buffer) => { err += d.toString(); });
  const ready = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ready line in 60 s:\n${err}`)), 60_000);
    proc.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.startsWith('ready '));
      if (line) {
        clearTimeout(timer);
        resolve(line);
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited ${code}:\n${err}`));
    });
  });
  const [, h, t] = ready.split(' ');
  return { proc, http: h!, tls: t!, logs: () => err };
}

function exited(proc: ChildProcess): Promise<number | null> {
  return proc.exitCode !== null ? Promise.resolve(proc.exitCode) : new Promise((r) => proc.once('exit', (code) => r(code)));
}

cli.before(async () => {
  cl.dir = mkdtempSync(path.join(tmpdir(), 'poseidon-mt-cli-'));
  cl.http = await echoHttp();
  cl.echo = await tcpEcho();
  if (tlsOk) cl.cert = makeCertificate(['*.pwn-echo.ctf.test']);
});
cli.after(async () => {
  for (const p of cl.procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  await cl.http?.close();
  await cl.echo?.close();
  cl.cert?.cleanup();
  if (cl.dir) rmSync(cl.dir, { recursive: true, force: true });
});

cli('runs as its own process: ready line, routes from the file, reloads on rename, keeps routes on an empty file, exits 0 on SIGTERM', async () => {
  const file = path.join(cl.dir!, 'poseidon.yml');
  const cfgA = ingressConfig({ backendUrl: cl.http!.url, tcpBackend: cl.echo!.address });
  writeConfig(file, cfgA);
  const args = ['--config', file, '--http', '127.0.0.1:0', '--tls', '127.0.0.1:0'];
  if (cl.cert) args.push('--cert', cl.cert.certFile, '--key', cl.cert.keyFile);
  const p = await spawnCli(args);
  assert.match(p.http, /^127\.0\.0\.1:\d+$/);
  assert.match(p.tls, /^127\.0\.0\.1:\d+$/);
  const httpPort = Number(p.http.split(':')[1]);
  const tlsPort = Number(p.tls.split(':')[1]);
  assert.is((await http(httpPort, { host: WEB_HOST, headers: { 'x-poseidon-edge': SECRET } })).status, 200);
  assert.is((await http(httpPort, { host: WEB_HOST })).status, 404);
  if (cl.cert) assert.is((await tlsTalk(tlsPort, PWN_HOST, { ca: cl.cert.cert, send: 'cli\n' })).out, 'echo:cli\nbye\n');
  // A new route appears once the file is renamed over (Poseidon's way of writing it).
  const cfgB = structuredClone(cfgA);
  cfgB.http.routers['i-new'] = { entryPoints: ['web'], rule: 'Host(`new.web-hello.ctf.test`)', service: 'i-0123-web' };
  writeConfig(file, cfgB);
  await waitFor('new route served', async () => ((await http(httpPort, { host: 'new.web-hello.ctf.test' })).status === 200 ? true : undefined), 20_000, 100);
  // Traefik ignores an empty file: the routes stay.
  writeFileSync(file, '# emptied\n');
  await waitFor('empty file seen', async () => (/empty configuration ignored/.test(p.logs()) ? true : undefined), 20_000, 100);
  assert.is((await http(httpPort, { host: 'new.web-hello.ctf.test' })).status, 200);
  p.proc.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([exited(p.proc), new Promise<string>((r) => { timer = setTimeout(() => r('timeout'), 20_000); })]);
  clearTimeout(timer);
  assert.is(code, 0);
});

cli('as an ingress inside a test host\'s network namespace: listens on its address, reaches that host\'s containers through its probe', async () => {
  const rig = testHosts();
  if (!rig || !tlsOk) return;
  const host = rig.hosts[0]!;
  const docker = dockerFor(host);
  const id = `${RUN_ID}-ns`;
  try {
    const b = await startBackends(docker, id, id);
    const file = path.join(cl.dir!, 'ingress.yml');
    writeConfig(file, ingressConfig({ backendUrl: `http://${b.web}:8080`, tcpBackend: `${b.echo}:9000` }));
    const p = await spawnCli(['--config', file, '--http', `${host.address}:0`, '--tls', `${host.address}:0`, '--cert', cl.cert!.certFile, '--key', cl.cert!.keyFile, '--docker-socket', host.socket, '--probe', b.probe], host);
    assert.ok(p.http.startsWith(`${host.address}:`), p.http);
    const [httpPort, tlsPort] = [Number(p.http.split(':')[1]), Number(p.tls.split(':')[1])];
    const page = await waitFor('routed into the namespace', async () => {
      const r = await http(httpPort, { address: host.address, host: WEB_HOST, path: '/cgi-bin/env', headers: { 'x-poseidon-edge': SECRET } });
      return r.status === 200 ? r : undefined;
    }, 60_000, 250);
    assert.match(page.body, new RegExp(`^HTTP_HOST=${WEB_HOST.replaceAll('.', '\\.')}$`, 'm'));
    assert.not.match(page.body, /POSEIDON_EDGE/, 'the ingress strips the secret');
    assert.is((await http(httpPort, { address: host.address, host: WEB_HOST, path: '/cgi-bin/env' })).status, 404);
    const t = await tlsTalk(tlsPort, PWN_HOST, { address: host.address, ca: cl.cert!.cert, send: 'in the namespace\n' });
    assert.is(t.out, 'in the namespace\n');
    p.proc.kill('SIGTERM');
    assert.is(await exited(p.proc), 0);
  } finally {
    await cleanupLabel(docker, id);
  }
});

cli('the file provider merges a directory\'s .yml/.json files and ignores temp names', async () => {
  const dir = mkdtempSync(path.join(cl.dir!, 'dir-'));
  writeFileSync(path.join(dir, 'a.yml'), '# header\n{"http": {"routers": {"a": {"rule": "Host(`a.test`)", "service": "s"}}, "services": {"s": {"loadBalancer": {"servers": [{"url": "http://127.0.0.1:1"}]}}}}}\n');
  writeFileSync(path.join(dir, 'b.json'), '{"http": {"routers": {"b": {"rule": "Host(`b.test`)", "service": "s"}}}}');
  writeFileSync(path.join(dir, '.poseidon.yml.tmp'), 'not: [valid');
  const src = fileConfigSource(dir);
  const cfg = await src.load();
  assert.equal(Object.keys(cfg.http.routers).sort(), ['a', 'b']);
  assert.equal(src.errors, []);
  assert.is(await src.load(), cfg, 'unchanged files are not re-read');
});

cli.run();
