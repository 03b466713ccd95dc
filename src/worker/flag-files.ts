import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { INSTANCE_ID_PATTERN } from '../core/naming.ts';

/**
 * Host-side flag files for specs that deliver the flag as a file: one read-only bind mount per
 * instance under `<dataDir>/flags/<instance>`, so the root filesystem can stay read-only.
 * Names come only from validated instance ids: anything else is refused before any path is
 * built (an id read from a Docker label could otherwise name `../../victim`).
 */
export class FlagFiles {
  private readonly dir: string;

  constructor(dataDir: string) {
    this.dir = path.join(dataDir, 'flags');
  }

  /**
   * Writes the flag (mode 0444 inside a 0700 directory) and returns the host path. Written to a
   * temporary name and renamed over the old file, so a second write (a restart) works without
   * root too: the old file is read-only, its directory is not. A container's bind mount keeps
   * the inode it started with; each new container mounts the current file.
   */
  async write(instance: string, flag: string): Promise<string> {
    const p = this.pathOf(instance);
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const tmp = `${p}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      await writeFile(tmp, `${flag}\n`, { mode: 0o444, flag: 'wx' });
      await rename(tmp, p);
    } finally {
      await rm(tmp, { force: true });
    }
    return p;
  }

  /**
   * Makes the file a running container mounted hold `flag`, in place (the same inode: a bind
   * mount of a file keeps the inode it started with, so a rename would not reach the container).
   * For a claimed warm-pool member, whose container started before anyone owned it. Returns
   * whether it wrote (false: the file held the flag already). A missing file is written anew.
   */
  async rewrite(instance: string, flag: string): Promise<boolean> {
    const p = this.pathOf(instance);
    const current = await readFile(p, 'utf8').catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : Promise.reject(err)));
    if (current === `${flag}\n`) return false;
    if (current === undefined) {
      await this.write(instance, flag);
      return true;
    }
    await chmod(p, 0o600);
    try {
      await writeFile(p, `${flag}\n`);
    } finally {
      await chmod(p, 0o444);
    }
    return true;
  }

  /** Removes the instance's flag file, if any. */
  async remove(instance: string): Promise<void> {
    await rm(this.pathOf(instance), { force: true });
  }

  private pathOf(instance: string): string {
    if (!INSTANCE_ID_PATTERN.test(instance)) throw new Error(`refusing a flag file for a malformed instance id ${JSON.stringify(instance.slice(0, 40))}`);
    return path.join(this.dir, instance);
  }
}
