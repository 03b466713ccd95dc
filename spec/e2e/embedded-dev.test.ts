/**
 * `poseidon serve --dev` on embedded defaults: no Redis (in-process store, announced loudly),
 * generated secrets, instance ports published on 127.0.0.1 and reachable from the host there.
 * Run twice: from the TypeScript sources through tsx (`npm start`) and from the one-file bundle
 * `npm run build` writes (what the container image runs), which must find the schemas, the
 * version and the status page's assets from `dist/`.
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { haveDocker, ROOT } from '../helpers/deps.ts';
import { cleanupByLabel, testManagerId } from '../helpers/docker.ts';
import { apiClient, startServe, waitFor, type ServeProcess } from '../helpers/server.ts';
import { VERSION } from '../../src/version.ts';

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

for (const form of ['sources', 'bundle'] as const) t(`runs on the in-process store and serves instances on loopback ports (${form})`, async () => {
  if (!enabled) return;
  const data = path.join(work, `data-${form}`);
  await server?.stop();
  server = await startServe({
    POSEIDON_MANAGER_ID: mgr, POSEIDON_DATA_DIR: data, POSEIDON_TRAEFIK_DIR: path.join(work, 'traefik'),
    POSEIDON_CHALLENGES_DIR: path.join(ROOT, 'challenges'),
  }, ['--dev'], { image: form === 'bundle' });
  assert.match(server.logs(), /IN-PROCESS store/);
  const key = readFileSync(path.join(data, 'api-key'), 'utf8').trim();
  assert.ok(existsSync(path.join(data, 'flag-secret')));
  assert.not.ok(server.logs().includes(key), 'the generated key is not logged');
  const api = apiClient(server.url, key);
  assert.is((await api('GET', '/v1/version')).body.version, VERSION, 'the version is read from package.json');
  for (const asset of readdirSync(path.join(ROOT, 'src/status/assets')).filter((f) => /^[a-z0-9-]+\.(js|css)$/.test(f))) {
    const res = await fetch(`${server.url}/status/${asset}`);
    assert.is(res.status, 200, `status asset ${asset}`);
    assert.is(await res.text(), readFileSync(path.join(ROOT, 'src/status/assets', asset), 'utf8'));
  }
  const invalid = await api('POST', '/v1/instances', { challenge: 'web-hello' });
  assert.is(invalid.status, 400, 'the API schema is compiled');
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
