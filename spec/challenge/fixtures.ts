/** Paths of the challenge fixtures and temp-dir helpers shared by the spec/ tests. */
import { mkdtemp, realpath, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** `spec/fixtures/challenges`, absolute. */
export const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'challenges');
export const VALID = path.join(FIXTURES, 'valid');
export const INVALID = path.join(FIXTURES, 'invalid');

/** Runs `fn` with a fresh temp directory (real path), removed afterwards even on failure. */
export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await realpath(await mkdtemp(path.join(os.tmpdir(), 'poseidon-spec-')));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A minimal valid challenge YAML with the given id (image-based). */
export function minimalYaml(id: string): string {
  return `id: ${id}\nname: ${id}\nimage: busybox:1.35\nexpose: [{ name: web, port: 80 }]\n`;
}
