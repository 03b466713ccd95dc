/**
 * Resolution of the configuration: the config file merged under the environment, validated by
 * the one JSON schema and the cross-field rules, with every problem collected (not just the
 * first) and the source of every value. `loadConfig` and `poseidon config check` both use it.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { Codes, PoseidonError } from '../core/errors.ts';
import { accessProblems } from './access.ts';
import { locateConfigFile, readConfigFile, type ConfigFile, type ConfigProblem } from './config-file.ts';
import type { DockerEndpoint } from './config.ts';
import { secretsFromFiles, FILE_VARIANTS } from './gitops-config.ts';
import { ALL_NAMES, ENV_NAMES, isSecretName, LIST_KEYS, SECRET_KEYS } from './variables.ts';
import { packageFile } from '../package-files.ts';

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

const schemaPath = packageFile('schemas/config.schema.json');
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

/** Where a value came from. */
export type ValueSource = 'default' | 'file' | 'env' | 'unset';

/** One variable of the resolved configuration. */
export interface ResolvedEntry {
  name: string;
  /** Environment form (lists comma-joined); undefined when unset. Secrets in clear: mask before showing. */
  value?: string;
  source: ValueSource;
  secret: boolean;
  line?: number;
  col?: number;
}

/** The outcome of resolving: the raw fields (valid only when `problems` is empty) and how each came to be. */
export interface Resolution {
  /** Absolute path of the config file read; undefined: none. */
  file?: string;
  raw: Record<string, unknown>;
  /** The effective variables (file under environment). */
  vars: NodeJS.ProcessEnv;
  entries: ResolvedEntry[];
  problems: ConfigProblem[];
  warnings: string[];
}

export interface ResolveOptions {
  dev?: boolean;
  role?: 'manager' | 'worker';
  /** `--config <file>`; else POSEIDON_CONFIG, else ./poseidon.yaml when present. */
  configFile?: string;
}

/** The file's values under the environment's: an environment value wins unless empty (empty means unset, as always). */
function overlay(file: ConfigFile | undefined, env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...env };
  for (const [name, value] of Object.entries(file?.values ?? {})) {
    const own = env[name];
    if (own === undefined || (own === '' && name !== 'POSEIDON_PUBLISH_ADDRESS')) out[name] = value;
  }
  return out;
}

const byField = Object.fromEntries(Object.entries(ENV_NAMES).map(([n, k]) => [k, n]));

function schemaProblem(e: ErrorObject, raw: Record<string, unknown>): ConfigProblem {
  const key = e.instancePath.split('/')[1] ?? '';
  const shown = SECRET_KEYS.has(key) ? '' : ` (got ${JSON.stringify(raw[key])})`;
  return { variable: byField[key] ?? key, message: `${e.message ?? 'invalid'}${shown}` };
}

/** A thrown configuration error as a problem (its "invalid configuration: " prefix dropped). */
function attempt(problems: ConfigProblem[], fn: () => void): void {
  try {
    fn();
  } catch (err) {
    problems.push({ message: (err as Error).message.replace(/^invalid configuration: /, '') });
  }
}

/** Cross-field rules (on values the schema let through). */
function crossProblems(raw: Record<string, unknown>, role: 'manager' | 'worker'): string[] {
  const out = accessProblems(raw);
  if (raw.eventsWebhookUrl !== undefined && raw.eventsWebhookSecret === undefined) out.push('POSEIDON_EVENTS_WEBHOOK_SECRET is required with POSEIDON_EVENTS_WEBHOOK_URL');
  const [retry, renew, lease] = [raw.leaseRetrySeconds, raw.leaseRenewSeconds, raw.leaseSeconds];
  if (typeof retry === 'number' && typeof renew === 'number' && typeof lease === 'number' && !(retry < renew && renew < lease)) {
    out.push(`the lease timings must satisfy POSEIDON_LEASE_RETRY_SECONDS < POSEIDON_LEASE_RENEW_SECONDS < POSEIDON_LEASE_SECONDS (got ${retry} < ${renew} < ${lease})`);
  }
  if ((raw.ingressHttp === undefined) !== (raw.ingressTls === undefined)) out.push('POSEIDON_INGRESS_HTTP and POSEIDON_INGRESS_TLS go together');
  if (role === 'worker' && raw.redisUrl === undefined && raw.redisSentinels === undefined) out.push('REDIS_URL is required for poseidon worker (the registry it registers in)');
  return out;
}

