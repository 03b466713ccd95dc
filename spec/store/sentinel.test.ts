/**
 * Redis failover through Sentinel, for real (issue 12): a primary, a replica and three
 * sentinels from Debian's packages (spec/helpers/sentinel.ts); the primary is SIGKILLed.
 * - No acknowledged launch is lost: with waitReplicas 1 every create that resolved (what the
 *   API answers 202 for) exists after the failover; with 0 the counts are only reported.
 * - Clients reconnect by themselves: change events, fleet heartbeats, the manager lease.
 * - The old primary, restarted, rejoins as a replica and loses nothing written since.
 * Figures (failover time, acknowledged vs present) are printed, never asserted.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Store } from '../../src/core/store.ts';
import { openStore } from '../../src/store/open.ts';
import { RedisFleet } from '../../src/store/redis-fleet.ts';
import { RedisManagerLease } from '../../src/store/redis-manager-lease.ts';
import { haveSentinel } from '../helpers/deps.ts';
import { startSentinelRig, type SentinelRig, type SentinelRigOptions } from '../helpers/sentinel.ts';
import { workerRecord } from './fleet-contract.ts';
import { listenSettled, makeInstance } from './helpers.ts';

const test = suite('redis sentinel: failover');

function prefix(): string {
  return `poseidon-failover-${randomBytes(5).toString('hex')}:`;
}

/** Runs `fn` with a fresh rig that is stopped (every process, by pid) whatever happens. */
async function withRig(opts: SentinelRigOptions, fn: (rig: SentinelRig) => Promise<void>): Promise<void> {
  const rig = await startSentinelRig(opts);
  try {
    await fn(rig);
  } finally {
    await rig.stop();
  }
}

let serial = 0;
/** A live instance (unique owner, so no one-per-owner refusal) on the real clock. */
function launchable() {
  const now = Date.now();
  const team = `t${++serial}`;
  return makeInstance({ team, owner: `team:${team}`, createdAt: now, updatedAt: now, expiresAt: now + 3_600_000, maxExpiresAt: now + 7_200_000 });
}

interface Launches {
  attempts: number;
  acked: string[];
  rejected: string[];
  errors: Map<string, number>;
}

function noLaunches(): Launches {
  return { attempts: 0, acked: [], rejected: [], errors: new Map() };
}

/**
 * `concurrency` callers create instances until `target` were acknowledged, `maxAttempts` were
 * made, `timeoutMs` passed or `stop()` holds; a rejected caller backs off `backoffMs` (as a
 * client retrying would). Never throws: every outcome is counted.
 */
async function launchStream(store: Store, out: Launches, o: { target: number; maxAttempts: number; timeoutMs: number; concurrency: number; backoffMs: number; onAck: (n: number) => void; stop: () => boolean }): Promise<Launches> {
  const deadline = Date.now() + o.timeoutMs;
  const more = () => out.acked.length < o.target && out.attempts < o.maxAttempts && Date.now() < deadline && !o.stop();
  const caller = async () => {
    while (more()) {
      out.attempts++;
      const inst = launchable();
      try {
        const r = await store.createInstance(inst, inst.createdAt);
        (r.created ? out.acked : out.rejected).push(inst.id);
        if (r.created) o.onAck(out.acked.length);
      } catch (err) {
        out.rejected.push(inst.id);
        const key = (err as Error).message.replace(/[0-9]+/g, 'N').slice(0, 200);
        out.errors.set(key, (out.errors.get(key) ?? 0) + 1);
        await sleep(o.backoffMs);
      }
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, caller));
  return out;
}

/** Ids of `ids` that exist, read through a fresh store on the sentinel URL (new connections). */
async function present(url: string, p: string, ids: readonly string[]): Promise<Set<string>> {
  const reader = await openStore({ redisUrl: url, prefix: p });
  try {
    const found = await Promise.all(ids.map(async (id) => ((await reader.getInstance(id)) ? id : undefined)));
    return new Set(found.filter((x): x is string => x !== undefined));
  } finally {
    await reader.close();
  }
}

/** `fn` until it resolves: after a failover the first calls may still fail. Bounded in count and time. */
async function retried<T>(what: string, fn: () => Promise<T>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (let i = 0; i < 1000 && Date.now() < deadline; i++) {
    try {
      return await fn();
    } catch (err) {
      last = err;
      await sleep(200);
    }
  }
  throw new Error(`${what} still failing after ${timeoutMs} ms: ${String(last)}`);
}

