/**
 * Metrics wiring for the composition roots (`compose/manager.ts`, `compose/worker.ts`): which
 * in-memory views feed the scrape-time gauges, which queues report their passes, and the
 * separate `/metrics` listener (POSEIDON_METRICS_ADDRESS). Kept here so each root adds only a
 * few lines.
 */
import type { FastifyInstance } from 'fastify';
import { buildMetricsApp, type MetricsRouteDeps } from '../api/metrics-routes.ts';
import type { Catalog } from '../catalog/catalog.ts';
import type { SyncStatus } from '../catalog/sync-status.ts';
import type { Config } from '../config/config.ts';
import type { FleetView } from '../controller/fleet-view.ts';
import type { WorkQueue } from '../controller/work-queue.ts';
import { parsePortRange, type LeaseStore } from '../core/leases.ts';
import type { Logger } from '../core/reconcile.ts';
import type { InstanceIndex } from '../gateway/instance-index.ts';
import type { WorkerAgent } from '../worker/agent.ts';
import type { Metrics } from './metrics.ts';

export interface ManagerMetering {
  /** For `buildApp`: `/metrics` on the API port when a token is set, the summary, the HTTP hooks. */
  routes: MetricsRouteDeps;
  /** Opens the separate listener when configured. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface ManagerParts {
  index: InstanceIndex;
  fleet: FleetView;
  catalog: Catalog;
  syncStatus(): SyncStatus;
  capacity(): number;
  queue: WorkQueue;
  /** The manager's named queue keys (gateway, admission, fleet) -> reconciler label. */
  reconcilers: Record<string, string>;
}

/** Registers the manager's views and queue with `metrics` (see the module comment). */
export function meterManager(metrics: Metrics, config: Config, parts: ManagerParts, log: Logger): ManagerMetering {
  const now = (): number => Date.now();
  const { index, fleet, catalog } = parts;
  const unwatch = metrics.watchInstances({
    all: () => index.all(), onUpdate: (l) => index.onUpdate(l), capacity: parts.capacity, now,
    challenges: () => catalog.list().map((e) => e.spec.id),
  });
  metrics.watchFleet({ workers: () => fleet.workers(), loads: (at) => fleet.loads(at), images: (w) => fleet.images(w), now: () => fleet.now() });
  metrics.watchCatalog({
    status: parts.syncStatus, appliedAt: () => catalog.appliedAt, challenges: () => catalog.list(), invalidFiles: () => catalog.invalid().length,
    pollSeconds: config.gitUrl ? config.gitPollSeconds : 0, now,
  });
  metrics.watchQueue('manager', parts.queue, parts.reconcilers, 'placement');
  let listener: MetricsListener | undefined;
  return {
    routes: { metrics, scrape: config.metricsToken !== undefined, ...(config.metricsToken !== undefined ? { token: config.metricsToken } : {}) },
    async start() {
      if (config.metricsAddress) listener = await listenMetrics(config.metricsAddress, metrics, config.metricsToken, log);
    },
    async stop() {
      unwatch();
      await listener?.close();
      listener = undefined;
    },
  };
}

export interface WorkerMeterParts {
  id: string;
  agent: WorkerAgent;
  leases: LeaseStore;
  /** The worker inside `serve`: the manager's listener already serves the shared registry. */
  embedded: boolean;
}

/**
 * Registers a worker agent (breaker, leases, its queue) with `metrics`, until its controller
 * stops. A standalone worker with POSEIDON_METRICS_ADDRESS serves `/metrics` there (it opens no
 * other port), closed when the agent stops.
 */
export async function meterWorker(metrics: Metrics, config: Config, parts: WorkerMeterParts, log: Logger): Promise<void> {
  const { id, agent } = parts;
  const unwatch = metrics.watchWorker(id, {
    breaker: () => agent.breaker,
    ...(config.leasePorts ? { leases: { list: () => parts.leases.list(), range: parsePortRange(config.leasePorts) } } : {}),
  });
  metrics.watchQueue(`worker:${id}`, agent.controller.queue, { images: 'worker_images', ingress: 'worker_ingress' }, 'worker');
  const listener = !parts.embedded && config.metricsAddress ? await listenMetrics(config.metricsAddress, metrics, config.metricsToken, log) : undefined;
  agent.controller.signal.addEventListener('abort', () => {
    unwatch();
    void listener?.close();
  }, { once: true });
}

export interface MetricsListener {
  url: string;
  close(): Promise<void>;
}

/** Splits `host:port` (`[v6]:port` too). */
export function listenAddress(address: string): { host: string; port: number } {
  const at = address.lastIndexOf(':');
  return { host: address.slice(0, at).replace(/^\[(.*)\]$/, '$1'), port: Number(address.slice(at + 1)) };
}

/** Serves only `/metrics` on `address` (POSEIDON_METRICS_ADDRESS); rejects when it cannot listen. */
export async function listenMetrics(address: string, metrics: Metrics, token: string | undefined, log: Logger): Promise<MetricsListener> {
  const app: FastifyInstance = buildMetricsApp(metrics, token);
  const { host, port } = listenAddress(address);
  const url = await app.listen({ host, port });
  log.info({ url: `${url}/metrics`, token: token !== undefined }, 'metrics listener ready');
  return { url, close: () => app.close() };
}
