/**
 * In-process `LeaseStore` for the embedded default (no Redis). Same contract as the Redis one
 * (`spec/store/leases-contract.ts`); every method runs to completion synchronously, so each is
 * atomic within the process.
 */
import { Codes, PoseidonError } from '../core/errors.ts';
import { noPortError, type LeaseStore, type PortLease, type PortRange } from '../core/leases.ts';

/** `LeaseStore` over two Maps and a round-robin cursor. */
export class MemoryLeaseStore implements LeaseStore {
  readonly #ports = new Map<number, PortLease>();
  readonly #byInstance = new Map<string, Map<string, number>>();
  #cursor = 0;
  #closed = false;

  /** See `LeaseStore.acquire`. */
  async acquire(instance: string, names: readonly string[], range: PortRange, now: number): Promise<Record<string, number>> {
    this.#open();
    const held = this.#byInstance.get(instance) ?? new Map<string, number>();
    const result: Record<string, number> = {};
    const needed: string[] = [];
    for (const name of names) {
      const port = held.get(name);
      const owner = port === undefined ? undefined : this.#ports.get(port);
      if (port !== undefined && port >= range.lo && port <= range.hi && owner?.instance === instance && owner.name === name) result[name] = port;
      else needed.push(name);
    }
    const size = range.hi - range.lo + 1;
    const chosen: number[] = [];
    let scanned = 0;
    for (let i = 0; i < needed.length; i++) {
      let found: number | undefined;
      while (scanned < size && found === undefined) {
        const p = range.lo + ((this.#cursor + scanned) % size);
        scanned++;
        if (!this.#ports.has(p)) found = p;
      }
      if (found === undefined) throw noPortError(instance, needed.length, range);
      chosen.push(found);
    }
    if (needed.length > 0) this.#cursor = (this.#cursor + scanned) % size;
    for (const [i, name] of needed.entries()) {
      const stale = held.get(name);
      if (stale !== undefined && this.#ports.get(stale)?.instance === instance) this.#ports.delete(stale);
      const port = chosen[i] as number;
      this.#ports.set(port, { port, instance, name, acquiredAt: now });
      held.set(name, port);
      result[name] = port;
    }
    if (held.size > 0) this.#byInstance.set(instance, held);
    return result;
  }

  /** See `LeaseStore.release`. */
  async release(instance: string): Promise<number> {
    this.#open();
    const held = this.#byInstance.get(instance);
    this.#byInstance.delete(instance);
    let freed = 0;
    for (const port of held?.values() ?? []) {
      if (this.#ports.get(port)?.instance !== instance) continue;
      this.#ports.delete(port);
      freed++;
    }
    return freed;
  }

  /** See `LeaseStore.list`. */
  async list(): Promise<PortLease[]> {
    this.#open();
    return [...this.#ports.values()].map((l) => ({ ...l })).sort((a, b) => a.port - b.port);
  }

  /** Later calls reject with `E_STORE`. */
  async close(): Promise<void> {
    this.#closed = true;
  }

  #open(): void {
    if (this.#closed) throw new PoseidonError(Codes.store, 'lease store unavailable: closed', { kind: 'transient' });
  }
}
