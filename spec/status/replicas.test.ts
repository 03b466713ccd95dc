/**
 * The audit trail shared on Redis (fastify inject): two status-route instances ("replicas") on one
 * Redis see each other's actions, a new one (a restart) sees them too, and a Redis that cannot be
 * reached never fails an action, while reading the trail answers a 503 problem.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { buildApp } from '../../src/api/app.ts';
import { keyDigest } from '../../src/api/auth.ts';
import type { WorkerRouteDeps } from '../../src/api/worker-routes.ts';
import type { Catalog } from '../../src/catalog/catalog.ts';
import type { WorkerAdmin } from '../../src/core/worker.ts';
import type { AuditEntry, AuditTrail } from '../../src/status/audit.ts';
import { MemoryStore } from '../../src/store/memory.ts';
import { RedisAuditTrail } from '../../src/store/redis-audit.ts';
import { loadTestCatalog } from '../helpers/catalog.ts';
import { haveRedis, REDIS_URL } from '../helpers/deps.ts';
import { cleanupRedisPrefix } from '../helpers/redis.ts';

const t = suite('status: the audit trail shared by replicas on Redis (inject)');
const ADMIN_KEY = 'replicas-admin-key-0123456789';
const OPERATOR_KEY = 'replicas-operator-key-0123456789';
const SECRET = 'replicas-access-secret-0123456789';
const HOST = 'poseidon.ctf.test';
const browser = { host: HOST, origin: `http://${HOST}`, 'sec-fetch-site': 'same-origin' };
const dir = mkdtempSync(path.join(tmpdir(), 'poseidon-status-replicas-'));
const prefix = `poseidon-test-${randomBytes(6).toString('hex')}:`;
const store = new MemoryStore();
const admins: Record<string, WorkerAdmin> = { w1: 'active' };
let catalog: Catalog;
const opened: { app: ReturnType<typeof buildApp>; trail: AuditTrail }[] = [];

const workers: WorkerRouteDeps = {
  view: {
    workers: () => Object.keys(admins).map((id) => ({
      id, address: '10.0.0.1', runtimes: ['runc'], labels: {}, capacity: { slots: 10, cpu: 4, memoryBytes: 2 ** 30 }, publicKey: 'k', version: 'test',
      heartbeatAt: Date.now(), startedAt: Date.now(), admin: admins[id] ?? 'active', state: admins[id] === 'active' ? 'ready' as const : 'cordoned' as const,
    })),
    images: () => ({}), loads: () => new Map(), now: () => Date.now(), refresh: async () => undefined,
  },
  fleet: { setAdmin: async (id: string, admin: WorkerAdmin) => { if (!(id in admins)) return false; admins[id] = admin; return true; }, setLaunchOverride: async (id: string) => id in admins },
  changed: () => undefined,
};

/** One replica: its own app and its own Redis client on the shared prefix (or on `url`). */
function replica(url = REDIS_URL): ReturnType<typeof buildApp> {
  const trail = new RedisAuditTrail({ url, prefix });
  const lifecycle = { teamLimit: 0, capacity: 0, rateLimits: new Map(), renewMaxLoad: 1, idempotencyTtlMs: 60_000, flagSecret: 'replicas-flag-secret-0123456789', flagRetentionMs: 60_000 };
  const app = buildApp({
    store, catalog, apiKey: ADMIN_KEY, baseDomain: 'ctf.test', lifecycle, workers, statusSecret: SECRET, audit: trail,
    apiKeys: [{ name: 'ops', role: 'operator', digest: keyDigest(OPERATOR_KEY) }],
  });
  opened.push({ app, trail });
  return app;
}

async function auditOf(app: ReturnType<typeof buildApp>): Promise<{ entries: AuditEntry[]; scope: string; body: string }> {
  const res = await app.inject({ url: '/status/audit', headers: { 'x-api-key': OPERATOR_KEY } });
  assert.is(res.statusCode, 200, res.body);
  return { ...(res.json() as { entries: AuditEntry[]; scope: string }), body: res.body };
}

