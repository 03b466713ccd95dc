/**
 * In-process `ManagerLease` (embedded mode, one process: it always holds the lease). Same contract
 * as the Redis one; `fence()` is the current token fenced in-process writes compare with.
 */
import type { LeaseState, ManagerLease } from '../core/manager-lease.ts';

export class MemoryManagerLease implements ManagerLease {
  #holder: string | undefined;
  #token = 0;
  #expiresAt = 0;

  constructor(private readonly now: () => number = Date.now) {}

  /** The current fencing token. */
  fence(): number {
    return this.#token;
  }

  async acquire(holder: string, leaseMs: number): Promise<number> {
    const now = this.now();
    const live = this.#holder !== undefined && this.#expiresAt > now;
    if (live && this.#holder === holder) {
      this.#expiresAt = now + leaseMs;
      return this.#token;
    }
    if (live) return 0;
    this.#token++;
    this.#holder = holder;
    this.#expiresAt = now + leaseMs;
    return this.#token;
  }

  async renew(holder: string, token: number, leaseMs: number): Promise<boolean> {
    const now = this.now();
    if (this.#holder !== holder || this.#token !== token || this.#expiresAt <= now) return false;
    this.#expiresAt = now + leaseMs;
    return true;
  }

  async release(holder: string, token: number): Promise<void> {
    if (this.#holder === holder && this.#token === token) this.#holder = undefined;
  }

  async state(): Promise<LeaseState> {
    const live = this.#holder !== undefined && this.#expiresAt > this.now();
    return { token: this.#token, ...(live ? { holder: this.#holder as string, expiresAt: this.#expiresAt } : {}) };
  }
}
