import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
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

  /** Removes the instance's flag file, if any. */
  async remove(instance: string): Promise<void> {
    await rm(this.pathOf(instance), { force: true });
  }

  private pathOf(instance: string): string {
    if (!INSTANCE_ID_PATTERN.test(instance)) throw new Error(`refusing a flag file for a malformed instance id ${JSON.stringify(instance.slice(0, 40))}`);
    return path.join(this.dir, instance);
  }
}
