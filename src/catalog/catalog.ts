import type { ChallengeSpec, SpecIssue } from '../core/challenge.ts';
import { Codes, PoseidonError } from '../core/errors.ts';
import type { Instance } from '../core/instance.ts';
import { decideVersion, DEFAULT_UPDATE_POLICY, type RolloutDecision, type RolloutReason, type UpdatePolicy, type VersionRef, type VersionState } from '../core/rollout.ts';
import type { Candidate, InvalidFile, LoadedSnapshot } from './load-snapshot.ts';

/** Image state of a version: `ready` (present on every eligible worker) is the only launchable one. */
export type ChallengeState = VersionState;

/** Image state of one version on one worker. */
export interface WorkerImage {
  state: 'present' | 'preparing' | 'failed';
  error?: string;
}

/**
 * One version of a challenge, addressed by its spec hash; kept after it is superseded so
 * instances launched with it stay addressable. `state` is its image readiness.
 */
export interface CatalogEntry {
  spec: ChallengeSpec;
  hash: string;
  image: string;
  state: ChallengeState;
  /** Why the image is missing (with build output), when it is. */
  error?: string;
  /** Revision this version first appeared in. */
  revision: string;
  /** Its challenge file, relative to the repository root. */
  file: string;
  /** When it stopped being its challenge's current version (epoch ms). */
  supersededAt?: number;
  workers: Record<string, WorkerImage>;
  /**
   * With a registry, a built image is built once by the manager and pushed: false until it is,
   * then true (workers pull it). Absent: nothing to publish (`image:`, or no registry).
   */
  published?: boolean;
  /** Why the manager could not build or push it. */
  publishError?: string;
}

/** Per-challenge record: the current good version and what the newest files say. */
export interface ChallengeRecord {
  id: string;
  /** Hash of the last good version (served while the newest file is invalid). */
  current?: string;
  /** The file defining it in the applied revision. */
  file?: string;
  /** Issues of its newest file, when invalid. */
  issues?: SpecIssue[];
  /** When it disappeared from the source; it takes no launches from then on. */
  removedAt?: number;
  policy: UpdatePolicy;
  /** Revision at which the record last changed (version, validity or removal). */
  revision: string;
}

/** Which ids an apply touched. */
export interface ApplyResult {
  revision: string;
  added: string[];
  changed: string[];
  removed: string[];
  invalid: string[];
  /** Invalid challenges that are valid again. */
  fixed: string[];
  unchanged: number;
}

/** The `versionFor` answer: a rollout decision plus the version to run when it says `run`. */
export type VersionPick = RolloutDecision & { entry?: CatalogEntry };

/** Serializable catalog state (see `catalog-store.ts`). */
export interface CatalogHead {
  revision: string;
  appliedAt: number;
  records: ChallengeRecord[];
  orphans: InvalidFile[];
}

/** How long past their last possible use superseded versions and removed records are kept. */
const RETENTION_MARGIN_MS = 10 * 60_000;

/**
 * The catalog: every challenge's current good version, the versions running instances still
 * use, and the validity of the newest files. `apply` swaps in a loaded revision with last-good
 * semantics (an invalid file keeps its challenge's previous version serving; a missing one marks
 * the challenge removed); nothing here does I/O.
 */
export class Catalog {
  private records = new Map<string, ChallengeRecord>();
  private readonly versions = new Map<string, CatalogEntry>();
  private readonly fileIds = new Map<string, string>();
  private orphans: InvalidFile[] = [];
  /** Revision applied last; undefined until the first apply or restore. */
  revision: string | undefined;
  appliedAt: number | undefined;

  /** True once a revision was applied or restored: before that, nothing may act on the catalog. */
  get loaded(): boolean {
    return this.revision !== undefined;
  }

  /** The launchable-or-preparing current version of `id`; undefined when unknown, removed or never valid. */
  get(id: string): CatalogEntry | undefined {
    const rec = this.records.get(id);
    return rec && rec.removedAt === undefined && rec.current ? this.versions.get(rec.current) : undefined;
  }

  /**
   * The version a new launch of `id` gets. Throws E_CHALLENGE_NOT_FOUND (unknown, removed or
   * never valid) or E_IMAGE_NOT_READY (its image failed; the error says why). A `building`
   * version is returned: the launch waits, pending, until the image is present.
   */
  launchable(id: string): CatalogEntry {
    const entry = this.get(id);
    if (!entry) throw new PoseidonError(Codes.challengeNotFound, `challenge ${id} not found`, { kind: 'input' });
    if (entry.state === 'image-missing') throw new PoseidonError(Codes.imageNotReady, `challenge ${id} cannot be launched: its image is not available (${(entry.error ?? '').split('\n')[0]})`, { kind: 'input' });
    return entry;
  }

