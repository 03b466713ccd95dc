/**
 * Composition of the manager (`poseidon serve` without its embedded worker): catalog and sync,
 * admission, placement, the fleet pass, the edge gateway, events and the API. Adapters come in
 * from `backends.ts`; components talk through the queue, never through callbacks into each other.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildApp, type LifecycleSettings, type Readiness } from '../api/app.ts';
import { parseApiKeys } from '../api/auth.ts';
import { Catalog } from '../catalog/catalog.ts';
import { CatalogFollower } from '../catalog/catalog-follower.ts';
import { NoCatalogStore, RedisCatalogStore } from '../catalog/catalog-store.ts';
import type { GitOpsApi } from '../catalog/gitops-api.ts';
import { createGitOps, type GitOps } from '../catalog/gitops.ts';
import { RelayedGitOps, SyncRelayServer } from '../catalog/sync-relay.ts';
import type { SyncResult } from '../catalog/sync-status.ts';
import type { Config } from '../config/config.ts';
import { admissionReconciler } from '../controller/admission.ts';
import { Controller, every } from '../controller/controller.ts';
import { fencedStore, type FencedStore } from '../controller/fenced-store.ts';
import { Leadership } from '../controller/leadership.ts';
import { poolKeeper } from '../controller/pool-keeper.ts';
import { Codes, PoseidonError } from '../core/errors.ts';
import type { ManagerLease } from '../core/manager-lease.ts';
import { POOL_TEAM } from '../core/instance.ts';
import { FleetView, holdsResources } from '../controller/fleet-view.ts';
import { deriveImageStates } from '../controller/image-states.ts';
import { gatewayReconciler } from '../controller/gateway-reconciler.ts';
import { PLACEMENT_CONCURRENCY, placementReconciler } from '../controller/placement-reconciler.ts';
import { parseRateLimits } from '../core/lifecycle.ts';
import { INSTANCE_ID_PATTERN } from '../core/naming.ts';
import type { ReconcileContext, ReconcileResult } from '../core/reconcile.ts';
import { EventHub } from '../events/hub.ts';
import { MemoryOutbox, type EventOutbox } from '../events/outbox.ts';
import { WebhookSender } from '../events/webhook.ts';
import { WebhookRelay } from '../events/webhook-relay.ts';
import { composeAccess, gatewayTls } from '../gateway/compose.ts';
import { TraefikFileWriter } from '../gateway/file-writer.ts';
import { InstanceIndex } from '../gateway/instance-index.ts';
import { GatewaySnapshot } from '../gateway/snapshot.ts';
import type { GatewayOptions } from '../gateway/traefik.ts';
import { DirSource } from '../source/dir-source.ts';
import { GitSource } from '../source/git-source.ts';
import type { Source } from '../core/source.ts';
import { meterManager } from '../metrics/compose.ts';
import { MeteredRuntime } from '../metrics/metered-runtime.ts';
import { metricsFor } from '../metrics/metrics.ts';
import { MemoryManagerLease } from '../store/memory-manager-lease.ts';
import { MemoryStore } from '../store/memory.ts';
import { createRedisClient } from '../store/redis-client.ts';
import { RedisManagerLease } from '../store/redis-manager-lease.ts';
import { RedisOutbox } from '../store/redis-outbox.ts';
import { RedisAuditTrail } from '../store/redis-audit.ts';
import { VERSION } from '../version.ts';
import type { Backends } from './backends.ts';
import { engineFor } from './worker.ts';

export const GATEWAY_KEY = 'gateway';
export const ADMISSION_KEY = 'admission';
export const FLEET_KEY = 'fleet';
/** The leader's controller key that keeps the warm pools at their size (`controller/pool-keeper.ts`). */
export const POOL_KEY = 'pool';
/** The replica controller's key that re-reads the fleet registry (and derives image states). */
export const VIEW_KEY = 'view';

