/**
 * A worker's images: the current version of every challenge this worker can run is made present
 * on its engine (pulled from the registry the manager pushed to, pulled as `image:`, or, with no
 * registry, built here when the build context is on this host), and each outcome is reported to
 * the fleet registry, where placement reads it: a version is placed only on workers that have it.
 * Work for one image is never done twice at once; a failure is retried on the next sync.
 */
import type { RuntimeName } from '../core/challenge.ts';
import type { Fleet } from '../core/fleet.ts';
import type { Logger } from '../core/reconcile.ts';
import { LABELS, type ContainerRuntime, type Ownership } from '../core/runtime.ts';
import { Semaphore } from '../core/semaphore.ts';
import type { VersionInfo } from '../core/versions.ts';
import type { WorkerImageState } from '../core/worker.ts';

export interface WorkerImagesOptions {
  workerId: string;
  runtime: Pick<ContainerRuntime, 'imageExists' | 'pullImage' | 'buildImage'>;
  fleet: Fleet;
  owner: Ownership;
  log: Logger;
  /** Pulls and builds at once (default 2). */
  concurrency?: number;
}

type State = Omit<WorkerImageState, 'at'>;

/** Build output kept in an error, from its end (where the failing step is). */
const OUTPUT_TAIL = 8 * 1024;

/** See the module comment. */
export class WorkerImages {
  readonly #opts: WorkerImagesOptions;
  readonly #states = new Map<string, State>();
  readonly #inflight = new Map<string, Promise<State>>();
  /** Versions with `pull: always` already pulled on this worker (each new revision pulls once). */
  readonly #pulled = new Set<string>();
  readonly #slots: Semaphore;
  #runtimes: readonly RuntimeName[] = ['runc'];

  constructor(opts: WorkerImagesOptions) {
    this.#opts = opts;
    this.#slots = new Semaphore(opts.concurrency ?? 2);
  }

  /** The challenge runtimes this worker runs (known once the engine answered); others are not prepared here. */
  setRuntimes(runtimes: readonly RuntimeName[]): void {
    this.#runtimes = runtimes;
  }

  /** Whether this worker can run `v` at all (its runtime). */
  eligible(v: VersionInfo): boolean {
    return this.#runtimes.includes(v.spec.runtime);
  }

  /** The image's state here now; starts making it present when it is not (never waits). */
  ensure(v: VersionInfo): State {
    const known = this.#states.get(v.image);
    if (known?.state === 'present' || this.#inflight.has(v.image)) return known ?? { state: 'preparing' };
    void this.#prepare(v);
    return this.#states.get(v.image) ?? { state: 'preparing' };
  }

  /**
   * Prepares every eligible version of `versions` (the current ones), waits for all of them, and
   * drops reports of images no longer current. Failures are reported, never thrown.
   */
  async sync(versions: readonly VersionInfo[]): Promise<void> {
    const eligible = versions.filter((v) => this.eligible(v));
    await Promise.all(eligible.map((v) => this.#prepare(v)));
    const keep = new Set(eligible.map((v) => v.image));
    // Forgotten here as in the fleet (pruned below): a version that becomes current again (a
    // revert) is checked and reported again, or placement would never see it on this worker.
    for (const image of [...this.#states.keys()]) if (!keep.has(image) && !this.#inflight.has(image)) this.#states.delete(image);
    await this.#opts.fleet.pruneImages(this.#opts.workerId, [...keep]).catch((err: unknown) => {
      this.#opts.log.warn({ err: (err as Error).message }, 'could not prune image reports');
    });
  }

  #prepare(v: VersionInfo): Promise<State> {
    const running = this.#inflight.get(v.image);
    if (running) return running;
    // No shortcut for an image known present: `ensure` trusts it (the hot path), but each sync
    // asks the engine again (one inspect), so an image removed behind our back comes back.
    const work = this.#slots.run(() => this.#make(v)).then(async (state) => {
      await this.#report(v.image, state);
      return state;
    }).finally(() => this.#inflight.delete(v.image));
    this.#inflight.set(v.image, work);
    if (!this.#states.has(v.image)) void this.#report(v.image, { state: 'preparing' });
    return work;
  }

  async #report(image: string, state: State): Promise<void> {
    const before = this.#states.get(image);
    this.#states.set(image, state);
    if (before?.state === state.state && before.error === state.error) return;
    await this.#opts.fleet.reportImages(this.#opts.workerId, { [image]: state }).catch((err: unknown) => {
      // The next sync reports again: a report lost to a Redis outage only delays placement here.
      this.#states.delete(image);
      this.#opts.log.warn({ image, err: (err as Error).message }, 'could not report an image state');
    });
  }

  async #make(v: VersionInfo): Promise<State> {
    const { spec, image } = v;
    const log = { challenge: spec.id, image, worker: this.#opts.workerId };
    const rt = this.#opts.runtime;
    try {
      const present = await rt.imageExists(image);
      const repull = spec.pull === 'always' && !spec.build && !this.#pulled.has(v.hash);
      if (present && !repull) return { state: 'present' };
      if (spec.build && v.published === undefined) {
        this.#opts.log.info(log, 'building image');
        const labels = { [LABELS.managedBy]: this.#opts.owner.managerId, [LABELS.deployment]: this.#opts.owner.deployment, [LABELS.challenge]: spec.id };
        await rt.buildImage(spec.build.context, spec.build.dockerfile, image, labels, { network: spec.build.network === true });
        return { state: 'present' };
      }
      if (spec.build && !v.published) {
        return v.publishError ? { state: 'failed', error: `the manager could not publish it: ${v.publishError}` } : { state: 'preparing' };
      }
      this.#opts.log.info({ ...log, policy: spec.pull ?? 'if-not-present' }, 'pulling image');
      try {
        await rt.pullImage(image);
        if (repull) this.#pulled.add(v.hash);
      } catch (err) {
        if (!present) throw err;
        // `pull: always`: a failed re-pull keeps the local copy.
        this.#opts.log.warn({ ...log, err: (err as Error).message }, 're-pull failed; using the local image');
      }
      return { state: 'present' };
    } catch (err) {
      const message = tail(err instanceof Error ? err.message : String(err));
      this.#opts.log.error({ ...log, err: message.split('\n')[0] }, 'image not available');
      return { state: 'failed', error: message };
    }
  }
}

/** The first line (the reason) and the end of the rest (the failing build step). */
export function tail(text: string): string {
  if (text.length <= OUTPUT_TAIL) return text;
  const nl = text.indexOf('\n');
  const first = nl < 0 ? text.slice(0, 500) : text.slice(0, Math.min(nl, 500));
  return `${first}\n…\n${text.slice(-OUTPUT_TAIL)}`;
}
