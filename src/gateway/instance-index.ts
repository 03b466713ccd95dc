/**
 * In-memory view of instance records for the access hot path (forward-auth, the gateway page):
 * who owns a hostname, and whether the instance is still live. Fed by a full listing at start,
 * by store change notifications (hints, coalesced per id) and by a periodic full refresh, since
 * notifications can be lost. A stale entry can only err towards "not live" for at most one
 * refresh period after a missed notification, or allow an instance stopped a moment ago until
 * its route is gone from Traefik; see README "Forward-auth".
 */
import type { Logger } from '../core/reconcile.ts';
import { hostPrefix } from '../core/naming.ts';
import type { Instance } from '../core/instance.ts';
import type { Store } from '../core/store.ts';
import { hostKey } from './host.ts';

export interface InstanceIndexOptions {
  /** Full refresh period. */
  refreshMs: number;
  log: Logger;
  /** How long an id the store did not know is remembered as unknown (default 5 s). */
  negativeMs?: number;
  now?: () => number;
}

interface Entry {
  inst: Instance;
  /** Local time this entry was last written. */
  seenAt: number;
}

/**
 * Instance lookup by id and by hostname (prefix + challenge) without a store call. `resolve`
 * falls back to one store read for an id it does not hold (then remembers the answer).
 */
export class InstanceIndex {
  readonly #store: Store;
  readonly #opts: InstanceIndexOptions;
  readonly #now: () => number;
  #byId = new Map<string, Entry>();
  #byHost = new Map<string, string>();
  /** id -> when it was found deleted (so an older listing cannot resurrect it). */
  readonly #removed = new Map<string, number>();
  readonly #unknown = new Map<string, number>();
  readonly #dirty = new Set<string>();
  readonly #listeners = new Set<(id: string, inst: Instance | undefined) => void>();
  #flushing = false;
  #timer: NodeJS.Timeout | undefined;
  #unsubscribe: (() => void) | undefined;

  constructor(store: Store, opts: InstanceIndexOptions) {
    this.#store = store;
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
  }

