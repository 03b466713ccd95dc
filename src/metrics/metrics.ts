/**
 * Every Prometheus metric Poseidon exports, on one registry per process (the manager and its
 * embedded worker share it). Names follow Prometheus conventions: the `poseidon_` prefix, base
 * units (`_seconds`), `_total` on counters. Labels stay low-cardinality: a challenge id, a worker
 * (or engine) id, a state, an operation, a route template or a stable reason code, never a team,
 * a user, an instance id or free text. Gauges that describe the world (instances, workers,
 * catalog, breakers, leases) are computed at scrape time from the sources registered with
 * `watch*` (in `scrape.ts`); counters and histograms are fed as things happen. Process metrics
 * come from prom-client's defaults (`process_*`, `nodejs_*`, their conventional names).
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { VERSION } from '../version.ts';
import {
  fillBreakers, fillCapacity, fillCatalog, fillChallenges, fillFleet, fillInstances, fillLeases, fillOldestWait, fillPoolMembers, INSTANCE_STATES, WORKER_STATES,
  type CatalogSource, type FleetSource, type InstanceSource, type WorkerSource,
} from './scrape.ts';
import { INSTANCE_ID_PATTERN } from '../core/naming.ts';
import type { Instance } from '../core/instance.ts';
import { LaunchTracker } from './instance-feed.ts';
import { RollingWindow, type WindowSummary } from './summary.ts';

/** Buckets (seconds) per kind of duration. */
const BUCKETS = {
  launch: [0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60, 120, 300, 600, 1800],
  queue: [1, 5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600],
  fast: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  image: [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800],
  sync: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
};

let processRegistry: Registry | undefined;

/**
 * Process metrics (CPU, memory, event loop lag, GC, handles): one set per process, whatever
 * number of managers a test process composes, so the collectors (GC observers) are made once.
 */
export function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
    // Gauges named like counters (`promtool check metrics` refuses them); the same numbers stay
    // exported by type as `nodejs_active_handles`, `_requests` and `_resources`.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) processRegistry.removeSingleMetric(name);
  }
  return processRegistry;
}

/** See the module comment. */
export class Metrics {
  readonly registry = new Registry();
  /** The operator page's last 15 minutes (`summary.ts`). */
  readonly window: RollingWindow;
  readonly sources: {
    instances?: InstanceSource; fleet?: FleetSource; catalog?: CatalogSource; workers: Map<string, WorkerSource>; queues: Map<string, { size: number }>;
    /** This manager replica's place in leader election. */
    leadership?: { leader(): boolean };
  } = { workers: new Map(), queues: new Map() };

  readonly launches: Counter<'challenge'>;
  readonly poolClaims: Counter<'challenge' | 'result'>;
  readonly stops: Counter<'challenge'>;
  readonly failures: Counter<'challenge' | 'reason'>;
  readonly launchDuration: Histogram<'challenge'>;
  readonly queueWait: Histogram<'challenge'>;
  readonly reconcileDuration: Histogram<'reconciler'>;
  readonly reconcileErrors: Counter<'reconciler' | 'code'>;
  readonly dockerDuration: Histogram<'engine' | 'operation'>;
  readonly dockerErrors: Counter<'engine' | 'operation'>;
  readonly engineNetworks: Gauge<'engine'>;
  readonly imageDuration: Histogram<'engine' | 'operation'>;
  readonly imageFailures: Counter<'engine' | 'operation'>;
  readonly syncDuration: Histogram;
  readonly syncs: Counter<'result' | 'code'>;
  readonly authz: Counter<'result'>;
  readonly httpDuration: Histogram<'method' | 'route' | 'status'>;
  readonly sseClients: Gauge;
  readonly webhookDeliveries: Counter<'result'>;
  readonly webhookFailedAttempts: Counter;
  readonly fencedWrites: Counter;
  readonly leaderChanges: Counter;
  /** `at` of the last sync result observed (each sync is counted once). */
  #syncSeen: string | undefined;

  constructor(opts: { window?: RollingWindow } = {}) {
    this.window = opts.window ?? new RollingWindow();
    const registers = [this.registry];
    const counter = <L extends string>(name: string, help: string, labelNames: readonly L[] = []): Counter<L> => new Counter({ name, help, labelNames, registers });
    const histogram = <L extends string>(name: string, help: string, buckets: number[], labelNames: readonly L[] = []): Histogram<L> => new Histogram({ name, help, labelNames, buckets, registers });
    const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[], collect?: (g: Gauge<L>) => void | Promise<void>): Gauge<L> => {
      const g: Gauge<L> = new Gauge({ name, help, labelNames, registers, ...(collect ? { collect: () => collect(g) } : {}) });
      return g;
    };
    const s = this.sources;

