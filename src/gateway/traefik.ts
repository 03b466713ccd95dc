/**
 * Traefik v3 dynamic configuration rendered from the set of live routes; the same document goes
 * to the file provider and the HTTP provider endpoint. Pure and deterministic: the same routes in
 * any order give the same bytes (every object is built with its keys in sorted order). Every value is checked against a strict grammar
 * first (`traefik-grammar.ts`); a bad value throws rather than being rendered.
 *
 * Always present: the `poseidon` router (Poseidon itself), the forward-auth, header-strip and
 * page middlewares, and a lowest-priority catch-all router sending every instance hostname
 * without a route of its own to Poseidon's page. With TLS: routers on the TLS entry points, and
 * the plain entry points redirect to HTTPS.
 */
import { assertValidRoute, checkBackend, checkEdgeSecret, checkHostname, checkOptions, invalid, regexDomain } from './traefik-grammar.ts';

export { assertValidRoute } from './traefik-grammar.ts';

/** One exposed port of one instance, as the gateway should route it. */
export interface GatewayRoute {
  /** 24 lowercase hex chars. */
  instance: string;
  /** Challenge id, a DNS label. */
  challenge: string;
  /** Exposed port name, a DNS label. */
  name: string;
  protocol: 'http' | 'tcp';
  /** Public hostname, `<prefix>[-<name>].<challenge>.<baseDomain>`. */
  hostname: string;
  /** `host:port` the gateway dials, e.g. `poseidon-<instance>:8080`. */
  backend: string;
  /**
   * The ingress of the worker host that runs it, when that is not the edge itself: the edge
   * routes there (HTTP to `http`, TLS passed through to `tls`) instead of to `backend`.
   */
  via?: { http: string; tls: string };
}

/** TLS termination at Traefik. */
export interface GatewayTls {
  /** Entry points that terminate TLS (usually `["websecure"]`). */
  entryPoints: string[];
  /** ACME resolver name configured in Traefik's static configuration. */
  certResolver?: string;
  /** With a resolver: `wildcard` (default) asks one `*.<challenge>.<base>` certificate per challenge (DNS-01); `host` one per hostname. */
  domains?: 'wildcard' | 'host';
  /** A certificate file pair as Traefik sees it (mutually exclusive with certResolver). */
  certFile?: string;
  keyFile?: string;
}

/** Deployment-wide rendering options. */
export interface GatewayOptions {
  /** Base domain every instance hostname lives under, e.g. `localhost`. */
  baseDomain: string;
  /** Plain-HTTP entry points (usually `["web"]`). */
  entryPoints: string[];
  /** Where Traefik reaches Poseidon itself, e.g. `http://poseidon:8080`. */
  poseidonUrl: string;
  /** Extra middlewares appended to every instance router after Poseidon's own. */
  middlewares?: string[];
  tls?: GatewayTls;
  /** What the edge adds on every request it sends to a worker's ingress (required with `via` routes). */
  edgeSecret?: string;
}

export interface TraefikRouterTls {
  certResolver?: string;
  domains?: { main: string; sans?: string[] }[];
}

/** HTTP router, the subset of Traefik's `httpRouter` that Poseidon emits. */
export interface TraefikHttpRouter {
  entryPoints?: string[];
  middlewares?: string[];
  priority?: number;
  rule: string;
  service: string;
  tls?: TraefikRouterTls;
}

/** HTTP service; Poseidon only emits the `loadBalancer` kind. */
export interface TraefikHttpService {
  loadBalancer: { servers: { url: string }[]; passHostHeader?: boolean };
}

export type TraefikMiddleware =
  | { forwardAuth: { address: string; authRequestHeaders: string[]; trustForwardHeader: boolean } }
  | { headers: { customRequestHeaders: Record<string, string> } }
  | { replacePath: { path: string } }
  | { redirectScheme: { permanent: boolean; scheme: string } };

export interface TraefikTcpRouter {
  entryPoints: string[];
  rule: string;
  service: string;
  tls: TraefikRouterTls & { passthrough?: boolean };
}

export interface TraefikTcpService {
  loadBalancer: { servers: { address: string }[] };
}

/** The dynamic configuration document (validates against the v3 file-provider schema). */
export interface TraefikDynamicConfig {
  http: {
    middlewares: Record<string, TraefikMiddleware>;
    routers: Record<string, TraefikHttpRouter>;
    services: Record<string, TraefikHttpService>;
  };
  tcp?: { routers: Record<string, TraefikTcpRouter>; services: Record<string, TraefikTcpService> };
  tls?: { certificates: { certFile: string; keyFile: string }[] };
}

