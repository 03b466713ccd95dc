/**
 * The sync loop against a real git remote (a bare repository and a clone that pushes), and the
 * persisted catalog against a real Redis.
 */
import { mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Catalog } from '../../src/catalog/catalog.ts';
import { NoCatalogStore, RedisCatalogStore, type CatalogStore } from '../../src/catalog/catalog-store.ts';
import { catalogView } from '../../src/catalog/catalog-view.ts';
import { everyImageReady } from '../helpers/catalog.ts';
import { CatalogSync } from '../../src/catalog/sync.ts';
import type { Source } from '../../src/core/source.ts';
import { GitSource } from '../../src/source/git-source.ts';
import { haveRedis, REDIS_URL } from '../helpers/deps.ts';
import { memoryLogger } from '../helpers/log.ts';
import { cleanupRedisPrefix } from '../helpers/redis.ts';
import { waitFor } from '../helpers/server.ts';
import { challengeYaml, gitFixture, TEST_GIT_ENV, type GitFixture } from '../source/git-fixture.ts';

const t = suite('catalog: sync from git');
let fx: GitFixture;
let workdir: string;
let fetches: number;
const syncs: CatalogSync[] = [];


function counting(source: Source): Source {
  return { info: source.info, fetch: (o) => { fetches++; return source.fetch(o); }, retain: (r) => source.retain(r) };
}

function setup(opts: { url?: string; pollMs?: number; store?: CatalogStore; live?: Record<string, string[]> } = {}) {
  const catalog = new Catalog();
  // Every image is present: these tests are about the source (spec/worker/images.test.ts uses the engine).
  const images = everyImageReady(catalog);
  const source = counting(new GitSource({ url: opts.url ?? fx.remote, branch: 'main', path: 'challenges', workdir, env: TEST_GIT_ENV, timeoutMs: 10_000 }));
  const log = memoryLogger();
  const changed: string[][] = [];
  const sync = new CatalogSync({
    source, catalog, images, store: opts.store ?? new NoCatalogStore(), log, pollMs: opts.pollMs ?? 0, debounceMs: 50,
    live: async () => opts.live ?? {}, onChanged: (ids) => changed.push(ids),
  });
  syncs.push(sync);
  return { catalog, sync, log, changed, view: () => catalogView(catalog, sync.status()) };
}

t.before.each(() => {
  fx = gitFixture();
  workdir = mkdtempSync(path.join(tmpdir(), 'poseidon-sync-'));
  fetches = 0;
  for (const id of ['web', 'pwn', 'crypto']) fx.write(`challenges/${id}/challenge.yaml`, challengeYaml(id));
  fx.write('README.md', 'the challenge repository');
  fx.push('initial');
});
t.after.each(async () => {
  for (const s of syncs.splice(0)) await s.stop();
  fx.dispose();
  rmSync(workdir, { recursive: true, force: true });
});

t('the first sync loads every challenge at the pushed commit', async () => {
  const { catalog, sync, view } = setup();
  const first = await sync.start();
  assert.ok(first.ok, first.error);
  assert.is(first.revision, fx.head());
  assert.equal(catalog.list().map((e) => e.spec.id), ['crypto', 'pwn', 'web']);
  await sync.imagesSettled();
  const v = view();
  assert.is(v.revision, fx.head());
  assert.ok(v.syncedAt);
  assert.equal(v.lastSync?.changes?.added.sort(), ['crypto', 'pwn', 'web']);
  assert.ok(v.challenges.every((c) => c.state === 'ready' && c.revision === fx.head() && c.file === `challenges/${c.id}/challenge.yaml`));
  assert.equal(v.source, { kind: 'git', url: fx.remote, branch: 'main', path: 'challenges' });
  const again = await sync.syncNow();
  assert.ok(again.ok && again.unchanged, 'a sync without a push changes nothing');
});

