/**
 * `PUT /v1/workers/:id/launch-settings` through the app (fastify inject) over a real `MemoryFleet`
 * and `FleetView`: only an admin sets them; the body is checked (bounds, unknown fields) before
 * anything is stored; a field absent or null falls back to the worker's configuration; the
 * worker's listing shows the override beside what its heartbeat reported in effect; every change
 * the admin makes, and each refusal of one, is audited.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { buildApp } from '../../src/api/app.ts';
import { keyDigest } from '../../src/api/auth.ts';
import { FleetView } from '../../src/controller/fleet-view.ts';
import { MemoryFleet } from '../../src/store/memory-fleet.ts';
import { MemoryStore } from '../../src/store/memory.ts';
import { loadTestCatalog } from '../helpers/catalog.ts';
import { workerRecord } from '../store/fleet-contract.ts';

const t = suite('api: worker launch settings (inject)');
const ADMIN_KEY = 'launch-admin-key-0123456789';
const OPERATOR_KEY = 'launch-operator-key-0123456789';
const PLATFORM_KEY = 'launch-platform-key-0123456789';
const dir = mkdtempSync(path.join(tmpdir(), 'poseidon-launch-settings-'));
const store = new MemoryStore();
const fleet = new MemoryFleet();
const view = new FleetView({ fleet, instances: { all: () => [] }, lostAfterMs: 60_000, resources: () => ({ cpu: 0, memoryBytes: 0 }) });
let app: ReturnType<typeof buildApp>;

t.before(async () => {
  mkdirSync(path.join(dir, 'web'));
  writeFileSync(path.join(dir, 'web', 'challenge.yaml'), 'id: web\nname: web\nimage: busybox:1.35\nexpose: [{ name: web, port: 80 }]\n');
  const catalog = await loadTestCatalog(dir);
  const lifecycle = { teamLimit: 0, capacity: 0, rateLimits: new Map(), renewMaxLoad: 1, idempotencyTtlMs: 60_000, flagSecret: 'launch-flag-secret-0123456789', flagRetentionMs: 60_000 };
  app = buildApp({
    store, catalog, apiKey: ADMIN_KEY, baseDomain: 'ctf.test', lifecycle, statusSecret: 'launch-status-secret-0123456789',
    workers: { view, fleet, changed: () => undefined },
    apiKeys: [{ name: 'ops', role: 'operator', digest: keyDigest(OPERATOR_KEY) }, { name: 'ctfd', role: 'platform', digest: keyDigest(PLATFORM_KEY) }],
  });
  await fleet.heartbeat(workerRecord('w1', { launch: { networkPool: 0, launchConcurrency: 4 } }));
});
t.after(async () => {
  await app.close();
  rmSync(dir, { recursive: true, force: true });
});

const put = (id: string, body: unknown, key = ADMIN_KEY) => app.inject({ method: 'PUT', url: `/v1/workers/${id}/launch-settings`, headers: { 'x-api-key': key }, payload: body as object });

t('an admin sets an override: stored, answered with the worker, listed beside the settings the worker reported', async () => {
  const res = await put('w1', { networkPool: 100, launchConcurrency: 8 });
  assert.is(res.statusCode, 200, res.body);
  const body = res.json();
  assert.equal(body.launchOverride, { networkPool: 100, launchConcurrency: 8 });
  assert.equal(body.launch, { networkPool: 0, launchConcurrency: 4 }, 'in effect: what the worker last reported');
  assert.equal(await fleet.launchOverride('w1'), { networkPool: 100, launchConcurrency: 8 });
  const list = await app.inject({ url: '/v1/workers', headers: { 'x-api-key': OPERATOR_KEY } });
  assert.is(list.statusCode, 200);
  assert.equal(list.json().workers[0].launchOverride, { networkPool: 100, launchConcurrency: 8 });
});

t('a field absent or null is the worker\'s own again; {} clears the override', async () => {
  assert.is((await put('w1', { networkPool: 50, launchConcurrency: null })).statusCode, 200);
  assert.equal(await fleet.launchOverride('w1'), { networkPool: 50 });
  const res = await put('w1', {});
  assert.is(res.statusCode, 200);
  assert.equal(res.json().launchOverride, {});
  assert.equal(await fleet.launchOverride('w1'), {});
});

t('refused before anything is stored: out of bounds, not an integer, unknown fields, an unknown worker, a non-admin key', async () => {
  await fleet.setLaunchOverride('w1', { networkPool: 7 });
  const cases: Array<[string, unknown, string, number, RegExp]> = [
    ['w1', { networkPool: 257 }, ADMIN_KEY, 400, /networkPool/],
    ['w1', { networkPool: -1 }, ADMIN_KEY, 400, /networkPool/],
    ['w1', { launchConcurrency: 0 }, ADMIN_KEY, 400, /launchConcurrency/],
    ['w1', { launchConcurrency: 65 }, ADMIN_KEY, 400, /launchConcurrency/],
    ['w1', { networkPool: 2.5 }, ADMIN_KEY, 400, /networkPool/],
    ['w1', { networkPool: '10' }, ADMIN_KEY, 400, /networkPool/],
    ['w1', { networkPool: 10, poolSize: 3 }, ADMIN_KEY, 400, /unknown field/],
    ['ghost', { networkPool: 10 }, ADMIN_KEY, 404, /ghost is not registered/],
    ['Bad_Id', { networkPool: 10 }, ADMIN_KEY, 400, /id/],
    ['w1', { networkPool: 10 }, OPERATOR_KEY, 403, /operator key cannot make this call/],
    ['w1', { networkPool: 10 }, PLATFORM_KEY, 403, /platform key cannot make this call/],
  ];
  for (const [id, body, key, status, detail] of cases) {
    const res = await put(id, body, key);
    assert.is(res.statusCode, status, `${id} ${JSON.stringify(body)}: ${res.body}`);
    assert.match(res.json().detail ?? '', detail, res.body);
  }
  assert.equal(await fleet.launchOverride('w1'), { networkPool: 7 }, 'nothing refused was stored');
  assert.equal((await fleet.list()).workers.map((w) => w.record.id), ['w1'], 'nothing registered');
});

t('an admin\'s changes and refusals are in the audit trail, named, with the worker as target', async () => {
  assert.is((await put('w1', { networkPool: 999 })).statusCode, 400);
  assert.is((await put('w1', { networkPool: 12 })).statusCode, 200);
  const res = await app.inject({ url: '/status/audit', headers: { 'x-api-key': ADMIN_KEY } });
  assert.is(res.statusCode, 200, res.body);
  const entries = (res.json().entries as { who: string; action: string; target?: string; result: string }[]).filter((e) => e.action === 'set worker launch settings');
  assert.equal(entries.slice(0, 2).map((e) => [e.who, e.target, e.result]), [['POSEIDON_API_KEY', 'w1', 'ok'], ['POSEIDON_API_KEY', 'w1', 'refused']]);
});

t.run();
