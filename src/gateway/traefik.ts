/**
 * Traefik v3 dynamic configuration (file provider) rendered from the set of live routes.
 * Pure and deterministic: the same routes in any order give the same bytes. Every value that
 * reaches a rule is checked against a strict `[a-z0-9.-]` grammar first; a bad value throws
 * rather than being rendered (architecture: "Only Poseidon-generated labels reach a rule").
 */
import { stringify } from 'yaml';
import { Codes, PoseidonError } from '../core/errors.ts';
import { INSTANCE_ID_PATTERN } from '../core/naming.ts';

/** One exposed port of one instance, as the gateway should route it. */
export interface GatewayRoute {
  /** 24 lowercase hex chars. */
  instance: string;
  /** Challenge id, a DNS label. */
  challenge: string;
  /** Exposed port name, a DNS label. */
  name: string;
  protocol: 'http' | 'tcp';
  /** Public hostname, `<prefix>.<challenge>.<baseDomain>`. */
  hostname: string;
  /** `host:port` the gateway dials, e.g. `poseidon-<instance>:8080`. */
  backend: string;
}

/** Deployment-wide rendering options. */
export interface GatewayOptions {
  /** Base domain every instance hostname lives under, e.g. `localhost`. */
  baseDomain: string;
  /** Traefik entry points the routers listen on (usually `["web"]`). */
  entryPoints: string[];
  /** Where Traefik reaches Poseidon itself, e.g. `http://poseidon:8080`. */
  poseidonUrl: string;
  /** Middleware names attached to every instance router (seam for forwardAuth). */
  middlewares?: string[];
}

/** HTTP router, the subset of Traefik's `httpRouter` that Poseidon emits. */
export interface TraefikHttpRouter {
  entryPoints?: string[];
  middlewares?: string[];
  rule: string;
  service: string;
}

/** HTTP service; Poseidon only emits the `loadBalancer` kind. */
export interface TraefikHttpService {
  loadBalancer: {
    servers: { url: string }[];
    passHostHeader?: boolean;
  };
}

/** The dynamic configuration document Poseidon writes (validates against the v3 file-provider schema). */
export interface TraefikDynamicConfig {
  http: {
    routers: Record<string, TraefikHttpRouter>;
    services: Record<string, TraefikHttpService>;
  };
}

/** Name of the fixed router/service that keeps the file non-empty and exposes Poseidon itself. */
export const POSEIDON_ROUTER = 'poseidon';

const LABEL = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;
const HOSTNAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/;
const BACKEND = /^[a-z0-9.-]+:[0-9]{1,5}$/;
// Entry point and middleware names never reach a rule, but still go into the file verbatim;
// `@provider` lets a middleware live in another provider (e.g. `auth@docker`).
const ENTRY_POINT = /^[A-Za-z0-9_-]+$/;
const MIDDLEWARE = /^[A-Za-z0-9_-]+(@[a-z0-9-]+)?$/;

function invalid(what: string, value: unknown): PoseidonError {
  return new PoseidonError(Codes.internal, `gateway: refusing to render invalid ${what} ${JSON.stringify(value)}`, {
    kind: 'terminal',
    detail: { what, value },
  });
}

function checkLabel(what: string, value: string): void {
  if (typeof value !== 'string' || value.length > 63 || !LABEL.test(value)) throw invalid(what, value);
}

function checkHostname(what: string, value: string): void {
  const ok =
    typeof value === 'string' &&
    value.length <= 253 &&
    HOSTNAME.test(value) &&
    value.split('.').every((l) => l.length <= 63);
  if (!ok) throw invalid(what, value);
}

function checkBackend(value: string): void {
  if (typeof value !== 'string' || !BACKEND.test(value)) throw invalid('backend', value);
  const port = Number(value.slice(value.lastIndexOf(':') + 1));
  if (port < 1 || port > 65535) throw invalid('backend', value);
}

function checkOptions(opts: GatewayOptions): void {
  checkHostname('baseDomain', opts.baseDomain);
  for (const ep of opts.entryPoints) if (typeof ep !== 'string' || !ENTRY_POINT.test(ep)) throw invalid('entryPoint', ep);
  for (const mw of opts.middlewares ?? []) if (typeof mw !== 'string' || !MIDDLEWARE.test(mw)) throw invalid('middleware', mw);
  let url: URL;
  try {
    url = new URL(opts.poseidonUrl);
  } catch (err) {
    throw new PoseidonError(Codes.configInvalid, `gateway: poseidonUrl ${JSON.stringify(opts.poseidonUrl)} is not a URL`, {
      kind: 'terminal',
      cause: err,
    });
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.username || url.password || /\s/.test(opts.poseidonUrl)) {
    throw invalid('poseidonUrl', opts.poseidonUrl);
  }
}

