/**
 * Workers: the Docker hosts instances run on. A worker agent (`poseidon worker`, or the one
 * embedded in `serve`) registers a record, refreshes its heartbeat, and reports which images it
 * holds; operators set its administrative state. Everything here is pure; the registry adapters
 * (`store/redis-fleet.ts`, `store/memory-fleet.ts`) keep the records.
 */
import type { RuntimeName } from './challenge.ts';

/**
 * Administrative state, set by operators: `active` takes placements, `cordoned` takes none,
 * `draining` takes none and has its instances moved elsewhere (then it becomes `cordoned`).
 */
export type WorkerAdmin = 'active' | 'cordoned' | 'draining';

/** Effective state: the administrative one, or `lost` when its heartbeat is too old. */
export type WorkerState = 'ready' | 'cordoned' | 'draining' | 'lost';

/** Per-instance ingress of a worker host: where the edge sends its routes (absent: the edge reaches containers itself). */
export interface WorkerIngress {
  /** `host:port` of the ingress HTTP entry point, e.g. `10.0.0.12:18080`. */
  http: string;
  /** `host:port` of its TLS entry point for TCP-over-SNI routes, e.g. `10.0.0.12:18443`. */
  tls: string;
}

/**
 * How a worker launches: free internal networks it keeps ready (`POSEIDON_NETWORK_POOL`) and
 * container creations at once (`POSEIDON_LAUNCH_CONCURRENCY`). Its configuration sets them; an
 * admin may override either while it runs (`PUT /v1/workers/:id/launch-settings`), e.g. a pool as
 * large as the burst expected at an event's start, and back afterwards.
 */
export interface LaunchSettings {
  networkPool: number;
  launchConcurrency: number;
}

/** Bounds of the launch settings, the configuration's (schemas/config.schema.json). */
export const LAUNCH_SETTING_BOUNDS: Record<keyof LaunchSettings, { min: number; max: number }> = {
  networkPool: { min: 0, max: 256 },
  launchConcurrency: { min: 1, max: 64 },
};

/**
 * The launch override in `value` (stored JSON, or a request's body): the fields that are integers
 * within their bounds; anything else is left out (the worker's own setting applies).
 */
export function parseLaunchOverride(value: unknown): Partial<LaunchSettings> {
  const out: Partial<LaunchSettings> = {};
  if (typeof value !== 'object' || value === null) return out;
  for (const [key, { min, max }] of Object.entries(LAUNCH_SETTING_BOUNDS) as [keyof LaunchSettings, { min: number; max: number }][]) {
    const v = (value as Record<string, unknown>)[key];
    if (Number.isInteger(v) && (v as number) >= min && (v as number) <= max) out[key] = v as number;
  }
  return out;
}

/**
 * The text a heartbeat's change is judged by: the record without its heartbeat time and the
 * counts that move with every launch (a change of these alone is no registry event).
 */
export function workerSignatureText(record: Omit<WorkerRecord, 'heartbeatAt'>): string {
  const { heartbeatAt: _h, networkPoolReady: _n, ...rest } = record as WorkerRecord;
  return JSON.stringify(rest);
}

/** What a worker says about itself (written by the agent at every heartbeat). */
export interface WorkerRecord {
  /** DNS-label-like id, unique in the deployment. */
  id: string;
  /** Address other hosts reach this host at (leased TCP ports are published there). */
  address: string;
  ingress?: WorkerIngress;
  /** Challenge runtimes it can run (`runc` always; `gvisor` when the engine has `runsc`). */
  runtimes: RuntimeName[];
  /** Constraint labels (`zone=eu`, `gpu=yes`). */
  labels: Record<string, string>;
  /** Instance slots, CPU cores and memory it offers to instances. */
  capacity: { slots: number; cpu: number; memoryBytes: number };
  /** Port range for `lease: true` ports on this host, `lo-hi`; absent: leases off here. */
  leasePorts?: string;
  /** Host name players use for this worker's leased ports. */
  leaseHost?: string;
  /** PEM SPKI public key that flags for this worker are sealed with. */
  publicKey: string;
  version: string;
  /** The launch settings it applied, as of this heartbeat (the pool's target size, which fills in the background; absent: a worker older than them). */
  launch?: LaunchSettings;
  /**
   * Free pooled networks ready for a launch as of this heartbeat (made, and joined by the gateway
   * when there is one): how far a pool set for an event has filled. Left out of the record's
   * signature, so its changes publish nothing (a listing reads it).
   */
  networkPoolReady?: number;
  /** Last heartbeat, epoch ms (the registry's clock is the writer's). */
  heartbeatAt: number;
  /** When it first registered. */
  startedAt: number;
}

/** A worker as the manager sees it: its record, administrative state and effective state. */
export interface WorkerView extends WorkerRecord {
  admin: WorkerAdmin;
  /** What an admin set over the worker's configuration (absent or empty: nothing). */
  launchOverride?: Partial<LaunchSettings>;
  state: WorkerState;
}

/** One image on one worker, as the worker reports it. */
export interface WorkerImageState {
  state: 'present' | 'preparing' | 'failed';
  error?: string;
  /** When it was last reported (epoch ms). */
  at: number;
}

/** The effective state at `now` given the heartbeat deadline. */
export function workerState(rec: Pick<WorkerRecord, 'heartbeatAt'>, admin: WorkerAdmin, now: number, lostAfterMs: number): WorkerState {
  if (now - rec.heartbeatAt > lostAfterMs) return 'lost';
  if (admin === 'active') return 'ready';
  return admin;
}

/** What a challenge needs from a worker (placement input). */
export interface PlacementNeeds {
  challenge: string;
  runtime: RuntimeName;
  cpu: number;
  memoryBytes: number;
  /** The image reference of the version to run (readiness is per image per worker). */
  image: string;
  /** Labels the worker must carry, all of them. */
  constraints: Record<string, string>;
  /** Whether it takes a leased port (the worker must have a lease range). */
  leases: number;
}

/** What already runs on a worker, as placement counts it. */
export interface WorkerLoad {
  slots: number;
  cpu: number;
  memoryBytes: number;
  /** Placed instances per challenge. */
  byChallenge: Record<string, number>;
}

export const EMPTY_LOAD: WorkerLoad = Object.freeze({ slots: 0, cpu: 0, memoryBytes: 0, byChallenge: Object.freeze({}) }) as WorkerLoad;

/** `k=v,k2=v2` -> labels (the schema checks the text). */
export function parseLabels(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    const key = eq < 0 ? '' : part.slice(0, eq).trim();
    // A blank key (` =x`) is no label: checked after trimming.
    if (key) out[key] = part.slice(eq + 1).trim();
  }
  return out;
}
