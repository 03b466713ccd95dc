/**
 * Redis through Sentinel from the configuration down (issue 12): REDIS_SENTINELS with
 * REDIS_SENTINEL_NAME, or a redis+sentinel:// URL, reach the current primary through real
 * sentinels (spec/helpers/sentinel.ts) for the store, the fleet registry, the manager lease and
 * the catalog; a wrong name, a wrong password or unreachable sentinels give an error that says
 * which, quickly, and never the password.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { RedisCatalogStore } from '../../src/catalog/catalog-store.ts';
import { loadConfig } from '../../src/config/config.ts';
import { isPoseidonError } from '../../src/core/errors.ts';
import { openStore } from '../../src/store/open.ts';
import { RedisFleet } from '../../src/store/redis-fleet.ts';
import { createRedisClient, sentinelOptions } from '../../src/store/redis-client.ts';
import { RedisManagerLease } from '../../src/store/redis-manager-lease.ts';
import { haveSentinel, ROOT } from '../helpers/deps.ts';
import { startSentinelRig, type SentinelRig } from '../helpers/sentinel.ts';
import { workerRecord } from './fleet-contract.ts';
import { makeInstance, NOW } from './helpers.ts';

// Characters a URL must percent-encode, so both the raw and the encoded form must stay secret.
const PASSWORD = 'p@ss:w0rd/Sent1nel';
const ENCODED = encodeURIComponent(PASSWORD);

const test = suite('redis sentinel: configuration and clients');
let rigStart: Promise<SentinelRig> | undefined;
const dir = mkdtempSync(path.join(tmpdir(), 'poseidon-sentinel-config-'));

/** One rig for the file, started on first use; a start failure fails each test that needs it. */
function rig(): Promise<SentinelRig> {
  rigStart ??= startSentinelRig({ password: PASSWORD });
  return rigStart;
}