  /** Current versions of every challenge that takes launches, sorted by id. */
  list(): CatalogEntry[] {
    return [...this.records.keys()].sort().map((id) => this.get(id)).filter((e): e is CatalogEntry => e !== undefined);
  }

  /** Every invalid file of the applied revision, attributed (`id`) or not. */
  invalid(): InvalidFile[] {
    const attributed = [...this.records.values()].filter((r) => r.issues && r.removedAt === undefined)
      .map((r) => ({ file: r.file ?? '', id: r.id, issues: r.issues ?? [] }));
    return [...attributed, ...this.orphans].sort((a, b) => (a.file < b.file ? -1 : 1));
  }

  /** Invalid files not attributed to any challenge (no readable id, never valid before). */
  unattributed(): InvalidFile[] {
    return [...this.orphans];
  }

  /** The version with this hash, current or not. */
  version(hash: string): CatalogEntry | undefined {
    return this.versions.get(hash);
  }

  /** All records (including removed and never-valid ones), sorted by id. */
  challenges(): ChallengeRecord[] {
    return [...this.records.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
  }

  /** The update policy of `id` (last known when removed). */
  policyOf(id: string): UpdatePolicy {
    return this.records.get(id)?.policy ?? DEFAULT_UPDATE_POLICY;
  }

  /** Versions that should have their image made present (current ones not yet ready). */
  pendingImages(): CatalogEntry[] {
    return this.list().filter((e) => e.state !== 'ready');
  }

  /**
   * Which version `inst` should run now (`reconcile`) or after an owner's `renew`/`restart`;
   * see `decideVersion`. `wait` until the catalog is loaded.
   */
  versionFor(inst: Instance, reason: RolloutReason): VersionPick {
    if (!this.loaded) return { action: 'wait', why: 'the catalog has not been loaded yet' };
    const own = this.versions.get(inst.specHash);
    const running = own && own.spec.id === inst.challenge ? own : undefined;
    const current = this.get(inst.challenge);
    const decision = decideVersion({ policy: this.policyOf(inst.challenge), reason, launched: inst.specHash, running: ref(running), current: ref(current) });
    if (decision.action !== 'run') return decision;
    const entry = this.versions.get(decision.hash);
    return entry ? { ...decision, entry } : { action: 'wait', why: `version ${decision.hash} is not loaded` };
  }

  /**
   * The spec hash `inst` should carry after a `renew` or `restart` (the lead's API hook);
   * undefined keeps the instance's own (also when the request should be refused: the caller
   * checks `get(id)` for removed challenges).
   */
  versionHashFor(inst: Instance, reason: 'renew' | 'restart'): string | undefined {
    const pick = this.versionFor(inst, reason);
    return pick.action === 'run' ? pick.hash : undefined;
  }

  /** Swaps in a loaded revision (see the class comment) and returns what changed. */
  apply(loaded: LoadedSnapshot, now: number): ApplyResult {
    const result: ApplyResult = { revision: loaded.revision, added: [], changed: [], removed: [], invalid: [], fixed: [], unchanged: 0 };
    const next = new Map<string, ChallengeRecord>();
    for (const c of loaded.candidates) next.set(c.spec.id, this.applyCandidate(c, loaded.revision, result));
    this.orphans = [];
    for (const f of loaded.invalid) this.applyInvalid(f, next, loaded.revision, result);
    for (const prev of this.records.values()) {
      if (next.has(prev.id) || !prev.current) continue;
      if (prev.removedAt === undefined) result.removed.push(prev.id);
      next.set(prev.id, { ...prev, issues: undefined, removedAt: prev.removedAt ?? now, revision: prev.removedAt === undefined ? loaded.revision : prev.revision });
    }
    this.records = next;
    this.markSuperseded(now);
    this.revision = loaded.revision;
    this.appliedAt = now;
    return result;
  }

  private applyCandidate(c: Candidate, revision: string, result: ApplyResult): ChallengeRecord {
    const prev = this.records.get(c.spec.id);
    const existing = this.versions.get(c.hash);
    if (existing) {
      // Same content: point at the newest checkout (older snapshots get pruned).
      existing.spec = c.spec;
      existing.file = c.file;
      // The registry setting changed (a version restored from before POSEIDON_REGISTRY): the
      // reference workers use changes with it, and a pushed image must be published again.
      if (existing.image !== c.image) {
        existing.image = c.image;
        existing.state = 'building';
        delete existing.publishError;
        if (c.publish) existing.published = false;
        else delete existing.published;
      }
    } else {
      this.versions.set(c.hash, { spec: c.spec, hash: c.hash, image: c.image, state: 'building', revision, file: c.file, workers: {}, ...(c.publish ? { published: false } : {}) });
    }
    this.fileIds.set(c.file, c.spec.id);
    const policy = c.spec.update ?? DEFAULT_UPDATE_POLICY;
    const fresh = !prev || prev.removedAt !== undefined || !prev.current;
    if (fresh) result.added.push(c.spec.id);
    else if (prev.current !== c.hash) result.changed.push(c.spec.id);
    else if (prev.issues) result.fixed.push(c.spec.id);
    else result.unchanged++;
    const same = !fresh && prev.current === c.hash && !prev.issues && prev.policy === policy;
    return { id: c.spec.id, current: c.hash, file: c.file, policy, revision: same ? prev.revision : revision };
  }

  private applyInvalid(f: InvalidFile, next: Map<string, ChallengeRecord>, revision: string, result: ApplyResult): void {
    const id = f.id ?? this.fileIds.get(f.file);
    if (id === undefined) {
      this.orphans.push(f);
      return;
    }
    const prev = this.records.get(id);
    const taken = next.get(id);
    if (taken?.issues) {
      // Several files claim the id (the loader marks them all): merge their issues.
      next.set(id, { ...taken, issues: [...taken.issues, ...f.issues] });
      return;
    }
    if (taken) {
      // A valid file defines the id now; this one (attributed from an older revision) stands alone.
      this.orphans.push(f);
      return;
    }
    const lastGood = prev && prev.removedAt === undefined ? prev.current : undefined;
    const same = prev && JSON.stringify(prev.issues) === JSON.stringify(f.issues);
    next.set(id, { id, ...(lastGood ? { current: lastGood } : {}), file: f.file, issues: f.issues, policy: prev?.policy ?? DEFAULT_UPDATE_POLICY, revision: same ? prev.revision : revision });
    result.invalid.push(id);
  }

  private markSuperseded(now: number): void {
    const current = new Set([...this.records.values()].filter((r) => r.removedAt === undefined).map((r) => r.current));
    for (const v of this.versions.values()) {
      if (current.has(v.hash)) delete v.supersededAt;
      else v.supersededAt ??= now;
    }
  }

  /**
   * Forgets versions and removed records no instance can still use: superseded (or removed)
   * longer ago than the version's maximum lifetime plus a margin. Returns the forgotten hashes.
   */
  prune(now: number): string[] {
    const gone: string[] = [];
    for (const v of this.versions.values()) {
      if (v.supersededAt !== undefined && now - v.supersededAt > v.spec.ttl.maxSeconds * 1000 + RETENTION_MARGIN_MS) gone.push(v.hash);
    }
    for (const h of gone) this.versions.delete(h);
    for (const r of this.records.values()) {
      if (r.removedAt !== undefined && (!r.current || !this.versions.has(r.current))) this.records.delete(r.id);
    }
    return gone;
  }

  /** Records an image outcome for a version (from the image preparer). */
  markImage(hash: string, state: ChallengeState, workers: Record<string, WorkerImage>, error?: string): void {
    const v = this.versions.get(hash);
    if (!v) return;
    v.state = state;
    v.workers = workers;
    if (error === undefined) delete v.error;
    else v.error = error;
  }

  /** Records the manager's build-and-push outcome of a version (with a registry). */
  markPublished(hash: string, error?: string): void {
    const v = this.versions.get(hash);
    if (!v) return;
    v.published = error === undefined;
    if (error === undefined) delete v.publishError;
    else v.publishError = error;
  }

  /** Serializable state: the head, plus `allVersions()` for the versions. */
  head(): CatalogHead | undefined {
    if (this.revision === undefined) return undefined;
    return { revision: this.revision, appliedAt: this.appliedAt ?? 0, records: this.challenges(), orphans: this.orphans };
  }

  allVersions(): CatalogEntry[] {
    return [...this.versions.values()];
  }

  /** Restores a persisted state (at start-up); images are re-checked by the preparer. */
  restore(head: CatalogHead, versions: readonly CatalogEntry[]): void {
    // States are kept (images rarely vanish); the preparer re-checks current versions at once.
    for (const v of versions) this.versions.set(v.hash, { ...v });
    this.records = new Map(head.records.map((r) => [r.id, r]));
    for (const r of head.records) if (r.file) this.fileIds.set(r.file, r.id);
    this.orphans = head.orphans;
    this.revision = head.revision;
    this.appliedAt = head.appliedAt;
  }
}

function ref(e: CatalogEntry | undefined): VersionRef | undefined {
  return e ? { hash: e.hash, state: e.state, ...(e.error ? { error: e.error } : {}) } : undefined;
}