t('a push that changes one challenge: the plan shows it first, then the sync updates only it', async () => {
  const { catalog, sync, changed } = setup({ live: { web: ['x', 'y'] } });
  await sync.start();
  const r1 = fx.head();
  const before = Object.fromEntries(catalog.list().map((e) => [e.spec.id, e.hash]));
  fx.write('challenges/web/challenge.yaml', challengeYaml('web', { env: '{ MODE: hard }', update: 'recreate' }));
  const r2 = fx.push('harder web');
  const plan = await sync.plan();
  assert.equal([plan.from, plan.to, plan.unchanged], [r1, r2, 2]);
  assert.equal(plan.changes.map((c) => [c.change, c.id, c.fields, c.instances]), [['changed', 'web', ['env', 'update'], 2]]);
  assert.match(plan.changes[0]!.effect ?? '', /2 running instances: replaced/);
  assert.is(catalog.revision, r1, 'planning applies nothing');
  const result = await sync.syncNow();
  assert.equal(result.changes?.changed, ['web']);
  assert.is(catalog.get('web')!.revision, r2);
  assert.is(catalog.get('pwn')!.hash, before.pwn);
  assert.is(catalog.get('pwn')!.revision, r1);
  assert.equal(changed.at(-1), ['web']);
});

t('a push that breaks one YAML keeps its last good version and reports file:line', async () => {
  const { catalog, sync, view } = setup();
  await sync.start();
  const good = catalog.get('pwn')!.hash;
  fx.write('challenges/pwn/challenge.yaml', 'id: pwn\nname: Pwn\nexpose: [{ name: web, port: 99999 }]\nimage: busybox:1.35\n');
  fx.push('typo');
  const plan = await sync.plan();
  assert.equal(plan.changes.map((c) => [c.change, c.id, c.keeps]), [['invalid', 'pwn', good]]);
  const r = await sync.syncNow();
  assert.ok(r.ok);
  assert.is(catalog.get('pwn')!.hash, good, 'still serving the last good version');
  const pwn = view().challenges.find((c) => c.id === 'pwn')!;
  assert.equal([pwn.state, pwn.launchable, pwn.hash], ['invalid', true, good]);
  assert.equal([pwn.errors![0]!.file, pwn.errors![0]!.line, pwn.errors![0]!.path], ['challenges/pwn/challenge.yaml', 3, 'expose.0.port']);
  assert.equal(view().challenges.filter((c) => c.state === 'ready').map((c) => c.id), ['crypto', 'web']);
});

t('a push that deletes a challenge stops its launches', async () => {
  const { catalog, sync, view } = setup({ live: { crypto: ['h'] } });
  await sync.start();
  fx.remove('challenges/crypto');
  fx.push('retire crypto');
  const plan = await sync.plan();
  assert.equal(plan.changes.map((c) => [c.change, c.id, c.instances]), [['removed', 'crypto', 1]]);
  await sync.syncNow();
  assert.is(catalog.get('crypto'), undefined);
  assert.equal(view().challenges.find((c) => c.id === 'crypto')!.state, 'removed');
});

t('an unreachable remote keeps the last good revision, backs off and recovers by itself', async () => {
  const { catalog, sync, log } = setup({ pollMs: 60_000 });
  await sync.start();
  const served = catalog.revision;
  renameSync(fx.remote, `${fx.remote}.away`);
  const failed = await sync.syncNow();
  assert.equal([failed.ok, failed.code], [false, 'E_GIT_UNREACHABLE']);
  assert.is(catalog.revision, served);
  assert.equal(catalog.list().length, 3);
  const status = sync.status();
  assert.is(status.failures, 1);
  assert.ok(Date.parse(status.nextSyncAt!) - Date.now() < 2000, 'first retry after about a second, not the poll period');
  assert.ok(log.lines.some((l) => l.msg.includes('keeping the last good revision')));
  renameSync(`${fx.remote}.away`, fx.remote);
  fx.write('challenges/new/challenge.yaml', challengeYaml('new'));
  const head = fx.push();
  await waitFor('retry succeeds', async () => (catalog.revision === head && sync.status().lastSync?.ok ? true : undefined), 60_000, 50);
  assert.is(sync.status().failures, 0);
});

