import { wantsRunning, type Instance } from '../core/instance.ts';
import { containerName } from '../core/naming.ts';
import type { ContainerRuntime } from '../core/runtime.ts';
import type { Store } from '../core/store.ts';
import { assertValidRoute, renderTraefikConfig, serializeTraefikConfig, type GatewayOptions, type GatewayRoute } from '../gateway/traefik.ts';
import type { TraefikFileWriter } from '../gateway/file-writer.ts';
import type { Logger, ReconcileContext, ReconcileResult } from '../core/reconcile.ts';

export interface GatewayReconcilerDeps {
  store: Store;
  runtime: ContainerRuntime;
  writer: TraefikFileWriter;
  options: GatewayOptions;
  log: Logger;
  /** Receives every rendered file's text (the HTTP provider endpoint serves the last one). */
  onRendered?(text: string): void;
  /** The gateway container (Traefik) that must be on every routed instance's network. */
  gatewayContainer?: string;
  /** Frees port leases of instances in `instances` (read at `listedAt`) that no longer run. */
  sweepLeases?(instances: Instance[], listedAt: number): Promise<unknown>;
}

/** Routes for instances that are running by both accounts: status in the store and a running container. */
export function routesFor(instances: Instance[], runningIds: Set<string>, now: number): GatewayRoute[] {
  return instances
    .filter((i) => i.status === 'running' && wantsRunning(i, now) && runningIds.has(i.id))
    .flatMap((i) => i.endpoints.map((e) => ({ instance: i.id, challenge: i.challenge, name: e.name, protocol: e.protocol, hostname: e.hostname, backend: e.backend })));
}

/**
 * Renders the Traefik dynamic configuration from observed running instances and writes it when
 * it changed. Requeues itself at the earliest expiry among routed instances, so a route never
 * outlives its instance's `expiresAt` by more than one pass.
 */
export function gatewayReconciler(deps: GatewayReconcilerDeps) {
  return async (ctx: ReconcileContext): Promise<ReconcileResult> => {
    const now = ctx.now().getTime();
    const instances = await deps.store.listInstances();
    const running = new Set((await deps.runtime.listContainers()).filter((c) => c.state === 'running').map((c) => c.instance));
    const routes = routesFor(instances, running, now).filter((r) => valid(deps, r));
    await joinGateway(deps, routes);
    const cfg = renderTraefikConfig(routes, deps.options);
    const text = serializeTraefikConfig(cfg);
    deps.onRendered?.(text);
    const wrote = await deps.writer.write(text);
    if (wrote) deps.log.info({ routes: routes.length }, 'gateway configuration written');
    await deps.sweepLeases?.(instances, now).catch((err: unknown) => deps.log.warn({ err: (err as Error).message }, 'lease sweep failed'));
    const routed = new Set(routes.map((r) => r.instance));
    const next = Math.min(...instances.filter((i) => routed.has(i.id)).map((i) => i.expiresAt));
    return Number.isFinite(next) ? { requeueAfterMs: Math.max(0, next - now) } : {};
  };
}

/**
 * Level-based: the gateway joins every routed instance's network it is not on, so a recreated
 * Traefik container (an image bump) gets its routes back on the next pass, not at next launch.
 */
async function joinGateway(deps: GatewayReconcilerDeps, routes: GatewayRoute[]): Promise<void> {
  const gw = deps.gatewayContainer;
  if (!gw || routes.length === 0) return;
  const joined = new Set(await deps.runtime.networksOf(gw));
  for (const name of new Set(routes.map((r) => containerName(r.instance)))) {
    if (joined.has(name)) continue;
    await deps.runtime.connect(name, gw).catch((err: unknown) => deps.log.warn({ network: name, err: (err as Error).message }, 'gateway join failed'));
  }
}

/** One bad route must not take every team's routes down: drop it and say so. */
function valid(deps: GatewayReconcilerDeps, route: GatewayRoute): boolean {
  try {
    assertValidRoute(route, deps.options.baseDomain);
    return true;
  } catch (err) {
    deps.log.error({ instance: route.instance, err: (err as Error).message }, 'route skipped');
    return false;
  }
}
