/**
 * A stand-in for Traefik v3 in tests (Traefik cannot be installed here), faithful to v3.1 (the
 * version docker-compose.yml pins) for what Poseidon's edge and ingress configurations use.
 *
 * Entry points: each is one TCP listener (any `host:port`, e.g. a network namespace's address)
 * that, like Traefik's, serves HTTP, HTTPS and TCP routers together. A connection is routed as
 * Traefik's TCP router does (pkg/server/router/tcp/router.go): with only non-TLS TCP routers on
 * the entry point, at once (server-first protocols); otherwise by its first bytes. Not TLS: a
 * non-TLS TCP router (`HostSNI(\`*\`)`) or else HTTP. TLS (the ClientHello is read, not
 * consumed, for its SNI and ALPN): an HTTPS router whose `Host` names the SNI, else a TCP TLS
 * router that is not the catch-all, else an HTTPS router without a Host, else the TCP catch-all,
 * else HTTPS with the default certificate (so an unknown SNI gets 404s over HTTPS, or, with no
 * certificate at all, a closed connection). TCP TLS routers pass the raw bytes through
 * (`tls.passthrough`) or terminate TLS with the best certificate for the SNI (`tls: {}`, with or
 * without certResolver/domains: the stand-in has no ACME) and pipe plaintext, with half-closes.
 *
 * HTTP: routers on the entry point (all entry points, or the `asDefault` ones, when a router
 * names none), those with `tls` only over TLS and the others only in clear, by priority (given,
 * or the rule's length; ties by router name); rules as in mini-traefik-rules.ts. The entry point
 * first applies `forwardedHeaders` (default: untrusted, so a client's X-Forwarded-* and
 * X-Real-Ip are dropped and set anew). Middlewares: `forwardAuth` (GET to the address with the
 * request's headers filtered by `authRequestHeaders` and its own X-Forwarded-*; a non-2xx answer
 * goes back as is; `authResponseHeaders`/`authResponseHeadersRegex`; its cookies are added to
 * the response), `headers` (`customRequestHeaders`/`customResponseHeaders`: an empty value
 * removes, otherwise the value replaces whatever was sent; `Host` sets the request host),
 * `replacePath` (sets X-Replaced-Path), `stripPrefix`, `addPrefix`, `redirectScheme`. Services:
 * `loadBalancer` (round robin over `servers`, `passHostHeader` default true), proxied with
 * streamed bodies both ways, X-Forwarded-For appended, hop-by-hop headers dropped, 502 when the
 * backend cannot be reached. Proxy-form requests are accepted, so a browser can use an entry
 * point as its HTTP proxy.
 *
 * Backends and forward-auth addresses on 127.0.0.0/8 or 10.250.0.0/16 are dialled directly;
 * any other (container names and IPs) only from inside Docker through `probe` (a docker exec of
 * busybox nc, see mini-traefik-dial.ts), or, for HTTP, through the older `backend` callback.
 *
 * Not implemented (reported as a configuration error): other middlewares, weighted and
 * mirroring services, https/h2c backends, UDP, TCP middlewares, proxyProtocol, TLS options,
 * ruleSyntax v2. Not modelled at all: ACME (certResolver routers use the certificates given),
 * client certificates (mTLS), the 421 SNI/Host check that only differing TLS options trigger,
 * entry-point-level `http.tls` and redirections (static configuration), WebSocket upgrades,
 * HTTP/2, Traefik's own self-signed default certificate (without any certificate, TLS
 * connections are closed), connection pooling to backends (each request has its own connection
 * and says `Connection: close`), and the tie-break between routers of equal priority (Traefik's
 * order is unspecified; here it is the router name).
 * A configuration error fails every request (502 naming it) and TLS/TCP connection (closed) when
 * `strict` (the default), so a bad render is loud; with `strict: false` the faulty router is left
 * out, as Traefik does. Either way it is listed in `errors`.
 */