t('a force-push is held at the served revision until an admin forces it', async () => {
  const { catalog, sync, view } = setup();
  await sync.start();
  const served = catalog.revision;
  fx.git('commit', '-q', '--amend', '-m', 'rewritten history');
  const rewritten = fx.push('ignored');
  const held = await sync.syncNow();
  assert.equal([held.ok, held.code, held.revision], [false, 'E_GIT_REWRITE', rewritten]);
  assert.is(catalog.revision, served);
  assert.is(view().lastSync?.code, 'E_GIT_REWRITE');
  assert.ok((await sync.plan()).rewrite, 'the plan says so too');
  const forced = await sync.syncNow({ force: true });
  assert.ok(forced.ok);
  assert.is(catalog.revision, rewritten);
});

t('a revision without any challenge is refused unless forced (never act on an empty read)', async () => {
  const { catalog, sync } = setup();
  await sync.start();
  fx.remove('challenges');
  fx.write('challenges/.keep', '');
  fx.push('oops');
  const r = await sync.syncNow();
  assert.equal([r.ok, r.code], [false, 'E_SOURCE_EMPTY']);
  assert.equal(catalog.list().length, 3);
  assert.ok((await sync.syncNow({ force: true })).ok);
  assert.equal(catalog.list().length, 0);
});

t('bursts of triggers coalesce into one sync; a trigger during a sync gives exactly one more', async () => {
  const { sync } = setup();
  await sync.start();
  fetches = 0;
  for (let i = 0; i < 50; i++) sync.trigger('webhook');
  await waitFor('one sync', async () => (fetches >= 1 && !sync.status().syncing ? true : undefined), 60_000, 20);
  await sleep(150);
  assert.is(fetches, 1);
  const slow = sync.syncNow();
  for (let i = 0; i < 20; i++) sync.trigger('webhook');
  await slow;
  await waitFor('the follow-up', async () => (fetches >= 3 && !sync.status().syncing ? true : undefined), 60_000, 20);
  await sleep(150);
  assert.is(fetches, 3);
});

t('polling picks up a push without any trigger', async () => {
  const { catalog, sync } = setup({ pollMs: 300 });
  await sync.start();
  fx.write('challenges/polled/challenge.yaml', challengeYaml('polled'));
  const head = fx.push();
  await waitFor('polled', async () => (catalog.revision === head ? true : undefined), 60_000, 50);
  assert.ok(catalog.get('polled'));
});

t('with Redis the catalog outlives the process: a restart serves the last good revision while the source is down', async () => {
  if (!haveRedis()) return;
  const prefix = `poseidon-test-catalog-${process.pid}-${Date.now()}:`;
  const stores = [new RedisCatalogStore(REDIS_URL, prefix), new RedisCatalogStore(REDIS_URL, prefix)];
  try {
    const first = setup({ store: stores[0] });
    await first.sync.start();
    const old = first.catalog.get('web')!.hash;
    fx.write('challenges/web/challenge.yaml', challengeYaml('web', { env: '{ V: "2" }' }));
    fx.push();
    await first.sync.syncNow();
    await first.sync.stop();
    rmSync(workdir, { recursive: true, force: true });
    const second = setup({ url: path.join(fx.base, 'gone.git'), store: stores[1] });
    const r = await second.sync.start();
    assert.equal([r.ok, r.code], [false, 'E_GIT_UNREACHABLE']);
    assert.is(second.catalog.revision, first.catalog.revision);
    assert.is(second.catalog.get('web')!.hash, first.catalog.get('web')!.hash);
    assert.ok(second.catalog.version(old), 'superseded versions stay addressable for keep instances');
    assert.equal(second.catalog.list().map((e) => e.spec.id), ['crypto', 'pwn', 'web']);
  } finally {
    for (const s of stores) await s.close();
    await cleanupRedisPrefix(prefix);
  }
});

t.run();
