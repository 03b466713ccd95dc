import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Codes, PoseidonError } from '../core/errors.ts';
import type { AccessConfig } from './access.ts';
import { formatProblem } from './config-file.ts';
import { gitProcessEnv, type GitOpsConfig } from './gitops-config.ts';
import { resolveConfig, type ResolveOptions } from './resolve.ts';

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
  readonly networkPool: number;
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
  /** The config file read (absolute path); undefined: none, the environment alone. */
  readonly configFile?: string;
  /** Not fatal findings about the config file (a file holding secrets readable by every user). */
  readonly configWarnings?: readonly string[];
  /** Which secrets were generated (and persisted in dataDir) because the environment lacked them. */
  readonly generated: readonly ('apiKey' | 'flagSecret' | 'accessSecret')[];
}

/** How to reach the Docker engine. */
export type DockerEndpoint =
  | { socketPath: string }
  | { host: string; port: number; protocol: 'http' | 'https'; ca?: Buffer; cert?: Buffer; key?: Buffer };


/** Shortest secret accepted from any source (environment, file or generated). */
export const MIN_SECRET_LENGTH = 16;


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

/** `dev`: laptop profile (`npm start`, instance ports on 127.0.0.1 unless configured otherwise);
 * `role: 'worker'`: `poseidon worker`, which needs Redis and never holds the manager's secrets
 * (API key, flag secret, access secret are neither read nor generated); `configFile`: `--config`. */
export type LoadOptions = ResolveOptions;

/**
 * Builds the configuration from `env` (default: process.env) over the config file, if any
 * (`opts.configFile`, else POSEIDON_CONFIG, else ./poseidon.yaml when present). Throws
 * PoseidonError E_CONFIG_INVALID naming every problem, with `file:line:col` for those from the
 * file (values of secret variables are never echoed). Missing API key and flag secret are
 * generated once and persisted under the data dir.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd(), opts: LoadOptions = {}): Config {
  const resolved = resolveConfig(env, cwd, opts);
  if (resolved.problems.length) {
    throw new PoseidonError(Codes.configInvalid, `invalid configuration: ${resolved.problems.map(formatProblem).join('; ')}`, { kind: 'input' });
  }
  const raw = resolved.raw;
  raw.configWarnings = resolved.warnings;
  if (resolved.file !== undefined) raw.configFile = resolved.file;
  const dataDir = path.resolve(cwd, raw.dataDir as string);
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

/** A worker's configuration (Redis required, checked by resolveConfig): the manager's secrets dropped (never needed there). */
function workerConfig(raw: Record<string, unknown>, env: NodeJS.ProcessEnv, cwd: string, dataDir: string): Config {
  const { apiKey: _a, flagSecret: _f, accessSecret: _s, ...rest } = raw;
  return Object.freeze({
    ...rest, apiKey: '', flagSecret: '', accessSecret: '', dataDir, generated: [],
    challengesDir: path.resolve(cwd, raw.challengesDir as string), traefikDir: path.resolve(cwd, raw.traefikDir as string), gitEnv: gitProcessEnv(env),
  } as unknown as Config);
}
