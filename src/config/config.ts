import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv } from 'ajv';
import { Codes, PoseidonError } from '../core/errors.ts';
import { ACCESS_ENV_NAMES, checkAccess, type AccessConfig } from './access.ts';
import { GITOPS_ENV_NAMES, GITOPS_SECRET_KEYS, gitProcessEnv, secretsFromFiles, type GitOpsConfig } from './gitops-config.ts';

/** Validated, defaulted, frozen server configuration. The only place that reads the environment. */
export interface Config extends AccessConfig, GitOpsConfig {
  readonly port: number;
  readonly host: string;
  readonly apiKey: string;
  readonly redisUrl?: string;
  /** Replicas a launch must reach before it is acknowledged (Redis WAIT). */
  readonly redisWaitReplicas: number;
  /** Manager lease (several `serve` replicas on one Redis): its length, the leader's renew deadline, the retry period. */
  readonly leaseSeconds: number;
  readonly leaseRenewSeconds: number;
  readonly leaseRetrySeconds: number;
  readonly redisPrefix: string;
  readonly challengesDir: string;
  readonly dataDir: string;
  readonly traefikDir: string;
  readonly traefikEntryPoints: readonly string[];
  readonly poseidonUrl: string;
  readonly baseDomain: string;
  readonly flagSecret: string;
  readonly dockerSocket: string;
  /** The engine to drive: a socket, or `DOCKER_HOST=tcp://host:port` (TLS with DOCKER_TLS_VERIFY and DOCKER_CERT_PATH). */
  readonly docker: DockerEndpoint;
  readonly managerId: string;
  readonly gatewayContainer?: string;
  readonly publishAddress: string;
  readonly resyncSeconds: number;
  readonly retentionSeconds: number;
  readonly orphanBreakerRatio: number;
  readonly logLevel: string;
  /** Extra API keys, `name:role[:team]:sha256hex`. */
  readonly apiKeys: readonly string[];
  /** Failed key attempts per client address, `count/seconds`. */
  readonly authFailures: string;
  /** Proxies trusted for X-Forwarded-For (addresses or CIDRs). */
  readonly trustProxy: readonly string[];
  readonly teamLimit: number;
  readonly capacity: number;
  readonly queueMaxWaitSeconds: number;
  readonly launchConcurrency: number;
  /** `action=count/seconds`. */
  readonly rateLimits: readonly string[];
  readonly renewMaxLoad: number;
  readonly idempotencyTtlSeconds: number;
  readonly flagRetentionDays: number;
  readonly expiringSoonSeconds: number;
  readonly eventsWebhookUrl?: string;
  readonly eventsWebhookSecret?: string;
  readonly embeddedWorker: boolean;
  readonly registry?: string;
  readonly deploymentId?: string;
  readonly edgeSecret?: string;
  readonly workerId?: string;
  readonly advertiseAddress?: string;
  readonly workerSlots?: number;
  readonly workerCpu?: number;
  readonly workerMemory?: string;
  readonly workerLabels: string;
  readonly ingressHttp?: string;
  readonly ingressTls?: string;
  readonly edgeSources: readonly string[];
  readonly heartbeatSeconds: number;
  readonly workerLostSeconds: number;
  readonly onWorkerLost: 'reschedule' | 'fail';
  readonly firewall: 'auto' | 'on' | 'off';
  readonly firewallAllowHostPorts: readonly number[];
  readonly firewallDeny: readonly string[];
  readonly firewallDns: readonly string[];
  /** Bearer token required on `GET /metrics` (POSEIDON_METRICS_TOKEN). */
  readonly metricsToken?: string;
  /** `host:port` of a separate listener serving only `/metrics` (POSEIDON_METRICS_ADDRESS). */
  readonly metricsAddress?: string;
  /** Which secrets were generated (and persisted in dataDir) because the environment lacked them. */
  readonly generated: readonly ('apiKey' | 'flagSecret' | 'accessSecret')[];
}

