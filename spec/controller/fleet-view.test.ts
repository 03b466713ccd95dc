/**
 * The manager's view of the fleet (src/controller/fleet-view.ts) over a MemoryFleet: effective
 * worker states at the lost boundary measured on the registry's clock (aged locally between
 * listings, up to a bound), fresh listings on demand, loads from the instance view (placed and not final), capacity (slots of ready
 * workers), placement candidates with their image states, and a failed listing keeping the view.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FleetView, holdsResources, type InstanceSource } from '../../src/controller/fleet-view.ts';
import type { Fleet } from '../../src/core/fleet.ts';
import type { Instance } from '../../src/core/instance.ts';
import { newSealingKeys } from '../../src/core/seal.ts';
import type { WorkerAdmin, WorkerRecord, WorkerState } from '../../src/core/worker.ts';
import { EMPTY_LOAD } from '../../src/core/worker.ts';
import { MemoryFleet } from '../../src/store/memory-fleet.ts';
import { makeInstance } from '../helpers/specs.ts';

const LOST_AFTER = 10_000;
/** The registry's clock and the manager's local clock disagree by an hour: only the registry's counts. */
const REGISTRY_T0 = 1_900_000_000_000;
const LOCAL_T0 = REGISTRY_T0 - 3_600_000;
const KEY = newSealingKeys().publicKey;
const GiB = 1024 ** 3;

function record(id: string, over: Partial<WorkerRecord> = {}): Omit<WorkerRecord, 'heartbeatAt'> {
  return {
    id, address: `10.0.0.${id.length}`, runtimes: ['runc'], labels: {}, capacity: { slots: 4, cpu: 4, memoryBytes: 4 * GiB },
    publicKey: KEY, version: 'test', startedAt: REGISTRY_T0, ...over,
  };
}

function world(instances: Instance[] = []) {
  const clocks = { registry: REGISTRY_T0, local: LOCAL_T0 };
  const fleet = new MemoryFleet(() => clocks.registry);
  const source: InstanceSource = { all: () => instances };
  const view = new FleetView({
    fleet, instances: source, lostAfterMs: LOST_AFTER, now: () => clocks.local,
    resources: (inst) => (inst.challenge === 'big' ? { cpu: 2, memoryBytes: 2 * GiB } : { cpu: 0.5, memoryBytes: GiB / 4 }),
  });
  return { clocks, fleet, view, instances };
}

/* ---------------------------------------------------------------- effective states */

interface StateRow {
  admin: WorkerAdmin;
  /** Heartbeat age on the registry clock when the view lists. */
  atListingMs: number;
  /** Local time passed since the listing when the view is asked (aged up to half the lost timeout). */
  sinceListingMs: number;
  state: WorkerState;
}

const CAP = LOST_AFTER / 2;
const STATES: StateRow[] = [
  { admin: 'active', atListingMs: 0, sinceListingMs: 0, state: 'ready' },
  { admin: 'active', atListingMs: LOST_AFTER, sinceListingMs: 0, state: 'ready' },
  { admin: 'active', atListingMs: LOST_AFTER + 1, sinceListingMs: 0, state: 'lost' },
  { admin: 'active', atListingMs: CAP, sinceListingMs: CAP, state: 'ready' },
  { admin: 'active', atListingMs: CAP + 1, sinceListingMs: CAP, state: 'lost' },
  { admin: 'active', atListingMs: LOST_AFTER, sinceListingMs: 1, state: 'lost' },
  // A late listing stops aging: the worker may have heartbeated since; only a listing shows it lost.
  { admin: 'active', atListingMs: 0, sinceListingMs: LOST_AFTER + 1, state: 'ready' },
  { admin: 'active', atListingMs: CAP - 1, sinceListingMs: 3_600_000, state: 'ready' },
  { admin: 'cordoned', atListingMs: 0, sinceListingMs: 0, state: 'cordoned' },
  { admin: 'cordoned', atListingMs: LOST_AFTER - 5000, sinceListingMs: 5000, state: 'cordoned' },
  { admin: 'cordoned', atListingMs: LOST_AFTER + 1 - 5000, sinceListingMs: 5000, state: 'lost' },
  { admin: 'draining', atListingMs: 0, sinceListingMs: 0, state: 'draining' },
  { admin: 'draining', atListingMs: LOST_AFTER + 1, sinceListingMs: 0, state: 'lost' },
];

