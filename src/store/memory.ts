/**
 * In-process `Store`: the embedded default when no Redis URL is configured. Same semantics as
 * `RedisStore` (both run `spec/store/contract.ts`); state is lost when the process exits.
 */
import { PoseidonError } from '../core/errors.ts';
import { isLive } from '../core/instance.ts';
import type { Instance, InstanceIntent, InstanceObservation } from '../core/instance.ts';
import type { CreateResult, InstanceFilter, Store } from '../core/store.ts';
import { compareInstances, normalizeInstance, splitPatch } from './codec.ts';

/** Map key of an owner's slot for a challenge; JSON keeps any pair of strings distinct. */
function slotKey(owner: string, challenge: string): string {
  return JSON.stringify([owner, challenge]);
}

/**
 * `Store` backed by Maps. Every record is deep-copied on the way in and out, so callers can
 * mutate what they pass or receive without touching the store. Every method is atomic because
 * it runs synchronously to completion; after `close()` every call rejects with `E_STORE`.
 */
export class MemoryStore implements Store {
  readonly #instances = new Map<string, Instance>();
  /** owner+challenge -> id of the instance that last took the slot. */
  readonly #slots = new Map<string, string>();
  readonly #listeners = new Set<(id: string) => void>();
  #closed = false;

  /** See `Store.createInstance`; an existing id (not the live slot holder) throws `E_STORE` terminal. */
  async createInstance(instance: Instance, now: number): Promise<CreateResult> {
    this.#open();
    const stored = normalizeInstance(instance);
    const key = slotKey(instance.owner, instance.challenge);
    const heldBy = this.#slots.get(key);
    const holder = heldBy === undefined ? undefined : this.#instances.get(heldBy);
    if (holder && isLive(holder, now)) return { created: false, existing: structuredClone(holder) };
    if (this.#instances.has(instance.id)) {
      throw new PoseidonError('E_STORE', 'instance id collision', { kind: 'terminal' });
    }
    this.#instances.set(instance.id, stored);
    this.#slots.set(key, instance.id);
    this.#notify(instance.id);
    return { created: true, instance: structuredClone(stored) };
  }

  /** See `Store.getInstance`. */
  async getInstance(id: string): Promise<Instance | undefined> {
    this.#open();
    const inst = this.#instances.get(id);
    return inst && structuredClone(inst);
  }

  /** See `Store.listInstances`. */
  async listInstances(filter: InstanceFilter = {}): Promise<Instance[]> {
    this.#open();
    const out: Instance[] = [];
    for (const inst of this.#instances.values()) {
      if (filter.team !== undefined && inst.team !== filter.team) continue;
      if (filter.challenge !== undefined && inst.challenge !== filter.challenge) continue;
      out.push(structuredClone(inst));
    }
    return out.sort(compareInstances);
  }

  /** See `Store.listIds`. */
  async listIds(): Promise<string[]> {
    this.#open();
    return [...this.#instances.keys()];
  }

  /** See `Store.updateInstance`; patch rules are `splitPatch`'s (undefined removes optional fields). */
  async updateInstance(
    id: string,
    fields: InstanceObservation | InstanceIntent,
    now: number,
  ): Promise<Instance | undefined> {
    this.#open();
    const { set, unset } = splitPatch(fields);
    const inst = this.#instances.get(id);
    if (!inst) return undefined;
    const next: Record<string, unknown> = { ...inst, ...set, updatedAt: now };
    for (const key of unset) delete next[key];
    const stored = normalizeInstance(next as unknown as Instance);
    this.#instances.set(id, stored);
    this.#notify(id);
    return structuredClone(stored);
  }

  /** See `Store.deleteInstance`; idempotent. */
  async deleteInstance(id: string): Promise<void> {
    this.#open();
    const inst = this.#instances.get(id);
    if (!inst) return;
    this.#instances.delete(id);
    const key = slotKey(inst.owner, inst.challenge);
    if (this.#slots.get(key) === id) this.#slots.delete(key);
    this.#notify(id);
  }

  /** See `Store.onChange`; listeners run in a microtask after the write, each isolated. */
  onChange(listener: (id: string) => void): () => void {
    const wrapped = (id: string): void => listener(id);
    this.#listeners.add(wrapped);
    return () => {
      this.#listeners.delete(wrapped);
    };
  }

  /** Drops listeners; later calls reject with `E_STORE`. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#listeners.clear();
  }

  #notify(id: string): void {
    for (const listener of this.#listeners) {
      queueMicrotask(() => {
        if (!this.#listeners.has(listener)) return; // unsubscribed meanwhile
        try {
          listener(id);
        } catch {
          // A throwing listener must not stop the others; change events are hints anyway.
        }
      });
    }
  }

  #open(): void {
    if (this.#closed) throw new PoseidonError('E_STORE', 'store unavailable: closed', { kind: 'transient' });
  }
}