/** Points each problem at the file position of the first variable it names that the file set. */
function locate(problems: ConfigProblem[], file: ConfigFile | undefined, env: NodeJS.ProcessEnv): void {
  if (!file) return;
  const fromFile = (name: string): boolean => name in file.values && !(env[name] !== undefined && env[name] !== '');
  for (const p of problems) {
    if (p.file) continue;
    const named = p.variable ? [p.variable] : [];
    const mentioned = [...named, ...(p.message.match(/\b(?:POSEIDON|REDIS|DOCKER)_[A-Z_]+\b/g) ?? [])];
    const hit = mentioned.find(fromFile);
    const pos = hit ? file.positions[hit] : undefined;
    if (hit && pos) Object.assign(p, { file: file.path, line: pos.line, col: pos.col });
  }
}

/** Environment form of a raw field's value. */
function shown(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  return Array.isArray(value) ? value.join(',') : String(value);
}

function entriesOf(vars: NodeJS.ProcessEnv, env: NodeJS.ProcessEnv, file: ConfigFile | undefined, raw: Record<string, unknown>): ResolvedEntry[] {
  const fileNames = new Set(Object.keys(file?.values ?? {}));
  return ALL_NAMES.map((name) => {
    const field = ENV_NAMES[name];
    const value = field !== undefined ? shown(raw[field]) : vars[name] === '' ? undefined : vars[name];
    const fromEnv = env[name] !== undefined && (env[name] !== '' || name === 'POSEIDON_PUBLISH_ADDRESS');
    const viaFile = Object.entries(FILE_VARIANTS).find(([, k]) => k === field)?.[0];
    let source: ValueSource = value === undefined ? 'unset' : 'default';
    if (fromEnv || (viaFile && env[viaFile])) source = 'env';
    else if (fileNames.has(name) || (viaFile && fileNames.has(viaFile))) source = 'file';
    const pos = source === 'file' ? file?.positions[fileNames.has(name) ? name : (viaFile ?? name)] : undefined;
    return { name, ...(value === undefined ? {} : { value }), source, secret: isSecretName(name), ...(pos ?? {}) };
  });
}

/**
 * Resolves the configuration from `env` and the config file (see {@link locateConfigFile}),
 * without side effects (no secret is generated). Never throws for a bad value: every problem is
 * in `problems`, with `file:line:col` when it comes from the file; no secret value is quoted.
 */
export function resolveConfig(env: NodeJS.ProcessEnv, cwd: string, opts: ResolveOptions = {}): Resolution {
  const where = locateConfigFile(env, cwd, opts.configFile);
  const file = where === undefined ? undefined : readConfigFile(where);
  const vars = overlay(file, env);
  const problems: ConfigProblem[] = [...(file?.problems ?? [])];
  const raw = fromEnv(vars);
  attempt(problems, () => Object.assign(raw, secretsFromFiles(vars, cwd)));
  if (opts.dev && raw.publishAddress === undefined) raw.publishAddress = '127.0.0.1';
  if (opts.dev && raw.leaseAddress === undefined) raw.leaseAddress = '127.0.0.1';
  if (!validate(raw)) problems.push(...(validate.errors ?? []).map((e) => schemaProblem(e, raw)));
  problems.push(...crossProblems(raw, opts.role ?? 'manager').map((message) => ({ message })));
  const entries = entriesOf(vars, env, file, raw);
  attempt(problems, () => sentinelUrl(raw));
  attempt(problems, () => { raw.docker = dockerEndpoint(raw.dockerSocket as string, vars, vars.POSEIDON_DOCKER_SOCKET !== undefined && vars.POSEIDON_DOCKER_SOCKET !== ''); });
  locate(problems, file, env);
  // The file's problems first, in file order; then the environment's.
  problems.sort((a, b) => (a.file ? 0 : 1) - (b.file ? 0 : 1) || (a.line ?? 0) - (b.line ?? 0) || (a.col ?? 0) - (b.col ?? 0));
  return { ...(file ? { file: file.path } : {}), raw, vars, entries, problems, warnings: file?.warnings ?? [] };
}
