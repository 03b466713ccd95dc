/**
 * The one place Redis clients are made: every adapter (instances, leases, catalog, fleet, the
 * manager lease) takes its connection from here, so connection policy (timeouts, retries,
 * Sentinel) is decided once. A URL is `redis[s]://[:password@]host:port[/db]`, or, through
 * Sentinel, `redis+sentinel://[:password@]host:port[,host:port...]/<master name>[/db]`: the client
 * asks the sentinels for the current primary and follows a failover by itself (docs/redis-sentinel.md).
 */
import { Socket } from 'node:net';
import { Redis, SentinelConnector, type RedisOptions, type SentinelConnectionOptions } from 'ioredis';

/*
 * Fail fast, heal automatically: a command fails once a reconnect attempt has failed too
 * (maxRetriesPerRequest 1, ~0.2-2 s) or after commandTimeout, instead of queueing forever;
 * reconnection itself goes on in the background with capped backoff.
 */
export const CLIENT_OPTIONS: RedisOptions = {
  lazyConnect: true,
  connectTimeout: 1000,
  commandTimeout: 2000,
  maxRetriesPerRequest: 1,
  enableOfflineQueue: true,
  retryStrategy: (times: number) => Math.min(times * 100, 2000),
};

const SENTINEL_URL = /^redis\+sentinel:\/\/(?:([^:@/]*):([^@/]*)@)?([^/]+)\/([A-Za-z0-9._-]+)(?:\/([0-9]{1,2}))?\/?$/;

/** Whether `url` names Redis through Sentinel. */
export function isSentinelUrl(url: string): boolean {
  return url.startsWith('redis+sentinel://');
}

type Emit = Parameters<SentinelConnector['connect']>[0];
type Stream = Awaited<ReturnType<SentinelConnector['connect']>>;

/**
 * ioredis's sentinel connector, with two changes that matter when something is wrong:
 * - one pass over the sentinels per connection attempt (the client's own `retryStrategy` spaces
 *   the passes), so commands fail after `maxRetriesPerRequest` failed passes instead of timing
 *   out while ioredis loops over the sentinels inside a single attempt;
 * - a failed pass surfaces as a connection error that says what went wrong: no sentinel knows
 *   the name (a typo in REDIS_SENTINEL_NAME), or why each sentinel could not be asked.
 */
export class ExplainingSentinelConnector extends SentinelConnector {
  constructor(options: unknown) {
    super(options as SentinelConnectionOptions);
  }

  override connect(emit: Emit): Promise<Stream> {
    const answers: string[] = [];
    this.firstError = undefined;
    const watch: Emit = (type, err) => {
      if (type === 'sentinelError') answers.push(err.message);
      emit(type, err);
    };
    const exhausted = (err: Error) => err.message.startsWith('All sentinels are unreachable');
    return super.connect(watch).catch((err: Error) => {
      // ioredis resumes after the sentinel that answered last time: when that was the last one,
      // a pass ends before asking anyone (and rewinds). Then one full pass from the first.
      if (exhausted(err) && answers.length === 0) return super.connect(watch);
      throw err;
    }).catch((err: Error) => {
      if (!exhausted(err)) throw err; // e.g. closed meanwhile
      // A stream that is already destroyed: ioredis reports firstError, then reconnects as after
      // any failed connection (see its `stream.destroyed` branch), so the client stays alive.
      this.firstError = explain(this.options.name ?? '', answers);
      const dead = new Socket();
      dead.destroy();
      return dead;
    });
  }
}

/**
 * What one failed pass over the sentinels means, from ioredis's per-sentinel messages: a
 * sentinel that does not monitor the name answers null or "No such master" (to the follow-up
 * SENTINEL SENTINELS), one that cannot be reached leaves only "Connection is closed.".
 */
function explain(name: string, answers: readonly string[]): Error {
  const reasons = answers.map((a) => {
    const m = /^(?:failed to connect to sentinel (\S+) because (.*)|connected to sentinel (\S+) successfully, but got an invalid reply: .*)$/s.exec(a);
    const at = m?.[1] ?? m?.[3] ?? '?';
    const text = m?.[2] ?? 'unknown name';
    if (m?.[3] || /No such master with that name/.test(text)) return { at, unknown: true, text: `does not know "${name}"` };
    return { at, unknown: false, text: /^Connection is closed\.?$/.test(text) ? 'no connection (refused, closed or timed out)' : text };
  });
  if (reasons.length > 0 && reasons.every((r) => r.unknown)) {
    const at = reasons.map((r) => r.at).join(', ');
    return Object.assign(new Error(`no sentinel knows a primary named "${name}" (asked ${at}); check REDIS_SENTINEL_NAME or the name in the redis+sentinel:// URL`), { code: 'E_SENTINEL_NAME' });
  }
  const why = reasons.map((r) => `${r.at}: ${r.text}`).join('; ');
  return Object.assign(new Error(`no sentinel gave the address of primary "${name}" (${why || 'no sentinel answered'})`), { code: 'E_SENTINEL_UNREACHABLE' });
}

/**
 * `host[:port]` or `[IPv6]:port` (port 26379 when omitted); throws naming the bad entry (an
 * address, never the password).
 */
function sentinelAddress(hp: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\](?::([^:]*))?$/.exec(hp) ?? /^([^:[\]]+)(?::([^:]*))?$/.exec(hp);
  const port = m?.[2] === undefined ? 26379 : Number(m[2]);
  if (!m || !Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`bad sentinel address in a Sentinel URL: ${JSON.stringify(hp)}`);
  return { host: m[1] as string, port };
}

/**
 * ioredis options for a `redis+sentinel://` URL; throws naming what is malformed (never echoing
 * the password). The password is the data nodes'; sentinels are asked with the same one.
 */
export function sentinelOptions(url: string): RedisOptions {
  const m = SENTINEL_URL.exec(url);
  if (!m) throw new Error('a Sentinel URL is redis+sentinel://[:password@]host:port[,host:port...]/<master name>[/db]');
  const sentinels = (m[3] as string).split(',').map(sentinelAddress);
  const password = m[2] ? decodeURIComponent(m[2]) : undefined;
  return {
    sentinels, name: m[4] as string, ...(m[5] ? { db: Number(m[5]) } : {}),
    ...(password ? { password, sentinelPassword: password } : {}),
    Connector: ExplainingSentinelConnector,
    // One pass per connection attempt (see ExplainingSentinelConnector); a sentinel that accepts
    // but does not answer is skipped after this long instead of stalling the pass.
    sentinelRetryStrategy: () => null,
    sentinelCommandTimeout: 2000,
    /*
     * A write that reaches a node demoted to replica (a client that connected just before a
     * failover was announced, or a partitioned old primary) is refused with READONLY before
     * anything is applied: reconnect (asking the sentinels again) and resend it.
     */
    reconnectOnError: (err: Error) => (/^READONLY\b/.test(err.message) ? 2 : false),
  };
}

/** A lazily connecting client for `url`; errors surface through rejected commands, not events. */
export function createRedisClient(url: string, extra: RedisOptions = {}): Redis {
  const client = isSentinelUrl(url)
    ? new Redis({ ...CLIENT_OPTIONS, ...sentinelOptions(url), ...extra })
    : new Redis(url, { ...CLIENT_OPTIONS, ...extra });
  client.on('error', () => undefined);
  return client;
}
