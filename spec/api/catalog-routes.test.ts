/**
 * Catalog routes through `inject`, with the real sync loop on a real git remote: webhook
 * signatures (GitHub, Gitea, GitLab) checked before git is touched, bursts coalesced, admin-only
 * sync and plan, and the catalog view.
 */
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { buildApp } from '../../src/api/app.ts';
import { keyDigest } from '../../src/api/auth.ts';
import { WEBHOOK_BODY_LIMIT, type GitOpsApi } from '../../src/api/catalog-routes.ts';
import { Catalog } from '../../src/catalog/catalog.ts';
import { NoCatalogStore } from '../../src/catalog/catalog-store.ts';
import { everyImageReady } from '../helpers/catalog.ts';
import { CatalogSync } from '../../src/catalog/sync.ts';
import type { Source } from '../../src/core/source.ts';
import { GitSource } from '../../src/source/git-source.ts';
import { MemoryStore } from '../../src/store/memory.ts';
import { memoryLogger } from '../helpers/log.ts';
import { waitFor } from '../helpers/server.ts';
import { challengeYaml, gitFixture, TEST_GIT_ENV } from '../source/git-fixture.ts';

const t = suite('api: catalog routes and git webhook');
const KEY = 'catalog-admin-key-0123456789';
const PLATFORM = 'catalog-platform-key-0123456789';
const SECRET = 'webhook-secret-0123456789abcdef';
const fx = gitFixture();
const workdir = mkdtempSync(path.join(tmpdir(), 'poseidon-routes-'));
const catalog = new Catalog();
let fetches = 0;
const git = new GitSource({ url: fx.remote, branch: 'main', path: '', workdir, env: TEST_GIT_ENV, timeoutMs: 10_000 });
const source: Source = { info: git.info, fetch: (o) => { fetches++; return git.fetch(o); }, retain: (r) => git.retain(r) };
const images = everyImageReady(catalog);
const sync = new CatalogSync({ source, catalog, images, store: new NoCatalogStore(), log: memoryLogger(), pollMs: 0, debounceMs: 100 });
const gitops: GitOpsApi = {
  status: () => sync.status(), syncNow: (o) => sync.syncNow(o), trigger: (r) => sync.trigger(r), plan: () => sync.plan(),
  webhook: { secret: SECRET, branch: 'main' },
};
const lifecycle = { teamLimit: 0, capacity: 0, rateLimits: new Map(), renewMaxLoad: 1, idempotencyTtlMs: 60_000, flagSecret: 'flag-secret-0123456789', flagRetentionMs: 60_000 };
const app = buildApp({
  store: new MemoryStore(), catalog, apiKey: KEY, baseDomain: 'ctf.test', lifecycle, gitops,
  apiKeys: [{ name: 'platform', role: 'platform', digest: keyDigest(PLATFORM) }],
});
const admin = { 'x-api-key': KEY };

const push = (ref = 'refs/heads/main') => JSON.stringify({ ref, after: fx.head(), repository: { full_name: 'ctf/challenges' } });
const hmac = (body: string | Buffer, secret = SECRET) => createHmac('sha256', secret).update(body).digest('hex');
const hook = (headers: Record<string, string>, payload: string | Buffer = push()) =>
  app.inject({ method: 'POST', url: '/v1/hooks/git', headers: { 'content-type': 'application/json', ...headers }, payload });

t.before(async () => {
  fx.write('web/challenge.yaml', challengeYaml('web'));
  fx.write('pwn/challenge.yaml', challengeYaml('pwn'));
  fx.push();
  await sync.start();
  await sync.imagesSettled();
});
t.after(async () => {
  await sync.stop();
  await app.close();
  fx.dispose();
  rmSync(workdir, { recursive: true, force: true });
});

t('GET /v1/catalog shows revision, sync result and per-challenge state', async () => {
  const res = await app.inject({ url: '/v1/catalog', headers: { 'x-api-key': PLATFORM } });
  assert.is(res.statusCode, 200);
  const body = res.json();
  assert.is(body.revision, fx.head());
  assert.ok(Date.parse(body.syncedAt) > 0);
  assert.equal(body.lastSync.ok, true);
  assert.equal(body.challenges.map((c: { id: string; state: string; revision: string }) => [c.id, c.state, c.revision]), [['pwn', 'ready', fx.head()], ['web', 'ready', fx.head()]]);
  const one = (await app.inject({ url: '/v1/catalog/web', headers: admin })).json();
  assert.equal(one.versions.map((v: { current: boolean }) => v.current), [true]);
  assert.is((await app.inject({ url: '/v1/catalog/nope', headers: admin })).statusCode, 404);
  const listed = (await app.inject({ url: '/v1/challenges', headers: admin })).json();
  assert.equal(listed.challenges.map((c: { id: string }) => c.id), ['pwn', 'web']);
});

t('unsigned, wrongly signed and malformed webhooks get 401 and never touch git', async () => {
  const before = fetches;
  const bad: Record<string, string>[] = [
    {},
    { 'x-hub-signature-256': `sha256=${hmac(push(), 'another-secret-0123456789')}` },
    { 'x-hub-signature-256': hmac(push()) },
    { 'x-hub-signature-256': 'sha256=zz' },
    { 'x-gitea-signature': hmac('something else') },
    { 'x-gitlab-token': 'not-the-secret' },
    { 'x-api-key': KEY },
  ];
  for (const headers of bad) {
    const res = await hook(headers);
    assert.is(res.statusCode, 401, JSON.stringify(headers));
    assert.is(res.json().code, 'E_WEBHOOK_SIGNATURE');
    assert.not.ok(res.body.includes(SECRET));
  }
  // A body changed after signing fails too.
  const signed = push();
  assert.is((await hook({ 'x-hub-signature-256': `sha256=${hmac(signed)}` }, signed.replace('main', 'mainx'))).statusCode, 401);
  await sleep(300);
  assert.is(fetches, before, 'no fetch');
});

