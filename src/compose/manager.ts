/**
 * Composition of the manager (`poseidon serve` without its embedded worker): catalog and sync,
 * admission, placement, the fleet pass, the edge gateway, events and the API. Adapters come in
 * from `backends.ts`; components talk through the queue, never through callbacks into each other.
 */
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildApp, type LifecycleSettings } from '../api/app.ts';
import { parseApiKeys } from '../api/auth.ts';
import type { Catalog } from '../catalog/catalog.ts';
import { NoCatalogStore, RedisCatalogStore } from '../catalog/catalog-store.ts';
import { createGitOps, type GitOps } from '../catalog/gitops.ts';
import type { Config } from '../config/config.ts';
import { admissionReconciler } from '../controller/admission.ts';
import { Controller, every } from '../controller/controller.ts';
import { FleetView, holdsResources } from '../controller/fleet-view.ts';
import { deriveImageStates } from '../controller/image-states.ts';
import { gatewayReconciler } from '../controller/gateway-reconciler.ts';
import { placementReconciler } from '../controller/placement-reconciler.ts';
import { parseRateLimits } from '../core/lifecycle.ts';
import { INSTANCE_ID_PATTERN } from '../core/naming.ts';
import type { ReconcileContext, ReconcileResult } from '../core/reconcile.ts';
import { EventHub } from '../events/hub.ts';
import { WebhookSender } from '../events/webhook.ts';
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
import { VERSION } from '../version.ts';
import type { Backends } from './backends.ts';
import { engineFor } from './worker.ts';

export const GATEWAY_KEY = 'gateway';
export const ADMISSION_KEY = 'admission';
export const FLEET_KEY = 'fleet';

