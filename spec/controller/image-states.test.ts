/**
 * Per-version image readiness from what workers report (`deriveImageStates` in
 * src/controller/image-states.ts), through a real FleetView over a MemoryFleet: `ready` when a
 * worker that is not lost and offers the runtime has the image, `building` while such workers
 * prepare it (or have not said), `image-missing` when every one of them failed (naming one) or
 * the manager could not publish it; lost workers do not count; only changed challenges return.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Catalog, ChallengeState, WorkerImage } from '../../src/catalog/catalog.ts';
import { FleetView } from '../../src/controller/fleet-view.ts';
import { deriveImageStates } from '../../src/controller/image-states.ts';
import type { RuntimeName } from '../../src/core/challenge.ts';
import { newSealingKeys } from '../../src/core/seal.ts';
import type { WorkerImageState } from '../../src/core/worker.ts';
import { MemoryFleet } from '../../src/store/memory-fleet.ts';
import { loadTestCatalog } from '../helpers/catalog.ts';

const LOST_AFTER = 10_000;
const T0 = 1_900_000_000_000;
const KEY = newSealingKeys().publicKey;

const dir = mkdtempSync(path.join(tmpdir(), 'poseidon-imgstates-'));
const t = suite('image states from worker reports');

t.before(() => {
  for (const [id, extra] of [['web', ''], ['sandbox', 'runtime: gvisor\n']] as const) {
    mkdirSync(path.join(dir, id));
    writeFileSync(path.join(dir, id, 'challenge.yaml'), `id: ${id}\nname: ${id}\nimage: busybox:1.36\nexpose: [{ name: web, port: 80 }]\n${extra}`);
  }
});
t.after(() => rmSync(dir, { recursive: true, force: true }));

interface WorkerSpec {
  id: string;
  runtimes?: RuntimeName[];
  lost?: boolean;
  admin?: 'cordoned' | 'draining';
  /** What it reports for the challenge's image; absent: nothing reported. */
  image?: Omit<WorkerImageState, 'at'>;
}

/** A catalog (every version `building` with no workers, as after a fresh sync), a fleet and a view on one clock. */
async function world(workers: WorkerSpec[]) {
  const catalog = await loadTestCatalog(dir);
  for (const e of catalog.list()) catalog.markImage(e.hash, 'building', {});
  let clock = T0;
  const fleet = new MemoryFleet(() => clock);
  const view = new FleetView({ fleet, instances: { all: () => [] }, lostAfterMs: LOST_AFTER, resources: () => ({ cpu: 0, memoryBytes: 0 }), now: () => clock });
  // Lost ones heartbeat first, then the clock passes their deadline and the others heartbeat.
  const ordered = [...workers.filter((w) => w.lost), ...workers.filter((w) => !w.lost)];
  let aged = false;
  for (const w of ordered) {
    if (!w.lost && !aged) {
      clock += LOST_AFTER + 1;
      aged = true;
    }
    await fleet.heartbeat({
      id: w.id, address: `10.0.0.${w.id.length}`, runtimes: w.runtimes ?? ['runc'], labels: {},
      capacity: { slots: 10, cpu: 8, memoryBytes: 8 * 1024 ** 3 }, publicKey: KEY, version: 'test', startedAt: T0,
    });
    if (w.admin) await fleet.setAdmin(w.id, w.admin);
  }
  if (!aged) clock += LOST_AFTER + 1;
  const report = async (challenge: string) => {
    const image = catalog.get(challenge)!.image;
    for (const w of workers) if (w.image) await fleet.reportImages(w.id, { [image]: w.image });
  };
  const refresh = () => view.refresh();
  return { catalog, fleet, view, report, refresh, advance: (ms: number) => { clock += ms; } };
}

function stateOf(catalog: Catalog, id: string): { state: ChallengeState; error?: string; workers: Record<string, WorkerImage> } {
  const e = catalog.get(id)!;
  return { state: e.state, ...(e.error !== undefined ? { error: e.error } : {}), workers: e.workers };
}

