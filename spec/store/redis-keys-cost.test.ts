/**
 * A launch costs the same Redis work however many instances are admitted (issue 12): on a
 * throwaway Redis, MONITOR counts the commands the client sends and the commands scripts run
 * for a create (admitted, queued, refused by the team limit), an admission and the counting
 * reads, first with 10 admitted instances and then with 5,000. Counts commands, never time: a
 * create that walked the admitted instances would run thousands more at 5,000.
 */
import { randomBytes } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Store } from '../../src/core/store.ts';
import { RedisStore } from '../../src/store/redis.ts';
import { makeInstance, NOW } from './helpers.ts';
import { haveRedisServer, record, startThrowaway, type Recorder, type Throwaway } from './redis-keys-rig.ts';

interface Cost {
  /** Commands the client sent. */
  sent: number;
  /** Commands scripts ran inside Redis. */
  inScripts: number;
}

/** What `op` cost, as MONITOR saw it. */
async function cost(rec: Recorder, op: () => Promise<unknown>): Promise<Cost> {
  await rec.settle();
  rec.seen.length = 0;
  await op();
  await rec.settle();
  const inScripts = rec.seen.filter((s) => s.source === 'lua').length;
  return { sent: rec.seen.length - inScripts, inScripts };
}

/** Stores `n` admitted (pending, live) instances of distinct teams. */
async function admit(st: Store, n: number, tag: string): Promise<void> {
  for (let i = 0; i < n; i += 500) {
    const batch = Array.from({ length: Math.min(500, n - i) }, (_, j) => makeInstance({ team: `${tag}-${i + j}` }));
    const results = await Promise.all(batch.map((inst) => st.createInstance(inst, NOW)));
    assert.ok(results.every((r) => r.created && r.instance.status === 'pending'));
  }
}

/** The cost of each operation a launch or an admission pass makes, with the store as it is. */
async function costs(st: Store, rec: Recorder, round: string): Promise<Record<string, Cost>> {
  const admitted = await st.countAdmitted(NOW);
  const team = `${round}-limited`;
  await st.createInstance(makeInstance({ team, challenge: 'held' }), NOW);
  const queued = makeInstance({ team: `${round}-queued` });
  return {
    'create (admitted)': await cost(rec, () => st.createInstance(makeInstance({ team: `${round}-new` }), NOW, { capacity: 1_000_000, teamLimit: 5 })),
    'create (queued)': await cost(rec, async () => {
      const r = await st.createInstance(queued, NOW, { capacity: admitted, teamLimit: 5 });
      assert.ok(r.created && r.instance.status === 'queued');
    }),
    'create (team limit)': await cost(rec, async () => {
      const r = await st.createInstance(makeInstance({ team, challenge: 'other' }), NOW, { teamLimit: 1 });
      assert.ok(!r.created && r.reason === 'team-limit');
    }),
    admit: await cost(rec, async () => assert.is(await st.admit(queued.id, NOW, 1_000_000, { expiresAt: NOW + 60_000, maxExpiresAt: NOW + 120_000 }), 'admitted')),
    countAdmitted: await cost(rec, () => st.countAdmitted(NOW)),
    admittedExpiry: await cost(rec, () => st.admittedExpiry(1, NOW)),
    queuePosition: await cost(rec, () => st.queuePosition(queued.id)),
  };
}

const test = suite<{ redis?: Throwaway; store?: RedisStore; rec?: Recorder }>('redis store: work per launch is independent of the admitted count', {});

test.before(async (ctx) => {
  ctx.redis = await startThrowaway({ cluster: false });
  ctx.store = new RedisStore({ url: ctx.redis.url, prefix: `{poseidon-test-${randomBytes(4).toString('hex')}}:` });
  ctx.rec = await record(ctx.redis.url);
});
test.after(async (ctx) => {
  ctx.rec?.stop();
  await ctx.store?.close();
  await ctx.redis?.stop();
});

test('create, admit and the counting reads run as many commands at 5,000 admitted as at 10', async (ctx) => {
  const st = ctx.store!;
  const rec = ctx.rec!;
  await admit(st, 10, 'few');
  const few = await costs(st, rec, 'few');
  await admit(st, 4990, 'many');
  rec.runs.length = 0;
  assert.ok((await st.countAdmitted(NOW)) >= 5000);
  const many = await costs(st, rec, 'many');
  const perCreate = (c: Record<string, Cost>): string => Object.entries(c).map(([op, x]) => `${op} ${x.sent}+${x.inScripts}`).join(', ');
  console.log(`  commands sent+run in scripts at ~10 admitted: ${perCreate(few)}\n  at ~5,000 admitted: ${perCreate(many)}`);
  assert.equal(many, few);
  assert.ok((few['create (admitted)']?.inScripts ?? 0) < 50, 'a create runs a few dozen commands at most');
});

if (haveRedisServer()) test.run();
