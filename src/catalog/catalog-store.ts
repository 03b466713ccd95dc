/**
 * Where the catalog's state outlives the process: the applied revision, per-challenge records
 * and every version still addressable, so that after a restart a `keep` instance is recreated
 * from its own version and the last good revision is served even when the source is down.
 * Redis when the instance store is Redis (the same shared state); nothing otherwise, because
 * in-process instances die with the process too.
 */
import type { Redis } from 'ioredis';
import { createRedisClient } from '../store/redis-client.ts';
import type { CatalogEntry, CatalogHead } from './catalog.ts';

/** A persisted catalog. */
export interface CatalogState {
  head: CatalogHead;
  versions: CatalogEntry[];
}

export interface CatalogStore {
  /** The saved state, or undefined when none was saved. Rejects when the backend cannot be read. */
  load(): Promise<CatalogState | undefined>;
  /** Saves the head and the versions, and forgets `forgotten` hashes. */
  save(state: CatalogState, forgotten: readonly string[]): Promise<void>;
  close(): Promise<void>;
}

/** Keeps nothing (embedded mode). */
export class NoCatalogStore implements CatalogStore {
  async load(): Promise<undefined> {
    return undefined;
  }

  async save(): Promise<void> {
    // Nothing outlives the process in embedded mode.
  }

  async close(): Promise<void> {
    // Nothing to close.
  }
}

/** Fields of a version worth keeping (per-worker image states are re-checked at start). */
function persisted(v: CatalogEntry): string {
  const { workers: _workers, ...rest } = v;
  return JSON.stringify(rest);
}

/** `<prefix>catalog:head` (JSON) and `<prefix>catalog:versions` (hash -> JSON). */
export class RedisCatalogStore implements CatalogStore {
  private readonly client: Redis;
  private readonly written = new Map<string, string>();

  constructor(url: string, private readonly prefix: string) {
    this.client = createRedisClient(url);
  }

  async load(): Promise<CatalogState | undefined> {
    const [head, versions] = await Promise.all([this.client.get(this.key('head')), this.client.hgetall(this.key('versions'))]);
    if (!head) return undefined;
    const parsed = Object.values(versions).map((v) => ({ ...(JSON.parse(v) as Omit<CatalogEntry, 'workers'>), workers: {} }));
    for (const v of parsed) this.written.set(v.hash, persisted(v));
    return { head: JSON.parse(head) as CatalogHead, versions: parsed };
  }

  async save(state: CatalogState, forgotten: readonly string[]): Promise<void> {
    const multi = this.client.multi().set(this.key('head'), JSON.stringify(state.head));
    const changed = state.versions.map((v) => [v.hash, persisted(v)] as const).filter(([h, json]) => this.written.get(h) !== json);
    if (changed.length) multi.hset(this.key('versions'), Object.fromEntries(changed));
    if (forgotten.length) multi.hdel(this.key('versions'), ...forgotten);
    const replies = await multi.exec();
    const failed = replies?.find(([err]) => err)?.[0];
    if (!replies || failed) throw failed ?? new Error('catalog save transaction was aborted');
    for (const [h, json] of changed) this.written.set(h, json);
    for (const h of forgotten) this.written.delete(h);
  }

  async close(): Promise<void> {
    this.client.disconnect();
  }

  private key(name: string): string {
    return `${this.prefix}catalog:${name}`;
  }
}
