/**
 * Fleet port: where workers register, heartbeat and report their images, and where the
 * deployment's shared facts live (its id, the edge secret). Adapters: `store/redis-fleet.ts`
 * (shared by the manager and every worker) and `store/memory-fleet.ts` (embedded mode), both
 * held to `spec/store/fleet-contract.ts`.
 *
 * Times come from the registry's own clock (Redis TIME), so a worker whose clock is off is
 * neither lost early nor kept alive late: `list()` answers with that clock's `now`.
 */
import type { LaunchSettings, WorkerAdmin, WorkerImageState, WorkerRecord } from './worker.ts';

export interface FleetListing {
  /** The registry's clock when it listed (epoch ms). */
  now: number;
  workers: { record: WorkerRecord; admin: WorkerAdmin; launchOverride: Partial<LaunchSettings> }[];
  /** Worker id -> image reference -> state. */
  images: Record<string, Record<string, WorkerImageState>>;
}

export interface Fleet {
  /**
   * Registers or refreshes `record` (its `heartbeatAt` is set to the registry's clock); keeps the
   * administrative state (`active` for a new worker). Returns the record as stored.
   */
  heartbeat(record: Omit<WorkerRecord, 'heartbeatAt'>): Promise<WorkerRecord>;
  /** Every registered worker with its administrative state and images. */
  list(): Promise<FleetListing>;
  /** Sets the administrative state; false when no such worker is registered. */
  setAdmin(id: string, admin: WorkerAdmin): Promise<boolean>;
  /** Sets the administrative state only if it is still `expect` (a drain completing); false otherwise. */
  compareAdmin(id: string, expect: WorkerAdmin, admin: WorkerAdmin): Promise<boolean>;
  /**
   * Replaces the launch settings an admin set over `id`'s configuration (`{}` clears them); false
   * when no such worker is registered. Kept across heartbeats; forgotten with the worker.
   */
  setLaunchOverride(id: string, override: Partial<LaunchSettings>): Promise<boolean>;
  /** The launch settings an admin set over `id`'s configuration (`{}`: none). */
  launchOverride(id: string): Promise<Partial<LaunchSettings>>;
  /** Forgets a worker (its record, launch override and image reports). */
  forget(id: string): Promise<void>;
  /** Merges image states reported by `worker` (reference -> state), stamping them with the registry clock. */
  reportImages(worker: string, states: Record<string, Omit<WorkerImageState, 'at'>>): Promise<void>;
  /** Drops image reports of `worker` not in `keep`. */
  pruneImages(worker: string, keep: readonly string[]): Promise<void>;
  /** The value stored under `name` (`deployment`, `edge-secret`), storing `candidate` first if there is none. */
  shared(name: 'deployment' | 'edge-secret', candidate: string): Promise<string>;
  /** Stores `value` under `name`, replacing what was there (a value the operator configured). */
  setShared(name: 'deployment' | 'edge-secret', value: string): Promise<void>;
  /** Calls `listener` after a registration, a state or launch override change, or an image report (a hint). */
  onChange(listener: () => void): () => void;
  close(): Promise<void>;
}
