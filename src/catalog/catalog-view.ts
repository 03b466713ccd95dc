/**
 * The catalog as the API shows it (`GET /v1/catalog`): per challenge its state - `ready`,
 * `building`, `image-missing`, `invalid` (its newest file; a last good version may still serve)
 * or `removed` - with the revision and hash it serves and file:line errors. No secrets: specs'
 * env values are not shown here.
 */
import type { SpecIssue } from '../core/challenge.ts';
import type { Catalog, ChallengeRecord, WorkerImage } from './catalog.ts';
import type { SyncStatus } from './sync-status.ts';

export type ChallengeStatus = 'ready' | 'building' | 'image-missing' | 'invalid' | 'removed';

export interface ChallengeView {
  id: string;
  name?: string;
  state: ChallengeStatus;
  /** Revision the served version came from (or where the record last changed, when none serves). */
  revision: string;
  /** Hash of the served version. */
  hash?: string;
  /** True when new instances can be requested now (a `building` one waits in the queue). */
  launchable: boolean;
  policy: string;
  image?: string;
  file?: string;
  errors?: SpecIssue[];
  /** Image failure with build output, when `image-missing`. */
  imageError?: string;
  workers?: Record<string, WorkerImage>;
  removedAt?: string;
}

export interface CatalogView extends SyncStatus {
  challenges: ChallengeView[];
  /** Invalid files that cannot be attributed to a challenge id. */
  invalid: { file: string; errors: SpecIssue[] }[];
}

/** Builds the view from the catalog and the sync status. */
export function catalogView(catalog: Catalog, status: SyncStatus): CatalogView {
  return {
    ...status,
    challenges: catalog.challenges().map((r) => challengeView(catalog, r)),
    invalid: catalog.unattributed().map((f) => ({ file: f.file, errors: f.issues })),
  };
}

function challengeView(catalog: Catalog, r: ChallengeRecord): ChallengeView {
  const served = r.current ? catalog.version(r.current) : undefined;
  const state: ChallengeStatus = r.removedAt !== undefined ? 'removed' : r.issues || !served ? 'invalid' : served.state;
  const view: ChallengeView = {
    id: r.id,
    state,
    revision: served?.revision ?? r.revision,
    launchable: r.removedAt === undefined && served !== undefined && served.state !== 'image-missing',
    policy: r.policy,
  };
  if (served) Object.assign(view, { name: served.spec.name, hash: served.hash, image: served.image, workers: served.workers });
  if (r.file ?? served?.file) view.file = r.file ?? served?.file;
  if (r.issues) view.errors = r.issues;
  if (served?.error) view.imageError = served.error;
  if (r.removedAt !== undefined) view.removedAt = new Date(r.removedAt).toISOString();
  return view;
}
