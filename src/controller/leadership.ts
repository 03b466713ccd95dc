/**
 * Leader election over the manager lease (`core/manager-lease.ts`), after client-go's
 * leaderelection: every `retryMs` a follower tries to take the lease and the leader renews it;
 * a leader that has not renewed for `renewDeadlineMs` steps down on its own, before the lease
 * (`leaseMs` > `renewDeadlineMs`) can run out and be taken by another replica. Being elected
 * starts the leader-only work with its fencing token; stepping down stops it first.
 */
import type { ManagerLease } from '../core/manager-lease.ts';
import type { Logger } from '../core/reconcile.ts';

export interface LeadershipOptions {
  lease: ManagerLease;
  /** This replica's id (host name and pid, unique enough). */
  id: string;
  leaseMs: number;
  renewDeadlineMs: number;
  retryMs: number;
  log: Logger;
  /**
   * Starts the leader-only work with `token`. Rounds (renewals) go on while it starts; stepping
   * down waits for it to have started. A rejection steps down and releases the lease.
   */
  onElected(token: number): Promise<void>;
  /** Stops it; awaited before this replica tries to lead again. */
  onDeposed(): Promise<void>;
  now?: () => number;
}

/** See the module comment. */
export class Leadership {
  readonly #opts: LeadershipOptions;
  #token: number | undefined;
  #lastRenew = 0;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #round: Promise<void> = Promise.resolve();
  #since: number | undefined;
  /** The leader work starting (or started) for the current term. */
  #starting: Promise<void> = Promise.resolve();

  constructor(opts: LeadershipOptions) {
    if (opts.renewDeadlineMs >= opts.leaseMs) throw new Error('leadership: the renew deadline must be shorter than the lease');
    this.#opts = opts;
  }

  /** The fencing token while leading, undefined otherwise. */
  get token(): number | undefined {
    return this.#token;
  }

  get leader(): boolean {
    return this.#token !== undefined;
  }

  /** When this replica became leader (epoch ms), while it is. */
  get since(): number | undefined {
    return this.#since;
  }

  /**
   * Runs the first round, then one per `retryMs`; resolves once the first round is done and, when
   * it made this replica the leader, the leader work has started (a lone replica leads at once).
   */
  async start(): Promise<void> {
    await this.#runRound();
    const tick = (): void => {
      this.#timer = setTimeout(() => {
        void this.#runRound().finally(() => { if (!this.#stopped) tick(); });
      }, this.#opts.retryMs);
      this.#timer.unref();
    };
    tick();
    await this.#starting;
  }

  /** Stops the loop; a leader steps down and releases the lease so another takes over at once. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#round;
    const token = this.#token;
    if (token === undefined) return;
    await this.#stepDown('stopping');
    await this.#opts.lease.release(this.#opts.id, token).catch(() => undefined);
  }

  #runRound(): Promise<void> {
    this.#round = this.#round.then(() => this.#once()).catch((err: unknown) => {
      this.#opts.log.warn({ err: (err as Error).message }, 'leader election round failed');
    });
    return this.#round;
  }

  async #once(): Promise<void> {
    if (this.#stopped) return;
    const { lease, id, leaseMs } = this.#opts;
    const now = this.#now();
    if (this.#token !== undefined) {
      const renewed = await lease.renew(id, this.#token, leaseMs).catch(() => false);
      if (renewed) {
        this.#lastRenew = now;
        return;
      }
      // Could not renew: step down at the deadline at the latest (it may be a Redis blip), or at
      // once when the lease is known to be gone or held by another.
      const state = await lease.state().catch(() => undefined);
      const lost = state !== undefined && (state.holder !== id || state.token !== this.#token);
      if (lost || now - this.#lastRenew >= this.#opts.renewDeadlineMs) await this.#stepDown(lost ? 'lease taken' : 'renew deadline passed');
      return;
    }
    const token = await lease.acquire(id, leaseMs).catch(() => 0);
    if (token === 0) return;
    this.#token = token;
    this.#lastRenew = now;
    this.#since = now;
    this.#opts.log.warn({ replica: id, token }, 'this replica leads now');
    this.#starting = this.#opts.onElected(token).catch(async (err: unknown) => {
      this.#opts.log.error({ err: (err as Error).message }, 'leader work failed to start; stepping down');
      if (this.#token !== token) return;
      this.#token = undefined;
      this.#since = undefined;
      await this.#opts.onDeposed().catch(() => undefined);
      await lease.release(id, token).catch(() => undefined);
    });
  }

  async #stepDown(why: string): Promise<void> {
    const token = this.#token;
    this.#token = undefined;
    this.#since = undefined;
    // The token is gone first: fenced writes of work still starting are refused from now on.
    await this.#starting;
    this.#opts.log.warn({ replica: this.#opts.id, token, why }, 'this replica stops leading');
    await this.#opts.onDeposed().catch((err: unknown) => this.#opts.log.error({ err: (err as Error).message }, 'stopping leader work failed'));
  }

  #now(): number {
    return this.#opts.now?.() ?? Date.now();
  }
}
