/**
 * Issue 4 end to end (real engine, real Redis, through the API): a full cluster queues launches
 * and starts them in order as capacity frees, with positions over SSE; restart replaces the
 * container and keeps the hostname; stop and renew act at once; a burst of launches converges.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { haveDocker, haveRedis, REDIS_URL, ROOT } from '../helpers/deps.ts';
import { docker, testManagerId } from '../helpers/docker.ts';
import { teardownE2e } from '../helpers/e2e.ts';
import { collectSse, type SseFrame } from '../helpers/sse.ts';
import { apiClient, startServe, waitFor, type ServeProcess } from '../helpers/server.ts';

const t = suite('e2e: platform lifecycle (queue, restart, renew, burst)');
const enabled = haveDocker() && haveRedis();
const mgr = testManagerId();
const KEY = 'platform-e2e-key-0123456789';
const work = mkdtempSync(path.join(tmpdir(), 'poseidon-platform-'));
let server: ServeProcess | undefined;
let api: ReturnType<typeof apiClient>;

t.before(async () => {
  if (!enabled) return;
  server = await startServe({
    POSEIDON_API_KEY: KEY, POSEIDON_FLAG_SECRET: 'platform-e2e-secret-0123', REDIS_URL, POSEIDON_REDIS_PREFIX: `${mgr}:`,
    POSEIDON_MANAGER_ID: mgr, POSEIDON_CHALLENGES_DIR: path.join(ROOT, 'challenges'), POSEIDON_TRAEFIK_DIR: path.join(work, 'traefik'),
    POSEIDON_DATA_DIR: path.join(work, 'data'), POSEIDON_RESYNC_SECONDS: '5', POSEIDON_CAPACITY: '2', POSEIDON_TEAM_LIMIT: '0',
    POSEIDON_RATE_LIMITS: 'launch=1000/60,stop=1000/60,restart=1000/60,renew=1000/60',
  });
  api = apiClient(server.url, KEY);
});
t.after(async () => {
  if (!enabled) return;
  await teardownE2e({ server, managerId: mgr, work });
});
const it = (name: string, fn: () => Promise<void>) => t(name, async () => { if (enabled) await fn(); });

const status = async (id: string) => (await api('GET', `/v1/instances/${id}`)).body;
const running = (id: string, ms = 60_000) => waitFor(`${id} running`, async () => {
  const s = await status(id);
  if (s.status === 'failed') throw new Error(`failed: ${s.reason}`);
  return s.status === 'running' ? s : undefined;
}, ms, 100);
const containersOf = async (id: string) => docker.listContainers({ all: true, filters: { label: [`poseidon.instance=${id}`] } });

/** Reads SSE frames from a stream into `frames` until aborted. */
function listen(url: string, frames: SseFrame[]): AbortController {
  const ac = new AbortController();
  void fetch(url, { headers: { 'x-api-key': KEY }, signal: ac.signal })
    .then((res) => collectSse(res.body as AsyncIterable<Uint8Array>, frames))
    .catch(() => undefined);
  return ac;
}

it('a full cluster queues launches and starts them in order as capacity frees, with positions over SSE', async () => {
  const a = (await api('POST', '/v1/instances', { challenge: 'web-hello', team: 'qa' })).body;
  const b = (await api('POST', '/v1/instances', { challenge: 'web-hello', team: 'qb' })).body;
  const c = (await api('POST', '/v1/instances', { challenge: 'web-hello', team: 'qc' })).body;
  const d = (await api('POST', '/v1/instances', { challenge: 'web-hello', team: 'qd' })).body;
  assert.equal([a.status, b.status, c.status, d.status], ['pending', 'pending', 'queued', 'queued']);
  assert.equal([c.queue.position, d.queue.position], [1, 2]);
  const frames: SseFrame[] = [];
  const ac = listen(`${server!.url}/v1/events?team=qd`, frames);
  await running(a.id);
  await running(b.id);
  assert.equal(await containersOf(c.id), [], 'queued instances have no container');
  await waitFor('snapshot', async () => (frames.length ? true : undefined), 60_000);
  assert.is(frames[0]!.data.instance.status, 'queued');
  await api('DELETE', `/v1/instances/${a.id}`);
  await waitFor('c admitted', async () => ((await status(c.id)).status !== 'queued' ? true : undefined), 60_000, 50);
  assert.is((await status(d.id)).status, 'queued', 'd waits: c went first');
  const moved = await waitFor('queue position 1 for d', async () => frames.find((f) => f.event === 'queue' && f.data.instance.queue?.position === 1), 60_000);
  assert.is(moved.data.instance.id, d.id);
  await running(c.id);
  await api('DELETE', `/v1/instances/${b.id}`);
  await running(d.id);
  await waitFor('d running over SSE', async () => frames.find((f) => f.data.instance.status === 'running'), 60_000);
  ac.abort();
  for (const id of [c.id, d.id]) await api('DELETE', `/v1/instances/${id}`);
});

it('restart replaces the container and keeps the hostname; renew moves the expiry at once', async () => {
  const inst = (await api('POST', '/v1/instances', { challenge: 'two-ports', team: 'restarter' })).body;
  const before = await running(inst.id);
  const [old] = await containersOf(inst.id);
  const res = await api('POST', `/v1/instances/${inst.id}/restart`);
  assert.is(res.status, 202);
  assert.is(res.body.generation, 2);
  const after = await waitFor('new container running', async () => {
    const s = await status(inst.id);
    const list = await containersOf(inst.id);
    return s.status === 'running' && list.length === 1 && list[0]!.Id !== old!.Id ? { s, list } : undefined;
  }, 30_000, 100);
  assert.is(after.s.hostname, before.hostname);
  assert.equal(after.s.endpoints.map((e: any) => e.hostname), before.endpoints.map((e: any) => e.hostname));
  assert.is(after.list[0]!.Labels['poseidon.generation'], '2');
  const renewed = await api('POST', `/v1/instances/${inst.id}/renew`);
  assert.is(renewed.status, 200, JSON.stringify(renewed.body));
  assert.ok(Date.parse(renewed.body.expiresAt) >= Date.parse(after.s.expiresAt));
  assert.is((await status(inst.id)).expiresAt, renewed.body.expiresAt);
  await api('DELETE', `/v1/instances/${inst.id}`);
  await waitFor('stopped', async () => ((await containersOf(inst.id)).length === 0 ? true : undefined), 60_000, 50);
});

it('a burst of 24 launches is admitted two at a time and every one runs', async () => {
  const ids: string[] = [];
  const started = Date.now();
  const res = await Promise.all(Array.from({ length: 24 }, (_, i) => api('POST', '/v1/instances', { challenge: 'web-hello', team: `burst${i}` })));
  assert.ok(Date.now() - started < 5000, 'launch answers do not wait for containers');
  for (const r of res) { assert.is(r.status, 202); ids.push(r.body.id); }
  assert.is(res.filter((r) => r.body.status === 'queued').length, 22);
  for (const id of ids) {
    await running(id, 90_000);
    const list = await docker.listContainers({ filters: { label: [`poseidon.managed-by=${mgr}`] } });
    // Capacity counts live instances; a stopped one's container may still be in removal.
    assert.ok(list.length <= 3, `never more than the capacity (+1 being removed) running (${list.length})`);
    await api('DELETE', `/v1/instances/${id}`);
  }
});

t.run();
