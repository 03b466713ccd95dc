/**
 * Gauges computed at scrape time from what the process already holds in memory (the instance
 * view, the fleet view, the catalog's sync status, each worker agent): a scrape costs no store
 * or registry read, only the lease listing of a worker that leases ports. Every function resets
 * its gauge first, so a worker, a challenge or a state that is gone stops being exported.
 */
import type { Gauge } from 'prom-client';
import type { SyncStatus } from '../catalog/sync-status.ts';
import { isPoolMember, type Instance, type InstanceStatus } from '../core/instance.ts';
import type { PortRange } from '../core/leases.ts';
import type { WorkerImageState, WorkerLoad, WorkerState, WorkerView } from '../core/worker.ts';

export const INSTANCE_STATES: readonly InstanceStatus[] = ['queued', 'pending', 'starting', 'running', 'stopping', 'stopped', 'failed'];
export const WORKER_STATES: readonly WorkerState[] = ['ready', 'cordoned', 'draining', 'lost'];
const IMAGE_STATES: readonly WorkerImageState['state'][] = ['present', 'preparing', 'failed'];
const CHALLENGE_STATES = ['ready', 'building', 'image-missing'] as const;

/** The manager's instances (the instance view), the catalog's challenge ids and admission capacity. */
export interface InstanceSource {
  all(): Iterable<Instance>;
  /** Challenge ids to export zeros for (every state of every launchable challenge). */
  challenges(): readonly string[];
  capacity(): number;
  now(): number;
}

/** The manager's fleet view. */
export interface FleetSource {
  workers(): WorkerView[];
  loads(at: number): Map<string, WorkerLoad>;
  images(worker: string): Record<string, WorkerImageState>;
  /** The registry clock (heartbeats are on it). */
  now(): number;
}

/** The catalog and its sync loop. */
export interface CatalogSource {
  status(): SyncStatus;
  /** When the served revision was applied (epoch ms), undefined before any. */
  appliedAt(): number | undefined;
  /** Launchable challenges with their image state. */
  challenges(): readonly { state: string }[];
  invalidFiles(): number;
  pollSeconds: number;
  now(): number;
}

/** One worker agent in this process. */
export interface WorkerSource {
  /** The last breaker trip, undefined when the last resync was clean (`WorkerAgent.breaker`). */
  breaker(): object | undefined;
  /** Its lease store and range, when it leases ports. */
  leases?: { list(): Promise<readonly unknown[]>; range: PortRange };
}

export function fillInstances(src: InstanceSource | undefined, g: Gauge<'state' | 'challenge'>): void {
  g.reset();
  if (!src) return;
  for (const challenge of src.challenges()) for (const state of INSTANCE_STATES) g.set({ state, challenge }, 0);
  for (const inst of src.all()) g.inc({ state: inst.status, challenge: inst.challenge });
}

/** Unclaimed warm-pool members by challenge and status (`running` ones are what launches claim). */
export function fillPoolMembers(src: InstanceSource | undefined, g: Gauge<'state' | 'challenge'>): void {
  g.reset();
  if (!src) return;
  for (const inst of src.all()) if (isPoolMember(inst) && inst.desired === 'running') g.inc({ state: inst.status, challenge: inst.challenge });
}

export function fillOldestWait(src: InstanceSource | undefined, g: Gauge): void {
  g.reset();
  if (!src) return;
  let oldest = Infinity;
  for (const inst of src.all()) if (inst.status === 'queued' && inst.createdAt < oldest) oldest = inst.createdAt;
  g.set(Number.isFinite(oldest) ? Math.max(0, (src.now() - oldest) / 1000) : 0);
}

export function fillCapacity(src: InstanceSource | undefined, g: Gauge): void {
  g.reset();
  if (src) g.set(src.capacity());
}

type CatalogField = 'success' | 'lastSuccess' | 'revisionAge' | 'failures' | 'poll' | 'invalid';

/** One catalog gauge; absent when there is nothing to say yet (no sync, nothing applied). */
export function fillCatalog(src: CatalogSource | undefined, field: CatalogField, g: Gauge): void {
  g.reset();
  if (!src) return;
  const status = src.status();
  const value = catalogValue(src, status, field);
  if (value !== undefined) g.set(value);
}

function catalogValue(src: CatalogSource, status: SyncStatus, field: CatalogField): number | undefined {
  switch (field) {
    case 'success': return status.lastSync ? Number(status.lastSync.ok) : undefined;
    case 'lastSuccess': return status.syncedAt ? Date.parse(status.syncedAt) / 1000 : undefined;
    case 'revisionAge': {
      const at = src.appliedAt();
      return at === undefined ? undefined : Math.max(0, (src.now() - at) / 1000);
    }
    case 'failures': return status.failures;
    case 'poll': return src.pollSeconds;
    case 'invalid': return src.invalidFiles();
  }
}

export function fillChallenges(src: CatalogSource | undefined, g: Gauge<'state'>): void {
  g.reset();
  if (!src) return;
  for (const state of CHALLENGE_STATES) g.set({ state }, 0);
  for (const c of src.challenges()) g.inc({ state: c.state });
}

type FleetField = 'byState' | 'state' | 'slots' | 'reserved' | 'heartbeat' | 'images';

/** One fleet gauge from the fleet view. */
export function fillFleet(src: FleetSource | undefined, field: FleetField, g: Gauge<string>): void {
  g.reset();
  if (!src) return;
  const workers = src.workers();
  if (field === 'byState') {
    for (const state of WORKER_STATES) g.set({ state }, workers.filter((w) => w.state === state).length);
    return;
  }
  const loads = field === 'reserved' ? src.loads(Date.now()) : undefined;
  for (const w of workers) {
    const worker = w.id;
    if (field === 'state') for (const state of WORKER_STATES) g.set({ worker, state }, Number(w.state === state));
    else if (field === 'slots') g.set({ worker }, w.capacity.slots);
    else if (field === 'reserved') g.set({ worker }, loads?.get(w.id)?.slots ?? 0);
    else if (field === 'heartbeat') g.set({ worker }, Math.max(0, (src.now() - w.heartbeatAt) / 1000));
    else fillImages(g, worker, src.images(worker));
  }
}

function fillImages(g: Gauge<string>, worker: string, images: Record<string, WorkerImageState>): void {
  for (const state of IMAGE_STATES) g.set({ worker, state }, 0);
  for (const s of Object.values(images)) g.inc({ worker, state: s.state });
}

export function fillBreakers(workers: ReadonlyMap<string, WorkerSource>, g: Gauge<'worker'>): void {
  g.reset();
  for (const [worker, w] of workers) g.set({ worker }, w.breaker() ? 1 : 0);
}

/** Leased ports (one lease listing per leasing worker) or the range size. A listing that fails leaves that worker out. */
export async function fillLeases(workers: ReadonlyMap<string, WorkerSource>, field: 'leased' | 'range', g: Gauge<'worker'>): Promise<void> {
  const values = await Promise.all([...workers].map(async ([worker, w]) => {
    if (!w.leases) return undefined;
    if (field === 'range') return { worker, value: w.leases.range.hi - w.leases.range.lo + 1 };
    const held = await w.leases.list().catch(() => undefined);
    return held ? { worker, value: held.length } : undefined;
  }));
  g.reset();
  for (const v of values) if (v) g.set({ worker: v.worker }, v.value);
}
