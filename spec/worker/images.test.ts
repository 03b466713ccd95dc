/**
 * A worker's images on real engines, reported to a MemoryFleet: present images, local builds
 * (no registry), failures with their cause, work shared between concurrent calls, pruning; and
 * with the rig's real registry, the manager's ImagePublisher builds once and pushes, and a
 * worker on another engine pulls. Ported from spec/catalog/images.test.ts (the single-host
 * preparer). We count builds and pulls only where "done once" is the point.
 */
import { randomBytes } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Catalog } from '../../src/catalog/catalog.ts';
import { ImagePublisher } from '../../src/catalog/images.ts';
import { catalogVersions } from '../../src/catalog/version-source.ts';
import type { ContainerRuntime } from '../../src/core/runtime.ts';
import type { VersionInfo } from '../../src/core/versions.ts';
import type { WorkerImageState } from '../../src/core/worker.ts';
import { DockerRuntime } from '../../src/runtime/docker.ts';
import { MemoryFleet } from '../../src/store/memory-fleet.ts';
import { WorkerImages } from '../../src/worker/images.ts';
import { loadTestCatalog } from '../helpers/catalog.ts';
import { haveDocker } from '../helpers/deps.ts';
import { cleanupByLabel, docker } from '../helpers/docker.ts';
import { dockerFor, testHosts, type TestHost } from '../helpers/hosts.ts';
import { memoryLogger } from '../helpers/log.ts';
import { challengeTree, cleanupEngine, rand, testOwner, until, type ChallengeTree } from '../helpers/worker.ts';

const t = suite('worker: images (real engines)');
const enabled = haveDocker();
const owner = testOwner();
const mgr = owner.managerId;
const WORKER = 'w-img';
const local = new DockerRuntime(owner);
const log = memoryLogger();
let tree: ChallengeTree;
let fleet: MemoryFleet;
/** Engines of the rig this file touched (cleaned by label after). */
const remote = new Set<TestHost>();

type Engine = Pick<ContainerRuntime, 'imageExists' | 'pullImage' | 'buildImage' | 'pushImage'>;
interface Work { builds: string[]; pulls: string[]; pushes: string[] }

/** `rt`, recording each build, pull and push it is asked for. */
function counted(rt: DockerRuntime, work: Work): Engine {
  return {
    imageExists: (ref) => rt.imageExists(ref),
    pullImage: async (ref) => { work.pulls.push(ref); await rt.pullImage(ref); },
    buildImage: async (context, dockerfile, tag, labels, opts) => { work.builds.push(tag); await rt.buildImage(context, dockerfile, tag, labels, opts); },
    pushImage: async (ref, target) => { work.pushes.push(target); await rt.pushImage(ref, target); },
  };
}

function workerImages(rt: Engine, id = WORKER): WorkerImages {
  return new WorkerImages({ workerId: id, runtime: rt, fleet, owner, log });
}

async function register(id: string): Promise<void> {
  await fleet.heartbeat({ id, address: '127.0.0.1', runtimes: ['runc'], labels: {}, capacity: { slots: 1, cpu: 1, memoryBytes: 1 << 30 }, publicKey: 'k', version: 'test', startedAt: Date.now() });
}

/** What `id` reported to the fleet: image reference -> state (without the time). */
async function reports(id = WORKER): Promise<Record<string, Omit<WorkerImageState, 'at'>>> {
  const images = (await fleet.list()).images[id] ?? {};
  return Object.fromEntries(Object.entries(images).map(([ref, { at: _at, ...s }]) => [ref, s]));
}

async function catalogOf(opts: { registry?: string } = {}): Promise<Catalog> {
  return loadTestCatalog(tree.root, opts);
}

async function current(opts: { registry?: string } = {}): Promise<Record<string, VersionInfo>> {
  const versions = await catalogVersions(await catalogOf(opts)).current();
  return Object.fromEntries(versions.map((v) => [v.spec.id, v]));
}

const exists = (d: typeof docker, ref: string) => d.getImage(ref).inspect().then(() => true, () => false);
const built = (id: string, ...extra: string[]) => ['build: src', 'expose: [{ name: web, port: 8080 }]', ...extra];
const pulled = (image: string, ...extra: string[]) => [`image: ${image}`, 'expose: [{ name: web, port: 8080 }]', ...extra];

