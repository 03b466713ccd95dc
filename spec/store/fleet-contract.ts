/**
 * The `Fleet` contract (src/core/fleet.ts): one uvu suite run against every adapter (memory,
 * Redis) so they cannot drift. Each case gets a fresh, empty registry from `make()`;
 * `cleanup()` runs even when the case fails.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Fleet, FleetListing } from '../../src/core/fleet.ts';
import type { WorkerAdmin, WorkerRecord } from '../../src/core/worker.ts';
import { waitFor } from './helpers.ts';

/** What an adapter's factory returns: an empty registry, its clock, and a function removing all it wrote. */
export interface FleetFixture {
  fleet: Fleet;
  /** The registry's clock now (epoch ms): what `heartbeat` and `reportImages` must stamp. */
  clock: () => Promise<number>;
  cleanup: () => Promise<void>;
}

interface Ctx {
  fx?: FleetFixture;
}

type Test = ReturnType<typeof suite<Ctx>>;
type Get = (ctx: Ctx) => FleetFixture;
type Rec = Omit<WorkerRecord, 'heartbeatAt'>;

const GiB = 1024 ** 3;
/** Bound for a change notification to arrive: generous, polled, never a fixed sleep. */
const EVENT_MS = 3000;

/** A complete worker record (every optional field set) with `over` applied. */
export function workerRecord(id: string, over: Partial<Rec> = {}): Rec {
  return {
    id,
    address: '10.77.0.2',
    ingress: { http: '10.77.0.2:18080', tls: '10.77.0.2:18443' },
    runtimes: ['runc', 'gvisor'],
    labels: { zone: 'eu', gpu: 'no' },
    capacity: { slots: 12, cpu: 7.5, memoryBytes: 16 * GiB },
    leasePorts: '30000-30099',
    leaseHost: `${id}.ctf.test`,
    publicKey: '-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VuAyEAzV1+fake+key+for+tests+only+0000000000000=\n-----END PUBLIC KEY-----\n',
    version: '0.1.0',
    startedAt: 1_700_000_000_000,
    launch: { networkPool: 8, launchConcurrency: 4 },
    ...over,
  };
}

/** Registers and runs the contract suite `fleet contract: <name>` against registries from `make`. */
export function fleetContract(name: string, make: () => Promise<FleetFixture>): void {
  const test = suite<Ctx>(`fleet contract: ${name}`, {});
  test.before.each(async (ctx) => {
    ctx.fx = await make();
  });
  test.after.each(async (ctx) => {
    const fx = ctx.fx;
    ctx.fx = undefined; // after.each can run twice when it throws itself; clean once
    await fx?.cleanup();
  });
  const get = (ctx: Ctx): FleetFixture => {
    if (!ctx.fx) throw new Error('no fleet');
    return ctx.fx;
  };
  registerRegistration(test, get);
  registerAdmin(test, get);
  registerLaunchOverride(test, get);
  registerImages(test, get);
  registerShared(test, get);
  registerEvents(test, get);
  test.run();
}

/** Asserts `at` lies in [before, after] of the registry clock. */
function stamped(at: number, before: number, after: number, what: string): void {
  assert.ok(Number.isInteger(at) && at >= before && at <= after, `${what}: ${at} not within [${before}, ${after}]`);
}

function admins(listing: FleetListing): Record<string, WorkerAdmin> {
  return Object.fromEntries(listing.workers.map((w) => [w.record.id, w.admin]));
}

