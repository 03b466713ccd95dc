/**
 * A schema- and rule-valid document -> `ChallengeSpec` with every default applied, sizes in
 * bytes, durations in seconds, the build context absolute. The result is deeply frozen: specs
 * are shared by the catalog and must not be edited in place.
 */
import path from 'node:path';
import type { BuildSpec, ChallengeSpec, FlagSpec, HealthCheck, Protocol, RuntimeName, Scope } from '../core/challenge.ts';
import { DEFAULT_FLAG_ENV, DEFAULT_MAX_TTL_SECONDS, DEFAULT_TTL_SECONDS } from './rules.ts';
import { durationSeconds, sizeBytes } from './units.ts';

type Duration = number | string;

/** The document as the schema and rules guarantee it (YAML names, nothing defaulted yet). */
export interface RawChallenge {
  id: string;
  name: string;
  image?: string;
  build?: string | { context: string; dockerfile?: string; network?: boolean };
  command?: string[];
  expose: Array<{ name: string; port: number; protocol?: Protocol; lease?: boolean }>;
  resources?: { cpu?: number; memory?: string; pids?: number };
  ttl?: { default?: Duration; max?: Duration; renewals?: number; renewWindow?: Duration };
  env?: Record<string, string>;
  flag?: { env?: string; file?: string; format?: string };
  scope?: Scope;
  runtime?: RuntimeName;
  update?: ChallengeSpec['update'];
  pull?: ChallengeSpec['pull'];
  network?: { egress?: boolean };
  filesystem?: { readOnly?: boolean; tmpfs?: string; size?: string };
  user?: string;
  placement?: { labels: Record<string, string> };
  onWorkerLost?: ChallengeSpec['onWorkerLost'];
  pool?: { size: number };
  healthcheck?: { type: HealthCheck['kind']; port?: string; path?: string; timeout?: Duration; command?: string[] };
}

export const DEFAULT_CPU = 0.5;
export const DEFAULT_MEMORY = '128m';
export const DEFAULT_PIDS = 128;
export const DEFAULT_RENEWALS = 3;
export const DEFAULT_FLAG_FORMAT = 'flag{%s}';
export const DEFAULT_TMPFS = '16m';
export const DEFAULT_HEALTHCHECK_TIMEOUT = '30s';

/**
 * Builds the spec of a document that passed `checkShape` and `checkRules`; `source` is the
 * absolute path of the YAML file (the build context is resolved against its directory). Calling
 * it on an unchecked document is a programming error and may throw.
 */
export function normalizeSpec(raw: RawChallenge, source: string): ChallengeSpec {
  const spec: ChallengeSpec = {
    id: raw.id,
    name: raw.name,
    ...(raw.image !== undefined && { image: raw.image }),
    ...(raw.build !== undefined && { build: buildSpec(raw.build, path.dirname(source)) }),
    ...(raw.command !== undefined && { command: [...raw.command] }),
    expose: raw.expose.map((p) => ({ name: p.name, port: p.port, protocol: p.protocol ?? 'http', ...(p.lease === true && { lease: true as const }) })),
    resources: {
      cpu: raw.resources?.cpu ?? DEFAULT_CPU,
      memoryBytes: bytes(raw.resources?.memory ?? DEFAULT_MEMORY),
      pids: raw.resources?.pids ?? DEFAULT_PIDS,
    },
    ttl: {
      defaultSeconds: seconds(raw.ttl?.default ?? DEFAULT_TTL_SECONDS),
      maxSeconds: seconds(raw.ttl?.max ?? DEFAULT_MAX_TTL_SECONDS),
      renewals: raw.ttl?.renewals ?? DEFAULT_RENEWALS,
      ...(raw.ttl?.renewWindow !== undefined ? { renewWindowSeconds: seconds(raw.ttl.renewWindow) } : {}),
    },
    env: { ...raw.env },
    flag: flagSpec(raw.flag),
    scope: raw.scope ?? 'team',
    runtime: raw.runtime ?? 'runc',
    ...(raw.update !== undefined && { update: raw.update }),
    ...(raw.pull !== undefined && { pull: raw.pull }),
    network: { egress: raw.network?.egress ?? false },
    filesystem: {
      readOnly: raw.filesystem?.readOnly ?? true,
      tmpfsBytes: bytes(raw.filesystem?.tmpfs ?? DEFAULT_TMPFS),
      ...(raw.filesystem?.size !== undefined && { sizeBytes: bytes(raw.filesystem.size) }),
    },
    // Present only when set, so specs that do not use them keep their hash.
    ...(raw.user !== undefined && { user: raw.user }),
    ...(raw.placement !== undefined && { placement: { labels: { ...raw.placement.labels } } }),
    ...(raw.onWorkerLost !== undefined && { onWorkerLost: raw.onWorkerLost }),
    ...(raw.pool !== undefined && { pool: { size: raw.pool.size } }),
    ...(raw.healthcheck !== undefined && { healthcheck: healthCheck(raw.healthcheck) }),
    source,
  };
  return deepFreeze(spec);
}

/** The `BuildSpec` of a `build` value, its context resolved against `baseDir` (the YAML's directory). */
export function buildSpec(build: NonNullable<RawChallenge['build']>, baseDir: string): BuildSpec {
  const { context, dockerfile, network } = typeof build === 'string' ? { context: build, dockerfile: undefined, network: undefined } : build;
  return { context: path.resolve(baseDir, context), dockerfile: dockerfile ?? 'Dockerfile', ...(network === true && { network: true as const }) };
}

function flagSpec(flag: RawChallenge['flag']): FlagSpec {
  const format = flag?.format ?? DEFAULT_FLAG_FORMAT;
  if (flag?.file !== undefined) return { file: flag.file, format };
  return { env: flag?.env ?? DEFAULT_FLAG_ENV, format };
}

function healthCheck(hc: NonNullable<RawChallenge['healthcheck']>): HealthCheck {
  const timeoutSeconds = seconds(hc.timeout ?? DEFAULT_HEALTHCHECK_TIMEOUT);
  switch (hc.type) {
    case 'http':
      return { kind: 'http', port: required(hc.port), path: hc.path ?? '/', timeoutSeconds };
    case 'tcp':
      return { kind: 'tcp', port: required(hc.port), timeoutSeconds };
    case 'command':
      return { kind: 'command', command: [...required(hc.command)], timeoutSeconds };
  }
}

function seconds(value: Duration): number {
  return required(durationSeconds(value));
}

function bytes(value: string): number {
  return required(sizeBytes(value));
}

function required<T>(value: T | undefined): T {
  if (value === undefined) throw new TypeError('normalizeSpec called on an unchecked document');
  return value;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