/** Name of the fixed router/service that keeps the file non-empty and exposes Poseidon itself. */
export const POSEIDON_ROUTER = 'poseidon';
export const CATCHALL_ROUTER = 'poseidon-catchall';
export const REDIRECT_ROUTER = 'poseidon-redirect';
export const AUTHZ_MIDDLEWARE = 'poseidon-authz';
export const STRIP_MIDDLEWARE = 'poseidon-strip';
export const PAGE_MIDDLEWARE = 'poseidon-page';
export const HTTPS_MIDDLEWARE = 'poseidon-https';
/** Sets the edge secret on requests to a worker's ingress (overwriting whatever a client sent). */
export const EDGE_MIDDLEWARE = 'poseidon-edge';
/** The header carrying the edge secret from the edge to a worker's ingress. */
export const EDGE_HEADER = 'X-Poseidon-Edge';
/** Poseidon paths Traefik is pointed at. */
export const AUTHZ_PATH = '/v1/authz';
export const PAGE_PATH = '/v1/gateway/page';
/** Headers forward-auth passes to Poseidon: what identifies the player, and Accept to pick the page format. */
const AUTH_REQUEST_HEADERS = ['Accept', 'Authorization', 'Cookie', 'X-Poseidon-Access'];
/** The header form of an access token (see `authz.ts`), as Traefik's header middleware names it. */
const ACCESS_HEADER_NAME = 'X-Poseidon-Access';

/** Router (and service) name of one instance port: `i-<instance>-<name>`. */
export function routerName(route: Pick<GatewayRoute, 'instance' | 'name'>): string {
  return `i-${route.instance}-${route.name}`;
}

/** Per-render state; `newDraft` makes one. */
export interface Draft {
  opts: GatewayOptions;
  /** Filled in sorted order (instance routes are sorted first; `i-…` sorts before `poseidon…`). */
  routers: Record<string, TraefikHttpRouter>;
  services: Record<string, TraefikHttpService>;
  tcpRouters: Record<string, TraefikTcpRouter>;
  tcpServices: Record<string, TraefikTcpService>;
  hosts: Set<string>;
  /** Shared by every router of the render (the output is read-only): entry points, middlewares, TLS per zone. */
  entryPoints: string[];
  middlewares: string[];
  /** The chain of routes through a worker's ingress: the same, plus the edge secret. */
  viaMiddlewares: string[];
  zoneTls: Map<string, TraefikRouterTls>;
}

export function claimHost(draft: Draft, hostname: string): void {
  if (draft.hosts.has(hostname)) throw invalid('duplicate hostname', hostname);
  draft.hosts.add(hostname);
}

/** TLS section of a router for `hostname` (of `challenge`, when an instance's); one object per zone. */
function routerTls(draft: Draft, hostname: string, challenge?: string, perHostAllowed = true): TraefikRouterTls | undefined {
  const tls = draft.opts.tls;
  if (!tls) return undefined;
  if (!tls.certResolver) return {};
  if (challenge === undefined || (tls.domains === 'host' && perHostAllowed)) return { certResolver: tls.certResolver, domains: [{ main: hostname }] };
  const zone = hostname.slice(hostname.indexOf('.') + 1);
  let shared = draft.zoneTls.get(zone);
  if (!shared) {
    shared = { certResolver: tls.certResolver, domains: [{ main: zone, sans: [`*.${zone}`] }] };
    draft.zoneTls.set(zone, shared);
  }
  return shared;
}

/** The router and service of one instance port (objects shared by the draft, such as its entry points, are reused: read-only). */
export interface RouteObjects {
  protocol: 'http' | 'tcp';
  router: TraefikHttpRouter | TraefikTcpRouter;
  service: TraefikHttpService | TraefikTcpService;
}

/** Router and service of an HTTP route. */
function httpRoute(draft: Draft, name: string, route: GatewayRoute): RouteObjects {
  const middlewares = route.via ? draft.viaMiddlewares : draft.middlewares;
  const router: TraefikHttpRouter = { entryPoints: draft.entryPoints, middlewares, rule: `Host(\`${route.hostname}\`)`, service: name };
  const tls = routerTls(draft, route.hostname, route.challenge);
  if (tls) router.tls = tls;
  // Through a worker's ingress, the Host header travels on: the ingress routes by it.
  const url = route.via ? `http://${route.via.http}` : `http://${route.backend}`;
  return { protocol: 'http', router, service: { loadBalancer: { passHostHeader: true, servers: [{ url }] } } };
}

