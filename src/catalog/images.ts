/**
 * Publishing images (with a registry): each built challenge version is built once, where the
 * manager's builder engine is, and pushed to the registry under its content-derived reference;
 * workers pull it from there (`worker/images.ts`). `image:` challenges need no publishing, and
 * without a registry each worker builds locally instead (a single host, as before). Work for one
 * image is never done twice at once; failures are recorded on the version and retried later.
 */
import type { Logger } from '../core/reconcile.ts';
import { LABELS, type ContainerRuntime, type Ownership } from '../core/runtime.ts';
import { Semaphore } from '../core/semaphore.ts';
import { tail } from '../worker/images.ts';
import type { CatalogEntry } from './catalog.ts';

/** What the catalog sync calls after each apply (and to retry failures). */
export interface ImagePreparation {
  /** Makes the images of `entries` available to workers; resolves when every one is settled. */
  prepare(entries: readonly CatalogEntry[], opts?: { repull?: boolean }): Promise<void>;
}

/** Nothing to publish (no registry): workers prepare images themselves. */
export const NO_PUBLISHING: ImagePreparation = { prepare: async () => undefined };

export interface ImagePublisherOptions {
  builder: Pick<ContainerRuntime, 'imageExists' | 'buildImage' | 'pushImage'>;
  owner: Ownership;
  log: Logger;
  /** Records the outcome on the version (`Catalog.markPublished`) and persists it. */
  onPublished(hash: string, error?: string): void | Promise<void>;
  concurrency?: number;
}

/** See the module comment. */
export class ImagePublisher implements ImagePreparation {
  readonly #opts: ImagePublisherOptions;
  readonly #inflight = new Map<string, Promise<void>>();
  readonly #slots: Semaphore;

  constructor(opts: ImagePublisherOptions) {
    this.#opts = opts;
    this.#slots = new Semaphore(opts.concurrency ?? 2);
  }

  async prepare(entries: readonly CatalogEntry[]): Promise<void> {
    // Only versions loaded for publishing (`published: false`): one without the flag has a local
    // `poseidon-build/...` reference, whose push would go to Docker Hub.
    await Promise.all(entries.filter((e) => e.spec.build && e.published === false).map((e) => this.#publish(e)));
  }

  #publish(entry: CatalogEntry): Promise<void> {
    const running = this.#inflight.get(entry.image);
    if (running) return running;
    const work = this.#slots.run(() => this.#buildAndPush(entry)).finally(() => this.#inflight.delete(entry.image));
    this.#inflight.set(entry.image, work);
    return work;
  }

  async #buildAndPush(entry: CatalogEntry): Promise<void> {
    const { spec, image } = entry;
    const build = spec.build;
    if (!build) return;
    const log = { challenge: spec.id, image };
    const { builder, owner } = this.#opts;
    try {
      if (!(await builder.imageExists(image))) {
        this.#opts.log.info(log, 'building image');
        const labels = { [LABELS.managedBy]: owner.managerId, [LABELS.deployment]: owner.deployment, [LABELS.challenge]: spec.id };
        await builder.buildImage(build.context, build.dockerfile, image, labels, { network: build.network === true });
      }
      this.#opts.log.info(log, 'pushing image');
      await builder.pushImage(image, image);
      await this.#opts.onPublished(entry.hash);
    } catch (err) {
      const message = tail(err instanceof Error ? err.message : String(err));
      this.#opts.log.error({ ...log, err: message.split('\n')[0] }, 'image not published');
      await this.#opts.onPublished(entry.hash, message);
    }
  }
}
