/**
 * The local directory source: fingerprints, and a chokidar watch that is debounced and safe
 * with editors' atomic saves, driving the real sync loop.
 */
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Catalog } from '../../src/catalog/catalog.ts';
import { NoCatalogStore } from '../../src/catalog/catalog-store.ts';
import { everyImageReady } from '../helpers/catalog.ts';
import { CatalogSync } from '../../src/catalog/sync.ts';
import { isPoseidonError } from '../../src/core/errors.ts';
import { DirSource } from '../../src/source/dir-source.ts';
import { memoryLogger } from '../helpers/log.ts';
import { waitFor } from '../helpers/server.ts';
import { challengeYaml } from './git-fixture.ts';

const t = suite('source: local directory');
let dir: string;
const write = (rel: string, text: string) => {
  mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
  writeFileSync(path.join(dir, rel), text);
};

t.before.each(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'poseidon-dir-'));
  write('web/challenge.yaml', challengeYaml('web'));
});
t.after.each(() => rmSync(dir, { recursive: true, force: true }));

t('the revision is a fingerprint that changes with the files only', async () => {
  const src = new DirSource({ dir });
  const a = await src.fetch();
  assert.match(a.revision, /^dir-[0-9a-f]{16}$/);
  assert.equal([a.root, a.path], [dir, '.']);
  assert.is((await src.fetch()).revision, a.revision);
  write('web/challenge.yaml', challengeYaml('web', { name: 'Changed name' }));
  assert.is.not((await src.fetch()).revision, a.revision);
  try {
    await new DirSource({ dir: path.join(dir, 'missing') }).fetch();
    assert.unreachable('should reject');
  } catch (err) {
    assert.ok(isPoseidonError(err, 'E_SOURCE_UNREADABLE'), String(err));
  }
});

t('a burst of edits and an atomic save (temp file renamed over) are one change', async () => {
  const src = new DirSource({ dir, debounceMs: 150 });
  let calls = 0;
  const stop = src.watch(() => { calls++; });
  try {
    await sleep(1000); // chokidar's initial scan (no ready event is exposed)
    for (let i = 0; i < 10; i++) write('web/challenge.yaml', challengeYaml('web', { name: `Edit ${i}` }));
    const tmp = path.join(dir, 'web', '.challenge.yaml.swp');
    writeFileSync(tmp, challengeYaml('web', { name: 'Saved atomically' }));
    renameSync(tmp, path.join(dir, 'web', 'challenge.yaml'));
    await waitFor('a change', async () => (calls > 0 ? true : undefined), 60_000, 20);
    await sleep(400);
    assert.is(calls, 1);
  } finally {
    stop();
  }
});

t('edits reach the catalog through the watcher, without polling', async () => {
  const catalog = new Catalog();
  const images = everyImageReady(catalog);
  const sync = new CatalogSync({ source: new DirSource({ dir, debounceMs: 100 }), catalog, images, store: new NoCatalogStore(), log: memoryLogger(), pollMs: 0, debounceMs: 50 });
  try {
    assert.ok((await sync.start()).ok);
    assert.equal(catalog.list().map((e) => e.spec.id), ['web']);
    await sleep(200);
    write('pwn/challenge.yaml', challengeYaml('pwn'));
    await waitFor('pwn loaded', async () => (catalog.get('pwn') ? true : undefined), 60_000, 50);
    write('web/challenge.yaml', 'id: web\nname: [oops\n');
    await waitFor('web invalid', async () => (catalog.invalid().length === 1 ? true : undefined), 60_000, 50);
    assert.ok(catalog.get('web'), 'the last good version still serves');
    assert.is(sync.status().nextSyncAt, undefined, 'a directory is watched, not polled');
  } finally {
    await sync.stop();
  }
});

t.run();