test.after(async () => {
  await (await rigStart?.catch(() => undefined))?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function env(extra: Record<string, string>): Record<string, string> {
  return { POSEIDON_API_KEY: 'k'.repeat(24), POSEIDON_FLAG_SECRET: 'f'.repeat(24), POSEIDON_ACCESS_SECRET: 'a'.repeat(24), POSEIDON_DATA_DIR: path.join(dir, 'data'), ...extra };
}

function prefix(): string {
  return `poseidon-sentinel-${randomBytes(5).toString('hex')}:`;
}

/** Asserts `err` is an E_STORE error mentioning every `needles` and neither form of the password. */
function clearError(err: unknown, needles: RegExp[]): void {
  assert.ok(isPoseidonError(err, 'E_STORE'), `E_STORE expected, got ${String(err)}`);
  const text = `${(err as Error).message} ${String((err as Error).cause)}`;
  for (const n of needles) assert.match(text, n);
  assert.not.ok(text.includes(PASSWORD) || text.includes(ENCODED), `password leaked: ${text}`);
}

/**
 * The errors a bare client on `url` emits while its first command fails (it gives up after one
 * reconnect attempt); the one carrying `code`, asserted to exist and to hold no password.
 */
async function codedClientError(url: string, code: string): Promise<Error> {
  const client = createRedisClient(url);
  const errors: Error[] = [];
  client.on('error', (e: Error) => errors.push(e));
  try {
    await client.ping().then(() => assert.unreachable('PING answered'), () => undefined);
  } finally {
    client.disconnect();
  }
  const coded = errors.find((e) => (e as { code?: unknown }).code === code);
  assert.ok(coded, `an error with code ${code} expected, got: ${errors.map((e) => e.message).join(' | ')}`);
  assert.not.ok(coded.message.includes(PASSWORD) || coded.message.includes(ENCODED), `password leaked: ${coded.message}`);
  return coded;
}

test('REDIS_SENTINELS + REDIS_SENTINEL_NAME (password from REDIS_URL): the store reaches the primary and the replica gets the writes', async () => {
  if (!haveSentinel()) return;
  const r = await rig();
  const config = loadConfig(env({ REDIS_URL: `redis://:${ENCODED}@ignored.invalid:6379`, REDIS_SENTINELS: r.sentinels.join(','), REDIS_SENTINEL_NAME: r.name }), dir);
  assert.is(config.redisUrl, r.url);
  const p = prefix();
  const store = await openStore({ redisUrl: config.redisUrl as string, prefix: p, waitReplicas: config.redisWaitReplicas });
  try {
    const inst = makeInstance({ team: 'sentinel-config' });
    assert.ok((await store.createInstance(inst, NOW)).created);
    assert.is((await store.getInstance(inst.id))?.id, inst.id);
    const primary = await r.primary();
    assert.is(await r.ask(primary, 'EXISTS', `${p}inst:${inst.id}`), 1, 'written on the primary the sentinels name');
    await r.waitCaughtUp();
    const replica = r.nodes.find((n) => n !== primary) as string;
    assert.is(await r.ask(replica, 'EXISTS', `${p}inst:${inst.id}`), 1, 'and replicated');
  } finally {
    await store.close();
  }
});

test('a redis+sentinel:// URL with POSEIDON_REDIS_WAIT_REPLICAS=1: store (replicated launch), fleet, manager lease and catalog work; a worker accepts it too', async () => {
  if (!haveSentinel()) return;
  const r = await rig();
  const config = loadConfig(env({ REDIS_URL: r.url, POSEIDON_REDIS_WAIT_REPLICAS: '1' }), dir);
  assert.is(config.redisWaitReplicas, 1);
  assert.is(loadConfig(env({ REDIS_URL: r.url }), dir, { role: 'worker' }).redisUrl, r.url);
  const url = config.redisUrl as string;
  const p = prefix();
  const store = await openStore({ redisUrl: url, prefix: p, waitReplicas: config.redisWaitReplicas });
  const fleet = new RedisFleet({ url, prefix: p });
  const lease = new RedisManagerLease({ url, prefix: p });
  const catalog = new RedisCatalogStore(url, p);
  try {
    const inst = makeInstance({ team: 'sentinel-wait' });
    assert.ok((await store.createInstance(inst, NOW)).created, 'WAIT 1 is met by the one replica');
    const hb = await fleet.heartbeat(workerRecord('w-sentinel'));
    assert.ok(hb.heartbeatAt > 0);
    assert.equal((await fleet.list()).workers.map((w) => w.record.id), ['w-sentinel']);
    const token = await lease.acquire('m1', 10_000);
    assert.ok(token > 0);
    assert.is((await lease.state()).holder, 'm1');
    assert.is(await catalog.load(), undefined);
  } finally {
    await Promise.all([store.close(), fleet.close(), lease.close(), catalog.close()]);
  }
});

test('a wrong master name: openStore fails fast with E_STORE naming the name and the setting, never the password', async () => {
  if (!haveSentinel()) return;
  const r = await rig();
  const wrong = loadConfig(env({ REDIS_URL: `redis://:${ENCODED}@x:1`, REDIS_SENTINELS: r.sentinels.join(','), REDIS_SENTINEL_NAME: 'no-such-primary' }), dir);
  const t0 = Date.now();
  const err = await openStore({ redisUrl: wrong.redisUrl as string, prefix: prefix() }).then(() => undefined, (e: unknown) => e);
  console.log(`      wrong name refused after ${Date.now() - t0} ms: ${(err as Error).message}`);
  clearError(err, [/no sentinel knows a primary named "no-such-primary"/, /REDIS_SENTINEL_NAME/, new RegExp(r.sentinels[0] as string)]);
  // The client's own error carries a stable code (what the store's message is made from).
  const coded = await codedClientError(wrong.redisUrl as string, 'E_SENTINEL_NAME');
  assert.match(coded.message, /no sentinel knows a primary named "no-such-primary"/);
  // The other adapters reject too (they share the client factory), without the password.
  const lease = new RedisManagerLease({ url: wrong.redisUrl as string, prefix: prefix() });
  try {
    const leaseErr = await lease.acquire('m1', 1000).then(() => undefined, (e: unknown) => e);
    assert.ok(isPoseidonError(leaseErr, 'E_STORE'), String(leaseErr));
    assert.not.ok((leaseErr as Error).message.includes(PASSWORD) || (leaseErr as Error).message.includes(ENCODED));
  } finally {
    await lease.close();
  }
});

test('a wrong password and unreachable sentinels: each says what happened at which sentinel, never the password', async () => {
  if (!haveSentinel()) return;
  const r = await rig();
  const badPass = r.url.replace(ENCODED, encodeURIComponent('not-the-password'));
  const err = await openStore({ redisUrl: badPass, prefix: prefix() }).then(() => undefined, (e: unknown) => e);
  clearError(err, [/WRONGPASS|NOAUTH|invalid password/i, new RegExp(r.sentinels[0] as string)]);
  assert.not.ok((err as Error).message.includes('not-the-password'), 'nor the wrong one');
  const dead = `redis+sentinel://:${ENCODED}@127.0.0.1:1,127.0.0.1:2/${r.name}`;
  const err2 = await openStore({ redisUrl: dead, prefix: prefix() }).then(() => undefined, (e: unknown) => e);
  console.log(`      unreachable sentinels: ${(err2 as Error).message}`);
  clearError(err2, [/127\.0\.0\.1:1: no connection/, /127\.0\.0\.1:2: no connection/]);
  await codedClientError(dead, 'E_SENTINEL_UNREACHABLE');
});

test('under CI=true a missing redis-server or redis-sentinel fails the test; locally it is a loud skip', () => {
  // A child process with an empty PATH: neither binary can be found.
  const probe = (ci: boolean) => spawnSync(process.execPath, [
    '--import', 'tsx', '--input-type=module', '-e',
    "import { haveSentinel } from './spec/helpers/deps.ts'; console.log(`result=${haveSentinel()}`);",
  ], { cwd: ROOT, env: { ...process.env, PATH: dir, CI: ci ? 'true' : 'false' }, encoding: 'utf8', timeout: 60_000 });
  const ci = probe(true);
  assert.is.not(ci.status, 0, `exit status under CI=true: ${String(ci.status)}\n${ci.stderr}`);
  assert.match(ci.stderr, /Redis Sentinel \(redis-server and redis-sentinel\) is required under CI=true/);
  assert.not.match(ci.stdout, /result=/);
  const local = probe(false);
  assert.is(local.status, 0, local.stderr);
  assert.match(local.stdout, /result=false/);
  assert.match(local.stderr, /SKIPPED: Redis Sentinel/);
});

test('sentinelOptions: sentinels (port 26379 by default), name, db and the decoded password; a malformed URL is refused without echoing it', () => {
  const o = sentinelOptions(`redis+sentinel://:${ENCODED}@10.0.0.1:26380,sentinel-b,[::1]:5000,[fe80::1]/my.primary-1/3`);
  assert.equal(o.sentinels, [{ host: '10.0.0.1', port: 26380 }, { host: 'sentinel-b', port: 26379 }, { host: '::1', port: 5000 }, { host: 'fe80::1', port: 26379 }]);
  assert.is(o.name, 'my.primary-1');
  assert.is(o.db, 3);
  assert.is(o.password, PASSWORD);
  assert.is(o.sentinelPassword, PASSWORD);
  const plain = sentinelOptions('redis+sentinel://127.0.0.1:26379/mymaster');
  assert.is(plain.password, undefined);
  assert.is(plain.db, undefined);
  const bad = [`redis+sentinel://:${ENCODED}@h:1`, `redis+sentinel://:${ENCODED}@h:0/m`, `redis+sentinel://:${ENCODED}@h:70000/m`, `redis+sentinel://:${ENCODED}@h:1/bad name`];
  for (const url of bad) {
    try {
      sentinelOptions(url);
      assert.unreachable(`accepted ${url.replace(ENCODED, '***')}`);
    } catch (err) {
      assert.ok(err instanceof Error && !(err.message.includes(PASSWORD) || err.message.includes(ENCODED)), String(err));
      assert.match((err as Error).message, /Sentinel URL/);
    }
  }
});

test('REDIS_SENTINELS without REDIS_SENTINEL_NAME (and the reverse) is a configuration error', () => {
  const halves: Record<string, string>[] = [{ REDIS_SENTINELS: '127.0.0.1:26379' }, { REDIS_SENTINEL_NAME: 'mymaster' }];
  for (const extra of halves) {
    try {
      loadConfig(env(extra), dir);
      assert.unreachable('accepted');
    } catch (err) {
      assert.ok(isPoseidonError(err, 'E_CONFIG_INVALID'), String(err));
      assert.match((err as Error).message, /REDIS_SENTINELS and REDIS_SENTINEL_NAME go together/);
    }
  }
});

test.run();
