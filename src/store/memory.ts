/**
 * In-process `Store`: the embedded default when no Redis URL is configured. Same semantics as
 * `RedisStore` (both run `spec/store/contract.ts`); state is lost when the process exits.
 */
import { PoseidonError } from '../core/errors.ts';
import { isLive, POOL_TEAM } from '../core/instance.ts';
import type { Instance, InstanceIntent, InstanceObservation } from '../core/instance.ts';
import { CONFLICT } from '../core/store.ts';
import { FENCED, type Fence } from '../core/manager-lease.ts';
import type { AdmitResult, ClaimOptions, CreateOptions, CreateResult, FlagIncident, FlagRecord, InstanceFilter, Placement, RateResult, Store } from '../core/store.ts';
import { compareInstances, normalizeInstance, restamp, splitPatch } from './codec.ts';

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
  readonly #listeners = new Set<(id: string, created?: Instance) => void>();
  readonly #admitted = new Set<string>();
  /** Admission queue, oldest first. */
  #queue: string[] = [];
  readonly #idempotency = new Map<string, { id: string; fingerprint: string; until: number }>();
  readonly #rates = new Map<string, { count: number; resetAt: number }>();
  readonly #flags = new Map<string, { record: FlagRecord; until: number }>();
  #incidents: FlagIncident[] = [];
  #closed = false;
  /** The current fencing token (the in-process manager lease's), when fencing is wired. */
  #fence: (() => number) | undefined;

  /** Fenced writes compare their token with `current()` (see `Store`, fencing). */
  useFence(current: () => number): void {
    this.#fence = current;
  }

  #checkFence(fence: Fence | undefined): void {
    if (fence && this.#fence && fence.token < this.#fence()) {
      throw new PoseidonError(FENCED, 'write refused: this manager\'s lease token is stale (another replica leads now)', { kind: 'terminal' });
    }
  }

  /** See `Store.createInstance`; an existing id (not the live slot holder) throws `E_STORE` terminal. */
  async createInstance(instance: Instance, now: number, opts: CreateOptions = {}): Promise<CreateResult> {
    this.#open();
    const stored = normalizeInstance(instance);
    const prior = this.#instances.get(instance.id);
    if (prior) {
      // The same create sent again (see `Store.createInstance`) answers as created.
      if (prior.owner === stored.owner && prior.createdAt === stored.createdAt) return { created: true, instance: structuredClone(prior) };
      throw new PoseidonError('E_STORE', 'instance id collision', { kind: 'terminal' });
    }
    const refused = this.#refusal(instance, now, opts);
    if (refused) return refused;
    const cap = opts.capacity ?? 0;
    if (cap > 0 && (this.#liveAdmitted(now) >= cap || this.#liveQueue(now).length > 0)) {
      stored.status = 'queued';
      this.#queue.push(stored.id);
    } else {
      this.#admitted.add(stored.id);
    }
    this.#instances.set(instance.id, stored);
    this.#slots.set(slotKey(instance.owner, instance.challenge), instance.id);
    const idem = opts.idempotency;
    if (idem) this.#idempotency.set(idem.key, { id: stored.id, fingerprint: idem.fingerprint, until: now + idem.ttlMs });
    this.#notify(instance.id, stored);
    return { created: true, instance: structuredClone(stored) };
  }

  /** Why a create is refused (replay, owner slot, team limit), in that order; undefined when it may go ahead. */
  #refusal(instance: Instance, now: number, opts: CreateOptions): CreateResult | undefined {
    const idem = opts.idempotency && this.#idempotency.get(opts.idempotency.key);
    const first = idem && idem.until > now ? this.#instances.get(idem.id) : undefined;
    if (first) {
      const reason = idem?.fingerprint === opts.idempotency?.fingerprint ? 'replay' : 'key-reused';
      return { created: false, reason, existing: structuredClone(first) };
    }
    if (opts.rate) {
      const r = this.#hit(opts.rate.key, opts.rate.limit, opts.rate.windowMs, now);
      if (!r.allowed) return { created: false, reason: 'rate-limited', retryAfterMs: r.retryAfterMs };
    }
    const heldBy = this.#slots.get(slotKey(instance.owner, instance.challenge));
    const holder = heldBy === undefined ? undefined : this.#instances.get(heldBy);
    if (holder && isLive(holder, now)) return { created: false, reason: 'owner', existing: structuredClone(holder) };
    const limit = opts.teamLimit ?? 0;
    if (limit <= 0) return undefined;
    const holders = [...this.#instances.values()].filter((i) => i.team === instance.team && isLive(i, now)).sort(compareInstances);
    const [firstHolder] = holders;
    if (holders.length < limit || !firstHolder) return undefined;
    return { created: false, reason: 'team-limit', existing: structuredClone(firstHolder), holders: holders.map((h) => structuredClone(h)) };
  }

  /** See `Store.compareAndUpdate`. */
  async compareAndUpdate(id: string, expect: Partial<Instance>, fields: InstanceObservation | InstanceIntent, now: number, fence?: Fence): Promise<Instance | typeof CONFLICT | undefined> {
    this.#open();
    this.#checkFence(fence);
    const inst = this.#instances.get(id);
    if (!inst) return undefined;
    for (const [key, value] of Object.entries(expect)) {
      if (inst[key as keyof Instance] !== value) return CONFLICT;
    }
    return this.updateInstance(id, fields, now);
  }

  /** See `Store.assign`. */
  async assign(id: string, from: Placement, to: string | undefined, fields: InstanceIntent, now: number, fence?: Fence): Promise<Instance | typeof CONFLICT | undefined> {
    this.#open();
    this.#checkFence(fence);
    const inst = this.#instances.get(id);
    if (!inst) return undefined;
    if (inst.epoch !== from.epoch || inst.worker !== from.worker) return CONFLICT;
    const { set, unset } = splitPatch({ ...fields, epoch: from.epoch + 1, worker: to });
    const next: Record<string, unknown> = { ...inst, ...set, placedAt: now, updatedAt: restamp(inst, now) };
    for (const key of unset) delete next[key];
    const stored = normalizeInstance(next as unknown as Instance);
    this.#instances.set(id, stored);
    this.#notify(id);
    return structuredClone(stored);
  }

  /** See `Store.claimPooled`. */
  async claimPooled(claimant: Instance, member: Instance, opts: ClaimOptions, now: number): Promise<Instance | typeof CONFLICT> {
    this.#open();
    const x = this.#instances.get(claimant.id);
    const p = this.#instances.get(member.id);
    if (!x || !p || x.id === p.id) return CONFLICT;
    const claimable = x.team === claimant.team && x.owner === claimant.owner && x.challenge === claimant.challenge && x.worker === undefined
      && x.desired === 'running' && (x.status === 'pending' || x.status === 'queued') && x.specHash === claimant.specHash;
    const unclaimed = p.team === POOL_TEAM && p.owner === member.owner && p.challenge === x.challenge && p.desired === 'running'
      && p.status === 'running' && p.specHash === x.specHash && p.worker !== undefined && p.expiresAt > now;
    if (!claimable || !unclaimed) return CONFLICT;
    const next: Instance = {
      ...p, team: x.team, owner: x.owner, createdAt: x.createdAt, expiresAt: x.expiresAt, maxExpiresAt: x.maxExpiresAt,
      renewals: 0, status: 'starting', reason: opts.reason, updatedAt: restamp(p, now),
    };
    if (x.user !== undefined) next.user = x.user;
    else delete next.user;
    if (opts.sealedFlag) next.sealedFlag = opts.sealedFlag;
    else delete next.sealedFlag;
    const stored = normalizeInstance(next);
    this.#instances.set(p.id, stored);
    this.#admitted.add(p.id);
    const poolSlot = slotKey(p.owner, p.challenge);
    if (this.#slots.get(poolSlot) === p.id) this.#slots.delete(poolSlot);
    this.#slots.set(slotKey(x.owner, x.challenge), p.id);
    const idem = opts.idempotencyKey === undefined ? undefined : this.#idempotency.get(opts.idempotencyKey);
    if (idem?.id === x.id) idem.id = p.id;
    this.#instances.delete(x.id);
    this.#admitted.delete(x.id);
    this.#queue = this.#queue.filter((q) => q !== x.id);
    this.#notify(x.id);
    this.#notify(p.id);
    return structuredClone(stored);
  }

  /** See `Store.idempotentInstance`. */
  async idempotentInstance(key: string, now: number): Promise<string | undefined> {
    this.#open();
    const idem = this.#idempotency.get(key);
    return idem && idem.until > now ? idem.id : undefined;
  }

  /** See `Store.queuedIds`. */
  async queuedIds(): Promise<string[]> {
    this.#open();
    return this.#liveQueue(Date.now());
  }

  /** See `Store.queuePosition`. */
  async queuePosition(id: string): Promise<number | undefined> {
    this.#open();
    const i = this.#liveQueue(Date.now()).indexOf(id);
    return i < 0 ? undefined : i + 1;
  }

  /** See `Store.admit`. */
  async admit(id: string, now: number, capacity: number, times: { expiresAt: number; maxExpiresAt: number }, fence?: Fence): Promise<AdmitResult> {
    this.#open();
    this.#checkFence(fence);
    const queue = this.#liveQueue(now);
    if (queue[0] !== id) return queue.includes(id) ? 'full' : 'gone';
    if (capacity > 0 && this.#liveAdmitted(now) >= capacity) return 'full';
    const inst = this.#instances.get(id);
    if (!inst) return 'gone';
    this.#instances.set(id, { ...inst, status: 'pending', expiresAt: times.expiresAt, maxExpiresAt: times.maxExpiresAt, updatedAt: restamp(inst, now) });
    this.#queue = this.#queue.filter((q) => q !== id);
    this.#admitted.add(id);
    this.#notify(id);
    return 'admitted';
  }

  /** See `Store.admittedExpiry`. */
  async admittedExpiry(position: number, now: number): Promise<number | undefined> {
    this.#open();
    this.#liveAdmitted(now);
    const expiries = [...this.#admitted].map((id) => this.#instances.get(id)?.expiresAt ?? Infinity).sort((a, b) => a - b);
    const at = expiries[position - 1];
    return at === undefined || !Number.isFinite(at) ? undefined : at;
  }

  /** See `Store.countAdmitted`. */
  async countAdmitted(now: number): Promise<number> {
    this.#open();
    return this.#liveAdmitted(now);
  }

  /** See `Store.hitRate`. */
  async hitRate(key: string, limit: number, windowMs: number, now: number): Promise<RateResult> {
    this.#open();
    return this.#hit(key, limit, windowMs, now);
  }

  #hit(key: string, limit: number, windowMs: number, now: number): RateResult {
    let w = this.#rates.get(key);
    if (!w || w.resetAt <= now) {
      w = { count: 0, resetAt: now + windowMs };
      this.#rates.set(key, w);
    }
    w.count++;
    return w.count > limit ? { allowed: false, retryAfterMs: w.resetAt - now } : { allowed: true, retryAfterMs: 0 };
  }

  /** See `Store.recordFlag`. */
  async recordFlag(digest: string, record: FlagRecord, ttlMs: number): Promise<void> {
    this.#open();
    this.#flags.set(digest, { record: structuredClone(record), until: Date.now() + ttlMs });
  }

  /** See `Store.findFlag`. */
  async findFlag(digest: string): Promise<FlagRecord | undefined> {
    this.#open();
    const f = this.#flags.get(digest);
    return f && f.until > Date.now() ? structuredClone(f.record) : undefined;
  }

  /** See `Store.addIncident`; keeps the latest 10,000. */
  async addIncident(incident: FlagIncident): Promise<void> {
    this.#open();
    this.#incidents = [structuredClone(incident), ...this.#incidents].slice(0, 10_000);
  }

  /** See `Store.listIncidents`. */
  async listIncidents(limit: number): Promise<FlagIncident[]> {
    this.#open();
    return this.#incidents.slice(0, limit).map((i) => structuredClone(i));
  }

  /** Drops admitted ids that are no longer live; returns how many remain. */
  #liveAdmitted(now: number): number {
    for (const id of this.#admitted) {
      const inst = this.#instances.get(id);
      if (!inst || !isLive(inst, now) || inst.status === 'queued') this.#admitted.delete(id);
    }
    return this.#admitted.size;
  }

  /** Drops queue entries that stopped waiting; returns the rest, oldest first. */
  #liveQueue(now: number): string[] {
    this.#queue = this.#queue.filter((id) => {
      const inst = this.#instances.get(id);
      return inst !== undefined && inst.status === 'queued' && isLive(inst, now);
    });
    return [...this.#queue];
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
      if (filter.worker !== undefined && inst.worker !== filter.worker) continue;
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
    fence?: Fence,
  ): Promise<Instance | undefined> {
    this.#open();
    this.#checkFence(fence);
    const { set, unset } = splitPatch(fields);
    const inst = this.#instances.get(id);
    if (!inst) return undefined;
    const next: Record<string, unknown> = { ...inst, ...set, updatedAt: restamp(inst, now) };
    for (const key of unset) delete next[key];
    const stored = normalizeInstance(next as unknown as Instance);
    this.#instances.set(id, stored);
    this.#notify(id);
    return structuredClone(stored);
  }

  /** See `Store.deleteInstance`; idempotent. */
  async deleteInstance(id: string, fence?: Fence): Promise<void> {
    this.#open();
    this.#checkFence(fence);
    const inst = this.#instances.get(id);
    if (!inst) return;
    this.#instances.delete(id);
    const key = slotKey(inst.owner, inst.challenge);
    if (this.#slots.get(key) === id) this.#slots.delete(key);
    this.#notify(id);
  }

  /** See `Store.onChange`; listeners run in a microtask after the write, each isolated. */
  onChange(listener: (id: string, created?: Instance) => void): () => void {
    const wrapped = (id: string, created?: Instance): void => listener(id, created);
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

  #notify(id: string, created?: Instance): void {
    for (const listener of this.#listeners) {
      queueMicrotask(() => {
        if (!this.#listeners.has(listener)) return; // unsubscribed meanwhile
        try {
          listener(id, created && structuredClone(created));
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