/**
 * TCP over TLS, routed by SNI: the edge terminates TLS (`openssl s_client -servername`,
 * `ncat --ssl`), or, for an instance on another host, passes the TLS connection through to that
 * worker's ingress, which terminates it.
 */
function tcpRoute(draft: Draft, name: string, route: GatewayRoute): RouteObjects {
  const rule = `HostSNI(\`${route.hostname}\`)`;
  if (route.via) {
    return {
      protocol: 'tcp',
      router: { entryPoints: draft.entryPoints, rule, service: name, tls: { passthrough: true } },
      service: { loadBalancer: { servers: [{ address: route.via.tls }] } },
    };
  }
  // Always the zone's wildcard certificate: a per-host certificate would publish the hostname in
  // Certificate Transparency logs, and for TCP the unguessable hostname is the only gate.
  return {
    protocol: 'tcp',
    router: { entryPoints: draft.entryPoints, rule, service: name, tls: routerTls(draft, route.hostname, route.challenge, false) ?? {} },
    service: { loadBalancer: { servers: [{ address: route.backend }] } },
  };
}

/** The router and service of one (already validated) instance route, `name` being its router name. */
export function routeObjects(draft: Draft, name: string, route: GatewayRoute): RouteObjects {
  return route.protocol === 'http' ? httpRoute(draft, name, route) : tcpRoute(draft, name, route);
}

/** The routers and service of Poseidon itself (added after the instance ones: their names sort last). */
export function renderFixedRouters(draft: Draft, poseidonHost: string): void {
  const { opts } = draft;
  const base = regexDomain(opts.baseDomain);
  const poseidon: TraefikHttpRouter = { entryPoints: draft.entryPoints, rule: `Host(\`${poseidonHost}\`)`, service: POSEIDON_ROUTER };
  const poseidonTls = routerTls(draft, poseidonHost);
  if (poseidonTls) poseidon.tls = poseidonTls;
  const catchAll: TraefikHttpRouter = {
    entryPoints: draft.entryPoints, middlewares: [PAGE_MIDDLEWARE], priority: 1,
    rule: `HostRegexp(\`^(?i)[0-9a-f]{16}(-[a-z0-9-]+)?\\.[a-z0-9-]+\\.${base}$\`)`, service: POSEIDON_ROUTER,
  };
  // No certificate request from a regexp: the catch-all uses what the other routers obtained.
  if (opts.tls) catchAll.tls = {};
  draft.routers[POSEIDON_ROUTER] = poseidon;
  draft.routers[CATCHALL_ROUTER] = catchAll;
  if (opts.tls) {
    draft.routers[REDIRECT_ROUTER] = {
      entryPoints: [...opts.entryPoints], middlewares: [HTTPS_MIDDLEWARE], priority: 1,
      rule: `HostRegexp(\`^(?i)(.+\\.)?${base}$\`)`, service: POSEIDON_ROUTER,
    };
  }
  draft.services[POSEIDON_ROUTER] = { loadBalancer: { passHostHeader: true, servers: [{ url: opts.poseidonUrl }] } };
}

/** Poseidon's middlewares, in sorted order. */
export function renderMiddlewares(opts: GatewayOptions, via: boolean): Record<string, TraefikMiddleware> {
  const m: Record<string, TraefikMiddleware> = {
    [AUTHZ_MIDDLEWARE]: { forwardAuth: { address: `${opts.poseidonUrl.replace(/\/+$/, '')}${AUTHZ_PATH}`, authRequestHeaders: [...AUTH_REQUEST_HEADERS], trustForwardHeader: false } },
  };
  if (via && opts.edgeSecret) m[EDGE_MIDDLEWARE] = { headers: { customRequestHeaders: { [EDGE_HEADER]: opts.edgeSecret } } };
  if (opts.tls) m[HTTPS_MIDDLEWARE] = { redirectScheme: { permanent: true, scheme: 'https' } };
  m[PAGE_MIDDLEWARE] = { replacePath: { path: PAGE_PATH } };
  // Traefik removes a request header set to the empty string: tokens never reach a backend.
  m[STRIP_MIDDLEWARE] = { headers: { customRequestHeaders: { [ACCESS_HEADER_NAME]: '' } } };
  return m;
}

