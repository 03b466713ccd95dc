/**
 * Webhooks out, on the lease holder only: takes the outbox's pending events in order, delivers
 * each (with the sender's retries) and commits it with the lease's fencing token. Commits after
 * delivery make it at-least-once: a leader that dies between the POST and the commit leaves the
 * event to its successor, which sends it again under the same id. A leader deposed meanwhile
 * gets its commit refused (E_FENCED) and stops.
 */
import { isPoseidonError } from '../core/errors.ts';
import { FENCED } from '../core/manager-lease.ts';
import type { Logger } from '../core/reconcile.ts';
import type { EventOutbox } from './outbox.ts';
import type { WebhookSender } from './webhook.ts';

export interface WebhookRelayOptions {
  outbox: EventOutbox;
  sender: WebhookSender;
  /** The lease's fencing token while leading. */
  token(): number | undefined;
  log: Logger;
  /** How often an idle relay looks for new events (default 200 ms). */
  pollMs?: number;
  /** Events trimmed from the outbox before delivery (metrics). */
  dropped?(count: number): void;
}

/** See the module comment. */
export class WebhookRelay {
  readonly #opts: WebhookRelayOptions;
  #stopped = false;
  #loop: Promise<void> | undefined;
  #wake: (() => void) | undefined;

  constructor(opts: WebhookRelayOptions) {
    this.#opts = opts;
  }

  start(): void {
    this.#loop = this.#run();
  }

  /** Looks for events now instead of at the next poll. */
  poke(): void {
    this.#wake?.();
  }

  /** Stops after the attempt in flight; what was not committed stays for the next leader. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#opts.sender.stop();
    this.#wake?.();
    await this.#loop;
  }

  async #run(): Promise<void> {
    const { outbox, sender, log } = this.#opts;
    while (!this.#stopped) {
      let delivered = 0;
      try {
        const { entries, dropped } = await outbox.pending(50);
        if (dropped > 0) {
          this.#opts.dropped?.(dropped);
          log.error({ dropped }, 'webhook outbox trimmed events before they were delivered');
        }
        for (const entry of entries) {
          const token = this.#opts.token();
          if (this.#stopped || token === undefined) break;
          const outcome = await sender.deliver(entry.event);
          if (outcome === 'stopped') break;
          await outbox.commit(entry, { token });
          delivered++;
        }
      } catch (err) {
        if (isPoseidonError(err, FENCED)) {
          log.warn({}, 'webhook relay stopped: another replica holds the lease');
          return;
        }
        log.warn({ err: (err as Error).message }, 'webhook outbox unreadable; retrying');
      }
      if (delivered === 0 && !this.#stopped) await this.#idle();
    }
  }

  #idle(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, this.#opts.pollMs ?? 200);
      timer.unref();
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = done;
    });
  }
}