import { hostname as osHostname } from 'node:os';
import { createServer as createHttpServer, request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { TLSSocket, type SecureContext } from 'node:tls';
import type Docker from 'dockerode';
import { fileConfigSource } from './mini-traefik-config.ts';
import { createDialer, isDirectAddress, splitHostPort, type Dialer } from './mini-traefik-dial.ts';
import { compileHttpRule, compileTcpRule, goRegExp, httpRulePriority, ipRanges, isTcpCatchAll, ruleValues, tcpRulePriority, type HttpMatchInput, type Matcher, type TcpMatchInput } from './mini-traefik-rules.ts';
import { CertStore, parseClientHello, type CertificatePair, type ClientHello } from './mini-traefik-tls.ts';

export { compileHttpRule, compileTcpRule, httpRulePriority, tcpRulePriority } from './mini-traefik-rules.ts';
export { fileConfigSource, parseDynamicConfig } from './mini-traefik-config.ts';
export { isDirectAddress } from './mini-traefik-dial.ts';
export type { CertificatePair } from './mini-traefik-tls.ts';

type Json = Record<string, any>;
/** A Traefik dynamic configuration (file or HTTP provider document). */
export type TraefikConfig = Json;

export interface BackendAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export interface EntryPointOptions {
  /** `host:port` to listen on (default `127.0.0.1:0`; `:port` is every interface). */
  address?: string;
  /** Routers that name no entry point use the `asDefault` ones (all, when none is). */
  asDefault?: boolean;
  /** Traefik's `forwardedHeaders`: whose X-Forwarded-* to keep (default: nobody's). */
  forwardedHeaders?: { insecure?: boolean; trustedIPs?: string[] };
}

export interface MiniTraefikOptions {
  /** The current dynamic configuration, called per request and per connection (HTTP provider). */
  config?: () => Promise<Json>;
  /** Or a file (or directory) to read it from, re-read when it changes (file provider). */
  configFile?: string;
  /** The single entry point's name when `entryPoints` is not given (default `web`). */
  entryPoint?: string;
  /** The single entry point's address when `entryPoints` is not given (default `127.0.0.1:0`). */
  address?: string;
  /** Several named entry points; the first one is `url`/`port`. */
  entryPoints?: Record<string, EntryPointOptions>;
  /** Fetches `path` from a backend that is not dialled directly (GET only; older API, HTTP only). */
  backend?: (hostPort: string, path: string, headers: Record<string, string>) => Promise<BackendAnswer>;
  /** Docker engine of `probe`: a client or a socket path (default /var/run/docker.sock). */
  docker?: Docker | string;
  /** Container (id or name) joined to the backends' networks, used to reach them from inside Docker. */
  probe?: string;
  /** Which hosts are dialled from here (default: 127.0.0.0/8, localhost, ::1, 10.250.0.0/16). */
  direct?: (host: string) => boolean;
  /** Certificates to terminate TLS with, picked by SNI (besides the configuration's `tls.certificates`). */
  certificates?: CertificatePair[];
  /** The certificate for names no other matches (else the store's default, else the first one). */
  defaultCertificate?: CertificatePair;
  /** Fail every request/connection on a configuration error (default true). */
  strict?: boolean;
  /** X-Forwarded-Server (default: this machine's host name). */
  serverName?: string;
}

export interface EntryPointInfo {
  name: string;
  host: string;
  port: number;
  /** `host:port` as bound. */
  address: string;
  /** `http://<host>:<port>` (127.0.0.1 for a wildcard address). */
  url: string;
}

/** One routing decision, for tests to see where a request or connection went. */
export interface RouteEvent {
  entryPoint: string;
  /** http/https: a request; tcp: a non-TLS connection; passthrough/terminate: a TLS one; refused: closed unrouted. */
  kind: 'http' | 'https' | 'tcp' | 'passthrough' | 'terminate' | 'refused';
  router?: string;
  /** Request host or SNI. */
  host?: string;
  status?: number;
  /** How the backend was reached. */
  via?: 'direct' | 'probe' | 'callback';
  target?: string;
  detail?: string;
}

export interface MiniTraefik {
  /** The first entry point's URL and port. */
  url: string;
  port: number;
  entryPoints: Record<string, EntryPointInfo>;
  /** Every forward-auth call made: [x-forwarded-host, status]. */
  authCalls: [string, number][];
  /** Routing decisions, oldest first (the last 2,000). */
  events: RouteEvent[];
  /** Configuration errors met (deduplicated), oldest first; also certificates that could not be loaded (which fail nothing). */
  errors: string[];
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Compiled configuration

interface HttpRouter {
  name: string;
  entryPoints?: string[];
  tls: boolean;
  priority: number;
  match: Matcher<HttpMatchInput>;
  /** Host values of the rule: the SNI names this HTTPS router claims. */
  domains: string[];
  middlewares: [string, Json][];
  serviceName: string;
  service: Json;
}

interface TcpRouter {
  name: string;
  entryPoints?: string[];
  /** undefined: a non-TLS router. */
  tls?: { passthrough: boolean };
  priority: number;
  match: Matcher<TcpMatchInput>;
  catchAll: boolean;
  serviceName: string;
  service: Json;
}

interface Compiled {
  http: HttpRouter[];
  tcp: TcpRouter[];
  errors: string[];
  certs: CertStore;
}

const MIDDLEWARES = new Set(['forwardAuth', 'headers', 'replacePath', 'stripPrefix', 'addPrefix', 'redirectScheme']);

/** A reference `name` or `name@file`/`name@http` (Poseidon's own provider). */
function ref(name: string): string {
  return name.replace(/@(file|http)$/, '');
}

function byPriority<T extends { priority: number; name: string }>(a: T, b: T): number {
  return b.priority - a.priority || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

function checkMiddleware(name: string, mw: Json | undefined): void {
  if (!mw || typeof mw !== 'object') throw new Error(`middleware ${JSON.stringify(name)} does not exist`);
  const kinds = Object.keys(mw);
  if (kinds.length !== 1) throw new Error(`middleware ${JSON.stringify(name)}: exactly one type expected, got ${JSON.stringify(kinds)}`);
  if (!MIDDLEWARES.has(kinds[0]!)) throw new Error(`middleware ${JSON.stringify(name)}: type ${kinds[0]} is not supported by the stand-in`);
  if (mw.forwardAuth?.trustForwardHeader) throw new Error(`middleware ${JSON.stringify(name)}: Poseidon must never emit trustForwardHeader: true`);
  if (mw.headers) {
    const extra = Object.keys(mw.headers).filter((k) => k !== 'customRequestHeaders' && k !== 'customResponseHeaders');
    if (extra.length > 0) throw new Error(`middleware ${JSON.stringify(name)}: headers options ${extra.join(', ')} are not supported by the stand-in`);
  }
}

function compileHttpRouter(cfg: Json, name: string, r: Json): HttpRouter {
  if (typeof r.rule !== 'string' || r.rule === '') throw new Error('router has no rule');
  if (typeof r.service !== 'string' || r.service === '') throw new Error('the service is missing on the router');
  const match = compileHttpRule(r.rule, r.ruleSyntax);
  const serviceName = ref(r.service);
  const service = cfg.http?.services?.[serviceName];
  if (!service) throw new Error(`the service ${JSON.stringify(r.service)} does not exist`);
  if (!service.loadBalancer) throw new Error(`service ${JSON.stringify(serviceName)}: only loadBalancer services are supported by the stand-in`);
  const servers = service.loadBalancer.servers as Json[] | undefined;
  if (!Array.isArray(servers) || servers.length === 0) throw new Error(`service ${JSON.stringify(serviceName)} has no servers`);
  for (const s of servers) if (!/^http:\/\//.test(String(s.url))) throw new Error(`service ${JSON.stringify(serviceName)}: server url ${JSON.stringify(s.url)} (only http:// backends are supported by the stand-in)`);
  const middlewares = ((r.middlewares ?? []) as string[]).map((m): [string, Json] => {
    const mw = cfg.http?.middlewares?.[ref(m)] as Json | undefined;
    checkMiddleware(m, mw);
    return [ref(m), mw!];
  });
  const priority = typeof r.priority === 'number' && r.priority !== 0 ? r.priority : httpRulePriority(r.rule);
  return { name, entryPoints: r.entryPoints, tls: r.tls !== undefined && r.tls !== null, priority, match, domains: ruleValues(r.rule, 'Host'), middlewares, serviceName, service };
}

function compileTcpRouter(cfg: Json, name: string, r: Json): TcpRouter {
  if (typeof r.service !== 'string' || r.service === '') throw new Error('the service is missing on the router');
  if (typeof r.rule !== 'string' || r.rule === '') throw new Error('router has no rule');
  const match = compileTcpRule(r.rule, r.ruleSyntax);
  const domains = ruleValues(r.rule, 'HostSNI');
  const tls = r.tls === undefined || r.tls === null ? undefined : { passthrough: r.tls.passthrough === true };
  if (domains.length > 0 && !tls && domains[0] !== '*') throw new Error(`invalid rule: ${JSON.stringify(r.rule)} , has HostSNI matcher, but no TLS on router`);
  if (r.tls?.options) throw new Error('TLS options are not supported by the stand-in');
  if (r.middlewares?.length) throw new Error('TCP middlewares are not supported by the stand-in');
  const serviceName = ref(r.service);
  const service = cfg.tcp?.services?.[serviceName];
  if (!service) throw new Error(`the service ${JSON.stringify(r.service)} does not exist`);
  if (!service.loadBalancer) throw new Error(`service ${JSON.stringify(serviceName)}: only loadBalancer TCP services are supported by the stand-in`);
  if (service.loadBalancer.proxyProtocol) throw new Error(`service ${JSON.stringify(serviceName)}: proxyProtocol is not supported by the stand-in`);
  const servers = service.loadBalancer.servers as Json[] | undefined;
  if (!Array.isArray(servers) || servers.length === 0) throw new Error(`service ${JSON.stringify(serviceName)} has no servers`);
  for (const s of servers) splitHostPort(String(s.address));
  const priority = typeof r.priority === 'number' && r.priority !== 0 ? r.priority : tcpRulePriority(r.rule);
  return { name, entryPoints: r.entryPoints, tls, priority, match, catchAll: isTcpCatchAll(r.rule), serviceName, service };
}

function certPairs(cfg: Json): { certs: CertificatePair[]; def?: CertificatePair } {
  const certs = ((cfg.tls?.certificates ?? []) as Json[]).map((c) => ({ cert: String(c.certFile), key: String(c.keyFile) }));
  const d = cfg.tls?.stores?.default?.defaultCertificate as Json | undefined;
  return d ? { certs, def: { cert: String(d.certFile), key: String(d.keyFile) } } : { certs };
}

// ---------------------------------------------------------------------------------------------
// The running stand-in

interface EntryPoint {
  name: string;
  opts: EntryPointOptions;
  net: NetServer;
  http: HttpServer;
  trusted: (ip: string) => boolean;
  info?: EntryPointInfo;
}

interface Ctx {
  opts: MiniTraefikOptions;
  mt: MiniTraefik;
  source: () => Promise<Json>;
  dialer: Dialer;
  entryPoints: EntryPoint[];
  defaults: string[];
  cache?: { key: string; compiled: Compiled };
  certCache: Map<string, CertStore>;
  seenErrors: Set<string>;
  rr: Map<string, number>;
  sockets: Set<Duplex>;
  serverName: string;
}

const HOP = ['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade'];

function event(ctx: Ctx, e: RouteEvent): void {
  ctx.mt.events.push(e);
  if (ctx.mt.events.length > 2000) ctx.mt.events.splice(0, ctx.mt.events.length - 2000);
}

function compile(ctx: Ctx, cfg: Json): Compiled {
  // Keyed by content: a caller may hand the same object back changed.
  const key = JSON.stringify(cfg);
  if (ctx.cache?.key === key) return ctx.cache.compiled;
  const errors: string[] = [];
  const http: HttpRouter[] = [];
  const tcp: TcpRouter[] = [];
  for (const [name, r] of Object.entries((cfg.http?.routers ?? {}) as Record<string, Json>)) {
    try {
      http.push(compileHttpRouter(cfg, name, r));
    } catch (err) {
      errors.push(`http router ${name}: ${(err as Error).message}`);
    }
  }
  for (const [name, r] of Object.entries((cfg.tcp?.routers ?? {}) as Record<string, Json>)) {
    try {
      tcp.push(compileTcpRouter(cfg, name, r));
    } catch (err) {
      errors.push(`tcp router ${name}: ${(err as Error).message}`);
    }
  }
  if (cfg.udp && Object.keys(cfg.udp.routers ?? {}).length > 0) errors.push('udp routers are not supported by the stand-in');
  const pairs = certPairs(cfg);
  const certKey = JSON.stringify(pairs);
  let certs = ctx.certCache.get(certKey);
  if (!certs) {
    // A certificate that cannot be loaded is reported but fails nothing (Traefik goes on without it).
    certs = new CertStore([...(ctx.opts.certificates ?? []), ...pairs.certs], ctx.opts.defaultCertificate ?? pairs.def, (m) => note(ctx, `tls: ${m}`));
    ctx.certCache.set(certKey, certs);
  }
  http.sort(byPriority);
  tcp.sort(byPriority);
  // Traefik disables a router none of whose entry points exist; that is the deployment's
  // business rather than the render's, so it is noted without failing anything.
  const known = ctx.entryPoints.map((e) => e.name);
  for (const [kind, list] of [['http', http], ['tcp', tcp]] as const) {
    for (const r of list) if (r.entryPoints && !r.entryPoints.some((e) => known.includes(e))) note(ctx, `${kind} router ${r.name}: no valid entryPoint for this router (${r.entryPoints.join(', ')}; this stand-in has ${known.join(', ')})`);
  }
  const compiled: Compiled = { http, tcp, errors, certs };
  ctx.cache = { key, compiled };
  for (const e of errors) note(ctx, e);
  return compiled;
}

/** Lists a configuration problem once in `errors`. */
function note(ctx: Ctx, e: string): void {
  if (ctx.seenErrors.has(e)) return;
  ctx.seenErrors.add(e);
  ctx.mt.errors.push(e);
}

async function current(ctx: Ctx): Promise<Compiled> {
  return compile(ctx, await ctx.source());
}

function onEntryPoint(ctx: Ctx, ep: string, eps: string[] | undefined): boolean {
  return (eps ?? ctx.defaults).includes(ep);
}

function pickServer<T>(ctx: Ctx, service: string, servers: T[]): T {
  const n = ctx.rr.get(service) ?? 0;
  ctx.rr.set(service, n + 1);
  return servers[n % servers.length]!;
}

function clientIpOf(s: { remoteAddress?: string | undefined }): string {
  return (s.remoteAddress ?? '').replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '');
}

// ---------------------------------------------------------------------------------------------
// HTTP

interface Flow {
  entryPoint: string;
  method: string;
  /** req.Host. */
  host: string;
  /** Request URI: path and query as received (percent-encoded). */
  uri: string;
  headers: Record<string, string[]>;
  clientIp: string;
  secure: boolean;
  /** A headers middleware emptied X-Forwarded-For: the proxy must not set it. */
  omitXff: boolean;
  /** Response header changes: [name, values] (values empty: remove), cookies to add. */
  responseHeaders: [string, string | undefined][];
  cookies: string[];
}

function sendText(res: ServerResponse, status: number, body: string, headers: Record<string, string | string[]> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff', ...headers }).end(body);
}

function connectionTokens(headers: Record<string, string[]>): string[] {
  return (headers.connection ?? []).flatMap((v) => v.split(',')).map((s) => s.trim().toLowerCase()).filter(Boolean);
}

/** Removes hop-by-hop headers and those the Connection header names (what a proxy must do). */
function dropHop(headers: Record<string, string[]>, keep: string[] = []): void {
  for (const k of [...connectionTokens(headers), ...HOP]) if (!keep.includes(k)) delete headers[k];
}

/** Percent-decodes a path as Go's url.URL.Path; undefined on an invalid escape. */
function decodePath(p: string): string | undefined {
  if (!p.includes('%')) return p;
  const bytes: number[] = [];
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '%') {
      const hex = p.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) return undefined;
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else bytes.push(...Buffer.from(p[i]!, 'utf8'));
  }
  return Buffer.from(bytes).toString('utf8');
}

function splitUri(uri: string): { path: string; query: string } {
  const q = uri.indexOf('?');
  return q === -1 ? { path: uri, query: '' } : { path: uri.slice(0, q), query: uri.slice(q + 1) };
}

const X_HEADERS = ['x-forwarded-proto', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-port', 'x-forwarded-server', 'x-forwarded-uri', 'x-forwarded-method', 'x-forwarded-tls-client-cert', 'x-forwarded-tls-client-cert-info', 'x-real-ip'];

/** The entry point's forwarded-headers handler (pkg/middlewares/forwardedheaders). */
function forwardedHeaders(ctx: Ctx, ep: EntryPoint, flow: Flow): void {
  const h = flow.headers;
  if (!ep.opts.forwardedHeaders?.insecure && !ep.trusted(flow.clientIp)) for (const k of X_HEADERS) delete h[k];
  if (!h['x-real-ip']?.[0]) h['x-real-ip'] = [flow.clientIp];
  const websocket = connectionTokens(h).includes('upgrade') && (h.upgrade?.[0] ?? '').toLowerCase() === 'websocket';
  if (!h['x-forwarded-proto']?.[0]) h['x-forwarded-proto'] = [websocket ? (flow.secure ? 'wss' : 'ws') : flow.secure ? 'https' : 'http'];
  if (!h['x-forwarded-port']?.[0]) {
    const port = /:(\d+)$/.exec(flow.host)?.[1];
    const proto = h['x-forwarded-proto']![0];
    h['x-forwarded-port'] = [port ?? (proto === 'https' || proto === 'wss' || flow.secure ? '443' : '80')];
  }
  if (!h['x-forwarded-host']?.[0] && flow.host !== '') h['x-forwarded-host'] = [flow.host];
  if (h['x-forwarded-for']?.length) h['x-forwarded-for'] = [h['x-forwarded-for'].join(', ')];
  h['x-forwarded-server'] = [ctx.serverName];
  dropHop(h);
}

function flatten(headers: Record<string, string[] | string | number | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : String(v);
  return out;
}

/** Sends one request to `url` (an absolute http URL) through the dialer; buffers the answer. */
function fetchVia(ctx: Ctx, url: URL, headers: OutgoingHttpHeaders): Promise<{ status: number; headers: Record<string, string[]>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const { host, port } = { host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || 80) };
    const req = httpRequest({
      method: 'GET', path: url.pathname + url.search, headers, insecureHTTPParser: true,
      createConnection: ((_o: unknown, cb: (err: Error | null, s?: Duplex) => void) => {
        ctx.dialer.dial(host, port).then((s) => cb(null, s), (err: Error) => cb(err));
        return undefined;
      }) as any,
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 502, headers: res.headersDistinct as Record<string, string[]>, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

async function forwardAuth(ctx: Ctx, fa: Json, flow: Flow, res: ServerResponse): Promise<boolean> {
  const copy: Record<string, string[]> = Object.fromEntries(Object.entries(flow.headers).map(([k, v]) => [k, [...v]]));
  dropHop(copy);
  const allowed = (fa.authRequestHeaders ?? []) as string[];
  const headers: Record<string, string[]> = {};
  if (allowed.length === 0) Object.assign(headers, copy);
  else for (const name of allowed) if (copy[name.toLowerCase()]) headers[name.toLowerCase()] = copy[name.toLowerCase()]!;
  // trustForwardHeader is false (refused otherwise): the X-Forwarded-* sent are the stand-in's own.
  headers['x-forwarded-for'] = [flow.clientIp];
  headers['x-forwarded-method'] = [flow.method];
  headers['x-forwarded-proto'] = [flow.secure ? 'https' : 'http'];
  if (flow.host !== '') headers['x-forwarded-host'] = [flow.host];
  else delete headers['x-forwarded-host'];
  headers['x-forwarded-uri'] = [flow.uri];
  const address = new URL(fa.address);
  let answer: { status: number; headers: Record<string, string[]>; body: Buffer };
  try {
    if (!isDirect(ctx, address.hostname) && ctx.opts.backend) {
      const a = await ctx.opts.backend(address.host, address.pathname + address.search, flatten(headers));
      answer = { status: a.status, headers: Object.fromEntries(Object.entries(a.headers).map(([k, v]) => [k.toLowerCase(), [v]])), body: Buffer.from(a.body) };
    } else answer = await fetchVia(ctx, address, { ...headers, host: address.host });
  } catch (err) {
    ctx.mt.authCalls.push([flow.host, 500]);
    sendText(res, 500, '', {});
    event(ctx, { entryPoint: flow.entryPoint, kind: flow.secure ? 'https' : 'http', host: flow.host, status: 500, detail: `forwardAuth: ${(err as Error).message}` });
    return true;
  }
  ctx.mt.authCalls.push([flow.host, answer.status]);
  if (answer.status < 200 || answer.status >= 300) {
    const out = { ...answer.headers };
    dropHop(out);
    delete out['content-length'];
    res.writeHead(answer.status, out).end(answer.body);
    return true;
  }
  const copyBack = (name: string) => {
    delete flow.headers[name];
    if (answer.headers[name]?.length) flow.headers[name] = [...answer.headers[name]!];
  };
  for (const n of (fa.authResponseHeaders ?? []) as string[]) copyBack(n.toLowerCase());
  if (fa.authResponseHeadersRegex) {
    const re = goRegExp(fa.authResponseHeadersRegex);
    const canon = (k: string) => k.replace(/(^|-)([a-z])/g, (_m, d: string, c: string) => d + c.toUpperCase());
    for (const k of Object.keys(flow.headers)) if (re.test(canon(k))) delete flow.headers[k];
    for (const [k, v] of Object.entries(answer.headers)) if (re.test(canon(k))) flow.headers[k] = [...v];
  }
  flow.cookies.push(...(answer.headers['set-cookie'] ?? []));
  return false;
}

function isDirect(ctx: Ctx, host: string): boolean {
  return (ctx.opts.direct ?? isDirectAddress)(host.replace(/^\[|\]$/g, ''));
}

/** Runs one middleware; true when it answered the client itself. */
async function middleware(ctx: Ctx, mw: Json, flow: Flow, res: ServerResponse): Promise<boolean> {
  if (mw.forwardAuth) return forwardAuth(ctx, mw.forwardAuth, flow, res);
  if (mw.headers) {
    for (const [k, v] of Object.entries(mw.headers.customRequestHeaders ?? {}) as [string, string][]) {
      const name = k.toLowerCase();
      if (v === '') {
        delete flow.headers[name];
        if (name === 'x-forwarded-for') flow.omitXff = true;
      } else if (name === 'host') flow.host = v;
      else flow.headers[name] = [v];
    }
    for (const [k, v] of Object.entries(mw.headers.customResponseHeaders ?? {}) as [string, string][]) flow.responseHeaders.push([k.toLowerCase(), v === '' ? undefined : v]);
    return false;
  }
  if (mw.replacePath) {
    const { path, query } = splitUri(flow.uri);
    flow.headers['x-replaced-path'] = [path];
    flow.uri = mw.replacePath.path + (query || flow.uri.includes('?') ? `?${query}` : '');
    return false;
  }
  if (mw.stripPrefix) {
    const { path, query } = splitUri(flow.uri);
    for (const prefix of (mw.stripPrefix.prefixes ?? []) as string[]) {
      if (path.startsWith(prefix)) {
        const rest = path.slice(prefix.length);
        flow.headers['x-forwarded-prefix'] = [prefix];
        flow.uri = (rest.startsWith('/') ? rest : `/${rest}`) + (flow.uri.includes('?') ? `?${query}` : '');
        break;
      }
    }
    return false;
  }
  if (mw.addPrefix) {
    flow.uri = String(mw.addPrefix.prefix) + flow.uri;
    return false;
  }
  if (mw.redirectScheme) {
    const rs = mw.redirectScheme;
    const m = /^(\[[\w:.]+\]|[\w._-]+)?(:\d+)?$/.exec(flow.host);
    const host = m?.[1] ?? flow.host;
    const currentPort = m?.[2] ?? '';
    const xfp = (flow.headers['x-forwarded-proto']?.[0] ?? '').toLowerCase();
    let scheme = flow.secure ? 'https' : 'http';
    if (xfp === 'http' || xfp === 'ws') scheme = 'http';
    else if (xfp === 'https' || xfp === 'wss') scheme = 'https';
    const oldPort = (scheme === 'http' && currentPort === ':80') || (scheme === 'https' && currentPort === ':443') ? '' : currentPort;
    const oldUrl = `${scheme}://${host}${oldPort}${flow.uri}`;
    const port = rs.port && !((rs.scheme === 'http' && String(rs.port) === '80') || (rs.scheme === 'https' && String(rs.port) === '443')) ? `:${rs.port}` : '';
    const newUrl = `${rs.scheme}://${host}${port}${flow.uri}`;
    if (newUrl === oldUrl) return false;
    const get = flow.method === 'GET';
    const status = rs.permanent ? (get ? 301 : 308) : get ? 302 : 307;
    sendText(res, status, { 301: 'Moved Permanently', 302: 'Found', 307: 'Temporary Redirect', 308: 'Permanent Redirect' }[status]!, { location: newUrl });
    return true;
  }
  throw new Error(`unsupported middleware ${JSON.stringify(mw)}`);
}

function joinPath(base: string, uri: string): string {
  if (base === '' || base === '/') return uri;
  const a = base.endsWith('/');
  const b = uri.startsWith('/');
  return a && b ? base + uri.slice(1) : !a && !b ? `${base}/${uri}` : base + uri;
}

async function proxyHttp(ctx: Ctx, ep: EntryPoint, router: HttpRouter, flow: Flow, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const lb = router.service.loadBalancer;
  const server = new URL(pickServer(ctx, router.serviceName, lb.servers as Json[]).url);
  const host = server.hostname.replace(/^\[|\]$/g, '');
  const port = Number(server.port || 80);
  const headers = flow.headers;
  dropHop(headers);
  if (!flow.omitXff) headers['x-forwarded-for'] = [[...(headers['x-forwarded-for'] ?? []), flow.clientIp].join(', ')];
  const outHeaders: OutgoingHttpHeaders = { ...headers, host: lb.passHostHeader === false ? server.host : flow.host };
  const path = joinPath(server.pathname, flow.uri);
  const base: RouteEvent = { entryPoint: ep.name, kind: flow.secure ? 'https' : 'http', router: router.name, host: flow.host, target: `${host}:${port}` };
  const finish = (status: number, bodyHeaders: Record<string, string[]>, via: RouteEvent['via']): Record<string, string[]> => {
    const out = { ...bodyHeaders };
    dropHop(out);
    for (const [k, v] of flow.responseHeaders) {
      if (v === undefined) delete out[k];
      else out[k] = [v];
    }
    if (flow.cookies.length) out['set-cookie'] = [...(out['set-cookie'] ?? []), ...flow.cookies];
    event(ctx, { ...base, status, via });
    return out;
  };
  if (!isDirect(ctx, host) && ctx.opts.backend) {
    const a = await ctx.opts.backend(server.host, path, flatten(outHeaders as Record<string, string[] | string>));
    const out = finish(a.status, Object.fromEntries(Object.entries(a.headers).map(([k, v]) => [k.toLowerCase(), [v]])), 'callback');
    delete out['content-length'];
    res.writeHead(a.status, out).end(a.body);
    return;
  }
  const via = ctx.dialer.route(host) === 'probe' ? 'probe' : 'direct';
  await new Promise<void>((resolve) => {
    // Lenient like Go's reader: busybox httpd's CGI answers end header lines with a bare LF.
    const upstream = httpRequest({
      method: flow.method, path, headers: outHeaders, insecureHTTPParser: true,
      createConnection: ((_o: unknown, cb: (err: Error | null, s?: Duplex) => void) => {
        ctx.dialer.dial(host, port).then((s) => cb(null, s), (err: Error) => cb(err));
        return undefined;
      }) as any,
    }, (up) => {
      const out = finish(up.statusCode ?? 502, up.headersDistinct as Record<string, string[]>, via);
      res.writeHead(up.statusCode ?? 502, up.statusMessage, out);
      up.pipe(res);
      up.on('end', () => resolve());
      up.on('error', () => {
        res.destroy();
        resolve();
      });
    });
    upstream.on('error', (err) => {
      if (!res.headersSent) {
        event(ctx, { ...base, status: 502, via, detail: err.message });
        sendText(res, 502, 'Bad Gateway');
      } else res.destroy();
      resolve();
    });
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
    if (hasBody) req.pipe(upstream);
    else upstream.end();
  });
}

async function serveHttp(ctx: Ctx, ep: EntryPoint, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const secure = (req.socket as TLSSocket).encrypted === true;
  const compiled = await current(ctx);
  if (compiled.errors.length > 0 && ctx.opts.strict !== false) {
    event(ctx, { entryPoint: ep.name, kind: secure ? 'https' : 'http', status: 502, detail: 'configuration errors' });
    return sendText(res, 502, `mini-traefik: configuration errors:\n${compiled.errors.join('\n')}\n`);
  }
  const raw = req.url ?? '/';
  const absolute = /^https?:\/\//i.test(raw);
  const target = absolute ? new URL(raw) : undefined;
  const headers: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(req.headersDistinct)) if (v) headers[k] = [...v];
  delete headers.host;
  const host = target ? target.host : (req.headers.host ?? '');
  const flow: Flow = {
    entryPoint: ep.name, method: req.method ?? 'GET', host, uri: target ? target.pathname + target.search : raw, headers, clientIp: clientIpOf(req.socket),
    secure, omitXff: false, responseHeaders: [], cookies: [],
  };
  forwardedHeaders(ctx, ep, flow);
  const { path, query } = splitUri(flow.uri);
  const decoded = decodePath(path);
  if (decoded === undefined) return sendText(res, 400, '400 Bad Request');
  const input: HttpMatchInput = { host, path: decoded, query, method: flow.method, headers: flow.headers, clientIp: flow.clientIp };
  const router = compiled.http.find((r) => r.tls === secure && onEntryPoint(ctx, ep.name, r.entryPoints) && r.match(input));
  if (!router) {
    event(ctx, { entryPoint: ep.name, kind: secure ? 'https' : 'http', host, status: 404 });
    return sendText(res, 404, '404 page not found\n');
  }
  for (const [, mw] of router.middlewares) {
    if (await middleware(ctx, mw, flow, res)) {
      event(ctx, { entryPoint: ep.name, kind: secure ? 'https' : 'http', router: router.name, host, status: res.statusCode });
      return;
    }
  }
  await proxyHttp(ctx, ep, router, flow, req, res);
}

// ---------------------------------------------------------------------------------------------
// TCP

/** Reads a connection's first bytes until its kind is known; the bytes stay for whoever takes it. */
function peekHello(socket: Socket): Promise<{ hello: ClientHello; peeked: Buffer } | undefined> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const done = () => {
      socket.removeListener('data', onData);
      socket.removeListener('end', onEnd);
      socket.removeListener('close', onEnd);
    };
    const onData = (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      let hello: ClientHello | undefined;
      try {
        hello = parseClientHello(buf);
        if (!hello && buf.length > 64 * 1024) throw new Error('ClientHello too large');
      } catch (err) {
        done();
        reject(err);
        return;
      }
      if (!hello) return;
      done();
      socket.pause();
      resolve({ hello, peeked: buf });
    };
    const onEnd = () => {
      done();
      resolve(undefined);
    };
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
  });
}

