import { createHash } from 'node:crypto';
import type { Instance } from '../core/instance.ts';
import type { Store } from '../core/store.ts';

/** Where the hub learns of changes: each changed instance, read once (the instance view). */
export interface InstanceFeed {
  onUpdate(listener: (id: string, inst: Instance | undefined) => void): () => void;
}

export type EventType = 'status' | 'queue' | 'expiring' | 'expired' | 'failed';

/** One lifecycle event, as sent over SSE and to webhooks. */
export interface LifecycleEvent {
  /**
   * The same on every replica that sees the same change (derived from the instance's state, not
   * from the process): webhook deliveries carry it, so retries and replicas never make two events.
   */
  id: string;
  /** Increasing within this process (the SSE `id:`). */
  seq: number;
  type: EventType;
  at: string;
  instance: {
    id: string;
    challenge: string;
    team: string;
    user?: string;
    status: Instance['status'];
    reason?: string;
    expiresAt: string;
    queue?: { position: number };
  };
}

export interface EventFilter {
  instance?: string;
  team?: string;
}

interface Subscriber {
  filter: EventFilter;
  send(ev: LifecycleEvent): void;
}

/**
 * Turns store changes into lifecycle events: `status` on every status change, `failed` and
 * `expired` for those endings, `expiring` once `expiringSoonMs` before expiry, and `queue` when
 * a queued instance's position moves. Store notifications are hints (they can be lost), so
 * subscribers should treat events as prompts and GET the instance for the truth.
 */
export class EventHub {
  private seq = 0;
  private readonly subs = new Set<Subscriber>();
  private readonly last = new Map<string, { status: string; expiresAt: number; position?: number }>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private unsubscribe: (() => void) | undefined;
  private queueCheck: NodeJS.Timeout | undefined;

  constructor(private readonly store: Store, private readonly feed: InstanceFeed, private readonly expiringSoonMs: number) {}

  start(): void {
    this.unsubscribe = this.feed.onUpdate((id, inst) => {
      this.onChange(id, inst);
      this.scheduleQueueCheck();
    });
  }

  stop(): void {
    this.unsubscribe?.();
    for (const t of this.timers.values()) clearTimeout(t);
    if (this.queueCheck) clearTimeout(this.queueCheck);
    this.subs.clear();
  }

  /** Delivers matching events to `send` until the returned function is called. */
  subscribe(filter: EventFilter, send: (ev: LifecycleEvent) => void): () => void {
    const sub = { filter, send };
    this.subs.add(sub);
    return () => this.subs.delete(sub);
  }

  /** Builds an event now (for snapshots sent when a stream opens). */
  event(type: EventType, inst: Instance, position?: number): LifecycleEvent {
    const view: LifecycleEvent['instance'] = {
      id: inst.id, challenge: inst.challenge, team: inst.team, status: inst.status, expiresAt: new Date(inst.expiresAt).toISOString(),
    };
    if (inst.user !== undefined) view.user = inst.user;
    if (inst.reason !== undefined) view.reason = inst.reason;
    if (position !== undefined) view.queue = { position };
    return { id: eventId(type, inst, position), seq: ++this.seq, type, at: new Date().toISOString(), instance: view };
  }

  private emit(ev: LifecycleEvent): void {
    for (const s of this.subs) {
      if (s.filter.instance !== undefined && s.filter.instance !== ev.instance.id) continue;
      if (s.filter.team !== undefined && s.filter.team !== ev.instance.team) continue;
      try {
        s.send(ev);
      } catch {
        // One broken subscriber must not stop the others.
      }
    }
  }

  private onChange(id: string, inst: Instance | undefined): void {
    if (!inst) {
      this.forget(id);
      return;
    }
    const prev = this.last.get(id);
    if (prev && prev.status === inst.status && prev.expiresAt === inst.expiresAt) return;
    this.last.set(id, { status: inst.status, expiresAt: inst.expiresAt, ...(prev?.position !== undefined ? { position: prev.position } : {}) });
    if (!prev || prev.status !== inst.status) this.emit(this.event(typeFor(inst), inst));
    this.armExpiring(inst);
    if (inst.status === 'stopped' || inst.status === 'failed') this.forget(id);
  }

  private armExpiring(inst: Instance): void {
    const old = this.timers.get(inst.id);
    if (old) clearTimeout(old);
    this.timers.delete(inst.id);
    if (inst.status !== 'running' && inst.status !== 'starting' && inst.status !== 'pending') return;
    const delay = inst.expiresAt - this.expiringSoonMs - Date.now();
    if (delay < 0 || delay > 2 ** 31 - 1) return;
    const t = setTimeout(() => {
      this.timers.delete(inst.id);
      void this.store.getInstance(inst.id).then((now) => {
        if (now && now.expiresAt === inst.expiresAt && now.desired === 'running' && now.status !== 'failed') this.emit(this.event('expiring', now));
      }, () => undefined);
    }, delay);
    t.unref();
    this.timers.set(inst.id, t);
  }

  private forget(id: string): void {
    this.last.delete(id);
    const t = this.timers.get(id);
    if (t) clearTimeout(t);
    this.timers.delete(id);
  }

  /** Coalesces bursts of changes into one queue-position check. */
  private scheduleQueueCheck(): void {
    if (this.queueCheck || this.subs.size === 0) return;
    this.queueCheck = setTimeout(() => {
      this.queueCheck = undefined;
      void this.checkQueue().catch(() => undefined);
    }, 50);
    this.queueCheck.unref();
  }

  private async checkQueue(): Promise<void> {
    const ids = await this.store.queuedIds();
    for (const [i, id] of ids.entries()) {
      const seen = this.last.get(id);
      if (seen?.position === i + 1) continue;
      const inst = await this.store.getInstance(id);
      if (!inst || inst.status !== 'queued') continue;
      this.last.set(id, { status: inst.status, expiresAt: inst.expiresAt, position: i + 1 });
      this.emit(this.event('queue', inst, i + 1));
    }
  }
}

/**
 * What makes an event the same one wherever it is seen: the status within one placement (epoch)
 * of one generation (restarts bump it), the expiry it warns about, the queue position it reports.
 */
export function eventId(type: EventType, inst: Instance, position?: number): string {
  const what = type === 'expiring' ? String(inst.expiresAt) : type === 'queue' ? String(position ?? 0) : `${inst.generation}:${inst.epoch}`;
  // The owner too: a claimed warm-pool member keeps its id, generation and placement, and its
  // owner's `running` must not share an id (and so a webhook delivery) with the pool's.
  return `ev_${createHash('sha256').update(`${type}\n${inst.id}\n${inst.owner}\n${inst.status}\n${what}`).digest('hex').slice(0, 32)}`;
}

function typeFor(inst: Instance): EventType {
  if (inst.status === 'failed') return 'failed';
  if (inst.status === 'stopped' && inst.reason === 'expired') return 'expired';
  return 'status';
}
