import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildApp } from './api/app.ts';
import { Catalog } from './catalog/catalog.ts';
import { loadConfig, type Config } from './config/config.ts';
import { Controller } from './controller/controller.ts';
import { FlagFiles } from './controller/flag-files.ts';
import { gatewayReconciler } from './controller/gateway-reconciler.ts';
import { instanceReconciler } from './controller/instance-reconciler.ts';
import type { Store } from './core/store.ts';
import { TraefikFileWriter } from './gateway/file-writer.ts';
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
  });
  const reconcileGateway = gatewayReconciler({
    store, runtime, writer: new TraefikFileWriter(config.traefikDir), log: controllerLog,
    options: { baseDomain: config.baseDomain, entryPoints: [...config.traefikEntryPoints], poseidonUrl: config.poseidonUrl },
  });
  controller = new Controller({
    store, runtime, log: controllerLog, reconcileInstance, reconcileGateway: (ctx) => reconcileGateway(ctx),
    resyncMs: config.resyncSeconds * 1000, orphanBreakerRatio: config.orphanBreakerRatio,
  });
  await controller.start();
  // Images build in the background; instances of a challenge wait (pending) until it is ready.
  void catalog.prepareImages().then(() => log.info({ ready: catalog.list().filter((e) => e.state === 'ready').length }, 'challenge images prepared'));

  const app = buildApp({ store, catalog, apiKey: config.apiKey, baseDomain: config.baseDomain, logger: log.child({ component: 'api' }) });
  await app.listen({ port: config.port, host: config.host });
  const ctl = controller;
  return {
    app, controller: ctl, catalog, store, config,
    async stop() {
      await app.close();
      await ctl.stop();
      await store.close();
    },
  };
}
