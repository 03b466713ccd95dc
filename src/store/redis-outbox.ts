/**
 * `EventOutbox` on Redis (see events/outbox.ts), shared by every manager replica:
 * - `<prefix>webhooks`          stream of `{n, event}` entries, trimmed to about `maxEntries`
 * - `<prefix>webhooks:n`        counter numbering appends (so trimmed entries can be counted)
 * - `<prefix>webhooks:seen:<id>` marker of an appended event id, kept a day
 * - `<prefix>webhooks:cursor`   hash `{id, n}` of the last handled entry
 * - `<prefix>fence`             the manager lease's fencing token (commits compare against it)
 * Each script names every key it touches.
 */
import type { Redis } from 'ioredis';
import { PoseidonError } from '../core/errors.ts';
import { FENCED, type Fence } from '../core/manager-lease.ts';
import type { LifecycleEvent } from '../events/hub.ts';
import type { EventOutbox, OutboxEntry } from '../events/outbox.ts';
import { createRedisClient } from './redis-client.ts';
import { redisCall } from './redis-errors.ts';
import { leaseKeys } from './redis-manager-lease.ts';
import { redactor } from './redis.ts';

const SEEN_TTL_MS = 86_400_000;

/* KEYS: seen marker, stream, counter. ARGV: event JSON, maxEntries, seenTtlMs. 1 when appended. */
const APPEND = `
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[3]) then return 0 end
local n = redis.call('INCR', KEYS[3])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'n', n, 'event', ARGV[1])
return 1`;

/* KEYS: cursor, fence. ARGV: token ('' for none), entry id, n. 'fenced', or 1. Never moves back. */
const COMMIT = `
if ARGV[1] ~= '' and tonumber(ARGV[1]) < tonumber(redis.call('GET', KEYS[2]) or '0') then return 'fenced' end
local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
if tonumber(ARGV[3]) > n then redis.call('HSET', KEYS[1], 'id', ARGV[2], 'n', ARGV[3]) end
return 1`;

type Scripted = Redis & {
  poseidonOutboxAppend(seen: string, stream: string, counter: string, json: string, max: number, ttl: number): Promise<number>;
  poseidonOutboxCommit(cursor: string, fence: string, token: string, id: string, n: number): Promise<number | string>;
};

export interface RedisOutboxOptions {
  url: string;
  prefix?: string;
  /** Entries kept, approximately (default 100,000). */
  maxEntries?: number;
}

/** See the module comment. */
export class RedisOutbox implements EventOutbox {
  readonly #client: Scripted;
  readonly #max: number;
  readonly #keys: { stream: string; counter: string; cursor: string; fence: string; seen(id: string): string };
  readonly #redact: (text: string) => string;

  constructor(opts: RedisOutboxOptions) {
    const prefix = opts.prefix ?? 'poseidon:';
    this.#max = opts.maxEntries ?? 100_000;
    this.#keys = {
      stream: `${prefix}webhooks`, counter: `${prefix}webhooks:n`, cursor: `${prefix}webhooks:cursor`, fence: leaseKeys(prefix).fence,
      seen: (id) => `${prefix}webhooks:seen:${id}`,
    };
    this.#redact = redactor(opts.url);
    const client = createRedisClient(opts.url);
    client.defineCommand('poseidonOutboxAppend', { numberOfKeys: 3, lua: APPEND });
    client.defineCommand('poseidonOutboxCommit', { numberOfKeys: 2, lua: COMMIT });
    this.#client = client as Scripted;
  }

  async append(event: LifecycleEvent): Promise<boolean> {
    const k = this.#keys;
    return (await this.#run(() => this.#client.poseidonOutboxAppend(k.seen(event.id), k.stream, k.counter, JSON.stringify(event), this.#max, SEEN_TTL_MS))) === 1;
  }

  async pending(count: number): Promise<{ entries: OutboxEntry[]; dropped: number }> {
    const [cursor, raw] = await this.#run(async () => {
      const c = await this.#client.hmget(this.#keys.cursor, 'id', 'n');
      const from = c[0] ? `(${c[0]}` : '-';
      return [c, await this.#client.xrange(this.#keys.stream, from, '+', 'COUNT', count)] as const;
    });
    const entries: OutboxEntry[] = [];
    for (const [id, fields] of raw) {
      const f: Record<string, string> = {};
      for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i] as string] = fields[i + 1] as string;
      try {
        entries.push({ cursor: id, n: Number(f.n), event: JSON.parse(f.event ?? '') as LifecycleEvent });
      } catch {
        // An entry that does not parse cannot be delivered; it is skipped when the next one commits.
      }
    }
    const committed = Number(cursor[1] ?? '0');
    const first = entries[0]?.n;
    return { entries, dropped: first === undefined ? 0 : Math.max(0, first - committed - 1) };
  }

  async commit(entry: Pick<OutboxEntry, 'cursor' | 'n'>, fence?: Fence): Promise<void> {
    const k = this.#keys;
    const reply = await this.#run(() => this.#client.poseidonOutboxCommit(k.cursor, k.fence, fence ? String(fence.token) : '', entry.cursor, entry.n));
    if (reply === 'fenced') throw new PoseidonError(FENCED, 'outbox commit refused: a newer manager lease exists', { kind: 'terminal' });
  }

  async close(): Promise<void> {
    this.#client.disconnect();
  }

  #run<T>(fn: () => Promise<T>): Promise<T> {
    return redisCall('webhook outbox', this.#redact, fn);
  }
}
