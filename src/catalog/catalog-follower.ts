/**
 * A follower replica's catalog: the leader syncs the source and persists the catalog in Redis;
 * followers serve the same catalog by loading it from there, at start and then periodically
 * (and at once when asked), so their API answers (launchable challenges, versions for renewals
 * and restarts) follow the leader's within one period.
 */
import type { Logger } from '../core/reconcile.ts';
import type { Catalog } from './catalog.ts';
import type { CatalogStore } from './catalog-store.ts';

export interface CatalogFollowerOptions {
  catalog: Catalog;
  store: CatalogStore;
  log: Logger;
  periodMs: number;
}

/** See the module comment. */
export class CatalogFollower {
  readonly #opts: CatalogFollowerOptions;
  #timer: NodeJS.Timeout | undefined;
  #seen = '';

  constructor(opts: CatalogFollowerOptions) {
    this.#opts = opts;
  }

  /** Loads now (a failed read keeps what is served), then every period. */
  async start(): Promise<void> {
    await this.refresh();
    const tick = (): void => {
      this.#timer = setTimeout(() => { void this.refresh().finally(() => { if (this.#timer) tick(); }); }, this.#opts.periodMs);
      this.#timer.unref();
    };
    tick();
  }

  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Loads the persisted catalog when it changed since the last load. */
  async refresh(): Promise<void> {
    try {
      const saved = await this.#opts.store.load();
      if (!saved) return;
      const seen = `${saved.head.revision}@${saved.head.appliedAt}:${saved.versions.map((v) => `${v.hash}${v.published === false ? '-' : ''}`).sort().join(',')}`;
      if (seen === this.#seen) return;
      this.#seen = seen;
      this.#opts.catalog.restore(saved.head, saved.versions);
      this.#opts.log.info({ revision: saved.head.revision, challenges: saved.head.records.length }, 'catalog followed from the leader');
    } catch (err) {
      this.#opts.log.warn({ err: (err as Error).message }, 'could not read the leader\'s catalog; serving what is loaded');
    }
  }
}
