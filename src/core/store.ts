import type { Instance, InstanceIntent, InstanceObservation } from './instance.ts';
import type { Fence } from './manager-lease.ts';

/**
 * Result of an atomic create. `created: true` carries the stored instance (status `pending`, or
 * `queued` when the capacity was full). Otherwise `reason` says why and `existing` is the
 * instance that explains it: the owner's live instance (`owner`), the instance an earlier
 * request with the same idempotency key created (`replay`, or `key-reused` when the body
 * differed), or the first of the team's live instances (`team-limit`, all of them in `holders`).
 */
export type CreateResult =
  | { created: true; instance: Instance }
  | { created: false; reason: 'owner' | 'replay' | 'key-reused'; existing: Instance }
  | { created: false; reason: 'team-limit'; existing: Instance; holders: Instance[] }
  | { created: false; reason: 'rate-limited'; retryAfterMs: number };

export interface CreateOptions {
  /** Most live instances one team may hold across challenges; 0 or absent: no limit. */
  teamLimit?: number;
  /** Most admitted live instances overall; beyond it the instance is created `queued`. 0: no limit. */
  capacity?: number;
  /** Replay protection: the same key returns the first instance for `ttlMs`. */
  idempotency?: { key: string; fingerprint: string; ttlMs: number };
  /**
   * Counts one hit on this fixed window (as `hitRate`) in the same atomic step, after the
   * idempotency replay check: a replay (even a concurrent copy of the first request) costs
   * nothing, every other attempt counts, refused or not.
   */
  rate?: { key: string; limit: number; windowMs: number };
}

/** See `Store.claimPooled`. */
export interface ClaimOptions {
  reason: string;
  /** The key the claimant's create was made with: it names the member afterwards. */
  idempotencyKey?: string;
  /** The owner's flag sealed for the member's worker and placement (`core/seal.ts`). */
  sealedFlag?: string;
}

/** Outcome of trying to admit a queued instance. */
export type AdmitResult = 'admitted' | 'full' | 'gone';

/** A conditional update lost to a concurrent one. */
export const CONFLICT = 'conflict' as const;

/** Who a flag was issued to; kept (by the flag's SHA-256) after the instance is gone. */
export interface FlagRecord {
  team: string;
  user?: string;
  challenge: string;
  instance: string;
  issuedAt: number;
}

/** A flag submitted by a team that was issued to another. */
export interface FlagIncident {
  at: number;
  challenge: string;
  submittedBy: string;
  owner: string;
  instance: string;
}

export interface RateResult {
  allowed: boolean;
  /** When not allowed: how long until the window resets. */
  retryAfterMs: number;
}

export interface InstanceFilter {
  team?: string;
  challenge?: string;
  /** Instances placed on this worker. */
  worker?: string;
}

/** Where an instance is placed now, as read by the caller of `assign`. */
export interface Placement {
  epoch: number;
  worker?: string;
}

/**
 * Fencing: the writes the manager makes on the lease's behalf (placement, admission, finishing
 * and deleting records, version moves) may carry a `fence`; the store refuses one whose token is
 * older than the current lease token with PoseidonError `E_FENCED` (terminal), atomically with
 * the write. API writes carry none.
 *
 * Desired-state store port. Adapters: `store/redis.ts` (production) and `store/memory.ts`
 * (embedded default). Both pass the shared suite in `spec/store/contract.ts`.
 *
 * All methods reject with a PoseidonError code `E_STORE` (kind transient) when the backend
 * cannot be read or written; callers must never act on a failed read.
 */