export interface Manager {
  app: FastifyInstance;
  controller: Controller;
  catalog: Catalog;
  gitops: GitOps;
  fleet: FleetView;
  index: InstanceIndex;
  /** Starts the loops (the API is built but not listening). */
  start(): Promise<void>;
  stop(): Promise<void>;
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

/** Builds the manager over `backends` (see the module comment); nothing runs until `start`. */
export async function composeManager(config: Config, backends: Backends, log: Logger): Promise<Manager> {
  const { store, fleet: registry } = backends;
  const metrics = metricsFor(backends);
  const index = new InstanceIndex(store, { refreshMs: config.resyncSeconds * 1000, log: log.child({ component: 'index' }) });
  const catalogLog = log.child({ component: 'catalog' });
  const gitops = createGitOps({
    source: sourceFor(config), store, log: catalogLog,
    catalogStore: config.redisUrl ? new RedisCatalogStore(config.redisUrl, config.redisPrefix) : new NoCatalogStore(),
    pollMs: config.gitUrl ? config.gitPollSeconds * 1000 : 0,
    webhook: { ...(config.webhookSecret ? { secret: config.webhookSecret } : {}), branch: config.gitBranch },
    ...(config.registry ? { publish: { registry: config.registry, builder: new MeteredRuntime(engineFor(config, backends, catalogLog), metrics, 'builder'), owner: backends.owner } } : {}),
  });
  const { catalog } = gitops;
  const fleetView = new FleetView({
    fleet: registry, instances: index, lostAfterMs: config.workerLostSeconds * 1000,
    resources: (inst) => catalog.version(inst.specHash)?.spec.resources ?? { cpu: 0, memoryBytes: 0 },
  });
  const tls = gatewayTls(config);
  // Workers read it from the registry: a configured one replaces whatever is stored there.
  if (config.edgeSecret) await registry.setShared('edge-secret', config.edgeSecret);
  const edgeSecret = config.edgeSecret ?? (config.redisUrl ? await registry.shared('edge-secret', randomSecret()) : undefined);
  const access = composeAccess(config, index, log.child({ component: 'access' }));
  const snapshot = new GatewaySnapshot();
  const controllerLog = log.child({ component: 'controller' });
  /** Capacity admission may fill: POSEIDON_CAPACITY capped by ready workers' slots (0 means no cap on either side). */
  const capacity = (): number => {
    const limits = [config.capacity, fleetView.capacity()].filter((n) => n > 0);
    return limits.length ? Math.min(...limits) : 0;
  };
  const place = placementReconciler({
    store, catalog, fleet: fleetView, log: controllerLog, remember: (inst) => index.put(inst),
    settings: {
      baseDomain: config.baseDomain, tls: tls !== undefined, flagSecret: config.flagSecret, flagRetentionMs: config.flagRetentionDays * 86_400_000,
      retentionMs: config.retentionSeconds * 1000, onWorkerLost: config.onWorkerLost,
    },
  });
  const admit = admissionReconciler({
    store, catalog, log: controllerLog, capacity, queueMaxWaitMs: config.queueMaxWaitSeconds * 1000, admitted: (id) => controller.queue.add(id),
  });
  const gatewayOptions: GatewayOptions = { baseDomain: config.baseDomain, entryPoints: [...config.traefikEntryPoints], poseidonUrl: config.poseidonUrl, ...(tls ? { tls } : {}), ...(edgeSecret ? { edgeSecret } : {}) };
  const gateway = gatewayReconciler({
    store, workers: () => fleetView.workers(), writer: new TraefikFileWriter(config.traefikDir), options: gatewayOptions, log: controllerLog,
    onRendered: (text) => snapshot.set(text),
  });
  /** What the edge routes depend on per worker: its state and its ingress. */
  const lastRouting = new Map<string, string>();
  const fleetPass = async (ctx: ReconcileContext): Promise<ReconcileResult> => {
    await fleetView.refresh();
    const now = ctx.now().getTime();
    const workers = fleetView.workers();
    let changed = lastRouting.size !== workers.length;
    for (const w of workers) {
      const routing = `${w.state} ${w.ingress?.http ?? ''} ${w.ingress?.tls ?? ''}`;
      if (lastRouting.get(w.id) !== routing) changed = true;
      lastRouting.set(w.id, routing);
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
    gitops.changed(deriveImageStates(catalog, fleetView));
    if (changed) controller.queue.add(GATEWAY_KEY);
    controller.queue.add(ADMISSION_KEY);
    return {};
  };
  const controller = new Controller({
    log: controllerLog, resyncMs: config.resyncSeconds * 1000,
    keys: async () => [...await store.listIds(), GATEWAY_KEY, ADMISSION_KEY, FLEET_KEY],
    reconcile: (ctx, key) => {
      if (key === GATEWAY_KEY) return gateway(ctx);
      if (key === ADMISSION_KEY) return admit(ctx);
      if (key === FLEET_KEY) return fleetPass(ctx);
      return INSTANCE_ID_PATTERN.test(key) ? place(ctx, key) : Promise.resolve({});
    },
    sources: [
      (enqueue) => store.onChange((id) => {
        enqueue(id);
        // Any change may free a place, add a waiter, or change a route.
        enqueue(ADMISSION_KEY);
        enqueue(GATEWAY_KEY);
      }),
      (enqueue) => registry.onChange(() => enqueue(FLEET_KEY)),
      // Lost is level-based on the heartbeat deadline: no event announces it.
      every(config.heartbeatSeconds * 1000, FLEET_KEY),
    ],
  });
  const events = new EventHub(store, index, config.expiringSoonSeconds * 1000);
  const webhook = config.eventsWebhookUrl && config.eventsWebhookSecret
    ? new WebhookSender({ url: config.eventsWebhookUrl, secret: config.eventsWebhookSecret, log: log.child({ component: 'webhook' }), observe: (o) => metrics.webhook(o) })
    : undefined;
  const lifecycle: LifecycleSettings = {
    teamLimit: config.teamLimit, capacity, rateLimits: parseRateLimits(config.rateLimits),
    renewMaxLoad: config.renewMaxLoad, idempotencyTtlMs: config.idempotencyTtlSeconds * 1000,
    flagSecret: config.flagSecret, flagRetentionMs: config.flagRetentionDays * 86_400_000,
  };
  const metered = meterManager(metrics, config, {
    index, fleet: fleetView, catalog, syncStatus: () => gitops.sync.status(), capacity, queue: controller.queue,
    reconcilers: { [GATEWAY_KEY]: 'gateway', [ADMISSION_KEY]: 'admission', [FLEET_KEY]: 'fleet' },
  }, log.child({ component: 'metrics' }));
  const app = buildApp({
    store, catalog, apiKey: config.apiKey, apiKeys: parseApiKeys(config.apiKeys), baseDomain: config.baseDomain,
    lifecycle, events, logger: log.child({ component: 'api' }), metrics: metered.routes,
    gitops: gitops.api, catalogVersion: (inst, reason) => catalog.versionHashFor(inst, reason),
    access: { context: access.context, snapshot, linkSeconds: config.accessLinkSeconds, queueMaxWaitMs: config.queueMaxWaitSeconds * 1000 },
    index, version: VERSION, authFailures: failureLimit(config.authFailures),
    ...(config.trustProxy.length > 0 ? { trustProxy: [...config.trustProxy] } : {}),
    workers: { view: fleetView, fleet: registry, changed: () => controller.queue.add(FLEET_KEY) },
    statusSecret: config.accessSecret,
  });
  return {
    app, controller, catalog, gitops, fleet: fleetView, index,
    async start() {
      await gitops.start();
      await index.start();
      await fleetView.refresh().catch((err: unknown) => controllerLog.warn({ err: (err as Error).message }, 'fleet registry not readable yet'));
      await controller.start();
      gitops.attach((id) => controller.queue.add(id));
      events.start();
      if (webhook) events.subscribe({}, (ev) => webhook.send(ev));
      await metered.start();
      log.info({ mode: config.authMode, tls: tls ? tls.entryPoints : false, instances: index.size, registry: config.registry ?? false }, 'manager ready');
    },
    async stop() {
      webhook?.stop();
      events.stop();
      await app.close();
      await metered.stop();
      await gitops.stop();
      await controller.stop();
      index.stop();
    },
  };
}

function randomSecret(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(24))).toString('base64url');
}
