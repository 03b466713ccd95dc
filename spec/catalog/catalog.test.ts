/**
 * Catalog semantics on real challenge trees: last good versions, removal, collisions, per
 * challenge revisions, versions kept for running instances, and the update policies.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Catalog } from '../../src/catalog/catalog.ts';
import { catalogView } from '../../src/catalog/catalog-view.ts';
import { loadSnapshot } from '../../src/catalog/load-snapshot.ts';
import { instanceOf, tree, yaml, type Tree } from './catalog-fixture.ts';

const t = suite('catalog: apply and versions');
let fx: Tree;
let catalog: Catalog;
const status = { source: { kind: 'dir' as const, path: '.' }, failures: 0, syncing: false };
const stateOf = (id: string) => catalogView(catalog, status).challenges.find((c) => c.id === id);

t.before.each(async () => {
  fx = tree();
  catalog = new Catalog();
  for (const id of ['web', 'pwn', 'crypto']) fx.write(`${id}/challenge.yaml`, yaml(id));
  const first = await fx.apply(catalog, 'r1', 1000);
  assert.equal(first.added.sort(), ['crypto', 'pwn', 'web']);
});
t.after.each(() => fx.dispose());

t('turning a registry on re-addresses built versions and asks for their publication; turning it off undoes it', async () => {
  fx.write('built/challenge.yaml', 'id: built\nname: built\nbuild: .\nexpose: [{ name: web, port: 80 }]\n');
  fx.write('built/Dockerfile', 'FROM busybox:1.35\n');
  await fx.apply(catalog, 'r2');
  const local = catalog.get('built')!;
  assert.match(local.image, /^poseidon-build\/built:/);
  assert.is(local.published, undefined);
  catalog.markImage(local.hash, 'ready', {});
  catalog.apply(await loadSnapshot({ revision: 'r3', root: fx.root, path: '.' }, { registry: '10.0.0.1:5000/ctf' }), 3000);
  const pushed = catalog.get('built')!;
  assert.is(pushed.hash, local.hash, 'the same content: the same version');
  assert.match(pushed.image, /^10\.0\.0\.1:5000\/ctf\/built:/);
  assert.equal([pushed.published, pushed.state], [false, 'building'], 'to be published, not ready until workers pull it');
  catalog.apply(await loadSnapshot({ revision: 'r4', root: fx.root, path: '.' }), 4000);
  assert.equal([catalog.get('built')!.image, catalog.get('built')!.published], [local.image, undefined]);
});

t('nothing is launchable or decidable before the first apply', () => {
  const empty = new Catalog();
  assert.not.ok(empty.loaded);
  assert.is(empty.versionFor(instanceOf('web', 'x'), 'reconcile').action, 'wait');
});

t('a change to one challenge updates only it; the others keep their hash and revision', async () => {
  const before = Object.fromEntries(catalog.list().map((e) => [e.spec.id, e.hash]));
  fx.write('web/challenge.yaml', yaml('web', 'env: { A: "1" }'));
  const r = await fx.apply(catalog, 'r2', 2000);
  assert.equal([r.changed, r.added, r.removed, r.invalid, r.unchanged], [['web'], [], [], [], 2]);
  assert.is.not(catalog.get('web')!.hash, before.web);
  assert.is(catalog.get('web')!.revision, 'r2');
  assert.equal([catalog.get('pwn')!.hash, catalog.get('pwn')!.revision], [before.pwn, 'r1']);
  assert.ok(catalog.version(before.web!), 'the old version stays addressable');
  assert.is(catalog.version(before.web!)!.supersededAt, 2000);
  assert.is(catalog.revision, 'r2');
});

t('a broken file keeps the last good version serving and reports file:line', async () => {
  const good = catalog.get('web')!;
  fx.write('web/challenge.yaml', 'id: web\nname: [unclosed\n');
  const r = await fx.apply(catalog, 'r2');
  assert.equal(r.invalid, ['web']);
  assert.is(catalog.get('web'), good, 'still served');
  const view = stateOf('web')!;
  assert.is(view.state, 'invalid');
  assert.ok(view.launchable);
  assert.is(view.hash, good.hash);
  assert.is(view.revision, 'r1', 'the served version came from r1');
  assert.is(view.errors![0]!.file, 'web/challenge.yaml');
  assert.ok(view.errors![0]!.line >= 2);
  fx.write('web/challenge.yaml', yaml('web'));
  const fixed = await fx.apply(catalog, 'r3');
  assert.equal(fixed.fixed, ['web']);
  assert.is(stateOf('web')!.state, 'building');
});

t('a schema-invalid file with a readable id also keeps the last good version', async () => {
  fx.write('pwn/challenge.yaml', yaml('pwn', 'resources: { memory: lots }'));
  await fx.apply(catalog, 'r2');
  assert.ok(catalog.get('pwn'));
  assert.equal(stateOf('pwn')!.errors!.map((e) => [e.path, e.line]), [['resources.memory', 5]]);
});

t('a deleted challenge takes no launches but its running instances keep their version', async () => {
  const old = catalog.get('crypto')!;
  fx.remove('crypto');
  const r = await fx.apply(catalog, 'r2', 5000);
  assert.equal(r.removed, ['crypto']);
  assert.is(catalog.get('crypto'), undefined, 'no new launches');
  assert.equal(catalog.list().map((e) => e.spec.id), ['pwn', 'web']);
  assert.is(stateOf('crypto')!.state, 'removed');
  assert.not.ok(stateOf('crypto')!.launchable);
  catalog.markImage(old.hash, 'ready', {});
  const pick = catalog.versionFor(instanceOf('crypto', old.hash), 'reconcile');
  assert.equal([pick.action, pick.action === 'run' && pick.hash], ['run', old.hash]);
  // A later apply keeps it removed, and it comes back when re-added.
  assert.equal((await fx.apply(catalog, 'r3')).removed, []);
  fx.write('crypto/challenge.yaml', yaml('crypto'));
  assert.equal((await fx.apply(catalog, 'r4')).added, ['crypto']);
});

t('colliding ids are rejected naming both files; the id keeps its last good version', async () => {
  const good = catalog.get('web')!;
  fx.write('web2/challenge.yaml', yaml('web').replace('name: web', 'name: copy'));
  await fx.apply(catalog, 'r2');
  assert.is(catalog.get('web'), good);
  const errors = stateOf('web')!.errors!;
  assert.is(errors.length, 2);
  assert.ok(errors.every((e) => /duplicate id "web"/.test(e.message)));
  assert.ok(errors.some((e) => e.file === 'web2/challenge.yaml'));
});

t('a new challenge that is invalid from the start takes no launches', async () => {
  fx.write('fresh/challenge.yaml', yaml('fresh', 'bogus: 1'));
  fx.write('nameless/challenge.yaml', ': : :\n');
  await fx.apply(catalog, 'r2');
  assert.is(catalog.get('fresh'), undefined);
  assert.equal([stateOf('fresh')!.state, stateOf('fresh')!.launchable], ['invalid', false]);
  assert.equal(catalog.unattributed().map((f) => f.file), ['nameless/challenge.yaml']);
});

t('a policy-only edit keeps the hash and changes the policy the instances follow', async () => {
  const before = catalog.get('web')!.hash;
  fx.write('web/challenge.yaml', yaml('web', 'update: recreate'));
  await fx.apply(catalog, 'r2');
  assert.is(catalog.get('web')!.hash, before);
  assert.is(catalog.policyOf('web'), 'recreate');
  assert.is(stateOf('web')!.revision, 'r1');
});

t('resizing a warm pool keeps the hash (no rollout) and the current spec carries the new size', async () => {
  const before = catalog.get('web')!.hash;
  for (const [rev, size] of [['r2', 2], ['r3', 5]] as const) {
    fx.write('web/challenge.yaml', yaml('web', `pool: { size: ${size} }`, 'flag: { file: /flag.txt }'));
    await fx.apply(catalog, rev);
    assert.equal(catalog.get('web')!.spec.pool, { size }, rev);
  }
  const withFile = catalog.get('web')!.hash;
  assert.is.not(withFile, before, 'the flag moving to a file is a new version');
  fx.write('web/challenge.yaml', yaml('web', 'pool: { size: 9 }', 'flag: { file: /flag.txt }'));
  await fx.apply(catalog, 'r4');
  assert.is(catalog.get('web')!.hash, withFile, 'the size alone is not');
});

t('update policies: keep stays (and a crash recreates its version), restart and recreate move', async () => {
  const v1 = catalog.get('web')!.hash;
  catalog.markImage(v1, 'ready', {});
  fx.write('web/challenge.yaml', yaml('web', 'env: { V: "2" }'));
  await fx.apply(catalog, 'r2');
  const v2 = catalog.get('web')!.hash;
  const inst = instanceOf('web', v1);
  const pick = (reason: 'reconcile' | 'renew' | 'restart') => {
    const p = catalog.versionFor(inst, reason);
    return p.action === 'run' ? p.hash : p.action;
  };
  assert.is(pick('reconcile'), v1);
  assert.is(pick('restart'), v1, 'the new version is still building');
  catalog.markImage(v2, 'ready', {});
  assert.is(pick('restart'), v2);
  assert.is(pick('renew'), v1);
  assert.is(catalog.versionHashFor(inst, 'renew'), v1);
  fx.write('web/challenge.yaml', yaml('web', 'env: { V: "2" }', 'update: on-renew'));
  await fx.apply(catalog, 'r3');
  assert.is(pick('renew'), v2);
  assert.is(pick('reconcile'), v1);
  fx.write('web/challenge.yaml', yaml('web', 'env: { V: "2" }', 'update: recreate'));
  await fx.apply(catalog, 'r4');
  assert.is(pick('reconcile'), v2);
});

t('superseded versions are forgotten once no instance can still use them', async () => {
  const v1 = catalog.get('web')!.hash;
  fx.write('web/challenge.yaml', yaml('web', 'ttl: { default: 1m, max: 2m }'));
  await fx.apply(catalog, 'r2', 10_000);
  assert.equal(catalog.prune(10_000 + 7200_000), [], 'the 2 h maximum lifetime of v1 plus a margin');
  assert.equal(catalog.prune(10_000 + 7200_000 + 11 * 60_000), [v1]);
  assert.is(catalog.version(v1), undefined);
  fx.remove('pwn');
  await fx.apply(catalog, 'r3', 20_000);
  catalog.prune(20_000 + 3 * 3600_000);
  assert.is(stateOf('pwn'), undefined, 'removed records go with their last version');
});

t('head and versions round-trip through JSON (the persisted form)', async () => {
  fx.write('web/challenge.yaml', 'id: web\nname: [broken\n');
  fx.remove('crypto');
  await fx.apply(catalog, 'r2');
  const copy = new Catalog();
  copy.restore(JSON.parse(JSON.stringify(catalog.head())), JSON.parse(JSON.stringify(catalog.allVersions())));
  assert.equal(catalogView(copy, status), catalogView(catalog, status));
  assert.is(copy.get('web')!.hash, catalog.get('web')!.hash);
  // File -> id attribution survives: the broken file still belongs to web.
  fx.write('web/challenge.yaml', 'id: web\nname: [still broken\n');
  assert.equal((await fx.apply(copy, 'r3')).invalid, ['web']);
});

t.run();