function registerRegistration(test: Test, get: Get): void {
  test('heartbeat registers a new worker as active, stamped with the registry clock (not the caller\'s)', async (ctx) => {
    const { fleet, clock } = get(ctx);
    const rec = workerRecord('w1');
    const before = await clock();
    // A heartbeatAt sent along is ignored: only the registry's clock counts.
    const stored = await fleet.heartbeat({ ...rec, heartbeatAt: 42 } as Rec);
    const after = await clock();
    stamped(stored.heartbeatAt, before, after, 'heartbeatAt');
    assert.equal(stored, { ...rec, heartbeatAt: stored.heartbeatAt });
    const listing = await fleet.list();
    stamped(listing.now, after, await clock(), 'list().now');
    assert.equal(listing.workers, [{ record: stored, admin: 'active', launchOverride: {} }]);
    assert.equal(listing.images, { w1: {} });
  });

  test('a re-heartbeat refreshes the record and the clock', async (ctx) => {
    const { fleet, clock } = get(ctx);
    const first = await fleet.heartbeat(workerRecord('w1'));
    const changed = workerRecord('w1', { address: '10.77.0.9', version: '0.2.0', capacity: { slots: 3, cpu: 2, memoryBytes: GiB } });
    const before = await clock();
    const second = await fleet.heartbeat(changed);
    stamped(second.heartbeatAt, Math.max(before, first.heartbeatAt), await clock(), 'second heartbeat');
    assert.equal((await fleet.list()).workers, [{ record: { ...changed, heartbeatAt: second.heartbeatAt }, admin: 'active', launchOverride: {} }]);
  });

  test('optional fields that are absent or undefined come back absent', async (ctx) => {
    const { fleet } = get(ctx);
    const { ingress: _i, leasePorts: _l, leaseHost: _h, ...bare } = workerRecord('bare');
    await fleet.heartbeat(bare);
    const returned = await fleet.heartbeat({ ...workerRecord('undef'), ingress: undefined, leasePorts: undefined, leaseHost: undefined });
    const listed = (await fleet.list()).workers.map((w) => w.record);
    assert.equal(listed[1], returned, 'heartbeat returns the record as stored');
    for (const rec of [...listed, returned]) {
      assert.equal(['ingress', 'leasePorts', 'leaseHost'].filter((k) => k in rec), [], rec.id);
      const { heartbeatAt: _b, ...rest } = rec;
      assert.equal(rest, { ...bare, id: rec.id });
    }
  });

  test('list returns every worker sorted by id, each with its images', async (ctx) => {
    const { fleet } = get(ctx);
    const ids = ['w-c', 'w-10', 'w-a', 'w-2', 'w-b'];
    for (const id of ids) await fleet.heartbeat(workerRecord(id, { address: `addr-${id}` }));
    await fleet.reportImages('w-a', { 'reg/web:1': { state: 'present' } });
    await fleet.reportImages('w-2', { 'reg/pwn:3': { state: 'failed', error: 'manifest unknown' } });
    const listing = await fleet.list();
    assert.equal(listing.workers.map((w) => w.record.id), ['w-10', 'w-2', 'w-a', 'w-b', 'w-c']);
    assert.equal(listing.workers.map((w) => w.record.address), ['addr-w-10', 'addr-w-2', 'addr-w-a', 'addr-w-b', 'addr-w-c']);
    assert.equal(Object.keys(listing.images).sort(), [...ids].sort());
    assert.equal(Object.keys(listing.images['w-a']!), ['reg/web:1']);
    assert.equal(listing.images['w-2']!['reg/pwn:3']!.error, 'manifest unknown');
    assert.equal(listing.images['w-c'], {});
  });

  test('an empty registry lists no workers', async (ctx) => {
    const { fleet, clock } = get(ctx);
    const before = await clock();
    const listing = await fleet.list();
    stamped(listing.now, before, await clock(), 'now');
    assert.equal([listing.workers, listing.images], [[], {}]);
  });

  test('forget removes the record and the images; a later heartbeat registers it afresh', async (ctx) => {
    const { fleet } = get(ctx);
    await fleet.heartbeat(workerRecord('gone'));
    await fleet.heartbeat(workerRecord('kept'));
    await fleet.reportImages('gone', { 'reg/web:1': { state: 'present' } });
    await fleet.reportImages('kept', { 'reg/web:1': { state: 'present' } });
    await fleet.setAdmin('gone', 'cordoned');
    await fleet.forget('gone');
    await fleet.forget('never-registered');
    const listing = await fleet.list();
    assert.equal(listing.workers.map((w) => w.record.id), ['kept']);
    assert.equal(Object.keys(listing.images), ['kept']);
    assert.equal(Object.keys(listing.images.kept!), ['reg/web:1']);
    await fleet.heartbeat(workerRecord('gone'));
    const again = await fleet.list();
    assert.equal(admins(again), { gone: 'active', kept: 'active' }, 'no admin state survives forget');
    assert.equal(again.images.gone, {}, 'no image survives forget');
  });
}