/** How to reach the Docker engine. */
export type DockerEndpoint =
  | { socketPath: string }
  | { host: string; port: number; protocol: 'http' | 'https'; ca?: Buffer; cert?: Buffer; key?: Buffer };

/** POSEIDON_DOCKER_SOCKET when set, else DOCKER_HOST (unix:// or tcp://), else the default socket. */
function dockerEndpoint(socket: string, env: NodeJS.ProcessEnv, explicitSocket: boolean): DockerEndpoint {
  const host = env.DOCKER_HOST;
  if (explicitSocket || !host) return { socketPath: socket };
  if (host.startsWith('unix://')) return { socketPath: host.slice('unix://'.length) };
  const m = /^tcp:\/\/([A-Za-z0-9.-]+):([0-9]{1,5})\/?$/.exec(host);
  if (!m) throw new PoseidonError(Codes.configInvalid, `invalid configuration: DOCKER_HOST must be unix:///path or tcp://host:port (got ${JSON.stringify(host)})`, { kind: 'input' });
  const tls = env.DOCKER_TLS_VERIFY !== undefined && env.DOCKER_TLS_VERIFY !== '' && env.DOCKER_TLS_VERIFY !== '0';
  if (!tls) return { host: m[1] as string, port: Number(m[2]), protocol: 'http' };
  const dir = env.DOCKER_CERT_PATH ?? path.join(env.HOME ?? '/root', '.docker');
  const read = (f: string): Buffer => {
    try {
      return readFileSync(path.join(dir, f));
    } catch {
      throw new PoseidonError(Codes.configInvalid, `invalid configuration: DOCKER_TLS_VERIFY is set but ${path.join(dir, f)} cannot be read (DOCKER_CERT_PATH)`, { kind: 'input' });
    }
  };
  return { host: m[1] as string, port: Number(m[2]), protocol: 'https', ca: read('ca.pem'), cert: read('cert.pem'), key: read('key.pem') };
}

