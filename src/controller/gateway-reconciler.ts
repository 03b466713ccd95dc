/**
 * The edge gateway pass (key `gateway`): renders the Traefik dynamic configuration from the
 * instances workers report running, routing each hostname to the container itself (a worker
 * without an ingress: the edge is joined to its networks, as on a single host) or to the ingress
 * of the worker host that runs it. Written when it changed (by the lease holder, with several
 * manager replicas); served by every replica's HTTP provider endpoint too.
 */
import { wantsRunning, type Instance } from '../core/instance.ts';
import type { Logger, ReconcileContext, ReconcileResult } from '../core/reconcile.ts';
import type { Store } from '../core/store.ts';
import type { WorkerView } from '../core/worker.ts';
import type { TraefikFileWriter } from '../gateway/file-writer.ts';
import type { GatewayOptions, GatewayRoute } from '../gateway/traefik.ts';
import { TraefikFileRenderer } from '../gateway/traefik-file.ts';

export interface GatewayReconcilerDeps {
  store: Store;
  /**
   * The instance view (informer), read instead of listing every record from the store on each
   * pass; the store is listed without it.
   */
  instances?(): Iterable<Instance>;
  /** Workers by id (the fleet view). */
  workers(): readonly WorkerView[];
  writer: TraefikFileWriter;
  options: GatewayOptions;
  log: Logger;
  /** Receives every rendered file's text (the HTTP provider endpoint serves the last one). */
  onRendered?(text: string): void;
  /** Whether this process writes the file now (the manager lease's holder does; every replica renders). Default: always. */
  writes?(): boolean;
}

/**
 * Routes for instances running by their worker's account on a worker that is not lost; through
 * the worker's ingress when it has one. Pure.
 */
export function routesFor(instances: readonly Instance[], workers: ReadonlyMap<string, WorkerView>, now: number): GatewayRoute[] {
  return instances.flatMap((i) => {
    const w = i.worker === undefined ? undefined : workers.get(i.worker);
    if (i.status !== 'running' || !wantsRunning(i, now) || !w || w.state === 'lost') return [];
    return i.endpoints.map((e) => ({
      instance: i.id, challenge: i.challenge, name: e.name, protocol: e.protocol, hostname: e.hostname, backend: e.backend,
      ...(w.ingress ? { via: w.ingress } : {}),
    }));
  });
}

/** See the module comment. Requeues itself at the earliest expiry among routed instances. */
export function gatewayReconciler(deps: GatewayReconcilerDeps) {
  // Keeps each route's text between passes (made on the first pass: a bad option fails the pass, as before).
  let renderer: TraefikFileRenderer | undefined;
  return async (ctx: ReconcileContext): Promise<ReconcileResult> => {
    const now = ctx.now().getTime();
    const instances = deps.instances ? [...deps.instances()] : await deps.store.listInstances();
    const workers = new Map(deps.workers().map((w) => [w.id, w]));
    renderer ??= new TraefikFileRenderer(deps.options);
    const r = renderer;
    const routes = routesFor(instances, workers, now).filter((route) => valid(deps, r, route));
    const text = r.render(routes);
    deps.onRendered?.(text);
    if ((deps.writes?.() ?? true) && await deps.writer.write(text)) deps.log.info({ routes: routes.length }, 'gateway configuration written');
    const routed = new Set(routes.map((r) => r.instance));
    const next = Math.min(...instances.filter((i) => routed.has(i.id)).map((i) => i.expiresAt));
    return Number.isFinite(next) ? { requeueAfterMs: Math.max(0, next - now) } : {};
  };
}

/** One bad route must not take every team's routes down: drop it and say so. */
function valid(deps: GatewayReconcilerDeps, renderer: TraefikFileRenderer, route: GatewayRoute): boolean {
  const err = renderer.problem(route);
  if (err) deps.log.error({ instance: route.instance, err: err.message }, 'route skipped');
  return err === undefined;
}
