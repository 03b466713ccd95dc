import { Catalog } from '../../src/catalog/catalog.ts';
import { ImagePreparer, type ImageWorker } from '../../src/catalog/images.ts';
import { loadSnapshot } from '../../src/catalog/load-snapshot.ts';
import { memoryLogger } from './log.ts';

/**
 * A catalog loaded from a directory of challenge folders, for tests that need specs but no
 * source: one snapshot applied. Images are made present for real on `prepareOn` (a runtime and
 * the manager id that labels built images); without it every version is simply marked ready.
 */
export async function loadTestCatalog(dir: string, opts: { prepareOn?: { worker: ImageWorker; managerId: string } } = {}): Promise<Catalog> {
  const catalog = new Catalog();
  catalog.apply(await loadSnapshot({ revision: 'test', root: dir, path: '.' }), Date.now());
  if (!opts.prepareOn) {
    for (const e of catalog.list()) catalog.markImage(e.hash, 'ready', {});
    return catalog;
  }
  const preparer = new ImagePreparer({
    workers: [opts.prepareOn.worker], managerId: opts.prepareOn.managerId, log: memoryLogger(),
    onOutcome: (hash, state, workers, error) => catalog.markImage(hash, state, workers, error),
  });
  await preparer.prepare(catalog.list());
  return catalog;
}
