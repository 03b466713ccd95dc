/**
 * Placement (src/scheduler/placement.ts), table-driven: every filter alone and through `place`,
 * the scores, the deterministic tie-break, the no-fit reason, and a property-style check of the
 * spread produced by placing one instance after another with `withPlaced`.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { PlacementNeeds, WorkerImageState, WorkerLoad, WorkerView } from '../../src/core/worker.ts';
import { EMPTY_LOAD } from '../../src/core/worker.ts';
import { FILTERS, place, SCORES, withPlaced, type Candidate, type FilterPlugin, type ScorePlugin } from '../../src/scheduler/placement.ts';

const GiB = 1024 ** 3;
const IMAGE = 'registry.test/poseidon/web:1';

function view(id: string, over: Partial<WorkerView> = {}): WorkerView {
  return {
    id, address: `10.0.0.${id.length}`, runtimes: ['runc'], labels: {}, capacity: { slots: 10, cpu: 8, memoryBytes: 16 * GiB },
    publicKey: 'pem', version: '0.1.0', heartbeatAt: 0, startedAt: 0, admin: 'active', state: 'ready', ...over,
  };
}

const present: WorkerImageState = { state: 'present', at: 0 };

interface CandOpts { worker?: Partial<WorkerView>; load?: Partial<WorkerLoad>; image?: WorkerImageState | null }

function cand(id: string, o: CandOpts = {}): Candidate {
  const c: Candidate = { worker: view(id, o.worker), load: { ...EMPTY_LOAD, byChallenge: {}, ...o.load } };
  if (o.image !== null) c.image = o.image ?? present;
  return c;
}

function needs(over: Partial<PlacementNeeds> = {}): PlacementNeeds {
  return { challenge: 'web', runtime: 'runc', cpu: 1, memoryBytes: GiB, image: IMAGE, constraints: {}, leases: 0, ...over };
}

function plugin(name: string): FilterPlugin {
  const f = FILTERS.find((x) => x.name === name);
  if (!f) throw new Error(`no filter ${name}`);
  return f;
}

function scorer(name: string): ScorePlugin {
  const s = SCORES.find((x) => x.name === name);
  if (!s) throw new Error(`no score ${name}`);
  return s;
}

/* ---------------------------------------------------------------- filters, one at a time */

interface FilterRow {
  filter: string;
  label: string;
  needs?: Partial<PlacementNeeds>;
  cand?: CandOpts;
  /** undefined: the worker passes; otherwise the phrase the filter answers. */
  why: string | undefined;
}