function registerLaunchOverride(test: Test, get: Get): void {
  const overrides = (l: FleetListing) => Object.fromEntries(l.workers.map((w) => [w.record.id, w.launchOverride]));

  test('setLaunchOverride: listed and read back, kept across heartbeats, replaced whole, cleared by {}, gone with forget', async (ctx) => {
    const { fleet } = get(ctx);
    await fleet.heartbeat(workerRecord('w1'));
    await fleet.heartbeat(workerRecord('w2'));
    assert.equal(overrides(await fleet.list()), { w1: {}, w2: {} }, 'none before an admin sets one');
    assert.equal(await fleet.launchOverride('w1'), {});
    assert.is(await fleet.setLaunchOverride('w1', { networkPool: 100, launchConcurrency: 8 }), true);
    assert.equal(overrides(await fleet.list()), { w1: { networkPool: 100, launchConcurrency: 8 }, w2: {} });
    assert.equal(await fleet.launchOverride('w1'), { networkPool: 100, launchConcurrency: 8 });
    await fleet.heartbeat(workerRecord('w1', { version: '9.9.9', launch: { networkPool: 100, launchConcurrency: 8 } }));
    const listed = await fleet.list();
    assert.equal(overrides(listed).w1, { networkPool: 100, launchConcurrency: 8 }, 'a heartbeat keeps it');
    assert.equal(listed.workers[0]!.record.launch, { networkPool: 100, launchConcurrency: 8 }, 'the settings in effect travel with the record');
    assert.is(await fleet.setLaunchOverride('w1', { launchConcurrency: 2 }), true);
    assert.equal(await fleet.launchOverride('w1'), { launchConcurrency: 2 }, 'replaced whole, not merged');
    assert.is(await fleet.setLaunchOverride('w1', {}), true);
    assert.equal(await fleet.launchOverride('w1'), {});
    await fleet.setLaunchOverride('w2', { networkPool: 3 });
    await fleet.forget('w2');
    await fleet.heartbeat(workerRecord('w2'));
    assert.equal(await fleet.launchOverride('w2'), {}, 'no override survives forget');
  });

  test('setLaunchOverride of an unknown worker answers false and registers nothing; out-of-bounds fields are not kept', async (ctx) => {
    const { fleet } = get(ctx);
    assert.is(await fleet.setLaunchOverride('ghost', { networkPool: 5 }), false);
    assert.equal((await fleet.list()).workers, []);
    assert.equal(await fleet.launchOverride('ghost'), {});
    await fleet.heartbeat(workerRecord('w1'));
    const hostile = { networkPool: 257, launchConcurrency: 0.5, extra: 'x' } as unknown as { networkPool: number };
    assert.is(await fleet.setLaunchOverride('w1', hostile), true);
    assert.equal(await fleet.launchOverride('w1'), {}, 'nothing out of bounds is kept');
    assert.is(await fleet.setLaunchOverride('w1', { networkPool: 0, launchConcurrency: 64 }), true);
    assert.equal(await fleet.launchOverride('w1'), { networkPool: 0, launchConcurrency: 64 }, 'the bounds themselves are kept');
  });
}

