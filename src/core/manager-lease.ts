/**
 * The manager lease: any number of `poseidon serve` replicas share one Redis; the work that must
 * happen once (admission, placement, catalog sync and builds, the edge file, webhooks out,
 * finishing and deleting records) runs on the holder of this lease. Each acquisition increments
 * a fencing token (Kleppmann); every write done on the lease's behalf carries it, and the store
 * refuses a write whose token is older than the current one, so a paused or partitioned former
 * holder cannot act after losing the lease. Timing follows Kubernetes leader election: the lease
 * lasts `leaseMs`, the holder renews every `retryMs` and steps down when it could not renew for
 * `renewDeadlineMs` (< `leaseMs`), before anyone else can take it.
 * Adapters: `store/redis-manager-lease.ts` and `store/memory-manager-lease.ts`, held to one contract.
 */

/** What a replica knows about the lease. */
export interface LeaseState {
  /** The holder's id, or undefined when nobody holds a live lease. */
  holder?: string;
  /** The current fencing token (0 before the first acquisition). */
  token: number;
  /** When the lease runs out, on the lease store's clock (epoch ms). */
  expiresAt?: number;
}

export interface ManagerLease {
  /**
   * Takes the lease for `holder` when it is free or expired (a new, higher token), or renews it
   * when `holder` holds it (same token). Resolves with the token held, or 0 when another holds it.
   */
  acquire(holder: string, leaseMs: number): Promise<number>;
  /** Extends the lease when `holder` still holds it with `token`; false otherwise (it was lost). */
  renew(holder: string, token: number, leaseMs: number): Promise<boolean>;
  /** Gives the lease up when `holder` holds it with `token` (a clean shutdown hands over at once). */
  release(holder: string, token: number): Promise<void>;
  state(): Promise<LeaseState>;
}

/** A write done on the lease's behalf: refused by the store when `token` is older than the current one. */
export interface Fence {
  token: number;
}

/** The error code of a write refused by its fence. */
export const FENCED = 'E_FENCED';
