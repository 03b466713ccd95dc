/**
 * GitOps end to end: `poseidon serve` following a real git remote (a bare repository and a
 * clone that pushes), on the real Docker engine and Redis, driven through the HTTP API, the
 * signed webhook and `poseidon plan`.
 */
import { createHmac } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { haveDocker, haveRedis, REDIS_URL, ROOT } from '../helpers/deps.ts';
import { docker, testManagerId } from '../helpers/docker.ts';
import { teardownE2e } from '../helpers/e2e.ts';
import { apiClient, startServe, waitFor, type ServeProcess } from '../helpers/server.ts';
import { gitFixture, type GitFixture } from '../source/git-fixture.ts';

const t = suite('e2e: catalog from a git repository');
const enabled = haveDocker() && haveRedis();
const mgr = testManagerId();
const KEY = 'gitops-admin-key-0123456789';
const HOOK_SECRET = 'gitops-webhook-secret-0123456789';
const work = mkdtempSync(path.join(tmpdir(), 'poseidon-gitops-'));
let fx: GitFixture;
let server: ServeProcess;
let api: ReturnType<typeof apiClient>;
const ids: Record<string, string> = {};

const web = (id: string, v: string, extra: string[] = []) => [
  `id: ${id}`, `name: ${id}`, 'image: busybox:1.35', `env: { V: "${v}" }`,
  'command: [sh, -c, "mkdir -p /tmp/w && echo $V > /tmp/w/index.html && exec httpd -f -p 8080 -h /tmp/w"]',
  'expose: [{ name: web, port: 8080 }]', ...extra, '',
].join('\n');

async function containerOf(instance: string) {
  const [c] = await docker.listContainers({ all: true, filters: { label: [`poseidon.instance=${instance}`] } });
  return c ? { id: c.Id, hash: c.Labels['poseidon.spec-hash'] ?? '', state: c.State, env: (await docker.getContainer(c.Id).inspect()).Config.Env } : undefined;
}

async function running(instance: string) {
  return waitFor(`${instance} running`, async () => {
    const r = await api('GET', `/v1/instances/${instance}`);
    if (r.body.status === 'failed') throw new Error(`failed: ${r.body.reason}`);
    return r.body.status === 'running' ? r.body : undefined;
  }, 60_000, 200);
}