function registerAdmin(test: Test, get: Get): void {
  test('setAdmin sets the state; a re-heartbeat keeps it', async (ctx) => {
    const { fleet } = get(ctx);
    await fleet.heartbeat(workerRecord('w1'));
    await fleet.heartbeat(workerRecord('w2'));
    for (const admin of ['cordoned', 'draining', 'active', 'cordoned'] as const) {
      assert.is(await fleet.setAdmin('w1', admin), true, admin);
      assert.equal(admins(await fleet.list()), { w1: admin, w2: 'active' });
    }
    await fleet.heartbeat(workerRecord('w1', { version: '9.9.9' }));
    await fleet.heartbeat(workerRecord('w1', { version: '9.9.9' }));
    const listing = await fleet.list();
    assert.equal(admins(listing), { w1: 'cordoned', w2: 'active' });
    assert.is(listing.workers[0]!.record.version, '9.9.9');
  });

  test('setAdmin and compareAdmin of an unknown worker answer false and register nothing', async (ctx) => {
    const { fleet } = get(ctx);
    assert.is(await fleet.setAdmin('ghost', 'cordoned'), false);
    assert.is(await fleet.compareAdmin('ghost', 'active', 'cordoned'), false);
    assert.equal((await fleet.list()).workers, []);
    await fleet.heartbeat(workerRecord('ghost'));
    assert.equal(admins(await fleet.list()), { ghost: 'active' }, 'a refused setAdmin left nothing behind');
  });

  const compares: Array<[WorkerAdmin, WorkerAdmin, WorkerAdmin, boolean]> = [
    ['draining', 'draining', 'cordoned', true],
    ['active', 'draining', 'cordoned', false],
    ['cordoned', 'draining', 'cordoned', false],
    ['cordoned', 'cordoned', 'active', true],
    ['active', 'active', 'draining', true],
  ];
  for (const [current, expect, next, ok] of compares) {
    test(`compareAdmin ${current} expecting ${expect} -> ${next}: ${ok ? 'set' : 'refused'}`, async (ctx) => {
      const { fleet } = get(ctx);
      await fleet.heartbeat(workerRecord('w1'));
      if (current !== 'active') await fleet.setAdmin('w1', current);
      assert.is(await fleet.compareAdmin('w1', expect, next), ok);
      assert.equal(admins(await fleet.list()), { w1: ok ? next : current });
    });
  }

  test('compareAdmin: of racing drain completions exactly one wins', async (ctx) => {
    const { fleet } = get(ctx);
    await fleet.heartbeat(workerRecord('w1'));
    await fleet.setAdmin('w1', 'draining');
    const results = await Promise.all(Array.from({ length: 20 }, () => fleet.compareAdmin('w1', 'draining', 'cordoned')));
    assert.is(results.filter(Boolean).length, 1);
    assert.equal(admins(await fleet.list()), { w1: 'cordoned' });
  });
}