  /** Loads every instance, subscribes to changes and starts the periodic refresh. Rejects when the store cannot be read. */
  async start(): Promise<void> {
    this.#unsubscribe = this.#store.onChange((id, created) => this.#changed(id, created));
    await this.refresh();
    const tick = (): void => {
      this.#timer = setTimeout(() => {
        this.refresh()
          .catch((err: unknown) => this.#opts.log.warn({ err: (err as Error).message }, 'instance index refresh failed'))
          .finally(() => { if (this.#unsubscribe) tick(); });
      }, this.#opts.refreshMs);
      this.#timer.unref();
    };
    tick();
  }

  /** Stops listening and refreshing; lookups keep answering from what is held. */
  stop(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    if (this.#timer) clearTimeout(this.#timer);
  }

  /** Replaces the view with a fresh listing, keeping entries written (or removed) while it ran. */
  async refresh(): Promise<void> {
    const started = this.#now();
    const listed = await this.#store.listInstances();
    const next = new Map<string, Entry>();
    for (const inst of listed) {
      const removedAt = this.#removed.get(inst.id);
      if (removedAt !== undefined && removedAt >= started) continue;
      const current = this.#byId.get(inst.id);
      next.set(inst.id, current && current.inst.updatedAt > inst.updatedAt ? current : { inst, seenAt: started });
    }
    for (const [id, e] of this.#byId) if (!next.has(id) && e.seenAt >= started) next.set(id, e);
    for (const [id, at] of this.#removed) if (at < started) this.#removed.delete(id);
    const before = this.#byId;
    this.#byId = next;
    this.#byHost = new Map([...next.values()].map((e) => [hostKey(hostPrefix(e.inst.id), e.inst.challenge), e.inst.id]));
    // Changes whose notification was lost surface here.
    if (this.#listeners.size === 0) return;
    for (const [id, e] of next) if (before.get(id)?.inst.updatedAt !== e.inst.updatedAt) this.#emit(id, e.inst);
    for (const id of before.keys()) if (!next.has(id)) this.#emit(id, undefined);
  }

  /**
   * Calls `listener(id, instance or undefined when deleted)` after the view took in a change
   * from the store's feed or found one in a full refresh: one store read feeds every consumer
   * (the event hub rides on this instead of reading each change again). Returns unsubscribe.
   */
  onUpdate(listener: (id: string, inst: Instance | undefined) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #emit(id: string, inst: Instance | undefined): void {
    for (const l of this.#listeners) {
      try {
        l(id, inst);
      } catch {
        // One consumer must not break the others.
      }
    }
  }

  /** Records `inst` (newer `updatedAt` wins); used by change notifications and by callers that just read it. */
  put(inst: Instance): void {
    const current = this.#byId.get(inst.id);
    if (current && current.inst.updatedAt > inst.updatedAt) return;
    this.#byId.set(inst.id, { inst, seenAt: this.#now() });
    this.#byHost.set(hostKey(hostPrefix(inst.id), inst.challenge), inst.id);
    this.#unknown.delete(inst.id);
  }

  /** The instance with this id, if held. */
  byId(id: string): Instance | undefined {
    return this.#byId.get(id)?.inst;
  }

  /** The instance whose hostnames start with `prefix` under `challenge`, if held. */
  byHost(prefix: string, challenge: string): Instance | undefined {
    const id = this.#byHost.get(hostKey(prefix, challenge));
    return id === undefined ? undefined : this.#byId.get(id)?.inst;
  }

  /** Every instance held (a live iterator over the view: do not keep it across awaits). */
  *all(): Iterable<Instance> {
    for (const e of this.#byId.values()) yield e.inst;
  }

  /** Number of instances held. */
  get size(): number {
    return this.#byId.size;
  }

  /**
   * The instance with this id: from memory, else one store read (an unknown id is remembered
   * for `negativeMs`, so a stream of tokens for a deleted instance costs one read). Rejects
   * with `E_STORE` when that read fails.
   */
  async resolve(id: string): Promise<Instance | undefined> {
    const held = this.#byId.get(id);
    if (held) return held.inst;
    const until = this.#unknown.get(id);
    if (until !== undefined && until > this.#now()) return undefined;
    const inst = await this.#store.getInstance(id);
    if (inst) this.put(inst);
    else this.#rememberUnknown(id);
    return inst;
  }

  #rememberUnknown(id: string): void {
    if (this.#unknown.size >= 10_000) this.#unknown.clear();
    this.#unknown.set(id, this.#now() + (this.#opts.negativeMs ?? 5000));
  }

  #remove(id: string): void {
    const e = this.#byId.get(id);
    if (e) {
      this.#byId.delete(id);
      this.#byHost.delete(hostKey(hostPrefix(id), e.inst.challenge));
    }
    this.#removed.set(id, this.#now());
  }

  #changed(id: string, created?: Instance): void {
    // A creation carries its record, the record's first write: whatever is held (the API's own
    // write, a read since) is at least as new. No read per launch, and its event keeps its order.
    if (created && !this.#dirty.has(id)) {
      if (!this.#byId.has(id)) this.put(created);
      this.#emit(id, this.#byId.get(id)?.inst ?? created);
      return;
    }
    this.#dirty.add(id);
    if (!this.#flushing) void this.#flush();
  }

  /** Re-reads every id that changed; one read per id however many notifications came in. */
  async #flush(): Promise<void> {
    this.#flushing = true;
    try {
      while (this.#dirty.size > 0) {
        const ids = [...this.#dirty];
        this.#dirty.clear();
        await Promise.all(ids.map((id) => this.#reread(id)));
      }
    } finally {
      this.#flushing = false;
    }
  }

  async #reread(id: string): Promise<void> {
    try {
      const inst = await this.#store.getInstance(id);
      if (inst) this.put(inst);
      else this.#remove(id);
      this.#emit(id, inst);
    } catch (err) {
      // The periodic refresh repairs it; a failed read must not drop what is held.
      this.#opts.log.warn({ instance: id, err: (err as Error).message }, 'instance index update failed');
    }
  }
}
