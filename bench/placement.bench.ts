/**
 * Placement (issue 9, "Benchmarks"): 10,000 pending instances (40 challenges; some gVisor, some
 * constrained to a zone, some taking a leased port) placed one by one over 50 workers (some
 * cordoned or lost, some still pulling an image), each placement seeing the loads left by the
 * previous ones (`withPlaced`), as the placement reconciler does in one pass. Pure, no I/O.
 *
 * Reported against baselines measured in the same run: the time per placement against the filter
 * pass alone (the same candidates, filters only, first feasible id), and the spread (max/min load
 * over ready workers) against a naive round-robin over the feasible workers.
 */
import type { PlacementNeeds, WorkerImageState, WorkerLoad, WorkerView } from '../src/core/worker.ts';
import { EMPTY_LOAD } from '../src/core/worker.ts';
import { FILTERS, place, withPlaced, type Candidate } from '../src/scheduler/placement.ts';
import type { BenchResult } from './harness.ts';

const N = 10_000;
const WORKERS = 50;
const CHALLENGES = 40;
const RUNS = 5;
const GiB = 1024 ** 3;
/** Scoring may cost at most this many times the filter pass alone. */
const MAX_COST_RATIO = 4;

function workers(): WorkerView[] {
  return Array.from({ length: WORKERS }, (_, i) => {
    const id = `w-${String(i).padStart(2, '0')}`;
    const state = i === 7 ? 'lost' : i === 13 || i === 31 ? 'cordoned' : 'ready';
    return {
      id, address: `10.1.0.${i + 2}`, runtimes: i % 5 === 0 ? ['runc', 'gvisor'] : ['runc'], labels: { zone: i % 2 === 0 ? 'eu' : 'us' },
      capacity: { slots: 320, cpu: 192, memoryBytes: 384 * GiB }, ...(i % 3 === 0 ? { leasePorts: '30000-30999' } : {}),
      publicKey: 'pem', version: 'bench', heartbeatAt: 0, startedAt: 0, admin: state === 'cordoned' ? 'cordoned' : 'active', state,
    } satisfies WorkerView;
  });
}

function challenge(c: number): PlacementNeeds {
  return {
    challenge: `chal-${c}`, runtime: c % 20 === 3 ? 'gvisor' : 'runc', cpu: [0.25, 0.5, 1][c % 3]!, memoryBytes: [256, 512, 1024][c % 3]! * 1024 ** 2,
    image: `registry.test/poseidon/chal-${c}:v1`, constraints: c % 14 === 2 ? { zone: 'eu' } : {}, leases: c % 13 === 5 ? 1 : 0,
  };
}

/** Image state per worker: most present; three challenges still pulling on a few workers, one failed on two. */
function images(ws: WorkerView[]): Map<string, Map<string, WorkerImageState>> {
  const out = new Map<string, Map<string, WorkerImageState>>();
  ws.forEach((w, i) => {
    const m = new Map<string, WorkerImageState>();
    for (let c = 0; c < CHALLENGES; c++) {
      const ref = challenge(c).image;
      if (c < 3 && i % 10 === 1) m.set(ref, { state: 'preparing', at: 0 });
      else if (c === 4 && i < 4) m.set(ref, { state: 'failed', error: 'manifest unknown', at: 0 });
      else m.set(ref, { state: 'present', at: 0 });
    }
    out.set(w.id, m);
  });
  return out;
}

/** The pending instances, challenges interleaved in a fixed scrambled order. */
function pending(): PlacementNeeds[] {
  const kinds = Array.from({ length: CHALLENGES }, (_, c) => challenge(c));
  return Array.from({ length: N }, (_, i) => kinds[(i * 17 + Math.floor(i / 40)) % CHALLENGES]!);
}

type Pick = (needs: PlacementNeeds, cands: Candidate[]) => string | undefined;

interface Pass { ms: number; loads: Map<string, WorkerLoad>; unplaced: number }

/** One placement pass: every instance in turn, candidates built from the current loads. */
function pass(list: PlacementNeeds[], ws: WorkerView[], imgs: Map<string, Map<string, WorkerImageState>>, pick: Pick): Pass {
  const loads = new Map<string, WorkerLoad>(ws.map((w) => [w.id, EMPTY_LOAD]));
  let unplaced = 0;
  const started = performance.now();
  for (const n of list) {
    const cands = ws.map((w): Candidate => {
      const image = imgs.get(w.id)?.get(n.image);
      return image ? { worker: w, load: loads.get(w.id)!, image } : { worker: w, load: loads.get(w.id)! };
    });
    const chosen = pick(n, cands);
    if (chosen === undefined) unplaced += 1;
    else loads.set(chosen, withPlaced(loads.get(chosen)!, n));
  }
  return { ms: performance.now() - started, loads, unplaced };
}

