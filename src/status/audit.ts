/**
 * The audit trail of operator and admin actions: every one is a structured log line (who: the
 * key's name, never the key; what; when; result) and an entry in a bounded in-memory ring the
 * status page shows. The ring is per process: a second manager process keeps its own, and a
 * restart empties it (the log lines remain).
 */
import type { Logger } from '../core/reconcile.ts';

/** One recorded action. */
export interface AuditEntry {
  /** ISO time the action finished. */
  at: string;
  /** The key's name (or the session's, which is its key's). */
  who: string;
  role: string;
  /** What was done: `stop instance`, `cordon worker`, `sync`, `sign in`, … */
  action: string;
  /** The instance or worker acted on, when there is one. */
  target?: string;
  /** The HTTP status answered. */
  status: number;
  /** `ok` for 2xx/3xx, `refused` for 4xx, `error` for 5xx. */
  result: 'ok' | 'refused' | 'error';
  /** `session` (the page) or `key` (x-api-key). */
  via: 'session' | 'key';
}

/** Ring size: the last this many actions are kept. */
export const AUDIT_SIZE = 500;

/** Bounded ring of audit entries; `record` also writes the log line. */
export class AuditLog {
  readonly #ring: AuditEntry[] = [];
  #next = 0;

  constructor(private readonly log: Logger, private readonly size = AUDIT_SIZE) {}

  /** Records one finished action (the time is now) and logs it. */
  record(entry: Omit<AuditEntry, 'at' | 'result'>, at = new Date()): AuditEntry {
    const full: AuditEntry = { at: at.toISOString(), ...entry, result: resultOf(entry.status) };
    if (this.#ring.length < this.size) this.#ring.push(full);
    else this.#ring[this.#next] = full;
    this.#next = (this.#next + 1) % this.size;
    this.log.info({ audit: full }, 'operator action');
    return full;
  }

  /** Entries, newest first. */
  list(): AuditEntry[] {
    const n = this.#ring.length;
    const out: AuditEntry[] = [];
    for (let i = 1; i <= n; i++) out.push(this.#ring[(this.#next - i + n) % n] as AuditEntry);
    return out;
  }
}

function resultOf(status: number): AuditEntry['result'] {
  if (status >= 500) return 'error';
  return status >= 400 ? 'refused' : 'ok';
}

/** Actions named by their route (method and pattern); other routes are named by both. */
const ACTIONS: Record<string, string> = {
  'DELETE /v1/instances/:id': 'stop instance',
  'POST /v1/instances/:id/restart': 'restart instance',
  'POST /v1/instances/:id/renew': 'renew instance',
  'POST /v1/instances': 'launch instance',
  'POST /v1/workers/:id/cordon': 'cordon worker',
  'POST /v1/workers/:id/uncordon': 'uncordon worker',
  'POST /v1/workers/:id/drain': 'drain worker',
  'POST /v1/sync': 'sync',
  'POST /v1/access/bypass': 'issue bypass token',
  'POST /v1/instances/:id/access': 'issue access link',
  'POST /v1/flags/verify': 'verify flag',
};

/** The action's name for a route (`POST /v1/sync` -> `sync`). */
export function actionName(method: string, route: string): string {
  return ACTIONS[`${method} ${route}`] ?? `${method} ${route}`;
}
