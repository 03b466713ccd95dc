import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildApp, type LifecycleSettings } from './api/app.ts';
import { parseApiKeys } from './api/auth.ts';
import { parseRateLimits } from './core/lifecycle.ts';
import type { Catalog } from './catalog/catalog.ts';
import { createGitOps } from './catalog/gitops.ts';
import { engineWorker } from './catalog/images.ts';
import { loadConfig, type Config } from './config/config.ts';
import { Controller } from './controller/controller.ts';
import { admissionReconciler } from './controller/admission.ts';
import { FlagFiles } from './controller/flag-files.ts';
import { Semaphore } from './controller/semaphore.ts';
import { gatewayReconciler } from './controller/gateway-reconciler.ts';
import { instanceReconciler } from './controller/instance-reconciler.ts';
import type { Store } from './core/store.ts';
import { composeAccess } from './gateway/compose.ts';
import { TraefikFileWriter } from './gateway/file-writer.ts';
import { EventHub } from './events/hub.ts';
import { WebhookSender } from './events/webhook.ts';
import { createLogger } from './logger.ts';
import { DockerRuntime } from './runtime/docker.ts';
import { openStore } from './store/open.ts';
import { redactUrl } from './store/redis.ts';
import { VERSION } from './version.ts';

export interface Server {
  app: FastifyInstance;
  controller: Controller;
  catalog: Catalog;
  store: Store;
  config: Config;
  stop(): Promise<void>;
}

function announce(log: Logger, config: Config): void {
  if (!config.redisUrl) {
    log.warn({}, '!!! REDIS_URL is not set: using the IN-PROCESS store. Instance requests are lost when this process stops. Set REDIS_URL for anything but a laptop.');
  } else {
    log.info({ redis: redactUrl(config.redisUrl) }, 'using Redis store');
  }
  const names = { apiKey: ['api-key', 'POSEIDON_API_KEY'], flagSecret: ['flag-secret', 'POSEIDON_FLAG_SECRET'], accessSecret: ['access-secret', 'POSEIDON_ACCESS_SECRET'] } as const;
  for (const what of config.generated) {
    const [file, variable] = names[what];
    log.warn({ file: `${config.dataDir}/${file}` }, `${variable} not set: using the generated one stored in this file`);
  }
}

/** The limits the API enforces, from config. */
function lifecycleSettings(config: Config): LifecycleSettings {
  return {
    teamLimit: config.teamLimit, capacity: config.capacity, rateLimits: parseRateLimits(config.rateLimits),
    renewMaxLoad: config.renewMaxLoad, idempotencyTtlMs: config.idempotencyTtlSeconds * 1000,
    flagSecret: config.flagSecret, flagRetentionMs: config.flagRetentionDays * 86_400_000,
  };
}

/** `count/seconds` (schema-checked) as the API's failed-attempt limit. */
function failureLimit(rule: string): { attempts: number; windowMs: number } {
  const [count = '20', seconds = '60'] = rule.split('/');
  return { attempts: Number(count), windowMs: Number(seconds) * 1000 };
}

/** Composition root of `poseidon serve`: config, store, engine, catalog, controller, API. */
export async function startServer(opts: { env?: NodeJS.ProcessEnv; dev?: boolean } = {}): Promise<Server> {
  const config = loadConfig(opts.env, undefined, { dev: opts.dev ?? false });
  const log = createLogger(config.logLevel);
  announce(log, config);
  if (config.publishAddress) log.warn({ address: config.publishAddress }, 'publishing instance ports on a loopback address (development); no-egress networks become routed bridges');
  const store = await openStore({ ...(config.redisUrl ? { redisUrl: config.redisUrl } : {}), prefix: config.redisPrefix });
  const runtime = new DockerRuntime(config.managerId, { socketPath: config.dockerSocket });
  const access = composeAccess(config, store, log.child({ component: 'access' }));
  // The catalog follows its source (git or the challenges directory); see src/catalog/gitops.ts.
  const gitops = createGitOps({ config, store, workers: [engineWorker('local', runtime)], log: log.child({ component: 'catalog' }) });
  const { catalog } = gitops;
  await gitops.start();

  const controllerLog = log.child({ component: 'controller' });
  let controller: Controller | undefined;
  const reconcileInstance = instanceReconciler({
    store, runtime, catalog, flagFiles: new FlagFiles(config.dataDir), log: controllerLog,
    settings: {
      managerId: config.managerId, flagSecret: config.flagSecret, baseDomain: config.baseDomain,
      publishAddress: config.publishAddress, retentionMs: config.retentionSeconds * 1000,
      flagRetentionMs: config.flagRetentionDays * 86_400_000,
      ...(config.gatewayContainer ? { gatewayContainer: config.gatewayContainer } : {}),
    },
    onRoutesChanged: () => controller?.routesChanged(),
    mayRemoveOrphan: (id) => controller?.mayRemoveOrphan(id) ?? false,
    launches: new Semaphore(config.launchConcurrency),
    exposure: access.exposure,
  });
  // Always on: with capacity 0 nothing new queues, but instances queued earlier still get admitted.
  const reconcileAdmission = admissionReconciler({
    store, catalog, log: controllerLog, capacity: config.capacity, queueMaxWaitMs: config.queueMaxWaitSeconds * 1000,
    admitted: (id) => controller?.queue.add(id),
  });
  const reconcileGateway = gatewayReconciler({
    store, runtime, writer: new TraefikFileWriter(config.traefikDir), log: controllerLog,
    ...(config.gatewayContainer ? { gatewayContainer: config.gatewayContainer } : {}),
    options: access.gateway, onRendered: (text) => access.snapshot.set(text), sweepLeases: (list, at) => access.exposure.sweep(list, at),
  });
  controller = new Controller({
    store, runtime, log: controllerLog, reconcileInstance, reconcileGateway: (ctx) => reconcileGateway(ctx),
    resyncMs: config.resyncSeconds * 1000, orphanBreakerRatio: config.orphanBreakerRatio,
    reconcileAdmission,
  });
  await access.start();
  await controller.start();
  // Images build in the background; instances of a challenge wait (pending) until it is ready.
  gitops.attach((id) => controller?.queue.add(id));

  const events = new EventHub(store, access.index, config.expiringSoonSeconds * 1000);
  events.start();
  const webhook = config.eventsWebhookUrl && config.eventsWebhookSecret
    ? new WebhookSender({ url: config.eventsWebhookUrl, secret: config.eventsWebhookSecret, log: log.child({ component: 'webhook' }) })
    : undefined;
  if (webhook) events.subscribe({}, (ev) => webhook.send(ev));
  const app = buildApp({
    store, catalog, apiKey: config.apiKey, apiKeys: parseApiKeys(config.apiKeys), baseDomain: config.baseDomain,
    lifecycle: lifecycleSettings(config), events, logger: log.child({ component: 'api' }),
    gitops: gitops.api, catalogVersion: (inst, reason) => catalog.versionHashFor(inst, reason),
    access: { context: access.context, snapshot: access.snapshot, linkSeconds: config.accessLinkSeconds, queueMaxWaitMs: config.queueMaxWaitSeconds * 1000 },
    index: access.index, version: VERSION, authFailures: failureLimit(config.authFailures),
    ...(config.trustProxy.length > 0 ? { trustProxy: [...config.trustProxy] } : {}),
  });
  await app.listen({ port: config.port, host: config.host });
  const ctl = controller;
  return {
    app, controller: ctl, catalog, store, config,
    async stop() {
      webhook?.stop();
      events.stop();
      await app.close();
      await gitops.stop();
      await ctl.stop();
      await access.stop();
      await store.close();
    },
  };
}
