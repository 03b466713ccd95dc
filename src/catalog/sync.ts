/**
 * The sync loop (after Flux's source-controller): triggers - a jittered poll, the source's own
 * watcher, webhooks, admins - only ask for a sync; bursts coalesce into one; syncs never overlap.
 * A sync is an ordered list of small steps (fetch, skip when unchanged, load, guard, apply,
 * persist, prune) summarised once in `status()`. Any failure keeps the last good revision and
 * retries with backoff; images are prepared in the background after each apply.
 */
import { backoffMs } from '../core/backoff.ts';
import { Codes, isPoseidonError, PoseidonError } from '../core/errors.ts';
import type { Source } from '../core/source.ts';
import type { Logger } from '../core/reconcile.ts';
import type { ApplyResult, Catalog } from './catalog.ts';
import type { CatalogStore } from './catalog-store.ts';
import type { ImagePreparation } from './images.ts';
import { loadSnapshot, type LoadedSnapshot } from './load-snapshot.ts';
import { planFor, type CatalogPlan, type LiveInstances } from './plan.ts';
import type { SyncResult, SyncStatus } from './sync-status.ts';

export interface CatalogSyncOptions {
  source: Source;
  catalog: Catalog;
  images: ImagePreparation;
  store: CatalogStore;
  /** `host:port/path` built images are pushed to; undefined: each worker builds them itself. */
  registry?: string;
  log: Logger;
  /** Poll period; 0 polls never (webhooks, the watcher and admins still trigger). */
  pollMs: number;
  /** Quiet time before a triggered sync starts, so bursts coalesce (default 200 ms). */
  debounceMs?: number;
  /** Longest wait between retries after failures (default 5 min, at most the poll period). */
  maxBackoffMs?: number;
  /** Live instances per challenge (for plans). */
  live?: LiveInstances;
  /** Challenges whose version, validity or image changed: their instances need a reconcile. */
  onChanged?(ids: string[]): void;
  now?: () => number;
}

/** Revisions whose snapshots are kept (builds of recent ones may still be reading them). */
const KEEP_REVISIONS = 3;
/** Least time between retries of failed images on syncs that bring nothing new. */
const IMAGE_RETRY_MS = 5 * 60_000;

/** See the module comment. */
export class CatalogSync {
  private wanted = false;
  private forceNext = false;
  private running: Promise<void> | undefined;
  private waiters: ((r: SyncResult) => void)[] = [];
  private debounce: NodeJS.Timeout | undefined;
  private poll: NodeJS.Timeout | undefined;
  private unwatch: (() => void) | undefined;
  private lock: Promise<unknown> = Promise.resolve();
  private stopped = false;
  private last: SyncResult | undefined;
  private syncedAt: number | undefined;
  private failures = 0;
  private nextAt: number | undefined;
  private recent: string[] = [];
  private imagesRun: Promise<void> = Promise.resolve();
  private lastImageRetry = 0;

  constructor(private readonly opts: CatalogSyncOptions) {}

  private now(): number {
    return this.opts.now?.() ?? Date.now();
  }

  /** Restores the persisted catalog (if any), runs the first sync, then polls and watches. */
  async start(): Promise<SyncResult> {
    await this.restore();
    const first = await this.syncNow();
    this.unwatch = this.opts.source.watch?.(() => this.trigger('watch'));
    return first;
  }

