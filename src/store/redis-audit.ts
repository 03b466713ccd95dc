/**
 * `AuditTrail` on Redis (see status/audit.ts), shared by every manager replica of a deployment and
 * kept across restarts:
 * - `<prefix>audit`   list of JSON audit entries, newest first, trimmed to the trail's bound
 * An append is LPUSH then LTRIM in one MULTI (never a Lua script: an EVALSHA answered NOSCRIPT is
 * resent after later commands, so a replica could then miss its own last action when it reads).
 */
import type { Redis } from 'ioredis';
import { AUDIT_SIZE, type AuditEntry, type AuditTrail } from '../status/audit.ts';
import { createRedisClient } from './redis-client.ts';
import { redisCall } from './redis-errors.ts';
import { redactor } from './redis.ts';

export interface RedisAuditTrailOptions {
  url: string;
  prefix?: string;
  /** Entries kept (default `AUDIT_SIZE`). */
  size?: number;
}

/** See the module comment. */
export class RedisAuditTrail implements AuditTrail {
  readonly scope = 'shared';
  readonly #client: Redis;
  readonly #key: string;
  readonly #size: number;
  readonly #redact: (text: string) => string;

  constructor(opts: RedisAuditTrailOptions) {
    this.#key = `${opts.prefix ?? 'poseidon:'}audit`;
    this.#size = opts.size ?? AUDIT_SIZE;
    this.#redact = redactor(opts.url);
    this.#client = createRedisClient(opts.url);
  }

  /** See `AuditTrail.append`. */
  async append(entry: AuditEntry): Promise<void> {
    await this.#run(async () => {
      const replies = await this.#client.multi().lpush(this.#key, JSON.stringify(entry)).ltrim(this.#key, 0, this.#size - 1).exec();
      const failed = replies?.find(([err]) => err);
      if (!replies || failed) throw failed?.[0] ?? new Error('audit append discarded');
    });
  }

  /** See `AuditTrail.list`; an entry that is not JSON (written by something else) is skipped. */
  async list(limit = this.#size): Promise<AuditEntry[]> {
    const n = Math.min(limit, this.#size);
    if (n <= 0) return [];
    const rows = await this.#run(() => this.#client.lrange(this.#key, 0, n - 1));
    return rows.flatMap((row) => {
      try {
        return [JSON.parse(row) as AuditEntry];
      } catch {
        return [];
      }
    });
  }

  async close(): Promise<void> {
    this.#client.disconnect();
  }

  #run<T>(fn: () => Promise<T>): Promise<T> {
    return redisCall('the audit trail (Redis)', this.#redact, fn);
  }
}
