/**
 * Wiring of the catalog for `poseidon serve`: the source (git when POSEIDON_GIT_URL is set, the
 * challenges directory otherwise), the persisted state (Redis when the store is Redis), image
 * preparation on the workers, and the sync loop. `main.ts` calls `createGitOps` and `start`.
 */
import type { Config } from '../config/config.ts';
import type { Logger } from '../core/reconcile.ts';
import { wantsRunning } from '../core/instance.ts';
import type { Source } from '../core/source.ts';
import type { Store } from '../core/store.ts';
import { DirSource } from '../source/dir-source.ts';
import { GitSource } from '../source/git-source.ts';
import type { GitOpsApi } from '../api/catalog-routes.ts';
import { Catalog } from './catalog.ts';
import { NoCatalogStore, RedisCatalogStore, type CatalogStore } from './catalog-store.ts';
import { ImagePreparer, type ImageWorker } from './images.ts';
import type { LiveInstances } from './plan.ts';
import { CatalogSync } from './sync.ts';

export interface GitOpsDeps {
  config: Config;
  store: Store;
  workers: readonly ImageWorker[];
  log: Logger;
  now?: () => number;
}

export interface GitOps {
  catalog: Catalog;
  sync: CatalogSync;
  /** What the API routes need. */
  api: GitOpsApi;
  /** Restores, runs the first sync (waiting at most `waitMs`, default 30 s) and starts the loop. */
  start(waitMs?: number): Promise<void>;
  /** From now on, instance ids whose challenge changed are handed to `enqueue` (the controller). */
  attach(enqueue: (id: string) => void): void;
  stop(): Promise<void>;
}

/** The source `config` asks for. */
export function sourceFor(config: Config): Source {
  if (!config.gitUrl) return new DirSource({ dir: config.challengesDir });
  return new GitSource({
    url: config.gitUrl, branch: config.gitBranch, path: config.gitPath, workdir: `${config.dataDir}/git`, env: { ...config.gitEnv },
    credentials: {
      ...(config.gitToken !== undefined ? { token: config.gitToken } : {}),
      ...(config.gitUsername !== undefined ? { username: config.gitUsername } : {}),
      ...(config.gitSshKey !== undefined ? { sshKey: config.gitSshKey } : {}),
      ...(config.gitKnownHosts !== undefined ? { knownHosts: config.gitKnownHosts } : {}),
    },
  });
}

/** Spec hashes of live instances per challenge, read fresh from the store. */
export function liveInstances(store: Store, now: () => number = Date.now): LiveInstances {
  return async () => {
    const out: Record<string, string[]> = {};
    const at = now();
    for (const inst of await store.listInstances()) {
      if (wantsRunning(inst, at)) (out[inst.challenge] ??= []).push(inst.specHash);
    }
    return out;
  };
}

/** Builds the catalog, source, image preparer and sync loop from `deps` (see the module comment). */
export function createGitOps(deps: GitOpsDeps): GitOps {
  const { config, store, log } = deps;
  const catalog = new Catalog();
  let enqueue: ((id: string) => void) | undefined;
  const changed = (ids: string[]): void => {
    if (!enqueue || ids.length === 0) return;
    const wanted = new Set(ids);
    void store.listInstances().then((list) => {
      for (const inst of list) if (wanted.has(inst.challenge)) enqueue?.(inst.id);
    }, (err: unknown) => log.warn({ err: (err as Error).message }, 'could not list instances of changed challenges'));
  };
  const images = new ImagePreparer({
    workers: deps.workers, managerId: config.managerId, log,
    onOutcome: (hash, state, workers, error) => {
      const before = catalog.version(hash);
      const was = before?.state;
      catalog.markImage(hash, state, workers, error);
      if (before && was !== state) changed([before.spec.id]);
    },
  });
  const catalogStore: CatalogStore = config.redisUrl ? new RedisCatalogStore(config.redisUrl, config.redisPrefix) : new NoCatalogStore();
  const sync = new CatalogSync({
    source: sourceFor(config), catalog, images, store: catalogStore, log,
    // A directory is watched, not polled.
    pollMs: config.gitUrl ? config.gitPollSeconds * 1000 : 0,
    live: liveInstances(store, deps.now), onChanged: changed, ...(deps.now ? { now: deps.now } : {}),
  });
  const api: GitOpsApi = {
    status: () => sync.status(), syncNow: (o) => sync.syncNow(o), trigger: (r) => sync.trigger(r), plan: () => sync.plan(),
    webhook: { ...(config.webhookSecret ? { secret: config.webhookSecret } : {}), branch: config.gitBranch },
  };
  return {
    catalog, sync, api,
    async start(waitMs = 30_000) {
      let timer: NodeJS.Timeout | undefined;
      const first = await Promise.race([sync.start(), new Promise<undefined>((r) => { timer = setTimeout(() => r(undefined), waitMs); })]);
      clearTimeout(timer);
      const s = sync.status();
      if (!first) log.warn({ source: s.source }, 'first catalog sync still running; serving what is loaded');
      else if (!first.ok) log.error({ source: s.source, code: first.code, err: first.error, served: catalog.revision }, 'first catalog sync failed; retrying with backoff');
      log.info({ source: s.source, revision: catalog.revision, challenges: catalog.list().length, invalid: catalog.invalid().length }, 'catalog loaded');
    },
    attach(fn) {
      enqueue = fn;
    },
    async stop() {
      await sync.stop();
      await catalogStore.close();
    },
  };
}