function track(ctx: Ctx, s: Duplex): void {
  ctx.sockets.add(s);
  s.once('close', () => ctx.sockets.delete(s));
}

/** Pipes `client` and a new stream to the router's service both ways, half-closes included. */
async function pipeTcp(ctx: Ctx, ep: EntryPoint, client: Duplex, router: TcpRouter, peeked: Buffer, kind: RouteEvent['kind'], host: string): Promise<void> {
  const servers = router.service.loadBalancer.servers as Json[];
  const { host: h, port } = splitHostPort(String(pickServer(ctx, router.serviceName, servers).address));
  const via = ctx.dialer.route(h) === 'probe' ? 'probe' : 'direct';
  const e: RouteEvent = { entryPoint: ep.name, kind, router: router.name, host, via, target: `${h}:${port}` };
  event(ctx, e);
  let upstream: Duplex;
  try {
    upstream = await ctx.dialer.dial(h, port);
  } catch (err) {
    e.detail = (err as Error).message;
    client.destroy();
    return;
  }
  track(ctx, upstream);
  if (client.destroyed) {
    upstream.destroy();
    return;
  }
  if (peeked.length > 0) upstream.write(peeked);
  client.pipe(upstream);
  upstream.pipe(client);
  client.on('error', () => upstream.destroy());
  upstream.on('error', (err: Error) => {
    e.detail = err.message;
    client.destroy();
  });
  client.once('close', () => upstream.destroy());
}

