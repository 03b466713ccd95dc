/**
 * Process entry points: `poseidon serve` (the manager, plus by default an embedded worker for the
 * local engine, so one command still runs a whole single-host setup) and `poseidon worker` (the
 * agent on another Docker host: Redis and its engine, nothing else).
 */
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Catalog } from './catalog/catalog.ts';
import { catalogVersions, RedisVersionSource } from './catalog/version-source.ts';
import { openBackends, type Backends } from './compose/backends.ts';
import { composeManager, type Manager } from './compose/manager.ts';
import { composeWorker } from './compose/worker.ts';
import { loadConfig, type Config } from './config/config.ts';
import type { Store } from './core/store.ts';
import { BRIDGE_PREFIX, EGRESS_BRIDGE_PREFIX } from './core/naming.ts';
import { createLogger } from './logger.ts';
import { HostFirewall } from './runtime/firewall.ts';
import { redactUrl } from './store/redis.ts';
import type { WorkerAgent } from './worker/agent.ts';

export interface Server {
  app: FastifyInstance;
  manager: Manager;
  catalog: Catalog;
  store: Store;
  config: Config;
  /** The embedded worker (absent with POSEIDON_EMBEDDED_WORKER=false). */
  worker?: WorkerAgent;
  stop(): Promise<void>;
}

/** Which config file was read (or none) and its warnings. */
function announceFile(log: Logger, config: Config): void {
  log.info({ file: config.configFile ?? 'none' }, 'configuration file');
  for (const warning of config.configWarnings ?? []) log.warn({}, warning);
}

function announce(log: Logger, config: Config): void {
  announceFile(log, config);
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
  if (config.publishAddress) log.warn({ address: config.publishAddress }, 'publishing instance ports on a loopback address (development); no-egress networks become routed bridges');
}

/**
 * The host firewall for this worker's instances (docs/firewall.md), per POSEIDON_FIREWALL:
 * `on` refuses to start without it, `auto` installs it when it can and says so loudly when it
 * cannot, `off` leaves the host alone.
 */
async function firewallFor(config: Config, log: Logger): Promise<HostFirewall | undefined> {
  if (config.firewall === 'off') return undefined;
  const fw = new HostFirewall({
    bridgePrefix: BRIDGE_PREFIX, egressBridgePrefix: EGRESS_BRIDGE_PREFIX, allowHostPorts: [...config.firewallAllowHostPorts],
    denyDestinations: [...config.firewallDeny], allowDns: [...config.firewallDns], log: log.child({ component: 'firewall' }),
  });
  try {
    const changed = await fw.ensure();
    log.info({ changed }, 'host firewall in place: instances reach neither the host, nor each other, nor the LAN or metadata');
    return fw;
  } catch (err) {
    if (config.firewall === 'on') throw err;
    log.warn({ err: (err as Error).message }, '!!! host firewall NOT installed (POSEIDON_FIREWALL=auto): instances can reach services on this host and the LAN');
    return undefined;
  }
}

/** Composition root of `poseidon serve`. */
export async function startServer(opts: { env?: NodeJS.ProcessEnv; dev?: boolean; configFile?: string } = {}): Promise<Server> {
  const config = loadConfig(opts.env, undefined, { dev: opts.dev ?? false, ...(opts.configFile === undefined ? {} : { configFile: opts.configFile }) });
  const log = createLogger(config.logLevel);
  announce(log, config);
  const backends = await openBackends(config);
  const manager = await composeManager(config, backends, log);
  let worker: WorkerAgent | undefined;
  try {
    if (config.embeddedWorker) {
      const firewall = await firewallFor(config, log);
      worker = (await composeWorker(config, backends, catalogVersions(manager.catalog), log, true, firewall)).agent;
    }
    await manager.start();
    await worker?.start();
    await manager.app.listen({ port: config.port, host: config.host });
  } catch (err) {
    await worker?.stop().catch(() => undefined);
    await manager.stop().catch(() => undefined);
    await backends.close().catch(() => undefined);
    throw err;
  }
  return {
    app: manager.app, manager, catalog: manager.catalog, store: backends.store, config, ...(worker ? { worker } : {}),
    async stop() {
      await manager.stop();
      await worker?.stop();
      await backends.close();
    },
  };
}

export interface WorkerProcess {
  agent: WorkerAgent;
  config: Config;
  backends: Backends;
  stop(): Promise<void>;
}

/** Composition root of `poseidon worker`: Redis, the local engine, and the agent. */
export async function startWorkerProcess(opts: { env?: NodeJS.ProcessEnv; configFile?: string } = {}): Promise<WorkerProcess> {
  const config = loadConfig(opts.env, undefined, { role: 'worker', ...(opts.configFile === undefined ? {} : { configFile: opts.configFile }) });
  const log = createLogger(config.logLevel);
  announceFile(log, config);
  log.info({ redis: redactUrl(config.redisUrl ?? '') }, 'worker starting');
  const backends = await openBackends(config);
  const versions = new RedisVersionSource({ url: config.redisUrl as string, prefix: config.redisPrefix });
  const firewall = await firewallFor(config, log);
  const { agent } = await composeWorker(config, backends, versions, log, false, firewall);
  await agent.start();
  return {
    agent, config, backends,
    async stop() {
      await agent.stop();
      await versions.close();
      await backends.close();
    },
  };
}
