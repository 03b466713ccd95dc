/**
 * Composition of a worker agent (`poseidon worker`, or the one `serve` embeds) from
 * configuration: its id, keys, engine, version source, leases and settings.
 */
import { createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import Docker from 'dockerode';
import type { Config } from '../config/config.ts';
import { parseSize } from '../config/units.ts';
import type { Logger } from 'pino';
import { newSealingKeys } from '../core/seal.ts';
import type { VersionSource } from '../core/versions.ts';
import { parseLabels } from '../core/worker.ts';
import { meterWorker } from '../metrics/compose.ts';
import { MeteredRuntime } from '../metrics/metered-runtime.ts';
import { metricsFor } from '../metrics/metrics.ts';
import { DockerRuntime } from '../runtime/docker.ts';
import { WorkerAgent } from '../worker/agent.ts';
import { persistedValue, type Backends } from './backends.ts';

export interface WorkerParts {
  agent: WorkerAgent;
  runtime: DockerRuntime;
  id: string;
}

/** The engine adapter for `config` (socket or DOCKER_HOST), owning `backends.owner`'s objects. */
export function engineFor(config: Config, backends: Backends, log: Logger): DockerRuntime {
  const d = config.docker;
  if ('socketPath' in d) return new DockerRuntime(backends.owner, { log, socketPath: d.socketPath });
  return new DockerRuntime(backends.owner, { log, docker: new Docker({ host: d.host, port: d.port, protocol: d.protocol, ...(d.ca ? { ca: d.ca, cert: d.cert, key: d.key } : {}) }) });
}

/** A DNS-label form of an engine host name (the default worker id). */
export function workerIdFrom(name: string): string {
  const id = name.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40).replace(/-+$/, '');
  return id || `worker-${randomBytes(3).toString('hex')}`;
}

/**
 * Builds a worker agent. `embedded`: the worker inside `serve` (advertises 127.0.0.1 unless
 * told otherwise; leased ports are named by the lease host or base domain as before).
 */
export async function composeWorker(config: Config, backends: Backends, versions: VersionSource, log: Logger, embedded: boolean, firewall?: { ensure(): Promise<string[]> }): Promise<WorkerParts> {
  const runtime = engineFor(config, backends, log);
  const info = await runtime.info();
  const id = config.workerId ?? workerIdFrom(info.name);
  // Persisted: flags sealed for this worker must still open after a restart.
  const privateKey = persistedValue(config.dataDir, `worker-${id}.key`, () => newSealingKeys().privateKey.trim());
  const keys = keysFrom(privateKey);
  const address = config.advertiseAddress ?? '127.0.0.1';
  // Read from the registry at each render (the manager sets a configured one there).
  const candidate = randomBytes(24).toString('base64url');
  const edgeSecret = config.ingressHttp
    ? async (): Promise<string> => config.edgeSecret ?? backends.fleet.shared('edge-secret', candidate)
    : undefined;
  const metrics = metricsFor(backends);
  const leases = backends.leases(id);
  const agent = new WorkerAgent({
    owner: backends.owner, store: backends.store, fleet: backends.fleet, runtime: new MeteredRuntime(runtime, metrics, id), versions, leases, keys,
    ...(edgeSecret ? { edgeSecret } : {}), ...(firewall ? { firewall } : {}), log: log.child({ worker: id }),
    settings: {
      id, address, labels: parseLabels(config.workerLabels), leaseAddress: config.leaseAddress,
      leaseHost: config.leaseHost ?? (embedded ? config.baseDomain : address), publishAddress: config.publishAddress,
      heartbeatMs: config.heartbeatSeconds * 1000, resyncMs: config.resyncSeconds * 1000, orphanBreakerRatio: config.orphanBreakerRatio,
      launchConcurrency: config.launchConcurrency, networkPool: config.networkPool, dataDir: config.dataDir,
      ...(config.leasePorts ? { leasePorts: config.leasePorts } : {}),
      ...(config.gatewayContainer ? { gatewayContainer: config.gatewayContainer } : {}),
      ...(config.ingressHttp && config.ingressTls ? { ingress: { http: config.ingressHttp, tls: config.ingressTls }, traefikDir: config.traefikDir, edgeSources: [...config.edgeSources] } : {}),
      ...(config.workerSlots !== undefined ? { slots: config.workerSlots } : {}),
      ...(config.workerCpu !== undefined ? { cpu: config.workerCpu } : {}),
      ...(config.workerMemory !== undefined ? { memoryBytes: parseSize(config.workerMemory) } : {}),
    },
  });
  await meterWorker(metrics, config, { id, agent, leases, embedded }, log);
  return { agent, runtime, id };
}

/** The public key of an X25519 private key (PEM). */
function keysFrom(privateKey: string): { publicKey: string; privateKey: string } {
  return { privateKey, publicKey: publicOf(privateKey) };
}

function publicOf(privateKey: string): string {
  return createPublicKey(createPrivateKey(privateKey)).export({ type: 'spki', format: 'pem' }).toString();
}