const FILTER_ROWS: FilterRow[] = [
  // ready
  { filter: 'ready', label: 'ready worker', why: undefined },
  { filter: 'ready', label: 'cordoned worker', cand: { worker: { admin: 'cordoned', state: 'cordoned' } }, why: 'cordoned' },
  { filter: 'ready', label: 'draining worker', cand: { worker: { admin: 'draining', state: 'draining' } }, why: 'draining' },
  { filter: 'ready', label: 'lost worker (admin active)', cand: { worker: { state: 'lost' } }, why: 'lost' },
  // runtime
  { filter: 'runtime', label: 'runc on a runc worker', why: undefined },
  { filter: 'runtime', label: 'gvisor on a runc-only worker', needs: { runtime: 'gvisor' }, why: 'without gvisor' },
  { filter: 'runtime', label: 'gvisor on a worker offering it', needs: { runtime: 'gvisor' }, cand: { worker: { runtimes: ['runc', 'gvisor'] } }, why: undefined },
  { filter: 'runtime', label: 'runc on a worker offering both', cand: { worker: { runtimes: ['runc', 'gvisor'] } }, why: undefined },
  { filter: 'runtime', label: 'runc on a gvisor-only worker', cand: { worker: { runtimes: ['gvisor'] } }, why: 'without runc' },
  // labels
  { filter: 'labels', label: 'no constraints, no labels', why: undefined },
  { filter: 'labels', label: 'no constraints, some labels', cand: { worker: { labels: { zone: 'eu' } } }, why: undefined },
  { filter: 'labels', label: 'all constraints present (plus others)', needs: { constraints: { zone: 'eu', gpu: 'yes' } }, cand: { worker: { labels: { gpu: 'yes', zone: 'eu', rack: '3' } } }, why: undefined },
  { filter: 'labels', label: 'one of two constraints missing', needs: { constraints: { zone: 'eu', gpu: 'yes' } }, cand: { worker: { labels: { zone: 'eu' } } }, why: 'without label gpu=yes' },
  { filter: 'labels', label: 'constraint with another value', needs: { constraints: { zone: 'eu' } }, cand: { worker: { labels: { zone: 'us' } } }, why: 'without label zone=eu' },
  { filter: 'labels', label: 'values are case-sensitive', needs: { constraints: { zone: 'eu' } }, cand: { worker: { labels: { zone: 'EU' } } }, why: 'without label zone=eu' },
  { filter: 'labels', label: 'a constraint on a worker without labels', needs: { constraints: { zone: 'eu' } }, why: 'without label zone=eu' },
  // leases
  { filter: 'leases', label: 'no lease, no range', why: undefined },
  { filter: 'leases', label: 'a lease on a worker with a range', needs: { leases: 1 }, cand: { worker: { leasePorts: '30000-30099' } }, why: undefined },
  { filter: 'leases', label: 'a lease on a worker without a range', needs: { leases: 1 }, why: 'without a lease port range' },
  { filter: 'leases', label: 'two leases on a worker without a range', needs: { leases: 2 }, why: 'without a lease port range' },
  // image
  { filter: 'image', label: 'image present', why: undefined },
  { filter: 'image', label: 'image preparing', cand: { image: { state: 'preparing', at: 0 } }, why: 'without the image yet' },
  { filter: 'image', label: 'image never reported', cand: { image: null }, why: 'without the image yet' },
  { filter: 'image', label: 'image pull failed', cand: { image: { state: 'failed', error: 'manifest unknown', at: 0 } }, why: 'whose image pull failed' },
  // fits: slots
  { filter: 'fits', label: 'empty worker', why: undefined },
  { filter: 'fits', label: 'last free slot', cand: { load: { slots: 9 } }, why: undefined },
  { filter: 'fits', label: 'no free slot', cand: { load: { slots: 10 } }, why: 'full' },
  { filter: 'fits', label: 'zero slots', cand: { worker: { capacity: { slots: 0, cpu: 8, memoryBytes: 16 * GiB } } }, why: 'full' },
  // fits: CPU
  { filter: 'fits', label: 'CPU exactly used up', cand: { load: { slots: 1, cpu: 7 } }, why: undefined },
  { filter: 'fits', label: 'CPU exceeded by half a core', needs: { cpu: 1.5 }, cand: { load: { slots: 1, cpu: 7 } }, why: 'out of CPU' },
  { filter: 'fits', label: 'fractional CPUs summing to the capacity (float error)', needs: { cpu: 0.1 }, cand: { worker: { capacity: { slots: 10, cpu: 0.3, memoryBytes: GiB } }, load: { slots: 2, cpu: 0.1 + 0.1 } }, why: undefined },
  { filter: 'fits', label: 'no CPU limit needed on a full-CPU worker', needs: { cpu: 0 }, cand: { load: { slots: 1, cpu: 8 } }, why: undefined },
  // fits: memory
  { filter: 'fits', label: 'memory exactly used up', cand: { load: { slots: 1, memoryBytes: 15 * GiB } }, why: undefined },
  { filter: 'fits', label: 'memory exceeded by one byte', cand: { load: { slots: 1, memoryBytes: 15 * GiB + 1 } }, why: 'out of memory' },
];

for (const row of FILTER_ROWS) {
  test(`filter ${row.filter}: ${row.label} -> ${row.why ?? 'passes'}`, () => {
    const c = cand('w1', row.cand);
    const n = needs(row.needs);
    assert.is(plugin(row.filter).filter(n, c), row.why, 'the filter alone');
    const res = place(n, [c]);
    if (row.why === undefined) {
      // Every other filter passes on the default candidate, so place() agrees with the filter.
      assert.equal(res.ok ? res.worker : res.reason, 'w1');
    } else {
      assert.equal(res, { ok: false, reason: `no worker fits: 1 ${row.why}`, rejected: { [row.filter]: 1 } });
    }
  });
}

test('filters run in order and the first refusal is the one counted', () => {
  // Cordoned, without gvisor and full: counted once, as cordoned.
  const c = cand('w1', { worker: { admin: 'cordoned', state: 'cordoned', capacity: { slots: 0, cpu: 1, memoryBytes: 1 } }, image: null });
  const res = place(needs({ runtime: 'gvisor' }), [c]);
  assert.equal(res, { ok: false, reason: 'no worker fits: 1 cordoned', rejected: { ready: 1 } });
  assert.equal(FILTERS.map((f) => f.name), ['ready', 'runtime', 'labels', 'leases', 'image', 'fits']);
});