const ENV_NAMES: Record<string, string> = {
  POSEIDON_PORT: 'port', POSEIDON_HOST: 'host', POSEIDON_API_KEY: 'apiKey', REDIS_URL: 'redisUrl',
  REDIS_SENTINELS: 'redisSentinels', REDIS_SENTINEL_NAME: 'redisSentinelName', POSEIDON_REDIS_WAIT_REPLICAS: 'redisWaitReplicas',
  POSEIDON_LEASE_SECONDS: 'leaseSeconds', POSEIDON_LEASE_RENEW_SECONDS: 'leaseRenewSeconds', POSEIDON_LEASE_RETRY_SECONDS: 'leaseRetrySeconds',
  POSEIDON_REDIS_PREFIX: 'redisPrefix', POSEIDON_CHALLENGES_DIR: 'challengesDir',
  POSEIDON_DATA_DIR: 'dataDir', POSEIDON_TRAEFIK_DIR: 'traefikDir',
  POSEIDON_TRAEFIK_ENTRYPOINTS: 'traefikEntryPoints', POSEIDON_URL: 'poseidonUrl',
  POSEIDON_BASE_DOMAIN: 'baseDomain', POSEIDON_FLAG_SECRET: 'flagSecret',
  POSEIDON_DOCKER_SOCKET: 'dockerSocket', POSEIDON_MANAGER_ID: 'managerId',
  POSEIDON_GATEWAY_CONTAINER: 'gatewayContainer', POSEIDON_PUBLISH_ADDRESS: 'publishAddress',
  POSEIDON_RESYNC_SECONDS: 'resyncSeconds', POSEIDON_RETENTION_SECONDS: 'retentionSeconds',
  POSEIDON_ORPHAN_BREAKER_RATIO: 'orphanBreakerRatio', POSEIDON_LOG_LEVEL: 'logLevel',
  POSEIDON_API_KEYS: 'apiKeys', POSEIDON_TEAM_LIMIT: 'teamLimit', POSEIDON_CAPACITY: 'capacity',
  POSEIDON_QUEUE_MAX_WAIT_SECONDS: 'queueMaxWaitSeconds', POSEIDON_LAUNCH_CONCURRENCY: 'launchConcurrency',
  POSEIDON_RATE_LIMITS: 'rateLimits', POSEIDON_RENEW_MAX_LOAD: 'renewMaxLoad',
  POSEIDON_IDEMPOTENCY_TTL_SECONDS: 'idempotencyTtlSeconds', POSEIDON_FLAG_RETENTION_DAYS: 'flagRetentionDays',
  POSEIDON_EXPIRING_SOON_SECONDS: 'expiringSoonSeconds', POSEIDON_EVENTS_WEBHOOK_URL: 'eventsWebhookUrl',
  POSEIDON_EVENTS_WEBHOOK_SECRET: 'eventsWebhookSecret', POSEIDON_AUTH_FAILURES: 'authFailures',
  POSEIDON_TRUST_PROXY: 'trustProxy', POSEIDON_EMBEDDED_WORKER: 'embeddedWorker', POSEIDON_REGISTRY: 'registry',
  POSEIDON_DEPLOYMENT_ID: 'deploymentId', POSEIDON_EDGE_SECRET: 'edgeSecret', POSEIDON_WORKER_ID: 'workerId',
  POSEIDON_ADVERTISE_ADDRESS: 'advertiseAddress', POSEIDON_WORKER_SLOTS: 'workerSlots', POSEIDON_WORKER_CPU: 'workerCpu',
  POSEIDON_WORKER_MEMORY: 'workerMemory', POSEIDON_WORKER_LABELS: 'workerLabels', POSEIDON_INGRESS_HTTP: 'ingressHttp',
  POSEIDON_INGRESS_TLS: 'ingressTls', POSEIDON_EDGE_SOURCES: 'edgeSources', POSEIDON_HEARTBEAT_SECONDS: 'heartbeatSeconds', POSEIDON_WORKER_LOST_SECONDS: 'workerLostSeconds',
  POSEIDON_ON_WORKER_LOST: 'onWorkerLost', POSEIDON_FIREWALL: 'firewall', POSEIDON_FIREWALL_ALLOW_HOST_PORTS: 'firewallAllowHostPorts',
  POSEIDON_FIREWALL_DENY: 'firewallDeny', POSEIDON_FIREWALL_DNS: 'firewallDns',
  POSEIDON_METRICS_TOKEN: 'metricsToken', POSEIDON_METRICS_ADDRESS: 'metricsAddress',
  ...ACCESS_ENV_NAMES,
  ...GITOPS_ENV_NAMES,
};
const SECRET_KEYS = new Set(['apiKey', 'flagSecret', 'redisUrl', 'apiKeys', 'eventsWebhookSecret', 'accessSecret', 'edgeSecret', 'metricsToken', ...GITOPS_SECRET_KEYS]);
/** Variables holding comma-separated lists. */
const LIST_KEYS = new Set(['traefikEntryPoints', 'apiKeys', 'rateLimits', 'tlsEntryPoints', 'trustProxy', 'authDelegateCookies', 'firewallAllowHostPorts', 'firewallDeny', 'firewallDns', 'edgeSources']);
const schemaPath = new URL('../../schemas/config.schema.json', import.meta.url);
const schema = JSON.parse(readFileSync(schemaPath, 'utf8')) as object;
const validate = new Ajv({ useDefaults: true, coerceTypes: true, allErrors: true }).compile(schema);