/** Validates every route and pairs it with its router name, sorted by name (duplicates adjacent). */
function namedRoutes(routes: readonly GatewayRoute[], baseDomain: string): [string, GatewayRoute][] {
  const byName = new Map<string, GatewayRoute>();
  const names: string[] = [];
  for (const r of routes) {
    assertValidRoute(r, baseDomain);
    const name = routerName(r);
    if (byName.has(name)) throw invalid('duplicate router', name);
    byName.set(name, r);
    names.push(name);
  }
  // The default sort compares strings natively (no comparator callback): names are ASCII.
  return names.sort().map((n) => [n, byName.get(n) as GatewayRoute]);
}

/**
 * Renders the whole dynamic configuration for `routes` (see the module comment for what is
 * always there). Routers, services and middlewares are in name order; `tcp` appears only with
 * TCP routes, `tls.certificates` only with a certificate file. Throws (see `assertValidRoute`)
 * on any invalid route or option, on two routes with the same router name, and on two routes
 * with the same hostname.
 */
export function renderTraefikConfig(routes: readonly GatewayRoute[], opts: GatewayOptions): TraefikDynamicConfig {
  const via = routes.some((r) => r.via && r.protocol === 'http');
  const draft = newDraft(opts, via);
  for (const [name, route] of namedRoutes(routes, opts.baseDomain)) {
    claimHost(draft, route.hostname);
    const { protocol, router, service } = routeObjects(draft, name, route);
    if (protocol === 'http') {
      draft.routers[name] = router as TraefikHttpRouter;
      draft.services[name] = service as TraefikHttpService;
    } else {
      draft.tcpRouters[name] = router as TraefikTcpRouter;
      draft.tcpServices[name] = service as TraefikTcpService;
    }
  }
  renderFixedRouters(draft, poseidonHost(opts));
  return assemble(draft, via);
}

/** Poseidon's own hostname. */
export function poseidonHost(opts: GatewayOptions): string {
  return `${POSEIDON_ROUTER}.${opts.baseDomain}`;
}

/**
 * A draft for one render, Poseidon's hostname claimed; checks the options (and the edge secret,
 * when `via`: some HTTP route goes through a worker's ingress). Throws on a bad option.
 */
export function newDraft(opts: GatewayOptions, via: boolean): Draft {
  checkOptions(opts);
  if (via) checkEdgeSecret(opts.edgeSecret ?? '');
  const middlewares = [AUTHZ_MIDDLEWARE, STRIP_MIDDLEWARE, ...(opts.middlewares ?? [])];
  const draft: Draft = {
    opts, routers: {}, services: {}, tcpRouters: {}, tcpServices: {}, hosts: new Set(), zoneTls: new Map(),
    entryPoints: [...(opts.tls ? opts.tls.entryPoints : opts.entryPoints)],
    middlewares, viaMiddlewares: [...middlewares, EDGE_MIDDLEWARE],
  };
  claimHost(draft, poseidonHost(opts));
  return draft;
}

/** The document from a filled draft: `tcp` only with TCP routers, `tls.certificates` only with a certificate file. */
export function assemble(draft: Draft, via: boolean): TraefikDynamicConfig {
  const { opts } = draft;
  const cfg: TraefikDynamicConfig = { http: { middlewares: renderMiddlewares(opts, via), routers: draft.routers, services: draft.services } };
  if (Object.keys(draft.tcpRouters).length > 0) cfg.tcp = { routers: draft.tcpRouters, services: draft.tcpServices };
  if (opts.tls?.certFile && opts.tls.keyFile) cfg.tls = { certificates: [{ certFile: opts.tls.certFile, keyFile: opts.tls.keyFile }] };
  return cfg;
}

export const TRAEFIK_FILE_HEADER = '# Generated by Poseidon; do not edit. Rewritten on every route change.\n' +
  '# Written as JSON, which is YAML (Traefik reads it as such); GET /v1/traefik/config serves the same document.\n';

/**
 * The file provider's content: a fixed comment header, then the configuration as indented JSON
 * (a YAML 1.2 document; `key": value` with a space, so YAML 1.1 readers take it too) and a
 * trailing newline. JSON.stringify keeps the renderer's key order, which is sorted at every
 * level, so the bytes are stable. Chosen over a YAML emitter for speed: 10,000 instances
 * serialise in about 20 ms here, against ~700 ms with the `yaml` package.
 */
