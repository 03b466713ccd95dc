/**
 * The manager's view of the fleet: workers with their effective state (lost after the heartbeat
 * deadline, measured on the registry's clock), the images each one reports, and what each one
 * runs (from the instance view, without a store read). Placement, admission capacity, the
 * catalog's per-worker image states, the workers API, metrics and the status page all read this
 * one place. `refresh` re-reads the registry; everything else is in memory.
 */
import type { Fleet, FleetListing } from '../core/fleet.ts';
import { FINAL_STATUSES, wantsRunning, type Instance } from '../core/instance.ts';
import { EMPTY_LOAD, workerState, type PlacementNeeds, type WorkerImageState, type WorkerLoad, type WorkerView } from '../core/worker.ts';
import type { Candidate } from '../scheduler/placement.ts';
import { withPlaced } from '../scheduler/placement.ts';

/** Where the view reads instances from (the instance index). */
export interface InstanceSource {
  all(): Iterable<Instance>;
}

export interface FleetViewOptions {
  fleet: Fleet;
  instances: InstanceSource;
  /** A worker whose heartbeat is older than this is lost. */
  lostAfterMs: number;
  /** CPU and memory an instance reserves (its version's resources). */
  resources(inst: Instance): { cpu: number; memoryBytes: number };
  /**
   * Most local time a listing is aged by (default half of `lostAfterMs`): past it, heartbeats
   * may well have come that the view has not read, so a late listing (a fleet pass delayed, the
   * registry unreadable) stops aging instead of making every worker look lost.
   */
  maxAgingMs?: number;
  now?: () => number;
}

/** Whether `inst` still holds resources on its worker (placed, and running or being torn down). */
export function holdsResources(inst: Instance, now: number): boolean {
  return inst.worker !== undefined && (wantsRunning(inst, now) || !FINAL_STATUSES.has(inst.status));
}

/** See the module comment. */
export class FleetView {
  readonly #opts: FleetViewOptions;
  #listing: FleetListing = { now: 0, workers: [], images: {} };
  /** Local time of the listing, to age the registry clock between refreshes. */
  #listedAt = 0;
  #listed = false;
  #refreshing: Promise<void> | undefined;

  constructor(opts: FleetViewOptions) {
    this.#opts = opts;
  }

  /** Re-reads the registry. Rejects when it cannot be read (the view keeps what it had). */
  async refresh(): Promise<void> {
    const listing = await this.#opts.fleet.list();
    this.#listing = listing;
    this.#listedAt = this.#localNow();
    this.#listed = true;
  }

  /**
   * Re-reads the registry unless the last listing is younger than `maxAgeMs` (local clock; 0:
   * always); concurrent callers share one read. For verdicts that must not rest on an old
   * listing (a worker lost or unknown): between listings every heartbeat only ages, and workers
   * registered since are missing. Rejects like `refresh`.
   */
  async ensureFresh(maxAgeMs: number): Promise<void> {
    if (this.#listed && this.#localNow() - this.#listedAt < maxAgeMs) return;
    this.#refreshing ??= this.refresh().finally(() => { this.#refreshing = undefined; });
    return this.#refreshing;
  }

  /** The registry clock now: its value at the last listing, aged by local time since (up to `maxAgingMs`). */
  now(): number {
    const aged = Math.max(0, this.#localNow() - this.#listedAt);
    return this.#listing.now + Math.min(aged, this.#opts.maxAgingMs ?? this.#opts.lostAfterMs / 2);
  }

  /** Every registered worker with its effective state, by id. */
  workers(): WorkerView[] {
    const now = this.now();
    return this.#listing.workers.map(({ record, admin, launchOverride }) => ({ ...record, admin, launchOverride, state: workerState(record, admin, now, this.#opts.lostAfterMs) }));
  }

  worker(id: string): WorkerView | undefined {
    return this.workers().find((w) => w.id === id);
  }

  /** Image states reported by `worker`. */
  images(worker: string): Record<string, WorkerImageState> {
    return this.#listing.images[worker] ?? {};
  }

  /** What each worker holds now, from the instance view. */
  loads(at: number): Map<string, WorkerLoad> {
    const loads = new Map<string, WorkerLoad>();
    for (const inst of this.#opts.instances.all()) {
      if (!holdsResources(inst, at) || inst.worker === undefined) continue;
      loads.set(inst.worker, withPlaced(loads.get(inst.worker) ?? EMPTY_LOAD, { challenge: inst.challenge, ...this.#opts.resources(inst) }));
    }
    return loads;
  }

  /** Placement candidates for `needs`: every worker with its load and the image's state there. */
  candidates(needs: Pick<PlacementNeeds, 'image'>, loads: Map<string, WorkerLoad>): Candidate[] {
    return this.workers().map((worker) => {
      const image = this.images(worker.id)[needs.image];
      return { worker, load: loads.get(worker.id) ?? EMPTY_LOAD, ...(image ? { image } : {}) };
    });
  }

  /** Instance slots of ready workers (what admission may fill). */
  capacity(): number {
    return this.workers().filter((w) => w.state === 'ready').reduce((sum, w) => sum + w.capacity.slots, 0);
  }

  #localNow(): number {
    return this.#opts.now?.() ?? Date.now();
  }
}
