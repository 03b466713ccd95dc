/**
 * Every store script names every key it touches (issue 12). The whole Redis store suite
 * (spec/store/redis.test.ts: the contract for both adapters' shared behaviour plus the Redis-only
 * cases) runs in a child process against a throwaway one-node Redis Cluster, with its
 * hash-tagged test prefixes, while MONITOR records each command every script runs; every key such
 * a command names must be among that call's KEYS. Redis refuses a key in another slot (and a
 * script whose declared keys span slots: CROSSSLOT) but not an undeclared key in the same slot,
 * so the per-command check is ours; a negative control shows it catches exactly that. The other
 * Redis adapters' suites run under the same check on a standalone node.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { isPoseidonError } from '../../src/core/errors.ts';
import { FENCED } from '../../src/core/manager-lease.ts';
import type { LifecycleEvent } from '../../src/events/hub.ts';
import { RedisStore } from '../../src/store/redis.ts';
import { RedisOutbox } from '../../src/store/redis-outbox.ts';
import { STORE_SCRIPTS } from '../../src/store/redis-scripts.ts';
import { ROOT } from '../helpers/deps.ts';
import { makeInstance, NOW } from './helpers.ts';
import { haveRedisServer, record, sha1, startThrowaway, undeclaredKeys, type Throwaway } from './redis-keys-rig.ts';

/** Runs the uvu files matching `pattern` with the store tests' Redis at `url`; resolves with the exit code and output. */
function runSuite(pattern: string, url: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'node_modules/uvu/bin.js', 'spec', pattern], {
      cwd: ROOT, env: { ...process.env, POSEIDON_TEST_REDIS_URL: url }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

const test = suite<{ redis?: Throwaway }>('redis scripts declare their keys (one-node Cluster)', {});

test.before(async (ctx) => {
  ctx.redis = await startThrowaway({ cluster: true });
});
test.after(async (ctx) => {
  await ctx.redis?.stop();
});

test('the Redis store suite passes on a Cluster node, and every key each script touched was declared', async (ctx) => {
  const url = ctx.redis!.url;
  const rec = await record(url);
  try {
    const { code, output } = await runSuite('store/redis\\.test\\.ts$', url);
    assert.is(code, 0, `the store suite failed on the Cluster node:\n${output.slice(-4000)}`);
    await rec.settle();
    assert.equal(rec.orphans.slice(0, 3), [], 'script commands with no script call before them');
    const ran = rec.runs.reduce((n, r) => n + r.ran.length, 0);
    assert.ok(rec.runs.length > 1000 && ran > 2000, `only ${rec.runs.length} script calls and ${ran} commands seen`);
    const names = new Map(Object.entries(STORE_SCRIPTS).map(([name, s]) => [sha1(s.lua), name]));
    const undeclared = (await undeclaredKeys(url, rec.runs)).map((u) => ({ ...u, sha: names.get(u.sha) ?? u.sha }));
    assert.equal(undeclared.slice(0, 5), [], `${undeclared.length} undeclared key accesses`);
    const shas = new Set(rec.runs.map((r) => r.sha));
    const unexercised = [...names].filter(([sha]) => !shas.has(sha)).map(([, name]) => name);
    assert.equal(unexercised, [], 'every store script ran');
  } finally {
    rec.stop();
  }
});

test('negative control: a script that follows a key it was not given is caught', async (ctx) => {
  const url = ctx.redis!.url;
  const p = `{poseidon-test-${randomBytes(4).toString('hex')}}:`;
  const admin = new Redis(url);
  const rec = await record(url);
  try {
    await admin.set(`${p}slot:o:c`, 'abc');
    // The old create: read the slot, then the holder's hash by a key computed inside the script.
    const follow = "local held = redis.call('GET', KEYS[1]); return redis.call('HGETALL', ARGV[1] .. 'inst:' .. held)";
    await admin.eval(follow, 1, `${p}slot:o:c`, p);
    await rec.settle();
    const undeclared = await undeclaredKeys(url, rec.runs);
    assert.equal(undeclared.map((u) => [u.sha, u.key]), [[sha1(follow), `${p}inst:abc`]]);
  } finally {
    rec.stop();
    await admin.del(`${p}slot:o:c`);
    admin.disconnect();
  }
});

test('a prefix without a hash tag spreads keys over slots: Cluster refuses the scripts (CROSSSLOT)', async (ctx) => {
  const store = new RedisStore({ url: ctx.redis!.url, prefix: `poseidon-test-${randomBytes(4).toString('hex')}:` });
  try {
    const err = await store.createInstance(makeInstance(), NOW).then(() => undefined, (e: unknown) => e);
    assert.ok(isPoseidonError(err, 'E_STORE'), String(err));
    assert.match(String((err as Error).message), /CROSSSLOT|hash to the same slot/);
  } finally {
    await store.close();
  }
});

/*
 * The other Redis adapters' scripts (worker registry, port leases, manager lease, webhook outbox)
 * under the same check, on a standalone node: their suites use prefixes without a hash tag.
 */
const others = suite('the other Redis adapters\' scripts declare their keys');

/** Drives the webhook outbox's two scripts (it has no suite of its own on Redis): a duplicate append, a fresh and a stale commit. */
async function driveOutbox(url: string): Promise<void> {
  const prefix = `poseidon-test-${randomBytes(4).toString('hex')}:`;
  const outbox = new RedisOutbox({ url, prefix });
  const admin = new Redis(url);
  try {
    const inst = makeInstance();
    const event: LifecycleEvent = {
      id: `ev-${inst.id}`, seq: 1, type: 'status', at: new Date(NOW).toISOString(),
      instance: { id: inst.id, challenge: inst.challenge, team: inst.team, status: inst.status, expiresAt: new Date(inst.expiresAt).toISOString() },
    };
    assert.equal([await outbox.append(event), await outbox.append(event)], [true, false]);
    const [entry] = (await outbox.pending(10)).entries;
    assert.ok(entry);
    await admin.set(`${prefix}fence`, '5');
    await outbox.commit(entry, { token: 5 });
    const stale = await outbox.commit(entry, { token: 4 }).then(() => undefined, (e: unknown) => e);
    assert.ok(isPoseidonError(stale, FENCED), String(stale));
  } finally {
    await outbox.close();
    admin.disconnect();
  }
}

others('fleet, port lease, manager lease and outbox: every key their scripts touched was declared', async () => {
  const redis = await startThrowaway({ cluster: false });
  const rec = await record(redis.url).catch(async (err: unknown) => {
    await redis.stop();
    throw err;
  });
  try {
    const { code, output } = await runSuite('store/(fleet|leases-redis|manager-lease)\\.test\\.ts$', redis.url);
    assert.is(code, 0, `the suites failed:\n${output.slice(-4000)}`);
    await driveOutbox(redis.url);
    await rec.settle();
    assert.ok(rec.runs.length > 100, `only ${rec.runs.length} script calls seen`);
    assert.equal(rec.orphans.slice(0, 3), []);
    const undeclared = await undeclaredKeys(redis.url, rec.runs);
    assert.equal(undeclared.slice(0, 5), [], `${undeclared.length} undeclared key accesses`);
    const outboxRuns = rec.runs.filter((r) => r.declared.some((k) => /webhooks(:seen:|:cursor$)/.test(k)));
    assert.is(outboxRuns.length, 4, 'two appends and two commits of the outbox were checked');
  } finally {
    rec.stop();
    await redis.stop();
  }
});

if (haveRedisServer()) {
  test.run();
  others.run();
}
