import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildApp, type LifecycleSettings } from './api/app.ts';
import { parseApiKeys } from './api/auth.ts';
import { parseRateLimits } from './core/lifecycle.ts';
import { Catalog } from './catalog/catalog.ts';
import { loadConfig, type Config } from './config/config.ts';
import { Controller } from './controller/controller.ts';
import { admissionReconciler } from './controller/admission.ts';
import { FlagFiles } from './controller/flag-files.ts';
import { Semaphore } from './controller/semaphore.ts';
import { gatewayReconciler } from './controller/gateway-reconciler.ts';
import { instanceReconciler } from './controller/instance-reconciler.ts';
import type { Store } from './core/store.ts';
import { TraefikFileWriter } from './gateway/file-writer.ts';
import { EventHub } from './events/hub.ts';
import { WebhookSender } from './events/webhook.ts';
import { createLogger } from './logger.ts';
import { DockerRuntime } from './runtime/docker.ts';
import { openStore } from './store/open.ts';
import { redactUrl } from './store/redis.ts';

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
  for (const what of config.generated) {
    const file = what === 'apiKey' ? 'api-key' : 'flag-secret';
    log.warn({ file: `${config.dataDir}/${file}` }, `${what === 'apiKey' ? 'POSEIDON_API_KEY' : 'POSEIDON_FLAG_SECRET'} not set: using the generated one stored in this file`);
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

/** Composition root of `poseidon serve`: config, store, engine, catalog, controller, API. */
export async function startServer(opts: { env?: NodeJS.ProcessEnv; dev?: boolean } = {}): Promise<Server> {
  const config = loadConfig(opts.env, undefined, { dev: opts.dev ?? false });
  const log = createLogger(config.logLevel);
  announce(log, config);
  if (config.publishAddress) log.warn({ address: config.publishAddress }, 'publishing instance ports on a loopback address (development); no-egress networks become routed bridges');
  const store = await openStore({ ...(config.redisUrl ? { redisUrl: config.redisUrl } : {}), prefix: config.redisPrefix });
  const runtime = new DockerRuntime(config.managerId, { socketPath: config.dockerSocket });
  const catalog = new Catalog(runtime, log.child({ component: 'catalog' }), config.managerId);
  await catalog.load(config.challengesDir);
  log.info({ dir: config.challengesDir, valid: catalog.list().length, invalid: catalog.invalid().length }, 'challenges loaded');

  const controllerLog = log.child({ component: 'controller' });
  let controller: Controller | undefined;
  const reconcileInstance = instanceReconciler({
    store, runtime, catalog, flagFiles: new FlagFiles(config.dataDir), log: controllerLog,
    settings: {
      managerId: config.managerId, flagSecret: config.flagSecret, baseDomain: config.baseDomain,
      publishAddress: config.publishAddress, retentionMs: config.retentionSeconds * 1000,
      ...(config.gatewayContainer ? { gatewayContainer: config.gatewayContainer } : {}),
    },
    onRoutesChanged: () => controller?.routesChanged(),
    launches: new Semaphore(config.launchConcurrency),
  });
  const reconcileAdmission = config.capacity > 0 ? admissionReconciler({
    store, catalog, log: controllerLog, capacity: config.capacity, queueMaxWaitMs: config.queueMaxWaitSeconds * 1000,
    admitted: (id) => controller?.queue.add(id),
  }) : undefined;
  const reconcileGateway = gatewayReconciler({
    store, runtime, writer: new TraefikFileWriter(config.traefikDir), log: controllerLog,
    options: { baseDomain: config.baseDomain, entryPoints: [...config.traefikEntryPoints], poseidonUrl: config.poseidonUrl },
  });
  controller = new Controller({
    store, runtime, log: controllerLog, reconcileInstance, reconcileGateway: (ctx) => reconcileGateway(ctx),
    resyncMs: config.resyncSeconds * 1000, orphanBreakerRatio: config.orphanBreakerRatio,
    ...(reconcileAdmission ? { reconcileAdmission } : {}),
  });
  await controller.start();
  // Images build in the background; instances of a challenge wait (pending) until it is ready.
  void catalog.prepareImages().then(() => log.info({ ready: catalog.list().filter((e) => e.state === 'ready').length }, 'challenge images prepared'));

  const events = new EventHub(store, config.expiringSoonSeconds * 1000);
  events.start();
  const webhook = config.eventsWebhookUrl && config.eventsWebhookSecret
    ? new WebhookSender({ url: config.eventsWebhookUrl, secret: config.eventsWebhookSecret, log: log.child({ component: 'webhook' }) })
    : undefined;
  if (webhook) events.subscribe({}, (ev) => webhook.send(ev));
  const app = buildApp({
    store, catalog, apiKey: config.apiKey, apiKeys: parseApiKeys(config.apiKeys), baseDomain: config.baseDomain,
    lifecycle: lifecycleSettings(config), events, logger: log.child({ component: 'api' }),
  });
  await app.listen({ port: config.port, host: config.host });
  const ctl = controller;
  return {
    app, controller: ctl, catalog, store, config,
    async stop() {
      webhook?.stop();
      events.stop();
      await app.close();
      await ctl.stop();
      await store.close();
    },
  };
}
