/**
 * Atomic writer for the Traefik file provider's watched directory. Traefik reloads on any event
 * for a `.yml`/`.yaml`/`.toml` file, so a half-written file must never carry such a name: write
 * to a hidden `.tmp` name in the same directory (same filesystem, so rename is atomic), fsync,
 * then rename over the target.
 */
import type { Stats } from 'node:fs';
import { mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { Codes, PoseidonError } from '../core/errors.ts';

const WATCHED_EXT = /\.(ya?ml|toml)$/;

interface Written {
  /** The text itself (the caller holds it anyway, as the last rendered file): comparing is cheaper than hashing 5 MB. */
  content: string;
  /** Identity of the file we left on disk, so a later skip needs a stat, not a reread. */
  ino: number;
  size: number;
  mtimeMs: number;
}

function sameFile(a: Written, s: Stats): boolean {
  return a.ino === s.ino && a.size === s.size && a.mtimeMs === s.mtimeMs;
}

async function statOrUndefined(p: string): Promise<Stats | undefined> {
  try {
    return await stat(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * Writes one Traefik dynamic configuration file, atomically and only when its content changes.
 * Calls to {@link TraefikFileWriter.write} on one instance are serialised, so the last call wins.
 */
export class TraefikFileWriter {
  readonly dir: string;
  readonly fileName: string;
  readonly target: string;
  #last: Written | undefined;
  #seq = 0;
  #tail: Promise<unknown> = Promise.resolve();

  /**
   * `fileName` must be a plain file name ending in `.yml`/`.yaml`/`.toml` (what Traefik loads);
   * throws `E_CONFIG_INVALID` otherwise. The directory is created on first write.
   */
  constructor(dir: string, fileName = 'poseidon.yml') {
    if (fileName !== path.basename(fileName) || !WATCHED_EXT.test(fileName) || fileName.startsWith('.')) {
      throw new PoseidonError(Codes.configInvalid, `gateway: bad Traefik file name ${JSON.stringify(fileName)}`, {
        kind: 'terminal',
      });
    }
    this.dir = dir;
    this.fileName = fileName;
    this.target = path.join(dir, fileName);
  }

  /**
   * Writes `content` atomically when it differs from what is on disk; returns true when it wrote,
   * false when the file already held exactly this content. Throws `E_INTERNAL` (terminal) for an
   * empty string (Traefik ignores an empty file and keeps stale routes) and `E_INTERNAL`
   * (transient) when the filesystem fails; no temporary file is left behind either way.
   */
  write(content: string): Promise<boolean> {
    if (typeof content !== 'string' || content.length === 0) {
      return Promise.reject(
        new PoseidonError(Codes.internal, 'gateway: refusing to write an empty Traefik file', { kind: 'terminal' }),
      );
    }
    const run = this.#tail.then(() => this.#write(content));
    this.#tail = run.catch(() => undefined);
    return run;
  }

  async #write(content: string): Promise<boolean> {
    try {
      if (await this.#unchanged(content)) return false;
      await mkdir(this.dir, { recursive: true });
      await this.#replace(content);
      const s = await stat(this.target);
      this.#last = { content, ino: s.ino, size: s.size, mtimeMs: s.mtimeMs };
      return true;
    } catch (err) {
      this.#last = undefined;
      throw new PoseidonError(Codes.internal, 'gateway: writing the Traefik file failed', {
        kind: 'transient',
        cause: err,
        detail: { file: this.target },
      });
    }
  }

  /** True when the target already holds exactly `content`; rereads only if the file moved under us. */
  async #unchanged(content: string): Promise<boolean> {
    const s = await statOrUndefined(this.target);
    if (!s?.isFile()) return false;
    if (this.#last && sameFile(this.#last, s)) return this.#last.content === content;
    const onDisk = await readFile(this.target, 'utf8');
    this.#last = { content: onDisk, ino: s.ino, size: s.size, mtimeMs: s.mtimeMs };
    return onDisk === content;
  }

  async #replace(content: string): Promise<void> {
    const tmp = path.join(this.dir, `.${this.fileName}.${process.pid}.${++this.#seq}.tmp`);
    try {
      // 'wx': never follow or clobber something already sitting at the temp name.
      const fh = await open(tmp, 'wx', 0o644);
      try {
        await fh.writeFile(content, 'utf8');
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, this.target);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    await this.#syncDir();
  }

  /** Makes the rename durable; best effort, as some platforms cannot fsync a directory. */
  async #syncDir(): Promise<void> {
    try {
      const dh = await open(this.dir, 'r');
      try {
        await dh.sync();
      } finally {
        await dh.close();
      }
    } catch {
      // Durability only: the rename itself already happened.
    }
  }
}