/* ---------------------------------------------------------------- the no-fit reason */

test('no fit: the reason names how many workers each cause excluded, most frequent first', () => {
  const cs = [
    cand('a', { load: { slots: 10 } }),
    cand('b', { worker: { state: 'lost' } }),
    cand('c', { load: { slots: 3, cpu: 7.5 } }),
    cand('d', { worker: { capacity: { slots: 4, cpu: 8, memoryBytes: 16 * GiB } }, load: { slots: 4 } }),
    cand('e', { image: { state: 'failed', error: 'denied', at: 1 } }),
    cand('f', { worker: { capacity: { slots: 2, cpu: 2, memoryBytes: GiB } }, load: { slots: 2 } }),
  ];
  const res = place(needs(), cs);
  assert.equal(res, {
    ok: false,
    reason: 'no worker fits: 3 full, 1 lost, 1 out of CPU, 1 whose image pull failed',
    rejected: { fits: 4, ready: 1, image: 1 },
  });
});

test('no fit: the reason does not depend on the order of the candidates', () => {
  const cs = [
    cand('a', { worker: { state: 'lost' } }),
    cand('b', { load: { slots: 10 } }),
    cand('c', { worker: { admin: 'cordoned', state: 'cordoned' } }),
    cand('d', { worker: { state: 'lost' } }),
  ];
  const want = place(needs(), cs);
  assert.equal(want, { ok: false, reason: 'no worker fits: 2 lost, 1 cordoned, 1 full', rejected: { ready: 3, fits: 1 } });
  for (const order of permutations(cs)) assert.equal(place(needs(), order), want);
});

test('no fit: gVisor nowhere, image not ready anywhere', () => {
  const cs = [cand('a'), cand('b'), cand('c')];
  assert.equal(place(needs({ runtime: 'gvisor' }), cs), { ok: false, reason: 'no worker fits: 3 without gvisor', rejected: { runtime: 3 } });
  const pulling = cs.map((c) => ({ ...c, image: { state: 'preparing' as const, at: 0 } }));
  assert.equal(place(needs(), pulling), { ok: false, reason: 'no worker fits: 3 without the image yet', rejected: { image: 3 } });
});

test('no fit: no worker at all', () => {
  assert.equal(place(needs(), []), { ok: false, reason: 'no worker is registered', rejected: {} });
});

/* ---------------------------------------------------------------- scores */

interface ScoreRow { label: string; needs?: Partial<PlacementNeeds>; cands: Candidate[]; want: string }

const SCORE_ROWS: ScoreRow[] = [
  {
    label: 'least reserved: the emptier of two equal workers',
    cands: [cand('a', { load: { slots: 3 } }), cand('b', { load: { slots: 2 } }), cand('c', { load: { slots: 4 } })],
    want: 'b',
  },
  {
    label: 'least reserved counts the share, not the number of instances',
    cands: [
      cand('a', { worker: { capacity: { slots: 40, cpu: 32, memoryBytes: 64 * GiB } }, load: { slots: 8 } }),
      cand('b', { worker: { capacity: { slots: 4, cpu: 8, memoryBytes: 16 * GiB } }, load: { slots: 1 } }),
    ],
    want: 'a',
  },
  {
    label: 'least reserved looks at the scarcest resource (CPU)',
    cands: [cand('a', { load: { slots: 1, cpu: 6 } }), cand('b', { load: { slots: 3, cpu: 3 } })],
    want: 'b',
  },
  {
    label: 'least reserved looks at the scarcest resource (memory)',
    cands: [cand('a', { load: { slots: 1, memoryBytes: 12 * GiB } }), cand('b', { load: { slots: 3, memoryBytes: 3 * GiB } })],
    want: 'b',
  },
  {
    label: 'spread: equal load, the worker with fewer of this challenge',
    cands: [cand('a', { load: { slots: 2, byChallenge: { web: 2 } } }), cand('b', { load: { slots: 2, byChallenge: { pwn: 2 } } })],
    want: 'b',
  },
  {
    label: 'spread only counts the same challenge',
    needs: { challenge: 'pwn' },
    cands: [cand('a', { load: { slots: 2, byChallenge: { web: 2 } } }), cand('b', { load: { slots: 2, byChallenge: { pwn: 2 } } })],
    want: 'a',
  },
  {
    label: 'an infeasible emptier worker is never chosen',
    cands: [cand('a', { load: { slots: 5 } }), cand('b', { worker: { admin: 'cordoned', state: 'cordoned' } })],
    want: 'a',
  },
];