t.before.each(async () => {
  tree = challengeTree('poseidon-wimg-');
  fleet = new MemoryFleet();
  await register(WORKER);
});
t.after.each(() => tree.dispose());
t.after(async () => {
  if (!enabled) return;
  await cleanupByLabel(mgr);
  for (const h of remote) await cleanupEngine(dockerFor(h), mgr);
});

const it = (name: string, fn: () => Promise<void>) => t(name, async () => { if (enabled) await fn(); });

it('a present image is reported present without pulling', async () => {
  tree.challenge('here', pulled('busybox:1.35'));
  const work: Work = { builds: [], pulls: [], pushes: [] };
  await workerImages(counted(local, work)).sync(Object.values(await current()));
  assert.equal(await reports(), { 'busybox:1.35': { state: 'present' } });
  assert.equal(work, { builds: [], pulls: [], pushes: [] });
});

it('a build context (no registry) is built here, labelled and reported; the same context is never built twice', async () => {
  const id = `web-${rand()}`;
  tree.challenge(id, built(id), { 'src/Dockerfile': 'FROM busybox:1.35\nCOPY run.sh /run.sh\n', 'src/run.sh': 'echo v1\n' });
  const work: Work = { builds: [], pulls: [], pushes: [] };
  const images = workerImages(counted(local, work));
  const v1 = (await current())[id]!;
  assert.match(v1.image, new RegExp(`^poseidon-build/${id}:[0-9a-f]{16}$`));
  assert.is(v1.published, undefined, 'nothing to publish without a registry');
  await images.sync([v1]);
  assert.equal(await reports(), { [v1.image]: { state: 'present' } });
  const info = await docker.getImage(v1.image).inspect();
  assert.equal([info.Config.Labels?.['poseidon.managed-by'], info.Config.Labels?.['poseidon.deployment'], info.Config.Labels?.['poseidon.challenge']], [mgr, owner.deployment, id]);
  // A change outside the build context (the YAML) is a new version with the same image: nothing is rebuilt.
  tree.challenge(id, built(id, 'env: { A: "1" }'));
  const v2 = (await current())[id]!;
  assert.is.not(v2.hash, v1.hash);
  assert.is(v2.image, v1.image);
  await images.sync([v2]);
  assert.is(images.ensure(v2).state, 'present');
  assert.equal(work.builds, [v1.image], 'built once');
  assert.equal(work.pulls, []);
});

it('a failing build reports failed with the failing step; other images are unaffected', async () => {
  const id = `bad-${rand()}`;
  tree.challenge(id, built(id), { 'src/Dockerfile': 'FROM busybox:1.35\nRUN echo "it went boom" && exit 3\n' });
  tree.challenge('fine', pulled('busybox:1.35'));
  const v = await current();
  await workerImages(local).sync(Object.values(v));
  const r = await reports();
  assert.is(r[v[id]!.image]?.state, 'failed');
  const error = r[v[id]!.image]?.error ?? '';
  assert.match(error, new RegExp(`^build of poseidon-build/${id}:[0-9a-f]+ failed: .*non-zero code: 3`));
  assert.match(error, /it went boom/, 'the failing step\'s output is kept');
  assert.equal(r['busybox:1.35'], { state: 'present' });
  assert.not.ok(await exists(docker, v[id]!.image));
});

it('an image that cannot be pulled reports failed; pull: always keeps a present image when the registry is down', async () => {
  tree.challenge('ghost', pulled('127.0.0.1:1/poseidon-test/ghost:1'));
  tree.challenge('fresh', pulled('busybox:1.35', 'pull: always'));
  const work: Work = { builds: [], pulls: [], pushes: [] };
  await workerImages(counted(local, work)).sync(Object.values(await current()));
  const r = await reports();
  assert.is(r['127.0.0.1:1/poseidon-test/ghost:1']?.state, 'failed');
  assert.match(r['127.0.0.1:1/poseidon-test/ghost:1']?.error ?? '', /^docker pull 127\.0\.0\.1:1\/poseidon-test\/ghost:1 failed/);
  assert.equal(r['busybox:1.35'], { state: 'present' }, 'a failed re-pull keeps the local copy');
  assert.equal(work.pulls.sort(), ['127.0.0.1:1/poseidon-test/ghost:1', 'busybox:1.35'], 'pull: always tried the registry');
});

