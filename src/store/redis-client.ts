/**
 * The one place Redis clients are made: every adapter (instances, leases, catalog, fleet) takes
 * its connection from here, so connection policy (timeouts, retries, later Sentinel) is decided
 * once.
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

/** A lazily connecting client for `url`; errors surface through rejected commands, not events. */
export function createRedisClient(url: string, extra: RedisOptions = {}): Redis {
  const client = new Redis(url, { ...CLIENT_OPTIONS, ...extra });
  client.on('error', () => undefined);
  return client;
}
