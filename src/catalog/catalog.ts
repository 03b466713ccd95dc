import type { ChallengeSpec, LoadResult, SpecIssue } from '../core/challenge.ts';
import { LABELS, type ContainerRuntime } from '../core/runtime.ts';
import type { Logger } from '../controller/types.ts';
import { loadChallengeDir } from '../spec/load.ts';
import { contextHash, specHash } from './hash.ts';

export type ChallengeState = 'ready' | 'building' | 'image-missing';

/** A valid challenge with the image its instances run. */
export interface CatalogEntry {
  spec: ChallengeSpec;
  hash: string;
  image: string;
  state: ChallengeState;
  error?: string;
}

export interface InvalidChallenge {
  file: string;
  id?: string;
  issues: SpecIssue[];
}

/**
 * The loaded challenges. `load` validates a directory and then makes every image present
 * (pull for `image:`, build for `build:` with a content-derived tag, so identical content never
 * rebuilds); a challenge is `ready` only once its image exists.
 */
export class Catalog {
  private entries = new Map<string, CatalogEntry>();
  private invalidFiles: InvalidChallenge[] = [];

  constructor(private readonly runtime: ContainerRuntime, private readonly log: Logger, private readonly managerId: string) {}

  /**
   * Validates `dir` and swaps in the new set of challenges (state `building` until
   * `prepareImages` has made their images present).
   */
  async load(dir: string): Promise<void> {
    const results = await loadChallengeDir(dir);
    const next = new Map<string, CatalogEntry>();
    this.invalidFiles = [];
    for (const r of results) {
      if (!r.ok) this.invalidFiles.push(invalid(r));
      else next.set(r.spec.id, await this.entryFor(r.spec));
    }
    this.entries = next;
    for (const bad of this.invalidFiles) this.log.warn({ file: bad.file, issues: bad.issues.length }, 'invalid challenge');
  }

  /** Makes every image of the loaded challenges present; failures are recorded per challenge. */
  async prepareImages(): Promise<void> {
    await Promise.all([...this.entries.values()].filter((e) => e.state !== 'ready').map((e) => this.prepare(e)));
  }

  get(id: string): CatalogEntry | undefined {
    return this.entries.get(id);
  }

  list(): CatalogEntry[] {
    return [...this.entries.values()].sort((a, b) => (a.spec.id < b.spec.id ? -1 : 1));
  }

  invalid(): InvalidChallenge[] {
    return this.invalidFiles;
  }

  private async entryFor(spec: ChallengeSpec): Promise<CatalogEntry> {
    if (!spec.build) return { spec, hash: specHash(spec), image: spec.image ?? '', state: 'building' };
    const content = await contextHash(spec.build.context);
    return { spec, hash: specHash(spec, content), image: `poseidon-build/${spec.id}:${content.slice(0, 16)}`, state: 'building' };
  }

  private async prepare(entry: CatalogEntry): Promise<void> {
    const { spec } = entry;
    try {
      if (!(await this.runtime.imageExists(entry.image))) {
        if (spec.build) {
          this.log.info({ challenge: spec.id, image: entry.image }, 'building image');
          await this.runtime.buildImage(spec.build.context, spec.build.dockerfile, entry.image, { [LABELS.managedBy]: this.managerId, [LABELS.challenge]: spec.id });
        } else {
          this.log.info({ challenge: spec.id, image: entry.image }, 'pulling image');
          await this.runtime.pullImage(entry.image);
        }
      }
      entry.state = 'ready';
    } catch (err) {
      entry.state = 'image-missing';
      entry.error = (err as Error).message;
      this.log.error({ challenge: spec.id, image: entry.image, err: entry.error }, 'image not available');
    }
  }
}

function invalid(r: Extract<LoadResult, { ok: false }>): InvalidChallenge {
  const out: InvalidChallenge = { file: r.file, issues: r.issues };
  if (r.id) out.id = r.id;
  return out;
}
