/**
 * The status page's static files (`src/status/assets/*.js|css`), read once at start and served
 * from memory at `/status/<name>` with an ETag. Plain files, no build step: the browser loads
 * `app.js` as an ES module and it imports its siblings.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { packageFile } from '../package-files.ts';

export interface Asset {
  type: string;
  body: Buffer;
  etag: string;
}

const TYPES: Record<string, string> = { '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.png': 'image/png' };

/** Every asset by file name (`app.js`, `app.css`, …). Throws when the directory is missing. */
export function loadAssets(dir = packageFile('src/status/assets/')): Map<string, Asset> {
  const out = new Map<string, Asset>();
  for (const name of readdirSync(dir).sort()) {
    const type = TYPES[name.slice(name.lastIndexOf('.'))];
    if (!type || !/^[a-z0-9-]+\.[a-z]+$/.test(name)) continue;
    const body = readFileSync(new URL(name, dir));
    out.set(name, { type, body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` });
  }
  return out;
}
