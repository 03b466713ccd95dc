/**
 * The one place Redis clients are made: every adapter (instances, leases, catalog, fleet, the
 * manager lease) takes its connection from here, so connection policy (timeouts, retries,
 * Sentinel) is decided once. A URL is `redis[s]://[:password@]host:port[/db]`, or, through
 * Sentinel, `redis+sentinel://[:password@]host:port[,host:port...]/<master name>[/db]`: the client
 * asks the sentinels for the current primary and follows a failover by itself.
 */
import { Redis, type RedisOptions } from 'ioredis';

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

/**
 * ioredis options for a `redis+sentinel://` URL; throws naming what is malformed (never echoing
 * the password). The password is the data nodes'; sentinels are asked with the same one.
 */
export function sentinelOptions(url: string): RedisOptions {
  const m = SENTINEL_URL.exec(url);
  if (!m) throw new Error('a Sentinel URL is redis+sentinel://[:password@]host:port[,host:port...]/<master name>[/db]');
  const sentinels = (m[3] as string).split(',').map((hp) => {
    const at = hp.lastIndexOf(':');
    const host = at > 0 ? hp.slice(0, at) : hp;
    const port = at > 0 ? Number(hp.slice(at + 1)) : 26379;
    if (!host || !Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`bad sentinel address in a Sentinel URL: ${JSON.stringify(hp)}`);
    return { host, port };
  });
  const password = m[2] ? decodeURIComponent(m[2]) : undefined;
  return {
    sentinels, name: m[4] as string, ...(m[5] ? { db: Number(m[5]) } : {}),
    ...(password ? { password, sentinelPassword: password } : {}),
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
