import { rmSync } from 'node:fs';
import { cleanupByLabel } from './docker.ts';
import { cleanupRedisPrefix } from './redis.ts';
import type { ServeProcess } from './server.ts';

/**
 * Removes everything an end-to-end file owns, even after a failed test: the serve process,
 * every container/network/image labelled with its manager id, its Redis prefix
 * (`<managerId>:`) and its temp directory.
 */
export async function teardownE2e(opts: { server: ServeProcess | undefined; managerId: string; work: string }): Promise<void> {
  await opts.server?.stop();
  await cleanupByLabel(opts.managerId);
  await cleanupRedisPrefix(`${opts.managerId}:`);
  rmSync(opts.work, { recursive: true, force: true });
}