for (const row of SCORE_ROWS) {
  test(`score: ${row.label}`, () => {
    for (const order of permutations(row.cands)) {
      const res = place(needs(row.needs), order);
      assert.equal(res.ok ? res.worker : res.reason, row.want, order.map((c) => c.worker.id).join(','));
    }
  });
}

test('score plugins alone: least-reserved and spread range from 0 to 100', () => {
  const lr = scorer('least-reserved');
  const sp = scorer('spread');
  const n = needs();
  assert.is(lr.score(n, cand('a'), []), 87.5, '1 of 8 cores, the scarcest share after placing');
  assert.is(lr.score(n, cand('a', { load: { slots: 9 } }), []), 0, 'the last slot');
  assert.is(lr.score(n, cand('a', { worker: { capacity: { slots: 10, cpu: 0, memoryBytes: GiB } } }), []), 0, 'no capacity counts as full');
  const all = [cand('a', { load: { byChallenge: { web: 4 } } }), cand('b', { load: { byChallenge: { web: 1 } } }), cand('c')];
  assert.equal(all.map((c) => sp.score(n, c, all)), [0, 75, 100]);
  assert.equal(all.map((c) => sp.score(needs({ challenge: 'new' }), c, all)), [100, 100, 100], 'nobody runs it yet');
});

test('the winning score is the weighted sum; custom plugins and weights are honoured', () => {
  // least-reserved (weight 2) 87.5 x 2 + spread 100
  const res = place(needs(), [cand('a')]);
  assert.equal(res, { ok: true, worker: 'a', score: 275 });
  const byId: ScorePlugin = { name: 'prefer-z', weight: 3, score: (_n, c) => (c.worker.id === 'z' ? 100 : 0) };
  assert.equal(place(needs(), [cand('a'), cand('z', { load: { slots: 9 } })], FILTERS, [...SCORES, byId]), { ok: true, worker: 'z', score: 400 });
  assert.equal(place(needs(), [cand('a'), cand('z', { load: { slots: 9 } })]), { ok: true, worker: 'a', score: 275 });
});

/* ---------------------------------------------------------------- tie-break */

test('ties go to the smallest id, whatever the order of the candidates', () => {
  const cs = [cand('w-3'), cand('w-10'), cand('w-2'), cand('w-1')];
  for (const order of permutations(cs)) {
    const res = place(needs(), order);
    assert.equal(res.ok && res.worker, 'w-1');
  }
  // Ids compare as strings: 'w-10' < 'w-2'.
  for (const order of permutations([cand('w-2'), cand('w-10')])) {
    const res = place(needs(), order);
    assert.equal(res.ok && res.worker, 'w-10');
  }
});

test('place is pure: the same input gives the same answer and nothing is mutated', () => {
  const cs = [cand('a', { load: { slots: 1, byChallenge: { web: 1 } } }), cand('b')];
  const before = structuredClone(cs);
  const first = place(needs(), cs);
  assert.equal(place(needs(), cs), first);
  assert.equal(cs, before);
});

/* ---------------------------------------------------------------- withPlaced */

test('withPlaced adds one instance and leaves its input untouched', () => {
  const one = withPlaced(EMPTY_LOAD, { challenge: 'web', cpu: 0.5, memoryBytes: 256 });
  assert.equal(one, { slots: 1, cpu: 0.5, memoryBytes: 256, byChallenge: { web: 1 } });
  const two = withPlaced(one, { challenge: 'pwn', cpu: 1, memoryBytes: 1 });
  const three = withPlaced(two, { challenge: 'web', cpu: 0, memoryBytes: 0 });
  assert.equal(three, { slots: 3, cpu: 1.5, memoryBytes: 257, byChallenge: { web: 2, pwn: 1 } });
  assert.equal(one, { slots: 1, cpu: 0.5, memoryBytes: 256, byChallenge: { web: 1 } }, 'earlier loads unchanged');
  assert.equal(EMPTY_LOAD, { slots: 0, cpu: 0, memoryBytes: 0, byChallenge: {} });
});