for (const row of STATES) {
  test(`state: ${row.admin}, heartbeat ${row.atListingMs} ms old when listed, asked ${row.sinceListingMs} ms later -> ${row.state}`, async () => {
    const { clocks, fleet, view } = world();
    await fleet.heartbeat(record('w1'));
    if (row.admin !== 'active') await fleet.setAdmin('w1', row.admin);
    clocks.registry += row.atListingMs;
    await view.refresh();
    clocks.local += row.sinceListingMs;
    // Moving the registry clock after the listing changes nothing: the view ages it locally.
    clocks.registry += 7_777_777;
    assert.is(view.now(), REGISTRY_T0 + row.atListingMs + Math.min(row.sinceListingMs, CAP));
    assert.is(view.worker('w1')?.state, row.state);
    assert.equal(view.workers().map((w) => [w.id, w.admin, w.state]), [['w1', row.admin, row.state]]);
  });
}

test('state: the aging bound is an option', async () => {
  const clocks = { registry: REGISTRY_T0, local: LOCAL_T0 };
  const fleet = new MemoryFleet(() => clocks.registry);
  const view = new FleetView({ fleet, instances: { all: () => [] }, lostAfterMs: LOST_AFTER, maxAgingMs: LOST_AFTER + 5, resources: () => ({ cpu: 0, memoryBytes: 0 }), now: () => clocks.local });
  await fleet.heartbeat(record('w1'));
  await view.refresh();
  clocks.local += LOST_AFTER + 1;
  assert.is(view.worker('w1')?.state, 'lost');
  clocks.local += 3_600_000;
  assert.is(view.now(), REGISTRY_T0 + LOST_AFTER + 5);
});

test('state: a worker heartbeating again is ready again; an unknown id has no view', async () => {
  const { clocks, fleet, view } = world();
  await fleet.heartbeat(record('w1'));
  clocks.registry += LOST_AFTER + 1;
  await view.refresh();
  assert.is(view.worker('w1')?.state, 'lost');
  await fleet.heartbeat(record('w1'));
  await view.refresh();
  assert.is(view.worker('w1')?.state, 'ready');
  assert.is(view.worker('nope'), undefined);
});

test('a listing that fails rejects and keeps the previous view', async () => {
  const { fleet } = world();
  let fail = false;
  const flaky = { list: () => (fail ? Promise.reject(new Error('registry down')) : fleet.list()) } as Pick<Fleet, 'list'> as Fleet;
  const view = new FleetView({ fleet: flaky, instances: { all: () => [] }, lostAfterMs: LOST_AFTER, resources: () => ({ cpu: 0, memoryBytes: 0 }), now: () => LOCAL_T0 });
  await fleet.heartbeat(record('w1'));
  await view.refresh();
  fail = true;
  await fleet.heartbeat(record('w2'));
  let rejected = false;
  await view.refresh().catch(() => { rejected = true; });
  assert.ok(rejected);
  assert.equal(view.workers().map((w) => w.id), ['w1']);
});

test('ensureFresh: re-reads only when the listing is as old as asked (0: always), sharing one read between callers', async () => {
  const { clocks, fleet } = world();
  let reads = 0;
  let gate: Promise<void> | undefined;
  const counting = {
    list: async () => {
      reads++;
      if (gate) await gate;
      return fleet.list();
    },
  } as Pick<Fleet, 'list'> as Fleet;
  const view = new FleetView({ fleet: counting, instances: { all: () => [] }, lostAfterMs: LOST_AFTER, resources: () => ({ cpu: 0, memoryBytes: 0 }), now: () => clocks.local });
  const ids = () => view.workers().map((w) => w.id);
  await view.ensureFresh(60_000);
  assert.is(reads, 1, 'never listed: it lists');
  await fleet.heartbeat(record('w1'));
  clocks.local += 999;
  await view.ensureFresh(1000);
  assert.equal([reads, ids()], [1, []], 'younger than asked: kept');
  clocks.local += 1;
  await view.ensureFresh(1000);
  assert.equal([reads, ids()], [2, ['w1']], 'as old as asked: re-read');
  await fleet.heartbeat(record('w2'));
  await view.ensureFresh(0);
  assert.equal([reads, ids()], [3, ['w1', 'w2']], '0: always re-read');
  // Concurrent callers while a read is under way share it.
  let open: () => void = () => {};
  gate = new Promise<void>((resolve) => { open = resolve; });
  const both = Promise.all([view.ensureFresh(0), view.ensureFresh(0)]);
  open();
  await both;
  assert.is(reads, 4);
});