const present = { state: 'present' } as const;
const preparing = { state: 'preparing' } as const;
const failed = (error: string) => ({ state: 'failed', error }) as const;

interface Row {
  label: string;
  challenge: 'web' | 'sandbox';
  workers: WorkerSpec[];
  publishError?: string;
  state: ChallengeState;
  /** Substring the error must contain; undefined: no error. */
  error?: string;
  /** The per-worker map recorded on the version. */
  byWorker: Record<string, WorkerImage>;
}

const ROWS: Row[] = [
  { label: 'no worker registered', challenge: 'web', workers: [], state: 'building', byWorker: {} },
  { label: 'one worker has it', challenge: 'web', workers: [{ id: 'w1', image: present }], state: 'ready', byWorker: { w1: { state: 'present' } } },
  { label: 'one worker is preparing it', challenge: 'web', workers: [{ id: 'w1', image: preparing }], state: 'building', byWorker: { w1: { state: 'preparing' } } },
  { label: 'one worker has not reported', challenge: 'web', workers: [{ id: 'w1' }], state: 'building', byWorker: { w1: { state: 'preparing' } } },
  {
    label: 'one of three has it, one failed, one preparing', challenge: 'web',
    workers: [{ id: 'w1', image: failed('pull denied') }, { id: 'w2', image: preparing }, { id: 'w3', image: present }],
    state: 'ready', byWorker: { w1: { state: 'failed', error: 'pull denied' }, w2: { state: 'preparing' }, w3: { state: 'present' } },
  },
  {
    label: 'one failed, one still preparing', challenge: 'web', workers: [{ id: 'w1', image: failed('pull denied') }, { id: 'w2', image: preparing }],
    state: 'building', byWorker: { w1: { state: 'failed', error: 'pull denied' }, w2: { state: 'preparing' } },
  },
  {
    label: 'every eligible worker failed', challenge: 'web', workers: [{ id: 'w1', image: failed('manifest unknown') }, { id: 'w2', image: failed('pull denied') }],
    state: 'image-missing', error: 'worker w1: manifest unknown', byWorker: { w1: { state: 'failed', error: 'manifest unknown' }, w2: { state: 'failed', error: 'pull denied' } },
  },
  {
    label: 'the only worker with it is lost; the other failed', challenge: 'web', workers: [{ id: 'w1', lost: true, image: present }, { id: 'w2', image: failed('no space left') }],
    state: 'image-missing', error: 'worker w2: no space left', byWorker: { w2: { state: 'failed', error: 'no space left' } },
  },
  { label: 'only a lost worker has it', challenge: 'web', workers: [{ id: 'w1', lost: true, image: present }], state: 'building', byWorker: {} },
  { label: 'only a lost worker failed', challenge: 'web', workers: [{ id: 'w1', lost: true, image: failed('x') }, { id: 'w2', image: preparing }], state: 'building', byWorker: { w2: { state: 'preparing' } } },
  { label: 'a cordoned worker has it (not lost: it counts)', challenge: 'web', workers: [{ id: 'w1', admin: 'cordoned', image: present }], state: 'ready', byWorker: { w1: { state: 'present' } } },
  { label: 'a draining worker has it', challenge: 'web', workers: [{ id: 'w1', admin: 'draining', image: present }], state: 'ready', byWorker: { w1: { state: 'present' } } },
  {
    label: 'the manager could not publish it', challenge: 'web', workers: [{ id: 'w1', image: preparing }], publishError: 'push refused: 401',
    state: 'image-missing', error: 'the manager could not build or push it: push refused: 401', byWorker: { w1: { state: 'preparing' } },
  },
  { label: 'gVisor: a runc-only worker is not eligible', challenge: 'sandbox', workers: [{ id: 'w1', image: present }], state: 'building', byWorker: {} },
  { label: 'gVisor: a failed runc-only worker does not make it missing', challenge: 'sandbox', workers: [{ id: 'w1', image: failed('x') }, { id: 'g1', runtimes: ['runc', 'gvisor'] }], state: 'building', byWorker: { g1: { state: 'preparing' } } },
  { label: 'gVisor: a gVisor worker has it', challenge: 'sandbox', workers: [{ id: 'w1', image: failed('x') }, { id: 'g1', runtimes: ['runc', 'gvisor'], image: present }], state: 'ready', byWorker: { g1: { state: 'present' } } },
];

