/**
 * Chooses and opens the `Store`: Redis when a URL is configured, the in-memory one otherwise.
 */
import { isPoseidonError, PoseidonError } from '../core/errors.ts';
import type { Store } from '../core/store.ts';
import { MemoryStore } from './memory.ts';
import { RedisStore, redactUrl } from './redis.ts';

export interface OpenStoreOptions {
  /** Redis URL; when absent or empty the embedded `MemoryStore` is used. */
  redisUrl?: string;
  /** Redis key prefix (default `poseidon:`); ignored by the memory store. */
  prefix?: string;
  /** Replicas a launch must reach before it is acknowledged (Redis only). */
  waitReplicas?: number;
}

/**
 * A ready `Store`. With `redisUrl` it connects and PINGs first, and rejects with PoseidonError
 * `E_STORE` (kind transient; the URL's password redacted) when Redis does not answer within
 * about two seconds. Without it, resolves to a fresh `MemoryStore`.
 */
export async function openStore(opts: OpenStoreOptions): Promise<Store> {
  if (opts.redisUrl === undefined || opts.redisUrl === '') return new MemoryStore();
  const store = new RedisStore({ url: opts.redisUrl, ...(opts.prefix === undefined ? {} : { prefix: opts.prefix }), ...(opts.waitReplicas ? { waitReplicas: opts.waitReplicas } : {}) });
  try {
    await store.ping();
  } catch (err) {
    await store.close();
    // Prefer the (already redacted) Redis reason over the generic "store unavailable" wrapper.
    const reason = isPoseidonError(err) && err.cause instanceof Error ? err.cause : err;
    const detail = reason instanceof Error ? reason.message : String(reason);
    throw new PoseidonError('E_STORE', `cannot open store at ${redactUrl(opts.redisUrl)}: ${detail}`, {
      kind: 'transient',
      cause: err,
    });
  }
  return store;
}