  /** Asks for a sync soon; any number of calls before it starts make one sync. */
  trigger(reason: string): void {
    if (this.stopped) return;
    this.opts.log.debug({ reason }, 'sync requested');
    this.wanted = true;
    if (this.running || this.debounce) return;
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      this.pump();
    }, this.opts.debounceMs ?? 200);
    this.debounce.unref();
  }

  /**
   * Runs a sync that starts after this call (joining one already queued) and resolves with its
   * result. `force`: accept a rewritten history or an empty revision, and re-apply and re-prepare
   * images even when the revision is unchanged.
   */
  syncNow(opts: { force?: boolean } = {}): Promise<SyncResult> {
    if (this.stopped) return Promise.resolve({ ok: false, at: new Date(this.now()).toISOString(), durationMs: 0, code: Codes.sourceUnreadable, error: 'the sync loop is stopped' });
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      if (opts.force) this.forceNext = true;
      this.wanted = true;
      if (this.debounce) clearTimeout(this.debounce);
      this.debounce = undefined;
      this.pump();
    });
  }

  /** The plan of the source's newest revision against the applied catalog and live instances. */
  plan(): Promise<CatalogPlan> {
    return this.exclusive(async () => {
      const { snap, rewrite } = await this.fetchForPlan();
      const loaded = await loadSnapshot(snap, this.registryOption());
      const live = this.opts.live ? await this.opts.live() : {};
      return planFor(this.opts.catalog, loaded, live, rewrite);
    });
  }

  status(): SyncStatus {
    const iso = (ms: number | undefined): string | undefined => (ms === undefined ? undefined : new Date(ms).toISOString());
    return {
      source: this.opts.source.info,
      ...(this.opts.catalog.revision ? { revision: this.opts.catalog.revision } : {}),
      ...(this.syncedAt !== undefined ? { syncedAt: iso(this.syncedAt) } : {}),
      ...(this.last ? { lastSync: this.last } : {}),
      failures: this.failures,
      syncing: this.running !== undefined,
      ...(this.nextAt !== undefined ? { nextSyncAt: iso(this.nextAt) } : {}),
    };
  }

  /** Resolves once the images of the last apply are settled (tests, start-up logs). */
  imagesSettled(): Promise<void> {
    return this.imagesRun;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of [this.debounce, this.poll]) if (t) clearTimeout(t);
    this.unwatch?.();
    await this.running?.catch(() => undefined);
  }

  private pump(): void {
    if (this.running || this.stopped) return;
    if (this.poll) clearTimeout(this.poll);
    this.nextAt = undefined;
    this.running = (async () => {
      while (this.wanted && !this.stopped) {
        this.wanted = false;
        const force = this.forceNext;
        this.forceNext = false;
        const waiters = this.waiters.splice(0);
        const result = await this.exclusive(() => this.once(force));
        // Scheduled before answering, so callers see the next attempt in `status()`.
        if (!this.wanted) this.schedule();
        for (const w of waiters) w(result);
      }
    })().finally(() => {
      this.running = undefined;
      // A request that arrived as the loop ended must not be lost.
      if (this.wanted && !this.stopped) this.pump();
    });
  }

  private schedule(): void {
    if (this.poll) clearTimeout(this.poll);
    this.nextAt = undefined;
    if (this.stopped) return;
    const { pollMs } = this.opts;
    const maxBackoff = Math.min(this.opts.maxBackoffMs ?? 300_000, pollMs > 0 ? pollMs : Infinity);
    const delay = this.failures > 0 ? backoffMs(this.failures, 1000, maxBackoff) : pollMs * (0.9 + Math.random() * 0.2);
    if (this.failures === 0 && pollMs <= 0) return;
    this.nextAt = this.now() + delay;
    this.poll = setTimeout(() => this.trigger(this.failures > 0 ? 'retry' : 'poll'), delay);
    this.poll.unref();
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn, fn);
    this.lock = run.catch(() => undefined);
    return run;
  }

  private async once(force: boolean): Promise<SyncResult> {
    const started = this.now();
    const done = (r: Omit<SyncResult, 'at' | 'durationMs'>): SyncResult => (this.last = { ...r, at: new Date(started).toISOString(), durationMs: this.now() - started });
    try {
      const { catalog, source } = this.opts;
      const snap = await source.fetch({ ...(catalog.revision ? { since: catalog.revision } : {}), allowRewrite: force });
      if (snap.revision === catalog.revision && !force) {
        this.retryFailedImages();
        return this.succeeded(done({ ok: true, revision: snap.revision, unchanged: true }));
      }
      const loaded = await loadSnapshot(snap, this.registryOption());
      this.guardEmpty(loaded, force);
      const applied = catalog.apply(loaded, this.now());
      await this.afterApply(snap.revision);
      const { revision: _r, unchanged: _u, ...changes } = applied;
      this.opts.log.info({ revision: snap.revision, ...counts(applied) }, 'catalog synced');
      this.opts.onChanged?.([...applied.added, ...applied.changed, ...applied.removed, ...applied.invalid, ...applied.fixed]);
      this.prepareImages(true);
      return this.succeeded(done({ ok: true, revision: snap.revision, changes }));
    } catch (err) {
      this.failures++;
      const code = isPoseidonError(err) ? err.code : Codes.internal;
      const message = err instanceof Error ? err.message : String(err);
      const revision = isPoseidonError(err) && typeof err.detail?.revision === 'string' ? err.detail.revision : undefined;
      this.opts.log.warn({ code, err: message, failures: this.failures, served: this.opts.catalog.revision }, 'catalog sync failed; keeping the last good revision');
      return done({ ok: false, code, error: message, ...(revision ? { revision } : {}) });
    }
  }

  private succeeded(r: SyncResult): SyncResult {
    this.failures = 0;
    this.syncedAt = this.now();
    return r;
  }

  /** Never act on an empty read: a revision without any challenge file replaces a non-empty catalog only when forced. */
  private guardEmpty(loaded: LoadedSnapshot, force: boolean): void {
    if (force || loaded.candidates.length + loaded.invalid.length > 0 || this.opts.catalog.list().length === 0) return;
    throw new PoseidonError(Codes.sourceEmpty,
      `revision ${loaded.revision.slice(0, 12)} has no challenge files under ${this.opts.source.info.path}; keeping ${this.opts.catalog.revision?.slice(0, 12) ?? 'the current catalog'} until an admin forces it (POST /v1/sync {"force": true})`,
      { kind: 'transient', detail: { revision: loaded.revision } });
  }

  private async afterApply(revision: string): Promise<void> {
    const forgotten = this.opts.catalog.prune(this.now());
    await this.persist(forgotten);
    this.recent = [revision, ...this.recent.filter((r) => r !== revision)].slice(0, KEEP_REVISIONS);
    await this.opts.source.retain(this.recent).catch((err: unknown) => this.opts.log.warn({ err: (err as Error).message }, 'could not free old snapshots'));
  }

  private registryOption(): { registry?: string } {
    return this.opts.registry ? { registry: this.opts.registry } : {};
  }

  /** Saves the catalog now (after a version's publication state changed). */
  persistNow(): Promise<void> {
    return this.exclusive(() => this.persist([]));
  }

  private async persist(forgotten: readonly string[]): Promise<void> {
    const head = this.opts.catalog.head();
    if (!head) return;
    await this.opts.store.save({ head, versions: this.opts.catalog.allVersions() }, forgotten)
      .catch((err: unknown) => this.opts.log.warn({ err: (err as Error).message }, 'could not persist the catalog'));
  }

  private async restore(): Promise<void> {
    const saved = await this.opts.store.load().catch((err: unknown) => {
      this.opts.log.warn({ err: (err as Error).message }, 'could not read the persisted catalog');
      return undefined;
    });
    if (!saved) return;
    this.opts.catalog.restore(saved.head, saved.versions);
    this.opts.log.info({ revision: saved.head.revision, challenges: saved.head.records.length }, 'catalog restored; serving it until the source answers');
    this.prepareImages(false);
  }

  /** Images that failed (a registry hiccup, a flaky build step) are tried again, at most every few minutes. */
  private retryFailedImages(): void {
    const failed = this.opts.catalog.list().filter((e) => e.state === 'image-missing' || e.publishError !== undefined);
    if (failed.length === 0 || this.now() - this.lastImageRetry < IMAGE_RETRY_MS) return;
    this.prepareImages(false, failed);
  }

  private prepareImages(repull: boolean, entries = this.opts.catalog.list()): void {
    this.lastImageRetry = this.now();
    // Runs beside earlier preparations (the preparer shares work per image); settles after all.
    const run = this.opts.images.prepare(entries, { repull }).catch((err: unknown) => {
      this.opts.log.error({ err: (err as Error).message }, 'image preparation failed');
    });
    this.imagesRun = Promise.all([this.imagesRun, run]).then(() => undefined);
  }

  private async fetchForPlan() {
    const { catalog, source } = this.opts;
    const since = catalog.revision ? { since: catalog.revision } : {};
    try {
      return { snap: await source.fetch(since), rewrite: false };
    } catch (err) {
      if (!isPoseidonError(err, Codes.gitRewrite)) throw err;
      return { snap: await source.fetch({ ...since, allowRewrite: true }), rewrite: true };
    }
  }
}

function counts(r: ApplyResult): Record<string, number> {
  return { added: r.added.length, changed: r.changed.length, removed: r.removed.length, invalid: r.invalid.length, fixed: r.fixed.length, unchanged: r.unchanged };
}
