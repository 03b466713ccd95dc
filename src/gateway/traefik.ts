/**
 * Traefik v3 dynamic configuration rendered from the set of live routes; the same document goes
 * to the file provider (YAML) and the HTTP provider endpoint (JSON). Pure and deterministic: the
 * same routes in any order give the same bytes. Every value is checked against a strict grammar
 * first (`traefik-grammar.ts`); a bad value throws rather than being rendered.
 *
 * Always present: the `poseidon` router (Poseidon itself), the forward-auth, header-strip and
 * page middlewares, and a lowest-priority catch-all router sending every instance hostname
 * without a route of its own to Poseidon's page. With TLS: routers on the TLS entry points, and
 * the plain entry points redirect to HTTPS.
 */
import { emitYaml } from './yaml.ts';
import { assertValidRoute, checkOptions, invalid, regexDomain } from './traefik-grammar.ts';
import { ACCESS_HEADER } from './authz.ts';

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
  | { forwardAuth: { address: string; trustForwardHeader: boolean; authRequestHeaders: string[] } }
  | { headers: { customRequestHeaders: Record<string, string> } }
  | { replacePath: { path: string } }
  | { redirectScheme: { scheme: string; permanent: boolean } };

export interface TraefikTcpRouter {
  entryPoints: string[];
  rule: string;
  service: string;
  tls: TraefikRouterTls;
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
/** Poseidon paths Traefik is pointed at. */
export const AUTHZ_PATH = '/v1/authz';
export const PAGE_PATH = '/v1/gateway/page';
/** Headers forward-auth passes to Poseidon: what identifies the player, and Accept to pick the page format. */
const AUTH_REQUEST_HEADERS = ['Accept', 'Authorization', 'Cookie', 'X-Poseidon-Access'];

/** Router (and service) name of one instance port: `i-<instance>-<name>`. */
export function routerName(route: Pick<GatewayRoute, 'instance' | 'name'>): string {
  return `i-${route.instance}-${route.name}`;
}

interface Draft {
  opts: GatewayOptions;
  routers: Map<string, TraefikHttpRouter>;
  services: Map<string, TraefikHttpService>;
  tcpRouters: Map<string, TraefikTcpRouter>;
  tcpServices: Map<string, TraefikTcpService>;
  hosts: Set<string>;
}

function claimHost(draft: Draft, hostname: string): void {
  if (draft.hosts.has(hostname)) throw invalid('duplicate hostname', hostname);
  draft.hosts.add(hostname);
}

/** TLS section of a router for `hostname` (of `challenge`, when an instance's). */
function routerTls(tls: GatewayTls, hostname: string, challenge?: string): TraefikRouterTls {
  if (!tls.certResolver) return {};
  if (challenge === undefined || tls.domains === 'host') return { certResolver: tls.certResolver, domains: [{ main: hostname }] };
  const zone = hostname.slice(hostname.indexOf('.') + 1);
  return { certResolver: tls.certResolver, domains: [{ main: zone, sans: [`*.${zone}`] }] };
}

function addHttp(draft: Draft, name: string, router: Omit<TraefikHttpRouter, 'entryPoints' | 'tls'>, tlsFor?: [string, string?]): void {
  if (draft.routers.has(name)) throw invalid('duplicate router', name);
  const { tls, entryPoints } = draft.opts;
  const full: TraefikHttpRouter = { entryPoints: [...(tls ? tls.entryPoints : entryPoints)], ...router };
  if (tls && tlsFor) full.tls = routerTls(tls, ...tlsFor);
  else if (tls) full.tls = {};
  draft.routers.set(name, full);
}

function renderHttpRoute(draft: Draft, route: GatewayRoute): void {
  const name = routerName(route);
  const middlewares = [AUTHZ_MIDDLEWARE, STRIP_MIDDLEWARE, ...(draft.opts.middlewares ?? [])];
  addHttp(draft, name, { middlewares, rule: `Host(\`${route.hostname}\`)`, service: name }, [route.hostname, route.challenge]);
  draft.services.set(name, { loadBalancer: { servers: [{ url: `http://${route.backend}` }], passHostHeader: true } });
}

/** TCP over TLS, routed by SNI; Traefik terminates TLS (`openssl s_client -servername`, `ncat --ssl`). */
function renderTcpRoute(draft: Draft, route: GatewayRoute): void {
  const name = routerName(route);
  if (draft.tcpRouters.has(name)) throw invalid('duplicate router', name);
  const { tls, entryPoints } = draft.opts;
  draft.tcpRouters.set(name, {
    entryPoints: [...(tls ? tls.entryPoints : entryPoints)],
    rule: `HostSNI(\`${route.hostname}\`)`,
    service: name,
    tls: tls ? routerTls(tls, route.hostname, route.challenge) : {},
  });
  draft.tcpServices.set(name, { loadBalancer: { servers: [{ address: route.backend }] } });
}

/** Middlewares and routers that do not depend on the routes. */
function renderFixed(draft: Draft): Record<string, TraefikMiddleware> {
  const { opts } = draft;
  const base = regexDomain(opts.baseDomain);
  const poseidonHost = `${POSEIDON_ROUTER}.${opts.baseDomain}`;
  claimHost(draft, poseidonHost);
  addHttp(draft, POSEIDON_ROUTER, { rule: `Host(\`${poseidonHost}\`)`, service: POSEIDON_ROUTER }, [poseidonHost]);
  draft.services.set(POSEIDON_ROUTER, { loadBalancer: { servers: [{ url: opts.poseidonUrl }], passHostHeader: true } });
  addHttp(draft, CATCHALL_ROUTER, {
    middlewares: [PAGE_MIDDLEWARE], priority: 1, service: POSEIDON_ROUTER,
    rule: `HostRegexp(\`^(?i)[0-9a-f]{16}(-[a-z0-9-]+)?\\.[a-z0-9-]+\\.${base}$\`)`,
  });
  const middlewares: Record<string, TraefikMiddleware> = {
    [AUTHZ_MIDDLEWARE]: { forwardAuth: { address: `${opts.poseidonUrl.replace(/\/+$/, '')}${AUTHZ_PATH}`, trustForwardHeader: false, authRequestHeaders: [...AUTH_REQUEST_HEADERS] } },
    // Traefik removes a request header set to the empty string: tokens never reach a backend.
    [STRIP_MIDDLEWARE]: { headers: { customRequestHeaders: { [canonical(ACCESS_HEADER)]: '' } } },
    [PAGE_MIDDLEWARE]: { replacePath: { path: PAGE_PATH } },
  };
  if (opts.tls) {
    middlewares[HTTPS_MIDDLEWARE] = { redirectScheme: { scheme: 'https', permanent: true } };
    if (draft.routers.has(REDIRECT_ROUTER)) throw invalid('duplicate router', REDIRECT_ROUTER);
    draft.routers.set(REDIRECT_ROUTER, {
      entryPoints: [...opts.entryPoints], middlewares: [HTTPS_MIDDLEWARE], priority: 1,
      rule: `HostRegexp(\`^(?i)(.+\\.)?${base}$\`)`, service: POSEIDON_ROUTER,
    });
  }
  return middlewares;
}

function canonical(header: string): string {
  return header.replace(/(^|-)([a-z])/g, (_m, dash: string, c: string) => dash + c.toUpperCase());
}

function sortedRecord<T>(map: Map<string, T>): Record<string, T> {
  return Object.fromEntries([...map.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/**
 * Renders the whole dynamic configuration for `routes` (see the module comment for what is
 * always there). Routers, services and middlewares are sorted by name; `tcp` appears only with
 * TCP routes, `tls.certificates` only with a certificate file. Throws (see `assertValidRoute`)
 * on any invalid route or option, on two routes with the same router name, and on two routes
 * with the same hostname.
 */
export function renderTraefikConfig(routes: readonly GatewayRoute[], opts: GatewayOptions): TraefikDynamicConfig {
  checkOptions(opts);
  const draft: Draft = { opts, routers: new Map(), services: new Map(), tcpRouters: new Map(), tcpServices: new Map(), hosts: new Set() };
  const middlewares = renderFixed(draft);
  for (const route of routes) {
    assertValidRoute(route, opts.baseDomain);
    claimHost(draft, route.hostname);
    if (route.protocol === 'http') renderHttpRoute(draft, route);
    else renderTcpRoute(draft, route);
  }
  const cfg: TraefikDynamicConfig = {
    http: { middlewares: sortedRecord(new Map(Object.entries(middlewares))), routers: sortedRecord(draft.routers), services: sortedRecord(draft.services) },
  };
  if (draft.tcpRouters.size > 0) cfg.tcp = { routers: sortedRecord(draft.tcpRouters), services: sortedRecord(draft.tcpServices) };
  if (opts.tls?.certFile && opts.tls.keyFile) cfg.tls = { certificates: [{ certFile: opts.tls.certFile, keyFile: opts.tls.keyFile }] };
  return cfg;
}

const HEADER = '# Generated by Poseidon; do not edit. Rewritten on every route change.\n';

/** Serialises a config to YAML with stable bytes: keys sorted at every level, a fixed header comment, trailing newline. */
export function serializeTraefikConfig(cfg: TraefikDynamicConfig): string {
  return HEADER + emitYaml(cfg as unknown as Record<string, unknown>);
}