/** Maps environment variables to raw config fields; empty values count as unset. */
function fromEnv(env: NodeJS.ProcessEnv): Record<string, unknown> {
  const raw: Record<string, unknown> = {};
  for (const [name, key] of Object.entries(ENV_NAMES)) {
    const value = env[name];
    if (value === undefined || (value === '' && key !== 'publishAddress')) continue;
    raw[key] = LIST_KEYS.has(key) ? value.split(',').map((s) => s.trim()).filter((s) => s !== '') : value;
  }
  return raw;
}

/** Shortest secret accepted from any source (environment, file or generated). */
export const MIN_SECRET_LENGTH = 16;

/**
 * REDIS_SENTINELS + REDIS_SENTINEL_NAME become a `redis+sentinel://` URL (keeping a password of
 * REDIS_URL, if one was given for the data nodes), so every client is made one way.
 */
function sentinelUrl(raw: Record<string, unknown>): void {
  const { redisSentinels: sentinels, redisSentinelName: name } = raw as { redisSentinels?: string; redisSentinelName?: string };
  delete raw.redisSentinels;
  delete raw.redisSentinelName;
  if (sentinels === undefined && name === undefined) return;
  if (sentinels === undefined || name === undefined) {
    throw new PoseidonError(Codes.configInvalid, 'invalid configuration: REDIS_SENTINELS and REDIS_SENTINEL_NAME go together', { kind: 'input' });
  }
  const auth = typeof raw.redisUrl === 'string' ? /^[a-z+]+:\/\/(:[^@/]*@)/.exec(raw.redisUrl)?.[1] ?? '' : '';
  raw.redisUrl = `redis+sentinel://${auth}${sentinels}/${name}`;
}

/**
 * Reads a persisted generated secret, or creates it. Created atomically (a temp file, mode 0600,
 * renamed into place), so a crash never leaves a short or empty file; a file that is short or
 * empty anyway (a `touch`, an editor) refuses start-up instead of meaning "no secret".
 */
