/**
 * Image preparation on the real Docker engine: builds once per content hash, `ready` only once
 * the image exists on every eligible worker, failures kept with their build output.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Catalog, type ChallengeState } from '../../src/catalog/catalog.ts';
import { engineWorker, ImagePreparer, type ImageWorker } from '../../src/catalog/images.ts';
import { DockerRuntime } from '../../src/runtime/docker.ts';
import { haveDocker } from '../helpers/deps.ts';
import { cleanupByLabel, docker, testManagerId } from '../helpers/docker.ts';
import { memoryLogger } from '../helpers/log.ts';
import { tree, yaml, type Tree } from './catalog-fixture.ts';

const t = suite('catalog: images on workers (real engine)');
const enabled = haveDocker();
const mgr = testManagerId();
let fx: Tree;
let catalog: Catalog;
let builds: string[];
let outcomes: [string, ChallengeState][];

/** The local engine, counting builds and pulls. */
function counted(): ImageWorker {
  const engine = engineWorker('local', new DockerRuntime(mgr));
  return {
    ...engine,
    buildImage: async (...args) => { builds.push(args[2]); return engine.buildImage(...args); },
  };
}

function preparer(workers: ImageWorker[] = [counted()]): ImagePreparer {
  return new ImagePreparer({
    workers, managerId: mgr, log: memoryLogger(),
    onOutcome: (hash, state, w, error) => { outcomes.push([catalog.version(hash)!.spec.id, state]); catalog.markImage(hash, state, w, error); },
  });
}

const built = (id: string, ...extra: string[]) => [`id: ${id}`, `name: ${id}`, 'build: src', 'expose: [{ name: web, port: 8080 }]', ...extra, ''].join('\n');

t.before.each(() => {
  fx = tree();
  catalog = new Catalog();
  builds = [];
  outcomes = [];
});
t.after.each(async () => {
  fx.dispose();
  if (enabled) await cleanupByLabel(mgr);
});

const it = (name: string, fn: () => Promise<void>) => t(name, async () => { if (enabled) await fn(); });

it('a build challenge is built once per content hash and is ready only after its image exists', async () => {
  fx.write('web/challenge.yaml', built('web'));
  fx.write('web/src/Dockerfile', 'FROM busybox:1.35\nCOPY run.sh /run.sh\n');
  fx.write('web/src/run.sh', 'echo v1\n');
  await fx.apply(catalog, 'r1');
  const entry = catalog.get('web')!;
  assert.is(entry.state, 'building', 'not launchable before its image exists');
  const images = preparer();
  await images.prepare(catalog.list());
  assert.equal(outcomes, [['web', 'building'], ['web', 'ready']]);
  const info = await docker.getImage(entry.image).inspect();
  assert.is(info.Config.Labels?.['poseidon.managed-by'], mgr);
  assert.equal(catalog.get('web')!.workers, { local: { state: 'present' } });
  // A change outside the build context (the YAML) keeps the tag: nothing is rebuilt.
  fx.write('web/challenge.yaml', built('web', 'env: { A: "1" }'));
  await fx.apply(catalog, 'r2');
  assert.is(catalog.get('web')!.image, entry.image);
  assert.is.not(catalog.get('web')!.hash, entry.hash);
  await images.prepare(catalog.list());
  await images.prepare(catalog.list());
  assert.equal(builds, [entry.image], 'built once');
  // New content, new tag, one more build.
  fx.write('web/src/run.sh', 'echo v2\n');
  await fx.apply(catalog, 'r3');
  await Promise.all([images.prepare(catalog.list()), images.prepare(catalog.list())]);
  assert.is(builds.length, 2, 'concurrent preparations share one build');
  assert.is(catalog.get('web')!.state, 'ready');
});

it('a failing build is image-missing with its build output; other challenges are unaffected', async () => {
  fx.write('bad/challenge.yaml', built('bad'));
  fx.write('bad/src/Dockerfile', 'FROM busybox:1.35\nRUN echo "it went boom" && exit 3\n');
  fx.write('ok/challenge.yaml', yaml('ok'));
  await fx.apply(catalog, 'r1');
  await preparer().prepare(catalog.list());
  const bad = catalog.get('bad')!;
  assert.is(bad.state, 'image-missing');
  assert.match(bad.error ?? '', /worker local: build of poseidon-build\/bad:[0-9a-f]+ failed/);
  assert.match(bad.error ?? '', /it went boom/, 'build output kept');
  assert.is(catalog.get('ok')!.state, 'ready');
});

it('pull policies: a missing image that cannot be pulled is image-missing; always keeps a present image when the registry is down', async () => {
  fx.write('ghost/challenge.yaml', yaml('ghost').replace('busybox:1.35', 'registry.invalid:5000/nope/ghost:1'));
  fx.write('fresh/challenge.yaml', yaml('fresh', 'pull: always'));
  await fx.apply(catalog, 'r1');
  await preparer().prepare(catalog.list(), { repull: true });
  assert.is(catalog.get('ghost')!.state, 'image-missing');
  assert.match(catalog.get('ghost')!.error ?? '', /pull registry\.invalid:5000\/nope\/ghost:1/);
  assert.is(catalog.get('fresh')!.state, 'ready');
});

it('ready means present on every eligible worker', async () => {
  fx.write('web/challenge.yaml', yaml('web'));
  fx.write('sandboxed/challenge.yaml', yaml('sandboxed', 'runtime: gvisor'));
  await fx.apply(catalog, 'r1');
  const empty: ImageWorker = {
    id: 'far', runtimes: ['runc'],
    imageExists: async () => false,
    pullImage: async (ref) => { throw new Error(`docker pull ${ref} failed: no registry here`); },
    buildImage: async () => { throw new Error('no'); },
  };
  await preparer([counted(), empty]).prepare(catalog.list());
  assert.is(catalog.get('web')!.state, 'image-missing');
  assert.match(catalog.get('web')!.error ?? '', /^worker far: docker pull busybox:1\.35 failed/);
  assert.equal(catalog.get('web')!.workers.local, { state: 'present' });
  assert.is(catalog.get('sandboxed')!.state, 'ready', 'the far worker offers no gvisor, so it is not eligible');
  const none = new ImagePreparer({ workers: [empty], managerId: mgr, log: memoryLogger(), onOutcome: (h, s, w, e) => catalog.markImage(h, s, w, e) });
  await none.prepare([catalog.get('sandboxed')!]);
  assert.match(catalog.get('sandboxed')!.error ?? '', /no worker offers runtime gvisor/);
});

t.run();
