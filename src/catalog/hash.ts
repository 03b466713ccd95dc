import { createHash } from 'node:crypto';
import { readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import type { ChallengeSpec } from '../core/challenge.ts';

/** Content hash of a build context: sorted relative paths and their bytes (`.git` skipped). */
export async function contextHash(dir: string): Promise<string> {
  const h = createHash('sha256');
  const walk = async (rel: string): Promise<void> => {
    const entries = (await readdir(path.join(dir, rel), { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const e of entries) {
      // Symlinks are packed as links, never followed, so they never pull in outside content.
      if (e.name === '.git' || e.isSymbolicLink()) continue;
      const child = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(child);
      else {
        const file = path.join(dir, child);
        // The mode counts: an executable bit changes what the image runs.
        h.update(`${child}\0${(await stat(file)).mode & 0o777}\0`).update(await readFile(file)).update('\0');
      }
    }
  };
  await walk('');
  return h.digest('hex');
}

/** Stable JSON: object keys sorted, so equal specs hash equally. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : 1));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * Hash of everything that shapes an instance's container: the spec (minus where it was read
 * from) and, for built images, the build context's content hash.
 */
export function specHash(spec: ChallengeSpec, buildContextHash?: string): string {
  const { source: _source, build, ...rest } = spec;
  const shaped = { ...rest, build: build ? { dockerfile: build.dockerfile, content: buildContextHash } : undefined };
  return createHash('sha256').update(canonical(shaped)).digest('hex').slice(0, 16);
}