/** Terminates TLS on `socket` (whose peeked bytes are put back) with the certificate for `serverName`. */
function terminate(socket: Socket, peeked: Buffer, context: SecureContext, alpn?: string[]): TLSSocket {
  socket.unshift(peeked);
  const tls = new TLSSocket(socket, { isServer: true, secureContext: context, ...(alpn ? { ALPNProtocols: alpn } : {}) });
  tls.on('error', () => tls.destroy());
  return tls;
}

async function routeConnection(ctx: Ctx, ep: EntryPoint, socket: Socket): Promise<void> {
  const compiled = await current(ctx);
  // With configuration errors (strict), HTTP answers 502 naming them; anything else is closed.
  const broken = compiled.errors.length > 0 && ctx.opts.strict !== false;
  const refuse = () => {
    event(ctx, { entryPoint: ep.name, kind: 'refused', detail: 'configuration errors' });
    socket.destroy();
  };
  const clientIp = clientIpOf(socket);
  const tcpPlain = compiled.tcp.filter((r) => !r.tls && onEntryPoint(ctx, ep.name, r.entryPoints));
  const tcpTls = compiled.tcp.filter((r) => r.tls && onEntryPoint(ctx, ep.name, r.entryPoints));
  const https = compiled.http.filter((r) => r.tls && onEntryPoint(ctx, ep.name, r.entryPoints));
  // Only non-TLS TCP routers: route at once, the client may wait for the server to speak first.
  if (!broken && tcpPlain.length > 0 && tcpTls.length === 0 && https.length === 0) {
    const r = tcpPlain.find((x) => x.match({ serverName: '', clientIp, alpn: [] }));
    if (r) return pipeTcp(ctx, ep, socket, r, Buffer.alloc(0), 'tcp', '');
  }
  const first = await peekHello(socket);
  if (!first) {
    socket.destroy();
    return;
  }
  const { hello, peeked } = first;
  if (!hello.isTLS) {
    const r = broken ? undefined : tcpPlain.find((x) => x.match({ serverName: '', clientIp, alpn: [] }));
    if (r) return pipeTcp(ctx, ep, socket, r, peeked, 'tcp', '');
    socket.unshift(peeked);
    ep.http.emit('connection', socket);
    process.nextTick(() => socket.resume());
    return;
  }
  if (broken) return refuse();
  const conn: TcpMatchInput = { serverName: hello.serverName, clientIp, alpn: hello.alpn };
  const sni = hello.serverName;
  const certName = sni || (socket.localAddress ?? '').replace(/^::ffff:/, '');
  const serveHttps = () => {
    const context = compiled.certs.contextFor(certName);
    if (!context) {
      event(ctx, { entryPoint: ep.name, kind: 'refused', host: sni, detail: 'no certificate' });
      socket.destroy();
      return;
    }
    const tls = terminate(socket, peeked, context, ['http/1.1']);
    track(ctx, tls);
    tls.once('secure', () => ep.http.emit('connection', tls));
  };
  const httpsSpecific = sni !== '' && https.some((r) => r.domains.some((d) => d === sni || d.replace(/\.$/, '') === sni));
  const httpsCatchAll = https.some((r) => r.domains.length === 0);
  if (httpsSpecific) return serveHttps();
  const t = tcpTls.find((r) => r.match(conn));
  const viaTcp = (r: TcpRouter): Promise<void> | void => {
    if (r.tls!.passthrough) return pipeTcp(ctx, ep, socket, r, peeked, 'passthrough', sni);
    const context = compiled.certs.contextFor(certName);
    if (!context) {
      event(ctx, { entryPoint: ep.name, kind: 'refused', router: r.name, host: sni, detail: 'no certificate' });
      socket.destroy();
      return;
    }
    const tls = terminate(socket, peeked, context);
    track(ctx, tls);
    return pipeTcp(ctx, ep, tls, r, Buffer.alloc(0), 'terminate', sni);
  };
  if (t && !t.catchAll) return viaTcp(t);
  if (httpsCatchAll) return serveHttps();
  if (t) return viaTcp(t);
  // Traefik's HTTPS fallback: the default certificate, then 404 (or 400 for what is not HTTP).
  event(ctx, { entryPoint: ep.name, kind: 'refused', host: sni, detail: 'no TCP router for this SNI: HTTPS fallback' });
  serveHttps();
}

