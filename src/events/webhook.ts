import { createHmac } from 'node:crypto';
import { backoffMs } from '../core/backoff.ts';
import type { Logger } from '../core/reconcile.ts';
import type { LifecycleEvent } from './hub.ts';

export interface WebhookOptions {
  url: string;
  secret: string;
  log: Logger;
  /** Attempts per event (first try included). Default 6. */
  attempts?: number;
  baseDelayMs?: number;
  timeoutMs?: number;
  /** Told each outcome (metrics): a failed attempt (retried), or an event delivered or abandoned. */
  observe?(outcome: 'delivered' | 'failed' | 'abandoned' | 'dropped'): void;
}

/** `sha256=<hex>` HMAC of the raw body; what receivers recompute to trust a delivery. */
export function signBody(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

export type DeliveryOutcome = 'delivered' | 'abandoned' | 'stopped';

/**
 * Delivers one lifecycle event to the platform: POST JSON, signed in `X-Poseidon-Signature`,
 * retried with exponential backoff on network errors and non-2xx answers. Every attempt carries
 * the event's id in `X-Poseidon-Delivery` (the same on every replica and every retry), so the
 * receiver can drop repeats. Ordering and persistence are the relay's (events/webhook-relay.ts).
 */
export class WebhookSender {
  private stopped = false;

  constructor(private readonly opts: WebhookOptions) {}

  /** Stops: an attempt in flight finishes, no other starts. */
  stop(): void {
    this.stopped = true;
  }

  async deliver(ev: LifecycleEvent): Promise<DeliveryOutcome> {
    const body = JSON.stringify(ev);
    const attempts = this.opts.attempts ?? 6;
    const delivery = ev.id;
    for (let n = 1; n <= attempts; n++) {
      if (this.stopped) return 'stopped';
      const status = await fetch(this.opts.url, {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/json', 'x-poseidon-event': ev.type, 'x-poseidon-delivery': delivery, 'x-poseidon-signature': signBody(this.opts.secret, body) },
        signal: AbortSignal.timeout(this.opts.timeoutMs ?? 5000),
      }).then((r) => r.status, () => 0);
      if (status >= 200 && status < 300) {
        this.opts.observe?.('delivered');
        return 'delivered';
      }
      this.opts.observe?.('failed');
      const delay = backoffMs(n, this.opts.baseDelayMs ?? 500, 30_000);
      this.opts.log.warn({ delivery, attempt: n, status }, 'webhook delivery failed');
      if (n < attempts) await new Promise((r) => setTimeout(r, delay).unref());
    }
    if (this.stopped) return 'stopped';
    this.opts.observe?.('abandoned');
    this.opts.log.error({ delivery, type: ev.type }, 'webhook delivery abandoned');
    return 'abandoned';
  }
}