for (const row of ROWS) {
  t(`${row.challenge}: ${row.label} -> ${row.state}`, async () => {
    const w = await world(row.workers);
    await w.report(row.challenge);
    if (row.publishError) w.catalog.markPublished(w.catalog.get(row.challenge)!.hash, row.publishError);
    await w.refresh();
    const changed = deriveImageStates(w.catalog, w.view);
    const got = stateOf(w.catalog, row.challenge);
    assert.is(got.state, row.state);
    if (row.error === undefined) assert.is(got.error, undefined);
    else assert.ok(got.error?.includes(row.error), got.error);
    assert.equal(got.workers, row.byWorker);
    assert.is(changed.includes(row.challenge), row.state !== 'building', 'listed only when the state changed (from building)');
  });
}

t('returns only the challenges whose state changed; worker details and errors update without being listed', async () => {
  const w = await world([{ id: 'w1', image: present }, { id: 'g1', runtimes: ['runc', 'gvisor'] }]);
  await w.report('web');
  await w.refresh();
  assert.equal(deriveImageStates(w.catalog, w.view), ['web']);
  assert.equal(deriveImageStates(w.catalog, w.view), [], 'nothing changed');

  // g1 reports the web image too: the map changes, the state does not.
  await w.fleet.reportImages('g1', { [w.catalog.get('web')!.image]: { state: 'preparing' } });
  await w.refresh();
  assert.equal(deriveImageStates(w.catalog, w.view), []);
  assert.equal(stateOf(w.catalog, 'web').workers, { g1: { state: 'preparing' }, w1: { state: 'present' } });

  // gVisor version: g1 fails it, then fails it with another error (state stays image-missing).
  const sandbox = w.catalog.get('sandbox')!.image;
  await w.fleet.reportImages('g1', { [sandbox]: { state: 'failed', error: 'first' } });
  await w.refresh();
  assert.equal(deriveImageStates(w.catalog, w.view), ['sandbox']);
  await w.fleet.reportImages('g1', { [sandbox]: { state: 'failed', error: 'second' } });
  await w.refresh();
  assert.equal(deriveImageStates(w.catalog, w.view), []);
  assert.is(stateOf(w.catalog, 'sandbox').error, 'worker g1: second');

  // It turns up: ready again, and the error is gone.
  await w.fleet.reportImages('g1', { [sandbox]: { state: 'present' } });
  await w.refresh();
  assert.equal(deriveImageStates(w.catalog, w.view), ['sandbox']);
  assert.equal(stateOf(w.catalog, 'sandbox'), { state: 'ready', workers: { g1: { state: 'present' } } });
});

t('a worker going lost takes its image with it; coming back restores it', async () => {
  const w = await world([{ id: 'w1', image: present }]);
  await w.report('web');
  await w.refresh();
  assert.equal(deriveImageStates(w.catalog, w.view), ['web']);
  w.advance(LOST_AFTER);
  await w.refresh();
  assert.equal(deriveImageStates(w.catalog, w.view), [], 'at the deadline it is not lost yet');
  w.advance(1);
  await w.refresh();
  assert.equal(deriveImageStates(w.catalog, w.view), ['web']);
  assert.equal(stateOf(w.catalog, 'web'), { state: 'building', workers: {} });
  await w.fleet.heartbeat({ id: 'w1', address: '10.0.0.2', runtimes: ['runc'], labels: {}, capacity: { slots: 10, cpu: 8, memoryBytes: 8 * 1024 ** 3 }, publicKey: KEY, version: 'test', startedAt: T0 });
  await w.refresh();
  assert.equal(deriveImageStates(w.catalog, w.view), ['web']);
  assert.is(stateOf(w.catalog, 'web').state, 'ready');
});

t.run();