// ---------------------------------------------------------------------------------------------

function parseListen(address: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(address) ?? /^([^:]*):(\d+)$/.exec(address);
  if (!m) throw new Error(`entry point address ${JSON.stringify(address)} is not host:port`);
  return { host: m[1] || '0.0.0.0', port: Number(m[2]) };
}

/** Starts the stand-in: every entry point listening, ready to route. */
export async function startMiniTraefik(opts: MiniTraefikOptions): Promise<MiniTraefik> {
  const source = opts.config ?? (opts.configFile ? ((s) => s.load)(fileConfigSource(opts.configFile)) : undefined);
  if (!source) throw new Error('mini-traefik: give `config` or `configFile`');
  const defs = opts.entryPoints ?? { [opts.entryPoint ?? 'web']: { address: opts.address ?? '127.0.0.1:0' } };
  const names = Object.keys(defs);
  if (names.length === 0) throw new Error('mini-traefik: no entry point');
  const marked = names.filter((n) => defs[n]!.asDefault);
  const mt: MiniTraefik = { url: '', port: 0, entryPoints: {}, authCalls: [], events: [], errors: [], close: async () => undefined };
  const ctx: Ctx = {
    opts, mt, source, entryPoints: [], defaults: marked.length > 0 ? marked : names,
    dialer: createDialer({ ...(opts.docker ? { docker: opts.docker } : {}), ...(opts.probe ? { probe: opts.probe } : {}), ...(opts.direct ? { direct: opts.direct } : {}) }),
    certCache: new Map(), seenErrors: new Set(), rr: new Map(), sockets: new Set(), serverName: opts.serverName ?? osHostname(),
  };
  const closeAll = async () => {
    const closed = Promise.all(ctx.entryPoints.map((ep) => new Promise<void>((r) => ep.net.close(() => r()))));
    for (const s of ctx.sockets) s.destroy();
    ctx.dialer.closeAll();
    await closed;
  };
  try {
    for (const name of names) {
      const epOpts = defs[name]!;
      const trusted = epOpts.forwardedHeaders?.trustedIPs?.length ? ipRanges(epOpts.forwardedHeaders.trustedIPs) : () => false;
      const http = createHttpServer();
      const net = createNetServer({ allowHalfOpen: true });
      const ep: EntryPoint = { name, opts: epOpts, net, http, trusted };
      http.on('request', (req: IncomingMessage, res: ServerResponse) => {
        serveHttp(ctx, ep, req, res).catch((err: unknown) => {
          event(ctx, { entryPoint: name, kind: 'http', status: 502, detail: (err as Error).message });
          sendText(res, 502, `mini-traefik: ${(err as Error).message}\n`);
        });
      });
      net.on('connection', (socket: Socket) => {
        track(ctx, socket);
        socket.on('error', () => socket.destroy());
        routeConnection(ctx, ep, socket).catch((err: unknown) => {
          event(ctx, { entryPoint: name, kind: 'refused', detail: (err as Error).message });
          socket.destroy();
        });
      });
      const { host, port } = parseListen(epOpts.address ?? '127.0.0.1:0');
      await new Promise<void>((resolve, reject) => {
        net.once('error', reject);
        net.listen(port, host, () => {
          net.removeListener('error', reject);
          resolve();
        });
      });
      const a = net.address() as AddressInfo;
      const shown = a.family === 'IPv6' ? `[${a.address}]` : a.address;
      const urlHost = a.address === '0.0.0.0' ? '127.0.0.1' : a.address === '::' ? '[::1]' : shown;
      ep.info = { name, host: a.address, port: a.port, address: `${shown}:${a.port}`, url: `http://${urlHost}:${a.port}` };
      mt.entryPoints[name] = ep.info;
      ctx.entryPoints.push(ep);
    }
  } catch (err) {
    await closeAll();
    throw err;
  }
  const first = mt.entryPoints[names[0]!]!;
  mt.url = first.url;
  mt.port = first.port;
  mt.close = closeAll;
  return mt;
}