it('two concurrent syncs and an ensure share one build', async () => {
  const id = `slow-${rand()}`;
  tree.challenge(id, built(id), { 'src/Dockerfile': 'FROM busybox:1.35\nRUN sleep 2 && echo slow > /slow\n' });
  const work: Work = { builds: [], pulls: [], pushes: [] };
  const images = workerImages(counted(local, work));
  const v = (await current())[id]!;
  const both = Promise.all([images.sync([v]), images.sync([v])]);
  assert.is(images.ensure(v).state, 'preparing');
  await both;
  assert.is(images.ensure(v).state, 'present');
  assert.equal(work.builds, [v.image], 'built once');
  assert.ok(await exists(docker, v.image));
});

it('ensure never waits: it answers preparing at once and the image becomes present in the background', async () => {
  const id = `bg-${rand()}`;
  tree.challenge(id, built(id), { 'src/Dockerfile': 'FROM busybox:1.35\nRUN sleep 3 && echo bg > /bg\n' });
  const v = (await current())[id]!;
  const images = workerImages(local);
  const first = images.ensure(v);
  assert.not.ok(first instanceof Promise);
  assert.equal(first, { state: 'preparing' });
  assert.not.ok(await exists(docker, v.image), 'answered before the build finished');
  assert.equal(await reports(), { [v.image]: { state: 'preparing' } });
  await until('the background build', async () => images.ensure(v).state === 'present', 120_000, 250);
  assert.ok(await exists(docker, v.image));
  assert.equal(await reports(), { [v.image]: { state: 'present' } });
});

it('sync prunes reports of images no longer current; one current again is reported again', async () => {
  tree.challenge('a', pulled('busybox:1.35'));
  const id = `b-${rand()}`;
  tree.challenge(id, built(id), { 'src/Dockerfile': 'FROM busybox:1.35\nCOPY x /x\n', 'src/x': 'x\n' });
  const v = await current();
  const images = workerImages(local);
  await images.sync([v.a!, v[id]!]);
  assert.equal(Object.keys(await reports()).sort(), ['busybox:1.35', v[id]!.image].sort());
  await images.sync([v.a!]);
  assert.equal(await reports(), { 'busybox:1.35': { state: 'present' } });
  // A revert makes the pruned version current again: placement needs its report back.
  await images.sync([v.a!, v[id]!]);
  assert.equal(await reports(), { 'busybox:1.35': { state: 'present' }, [v[id]!.image]: { state: 'present' } });
});

it('an image removed from the engine behind the worker\'s back is made present again at the next sync', async () => {
  const id = `gone-${rand()}`;
  tree.challenge(id, built(id), { 'src/Dockerfile': 'FROM busybox:1.35\nCOPY y /y\n', 'src/y': 'y\n' });
  const v = (await current())[id]!;
  const images = workerImages(local);
  await images.sync([v]);
  assert.ok(await exists(docker, v.image));
  await docker.getImage(v.image).remove({ force: true });
  await images.sync([v]);
  assert.ok(await exists(docker, v.image), 'rebuilt');
  assert.equal(await reports(), { [v.image]: { state: 'present' } });
});

it('only versions this worker can run are prepared (runtime eligibility)', async () => {
  tree.challenge('plain', pulled('busybox:1.35'));
  tree.challenge('sandboxed', pulled('127.0.0.1:1/poseidon-test/sandboxed:1', 'runtime: gvisor'));
  const v = await current();
  const images = workerImages(local);
  assert.ok(images.eligible(v.plain!));
  assert.not.ok(images.eligible(v.sandboxed!), 'runc only by default');
  await images.sync(Object.values(v));
  assert.equal(await reports(), { 'busybox:1.35': { state: 'present' } }, 'the gVisor version is neither prepared nor reported');
  images.setRuntimes(['runc', 'gvisor']);
  assert.ok(images.eligible(v.sandboxed!));
});

/** The rig's second engine, or undefined when the rig is missing (loud; throws under CI=true). */
function secondHost(): TestHost | undefined {
  const rig = testHosts();
  if (!rig) return undefined;
  const host = rig.hosts.find((h) => h.name === 'w2') ?? rig.hosts[1];
  if (!host) throw new Error('the rig needs at least two hosts');
  remote.add(host);
  return host;
}

