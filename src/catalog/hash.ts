import { createHash } from 'node:crypto';
import { lstat, readFile, readdir, readlink, realpath } from 'node:fs/promises';
import path from 'node:path';
import type { ChallengeSpec } from '../core/challenge.ts';

/** Largest build context accepted (bytes of regular files). */
export const MAX_CONTEXT_BYTES = 256 * 1024 * 1024;
/** Most files a build context may hold. */
export const MAX_CONTEXT_FILES = 20_000;

/** The outcome of scanning a build context: its content hash, or why it is refused. */
export type ContextScan = { ok: true; hash: string; bytes: number; files: number } | { ok: false; problem: string };

/**
 * Hashes a build context (sorted relative paths, modes and bytes; `.git` skipped; symlinks by
 * their target text, never followed) and refuses contexts that would ship what the repository
 * does not hold: symlinks resolving outside `repoRoot`, or more than the size and file limits.
 * Problems name the offending file relative to `repoRoot`.
 */
export async function scanContext(dir: string, repoRoot: string): Promise<ContextScan> {
  const h = createHash('sha256');
  const realRoot = await realpath(repoRoot);
  let bytes = 0;
  let files = 0;
  const shown = (rel: string): string => path.relative(repoRoot, path.join(dir, rel));
  const walk = async (rel: string): Promise<string | undefined> => {
    const entries = (await readdir(path.join(dir, rel), { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const e of entries) {
      if (e.name === '.git') continue;
      const child = rel ? `${rel}/${e.name}` : e.name;
      const abs = path.join(dir, child);
      if (++files > MAX_CONTEXT_FILES) return `build context holds more than ${MAX_CONTEXT_FILES} files (at ${shown(child)})`;
      if (e.isSymbolicLink()) {
        const problem = await symlinkProblem(abs, realRoot, shown(child));
        if (problem) return problem;
        h.update(`${child}\0link\0${await readlinkText(abs)}\0`);
      } else if (e.isDirectory()) {
        const problem = await walk(child);
        if (problem) return problem;
      } else if (e.isFile()) {
        const s = await lstat(abs);
        bytes += s.size;
        if (bytes > MAX_CONTEXT_BYTES) return `build context is larger than ${MAX_CONTEXT_BYTES / 1024 / 1024} MiB (at ${shown(child)}, ${s.size} bytes)`;
        // The mode counts: an executable bit changes what the image runs.
        h.update(`${child}\0${s.mode & 0o777}\0`).update(await readFile(abs)).update('\0');
      } else {
        return `${shown(child)} is not a regular file, directory or symlink`;
      }
    }
    return undefined;
  };
  const problem = await walk('');
  return problem ? { ok: false, problem } : { ok: true, hash: h.digest('hex'), bytes, files };
}

async function symlinkProblem(abs: string, realRoot: string, shown: string): Promise<string | undefined> {
  const target = await realpath(abs).catch(() => undefined);
  // A dangling link ships as a link and breaks only the build that uses it; an escaping one is refused.
  const link = await readlinkText(abs);
  const lexical = path.resolve(path.dirname(abs), link);
  const inside = (p: string): boolean => p === realRoot || p.startsWith(`${realRoot}${path.sep}`);
  if (target !== undefined ? inside(target) : !path.isAbsolute(link) && inside(lexical)) return undefined;
  return `${shown} is a symlink to ${link}, which leaves the repository`;
}

function readlinkText(abs: string): Promise<string> {
  return readlink(abs);
}

/** Content hash of a build context (see `scanContext`); throws when the context is refused. */
export async function contextHash(dir: string): Promise<string> {
  const scan = await scanContext(dir, dir);
  if (!scan.ok) throw new Error(scan.problem);
  return scan.hash;
}

/** Stable JSON: object keys sorted, so equal specs hash equally. */
export function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : 1));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Spec fields that never shape a container: where it was read from, how updates roll out, the warm pool's size. */
const NOT_SHAPING = new Set(['source', 'update', 'pull', 'pool']);

/**
 * The spec as it shapes an instance's container: everything but `NOT_SHAPING`, with the build
 * reduced to its Dockerfile and content hash (absolute paths differ between checkouts).
 */
export function shapingFields(spec: ChallengeSpec, buildContextHash?: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(spec)) if (!NOT_SHAPING.has(k)) out[k] = v;
  if (spec.build) out.build = { dockerfile: spec.build.dockerfile, content: buildContextHash };
  return out;
}

/**
 * Hash of everything that shapes an instance's container: the spec (minus `NOT_SHAPING`) and,
 * for built images, the build context's content hash. A policy-only edit keeps the hash.
 */
export function specHash(spec: ChallengeSpec, buildContextHash?: string): string {
  return createHash('sha256').update(canonical(shapingFields(spec, buildContextHash))).digest('hex').slice(0, 16);
}

/**
 * Tag of a built image: the same context and Dockerfile always give the same tag, on every
 * worker; with a registry (`host:port/path`) it is the reference pushed there.
 */
export function buildTag(id: string, contextContentHash: string, dockerfile: string, registry?: string): string {
  const h = createHash('sha256').update(`${contextContentHash}\0${dockerfile}`).digest('hex').slice(0, 16);
  return registry ? `${registry.replace(/\/+$/, '')}/${id}:${h}` : `poseidon-build/${id}:${h}`;
}
