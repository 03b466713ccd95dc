/**
 * Files shipped beside the code (the JSON schemas, package.json, the status page's assets), found
 * from the package's root: the nearest directory above this module whose package.json names
 * Poseidon. The same lookup works from `src/` (run through tsx) and from the bundle that
 * `npm run build` writes to `dist/` (one file, so module-relative paths would differ).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const NAME = 'poseidon';
let root: string | undefined;

function packageRoot(): string {
  if (root !== undefined) return root;
  const start = path.dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; dir = path.dirname(dir)) {
    const manifest = path.join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === NAME) return (root = dir);
    if (path.dirname(dir) === dir) throw new Error(`no package.json of ${NAME} above ${start}`);
  }
}

/** `rel` (a path inside the package, `/`-separated; a trailing `/` for a directory) as a file URL. */
export function packageFile(rel: string): URL {
  return new URL(rel, pathToFileURL(`${packageRoot()}/`));
}