it('with a registry: the manager builds once and pushes; a worker on another engine pulls it (preparing before)', async () => {
  const rig = testHosts();
  const w2 = secondHost();
  if (!rig || !w2) return;
  const repo = `poseidon-test-${randomBytes(4).toString('hex')}`;
  const registry = `${rig.registry}/${repo}`;
  tree.challenge('pub', built('pub'), { 'src/Dockerfile': 'FROM busybox:1.35\nCOPY hello /hello\n', 'src/hello': `hello ${repo}\n` });
  const catalog = await catalogOf({ registry });
  const entry = catalog.get('pub')!;
  assert.match(entry.image, new RegExp(`^${registry.replaceAll('.', '\\.')}/pub:([0-9a-f]{16})$`));
  assert.is(entry.published, false);
  const versions = catalogVersions(catalog);
  const work: Work = { builds: [], pulls: [], pushes: [] };
  const far = workerImages(counted(new DockerRuntime(owner, { docker: dockerFor(w2) }), work), 'w2');
  await register('w2');
  // Not published yet: the far worker waits for it (no build there, no pull).
  await far.sync(await versions.current());
  assert.equal(await reports('w2'), { [entry.image]: { state: 'preparing' } });
  assert.equal(work, { builds: [], pulls: [], pushes: [] });
  // The manager's builder (the host engine): two concurrent preparations, one build, one push.
  const built_: Work = { builds: [], pulls: [], pushes: [] };
  const publisher = new ImagePublisher({ builder: counted(local, built_), owner, log, onPublished: (hash, error) => catalog.markPublished(hash, error) });
  await Promise.all([publisher.prepare(catalog.list()), publisher.prepare(catalog.list())]);
  assert.equal([catalog.get('pub')!.published, catalog.get('pub')!.publishError], [true, undefined]);
  assert.equal(built_, { builds: [entry.image], pulls: [], pushes: [entry.image] });
  assert.is((await docker.getImage(entry.image).inspect()).Config.Labels?.['poseidon.managed-by'], mgr);
  const tag = entry.image.slice(entry.image.lastIndexOf(':') + 1);
  const listed = await (await fetch(`http://${rig.registry}/v2/${repo}/pub/tags/list`, { signal: AbortSignal.timeout(10_000) })).json() as { tags?: string[] };
  assert.equal(listed.tags, [tag], 'in the registry');
  // Published: the far worker pulls it from the registry.
  assert.not.ok(await exists(dockerFor(w2), entry.image));
  await far.sync(await versions.current());
  assert.equal(await reports('w2'), { [entry.image]: { state: 'present' } });
  assert.equal(work.pulls, [entry.image]);
  assert.equal(work.builds, [], 'never built on the worker');
  assert.ok(await exists(dockerFor(w2), entry.image));
  // Published versions are not published again.
  await publisher.prepare(catalog.list());
  assert.equal(built_.pushes, [entry.image]);
});

it('with a registry the manager cannot push to: the worker reports failed, naming the publish error', async () => {
  const w2 = secondHost();
  if (!w2) return;
  const registry = `127.0.0.1:1/poseidon-test-${rand()}`;
  tree.challenge('unpub', built('unpub'), { 'src/Dockerfile': 'FROM busybox:1.35\nCOPY z /z\n', 'src/z': `${registry}\n` });
  const catalog = await catalogOf({ registry });
  const publisher = new ImagePublisher({ builder: local, owner, log, onPublished: (hash, error) => catalog.markPublished(hash, error) });
  await publisher.prepare(catalog.list());
  const entry = catalog.get('unpub')!;
  assert.is(entry.published, false);
  assert.match(entry.publishError ?? '', /push 127\.0\.0\.1:1\/poseidon-test-[0-9a-f]+\/unpub:[0-9a-f]+ failed/);
  await register('w2');
  await workerImages(new DockerRuntime(owner, { docker: dockerFor(w2) }), 'w2').sync(await catalogVersions(catalog).current());
  const r = (await reports('w2'))[entry.image];
  assert.is(r?.state, 'failed');
  assert.match(r?.error ?? '', /^the manager could not publish it: docker push 127\.0\.0\.1:1\//);
});

it('without a registry the publisher publishes nothing (workers build locally)', async () => {
  const id = `local-${rand()}`;
  tree.challenge(id, built(id), { 'src/Dockerfile': 'FROM busybox:1.35\nCOPY l /l\n', 'src/l': 'l\n' });
  const catalog = await catalogOf();
  const work: Work = { builds: [], pulls: [], pushes: [] };
  const publisher = new ImagePublisher({ builder: counted(local, work), owner, log, onPublished: (hash, error) => catalog.markPublished(hash, error) });
  await publisher.prepare(catalog.list());
  assert.equal(work, { builds: [], pulls: [], pushes: [] }, 'no push of poseidon-build/... to a default registry');
  assert.equal([catalog.get(id)!.published, catalog.get(id)!.publishError], [undefined, undefined]);
});

t.run();