/** The audit as `app` answers it once `pred` holds (another replica's write travels on another connection). */
async function eventually(app: ReturnType<typeof buildApp>, pred: (entries: AuditEntry[]) => boolean, what: string): Promise<{ entries: AuditEntry[]; scope: string; body: string }> {
  const deadline = Date.now() + 3000;
  for (;;) {
    const a = await auditOf(app);
    if (pred(a.entries)) return a;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(a.entries.slice(0, 5))}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const has = (who: string, action: string, target?: string) => (entries: AuditEntry[]): boolean =>
  entries.some((e) => e.who === who && e.action === action && (target === undefined || e.target === target));

t.before(async () => {
  mkdirSync(path.join(dir, 'web'));
  writeFileSync(path.join(dir, 'web', 'challenge.yaml'), 'id: web\nname: web\nimage: busybox:1.35\nexpose: [{ name: web, port: 80 }]\n');
  catalog = await loadTestCatalog(dir);
});
t.after(async () => {
  for (const { app, trail } of opened) {
    await app.close();
    await trail.close();
  }
  await cleanupRedisPrefix(prefix);
  rmSync(dir, { recursive: true, force: true });
});

if (haveRedis()) {
  t('two replicas on one Redis see each other\'s actions; a restarted one sees them all; never a key', async () => {
    const a = replica();
    const b = replica();
    // Each action is awaited on the other replica before the next: the trail is in arrival order,
    // and writes from two replicas travel on two connections.
    const signIn = await a.inject({ method: 'POST', url: '/status/login', headers: browser, payload: { key: OPERATOR_KEY } });
    assert.is(signIn.statusCode, 200, signIn.body);
    const onB = await eventually(b, has('ops', 'sign in'), "replica a's sign-in on replica b");
    assert.is(onB.scope, 'shared');
    const cordon = await b.inject({ method: 'POST', url: '/v1/workers/w1/cordon', headers: { 'x-api-key': ADMIN_KEY } });
    assert.is(cordon.statusCode, 200, cordon.body);
    const onA = await eventually(a, has('POSEIDON_API_KEY', 'cordon worker', 'w1'), "replica b's cordon on replica a");
    assert.is(onA.scope, 'shared');
    const cookie = String(signIn.headers['set-cookie']).split(';')[0] as string;
    for (const secret of [ADMIN_KEY, OPERATOR_KEY, SECRET, cookie.split('=')[1] as string]) {
      assert.not.ok(onA.body.includes(secret));
      assert.not.ok(onB.body.includes(secret));
    }
    const uncordon = await a.inject({ method: 'POST', url: '/v1/workers/w1/uncordon', headers: { 'x-api-key': ADMIN_KEY } });
    assert.is(uncordon.statusCode, 200, uncordon.body);
    const restarted = replica();
    const seen = await eventually(restarted, has('POSEIDON_API_KEY', 'uncordon worker', 'w1'), 'every action on a new replica');
    const ours = seen.entries.map((e) => [e.who, e.action, e.target, e.via].filter(Boolean).join(' '));
    assert.equal(ours.slice(0, 3), ['POSEIDON_API_KEY uncordon worker w1 key', 'POSEIDON_API_KEY cordon worker w1 key', 'ops sign in key']);
  });
}

t('with Redis unreachable an action still succeeds; reading the trail is a 503 problem without the password', async () => {
  const app = replica('redis://:s3cret-pw@127.0.0.1:1');
  const cordon = await app.inject({ method: 'POST', url: '/v1/workers/w1/cordon', headers: { 'x-api-key': ADMIN_KEY } });
  assert.is(cordon.statusCode, 200, cordon.body);
  const signIn = await app.inject({ method: 'POST', url: '/status/login', headers: browser, payload: { key: ADMIN_KEY } });
  assert.is(signIn.statusCode, 200, signIn.body);
  const res = await app.inject({ url: '/status/audit', headers: { 'x-api-key': OPERATOR_KEY } });
  assert.is(res.statusCode, 503, res.body);
  assert.match(String(res.headers['content-type']), /^application\/problem\+json/);
  assert.is(res.json().code, 'E_STORE');
  assert.match(res.json().detail, /audit trail/);
  assert.not.ok(res.body.includes('s3cret-pw'));
  admins.w1 = 'active';
});

t.run();