function registerImages(test: Test, get: Get): void {
  test('reportImages merges states and stamps each report with the registry clock', async (ctx) => {
    const { fleet, clock } = get(ctx);
    await fleet.heartbeat(workerRecord('w1'));
    const t0 = await clock();
    await fleet.reportImages('w1', { 'reg/web:1': { state: 'preparing' }, 'reg/pwn:1': { state: 'present' } });
    const t1 = await clock();
    await fleet.reportImages('w1', { 'reg/web:1': { state: 'failed', error: 'pull access denied: ünï "quoted" / slashed' }, 'reg/rev:2': { state: 'present' } });
    const t2 = await clock();
    const imgs = (await fleet.list()).images.w1!;
    assert.equal(Object.keys(imgs).sort(), ['reg/pwn:1', 'reg/rev:2', 'reg/web:1']);
    const { at: pwnAt, ...pwn } = imgs['reg/pwn:1']!;
    const { at: webAt, ...web } = imgs['reg/web:1']!;
    const { at: revAt, ...rev } = imgs['reg/rev:2']!;
    assert.equal([pwn, web, rev], [{ state: 'present' }, { state: 'failed', error: 'pull access denied: ünï "quoted" / slashed' }, { state: 'present' }]);
    stamped(pwnAt, t0, t1, 'first report');
    stamped(webAt, t1, t2, 'second report');
    stamped(revAt, t1, t2, 'second report (new image)');
    await fleet.reportImages('w1', {});
    assert.equal((await fleet.list()).images.w1, imgs, 'an empty report changes nothing');
  });

  test('a later report replaces the whole state of an image (no stale error)', async (ctx) => {
    const { fleet } = get(ctx);
    await fleet.heartbeat(workerRecord('w1'));
    await fleet.reportImages('w1', { 'reg/web:1': { state: 'failed', error: 'timeout' } });
    await fleet.reportImages('w1', { 'reg/web:1': { state: 'present' } });
    const { at: _a, ...web } = (await fleet.list()).images.w1!['reg/web:1']!;
    assert.equal(web, { state: 'present' });
  });

  test('reports are per worker', async (ctx) => {
    const { fleet } = get(ctx);
    await fleet.heartbeat(workerRecord('w1'));
    await fleet.heartbeat(workerRecord('w2'));
    await fleet.reportImages('w1', { 'reg/web:1': { state: 'present' } });
    await fleet.reportImages('w2', { 'reg/web:1': { state: 'preparing' } });
    const { images } = await fleet.list();
    assert.equal([images.w1!['reg/web:1']!.state, images.w2!['reg/web:1']!.state], ['present', 'preparing']);
  });

  test('pruneImages keeps only the given references', async (ctx) => {
    const { fleet } = get(ctx);
    await fleet.heartbeat(workerRecord('w1'));
    await fleet.heartbeat(workerRecord('w2'));
    const refs = ['reg/a:1', 'reg/b:1', 'reg/c:1', 'reg/d:1'];
    await fleet.reportImages('w1', Object.fromEntries(refs.map((r) => [r, { state: 'present' as const }])));
    await fleet.reportImages('w2', { 'reg/a:1': { state: 'present' } });
    const before = (await fleet.list()).images.w1!;
    await fleet.pruneImages('w1', ['reg/b:1', 'reg/d:1', 'reg/not-reported:1']);
    const { images } = await fleet.list();
    assert.equal(images.w1, { 'reg/b:1': before['reg/b:1']!, 'reg/d:1': before['reg/d:1']! }, 'kept ones are untouched');
    assert.equal(Object.keys(images.w2!), ['reg/a:1'], 'other workers untouched');
    await fleet.pruneImages('w1', []);
    await fleet.pruneImages('never-registered', []);
    assert.equal((await fleet.list()).images.w1, {});
  });
}

function registerShared(test: Test, get: Get): void {
  test('shared returns the first stored value to every later caller, per name', async (ctx) => {
    const { fleet } = get(ctx);
    assert.is(await fleet.shared('deployment', 'dep-1'), 'dep-1');
    assert.is(await fleet.shared('deployment', 'dep-2'), 'dep-1');
    assert.is(await fleet.shared('edge-secret', 'secret-1'), 'secret-1', 'names are independent');
    assert.is(await fleet.shared('deployment', 'dep-3'), 'dep-1');
    assert.is(await fleet.shared('edge-secret', 'secret-2'), 'secret-1');
  });

  test('shared: 100 concurrent callers with different candidates all get the same value', async (ctx) => {
    const { fleet } = get(ctx);
    const candidates = Array.from({ length: 100 }, (_, i) => `candidate-${i}`);
    const got = await Promise.all(candidates.map((c) => fleet.shared('edge-secret', c)));
    assert.is(new Set(got).size, 1, `values: ${[...new Set(got)].join(', ')}`);
    assert.ok(candidates.includes(got[0]!), 'one of the candidates');
    assert.is(await fleet.shared('edge-secret', 'late'), got[0]);
  });
}

