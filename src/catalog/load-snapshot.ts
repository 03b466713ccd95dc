/**
 * Snapshot -> validated candidates: every challenge file of a source snapshot loaded with the
 * spec loader (file:line:col issues), build contexts scanned (content hash; escaping symlinks,
 * oversized contexts refused), and each valid spec given its hash and image reference.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { ChallengeSpec, LoadResult, SpecIssue } from '../core/challenge.ts';
import { Codes, isPoseidonError, PoseidonError } from '../core/errors.ts';
import type { Snapshot } from '../core/source.ts';
import { loadChallengeDir } from '../challenge/load.ts';
import { buildTag, scanContext, specHash } from './hash.ts';

/** A valid challenge of a snapshot, not yet in the catalog. */
export interface Candidate {
  spec: ChallengeSpec;
  hash: string;
  image: string;
  /** The challenge file, relative to the snapshot root. */
  file: string;
  /** Its image is built here and pushed to the registry (workers pull it). */
  publish?: true;
}

/** A challenge file that failed validation; `id` when it could be read. */
export interface InvalidFile {
  file: string;
  id?: string;
  issues: SpecIssue[];
}

export interface LoadedSnapshot {
  revision: string;
  candidates: Candidate[];
  invalid: InvalidFile[];
}

/**
 * Loads `snap`. Bad files never throw (they become `invalid`); rejects with
 * E_SOURCE_UNREADABLE only when the challenges directory itself cannot be listed.
 */
export async function loadSnapshot(snap: Snapshot, opts: { registry?: string } = {}): Promise<LoadedSnapshot> {
  let results: LoadResult[];
  try {
    results = await loadChallengeDir(snap.path, { cwd: snap.root });
  } catch (err) {
    if (!isPoseidonError(err)) throw err;
    throw new PoseidonError(Codes.sourceUnreadable, `revision ${snap.revision.slice(0, 12)}: ${err.message}`, { kind: 'transient', cause: err });
  }
  const out: LoadedSnapshot = { revision: snap.revision, candidates: [], invalid: [] };
  const loaded = await Promise.all(results.map((r) => toCandidate(r, snap.root, opts.registry)));
  for (const item of loaded) {
    if ('spec' in item) out.candidates.push(item);
    else out.invalid.push(item);
  }
  return out;
}

async function toCandidate(r: LoadResult, root: string, registry: string | undefined): Promise<Candidate | InvalidFile> {
  if (!r.ok) return { file: r.file, ...(r.id !== undefined ? { id: r.id } : {}), issues: r.issues };
  const { spec } = r;
  if (!spec.build) return { spec, hash: specHash(spec), image: spec.image ?? '', file: r.file };
  const scan = await scanContext(spec.build.context, root).catch((err: unknown) => ({ ok: false as const, problem: `build context cannot be read (${(err as { code?: string }).code ?? String(err)})` }));
  if (!scan.ok) {
    const line = await lineOf(path.resolve(root, r.file), 'build');
    return { file: r.file, id: spec.id, issues: [{ file: r.file, line, column: line > 0 ? 1 : 0, path: 'build', message: scan.problem }] };
  }
  return {
    spec, hash: specHash(spec, scan.hash), image: buildTag(spec.id, scan.hash, spec.build.dockerfile, registry), file: r.file,
    ...(registry ? { publish: true as const } : {}),
  };
}

/** 1-based line of the top-level `key:` in a YAML file, 0 when not found. */
async function lineOf(file: string, key: string): Promise<number> {
  const text = await readFile(file, 'utf8').catch(() => '');
  const i = text.split('\n').findIndex((l) => l.startsWith(`${key}:`));
  return i + 1;
}