export interface Manager {
  app: FastifyInstance;
  catalog: Catalog;
  fleet: FleetView;
  index: InstanceIndex;
  leadership: Leadership;
  /** The leader's work while this replica holds the manager lease. */
  term(): LeaderTerm | undefined;
  /** Starts the loops and stands for the lease (the API is built but not listening). */
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** What runs on the lease holder only, for one term. */
export interface LeaderTerm {
  token: number;
  controller: Controller;
  gitops: GitOps;
  /** The store as this term writes it (every write fenced by the token). */
  store: FencedStore;
}

/** The source `config` asks for: git when POSEIDON_GIT_URL is set, the challenges directory otherwise. */
export function sourceFor(config: Config): Source {
  if (!config.gitUrl) return new DirSource({ dir: config.challengesDir });
  return new GitSource({
    url: config.gitUrl, branch: config.gitBranch, path: config.gitPath, workdir: `${config.dataDir}/git`, env: { ...config.gitEnv },
    credentials: {
      ...(config.gitToken !== undefined ? { token: config.gitToken } : {}),
      ...(config.gitUsername !== undefined ? { username: config.gitUsername } : {}),
      ...(config.gitSshKey !== undefined ? { sshKey: config.gitSshKey } : {}),
      ...(config.gitKnownHosts !== undefined ? { knownHosts: config.gitKnownHosts } : {}),
    },
  });
}

/** `count/seconds` (schema-checked) as the API's failed-attempt limit. */
function failureLimit(rule: string): { attempts: number; windowMs: number } {
  const [count = '20', seconds = '60'] = rule.split('/');
  return { attempts: Number(count), windowMs: Number(seconds) * 1000 };
}

/** A unique id for this replica in the lease (host, process, and a nonce for managers sharing a process in tests). */
function replicaId(): string {
  return `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
}

/**
 * Builds the manager over `backends`; nothing runs until `start`. Every replica serves the whole
 * API and keeps its views (instances, fleet, catalog, gateway snapshot, events) current; the
 * work that must happen once (admission, placement, the fleet pass, catalog sync and builds, the
 * edge file, webhooks out) runs in a `LeaderTerm` on the holder of the manager lease, with every
 * store write fenced by the term's token. A follower's catalog follows the leader's through
 * Redis, and its catalog requests (sync, plan, git webhooks) are relayed to the leader.
 */
export async function composeManager(config: Config, backends: Backends, log: Logger): Promise<Manager> {
  const { store, fleet: registry } = backends;
  const metrics = metricsFor(backends);
  const redisUrl = config.redisUrl;
  const index = new InstanceIndex(store, { refreshMs: config.resyncSeconds * 1000, log: log.child({ component: 'index' }) });
  const catalogLog = log.child({ component: 'catalog' });
  const catalog = new Catalog();
  const replica = replicaId();
  const memoryLease = redisUrl ? undefined : new MemoryManagerLease();
  const lease: ManagerLease & { close?(): Promise<void> } = memoryLease ?? new RedisManagerLease({ url: redisUrl as string, prefix: config.redisPrefix });
  if (memoryLease && store instanceof MemoryStore) store.useFence(() => memoryLease.fence());
  const fleetView = new FleetView({
    fleet: registry, instances: index, lostAfterMs: config.workerLostSeconds * 1000,
    resources: (inst) => catalog.version(inst.specHash)?.spec.resources ?? { cpu: 0, memoryBytes: 0 },
  });
  const tls = gatewayTls(config);
  // Workers read it from the registry: a configured one replaces whatever is stored there.
  if (config.edgeSecret) await registry.setShared('edge-secret', config.edgeSecret);
  const edgeSecret = config.edgeSecret ?? (redisUrl ? await registry.shared('edge-secret', randomSecret()) : undefined);
  const access = composeAccess(config, index, log.child({ component: 'access' }));
  const snapshot = new GatewaySnapshot();
  const controllerLog = log.child({ component: 'controller' });
  /** Capacity admission may fill: POSEIDON_CAPACITY capped by ready workers' slots (0 means no cap on either side). */
  const capacity = (): number => {
    const limits = [config.capacity, fleetView.capacity()].filter((n) => n > 0);
    return limits.length ? Math.min(...limits) : 0;
  };
  const builder = config.registry || config.embeddedWorker ? engineFor(config, backends, catalogLog) : undefined;
  let term: LeaderTerm | undefined;
  let relay: WebhookRelay | undefined;
  let relayServer: SyncRelayServer | undefined;

  // Every replica: the fleet view, image states and the gateway render (the leader writes the file).
  const gatewayOptions: GatewayOptions = { baseDomain: config.baseDomain, entryPoints: [...config.traefikEntryPoints], poseidonUrl: config.poseidonUrl, ...(tls ? { tls } : {}), ...(edgeSecret ? { edgeSecret } : {}) };
  const gateway = gatewayReconciler({
    store, instances: () => index.all(), workers: () => fleetView.workers(), writer: new TraefikFileWriter(config.traefikDir), options: gatewayOptions, log: controllerLog,
    onRendered: (text) => snapshot.set(text), writes: () => leadership.leader,
  });
  /** What the edge routes depend on per worker: its state and its ingress. */
  const lastRouting = new Map<string, string>();
  const view = async (): Promise<ReconcileResult> => {
    await fleetView.refresh();
    const workers = fleetView.workers();
    let changed = lastRouting.size !== workers.length;
    for (const w of workers) {
      const routing = `${w.state} ${w.ingress?.http ?? ''} ${w.ingress?.tls ?? ''}`;
      if (lastRouting.get(w.id) !== routing) changed = true;
      lastRouting.set(w.id, routing);
    }
    const images = deriveImageStates(catalog, fleetView);
    term?.gitops.changed(images);
    term?.controller.queue.add(FLEET_KEY);
    if (changed) replicaLoop.queue.add(GATEWAY_KEY);
    return {};
  };
  const replicaLoop = new Controller({
    log: controllerLog, resyncMs: config.resyncSeconds * 1000,
    keys: async () => [GATEWAY_KEY, VIEW_KEY],
    reconcile: (ctx, key) => (key === GATEWAY_KEY ? gateway(ctx) : key === VIEW_KEY ? view() : Promise.resolve({})),
    sources: [
      // The view's updates, not the store's feed: the pass reads the view, which holds a change once it emits it.
      (enqueue) => index.onUpdate(() => enqueue(GATEWAY_KEY)),
      (enqueue) => registry.onChange(() => enqueue(VIEW_KEY)),
      // Lost is level-based on the heartbeat deadline: no event announces it.
      every(config.heartbeatSeconds * 1000, VIEW_KEY),
    ],
  });

  // The catalog: the leader's sync loop, or the leader's catalog followed through Redis.
  const follower = redisUrl ? new CatalogFollower({ catalog, store: new RedisCatalogStore(redisUrl, config.redisPrefix), log: catalogLog, periodMs: 2000 }) : undefined;
  const relayClient = redisUrl ? createRedisClient(redisUrl) : undefined;
  const webhookSettings = { ...(config.webhookSecret ? { secret: config.webhookSecret } : {}), branch: config.gitBranch };
  const relayed = relayClient ? new RelayedGitOps({ client: relayClient, prefix: config.redisPrefix, log: catalogLog }, webhookSettings, { source: sourceFor(config).info, failures: 0, syncing: false }) : undefined;
  const notLeading = (): SyncResult => ({ ok: false, at: new Date().toISOString(), durationMs: 0, code: Codes.sourceUnreadable, error: 'no manager holds the lease yet' });
  const gitopsApi: GitOpsApi = {
    webhook: webhookSettings,
    status: () => term?.gitops.api.status() ?? relayed?.status() ?? { source: sourceFor(config).info, failures: 0, syncing: false },
    syncNow: (o) => term?.gitops.api.syncNow(o) ?? relayed?.syncNow(o) ?? Promise.resolve(notLeading()),
    trigger: (reason) => (term ? term.gitops.api.trigger(reason) : relayed?.trigger(reason)),
    plan: () => term?.gitops.api.plan() ?? relayed?.plan() ?? Promise.reject(new PoseidonError(Codes.sourceUnreadable, 'no manager holds the lease yet')),
  };

  // Webhooks out: every replica appends what it sees; the leader delivers.
  const outbox: EventOutbox | undefined = config.eventsWebhookUrl && config.eventsWebhookSecret
    ? (redisUrl ? new RedisOutbox({ url: redisUrl, prefix: config.redisPrefix }) : new MemoryOutbox(memoryLease ? { fence: () => memoryLease.fence() } : {}))
    : undefined;
  const events = new EventHub(store, index, config.expiringSoonSeconds * 1000);
  // The status page's audit trail: shared by every replica on Redis (this process's ring otherwise).
  const auditTrail = redisUrl ? new RedisAuditTrail({ url: redisUrl, prefix: config.redisPrefix }) : undefined;

  /** Starts the leader's work for `token` (see the module comment). */
  const startTerm = async (token: number): Promise<void> => {
    follower?.stop();
    const fenced = fencedStore(store, () => (leadership.token === token ? token : undefined), () => metrics.fencedWrites.inc());
    const gitops = createGitOps({
      source: sourceFor(config), store, log: catalogLog, catalog, instances: () => index.all(),
      catalogStore: redisUrl ? new RedisCatalogStore(redisUrl, config.redisPrefix) : new NoCatalogStore(),
      pollMs: config.gitUrl ? config.gitPollSeconds * 1000 : 0,
      webhook: webhookSettings,
      ...(config.registry && builder ? { publish: { registry: config.registry, builder: new MeteredRuntime(builder, metrics, 'builder'), owner: backends.owner } } : {}),
    });
    const place = placementReconciler({
      store: fenced, catalog, fleet: fleetView, log: controllerLog, remember: (inst) => index.put(inst), held: (id) => index.byId(id),
      settings: {
        baseDomain: config.baseDomain, tls: tls !== undefined, flagSecret: config.flagSecret, flagRetentionMs: config.flagRetentionDays * 86_400_000,
        retentionMs: config.retentionSeconds * 1000, onWorkerLost: config.onWorkerLost,
      },
    });
    const admit = admissionReconciler({
      store: fenced, catalog, log: controllerLog, capacity, queueMaxWaitMs: config.queueMaxWaitSeconds * 1000, admitted: (id) => controller.queue.add(id),
    });
    const fleetPass = async (ctx: ReconcileContext): Promise<ReconcileResult> => {
      const now = ctx.now().getTime();
      const workers = fleetView.workers();
      for (const w of workers) {
        if (w.state === 'draining' && ![...index.all()].some((i) => i.worker === w.id && holdsResources(i, now))) {
          if (await registry.compareAdmin(w.id, 'draining', 'cordoned')) controllerLog.info({ worker: w.id }, 'worker drained; it stays cordoned');
        }
      }
      // Instances that may move (lost or draining worker) or may fit now (waiting for a worker).
      for (const inst of index.all()) {
        const w = inst.worker === undefined ? undefined : workers.find((x) => x.id === inst.worker);
        const stranded = inst.worker !== undefined && (!w || w.state === 'lost' || w.state === 'draining');
        if ((stranded || inst.worker === undefined) && inst.status !== 'queued' && inst.desired === 'running') controller.queue.add(inst.id);
      }
      controller.queue.add(ADMISSION_KEY);
      return {};
    };
    const keepPools = poolKeeper({
      store: fenced, catalog, instances: () => index.all(), capacity, baseDomain: config.baseDomain, log: controllerLog, remember: (inst) => index.put(inst),
    });
    const controller = new Controller({
      log: controllerLog, resyncMs: config.resyncSeconds * 1000, concurrency: PLACEMENT_CONCURRENCY,
      keys: async () => [...await store.listIds(), ADMISSION_KEY, FLEET_KEY, POOL_KEY],
      reconcile: (ctx, key) => {
        if (key === ADMISSION_KEY) return admit(ctx);
        if (key === FLEET_KEY) return fleetPass(ctx);
        if (key === POOL_KEY) return keepPools(ctx);
        return INSTANCE_ID_PATTERN.test(key) ? place(ctx, key) : Promise.resolve({});
      },
      sources: [
        // Woken by the view once it took a change in (never by the store's raw feed): the
        // placement pass decides "nothing to do" on the view's copy (`held` above).
        (enqueue) => index.onUpdate((id, inst) => {
          enqueue(id);
          // Any change may free a place or add a waiter; one to a pooled challenge's instance
          // (or to a record that is gone) may claim or end a pool member.
          enqueue(ADMISSION_KEY);
          if (!inst || catalog.get(inst.challenge)?.spec.pool) enqueue(POOL_KEY);
        }),
        every(config.heartbeatSeconds * 1000, FLEET_KEY),
      ],
    });
    metrics.watchQueue('leader', controller.queue, { [ADMISSION_KEY]: 'admission', [FLEET_KEY]: 'fleet', [POOL_KEY]: 'pool' }, 'placement');
    metrics.leaderChanges.inc({ change: 'elected' });
    term = { token, controller, gitops, store: fenced };
    await gitops.start();
    if (leadership.token !== token) return;
    await controller.start();
    gitops.attach((id) => controller.queue.add(id));
    if (relayClient) {
      relayServer = new SyncRelayServer({ client: relayClient, prefix: config.redisPrefix, log: catalogLog }, gitops.api);
      relayServer.start();
    }
    if (outbox && config.eventsWebhookUrl && config.eventsWebhookSecret) {
      const sender = new WebhookSender({ url: config.eventsWebhookUrl, secret: config.eventsWebhookSecret, log: log.child({ component: 'webhook' }), observe: (o) => metrics.webhook(o) });
      relay = new WebhookRelay({
        outbox, sender, token: () => (leadership.token === token ? token : undefined), log: log.child({ component: 'webhook' }),
        dropped: (n) => { for (let i = 0; i < n; i++) metrics.webhook('dropped'); },
      });
      relay.start();
    }
    replicaLoop.queue.add(GATEWAY_KEY);
  };
  /** Stops the leader's work; the replica goes on serving and follows the next leader. */
  const stopTerm = async (): Promise<void> => {
    const ending = term;
    term = undefined;
    metrics.leaderChanges.inc({ change: 'deposed' });
    await relay?.stop();
    relay = undefined;
    await relayServer?.stop();
    relayServer = undefined;
    await ending?.controller.stop();
    await ending?.gitops.stop();
    await follower?.start();
  };
  const leadership = new Leadership({
    lease, id: replica, leaseMs: config.leaseSeconds * 1000, renewDeadlineMs: config.leaseRenewSeconds * 1000, retryMs: config.leaseRetrySeconds * 1000,
    log: log.child({ component: 'leadership' }), onElected: startTerm, onDeposed: stopTerm,
  });
  metrics.sources.leadership = { leader: () => leadership.leader };

  const lifecycle: LifecycleSettings = {
    teamLimit: config.teamLimit, capacity, rateLimits: parseRateLimits(config.rateLimits),
    renewMaxLoad: config.renewMaxLoad, idempotencyTtlMs: config.idempotencyTtlSeconds * 1000,
    flagSecret: config.flagSecret, flagRetentionMs: config.flagRetentionDays * 86_400_000,
  };
  const metered = meterManager(metrics, config, {
    index, fleet: fleetView, catalog, syncStatus: () => gitopsApi.status(), capacity,
    reconcilers: { [GATEWAY_KEY]: 'gateway', [VIEW_KEY]: 'fleet_view' }, queue: replicaLoop.queue,
  }, log.child({ component: 'metrics' }));
  const readiness = async (): Promise<Readiness> => {
    const within = <T>(p: Promise<T>): Promise<T> => Promise.race([p, new Promise<T>((_, reject) => { setTimeout(() => reject(new Error('timeout')), 2000).unref(); })]);
    const redis = await within(lease.state()).then(() => 'ok' as const, () => 'unreachable' as const);
    const engine = builder ? await within(builder.ping()).then(() => 'ok' as const, () => 'unreachable' as const) : 'none' as const;
    const catalogState = catalog.revision ? 'ok' as const : 'empty' as const;
    return { ready: redis === 'ok' && engine !== 'unreachable', leader: leadership.leader, replica, checks: { redis, engine, catalog: catalogState } };
  };
  const app = buildApp({
    store, catalog, apiKey: config.apiKey, apiKeys: parseApiKeys(config.apiKeys), baseDomain: config.baseDomain,
    lifecycle, events, logger: log.child({ component: 'api' }), metrics: metered.routes,
    gitops: gitopsApi, catalogVersion: (inst, reason) => catalog.versionHashFor(inst, reason),
    access: { context: access.context, snapshot, linkSeconds: config.accessLinkSeconds, queueMaxWaitMs: config.queueMaxWaitSeconds * 1000 },
    index, version: VERSION, authFailures: failureLimit(config.authFailures),
    ...(config.trustProxy.length > 0 ? { trustProxy: [...config.trustProxy] } : {}),
    workers: { view: fleetView, fleet: registry, changed: () => replicaLoop.queue.add(VIEW_KEY) },
    statusSecret: config.accessSecret, readiness, ...(auditTrail ? { audit: auditTrail } : {}),
  });
  return {
    app, catalog, fleet: fleetView, index, leadership,
    term: () => term,
    async start() {
      await follower?.start();
      await relayed?.start();
      await index.start();
      await fleetView.refresh().catch((err: unknown) => controllerLog.warn({ err: (err as Error).message }, 'fleet registry not readable yet'));
      await replicaLoop.start();
      events.start();
      if (outbox) {
        events.subscribe({}, (ev) => {
          // Warm-pool members are Poseidon's own until claimed: the platform hears of a member
          // from its claim on, under the owner's team, never as team `~pool`.
          if (ev.instance.team === POOL_TEAM) return;
          void outbox.append(ev).then((added) => { if (added) relay?.poke(); }, (err: unknown) => log.warn({ err: (err as Error).message, event: ev.id }, 'could not queue a webhook event'));
        });
      }
      await metered.start();
      await leadership.start();
      log.info({ replica, leader: leadership.leader, mode: config.authMode, tls: tls ? tls.entryPoints : false, instances: index.size, registry: config.registry ?? false }, 'manager ready');
    },
    async stop() {
      await app.close();
      // Releases the lease (another replica takes over at once) after stopping the leader's work.
      await leadership.stop();
      follower?.stop();
      relayed?.stop();
      events.stop();
      await metered.stop();
      await replicaLoop.stop();
      index.stop();
      await outbox?.close();
      await auditTrail?.close();
      await lease.close?.();
      relayClient?.disconnect();
    },
  };
}

function randomSecret(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(24))).toString('base64url');
}