t('a signed GitHub webhook is accepted with 202 and syncs (latency: npm run bench catalog)', async () => {
  fx.write('crypto/challenge.yaml', challengeYaml('crypto'));
  const head = fx.push();
  const body = push();
  const res = await hook({ 'x-hub-signature-256': `sha256=${hmac(body)}`, 'x-github-event': 'push' }, body);
  assert.is(res.statusCode, 202);
  assert.equal(res.json(), { accepted: true, sync: true });
  await waitFor('synced', async () => (catalog.revision === head ? true : undefined), 60_000, 20);
});

t('Gitea and GitLab signatures work; form-encoded GitHub payloads and other branches are understood', async () => {
  const body = push();
  assert.is((await hook({ 'x-gitea-signature': hmac(body) }, body)).statusCode, 202);
  assert.is((await hook({ 'x-gitlab-token': SECRET, 'x-gitlab-event': 'Push Hook' }, body)).statusCode, 202);
  const other = push('refs/heads/feature');
  const res = await hook({ 'x-hub-signature-256': `sha256=${hmac(other)}` }, other);
  assert.equal([res.statusCode, res.json().sync], [202, false]);
  const form = `payload=${encodeURIComponent(push('refs/tags/v1'))}`;
  const formRes = await app.inject({ method: 'POST', url: '/v1/hooks/git', headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-hub-signature-256': `sha256=${hmac(form)}` }, payload: form });
  assert.equal([formRes.statusCode, formRes.json().sync], [202, false]);
  await sleep(300);
});

t('a burst of signed webhooks makes one sync', async () => {
  await waitFor('idle', async () => (sync.status().syncing ? undefined : true), 60_000, 20);
  await sleep(200);
  const before = fetches;
  const body = push();
  const results = await Promise.all(Array.from({ length: 30 }, () => hook({ 'x-hub-signature-256': `sha256=${hmac(body)}` }, body)));
  assert.ok(results.every((r) => r.statusCode === 202));
  await sleep(600);
  await waitFor('idle', async () => (sync.status().syncing ? undefined : true), 60_000, 20);
  assert.is(fetches - before, 1);
});

t('a webhook body over the limit gets 413; an unsigned one 401 without reading it', async () => {
  const big = Buffer.alloc(WEBHOOK_BODY_LIMIT + 1, 'a');
  const res = await hook({ 'x-hub-signature-256': `sha256=${hmac(big)}` }, big);
  assert.is(res.statusCode, 413);
  assert.is(res.json().code, 'E_BODY_TOO_LARGE');
  assert.is((await hook({}, big)).statusCode, 401);
});

t('POST /v1/sync and GET /v1/catalog/plan are admin-only', async () => {
  for (const [method, url] of [['POST', '/v1/sync'], ['GET', '/v1/catalog/plan']] as const) {
    const res = await app.inject({ method, url, headers: { 'x-api-key': PLATFORM } });
    assert.is(res.statusCode, 403, url);
  }
  fx.write('web/challenge.yaml', challengeYaml('web', { name: 'Renamed web' }));
  const head = fx.push();
  const plan = (await app.inject({ url: '/v1/catalog/plan', headers: admin })).json();
  assert.equal(plan.changes.map((c: { id: string; fields: string[] }) => [c.id, c.fields]), [['web', ['name']]]);
  const res = await app.inject({ method: 'POST', url: '/v1/sync', headers: admin });
  assert.is(res.statusCode, 200);
  assert.equal([res.json().revision, res.json().lastSync.ok], [head, true]);
  const bad = await app.inject({ method: 'POST', url: '/v1/sync', headers: { ...admin, 'content-type': 'application/json' }, payload: { force: 'yes' } });
  assert.is(bad.statusCode, 400);
});

t('a failed sync answers with the problem and the last good revision', async () => {
  const served = catalog.revision;
  fx.git('commit', '-q', '--amend', '-m', 'rewrite');
  fx.push();
  const res = await app.inject({ method: 'POST', url: '/v1/sync', headers: admin });
  assert.is(res.statusCode, 409);
  assert.equal([res.json().code, res.json().revision], ['E_GIT_REWRITE', served]);
  const forced = await app.inject({ method: 'POST', url: '/v1/sync', headers: { ...admin, 'content-type': 'application/json' }, payload: { force: true } });
  assert.is(forced.statusCode, 200);
});

t('without a webhook secret every hook is refused', async () => {
  const noSecret = buildApp({ store: new MemoryStore(), catalog, apiKey: KEY, baseDomain: 'x.test', lifecycle, gitops: { ...gitops, webhook: { branch: 'main' } } });
  const body = push();
  const res = await noSecret.inject({ method: 'POST', url: '/v1/hooks/git', headers: { 'content-type': 'application/json', 'x-hub-signature-256': `sha256=${hmac(body)}` }, payload: body });
  assert.is(res.statusCode, 401);
  assert.match(res.json().detail, /POSEIDON_WEBHOOK_SECRET is not set/);
  await noSecret.close();
});

t.run();
