/**
 * A validated challenge definition, as produced by `src/challenge/` from `challenges/<id>/challenge.yaml`.
 * Every optional field of the YAML has been defaulted here, so consumers never re-apply defaults.
 */
export type Protocol = 'http' | 'tcp';
export type Scope = 'team' | 'user';
export type RuntimeName = 'runc' | 'gvisor';

export interface ExposedPort {
  /** DNS label, unique within the challenge; used in hostnames and router names. */
  name: string;
  /** Container port, 1..65535. */
  port: number;
  protocol: Protocol;
  /**
   * TCP only: also reachable on a plain port leased from the configured range (for `nc` and
   * SSH without TLS). Present only when true, so existing specs keep their hash.
   */
  lease?: true;
}

export interface BuildSpec {
  /** Absolute path of the build context directory (resolved against the YAML file's directory). */
  context: string;
  /** Dockerfile path relative to the context. Default `Dockerfile`. */
  dockerfile: string;
  /** RUN steps get a network (package installs); present only when true: builds have none by default. */
  network?: true;
}

export interface Resources {
  /** CPU cores, e.g. 0.5. Default 0.5. */
  cpu: number;
  /** Memory limit in bytes (the YAML says `64m`, `1g`, ...). Default 128 MiB. */
  memoryBytes: number;
  /** Max processes. Default 128. */
  pids: number;
}

export interface TtlSpec {
  /** Lifetime granted at launch and on each renew, seconds. Default 1800. */
  defaultSeconds: number;
  /** Hard cap on lifetime since launch, seconds. Default 7200. */
  maxSeconds: number;
  /** Maximum number of renewals. Default 3. */
  renewals: number;
  /** When set, a renew is accepted only with at most this many seconds left. */
  renewWindowSeconds?: number;
}

export interface FlagSpec {
  /** Environment variable receiving the flag (default `FLAG` when neither env nor file is set). */
  env?: string;
  /** Absolute path in the container where the flag is mounted read-only as a file. */
  file?: string;
  /** Template with one `%s` replaced by the derived secret part. Default `flag{%s}`. */
  format: string;
}

export type HealthCheck =
  | { kind: 'http'; port: string; path: string; timeoutSeconds: number }
  | { kind: 'tcp'; port: string; timeoutSeconds: number }
  | { kind: 'command'; command: string[]; timeoutSeconds: number };

export interface ChallengeSpec {
  id: string;
  name: string;
  /** Exactly one of image/build is set. */
  image?: string;
  build?: BuildSpec;
  command?: string[];
  expose: ExposedPort[];
  resources: Resources;
  ttl: TtlSpec;
  env: Record<string, string>;
  flag: FlagSpec;
  scope: Scope;
  runtime: RuntimeName;
  /** How running instances follow a change (`core/rollout.ts`); absent means `keep`. */
  update?: 'recreate' | 'on-renew' | 'keep';
  /** When workers pull `image` (`always`: again for each new revision); absent means `if-not-present`. */
  pull?: 'if-not-present' | 'always';
  network: { egress: boolean };
  /**
   * Read-only root with a tmpfs at /tmp (default), unless the spec opts out. `sizeBytes` bounds
   * a writable root where the engine's storage driver allows it.
   */
  filesystem: { readOnly: boolean; tmpfsBytes: number; sizeBytes?: number };
  healthcheck?: HealthCheck;
  /** The user the process runs as (`uid`, `uid:gid` or a name in the image); absent: the image's. */
  user?: string;
  /** Placement constraints: labels a worker must carry; absent: any worker. */
  placement?: { labels: Record<string, string> };
  /** What happens to running instances when their worker is lost; absent: the deployment default. */
  onWorkerLost?: 'reschedule' | 'fail';
  /**
   * Warm pool (`controller/pool-keeper.ts`): `size` instances kept ready with no owner, claimed by
   * launches. Not part of the version hash: resizing a pool is not a rollout.
   */
  pool?: { size: number };
  /** Absolute path of the YAML file this spec came from. */
  source: string;
}

/** One problem found in a challenge file; line and column are 1-based (0 when unknown). */
export interface SpecIssue {
  file: string;
  line: number;
  column: number;
  /** Dotted path of the offending value (`resources.memory`), or '' for the whole document. */
  path: string;
  message: string;
}

/** The outcome of loading one challenge file. */
export type LoadResult =
  | { ok: true; file: string; spec: ChallengeSpec }
  | { ok: false; file: string; id?: string; issues: SpecIssue[] };
