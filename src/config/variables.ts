/**
 * The configuration variables: environment name -> config field, which fields are secrets and
 * which are comma-separated lists. The config file uses exactly these names as its keys.
 */
import { ACCESS_ENV_NAMES } from './access.ts';
import { FILE_VARIANTS, GITOPS_ENV_NAMES, GITOPS_SECRET_KEYS } from './gitops-config.ts';

/** Environment variable -> field of the raw configuration the schema validates. */
export const ENV_NAMES: Record<string, string> = {
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
  POSEIDON_QUEUE_MAX_WAIT_SECONDS: 'queueMaxWaitSeconds', POSEIDON_LAUNCH_CONCURRENCY: 'launchConcurrency', POSEIDON_NETWORK_POOL: 'networkPool',
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
/** Fields whose values are never echoed (errors, logs, `config check`). */
export const SECRET_KEYS = new Set(['apiKey', 'flagSecret', 'redisUrl', 'apiKeys', 'eventsWebhookSecret', 'accessSecret', 'edgeSecret', 'metricsToken', ...GITOPS_SECRET_KEYS]);
/** Variables holding comma-separated lists. */
export const LIST_KEYS = new Set(['traefikEntryPoints', 'apiKeys', 'rateLimits', 'tlsEntryPoints', 'trustProxy', 'authDelegateCookies', 'firewallAllowHostPorts', 'firewallDeny', 'firewallDns', 'edgeSources']);

/** Variables read beside the table: the Docker client's own, and the `*_FILE` secret variants. */
export const EXTRA_NAMES: readonly string[] = ['DOCKER_HOST', 'DOCKER_TLS_VERIFY', 'DOCKER_CERT_PATH', ...Object.keys(FILE_VARIANTS)];

/** Every name a config file may hold (and `config check` lists), in table order. */
export const ALL_NAMES: readonly string[] = [...Object.keys(ENV_NAMES), ...EXTRA_NAMES];

/** True for variables whose value is a secret (masked by `config check`, never echoed). */
export function isSecretName(name: string): boolean {
  const key = ENV_NAMES[name];
  return key !== undefined && SECRET_KEYS.has(key);
}

/** True for the comma-separated list variables (the file may give them as a YAML list). */
export function isListName(name: string): boolean {
  const key = ENV_NAMES[name];
  return key !== undefined && LIST_KEYS.has(key);
}