test('ensureFresh: a failed read rejects and the next call tries again', async () => {
  const { fleet } = world();
  let fail = true;
  const flaky = { list: () => (fail ? Promise.reject(new Error('registry down')) : fleet.list()) } as Pick<Fleet, 'list'> as Fleet;
  const view = new FleetView({ fleet: flaky, instances: { all: () => [] }, lostAfterMs: LOST_AFTER, resources: () => ({ cpu: 0, memoryBytes: 0 }), now: () => LOCAL_T0 });
  await fleet.heartbeat(record('w1'));
  let rejected = false;
  await view.ensureFresh(1000).catch(() => { rejected = true; });
  assert.ok(rejected);
  fail = false;
  await view.ensureFresh(1000);
  assert.equal(view.workers().map((w) => w.id), ['w1']);
});

/* ---------------------------------------------------------------- loads */

const NOW = REGISTRY_T0;
const ID = (n: number) => n.toString(16).padStart(24, '0');

interface HoldRow {
  label: string;
  inst: Partial<Instance>;
  holds: boolean;
}

const HOLDS: HoldRow[] = [
  { label: 'placed, running', inst: { worker: 'w1', status: 'running' }, holds: true },
  { label: 'placed, pending', inst: { worker: 'w1', status: 'pending' }, holds: true },
  { label: 'placed, starting', inst: { worker: 'w1', status: 'starting' }, holds: true },
  { label: 'placed, asked to stop, still stopping', inst: { worker: 'w1', status: 'stopping', desired: 'stopped' }, holds: true },
  { label: 'placed, asked to stop, still running', inst: { worker: 'w1', status: 'running', desired: 'stopped' }, holds: true },
  { label: 'placed, expired, not torn down yet', inst: { worker: 'w1', status: 'running', expiresAt: NOW }, holds: true },
  { label: 'placed, stopped', inst: { worker: 'w1', status: 'stopped', desired: 'stopped', finishedAt: NOW } , holds: false },
  { label: 'placed, failed', inst: { worker: 'w1', status: 'failed', finishedAt: NOW }, holds: false },
  { label: 'placed, failed, not finished yet', inst: { worker: 'w1', status: 'failed' }, holds: false },
  { label: 'not placed, pending', inst: { status: 'pending' }, holds: false },
  { label: 'not placed, queued', inst: { status: 'queued' }, holds: false },
];

for (const row of HOLDS) {
  test(`holds resources: ${row.label} -> ${row.holds}`, () => {
    const inst = makeInstance({ id: ID(1), expiresAt: NOW + 60_000, ...row.inst });
    assert.is(holdsResources(inst, NOW), row.holds);
    const { view } = world([inst]);
    assert.equal(view.loads(NOW).has('w1'), row.holds, 'loads agree');
  });
}