export interface Store {
  /**
   * Atomically inserts `instance` unless its owner already holds a live instance (see
   * `isLive`) of the same challenge; `now` is the clock used for that liveness check.
   * Concurrent calls for the same owner and challenge yield exactly one `created: true`.
   * Idempotent by id: the same instance sent again (a command retried after a lost reply)
   * answers `created: true` with the stored record and writes nothing more.
   */
  createInstance(instance: Instance, now: number, opts?: CreateOptions): Promise<CreateResult>;
  /**
   * Writes `fields` only if every field in `expect` still has the given value; returns the
   * updated instance, `CONFLICT` when an expectation failed, undefined when there is no such id.
   */
  compareAndUpdate(
    id: string,
    expect: Partial<Pick<Instance, 'generation' | 'renewals' | 'expiresAt' | 'status' | 'desired' | 'epoch'>>,
    fields: InstanceObservation | InstanceIntent,
    now: number,
    fence?: Fence,
  ): Promise<Instance | typeof CONFLICT | undefined>;
  /**
   * (Re)places an instance: writes `fields` (with `epoch` = `from.epoch + 1`, and `worker`, or
   * no worker when `to` is undefined) only if its placement is still `from`, and moves it between
   * the per-worker indexes in the same atomic step. `CONFLICT` when another placement won,
   * undefined when there is no such instance. Two managers racing never place it twice.
   */
  assign(id: string, from: Placement, to: string | undefined, fields: InstanceIntent, now: number, fence?: Fence): Promise<Instance | typeof CONFLICT | undefined>;
  /**
   * Warm pools: hands `member` (an unclaimed pool member: team `POOL_TEAM`, asked to run, status
   * `running`, placed, not expired, same challenge and version) to the owner of `claimant` (an
   * instance the caller just created, still unplaced, `pending` or `queued`), in one atomic step.
   * The member takes the claimant's team, user, owner, creation and expiry times, becomes
   * `starting` with `reason` and `sealedFlag` (the owner's flag sealed by the caller; absent: the
   * member's is dropped and the manager seals the owner's); it takes
   * the owner's slot and, when `idempotencyKey` named the claimant, that key; the claimant's
   * record and index entries go. `CONFLICT` (nothing written) when either is not what is described.
   */
  claimPooled(claimant: Instance, member: Instance, opts: ClaimOptions, now: number): Promise<Instance | typeof CONFLICT>;
  /** The instance id an idempotency key (as given to `createInstance`) created, while remembered. */
  idempotentInstance(key: string, now: number): Promise<string | undefined>;
  /** Ids waiting for admission, oldest first. */
  queuedIds(): Promise<string[]>;
  /** 1-based position of `id` in the admission queue, or undefined when not queued. */
  queuePosition(id: string): Promise<number | undefined>;
  /**
   * Admits `id` if it is the oldest live queued instance and fewer than `capacity` admitted
   * instances are live: it becomes `pending` with the given times. `gone` when it is no longer
   * waiting (cancelled, failed) and was dropped from the queue.
   */
  admit(id: string, now: number, capacity: number, times: { expiresAt: number; maxExpiresAt: number }, fence?: Fence): Promise<AdmitResult>;
  /**
   * When the `position`-th place should free up: the `position`-th earliest `expiresAt` among
   * admitted live instances (undefined when fewer are admitted). Costs O(admitted), not O(all).
   */
  admittedExpiry(position: number, now: number): Promise<number | undefined>;
  /** Number of admitted instances that are live at `now`. */
  countAdmitted(now: number): Promise<number>;
  /** Counts one hit on `key` in a fixed window; refuses beyond `limit` hits per window. */
  hitRate(key: string, limit: number, windowMs: number, now: number): Promise<RateResult>;
  /** Remembers who `digest` (SHA-256 hex of a flag) was issued to, for `ttlMs`. */
  recordFlag(digest: string, record: FlagRecord, ttlMs: number): Promise<void>;
  findFlag(digest: string): Promise<FlagRecord | undefined>;
  addIncident(incident: FlagIncident): Promise<void>;
  /** Most recent first, at most `limit`. */
  listIncidents(limit: number): Promise<FlagIncident[]>;
  /** The instance, or undefined when there is no such id. */
  getInstance(id: string): Promise<Instance | undefined>;
  /** All instances matching every given filter field, oldest first. */
  listInstances(filter?: InstanceFilter): Promise<Instance[]>;
  /** Ids of every stored instance. */
  listIds(): Promise<string[]>;
  /**
   * Writes only the given fields (plus `updatedAt`: `now`, or one more than the stored one when
   * `now` is not later, as every write does) of an existing instance and returns the result;
   * undefined (and nothing written) when the instance does not exist.
   */
  updateInstance(
    id: string,
    fields: InstanceObservation | InstanceIntent,
    now: number,
    fence?: Fence,
  ): Promise<Instance | undefined>;
  /** Removes the record and its index entries; frees the owner slot if it still held it. */
  deleteInstance(id: string, fence?: Fence): Promise<void>;
  /**
   * Calls `listener(id, created)` after any instance is created, updated or deleted (in this or,
   * for shared stores, another process). For a creation, `created` is the record as stored (a
   * view needs no read to hold it); undefined for any other change. A hint only: notifications
   * can be lost. Returns unsubscribe.
   */
  onChange(listener: (id: string, created?: Instance) => void): () => void;
  close(): Promise<void>;
}
