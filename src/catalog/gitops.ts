/**
 * The catalog for `poseidon serve`: a source (git or a directory), the persisted state, image
 * publication (with a registry) and the sync loop, assembled from parts the composition root
 * builds. `start` restores and syncs; instances of challenges that change are handed to the
 * manager's queue once `attach`ed.
 */
import { wantsRunning, type Instance } from '../core/instance.ts';
import type { Logger } from '../core/reconcile.ts';
import type { Source } from '../core/source.ts';
import type { Store } from '../core/store.ts';
import type { GitOpsApi } from './gitops-api.ts';
import { Catalog } from './catalog.ts';
import type { CatalogStore } from './catalog-store.ts';
import { ImagePublisher, NO_PUBLISHING, type ImagePublisherOptions } from './images.ts';
import type { LiveInstances } from './plan.ts';
import { CatalogSync } from './sync.ts';

export interface GitOpsDeps {
  source: Source;
  store: Store;
  catalogStore: CatalogStore;
  log: Logger;
  /** Poll period of the source (0: only its watcher, webhooks and admins trigger). */
  pollMs: number;
  /** Webhook settings for `POST /v1/hooks/git`. */
  webhook: GitOpsApi['webhook'];
  /** With a registry: where built images are pushed and the engine that builds them. */
  publish?: { registry: string } & Pick<ImagePublisherOptions, 'builder' | 'owner'>;
  /** The catalog to keep (a manager replica keeps one across its terms as leader); a new one otherwise. */
  catalog?: Catalog;
  /** The replica's instance view: read instead of listing every record from the store. */
  instances?: () => Iterable<Instance>;
  now?: () => number;
}

export interface GitOps {
  catalog: Catalog;
  sync: CatalogSync;
  /** What the API routes need. */
  api: GitOpsApi;
  /** Restores, runs the first sync (waiting at most `waitMs`, default 30 s) and starts the loop. */
  start(waitMs?: number): Promise<void>;
  /** From now on, instance ids whose challenge changed are handed to `enqueue` (the manager's queue). */
  attach(enqueue: (id: string) => void): void;
  /** Hands the instances of challenges `ids` to the attached queue. */
  changed(ids: readonly string[]): void;
  stop(): Promise<void>;
}

/** Spec hashes of live instances per challenge, from the instance view or else read fresh from the store. */
export function liveInstances(store: Store, now: () => number = Date.now, view?: () => Iterable<Instance>): LiveInstances {
  return async () => {
    const out: Record<string, string[]> = {};
    const at = now();
    for (const inst of view ? view() : await store.listInstances()) {
      if (wantsRunning(inst, at)) (out[inst.challenge] ??= []).push(inst.specHash);
    }
    return out;
  };
}

/** Builds the catalog and its sync loop from `deps` (see the module comment). */
export function createGitOps(deps: GitOpsDeps): GitOps {
  const { store, log } = deps;
  const catalog = deps.catalog ?? new Catalog();
  let enqueue: ((id: string) => void) | undefined;
  const changed = (ids: readonly string[]): void => {
    if (!enqueue || ids.length === 0) return;
    const wanted = new Set(ids);
    const handOver = (list: Iterable<Instance>): void => {
      for (const inst of list) if (wanted.has(inst.challenge)) enqueue?.(inst.id);
    };
    if (deps.instances) return handOver(deps.instances());
    void store.listInstances().then(handOver, (err: unknown) => log.warn({ err: (err as Error).message }, 'could not list instances of changed challenges'));
  };
  let sync: CatalogSync | undefined;
  const images = deps.publish
    ? new ImagePublisher({
      builder: deps.publish.builder, owner: deps.publish.owner, log,
      onPublished: async (hash, error) => {
        catalog.markPublished(hash, error);
        // Remote workers read publication from the persisted catalog.
        await sync?.persistNow();
        const v = catalog.version(hash);
        if (v) changed([v.spec.id]);
      },
    })
    : NO_PUBLISHING;
  sync = new CatalogSync({
    source: deps.source, catalog, images, store: deps.catalogStore, log, pollMs: deps.pollMs,
    ...(deps.publish ? { registry: deps.publish.registry } : {}),
    live: liveInstances(store, deps.now, deps.instances), onChanged: changed, ...(deps.now ? { now: deps.now } : {}),
  });
  const loop = sync;
  const api: GitOpsApi = {
    status: () => loop.status(), syncNow: (o) => loop.syncNow(o), trigger: (r) => loop.trigger(r), plan: () => loop.plan(), webhook: deps.webhook,
  };
  return {
    catalog, sync: loop, api, changed,
    async start(waitMs = 30_000) {
      let timer: NodeJS.Timeout | undefined;
      const first = await Promise.race([loop.start(), new Promise<undefined>((r) => { timer = setTimeout(() => r(undefined), waitMs); })]);
      clearTimeout(timer);
      const s = loop.status();
      if (!first) log.warn({ source: s.source }, 'first catalog sync still running; serving what is loaded');
      else if (!first.ok) log.error({ source: s.source, code: first.code, err: first.error, served: catalog.revision }, 'first catalog sync failed; retrying with backoff');
      log.info({ source: s.source, revision: catalog.revision, challenges: catalog.list().length, invalid: catalog.invalid().length }, 'catalog loaded');
    },
    attach(fn) {
      enqueue = fn;
    },
    async stop() {
      await loop.stop();
      await deps.catalogStore.close();
    },
  };
}
