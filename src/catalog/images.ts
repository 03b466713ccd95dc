/**
 * Image preparation on every worker: `image:` references are pulled (policy `if-not-present` or
 * `always`), `build:` contexts are built with the Engine API under a tag derived from their
 * content, so identical content never rebuilds. A version is `ready` only when its image is
 * present on every eligible worker. One engine per `ImageWorker`; more workers plug in here.
 */
import type { RuntimeName } from '../core/challenge.ts';
import { LABELS } from '../core/runtime.ts';
import type { Logger } from '../core/reconcile.ts';
import type { CatalogEntry, ChallengeState, WorkerImage } from './catalog.ts';

/** One Docker engine images can be made present on (`DockerRuntime` fits as it is). */
export interface ImageWorker {
  readonly id: string;
  /** Runtimes this worker offers; undefined offers every runtime. */
  readonly runtimes?: readonly RuntimeName[];
  imageExists(ref: string): Promise<boolean>;
  pullImage(ref: string): Promise<void>;
  /** Rejects with the build output on failure. */
  buildImage(context: string, dockerfile: string, tag: string, labels: Record<string, string>): Promise<void>;
}

/** An `ImageWorker` named `id` over an engine adapter (the local `DockerRuntime` today). */
export function engineWorker(id: string, engine: Pick<ImageWorker, 'imageExists' | 'pullImage' | 'buildImage'>, runtimes?: readonly RuntimeName[]): ImageWorker {
  return {
    id,
    ...(runtimes ? { runtimes } : {}),
    imageExists: (ref) => engine.imageExists(ref),
    pullImage: (ref) => engine.pullImage(ref),
    buildImage: (context, dockerfile, tag, labels) => engine.buildImage(context, dockerfile, tag, labels),
  };
}

/** Where `ImagePreparer` reports a version's image outcome (the catalog's `markImage`). */
export type ImageOutcome = (hash: string, state: ChallengeState, workers: Record<string, WorkerImage>, error?: string) => void;

export interface ImagePreparerOptions {
  workers: readonly ImageWorker[];
  managerId: string;
  log: Logger;
  onOutcome: ImageOutcome;
  /** Pulls and builds at once per worker (default 2). */
  concurrency?: number;
}

/** Build output kept in an error, from its end (where the failing step is). */
const OUTPUT_TAIL = 8 * 1024;

/** See the module comment. Work for the same image on the same worker is shared, never repeated. */
export class ImagePreparer {
  private readonly inflight = new Map<string, Promise<WorkerImage>>();
  private readonly slots = new Map<string, Limiter>();

  constructor(private readonly opts: ImagePreparerOptions) {}

  /**
   * Makes the images of `entries` present on their eligible workers and reports each outcome;
   * resolves when every one is settled. `repull`: pull `pull: always` images again (a new revision).
   */
  async prepare(entries: readonly CatalogEntry[], opts: { repull?: boolean } = {}): Promise<void> {
    await Promise.all(entries.map((e) => this.prepareOne(e, opts.repull ?? false)));
  }

  private async prepareOne(entry: CatalogEntry, repull: boolean): Promise<void> {
    const workers = this.opts.workers.filter((w) => !w.runtimes || w.runtimes.includes(entry.spec.runtime));
    if (workers.length === 0) {
      this.opts.onOutcome(entry.hash, 'image-missing', {}, `no worker offers runtime ${entry.spec.runtime}`);
      return;
    }
    if (entry.state !== 'ready') {
      this.opts.onOutcome(entry.hash, 'building', Object.fromEntries(workers.map((w) => [w.id, { state: 'preparing' } as WorkerImage])));
    }
    const results = await Promise.all(workers.map(async (w) => [w.id, await this.ensureOn(w, entry, repull)] as const));
    const byWorker = Object.fromEntries(results);
    const failed = results.find(([, r]) => r.state === 'failed');
    if (failed) this.opts.onOutcome(entry.hash, 'image-missing', byWorker, `worker ${failed[0]}: ${failed[1].error ?? 'failed'}`);
    else this.opts.onOutcome(entry.hash, 'ready', byWorker);
  }

  private ensureOn(worker: ImageWorker, entry: CatalogEntry, repull: boolean): Promise<WorkerImage> {
    const key = `${worker.id}\0${entry.image}\0${repull && entry.spec.pull === 'always' ? 'pull' : ''}`;
    const running = this.inflight.get(key);
    if (running) return running;
    const work = this.limiter(worker.id).run(() => this.make(worker, entry, repull)).finally(() => this.inflight.delete(key));
    this.inflight.set(key, work);
    return work;
  }

  private async make(worker: ImageWorker, entry: CatalogEntry, repull: boolean): Promise<WorkerImage> {
    const { spec, image } = entry;
    const log = { challenge: spec.id, image, worker: worker.id };
    try {
      const present = await worker.imageExists(image);
      if (present && !(repull && spec.pull === 'always' && !spec.build)) return { state: 'present' };
      if (spec.build) {
        this.opts.log.info(log, 'building image');
        const labels = { [LABELS.managedBy]: this.opts.managerId, [LABELS.challenge]: spec.id };
        await worker.buildImage(spec.build.context, spec.build.dockerfile, image, labels);
      } else {
        this.opts.log.info({ ...log, policy: spec.pull ?? 'if-not-present' }, 'pulling image');
        await this.pull(worker, image, present);
      }
      return { state: 'present' };
    } catch (err) {
      const message = tail(err instanceof Error ? err.message : String(err));
      this.opts.log.error({ ...log, err: message.split('\n')[0] }, 'image not available');
      return { state: 'failed', error: message };
    }
  }

  /** Pulls; with `pull: always` a failed re-pull of a present image keeps the local copy (with a warning). */
  private async pull(worker: ImageWorker, image: string, present: boolean): Promise<void> {
    try {
      await worker.pullImage(image);
    } catch (err) {
      if (!present) throw err;
      this.opts.log.warn({ image, worker: worker.id, err: (err as Error).message }, 're-pull failed; using the local image');
    }
  }

  private limiter(worker: string): Limiter {
    let l = this.slots.get(worker);
    if (!l) this.slots.set(worker, (l = new Limiter(this.opts.concurrency ?? 2)));
    return l;
  }
}

/** The first line (the reason) and the end of the rest (the failing build step). */
function tail(text: string): string {
  if (text.length <= OUTPUT_TAIL) return text;
  const nl = text.indexOf('\n');
  const first = nl < 0 ? text.slice(0, 500) : text.slice(0, Math.min(nl, 500));
  return `${first}\n…\n${text.slice(-OUTPUT_TAIL)}`;
}

/** At most `n` tasks at once, the rest in arrival order. */
class Limiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly n: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.n) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    try {
      return await task();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}
