import { Catalog } from '../../src/catalog/catalog.ts';
import type { ImagePreparation } from '../../src/catalog/images.ts';
import { loadSnapshot } from '../../src/catalog/load-snapshot.ts';

/**
 * A catalog loaded from a directory of challenge folders, for tests that need specs but no
 * source: one snapshot applied, every version marked ready (as if every worker had its image).
 * Tests of real image preparation use `WorkerImages` and `ImagePublisher` directly.
 */
export async function loadTestCatalog(dir: string, opts: { registry?: string } = {}): Promise<Catalog> {
  const catalog = new Catalog();
  catalog.apply(await loadSnapshot({ revision: 'test', root: dir, path: '.' }, opts), Date.now());
  for (const e of catalog.list()) catalog.markImage(e.hash, 'ready', {});
  return catalog;
}

/** An image preparation that marks every version ready on a worker `local` (what a fleet with every image reports). */
export function everyImageReady(catalog: Catalog): ImagePreparation {
  return { prepare: async (entries) => { for (const e of entries) catalog.markImage(e.hash, 'ready', { local: { state: 'present' } }); } };
}
