/**
 * Where workers read challenge versions (`core/versions.ts`): the in-process catalog for the
 * embedded worker, the catalog persisted in Redis for workers on other hosts. Versions are
 * addressed by content hash and immutable but for their publication state, so a remote worker
 * caches published ones for good and re-reads the others.
 */
import type { Redis } from 'ioredis';
import { Codes, PoseidonError } from '../core/errors.ts';
import type { VersionInfo, VersionSource } from '../core/versions.ts';
import { createRedisClient } from '../store/redis-client.ts';
import type { Catalog, CatalogEntry, CatalogHead } from './catalog.ts';

function info(e: CatalogEntry): VersionInfo {
  return {
    hash: e.hash, spec: e.spec, image: e.image,
    ...(e.published !== undefined ? { published: e.published } : {}), ...(e.publishError ? { publishError: e.publishError } : {}),
  };
}

/** The in-process catalog as a version source. */
export function catalogVersions(catalog: Catalog): VersionSource {
  return {
    version: async (hash) => {
      const e = catalog.version(hash);
      return e ? info(e) : undefined;
    },
    current: async () => catalog.list().map(info),
  };
}

/** Versions from `<prefix>catalog:head` and `<prefix>catalog:versions` (written by `RedisCatalogStore`). */
export class RedisVersionSource implements VersionSource {
  readonly #client: Redis;
  readonly #prefix: string;
  readonly #cache = new Map<string, VersionInfo>();

  constructor(opts: { url: string; prefix?: string }) {
    this.#client = createRedisClient(opts.url);
    this.#prefix = `${opts.prefix ?? 'poseidon:'}catalog:`;
  }

  async version(hash: string): Promise<VersionInfo | undefined> {
    const hit = this.#cache.get(hash);
    if (hit) return hit;
    const raw = await this.#run(() => this.#client.hget(`${this.#prefix}versions`, hash));
    return raw === null ? undefined : this.#remember(raw);
  }

  async current(): Promise<VersionInfo[]> {
    const head = await this.#run(() => this.#client.get(`${this.#prefix}head`));
    if (!head) return [];
    const hashes = (JSON.parse(head) as CatalogHead).records.filter((r) => r.removedAt === undefined && r.current).map((r) => r.current as string);
    if (hashes.length === 0) return [];
    const raws = await this.#run(() => this.#client.hmget(`${this.#prefix}versions`, ...hashes));
    return raws.flatMap((raw) => (raw === null ? [] : [this.#remember(raw)]));
  }

  async close(): Promise<void> {
    this.#client.disconnect();
  }

  #remember(raw: string): VersionInfo {
    const v = info({ workers: {}, ...(JSON.parse(raw) as Omit<CatalogEntry, 'workers'>) });
    // Published (or never to be published) versions do not change any more.
    if (v.published !== false) this.#cache.set(v.hash, v);
    return v;
  }

  async #run<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw new PoseidonError(Codes.store, `catalog unavailable: ${(err as Error).message}`, { kind: 'transient', cause: err });
    }
  }
}