async function signedHook(): Promise<number> {
  const body = JSON.stringify({ ref: 'refs/heads/main', after: fx.head() });
  const sig = createHmac('sha256', HOOK_SECRET).update(body).digest('hex');
  const res = await fetch(`${server.url}/v1/hooks/git`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-hub-signature-256': `sha256=${sig}` }, body });
  return res.status;
}

t.before(async () => {
  if (!enabled) return;
  fx = gitFixture();
  fx.write('ctf/web/challenge.yaml', web('web', '1', ['update: recreate']));
  fx.write('ctf/keepme/challenge.yaml', web('keepme', '1'));
  fx.write('ctf/gone/challenge.yaml', web('gone', '1'));
  fx.write('ctf/built/challenge.yaml', ['id: built', 'name: built', 'build: .', 'expose: [{ name: web, port: 8080 }]', ''].join('\n'));
  fx.write('ctf/built/Dockerfile', 'FROM busybox:1.35\nCOPY hello.txt /www/index.html\nCMD ["httpd", "-f", "-p", "8080", "-h", "/www"]\n');
  fx.write('ctf/built/hello.txt', 'built from git\n');
  fx.push('initial challenges');
  server = await startServe({
    POSEIDON_API_KEY: KEY, POSEIDON_FLAG_SECRET: 'gitops-flag-secret-0123456789', REDIS_URL, POSEIDON_REDIS_PREFIX: `${mgr}:`,
    POSEIDON_MANAGER_ID: mgr, POSEIDON_DATA_DIR: path.join(work, 'data'), POSEIDON_TRAEFIK_DIR: path.join(work, 'traefik'),
    POSEIDON_GIT_URL: fx.remote, POSEIDON_GIT_PATH: 'ctf', POSEIDON_GIT_POLL_SECONDS: '0', POSEIDON_WEBHOOK_SECRET: HOOK_SECRET,
    POSEIDON_RESYNC_SECONDS: '2', POSEIDON_TEAM_LIMIT: '0', POSEIDON_RATE_LIMITS: 'launch=1000/60,stop=1000/60,restart=1000/60,renew=1000/60',
  });
  api = apiClient(server.url, KEY);
});

t.after(async () => {
  if (!enabled) return;
  fx?.dispose();
  await teardownE2e({ server, managerId: mgr, work });
});

const it = (name: string, fn: () => Promise<void>) => t(name, async () => { if (enabled) await fn(); });

it('the first sync loads every challenge; a build challenge is ready only once its image exists', async () => {
  const cat = (await api('GET', '/v1/catalog')).body;
  assert.is(cat.revision, fx.head());
  assert.equal(cat.source, { kind: 'git', url: fx.remote, branch: 'main', path: 'ctf' });
  assert.equal(cat.challenges.map((c: { id: string }) => c.id), ['built', 'gone', 'keepme', 'web']);
  const built = await waitFor('built ready', async () => {
    const c = (await api('GET', '/v1/catalog')).body.challenges.find((x: { id: string }) => x.id === 'built');
    if (c.state === 'image-missing') throw new Error(c.imageError);
    return c.state === 'ready' ? c : undefined;
  }, 60_000, 100);
  assert.ok(await docker.getImage(built.image).inspect(), 'the image exists on the engine');
  for (const id of ['web', 'keepme', 'gone', 'built']) {
    const r = await api('POST', '/v1/instances', { challenge: id, team: 'red' });
    assert.is(r.status, 202, JSON.stringify(r.body));
    ids[id] = r.body.id;
  }
  for (const id of Object.values(ids)) await running(id);
});

it('a push is planned first (poseidon plan), then a signed webhook syncs it (latency: npm run bench catalog)', async () => {
  const before = { web: await containerOf(ids.web!), keepme: await containerOf(ids.keepme!) };
  fx.write('ctf/web/challenge.yaml', web('web', '2', ['update: recreate']));
  fx.write('ctf/keepme/challenge.yaml', web('keepme', '2'));
  fx.remove('ctf/gone');
  const head = fx.push('v2');
  const plan = spawnSync(process.execPath, [path.join(ROOT, 'bin/poseidon.js'), 'plan', '--server', server.url], {
    cwd: work, encoding: 'utf8', timeout: 30_000, env: { PATH: process.env.PATH ?? '', POSEIDON_API_KEY: KEY, POSEIDON_DATA_DIR: path.join(work, 'data'), POSEIDON_FLAG_SECRET: 'gitops-flag-secret-0123456789' },
  });
  assert.is(plan.status, 0, plan.stderr);
  const lines = plan.stdout.trim().split('\n');
  assert.match(lines[0]!, new RegExp(`-> ${head.slice(0, 12)}`));
  assert.match(lines[1]!, /^~ keepme changed \[env\] \(update: keep\): 1 running instance: kept on their version/);
  assert.match(lines[2]!, /^~ web changed \[env\] \(update: recreate\): 1 running instance: replaced/);
  assert.match(lines[3]!, /^- gone removed \(update: keep\): no new launches; 1 running instance: kept on their version/);
  assert.match(lines.at(-1)!, /2 changed, 0 added, 1 removed, 0 invalid, 1 unchanged/);
  assert.is((await api('GET', '/v1/catalog')).body.revision !== head, true, 'the plan applied nothing');

  assert.is(await signedHook(), 202);
  await waitFor('synced', async () => ((await api('GET', '/v1/catalog')).body.revision === head ? true : undefined), 60_000, 25);

  // recreate: replaced by a container of the new version.
  const replaced = await waitFor('web replaced', async () => {
    const c = await containerOf(ids.web!);
    return c && c.id !== before.web!.id && c.state === 'running' ? c : undefined;
  }, 30_000, 200);
  assert.ok(replaced.env.includes('V=2'));
  assert.is.not(replaced.hash, before.web!.hash);
  // keep: untouched.
  const kept = await containerOf(ids.keepme!);
  assert.equal([kept!.id, kept!.hash], [before.keepme!.id, before.keepme!.hash]);
});

it('a deleted challenge takes no new launches; its running instance keeps running', async () => {
  const r = await api('POST', '/v1/instances', { challenge: 'gone', team: 'blue' });
  assert.is(r.status, 404);
  assert.is(r.body.code, 'E_CHALLENGE_NOT_FOUND');
  assert.is((await api('GET', `/v1/instances/${ids.gone}`)).body.status, 'running');
  const gone = (await api('GET', '/v1/catalog')).body.challenges.find((c: { id: string }) => c.id === 'gone');
  assert.equal([gone.state, gone.launchable], ['removed', false]);
});

it('a keep instance whose container crashes comes back on its own version; a restart takes the current one', async () => {
  const before = (await containerOf(ids.keepme!))!;
  await docker.getContainer(before.id).kill();
  const back = await waitFor('recreated', async () => {
    const c = await containerOf(ids.keepme!);
    return c && c.id !== before.id && c.state === 'running' ? c : undefined;
  }, 30_000, 200);
  assert.is(back.hash, before.hash);
  assert.ok(back.env.includes('V=1'), 'still the version it was launched with');
  const restart = await api('POST', `/v1/instances/${ids.keepme}/restart`);
  assert.is(restart.status, 202, JSON.stringify(restart.body));
  const fresh = await waitFor('restarted on v2', async () => {
    const c = await containerOf(ids.keepme!);
    return c && c.state === 'running' && c.env.includes('V=2') ? c : undefined;
  }, 30_000, 200);
  assert.is.not(fresh.hash, before.hash);
});

it('a push that breaks one YAML keeps its last good version launchable and reports file:line', async () => {
  fx.write('ctf/web/challenge.yaml', 'id: web\nname: web\nimage: busybox:1.35\nexpose: [{ name: web, port: 8080 }]\nresources: { memory: plenty }\n');
  const head = fx.push('broken');
  const sync = await api('POST', '/v1/sync');
  assert.is(sync.status, 200);
  assert.is(sync.body.revision, head);
  const webView = (await api('GET', '/v1/catalog')).body.challenges.find((c: { id: string }) => c.id === 'web');
  assert.equal([webView.state, webView.launchable], ['invalid', true]);
  assert.equal([webView.errors[0].file, webView.errors[0].line], ['ctf/web/challenge.yaml', 5]);
  const launch = await api('POST', '/v1/instances', { challenge: 'web', team: 'green' });
  assert.is(launch.status, 202);
  const inst = await running(launch.body.id);
  assert.ok((await containerOf(inst.id))!.env.includes('V=2'), 'the last good version');
  assert.is((await containerOf(ids.web!))!.state, 'running', 'running instances are untouched');
});

it('badly signed webhooks are refused; no secret reaches the logs', async () => {
  const res = await fetch(`${server.url}/v1/hooks/git`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-hub-signature-256': `sha256=${'0'.repeat(64)}` }, body: '{}' });
  assert.is(res.status, 401);
  const logs = server.logs();
  assert.ok(logs.includes('webhook accepted'), 'logs were captured');
  assert.not.ok(logs.includes(HOOK_SECRET));
  assert.not.ok(logs.includes(KEY));
});

t.run();
