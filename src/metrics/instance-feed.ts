/**
 * Launch, queue, stop and failure metrics observed from the instance view's change feed
 * (`InstanceIndex.onUpdate`): only transitions this process saw are counted, so a restarted
 * process never counts an instance twice. An instance first seen already past a state counts
 * only if it was created after this process started watching (a launch and its first status
 * change can arrive as one update); older ones are just remembered. Durations use the store's
 * timestamps (`createdAt`, the `updatedAt` of the write that changed the status), not the moment
 * the feed delivered the change. Warm-pool members are not launches (only their failures count);
 * a claim is: the member takes the request's `createdAt`, so its duration is what the player waited.
 */
import { POOL_TEAM, type Instance, type InstanceStatus } from '../core/instance.ts';

/** Where the observations go (the `Metrics` instruments and the rolling window). */
export interface LaunchSink {
  launched(challenge: string): void;
  queueWaited(challenge: string, seconds: number): void;
  started(challenge: string, seconds: number): void;
  stopped(challenge: string): void;
  failed(challenge: string, reason: string): void;
}

interface Seen {
  status: InstanceStatus;
  /** Whether it already reached running once (restarts and moves run again: not launches). */
  ran: boolean;
  /** An unclaimed warm-pool member. */
  pooled: boolean;
}

const REASON_CODE = /^(E_[A-Z0-9_]{2,40})\b/;

/** The stable code a reason starts with (`E_NO_CAPACITY: no worker fits…`), or `unknown`: never free text as a label. */
export function reasonCode(reason: string | undefined): string {
  return REASON_CODE.exec(reason ?? '')?.[1] ?? 'unknown';
}

/** See the module comment. */
export class LaunchTracker {
  readonly #seen = new Map<string, Seen>();
  readonly #since: number;

  /** `since`: when this process started watching (epoch ms); instances created before are not new launches. */
  constructor(private readonly sink: LaunchSink, since: number) {
    this.#since = since;
  }

  /** Number of instances remembered (bounded by the view: deletions forget them). */
  get size(): number {
    return this.#seen.size;
  }

  /** Takes one update of the feed: `inst` undefined when the record is gone. */
  update(id: string, inst: Instance | undefined): void {
    if (!inst) {
      this.#seen.delete(id);
      return;
    }
    const prev = this.#seen.get(id);
    const pooled = inst.team === POOL_TEAM;
    // A claim hands a member to a team: from here on it is that team's launch.
    const claimed = prev?.pooled === true && !pooled;
    const fresh = (!prev && inst.createdAt >= this.#since) || claimed;
    // Restarts and moves bump the generation: an instance first seen past generation 1 already ran.
    const ran = claimed ? false : prev?.ran ?? inst.generation > 1;
    const next: Seen = { status: inst.status, ran: ran || inst.status === 'running', pooled };
    this.#seen.set(id, next);
    if (!prev && !fresh) return;
    if (pooled) {
      if (inst.status === 'failed' && prev?.status !== 'failed') this.sink.failed(inst.challenge, reasonCode(inst.reason));
      return;
    }
    if (fresh) this.sink.launched(inst.challenge);
    if (prev?.status === inst.status && !claimed) return;
    this.#transition(inst, claimed ? undefined : prev);
  }

  #transition(inst: Instance, prev: Seen | undefined): void {
    const seconds = Math.max(0, (inst.updatedAt - inst.createdAt) / 1000);
    if (prev?.status === 'queued' && (inst.status === 'pending' || inst.status === 'starting' || inst.status === 'running')) this.sink.queueWaited(inst.challenge, seconds);
    if (inst.status === 'running' && !(prev?.ran ?? false)) this.sink.started(inst.challenge, seconds);
    if (inst.status === 'stopped') this.sink.stopped(inst.challenge);
    if (inst.status === 'failed') this.sink.failed(inst.challenge, reasonCode(inst.reason));
  }
}