/**
 * Registers a counting listener and waits until it demonstrably hears changes (a subscription
 * may need a moment to become active): `forget` of an unknown id is a change without state.
 */
async function listenSettled(fleet: Fleet): Promise<{ calls: () => number; stop: () => void }> {
  let n = 0;
  const stop = fleet.onChange(() => {
    n += 1;
  });
  for (let attempt = 0; attempt < 30 && n === 0; attempt++) {
    await fleet.forget('probe-never-registered');
    // Polls, so the settled case costs milliseconds; 100 ms leaves no probe in flight.
    await waitFor(() => n > 0, 100, 'probe').catch(() => undefined);
  }
  if (n === 0) throw new Error('fleet change listener never became active');
  return { calls: () => n, stop };
}

function registerEvents(test: Test, get: Get): void {
  test('onChange fires after a registration, after setAdmin, setLaunchOverride and an image report', async (ctx) => {
    const { fleet } = get(ctx);
    const { calls, stop } = await listenSettled(fleet);
    const steps: Array<[string, () => Promise<unknown>]> = [
      ['registration', () => fleet.heartbeat(workerRecord('w1'))],
      ['setAdmin', () => fleet.setAdmin('w1', 'cordoned')],
      ['compareAdmin', () => fleet.compareAdmin('w1', 'cordoned', 'active')],
      ['setLaunchOverride', () => fleet.setLaunchOverride('w1', { networkPool: 4 })],
      ['changed record', () => fleet.heartbeat(workerRecord('w1', { version: '0.2.0' }))],
      ['image report', () => fleet.reportImages('w1', { 'reg/web:1': { state: 'present' } })],
      ['forget', () => fleet.forget('w1')],
    ];
    for (const [what, step] of steps) {
      const before = calls();
      await step();
      await waitFor(() => calls() > before, EVENT_MS, `change event after ${what}`);
    }
    stop();
  });

  test('an unchanged heartbeat is no change, nor one where only networkPoolReady moved (listed all the same); a refused compareAdmin neither', async (ctx) => {
    const { fleet } = get(ctx);
    await fleet.heartbeat(workerRecord('w1', { networkPoolReady: 0 }));
    const { calls, stop } = await listenSettled(fleet);
    const before = calls();
    await fleet.heartbeat(workerRecord('w1', { networkPoolReady: 0 }));
    await fleet.heartbeat(workerRecord('w1', { networkPoolReady: 7 }));
    assert.is((await fleet.list()).workers.find((w) => w.record.id === 'w1')?.record.networkPoolReady, 7, 'the listing reads the latest count');
    await fleet.compareAdmin('w1', 'draining', 'cordoned');
    // Notifications arrive in order, so once this one is heard the two above would have been too.
    await fleet.setAdmin('w1', 'cordoned');
    await waitFor(() => calls() > before, EVENT_MS, 'change event after setAdmin');
    await fleet.forget('probe-never-registered');
    await waitFor(() => calls() > before + 1, EVENT_MS, 'change event after forget');
    assert.is(calls(), before + 2);
    stop();
  });

  test('unsubscribed listeners hear nothing; a throwing listener does not stop the others', async (ctx) => {
    const { fleet } = get(ctx);
    const stopThrower = fleet.onChange(() => {
      throw new Error('listener bug');
    });
    const kept = await listenSettled(fleet);
    const dropped = await listenSettled(fleet);
    dropped.stop();
    const [k0, d0] = [kept.calls(), dropped.calls()];
    await fleet.heartbeat(workerRecord('w1'));
    await waitFor(() => kept.calls() > k0, EVENT_MS, 'change event for the kept listener');
    await fleet.setAdmin('w1', 'draining');
    await waitFor(() => kept.calls() > k0 + 1, EVENT_MS, 'second change event for the kept listener');
    assert.is(dropped.calls(), d0);
    kept.stop();
    stopThrower();
  });
}