function persistedSecret(dataDir: string, file: string, variable: string): string {
  const p = path.join(dataDir, file);
  if (existsSync(p)) {
    const secret = readFileSync(p, 'utf8').trim();
    if (secret.length < MIN_SECRET_LENGTH) {
      throw new PoseidonError(Codes.configInvalid, `invalid configuration: ${p} holds ${secret.length === 0 ? 'an empty' : 'a too short'} secret (at least ${MIN_SECRET_LENGTH} characters); delete it to have a new one generated, or set ${variable}`, { kind: 'input' });
    }
    return secret;
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const secret = randomBytes(24).toString('base64url');
  const tmp = `${p}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    writeFileSync(tmp, `${secret}\n`, { mode: 0o600, flag: 'wx' });
    renameSync(tmp, p);
  } finally {
    rmSync(tmp, { force: true });
  }
  return secret;
}

export interface LoadOptions {
  /** Laptop profile (`npm start`): publish instance ports on 127.0.0.1 unless configured otherwise. */
  dev?: boolean;
  /**
   * `worker`: `poseidon worker`, which needs Redis and never holds the manager's secrets (API key,
   * flag secret, access secret are neither read nor generated). Default `manager`.
   */
  role?: 'manager' | 'worker';
}

/**
 * Builds the configuration from `env` (default: process.env). Throws PoseidonError
 * E_CONFIG_INVALID naming every bad variable (values of secret variables are never echoed).
 * Missing API key and flag secret are generated once and persisted under the data dir.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd(), opts: LoadOptions = {}): Config {
  const raw = { ...fromEnv(env), ...secretsFromFiles(env, cwd) };
  if (opts.dev && raw.publishAddress === undefined) raw.publishAddress = '127.0.0.1';
  if (opts.dev && raw.leaseAddress === undefined) raw.leaseAddress = '127.0.0.1';
  if (!validate(raw)) {
    const byKey = Object.fromEntries(Object.entries(ENV_NAMES).map(([n, k]) => [k, n]));
    const problems = (validate.errors ?? []).map((e) => {
      const key = e.instancePath.split('/')[1] ?? '';
      const shown = SECRET_KEYS.has(key) ? '' : ` (got ${JSON.stringify(raw[key])})`;
      return `${byKey[key] ?? key}: ${e.message ?? 'invalid'}${shown}`;
    });
    throw new PoseidonError(Codes.configInvalid, `invalid configuration: ${problems.join('; ')}`, { kind: 'input' });
  }
  if (raw.eventsWebhookUrl !== undefined && raw.eventsWebhookSecret === undefined) {
    throw new PoseidonError(Codes.configInvalid, 'invalid configuration: POSEIDON_EVENTS_WEBHOOK_SECRET is required with POSEIDON_EVENTS_WEBHOOK_URL', { kind: 'input' });
  }
  checkAccess(raw);
  sentinelUrl(raw);
  if (!((raw.leaseRetrySeconds as number) < (raw.leaseRenewSeconds as number) && (raw.leaseRenewSeconds as number) < (raw.leaseSeconds as number))) {
    throw new PoseidonError(Codes.configInvalid, `invalid configuration: the lease timings must satisfy POSEIDON_LEASE_RETRY_SECONDS < POSEIDON_LEASE_RENEW_SECONDS < POSEIDON_LEASE_SECONDS (got ${String(raw.leaseRetrySeconds)} < ${String(raw.leaseRenewSeconds)} < ${String(raw.leaseSeconds)})`, { kind: 'input' });
  }
  if ((raw.ingressHttp === undefined) !== (raw.ingressTls === undefined)) {
    throw new PoseidonError(Codes.configInvalid, 'invalid configuration: POSEIDON_INGRESS_HTTP and POSEIDON_INGRESS_TLS go together', { kind: 'input' });
  }
  const dataDir = path.resolve(cwd, raw.dataDir as string);
  raw.docker = dockerEndpoint(raw.dockerSocket as string, env, env.POSEIDON_DOCKER_SOCKET !== undefined && env.POSEIDON_DOCKER_SOCKET !== '');
  if (opts.role === 'worker') return workerConfig(raw, env, cwd, dataDir);
  const generated: ('apiKey' | 'flagSecret' | 'accessSecret')[] = [];
  if (raw.apiKey === undefined) { raw.apiKey = persistedSecret(dataDir, 'api-key', 'POSEIDON_API_KEY'); generated.push('apiKey'); }
  if (raw.flagSecret === undefined) { raw.flagSecret = persistedSecret(dataDir, 'flag-secret', 'POSEIDON_FLAG_SECRET'); generated.push('flagSecret'); }
  if (raw.accessSecret === undefined) { raw.accessSecret = persistedSecret(dataDir, 'access-secret', 'POSEIDON_ACCESS_SECRET'); generated.push('accessSecret'); }
  const config = {
    ...raw,
    dataDir,
    challengesDir: path.resolve(cwd, raw.challengesDir as string),
    traefikDir: path.resolve(cwd, raw.traefikDir as string),
    generated,
    gitEnv: gitProcessEnv(env),
  } as unknown as Config;
  return Object.freeze(config);
}

/** A worker's configuration: Redis required, the manager's secrets dropped (never needed there). */
function workerConfig(raw: Record<string, unknown>, env: NodeJS.ProcessEnv, cwd: string, dataDir: string): Config {
  if (raw.redisUrl === undefined) {
    throw new PoseidonError(Codes.configInvalid, 'invalid configuration: REDIS_URL is required for poseidon worker (the registry it registers in)', { kind: 'input' });
  }
  const { apiKey: _a, flagSecret: _f, accessSecret: _s, ...rest } = raw;
  return Object.freeze({
    ...rest, apiKey: '', flagSecret: '', accessSecret: '', dataDir, generated: [],
    challengesDir: path.resolve(cwd, raw.challengesDir as string), traefikDir: path.resolve(cwd, raw.traefikDir as string), gitEnv: gitProcessEnv(env),
  } as unknown as Config);
}
