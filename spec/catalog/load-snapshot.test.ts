/**
 * Loading a snapshot refuses what a repository must not smuggle in: symlinks out of it, `..`
 * paths, huge build contexts; and gives built images content-derived tags.
 */
import { mkdirSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { buildTag, MAX_CONTEXT_BYTES, scanContext } from '../../src/catalog/hash.ts';
import { loadSnapshot } from '../../src/catalog/load-snapshot.ts';
import { tree, yaml, type Tree } from './catalog-fixture.ts';

const t = suite('catalog: loading snapshots');
let fx: Tree;
t.before.each(() => { fx = tree(); });
t.after.each(() => fx.dispose());

const load = () => loadSnapshot({ revision: 'r', root: fx.root, path: '.' });
const built = (id: string) => [`id: ${id}`, `name: ${id}`, 'build: src', 'expose: [{ name: web, port: 8080 }]', ''].join('\n');

t('a symlink in a build context that leaves the repository is refused, naming the file and the build line', async () => {
  fx.write('web/challenge.yaml', built('web'));
  fx.write('web/src/Dockerfile', 'FROM busybox:1.35\n');
  symlinkSync('/etc/passwd', path.join(fx.root, 'web/src/passwd'));
  symlinkSync('../../../../../../etc', path.join(fx.root, 'web/src/etc'));
  const { candidates, invalid } = await load();
  assert.is(candidates.length, 0);
  const [issue] = invalid[0]!.issues;
  assert.equal([invalid[0]!.id, issue!.file, issue!.line, issue!.path], ['web', 'web/challenge.yaml', 3, 'build']);
  assert.match(issue!.message, /web\/src\/etc is a symlink to .*etc, which leaves the repository/);
});

t('symlinks inside the repository are fine and hashed by their target', async () => {
  fx.write('web/challenge.yaml', built('web'));
  fx.write('web/src/Dockerfile', 'FROM busybox:1.35\n');
  fx.write('shared/banner.txt', 'hi');
  symlinkSync('../../shared/banner.txt', path.join(fx.root, 'web/src/banner.txt'));
  const first = await load();
  assert.is(first.candidates.length, 1, JSON.stringify(first.invalid));
  const a = await scanContext(path.join(fx.root, 'web/src'), fx.root);
  writeFileSync(path.join(fx.root, 'shared/banner.txt'), 'changed');
  const b = await scanContext(path.join(fx.root, 'web/src'), fx.root);
  assert.ok(a.ok && b.ok && a.hash === b.hash, 'links are shipped as links, never followed');
});

t('challenge files and build contexts outside the challenges directory, and .. paths, are refused', async () => {
  fx.write('outside/challenge.yaml', yaml('outside'));
  fx.write('outside/Dockerfile', 'FROM busybox:1.35\n');
  mkdirSync(path.join(fx.root, 'ch/linked'), { recursive: true });
  symlinkSync('../../outside/challenge.yaml', path.join(fx.root, 'ch/linked/challenge.yaml'));
  fx.write('ch/dots/challenge.yaml', [`id: dots`, 'name: d', 'build: ../../outside', 'expose: [{ name: web, port: 80 }]', ''].join('\n'));
  const { candidates, invalid } = await loadSnapshot({ revision: 'r', root: fx.root, path: 'ch' });
  assert.is(candidates.length, 0);
  const byFile = Object.fromEntries(invalid.map((f) => [f.file, f.issues.map((i) => i.message).join('; ')]));
  assert.match(byFile['ch/linked/challenge.yaml'] ?? '', /outside the challenges directory/);
  assert.match(byFile['ch/dots/challenge.yaml'] ?? '', /outside the challenges directory/);
});

t('a build context over the size limit is refused naming the file', async () => {
  fx.write('big/challenge.yaml', built('big'));
  fx.write('big/src/Dockerfile', 'FROM busybox:1.35\n');
  fx.write('big/src/blob.bin', '');
  truncateSync(path.join(fx.root, 'big/src/blob.bin'), MAX_CONTEXT_BYTES + 1); // sparse: instant
  const { invalid } = await load();
  assert.match(invalid[0]!.issues[0]!.message, /larger than 256 MiB \(at big\/src\/blob\.bin/);
});

t('built images are tagged by content: same context, same tag; another Dockerfile, another tag', async () => {
  for (const id of ['a', 'b']) {
    fx.write(`${id}/challenge.yaml`, built(id));
    fx.write(`${id}/src/Dockerfile`, 'FROM busybox:1.35\nCOPY . /app\n');
    fx.write(`${id}/src/run.sh`, 'echo same\n');
  }
  const { candidates } = await load();
  const [a, b] = candidates;
  assert.is(a!.image.split(':')[1], b!.image.split(':')[1], 'same content hash');
  assert.match(a!.image, /^poseidon-build\/a:[0-9a-f]{16}$/);
  assert.is.not(buildTag('a', 'x', 'Dockerfile'), buildTag('a', 'x', 'Dockerfile.prod'));
  fx.write('a/src/run.sh', 'echo different\n');
  const again = await load();
  assert.is.not(again.candidates[0]!.image, a!.image);
  assert.is.not(again.candidates[0]!.hash, a!.hash);
  assert.is(again.candidates[1]!.hash, b!.hash);
});

t.run();