/* ---------------------------------------------------------------- placing many, one by one */

interface Placed { counts: Record<string, number>; byChallenge: Record<string, Record<string, number>>; refused: string[] }

/** Places `list` one by one, each seeing the loads left by the previous ones. */
function placeAll(list: PlacementNeeds[], workers: WorkerView[]): Placed {
  const loads = new Map<string, WorkerLoad>(workers.map((w) => [w.id, EMPTY_LOAD]));
  const out: Placed = { counts: Object.fromEntries(workers.map((w) => [w.id, 0])), byChallenge: {}, refused: [] };
  for (const n of list) {
    const res = place(n, workers.map((w) => ({ worker: w, load: loads.get(w.id)!, image: present })));
    if (!res.ok) {
      out.refused.push(res.reason);
      continue;
    }
    loads.set(res.worker, withPlaced(loads.get(res.worker)!, n));
    out.counts[res.worker]! += 1;
    const per = (out.byChallenge[n.challenge] ??= {});
    per[res.worker] = (per[res.worker] ?? 0) + 1;
  }
  return out;
}

/** 30 instances of 3 challenges, in a scrambled but fixed order. */
function thirty(): PlacementNeeds[] {
  const kinds = [needs({ challenge: 'web', cpu: 0.5, memoryBytes: GiB / 2 }), needs({ challenge: 'pwn', cpu: 1, memoryBytes: GiB }), needs({ challenge: 'crypto', cpu: 0.25, memoryBytes: GiB / 4 })];
  return Array.from({ length: 30 }, (_, i) => kinds[(i * 7 + Math.floor(i / 4)) % 3]!);
}

test('30 instances of 3 challenges over 3 equal workers: spread within ±1 of even, per challenge too', () => {
  const list = thirty();
  const workers = ['w1', 'w2', 'w3'].map((id) => view(id, { capacity: { slots: 20, cpu: 16, memoryBytes: 32 * GiB } }));
  const got = placeAll(list, workers);
  assert.equal(got.refused, []);
  for (const [w, n] of Object.entries(got.counts)) assert.ok(Math.abs(n - 10) <= 1, `${w} holds ${n}`);
  for (const [challenge, per] of Object.entries(got.byChallenge)) {
    const total = list.filter((n) => n.challenge === challenge).length;
    for (const w of workers) {
      const n = per[w.id] ?? 0;
      assert.ok(Math.abs(n - total / 3) <= 1, `${challenge} on ${w.id}: ${n} of ${total}`);
    }
  }
  assert.equal(placeAll(list, workers), got, 'deterministic');
});

test('a worker with 2 slots never gets more than 2; when every slot is taken the rest wait', () => {
  const workers = [view('small', { capacity: { slots: 2, cpu: 16, memoryBytes: 32 * GiB } }), view('w2'), view('w3')];
  const got = placeAll(thirty(), workers);
  assert.is(got.counts.small, 2);
  assert.equal([got.counts.w2, got.counts.w3], [10, 10]);
  assert.is(got.refused.length, 8);
  for (const reason of got.refused) assert.is(reason, 'no worker fits: 3 full');
});

test('placing gvisor and constrained instances among others respects every filter', () => {
  const workers = [
    view('a', { runtimes: ['runc', 'gvisor'] }),
    view('b', { labels: { zone: 'eu' } }),
    view('c', { labels: { zone: 'us' }, leasePorts: '30000-30010' }),
  ];
  const list = Array.from({ length: 24 }, (_, i) =>
    [needs({ runtime: 'gvisor', challenge: 'jail' }), needs({ constraints: { zone: 'eu' }, challenge: 'eu-only' }), needs({ leases: 1, challenge: 'nc' }), needs()][i % 4]!,
  );
  const got = placeAll(list, workers);
  assert.equal(got.refused, []);
  assert.equal(got.byChallenge.jail, { a: 6 });
  assert.equal(got.byChallenge['eu-only'], { b: 6 });
  assert.equal(got.byChallenge.nc, { c: 6 });
  assert.equal(got.counts, { a: 8, b: 8, c: 8 }, 'the free challenge fills the gaps');
});

function permutations<T>(items: readonly T[]): T[][] {
  if (items.length <= 1) return [items.slice()];
  return items.flatMap((x, i) => permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [x, ...rest]));
}

test.run();
