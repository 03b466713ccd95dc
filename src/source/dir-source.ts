/**
 * The local directory source, for authors editing challenges on their own machine: the
 * directory is read in place, its revision is a fingerprint of names, sizes, modes and mtimes,
 * and chokidar reports changes (debounced, so an editor's atomic save - write a temp file,
 * rename it over the original - is one change).
 */
import { createHash } from 'node:crypto';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { watch } from 'chokidar';
import { Codes, PoseidonError } from '../core/errors.ts';
import type { Snapshot, Source, SourceInfo } from '../core/source.ts';

/** Entries walked at most per fingerprint; a larger tree is fingerprinted up to here. */
const MAX_ENTRIES = 100_000;
const IGNORED = /(^|[\\/])(\.git|node_modules)([\\/]|$)/;

export interface DirSourceOptions {
  /** Absolute challenges directory. */
  dir: string;
  /** Quiet period before a change is reported (default 300 ms). */
  debounceMs?: number;
}

/** See the module comment. */
export class DirSource implements Source {
  readonly info: SourceInfo;

  constructor(private readonly opts: DirSourceOptions) {
    this.info = { kind: 'dir', path: opts.dir };
  }

  /** A snapshot of the directory as it is now; E_SOURCE_UNREADABLE when it cannot be listed. */
  async fetch(): Promise<Snapshot> {
    try {
      return { revision: await fingerprint(this.opts.dir), root: this.opts.dir, path: '.' };
    } catch (err) {
      const code = String((err as { code?: unknown }).code ?? err);
      throw new PoseidonError(Codes.sourceUnreadable, `challenges directory ${this.opts.dir} cannot be read (${code})`, { kind: 'transient', cause: err });
    }
  }

  /** Watches the directory; `onChange` runs once per burst of events, `debounceMs` after the last. */
  watch(onChange: () => void): () => void {
    const watcher = watch(this.opts.dir, { ignoreInitial: true, atomic: true, ignored: (p: string) => IGNORED.test(p), depth: 16 });
    let timer: NodeJS.Timeout | undefined;
    const fire = (): void => {
      if (timer) clearTimeout(timer);
      timer = setTimeout(onChange, this.opts.debounceMs ?? 300);
      timer.unref();
    };
    watcher.on('all', fire);
    watcher.on('error', () => fire());
    return () => {
      if (timer) clearTimeout(timer);
      void watcher.close();
    };
  }

  async retain(): Promise<void> {
    // The directory is read in place; nothing to free.
  }
}

/** `dir-<hex>`: changes whenever a file is added, removed, resized, re-moded or rewritten. */
export async function fingerprint(dir: string): Promise<string> {
  const h = createHash('sha256');
  let seen = 0;
  const walk = async (rel: string): Promise<void> => {
    const entries = (await readdir(path.join(dir, rel), { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const e of entries) {
      if (++seen > MAX_ENTRIES) return;
      const child = rel ? `${rel}/${e.name}` : e.name;
      if (IGNORED.test(child)) continue;
      const s = await stat(path.join(dir, child)).catch(() => undefined);
      h.update(`${child}\0${s ? `${s.size}:${s.mode}:${s.mtimeMs}` : 'gone'}\0`);
      if (e.isDirectory()) await walk(child);
    }
  };
  await stat(dir);
  await walk('');
  return `dir-${h.digest('hex').slice(0, 16)}`;
}