    gauge('poseidon_build_info', 'Always 1; the version in a label', ['version']).set({ version: VERSION }, 1);
    // Instances (manager): the world at scrape time, then what happened since start.
    gauge('poseidon_instances', 'Instances by status and challenge (from the instance view)', ['state', 'challenge'], (g) => fillInstances(s.instances, g));
    gauge('poseidon_pool_members', 'Unclaimed warm-pool members by status and challenge (running: ready to be claimed)', ['state', 'challenge'], (g) => fillPoolMembers(s.instances, g));
    gauge('poseidon_queue_oldest_wait_seconds', 'How long the oldest queued launch has waited (0: none queued)', [], (g) => fillOldestWait(s.instances, g));
    gauge('poseidon_admission_capacity_slots', 'Live instances admission may fill now (POSEIDON_CAPACITY capped by ready workers\' slots; 0: no limit)', [], (g) => fillCapacity(s.instances, g));
    this.launches = counter('poseidon_instance_launches_total', 'Launches requested (seen by this process)', ['challenge']);
    this.poolClaims = counter('poseidon_pool_claims_total', 'Launches of pooled challenges answered by this replica: result claimed (took a warm member) or cold (none was free)', ['challenge', 'result']);
    this.stops = counter('poseidon_instance_stops_total', 'Instances that reached stopped', ['challenge']);
    this.failures = counter('poseidon_instance_failures_total', 'Instances that reached failed, by reason code', ['challenge', 'reason']);
    this.launchDuration = histogram('poseidon_instance_launch_duration_seconds', 'From the launch request to running (queue wait included)', BUCKETS.launch, ['challenge']);
    this.queueWait = histogram('poseidon_instance_queue_wait_seconds', 'From the launch request to admission, for launches that were queued', BUCKETS.queue, ['challenge']);
    // Reconcilers and queues.
    this.reconcileDuration = histogram('poseidon_reconcile_duration_seconds', 'One reconcile pass, by reconciler', BUCKETS.fast, ['reconciler']);
    this.reconcileErrors = counter('poseidon_reconcile_errors_total', 'Reconcile passes that failed, by reconciler and error code', ['reconciler', 'code']);
    // Manager replicas: who leads, and writes a former leader attempted after losing the lease.
    gauge('poseidon_manager_leader', '1 while this manager replica holds the manager lease (does the work that must happen once)', [], (g) => {
      if (s.leadership) g.set(s.leadership.leader() ? 1 : 0);
    });
    this.leaderChanges = counter('poseidon_manager_leader_changes_total', 'Times this replica started or stopped leading', ['change']);
    this.fencedWrites = counter('poseidon_manager_fenced_writes_total', 'Writes refused because this replica\'s lease token was stale or gone (E_FENCED)');
    gauge('poseidon_work_queue_depth', 'Keys waiting or in flight in a controller\'s work queue', ['controller'], (g) => {
      g.reset();
      for (const [name, q] of s.queues) g.set({ controller: name }, q.size);
    });
    // Engines (the metered runtime) and images.
    this.dockerDuration = histogram('poseidon_docker_api_duration_seconds', 'Docker engine calls, by operation', BUCKETS.fast, ['engine', 'operation']);
    this.dockerErrors = counter('poseidon_docker_api_errors_total', 'Docker engine calls that failed, by operation', ['engine', 'operation']);
    this.engineNetworks = gauge('poseidon_engine_networks', 'Instance networks on an engine (its last full listing): each takes a subnet of Docker\'s address pools', ['engine']);
    this.imageDuration = histogram('poseidon_image_operation_duration_seconds', 'Image builds, pushes and pulls', BUCKETS.image, ['engine', 'operation']);
    this.imageFailures = counter('poseidon_image_operation_failures_total', 'Image builds, pushes and pulls that failed', ['engine', 'operation']);
    // Catalog: syncs are observed from the sync status when the histogram is collected, before
    // the counter after it is read (prom-client serializes in registration order).
    this.syncDuration = new Histogram({
      name: 'poseidon_catalog_sync_duration_seconds', help: 'Catalog syncs (fetch, load, apply)', buckets: BUCKETS.sync, registers,
      collect: () => this.#observeSyncs(),
    });
    this.syncs = counter('poseidon_catalog_syncs_total', 'Catalog syncs by result (and error code on failure)', ['result', 'code']);
    gauge('poseidon_catalog_last_sync_success', '1 when the last catalog sync succeeded, 0 when it failed', [], (g) => fillCatalog(s.catalog, 'success', g));
    gauge('poseidon_catalog_last_success_timestamp_seconds', 'When a catalog sync last succeeded (applied or unchanged)', [], (g) => fillCatalog(s.catalog, 'lastSuccess', g));
    gauge('poseidon_catalog_revision_age_seconds', 'Time since the served revision was applied', [], (g) => fillCatalog(s.catalog, 'revisionAge', g));
    gauge('poseidon_catalog_consecutive_failures', 'Catalog syncs failed in a row', [], (g) => fillCatalog(s.catalog, 'failures', g));
    gauge('poseidon_catalog_poll_interval_seconds', 'Poll period of the challenge source (0: webhooks, the watcher and admins only)', [], (g) => fillCatalog(s.catalog, 'poll', g));
    gauge('poseidon_catalog_challenges', 'Launchable challenges by image state', ['state'], (g) => fillChallenges(s.catalog, g));
    gauge('poseidon_catalog_invalid_files', 'Challenge files of the served revision that failed validation', [], (g) => fillCatalog(s.catalog, 'invalid', g));
    // Workers: the manager's fleet view, and each worker agent in this process.
    gauge('poseidon_workers', 'Workers by effective state', ['state'], (g) => fillFleet(s.fleet, 'byState', g));
    gauge('poseidon_worker_state', '1 for the effective state of each worker', ['worker', 'state'], (g) => fillFleet(s.fleet, 'state', g));
    gauge('poseidon_worker_capacity_slots', 'Instance slots a worker offers', ['worker'], (g) => fillFleet(s.fleet, 'slots', g));
    gauge('poseidon_worker_reserved_slots', 'Instance slots held on a worker (placed and not yet torn down)', ['worker'], (g) => fillFleet(s.fleet, 'reserved', g));
    gauge('poseidon_worker_heartbeat_age_seconds', 'Time since the worker\'s last heartbeat (registry clock)', ['worker'], (g) => fillFleet(s.fleet, 'heartbeat', g));
    gauge('poseidon_worker_images', 'Current image versions on a worker by state', ['worker', 'state'], (g) => fillFleet(s.fleet, 'images', g));
    gauge('poseidon_orphan_breaker_tripped', '1 while a worker\'s orphan circuit breaker holds back removals', ['worker'], (g) => fillBreakers(s.workers, g));
    gauge('poseidon_lease_leased_ports', 'Ports of a worker\'s lease range held by instances', ['worker'], (g) => fillLeases(s.workers, 'leased', g));
    gauge('poseidon_lease_range_ports', 'Ports in a worker\'s lease range (POSEIDON_LEASE_PORTS)', ['worker'], (g) => fillLeases(s.workers, 'range', g));
    // API, gateway and events.
    this.authz = counter('poseidon_authz_decisions_total', 'Forward-auth answers by result: allow (2xx), redirect (3xx: a link exchanged), deny (4xx), error (5xx)', ['result']);
    this.httpDuration = histogram('poseidon_http_request_duration_seconds', 'HTTP requests by method, route template and status', BUCKETS.fast, ['method', 'route', 'status']);
    this.sseClients = gauge('poseidon_sse_clients', 'Open Server-Sent Events streams', []);
    this.webhookDeliveries = counter('poseidon_webhook_deliveries_total', 'Lifecycle events for the platform webhook by outcome: delivered, abandoned (attempts exhausted), dropped (backlog full)', ['result']);
    this.webhookFailedAttempts = counter('poseidon_webhook_failed_attempts_total', 'Webhook delivery attempts that failed (network error or non-2xx; retried)');
  }

  /**
   * The manager's instance view: instance gauges at scrape, and launches, queue waits, stops and
   * failures from its change feed (`instance-feed.ts`). Returns unsubscribe.
   */
  watchInstances(src: InstanceSource & { onUpdate(listener: (id: string, inst: Instance | undefined) => void): () => void }): () => void {
    this.sources.instances = src;
    const tracker = new LaunchTracker({
      launched: (challenge) => {
        this.launches.inc({ challenge });
        this.window.launch();
      },
      queueWaited: (challenge, seconds) => {
        this.queueWait.observe({ challenge }, seconds);
        this.window.queueWait(seconds);
      },
      started: (challenge, seconds) => {
        this.launchDuration.observe({ challenge }, seconds);
        this.window.launchDuration(seconds);
      },
      stopped: (challenge) => {
        this.stops.inc({ challenge });
        this.window.stop();
      },
      failed: (challenge, reason) => {
        this.failures.inc({ challenge, reason });
        this.window.failure(reason);
      },
    }, src.now());
    return src.onUpdate((id, inst) => tracker.update(id, inst));
  }

  /** The manager's fleet view (worker gauges at scrape). */
  watchFleet(src: FleetSource): void {
    this.sources.fleet = src;
  }

  /** The catalog and its sync loop (catalog gauges, and each sync counted once when seen). */
  watchCatalog(src: CatalogSource): void {
    this.sources.catalog = src;
  }

  /**
   * A controller's work queue: its depth at scrape, and each pass's duration and failure under
   * the reconciler its key belongs to (`named` keys, else `instances` for instance ids).
   */
  watchQueue(controller: string, queue: { size: number; observeWith(fn: (key: string, ms: number, code?: string) => void): void }, named: Record<string, string>, instances: string): void {
    this.sources.queues.set(controller, queue);
    queue.observeWith((key, ms, code) => {
      const reconciler = named[key] ?? (INSTANCE_ID_PATTERN.test(key) ? instances : 'other');
      this.reconcileDuration.observe({ reconciler }, ms / 1000);
      if (code === undefined) return;
      this.reconcileErrors.inc({ reconciler, code });
      this.window.reconcileError(reconciler, code);
    });
  }

  /** One outcome of the platform webhook (`WebhookOptions.observe`): a failed attempt, or an event delivered, abandoned or dropped. */
  webhook(outcome: 'delivered' | 'failed' | 'abandoned' | 'dropped'): void {
    if (outcome === 'failed') this.webhookFailedAttempts.inc();
    else this.webhookDeliveries.inc({ result: outcome });
  }

  /** A worker agent in this process (breaker and lease gauges). Returns unregister. */
  watchWorker(id: string, src: WorkerSource): () => void {
    this.sources.workers.set(id, src);
    return () => {
      if (this.sources.workers.get(id) === src) this.sources.workers.delete(id);
    };
  }

  /** The operator page's overview: the rolling window plus the state of things now. */
  summary(): StatusSummary {
    this.#observeSyncs();
    const s = this.sources;
    const byState = Object.fromEntries(INSTANCE_STATES.map((st) => [st, 0])) as Record<string, number>;
    let oldest = Infinity;
    for (const inst of s.instances?.all() ?? []) {
      byState[inst.status] = (byState[inst.status] ?? 0) + 1;
      if (inst.status === 'queued') oldest = Math.min(oldest, inst.createdAt);
    }
    const now = s.instances?.now() ?? Date.now();
    const workers = s.fleet?.workers() ?? [];
    const status = s.catalog?.status();
    const last = status?.lastSync;
    return {
      ...this.window.summary(),
      instances: { byState, queued: byState.queued ?? 0, oldestQueuedSeconds: Number.isFinite(oldest) ? Math.max(0, Math.round((now - oldest) / 1000)) : 0 },
      workers: { byState: Object.fromEntries(WORKER_STATES.map((st) => [st, workers.filter((w) => w.state === st).length])), capacitySlots: s.instances?.capacity() ?? 0 },
      catalog: status ? {
        ...(status.revision ? { revision: status.revision } : {}), ...(status.syncedAt ? { syncedAt: status.syncedAt } : {}), failures: status.failures, syncing: status.syncing,
        ...(last ? { lastSync: { ok: last.ok, at: last.at, durationMs: last.durationMs, ...(last.code ? { code: last.code } : {}) } } : {}),
      } : null,
      breakers: [...s.workers].flatMap(([worker, w]) => {
        const b = w.breaker() as { orphans?: number; managed?: number; at?: number } | undefined;
        return b ? [{ worker, orphans: b.orphans ?? 0, managed: b.managed ?? 0, ...(b.at ? { at: new Date(b.at).toISOString() } : {}) }] : [];
      }),
    };
  }

  /** Counts the last sync once (by its time): called at scrape and for summaries. */
  #observeSyncs(): void {
    const last = this.sources.catalog?.status().lastSync;
    if (!last || last.at === this.#syncSeen) return;
    this.#syncSeen = last.at;
    this.syncDuration.observe(last.durationMs / 1000);
    this.syncs.inc(last.ok ? { result: 'success' } : { result: 'failure', code: last.code ?? 'E_INTERNAL' });
  }

  /** The exposition text of this registry and the process metrics. */
  async exposition(): Promise<{ contentType: string; text: string }> {
    const merged = Registry.merge([processMetrics(), this.registry]);
    return { contentType: merged.contentType, text: await merged.metrics() };
  }
}

/** What `GET /v1/status/summary` answers (see `Metrics.summary`). */
export interface StatusSummary extends WindowSummary {
  instances: { byState: Record<string, number>; queued: number; oldestQueuedSeconds: number };
  workers: { byState: Record<string, number>; capacitySlots: number };
  catalog: { revision?: string; syncedAt?: string; failures: number; syncing: boolean; lastSync?: { ok: boolean; at: string; durationMs: number; code?: string } } | null;
  breakers: { worker: string; orphans: number; managed: number; at?: string }[];
}

const shared = new WeakMap<object, Metrics>();

/**
 * The metrics of one process, keyed by its backends: the manager and the worker `serve` embeds
 * share one registry (one `/metrics`), while each composition in a test process gets its own.
 */
export function metricsFor(owner: object): Metrics {
  let m = shared.get(owner);
  if (!m) {
    m = new Metrics();
    shared.set(owner, m);
  }
  return m;
}
