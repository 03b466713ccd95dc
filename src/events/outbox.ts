/**
 * The webhook outbox: lifecycle events waiting to be POSTed to the platform. Every manager
 * replica appends what its event hub sees; an event id already appended (by this or another
 * replica) is not appended again, so N replicas make one delivery. Only the lease holder delivers
 * (events/webhook-relay.ts), in append order, and commits how far it got with its fencing token,
 * so a new leader resumes where the last one stopped: at-least-once, with the same event id on
 * every attempt. Adapters: store/redis-outbox.ts (shared) and MemoryOutbox below (one process),
 * held to one contract (spec/events/outbox.test.ts).
 */
import { PoseidonError } from '../core/errors.ts';
import { FENCED, type Fence } from '../core/manager-lease.ts';
import type { LifecycleEvent } from './hub.ts';

/** One appended event; `n` numbers appends from 1 with no gaps, so trimmed ones can be counted. */
export interface OutboxEntry {
  cursor: string;
  n: number;
  event: LifecycleEvent;
}

export interface EventOutbox {
  /** Appends `event` unless its id was appended before; true when appended. */
  append(event: LifecycleEvent): Promise<boolean>;
  /**
   * Up to `count` entries after the committed cursor, oldest first, and how many entries after
   * it were trimmed (the outbox keeps a bounded number) before anyone delivered them.
   */
  pending(count: number): Promise<{ entries: OutboxEntry[]; dropped: number }>;
  /** Everything up to `entry` is handled. Never moves back; E_FENCED when `fence` is stale. */
  commit(entry: Pick<OutboxEntry, 'cursor' | 'n'>, fence?: Fence): Promise<void>;
  close(): Promise<void>;
}

export interface MemoryOutboxOptions {
  /** Entries kept (default 10,000): beyond it the oldest are trimmed, delivered or not. */
  maxEntries?: number;
  /** The current fencing token (a memory lease's `fence()`), for commits. */
  fence?: () => number;
}

/** Ids remembered for de-duplication, per entry kept. */
const SEEN_FACTOR = 4;

/** The outbox of one process (embedded mode). */
export class MemoryOutbox implements EventOutbox {
  readonly #opts: MemoryOutboxOptions;
  readonly #entries: OutboxEntry[] = [];
  readonly #seen = new Set<string>();
  #added = 0;
  #committed = 0;

  constructor(opts: MemoryOutboxOptions = {}) {
    this.#opts = opts;
  }

  async append(event: LifecycleEvent): Promise<boolean> {
    if (this.#seen.has(event.id)) return false;
    this.#seen.add(event.id);
    const max = this.#opts.maxEntries ?? 10_000;
    if (this.#seen.size > max * SEEN_FACTOR) this.#seen.delete(this.#seen.values().next().value as string);
    this.#added++;
    this.#entries.push({ cursor: String(this.#added), n: this.#added, event });
    if (this.#entries.length > max) this.#entries.splice(0, this.#entries.length - max);
    return true;
  }

  async pending(count: number): Promise<{ entries: OutboxEntry[]; dropped: number }> {
    const entries = this.#entries.filter((e) => e.n > this.#committed).slice(0, count);
    const first = entries[0]?.n ?? this.#added + 1;
    return { entries, dropped: Math.max(0, first - this.#committed - 1) };
  }

  async commit(entry: Pick<OutboxEntry, 'cursor' | 'n'>, fence?: Fence): Promise<void> {
    const current = this.#opts.fence?.() ?? 0;
    if (fence && fence.token < current) throw new PoseidonError(FENCED, 'outbox commit refused: a newer manager lease exists', { kind: 'terminal' });
    this.#committed = Math.max(this.#committed, entry.n);
  }

  async close(): Promise<void> {
    // Nothing to close.
  }
}
