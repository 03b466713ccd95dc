/**
 * The network pool: internal instance networks made ahead of time, so a launch does not wait for
 * its network (a network create is about a tenth of a cold launch on a small host). A pooled
 * network goes to exactly one launch and never to another: a claim takes it out of the pool for
 * good, the container created on it names it (`poseidon.network`), and it is removed with that
 * container. Free means made by this process and not handed out; every other pooled network that
 * no container names (an earlier process's, or a launch's whose container never came or is gone)
 * is removed by the sweep, never reused. Only challenges without egress, leases or published
 * ports take pooled networks (those are the internal ones); the others make their own.
 *
 * With a gateway container, the pool joins it to each network as it makes it: the join is a
 * second network setup in the engine (about as costly as the create), and done ahead it is off the
 * launch path too. The launch still makes sure of the join (the runtime looks the network up and
 * joins only when the gateway is not on it), which repairs a gateway recreated since.
 */
import { newPoolNetwork } from '../core/naming.ts';
import type { Logger } from '../core/reconcile.ts';
import type { ContainerRuntime } from '../core/runtime.ts';

export interface NetworkPoolOptions {
  /** Free networks kept ready (0: no pool). */
  size: number;
  /** Quiet time after the last launch before the pool refills (default 1000 ms). */
  refillDelayMs?: number;
  /** The gateway container joined to each network as it is made (see the module comment). */
  gateway?: string;
  runtime: ContainerRuntime;
  log: Logger;
}

export interface PooledNetwork {
  name: string;
  id: string;
}

/** See the module comment. */
export class NetworkPool {
  readonly #opts: NetworkPoolOptions;
  #size: number;
  /** Whether it ever had a size: from then on its sweep runs, even at size 0 (see `sweeps`). */
  #sized: boolean;
  readonly #free: PooledNetwork[] = [];
  /** Names being made, free, or claimed by a launch not over yet: the sweep never removes these. */
  readonly #held = new Set<string>();
  #filling: Promise<void> | undefined;
  #refill: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(opts: NetworkPoolOptions) {
    this.#opts = opts;
    this.#size = opts.size;
    this.#sized = opts.size > 0;
  }

  /**
   * Whether the worker should sweep: once the pool had a size in this process. A worker that
   * never had one leaves pooled networks alone (another process on the engine may keep some);
   * one shrunk to 0 still removes what a failed trim or an earlier process left.
   */
  get sweeps(): boolean {
    return this.#sized;
  }

  /** Free networks now. */
  get free(): number {
    return this.#free.length;
  }

  /** Free networks it keeps ready. */
  get size(): number {
    return this.#size;
  }

  /**
   * Changes how many free networks it keeps: a larger pool fills in the background, a smaller one
   * removes its extra free networks now (the newest first; the gateway leaves them, and every
   * join it makes later is cheaper for it). Networks handed out are not touched.
   */
  async resize(size: number): Promise<void> {
    this.#size = size;
    if (size > 0) this.#sized = true;
    await this.#discard(this.#free.splice(size).reverse());
    void this.fill();
  }

  /**
   * A free network for one launch, or undefined when none is (the launch makes its own). The
   * caller must `release` it once its container is created and started, or will not be.
   */
  claim(): PooledNetwork | undefined {
    return this.#free.shift();
  }

  /**
   * The launch that claimed `name` is over: its container names it, or the sweep removes it.
   * The pool refills once launches have paused for `refillDelayMs`: a network create next to a
   * container's start or readiness probe slows both (the engine serialises network setup), and a
   * burst is better served by its own launches than by refills competing with them.
   */
  release(name: string): void {
    this.#held.delete(name);
    if (this.#stopped) return;
    if (this.#refill) clearTimeout(this.#refill);
    this.#refill = setTimeout(() => { this.#refill = undefined; void this.fill(); }, this.#opts.refillDelayMs ?? 1000);
    this.#refill.unref();
  }

  /** Tops the pool up to its size in the background, one network at a time; a failure waits for the next call. */
  fill(): Promise<void> {
    if (this.#filling || this.#stopped || this.#free.length >= this.#size) return this.#filling ?? Promise.resolve();
    this.#filling = this.#fill().finally(() => { this.#filling = undefined; });
    return this.#filling;
  }

  async #fill(): Promise<void> {
    const { runtime, log } = this.#opts;
    while (!this.#stopped && this.#free.length < this.#size) {
      const { name, bridge } = newPoolNetwork();
      this.#held.add(name);
      let id: string | undefined;
      try {
        id = await runtime.createPoolNetwork(name, bridge);
        if (this.#opts.gateway) await runtime.connect(id, this.#opts.gateway);
        // Made while the pool was resized below what it holds: one too many, not kept. The loop
        // goes on: the size may have grown again meanwhile (its fill() joined this one).
        if (this.#free.length >= this.#size) {
          await runtime.removeNetwork(id).catch(() => undefined);
          this.#held.delete(name);
          continue;
        }
        this.#free.push({ name, id });
      } catch (err) {
        // A network the gateway could not join is not kept: removed now, or by the next sweep.
        if (id !== undefined) await runtime.removeNetwork(id).catch(() => undefined);
        this.#held.delete(name);
        log.warn({ network: name, err: (err as Error).message }, 'network pool: create or gateway join failed; retrying at the next launch or resync');
        return;
      }
    }
  }

  /**
   * Removes every pooled network that is neither held here nor named by a container. Lists the
   * networks first and the containers last: a network handed out before the listing was released
   * only after its container existed, so that container is in the second listing.
   */
  async sweep(): Promise<number> {
    const { runtime } = this.#opts;
    const pooled = await runtime.listPoolNetworks();
    const held = new Set(this.#held);
    const used = new Set((await runtime.listContainers()).map((c) => c.network).filter((n) => n !== undefined));
    let removed = 0;
    for (const n of pooled) {
      if (held.has(n.name) || used.has(n.name)) continue;
      await runtime.removeNetwork(n.id);
      removed++;
    }
    return removed;
  }

  /** Stops refilling and removes the free networks (claimed ones go with their containers). */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#refill) clearTimeout(this.#refill);
    await this.#filling;
    await this.#discard(this.#free.splice(0));
  }

  /** Removes free networks taken out of the pool; one that will not go is left to a later sweep. */
  async #discard(networks: readonly PooledNetwork[]): Promise<void> {
    for (const n of networks) {
      this.#held.delete(n.name);
      await this.#opts.runtime.removeNetwork(n.id).catch((err: unknown) => this.#opts.log.warn({ network: n.name, err: (err as Error).message }, 'network pool: remove failed; a later sweep retries'));
    }
  }
}
