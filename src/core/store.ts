import type { Instance, InstanceIntent, InstanceObservation } from './instance.ts';

/** Result of an atomic create: either the new instance, or the live one that holds the slot. */
export type CreateResult =
  | { created: true; instance: Instance }
  | { created: false; existing: Instance };

export interface InstanceFilter {
  team?: string;
  challenge?: string;
}

/**
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
   */
  createInstance(instance: Instance, now: number): Promise<CreateResult>;
  /** The instance, or undefined when there is no such id. */
  getInstance(id: string): Promise<Instance | undefined>;
  /** All instances matching every given filter field, oldest first. */
  listInstances(filter?: InstanceFilter): Promise<Instance[]>;
  /** Ids of every stored instance. */
  listIds(): Promise<string[]>;
  /**
   * Writes only the given fields (plus `updatedAt`) of an existing instance and returns the
   * result; undefined (and nothing written) when the instance does not exist.
   */
  updateInstance(
    id: string,
    fields: InstanceObservation | InstanceIntent,
    now: number,
  ): Promise<Instance | undefined>;
  /** Removes the record and its index entries; frees the owner slot if it still held it. */
  deleteInstance(id: string): Promise<void>;
  /**
   * Calls `listener(id)` after any instance is created, updated or deleted (in this or, for
   * shared stores, another process). A hint only: notifications can be lost. Returns unsubscribe.
   */
  onChange(listener: (id: string) => void): () => void;
  close(): Promise<void>;
}