test('loads: per worker, slots, CPU and memory from each instance\'s version, and instances per challenge', () => {
  const mk = (n: number, over: Partial<Instance>) => makeInstance({ id: ID(n), status: 'running', expiresAt: NOW + 60_000, ...over });
  const { view } = world([
    mk(1, { worker: 'w1', challenge: 'web' }),
    mk(2, { worker: 'w1', challenge: 'web' }),
    mk(3, { worker: 'w1', challenge: 'big' }),
    mk(4, { worker: 'w2', challenge: 'big', status: 'pending' }),
    mk(5, { worker: 'w2', challenge: 'web', status: 'stopped', desired: 'stopped', finishedAt: NOW }),
    mk(6, { challenge: 'web', status: 'pending' }),
  ]);
  const loads = view.loads(NOW);
  assert.equal([...loads.keys()].sort(), ['w1', 'w2']);
  assert.equal(loads.get('w1'), { slots: 3, cpu: 3, memoryBytes: 2.5 * GiB, byChallenge: { web: 2, big: 1 } });
  assert.equal(loads.get('w2'), { slots: 1, cpu: 2, memoryBytes: 2 * GiB, byChallenge: { big: 1 } });
});

/* ---------------------------------------------------------------- capacity and candidates */

test('capacity: the slots of ready workers only', async () => {
  const { clocks, fleet, view } = world();
  await fleet.heartbeat(record('lost', { capacity: { slots: 100, cpu: 1, memoryBytes: GiB } }));
  clocks.registry += LOST_AFTER + 1;
  await fleet.heartbeat(record('a', { capacity: { slots: 3, cpu: 1, memoryBytes: GiB } }));
  await fleet.heartbeat(record('b', { capacity: { slots: 5, cpu: 1, memoryBytes: GiB } }));
  await fleet.heartbeat(record('c', { capacity: { slots: 7, cpu: 1, memoryBytes: GiB } }));
  await fleet.heartbeat(record('d', { capacity: { slots: 11, cpu: 1, memoryBytes: GiB } }));
  await fleet.setAdmin('c', 'cordoned');
  await fleet.setAdmin('d', 'draining');
  assert.is(view.capacity(), 0, 'nothing listed yet');
  await view.refresh();
  assert.equal(view.workers().map((w) => [w.id, w.state]), [['a', 'ready'], ['b', 'ready'], ['c', 'cordoned'], ['d', 'draining'], ['lost', 'lost']]);
  assert.is(view.capacity(), 8);
  await fleet.setAdmin('c', 'active');
  await view.refresh();
  assert.is(view.capacity(), 15);
});

test('candidates: every worker with its load and the state of the needed image there', async () => {
  const inst = makeInstance({ id: ID(1), worker: 'w1', status: 'running', challenge: 'web', expiresAt: NOW + 60_000 });
  const { clocks, fleet, view } = world([inst]);
  await fleet.heartbeat(record('gone'));
  clocks.registry += LOST_AFTER + 1;
  for (const id of ['w1', 'w2', 'w3']) await fleet.heartbeat(record(id));
  await fleet.setAdmin('w3', 'cordoned');
  await fleet.reportImages('w1', { 'reg/web:1': { state: 'present' }, 'reg/other:1': { state: 'failed', error: 'x' } });
  await fleet.reportImages('w2', { 'reg/web:1': { state: 'failed', error: 'pull denied' } });
  await fleet.reportImages('gone', { 'reg/web:1': { state: 'present' } });
  await view.refresh();
  const cands = view.candidates({ image: 'reg/web:1' }, view.loads(NOW));
  const summary = cands.map((c) => ({ id: c.worker.id, state: c.worker.state, slots: c.load.slots, image: c.image ? `${c.image.state}${c.image.error ? `:${c.image.error}` : ''}` : null }));
  assert.equal(summary, [
    { id: 'gone', state: 'lost', slots: 0, image: 'present' },
    { id: 'w1', state: 'ready', slots: 1, image: 'present' },
    { id: 'w2', state: 'ready', slots: 0, image: 'failed:pull denied' },
    { id: 'w3', state: 'cordoned', slots: 0, image: null },
  ]);
  assert.is(cands[1]?.image?.at, REGISTRY_T0 + LOST_AFTER + 1, 'stamped with the registry clock');
  assert.equal(cands[2]?.load, EMPTY_LOAD);
  assert.equal(view.images('w1'), { 'reg/web:1': { state: 'present', at: REGISTRY_T0 + LOST_AFTER + 1 }, 'reg/other:1': { state: 'failed', error: 'x', at: REGISTRY_T0 + LOST_AFTER + 1 } });
  assert.equal(view.images('nobody'), {});
});

test.run();
