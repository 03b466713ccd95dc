import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * Host-side flag files for specs that deliver the flag as a file: one read-only bind mount per
 * instance under `<dataDir>/flags/<instance>`, so the root filesystem can stay read-only.
 */
export class FlagFiles {
  private readonly dir: string;

  constructor(dataDir: string) {
    this.dir = path.join(dataDir, 'flags');
  }

  /** Writes the flag (mode 0444 inside a 0700 directory) and returns the host path. */
  async write(instance: string, flag: string): Promise<string> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const p = path.join(this.dir, instance);
    await writeFile(p, `${flag}\n`, { mode: 0o444 });
    return p;
  }

  /** Removes the instance's flag file, if any. */
  async remove(instance: string): Promise<void> {
    await rm(path.join(this.dir, instance), { force: true });
  }
}