/**
 * Calls `act` (failures tolerated: the first calls after a failover may fail) every 200 ms until
 * `done()` holds; bounded to 150 rounds and 30 s.
 */
async function repeatUntil(what: string, done: () => boolean, act: () => Promise<void>): Promise<void> {
  const deadline = Date.now() + 30_000;
  let last: unknown;
  for (let i = 0; i < 150 && Date.now() < deadline; i++) {
    try {
      await act();
    } catch (err) {
      last = err;
    }
    await sleep(200);
    if (done()) return;
  }
  throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`);
}

/**
 * Launches until 50 are acknowledged while the primary is SIGKILLed after the 15th
 * acknowledgement (creates in flight); `afterFailover` runs once the sentinels agree on the new
 * primary. Returns the stream's counts and the failover figures.
 */
async function launchThroughFailover(rig: SentinelRig, waitReplicas: number, afterFailover: () => Promise<string>) {
  const p = prefix();
  const store = await openStore({ redisUrl: rig.url, prefix: p, waitReplicas });
  let done = false;
  let reached = (): void => undefined;
  const killPoint = new Promise<void>((resolve) => { reached = resolve; });
  try {
    const counts = noLaunches();
    const stream = launchStream(store, counts, { target: 50, maxAttempts: 400, timeoutMs: 90_000, concurrency: 4, backoffMs: 300, onAck: (n) => n >= 15 && reached(), stop: () => done });
    const chaos = (async () => {
      await Promise.race([killPoint, stream]);
      const old = await rig.killPrimary();
      const ackedAtKill = counts.acked.length;
      const failover = await rig.waitFailover();
      const extra = await afterFailover();
      return { old, failover, extra, ackedAtKill };
    })();
    const [launches, figures] = await Promise.all([stream, chaos]);
    return { p, launches, ...figures };
  } finally {
    done = true;
    await store.close();
  }
}

test('waitReplicas 1: every acknowledged launch exists after the primary is killed', async () => {
  if (!haveSentinel()) return;
  await withRig({}, async (rig) => {
    const r = await launchThroughFailover(rig, 1, async () => {
      // With one replica, the promoted one has none: WAIT 1 refuses launches until the old primary rejoins.
      const back = await rig.restartOld();
      return `old primary rejoined as a replica ${back.ms} ms after its restart`;
    });
    const { launches: l } = r;
    const found = await present(rig.url, r.p, l.acked);
    const missing = l.acked.filter((id) => !found.has(id));
    const rejectedPresent = (await present(rig.url, r.p, l.rejected)).size;
    console.log(`      waitReplicas 1: failover took ${r.failover.ms} ms (${r.old} -> ${r.failover.primary}); ${r.extra}`);
    console.log(`      ${l.attempts} attempts: ${l.acked.length} acknowledged (${r.ackedAtKill} before the kill), ${l.acked.length - missing.length} of them present; ${l.rejected.length} rejected (${rejectedPresent} present anyway)`);
    for (const [e, n] of l.errors) console.log(`        ${n} x ${e}`);
    assert.ok(r.ackedAtKill >= 15, `launches were acknowledged (WAIT 1) before the kill: ${r.ackedAtKill}`);
    assert.equal(missing, [], 'an acknowledged launch was lost');
    assert.ok(l.acked.length >= 50, 'launches are acknowledged again once a replica is back');
  });
});

test('waitReplicas 0: the same stream, losses (if any) only reported', async () => {
  if (!haveSentinel()) return;
  await withRig({}, async (rig) => {
    const r = await launchThroughFailover(rig, 0, async () => 'no restart needed: the new primary acknowledges alone');
    const { launches: l } = r;
    const found = await present(rig.url, r.p, l.acked);
    console.log(`      waitReplicas 0: failover took ${r.failover.ms} ms; ${l.attempts} attempts: ${l.acked.length} acknowledged (${r.ackedAtKill} before the kill), ${found.size} of them present (${l.acked.length - found.size} lost); ${l.rejected.length} rejected`);
    assert.ok(l.acked.length >= 50, 'the new primary acknowledges launches without any restart');
  });
});

test('clients reconnect by themselves: change events, fleet heartbeats and the manager lease (its fencing token survives)', async () => {
  if (!haveSentinel()) return;
  await withRig({}, async (rig) => {
    const p = prefix();
    const watcher = await openStore({ redisUrl: rig.url, prefix: p });
    const writer = await openStore({ redisUrl: rig.url, prefix: p });
    const fleet = new RedisFleet({ url: rig.url, prefix: p });
    const lease = new RedisManagerLease({ url: rig.url, prefix: p });
    const { seen, stop } = await listenSettled(watcher, writer);
    let fleetEvents = 0;
    const unFleet = fleet.onChange(() => { fleetEvents++; });
    try {
      let version = 0;
      const beat = () => fleet.heartbeat(workerRecord('w1', { version: `0.1.${++version}` }));
      const before = await beat();
      // The subscription becomes active a moment after onChange: beat (a changed record) until an event arrives.
      await repeatUntil('a fleet change event before the failover', () => fleetEvents > 0, async () => { await beat(); });
      const token = await lease.acquire('m1', 60_000);
      await rig.waitCaughtUp(); // the lease is not WAITed for: make sure the replica has it
      await rig.killPrimary();
      const { ms } = await rig.waitFailover();
      // Change events: writes through another client reach the watcher's resubscribed connection.
      // Pub/sub drops what is published before the subscriber is back, so write until one is seen.
      const t0 = Date.now();
      const created: string[] = [];
      await repeatUntil('a change event after the failover', () => created.some((id) => seen.includes(id)), async () => {
        const inst = launchable();
        await writer.createInstance(inst, inst.createdAt);
        created.push(inst.id);
      });
      const eventMs = Date.now() - t0;
      // Fleet: heartbeats go through again, and a changed record is announced.
      const events = fleetEvents;
      await repeatUntil('a fleet change event after the failover', () => fleetEvents > events, async () => {
        assert.ok((await beat()).heartbeatAt >= before.heartbeatAt, 'heartbeat time moves on');
      });
      assert.equal((await fleet.list()).workers.map((w) => [w.record.id, w.record.version]), [['w1', `0.1.${version}`]]);
      // Lease: the holder renews with its token; the fence did not go back; the next holder gets token + 1.
      assert.ok(await retried('a lease renewal after the failover', () => lease.renew('m1', token, 60_000)), 'm1 renews its lease');
      assert.is((await lease.state()).token, token, 'the fencing token survived the failover');
      assert.is(await lease.acquire('m2', 60_000), 0, 'the lease is still held');
      await lease.release('m1', token);
      assert.is(await lease.acquire('m2', 60_000), token + 1);
      console.log(`      failover took ${ms} ms; change events flowed again ${eventMs} ms after the sentinels agreed (${created.length} writes)`);
    } finally {
      stop();
      unFleet();
      await Promise.all([watcher.close(), writer.close(), fleet.close(), lease.close()]);
    }
  });
});

test('the old primary, restarted, rejoins as a replica; nothing written after the failover is lost', async () => {
  if (!haveSentinel()) return;
  await withRig({}, async (rig) => {
    const p = prefix();
    const store = await openStore({ redisUrl: rig.url, prefix: p });
    try {
      const before = await createAll(store, 10);
      await rig.waitCaughtUp();
      const old = await rig.killPrimary();
      const { primary, ms } = await rig.waitFailover();
      const afterIds = await createAll(store, 20);
      const back = await rig.restartOld();
      assert.is(await rig.primary(), primary, 'the promoted replica stays primary');
      await rig.waitCaughtUp();
      const all = [...before, ...afterIds];
      const found = await present(rig.url, p, all);
      assert.equal(all.filter((id) => !found.has(id)), [], 'every instance is there through the sentinels');
      const onOld = await Promise.all(all.map((id) => rig.ask(old, 'EXISTS', `${p}inst:${id}`)));
      assert.equal(onOld.filter((x) => x !== 1).length, 0, 'and on the old primary, now a replica');
      // A replica again: launches that need one replica's acknowledgement are accepted again.
      const waiting = await openStore({ redisUrl: rig.url, prefix: p, waitReplicas: 1 });
      try {
        const inst = launchable();
        assert.ok((await waiting.createInstance(inst, inst.createdAt)).created);
      } finally {
        await waiting.close();
      }
      const t0 = Date.now();
      await rig.waitHealthy();
      console.log(`      failover took ${ms} ms; the old primary replicated the new one ${back.ms} ms after its restart; the sentinels saw it healthy ${Date.now() - t0} ms later`);
    } finally {
      await store.close();
    }
  });
});

/** Creates `n` instances one by one, each retried until acknowledged (bounded); their ids. */
async function createAll(store: Store, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const inst = launchable();
    await retried('a create', () => store.createInstance(inst, inst.createdAt));
    ids.push(inst.id);
  }
  return ids;
}

test.run();
