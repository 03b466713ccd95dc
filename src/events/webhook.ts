import { createHmac, randomUUID } from 'node:crypto';
import type { Logger } from '../core/reconcile.ts';
import type { LifecycleEvent } from './hub.ts';

export interface WebhookOptions {
  url: string;
  secret: string;
  log: Logger;
  /** Attempts per event (first try included). Default 6. */
  attempts?: number;
  baseDelayMs?: number;
  /** Undelivered events kept in memory; the oldest is dropped beyond it. Default 1000. */
  maxPending?: number;
  timeoutMs?: number;
  /** Told each outcome (metrics): a failed attempt (retried), or an event delivered, abandoned or dropped. */
  observe?(outcome: 'delivered' | 'failed' | 'abandoned' | 'dropped'): void;
}

/** `sha256=<hex>` HMAC of the raw body; what receivers recompute to trust a delivery. */
export function signBody(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/**
 * Delivers lifecycle events to the platform: POST JSON, signed in `X-Poseidon-Signature`, one at
 * a time in order, retried with exponential backoff on network errors and non-2xx answers.
 * In-memory: events pending when the process stops are lost (the platform can resync by GET).
 */
export class WebhookSender {
  private readonly pending: { ev: LifecycleEvent; delivery: string }[] = [];
  private running = false;
  private stopped = false;

  constructor(private readonly opts: WebhookOptions) {}

  send(ev: LifecycleEvent): void {
    if (this.stopped) return;
    this.pending.push({ ev, delivery: randomUUID() });
    if (this.pending.length > (this.opts.maxPending ?? 1000)) {
      // Never the one in flight (index 0 while draining): the oldest that is still waiting.
      const [dropped] = this.pending.splice(this.running ? 1 : 0, 1);
      this.opts.observe?.('dropped');
      this.opts.log.warn({ delivery: dropped?.delivery, type: dropped?.ev.type }, 'webhook backlog full; oldest waiting event dropped');
    }
    if (!this.running) void this.drain();
  }

  stop(): void {
    this.stopped = true;
  }

  private async drain(): Promise<void> {
    this.running = true;
    while (this.pending.length > 0 && !this.stopped) {
      const next = this.pending[0];
      if (next) await this.deliver(next.ev, next.delivery);
      this.pending.shift();
    }
    this.running = false;
  }

  private async deliver(ev: LifecycleEvent, delivery: string): Promise<void> {
    const body = JSON.stringify(ev);
    const attempts = this.opts.attempts ?? 6;
    for (let n = 1; n <= attempts && !this.stopped; n++) {
      const status = await fetch(this.opts.url, {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/json', 'x-poseidon-event': ev.type, 'x-poseidon-delivery': delivery, 'x-poseidon-signature': signBody(this.opts.secret, body) },
        signal: AbortSignal.timeout(this.opts.timeoutMs ?? 5000),
      }).then((r) => r.status, () => 0);
      if (status >= 200 && status < 300) {
        this.opts.observe?.('delivered');
        return;
      }
      this.opts.observe?.('failed');
      const delay = Math.min(30_000, (this.opts.baseDelayMs ?? 500) * 2 ** (n - 1));
      this.opts.log.warn({ delivery, attempt: n, status }, 'webhook delivery failed');
      if (n < attempts) await new Promise((r) => setTimeout(r, delay).unref());
    }
    if (!this.stopped) this.opts.observe?.('abandoned');
    this.opts.log.error({ delivery, type: ev.type }, 'webhook delivery abandoned');
  }
}
