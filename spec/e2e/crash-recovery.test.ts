/**
 * kill -9 of `poseidon serve` in the middle of launches and stops, then a restart: the world
 * converges to exactly the desired containers (no duplicate, no orphan, no lost request).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { newInstanceId } from '../../src/core/naming.ts';
import { haveDocker, haveRedis, REDIS_URL, ROOT } from '../helpers/deps.ts';
import { docker, testManagerId } from '../helpers/docker.ts';
import { teardownE2e } from '../helpers/e2e.ts';
import { apiClient, startServe, waitFor, type ServeProcess } from '../helpers/server.ts';

const t = suite('e2e: crash recovery');
const enabled = haveDocker() && haveRedis();
const mgr = testManagerId();
const KEY = 'crash-admin-key-0123456789';
const work = mkdtempSync(path.join(tmpdir(), 'poseidon-crash-'));
const env = {
  POSEIDON_API_KEY: KEY, POSEIDON_FLAG_SECRET: 'crash-flag-secret-0123456789', REDIS_URL,
  POSEIDON_REDIS_PREFIX: `${mgr}:`, POSEIDON_MANAGER_ID: mgr, POSEIDON_CHALLENGES_DIR: path.join(ROOT, 'challenges'),
  POSEIDON_TRAEFIK_DIR: path.join(work, 'traefik'), POSEIDON_DATA_DIR: path.join(work, 'data'), POSEIDON_RESYNC_SECONDS: '2',
  POSEIDON_DEPLOYMENT_ID: `d-${mgr.slice(-8)}`,
};
let server: ServeProcess | undefined;

t.after(async () => {
  if (!enabled) return;
  await teardownE2e({ server, managerId: mgr, work });
});

const it = (name: string, fn: () => Promise<void>) => t(name, async () => { if (enabled) await fn(); });

async function managed(kind: 'containers' | 'networks', instance?: string): Promise<string[]> {
  const label = [`poseidon.managed-by=${mgr}`, ...(instance ? [`poseidon.instance=${instance}`] : [])];
  const list = kind === 'containers'
    ? await docker.listContainers({ all: true, filters: { label } })
    : await docker.listNetworks({ filters: { label } });
  return list.map((o: any) => o.Labels['poseidon.instance']).sort();
}

/** A container and network that look managed but that no request desires. */
async function plantOrphan(): Promise<string> {
  const id = newInstanceId();
  const labels = { 'poseidon.managed-by': mgr, 'poseidon.deployment': env.POSEIDON_DEPLOYMENT_ID, 'poseidon.instance': id };
  await docker.createNetwork({ Name: `poseidon-${id}`, Internal: true, Labels: labels });
  const c = await docker.createContainer({ name: `poseidon-${id}`, Image: 'busybox:1.35', Cmd: ['sleep', '600'], Labels: labels, HostConfig: { NetworkMode: `poseidon-${id}` } });
  await c.start();
  return id;
}

it('kill -9 mid-launch and mid-stop, restart: exactly the desired containers remain', async () => {
  server = await startServe(env);
  let api = apiClient(server.url, KEY);
  // Make sure the images exist so the kills land inside container creation, not image builds.
  const warm = await api('POST', '/v1/instances', { challenge: 'web-hello', team: 'warm' });
  await waitFor('warm-up running', async () => ((await api('GET', `/v1/instances/${warm.body.id}`)).body.status === 'running' ? true : undefined), 60_000);

  const wanted: string[] = [warm.body.id];
  for (const [i, delay] of [0, 60, 150, 300].entries()) {
    const res = await api('POST', '/v1/instances', { challenge: i % 2 ? 'two-ports' : 'web-hello', team: `crash${i}` });
    assert.is(res.status, 202);
    wanted.push(res.body.id);
    await sleep(delay);
    await server.kill();
    server = await startServe(env);
    api = apiClient(server.url, KEY);
  }
  // Mid-stop: ask to stop the warm-up instance and kill at once.
  assert.is((await api('DELETE', `/v1/instances/${warm.body.id}`)).status, 202);
  wanted.shift();
  await server.kill();
  const orphan = await plantOrphan();

  server = await startServe(env);
  api = apiClient(server.url, KEY);
  for (const id of wanted) {
    await waitFor(`${id} running`, async () => ((await api('GET', `/v1/instances/${id}`)).body.status === 'running' ? true : undefined), 60_000, 200);
  }
  await waitFor('warm-up stopped', async () => ((await api('GET', `/v1/instances/${warm.body.id}`)).body.status === 'stopped' ? true : undefined), 60_000);
  await waitFor('orphan removed', async () => ((await managed('containers', orphan)).length === 0 ? true : undefined), 60_000);
  await waitFor('orphan network removed', async () => ((await managed('networks', orphan)).length === 0 ? true : undefined), 60_000);

  assert.equal(await managed('containers'), [...wanted].sort(), 'one container per desired instance, nothing else');
  assert.equal(await managed('networks'), [...wanted].sort(), 'one network per desired instance, nothing else');
});

t.run();