export function serializeTraefikConfig(cfg: TraefikDynamicConfig): string {
  return `${TRAEFIK_FILE_HEADER}${JSON.stringify(cfg, null, 2)}\n`;
}

/** The JSON body of a file written by {@link serializeTraefikConfig} (its comment lines removed). */
export function traefikJsonOf(fileText: string): string {
  return fileText.slice(fileText.indexOf('{'));
}

/** One route on a worker host's ingress: the hostname the edge sends, and the container it reaches. */
export interface IngressRoute {
  instance: string;
  name: string;
  protocol: 'http' | 'tcp';
  hostname: string;
  /** `poseidon-<id>:<port>` on the instance network the ingress is joined to. */
  backend: string;
}

export interface IngressOptions {
  /** Required on every HTTP request (the edge sets it; nothing else knows it). */
  edgeSecret: string;
  /**
   * Addresses (IPs or CIDRs) the edge connects from: every router also requires `ClientIP` in
   * them. TLS passed through by the edge carries no header, so for TCP routes this is the gate.
   */
  edgeSources?: readonly string[];
  /** The ingress entry points: `web` for HTTP from the edge, `websecure` for TLS passed through. */
  httpEntryPoint: string;
  tlsEntryPoint: string;
}

/** Removes the edge secret before a request reaches the container. */
export const EDGE_STRIP_MIDDLEWARE = 'poseidon-edge-strip';

/**
 * The dynamic configuration of a worker host's ingress: per HTTP port a router
 * `Host(h) && Header(X-Poseidon-Edge, <secret>)` (a request without what only the edge adds
 * matches nothing: 404), the secret stripped before the container; per TCP port a `HostSNI`
 * router terminating the TLS the edge passed through. With `edgeSources`, every router also
 * requires the connection to come from the edge (`ClientIP`): the only gate TCP can have.
 * Pure and deterministic, like the edge's.
 */
export function renderIngressConfig(routes: readonly IngressRoute[], opts: IngressOptions): TraefikDynamicConfig {
  checkEdgeSecret(opts.edgeSecret);
  const routers: Record<string, TraefikHttpRouter> = {};
  const services: Record<string, TraefikHttpService> = {};
  const tcpRouters: Record<string, TraefikTcpRouter> = {};
  const tcpServices: Record<string, TraefikTcpService> = {};
  const sorted = [...routes].sort((a, b) => (routerName(a) < routerName(b) ? -1 : 1));
  for (const src of opts.edgeSources ?? []) if (!CIDR.test(src)) throw invalid('edge source', src);
  const sources = opts.edgeSources?.length ? opts.edgeSources.map((c) => `ClientIP(\`${c}\`)`).join(' || ') : '';
  const fromEdge = sources ? ` && (${sources})` : '';
  for (const r of sorted) {
    if (!INSTANCE_ID.test(r.instance)) throw invalid('instance', r.instance);
    checkHostname('hostname', r.hostname);
    checkBackend(r.backend);
    const name = routerName(r);
    if (r.protocol === 'http') {
      routers[name] = { entryPoints: [opts.httpEntryPoint], middlewares: [EDGE_STRIP_MIDDLEWARE], rule: `Host(\`${r.hostname}\`) && Header(\`${EDGE_HEADER}\`, \`${opts.edgeSecret}\`)${fromEdge}`, service: name };
      services[name] = { loadBalancer: { passHostHeader: true, servers: [{ url: `http://${r.backend}` }] } };
    } else {
      tcpRouters[name] = { entryPoints: [opts.tlsEntryPoint], rule: `HostSNI(\`${r.hostname}\`)${fromEdge}`, service: name, tls: {} };
      tcpServices[name] = { loadBalancer: { servers: [{ address: r.backend }] } };
    }
  }
  const cfg: TraefikDynamicConfig = {
    http: { middlewares: { [EDGE_STRIP_MIDDLEWARE]: { headers: { customRequestHeaders: { [EDGE_HEADER]: '' } } } }, routers, services },
  };
  if (Object.keys(tcpRouters).length > 0) cfg.tcp = { routers: tcpRouters, services: tcpServices };
  return cfg;
}

const INSTANCE_ID = /^[0-9a-f]{24}$/;
const CIDR = /^(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?:\/[0-9]{1,2})?$|^[0-9a-f:]+(?:\/[0-9]{1,3})?$/;
