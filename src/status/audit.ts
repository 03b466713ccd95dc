/**
 * The audit trail of operator and admin actions: every one is a structured log line (who: the
 * key's name, never the key; what; when; result) and an entry in a bounded trail the status page
 * shows (the last `AUDIT_SIZE`). Where the trail lives is an `AuditTrail`: in this process
 * (`MemoryAuditTrail`, the embedded default; a restart empties it) or in Redis
 * (`RedisAuditTrail`, store/redis-audit.ts), shared by every manager replica of the deployment and
 * kept across restarts. The log lines are written either way.
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

/** Trail size: the last this many actions are kept. */
export const AUDIT_SIZE = 500;

/**
 * Where audit entries are kept (the port). `append` adds one entry as the newest, dropping the
 * oldest beyond the trail's bound; it rejects (E_STORE) when the trail is unreachable. `list`
 * answers at most `limit` (and at most the bound) entries, newest first; it rejects with E_STORE
 * when the trail cannot be read. `scope` says who shares it: this process, or every replica.
 */
export interface AuditTrail {
  readonly scope: 'process' | 'shared';
  append(entry: AuditEntry): Promise<void>;
  list(limit?: number): Promise<AuditEntry[]>;
  close(): Promise<void>;
}

/** The trail as a bounded ring in this process (see the module comment). */
export class MemoryAuditTrail implements AuditTrail {
  readonly scope = 'process';
  readonly #ring: AuditEntry[] = [];
  #next = 0;

  constructor(private readonly size = AUDIT_SIZE) {}

  async append(entry: AuditEntry): Promise<void> {
    if (this.#ring.length < this.size) this.#ring.push(entry);
    else this.#ring[this.#next] = entry;
    this.#next = (this.#next + 1) % this.size;
  }

  async list(limit = this.size): Promise<AuditEntry[]> {
    const n = this.#ring.length;
    const out: AuditEntry[] = [];
    for (let i = 1; i <= Math.min(n, limit); i++) out.push(this.#ring[(this.#next - i + n) % n] as AuditEntry);
    return out;
  }

  async close(): Promise<void> {}
}

/** Records actions into a trail; `record` also writes the log line. */
export class AuditLog {
  constructor(private readonly log: Logger, readonly trail: AuditTrail = new MemoryAuditTrail()) {}

  /**
   * Records one finished action (the time is now) and logs it. The trail is written in the
   * background: a failure there is logged (`audit trail write failed`) and never fails the action.
   */
  record(entry: Omit<AuditEntry, 'at' | 'result'>, at = new Date()): AuditEntry {
    const full: AuditEntry = { at: at.toISOString(), ...entry, result: resultOf(entry.status) };
    this.log.info({ audit: full }, 'operator action');
    this.trail.append(full).catch((err: unknown) => {
      this.log.warn({ err: (err as Error).message, action: full.action }, 'audit trail write failed');
    });
    return full;
  }

  /** Entries, newest first (at most `AUDIT_SIZE`); rejects with E_STORE when the trail is unreadable. */
  list(): Promise<AuditEntry[]> {
    return this.trail.list(AUDIT_SIZE);
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
  'PUT /v1/workers/:id/launch-settings': 'set worker launch settings',
  'POST /v1/sync': 'sync',
  'POST /v1/access/bypass': 'issue bypass token',
  'POST /v1/instances/:id/access': 'issue access link',
  'POST /v1/flags/verify': 'verify flag',
};

/** The action's name for a route (`POST /v1/sync` -> `sync`). */
export function actionName(method: string, route: string): string {
  return ACTIONS[`${method} ${route}`] ?? `${method} ${route}`;
}