const scored: Pick = (n, cands) => {
  const r = place(n, cands);
  return r.ok ? r.worker : undefined;
};

/** The filter pass alone: the same filters, no scores (the smallest feasible id wins). */
const filtersOnly: Pick = (n, cands) => {
  const r = place(n, cands, FILTERS, []);
  return r.ok ? r.worker : undefined;
};

/** Naive round-robin: the next feasible worker after the previous choice. */
function roundRobin(): Pick {
  let next = 0;
  return (n, cands) => {
    for (let k = 0; k < cands.length; k++) {
      const i = (next + k) % cands.length;
      const c = cands[i]!;
      if (FILTERS.every((f) => f.filter(n, c) === undefined)) {
        next = i + 1;
        return c.worker.id;
      }
    }
    return undefined;
  };
}

/** Median passes of `a` and `b` after a warm-up, interleaved so both see the same machine load. */
function medianPasses(a: () => Pass, b: () => Pass): [Pass, Pass] {
  a();
  b(); // warm-up (JIT)
  const as: Pass[] = [];
  const bs: Pass[] = [];
  for (let i = 0; i < RUNS; i++) {
    as.push(a());
    bs.push(b());
  }
  const median = (ps: Pass[]): Pass => ps.sort((x, y) => x.ms - y.ms)[Math.floor(RUNS / 2)]!;
  return [median(as), median(bs)];
}

interface Spread { ratio: number; max: number; min: number; worstChallenge: number }

/** Max/min instances over ready workers, and the worst max-min of one challenge over the workers it may use. */
function spread(p: Pass, ws: WorkerView[]): Spread {
  const ready = ws.filter((w) => w.state === 'ready');
  const counts = ready.map((w) => p.loads.get(w.id)!.slots);
  const max = Math.max(...counts);
  const min = Math.min(...counts);
  let worstChallenge = 0;
  for (let c = 0; c < CHALLENGES; c++) {
    const n = challenge(c);
    const eligible = ready.filter((w) => w.runtimes.includes(n.runtime) && Object.entries(n.constraints).every(([k, v]) => w.labels[k] === v) && (n.leases === 0 || w.leasePorts));
    const per = eligible.map((w) => p.loads.get(w.id)!.byChallenge[n.challenge] ?? 0);
    worstChallenge = Math.max(worstChallenge, Math.max(...per) - Math.min(...per));
  }
  return { ratio: min > 0 ? max / min : Number.POSITIVE_INFINITY, max, min, worstChallenge };
}

const us = (p: Pass): number => (p.ms * 1000) / N;
const fmtSpread = (s: Spread): string => `max/min ${s.ratio.toFixed(3)} (${s.max}/${s.min} instances), one challenge at worst ${s.worstChallenge} apart`;

export async function run(): Promise<BenchResult[]> {
  const ws = workers();
  const imgs = images(ws);
  const list = pending();
  const ready = ws.filter((w) => w.state === 'ready').length;

  const [full, base] = medianPasses(() => pass(list, ws, imgs, scored), () => pass(list, ws, imgs, filtersOnly));
  const rr = pass(list, ws, imgs, roundRobin());
  const costRatio = us(full) / us(base);
  const s = spread(full, ws);
  const sRr = spread(rr, ws);

  const label = `${N.toLocaleString('en')} pending instances over ${WORKERS} workers (${ready} ready)`;
  return [
    {
      name: `placement: ${label}, time per placement`,
      measured: `${us(full).toFixed(1)} µs per placement (${full.ms.toFixed(0)} ms per pass, median of ${RUNS}), ${(costRatio).toFixed(2)}x the filter pass${full.unplaced ? `, ${full.unplaced} unplaced` : ''}`,
      baseline: `filter pass alone ${us(base).toFixed(1)} µs per placement (${base.ms.toFixed(0)} ms per pass)`,
      target: `<= ${MAX_COST_RATIO}x the filter pass, every instance placed`,
      ok: costRatio <= MAX_COST_RATIO && full.unplaced === 0,
    },
    {
      name: `placement: ${label}, spread over ready workers`,
      measured: fmtSpread(s),
      baseline: `naive round-robin over feasible workers: ${fmtSpread(sRr)}`,
      target: 'max/min no worse than round-robin; per challenge no wider than round-robin',
      ok: s.ratio <= sRr.ratio && s.worstChallenge <= sRr.worstChallenge && rr.unplaced === 0,
    },
  ];
}
