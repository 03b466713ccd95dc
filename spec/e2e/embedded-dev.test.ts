/**
 * `poseidon serve --dev` on embedded defaults: no Redis (in-process store, announced loudly),
 * generated secrets, instance ports published on 127.0.0.1 and reachable from the host there.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { haveDocker, ROOT } from '../helpers/deps.ts';
import { cleanupByLabel, testManagerId } from '../helpers/docker.ts';
import { apiClient, startServe, waitFor, type ServeProcess } from '../helpers/server.ts';

const t = suite('e2e: embedded defaults with --dev');
const enabled = haveDocker();
const mgr = testManagerId();
const work = mkdtempSync(path.join(tmpdir(), 'poseidon-dev-'));
let server: ServeProcess | undefined;

t.after(async () => {
  if (!enabled) return;
  await server?.stop();
  await cleanupByLabel(mgr);
  rmSync(work, { recursive: true, force: true });
});

t('runs on the in-process store and serves instances on loopback ports', async () => {
  if (!enabled) return;
  const data = path.join(work, 'data');
  server = await startServe({
    POSEIDON_MANAGER_ID: mgr, POSEIDON_DATA_DIR: data, POSEIDON_TRAEFIK_DIR: path.join(work, 'traefik'),
    POSEIDON_CHALLENGES_DIR: path.join(ROOT, 'challenges'),
  }, ['--dev']);
  assert.match(server.logs(), /IN-PROCESS store/);
  const key = readFileSync(path.join(data, 'api-key'), 'utf8').trim();
  assert.ok(existsSync(path.join(data, 'flag-secret')));
  assert.not.ok(server.logs().includes(key), 'the generated key is not logged');
  const api = apiClient(server.url, key);
  const res = await api('POST', '/v1/instances', { challenge: 'web-hello', team: 'laptop' });
  assert.is(res.status, 202);
  const running = await waitFor('running', async () => {
    const r = await api('GET', `/v1/instances/${res.body.id}`);
    return r.body.status === 'running' ? r.body : undefined;
  }, 60_000, 200);
  const pub = running.endpoints[0].published;
  assert.is(pub.host, '127.0.0.1');
  const page = await (await fetch(`http://127.0.0.1:${pub.port}/`)).text();
  assert.match(page, /Your flag: poseidon\{[0-9a-f]{32}\}/);
  assert.is((await api('DELETE', `/v1/instances/${res.body.id}`)).status, 202);
  await waitFor('stopped', async () => ((await api('GET', `/v1/instances/${res.body.id}`)).body.status === 'stopped' ? true : undefined), 60_000);
  const closed = await fetch(`http://127.0.0.1:${pub.port}/`).then(() => 'open', () => 'closed');
  assert.is(closed, 'closed');
});

t.run();
