/**
 * The Traefik file's text, rendered incrementally: the same bytes as
 * `serializeTraefikConfig(renderTraefikConfig(routes, opts))` (a test holds the two to that), but
 * each route's router and service are validated and serialised once, when the route first appears
 * or changes, and kept as indented text; a render sorts the names, checks hostnames are unique and
 * joins the kept fragments. With 10,000 routes of which one changed, that is a join instead of
 * validating and stringifying a 5 MB document (issue 11, goal 6).
 *
 * The fragments depend on the options, so one renderer serves one set of options.
 */
import {
  assemble, claimHost, newDraft, poseidonHost, renderFixedRouters, routeObjects, routerName, TRAEFIK_FILE_HEADER,
  type Draft, type GatewayOptions, type GatewayRoute,
} from './traefik.ts';
import { assertValidRoute, invalid } from './traefik-grammar.ts';

/** A route as last rendered: its fields (to see a change) and its two entries as text. */
interface Fragment {
  route: GatewayRoute;
  protocol: 'http' | 'tcp';
  router: string;
  service: string;
}

/** Depth of the router and service entries in the document (`{ http: { routers: { <here> } } }`). */
const ENTRY_PAD = '      ';
/** Stand-ins for the four entry lists in the skeleton document, replaced by the joined fragments. */
const MARK = { routers: '\u0000routers', services: '\u0000services', tcpRouters: '\u0000tcp-routers', tcpServices: '\u0000tcp-services' };

/** `"key": value` as JSON.stringify(…, null, 2) writes it at the entry depth. */
function entry(key: string, value: unknown): string {
  return flat(`${ENTRY_PAD}${JSON.stringify(key)}: ${JSON.stringify(value, null, 2).replaceAll('\n', `\n${ENTRY_PAD}`)}`);
}

/**
 * `s` as one flat string. A concatenation is a tree of pieces in V8 that every join walks again
 * (10,000 kept fragments joined: ~100 ms instead of ~10 ms); a fragment is joined on every
 * render, so it is copied into one piece once here. (The usual trick, `Number(s)`, is dropped by
 * the optimising compiler once the function is hot.)
 */
function flat(s: string): string {
  return Buffer.from(s, 'utf8').toString('utf8');
}

/** The entries as the body of an object whose closing brace sits at depth 2 (four spaces). */
function object(entries: readonly string[]): string {
  return entries.length === 0 ? '{}' : `{\n${entries.join(',\n')}\n    }`;
}

function sameRoute(a: GatewayRoute, b: GatewayRoute): boolean {
  return a.hostname === b.hostname && a.backend === b.backend && a.protocol === b.protocol && a.challenge === b.challenge &&
    a.via?.http === b.via?.http && a.via?.tls === b.via?.tls;
}

/** See the module comment. */
export class TraefikFileRenderer {
  readonly #opts: GatewayOptions;
  /** Builds fragments: its entry points, middleware lists and per-zone TLS are the same for every render. */
  readonly #draft: Draft;
  #fragments = new Map<string, Fragment>();

  /** Throws on a bad option (as `renderTraefikConfig` does). */
  constructor(opts: GatewayOptions) {
    this.#opts = opts;
    this.#draft = newDraft(opts, false);
  }

  /** Why `route` cannot be rendered (the error `renderTraefikConfig` would throw), or undefined; a kept route is not checked again. */
  problem(route: GatewayRoute): Error | undefined {
    const kept = this.#fragments.get(routerName(route));
    if (kept && sameRoute(kept.route, route)) return undefined;
    try {
      assertValidRoute(route, this.#opts.baseDomain);
      return undefined;
    } catch (err) {
      return err as Error;
    }
  }

  /**
   * The file's text for `routes`; throws as `renderTraefikConfig` does (a bad route or option, two
   * routes with one router name or one hostname). Fragments of routes not in `routes` are dropped.
   */
  render(routes: readonly GatewayRoute[]): string {
    const via = routes.some((r) => r.via && r.protocol === 'http');
    // A fresh draft per render for what is checked per render: the edge secret, unique hostnames.
    const draft = newDraft(this.#opts, via);
    const next = new Map<string, Fragment>();
    for (const route of routes) {
      const name = routerName(route);
      const fragment = this.#fragment(name, route);
      if (next.has(name)) throw invalid('duplicate router', name);
      next.set(name, fragment);
    }
    const names = [...next.keys()].sort();
    const routers: string[] = [];
    const services: string[] = [];
    const tcpRouters: string[] = [];
    const tcpServices: string[] = [];
    for (const name of names) {
      const f = next.get(name) as Fragment;
      claimHost(draft, f.route.hostname);
      (f.protocol === 'http' ? routers : tcpRouters).push(f.router);
      (f.protocol === 'http' ? services : tcpServices).push(f.service);
    }
    // The fragments are kept only once the whole render succeeded.
    this.#fragments = next;
    // Poseidon's own routers and service sort after every `i-…` name, as in the object renderer.
    renderFixedRouters(draft, poseidonHost(this.#opts));
    for (const [name, r] of Object.entries(draft.routers)) routers.push(entry(name, r));
    for (const [name, s] of Object.entries(draft.services)) services.push(entry(name, s));
    const { http, tls } = assemble(draft, via);
    // The object renderer's key order: http, tcp (only with TCP routes), tls.
    const cfg: Record<string, unknown> = { http: { middlewares: http.middlewares, routers: MARK.routers, services: MARK.services } };
    if (tcpRouters.length > 0) cfg.tcp = { routers: MARK.tcpRouters, services: MARK.tcpServices };
    if (tls) cfg.tls = tls;
    const lists: Record<string, string[]> = { [MARK.routers]: routers, [MARK.services]: services, [MARK.tcpRouters]: tcpRouters, [MARK.tcpServices]: tcpServices };
    const skeleton = JSON.stringify(cfg, null, 2);
    // The marks are JSON strings in the skeleton; nothing else in it can contain a NUL escape.
    const body = skeleton.replace(/"\\u0000[a-z-]+"/g, (mark) => object(lists[JSON.parse(mark) as string] as string[]));
    return `${TRAEFIK_FILE_HEADER}${body}\n`;
  }

  #fragment(name: string, route: GatewayRoute): Fragment {
    const kept = this.#fragments.get(name);
    if (kept && sameRoute(kept.route, route)) return kept;
    assertValidRoute(route, this.#opts.baseDomain);
    const { protocol, router, service } = routeObjects(this.#draft, name, route);
    // A copy of the fields: the caller may reuse its objects.
    const copy: GatewayRoute = { ...route, ...(route.via ? { via: { ...route.via } } : {}) };
    return { route: copy, protocol, router: entry(name, router), service: entry(name, service) };
  }
}