/**
 * Checks one route against the grammar the renderer requires: instance id, DNS-label challenge
 * and port name, a hostname under `.<challenge>.<baseDomain>`, a `host:port` backend.
 * Throws a `PoseidonError` (`E_INTERNAL`, terminal) naming the bad value. Exported so a caller
 * can drop a single bad route instead of failing the whole render.
 */
export function assertValidRoute(route: GatewayRoute, baseDomain: string): void {
  if (typeof route.instance !== 'string' || !INSTANCE_ID_PATTERN.test(route.instance)) throw invalid('instance', route.instance);
  checkLabel('challenge', route.challenge);
  checkLabel('port name', route.name);
  if (route.protocol !== 'http' && route.protocol !== 'tcp') throw invalid('protocol', route.protocol);
  checkHostname('hostname', route.hostname);
  // An instance may only claim a host of its own challenge: never poseidon.<base> or another domain.
  if (!route.hostname.endsWith(`.${route.challenge}.${baseDomain}`)) throw invalid('hostname', route.hostname);
  checkBackend(route.backend);
}

/** Router (and service) name of one instance port: `i-<instance>-<name>`. */
export function routerName(route: Pick<GatewayRoute, 'instance' | 'name'>): string {
  return `i-${route.instance}-${route.name}`;
}

/** Mutable accumulator the per-protocol renderers add to. */
interface Draft {
  httpRouters: Map<string, TraefikHttpRouter>;
  httpServices: Map<string, TraefikHttpService>;
  hosts: Set<string>;
}

type RouteRenderer = (draft: Draft, route: GatewayRoute, opts: GatewayOptions) => void;

function claimHost(draft: Draft, hostname: string): void {
  if (draft.hosts.has(hostname)) throw invalid('duplicate hostname', hostname);
  draft.hosts.add(hostname);
}

function addHttp(draft: Draft, name: string, router: TraefikHttpRouter, url: string): void {
  if (draft.httpRouters.has(name)) throw invalid('duplicate router', name);
  draft.httpRouters.set(name, router);
  draft.httpServices.set(name, { loadBalancer: { servers: [{ url }], passHostHeader: true } });
}

const renderHttpRoute: RouteRenderer = (draft, route, opts) => {
  claimHost(draft, route.hostname);
  const router: TraefikHttpRouter = {
    entryPoints: [...opts.entryPoints],
    rule: `Host(\`${route.hostname}\`)`,
    service: routerName(route),
  };
  if (opts.middlewares && opts.middlewares.length > 0) router.middlewares = [...opts.middlewares];
  addHttp(draft, routerName(route), router, `http://${route.backend}`);
};

// TCP routes are not routed yet: a later issue adds HostSNI TCP routers over TLS here. They are
// still validated (and their hostnames reserved) so turning this on cannot surface bad input.
const renderTcpRoute: RouteRenderer = (draft, route) => {
  claimHost(draft, route.hostname);
};

const RENDERERS: Record<GatewayRoute['protocol'], RouteRenderer> = {
  http: renderHttpRoute,
  tcp: renderTcpRoute,
};

function sortedRecord<T>(map: Map<string, T>): Record<string, T> {
  return Object.fromEntries([...map.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/**
 * Renders the whole dynamic configuration for `routes`. Always contains the fixed `poseidon`
 * router (`Host(\`poseidon.<baseDomain>\`)` -> `opts.poseidonUrl`) so the file is never empty.
 * Routers and services are sorted by name. Throws (see {@link assertValidRoute}) on any invalid
 * route or option, on two routes with the same router name, and on two routes with the same hostname.
 */
export function renderTraefikConfig(routes: readonly GatewayRoute[], opts: GatewayOptions): TraefikDynamicConfig {
  checkOptions(opts);
  const draft: Draft = { httpRouters: new Map(), httpServices: new Map(), hosts: new Set() };
  const poseidonHost = `${POSEIDON_ROUTER}.${opts.baseDomain}`;
  claimHost(draft, poseidonHost);
  addHttp(
    draft,
    POSEIDON_ROUTER,
    { entryPoints: [...opts.entryPoints], rule: `Host(\`${poseidonHost}\`)`, service: POSEIDON_ROUTER },
    opts.poseidonUrl,
  );
  for (const route of routes) {
    assertValidRoute(route, opts.baseDomain);
    RENDERERS[route.protocol](draft, route, opts);
  }
  return { http: { routers: sortedRecord(draft.httpRouters), services: sortedRecord(draft.httpServices) } };
}

const HEADER = '# Generated by Poseidon; do not edit. Rewritten on every route change.\n';

/**
 * Serialises a config to YAML with stable bytes: map keys sorted at every level, no line
 * folding, a fixed header comment, trailing newline.
 */
export function serializeTraefikConfig(cfg: TraefikDynamicConfig): string {
  return HEADER + stringify(cfg, { sortMapEntries: true, lineWidth: 0, indent: 2 });
}
