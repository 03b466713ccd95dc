/**
 * The manager's placement pass (src/controller/placement-reconciler.ts), driven key by key on a
 * MemoryStore, a MemoryFleet and a FleetView sharing one controllable clock, with workers that
 * registered real X25519 keys and a catalog loaded from challenge files. Every case checks the
 * stored world: placement, epoch, sealed flag (opened with the worker's private key), reasons,
 * finished and deleted records; two managers race on one store without placing anything twice.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Catalog } from '../../src/catalog/catalog.ts';
import { loadSnapshot } from '../../src/catalog/load-snapshot.ts';
import { FleetView } from '../../src/controller/fleet-view.ts';
import { deriveImageStates } from '../../src/controller/image-states.ts';
import { placementReconciler, type PlacementSettings } from '../../src/controller/placement-reconciler.ts';
import type { RuntimeName } from '../../src/core/challenge.ts';
import { deriveFlag, flagDigest } from '../../src/core/flag.ts';
import type { Instance } from '../../src/core/instance.ts';
import { newInstanceId, portHostname } from '../../src/core/naming.ts';
import type { ReconcileResult } from '../../src/core/reconcile.ts';
import { keyFingerprint, newSealingKeys, parseSealedFlag, unseal } from '../../src/core/seal.ts';
import { InstanceIndex } from '../../src/gateway/instance-index.ts';
import { MemoryFleet } from '../../src/store/memory-fleet.ts';
import { MemoryStore } from '../../src/store/memory.ts';
import { loadTestCatalog } from '../helpers/catalog.ts';
import { memoryLogger } from '../helpers/log.ts';

const T0 = 1_900_000_000_000;
const LOST_AFTER = 10_000;
const BASE = 'ctf.test';
const TTL_MS = 600_000;
const SETTINGS: PlacementSettings = {
  baseDomain: BASE, tls: true, flagSecret: 'flag-secret-for-placement-tests', flagRetentionMs: 86_400_000,
  retentionMs: 60_000, onWorkerLost: 'reschedule', retryMs: 2000,
};

const CHALLENGES: Record<string, string> = {
  web: 'expose: [{ name: web, port: 80 }, { name: nc, port: 31337, protocol: tcp }]\nflag: { env: FLAG, format: "CTF{%s}" }\n',
  sandbox: 'expose: [{ name: web, port: 80 }]\nruntime: gvisor\n',
  zoned: 'expose: [{ name: web, port: 80 }]\nplacement: { labels: { zone: eu } }\n',
  fragile: 'expose: [{ name: web, port: 80 }]\nonWorkerLost: fail\n',
  steady: 'expose: [{ name: web, port: 80 }]\nonWorkerLost: reschedule\n',
};

function writeChallenge(dir: string, id: string, body: string): void {
  mkdirSync(path.join(dir, id), { recursive: true });
  writeFileSync(path.join(dir, id, 'challenge.yaml'), `id: ${id}\nname: ${id}\nimage: busybox:1.36\n${body}`);
}

const dir = mkdtempSync(path.join(tmpdir(), 'poseidon-placement-'));
const temp: string[] = [dir];
let catalog: Catalog;

const t = suite('placement reconciler');
t.before(async () => {
  for (const [id, body] of Object.entries(CHALLENGES)) writeChallenge(dir, id, body);
  catalog = await loadTestCatalog(dir);
});
t.after(() => {
  for (const d of temp) rmSync(d, { recursive: true, force: true });
});

interface WorkerOpts {
  runtimes?: RuntimeName[];
  labels?: Record<string, string>;
  slots?: number;
  cpu?: number;
  /** Challenges whose current image it reports present (default: every one it can run); null: none. */
  images?: string[] | null;
  /** Re-register with a fresh key pair. */
  newKey?: boolean;
}

/** One manager: its own instance index, fleet view and placement reconciler over the shared store and fleet. */
async function manager(w: { store: MemoryStore; fleet: MemoryFleet; clock: { now: number }; catalog: Catalog }, settings: PlacementSettings) {
  const log = memoryLogger();
  const index = new InstanceIndex(w.store, { refreshMs: 3_600_000, log, now: () => w.clock.now });
  await index.start();
  const view = new FleetView({
    fleet: w.fleet, instances: index, lostAfterMs: LOST_AFTER, now: () => w.clock.now,
    resources: (inst) => w.catalog.version(inst.specHash)?.spec.resources ?? { cpu: 0, memoryBytes: 0 },
  });
  const reconcile = placementReconciler({ store: w.store, catalog: w.catalog, fleet: view, log, settings, remember: (inst) => index.put(inst), held: (id) => index.byId(id) });
  const ctx = { signal: new AbortController().signal, now: () => new Date(w.clock.now) };
  return {
    log, index, view,
    /** The reconcile alone (what racing managers do between their own refreshes). */
    reconcile: (id: string): Promise<ReconcileResult> => reconcile(ctx, id),
    /** Brings the index and the fleet view up to date, then reconciles `id`. */
    async run(id: string): Promise<ReconcileResult> {
      await index.refresh();
      await view.refresh();
      return reconcile(ctx, id);
    },
  };
}

/** A store, a fleet and a manager on one clock, plus worker and launch helpers; `close` stops the indexes. */
async function world(opts: { settings?: Partial<PlacementSettings>; catalog?: Catalog } = {}) {
  const clock = { now: T0 };
  const store = new MemoryStore();
  const fleet = new MemoryFleet(() => clock.now);
  const cat = opts.catalog ?? catalog;
  const base = { store, fleet, clock, catalog: cat };
  const settings = { ...SETTINGS, ...opts.settings };
  const m = await manager(base, settings);
  const managers = [m];
  const keys = new Map<string, { publicKey: string; privateKey: string }>();
  const shapes = new Map<string, WorkerOpts>();

  async function register(id: string, o: WorkerOpts = {}): Promise<void> {
    const prev = shapes.get(id);
    const shape = { ...prev, ...o };
    shapes.set(id, shape);
    if (!keys.has(id) || o.newKey) keys.set(id, newSealingKeys());
    const runtimes = shape.runtimes ?? ['runc'];
    await fleet.heartbeat({
      id, address: `10.0.0.${keys.size}`, runtimes, labels: shape.labels ?? {}, capacity: { slots: shape.slots ?? 10, cpu: shape.cpu ?? 8, memoryBytes: 8 * 1024 ** 3 },
      publicKey: keys.get(id)!.publicKey, version: 'test', startedAt: T0,
    });
    if (prev && !o.images) return;
    const names = shape.images === null ? [] : shape.images ?? cat.list().filter((e) => runtimes.includes(e.spec.runtime)).map((e) => e.spec.id);
    const reports = Object.fromEntries(names.map((n) => [cat.get(n)!.image, { state: 'present' as const }]));
    await fleet.reportImages(id, reports);
  }

  /** Heartbeats of every worker but `except`, after moving the clock. */
  async function advance(ms: number, except: string[] = []): Promise<void> {
    clock.now += ms;
    for (const id of shapes.keys()) if (!except.includes(id)) await register(id);
  }

  async function launch(challenge: string, over: Partial<Instance> = {}, capacity = 0): Promise<Instance> {
    const entry = cat.get(challenge)!;
    const id = newInstanceId();
    const team = `team-${id.slice(0, 6)}`;
    const inst: Instance = {
      id, challenge, team, owner: `team:${team}`, generation: 1, epoch: 0, desired: 'running', status: 'pending',
      hostname: portHostname(id, entry.spec, 0, BASE), endpoints: [], specHash: entry.hash, createdAt: clock.now, updatedAt: clock.now,
      expiresAt: clock.now + TTL_MS, maxExpiresAt: clock.now + 2 * TTL_MS, renewals: 0, ...over,
    };
    const created = await store.createInstance(inst, clock.now, { capacity });
    assert.ok(created.created);
    return created.created ? created.instance : inst;
  }

  const get = async (id: string): Promise<Instance> => {
    const inst = await store.getInstance(id);
    assert.ok(inst, `instance ${id} exists`);
    return inst as Instance;
  };

  /** The flag sealed on `inst`, opened with the private key of the worker it names (throws if it does not open). */
  function opened(inst: Instance): string {
    const field = parseSealedFlag(inst.sealedFlag);
    assert.ok(field, `sealed flag of ${inst.id}`);
    const worker = inst.worker as string;
    assert.is(field!.specHash, inst.specHash, 'sealed for the version it runs');
    assert.is(field!.key, keyFingerprint(keys.get(worker)!.publicKey), 'sealed for its worker\'s key');
    return unseal(keys.get(worker)!.privateKey, field!.sealed, { instance: inst.id, epoch: inst.epoch, worker });
  }

  const flagOf = (inst: Instance): string =>
    deriveFlag(settings.flagSecret, { team: inst.team, challenge: inst.challenge, instance: inst.id }, cat.version(inst.specHash)!.spec.flag.format);

  return {
    clock, store, fleet, keys, m, managers, register, advance, launch, get, opened, flagOf,
    run: (id: string) => m.run(id),
    another: async () => { const x = await manager(base, settings); managers.push(x); return x; },
    close: () => { for (const x of managers) x.index.stop(); },
  };
}

type World = Awaited<ReturnType<typeof world>>;

async function within(fn: (w: World) => Promise<void>, opts?: Parameters<typeof world>[0]): Promise<void> {
  const w = await world(opts);
  try {
    await fn(w);
  } finally {
    w.close();
  }
}

/** Asserts `inst` is placed on `worker` at `epoch` with a flag that opens there and is the derived one. */
function assertPlaced(w: World, inst: Instance, worker: string, epoch: number): void {
  assert.is(inst.worker, worker, `${inst.id} on ${worker}`);
  assert.is(inst.epoch, epoch);
  assert.is(w.opened(inst), w.flagOf(inst));
}

/* ---------------------------------------------------------------- placing */

for (const tls of [true, false]) {
  t(`an unplaced instance is placed on a ready worker: epoch 1, planned endpoints (${tls ? 'TLS' : 'plain'}), a flag only that worker opens`, () => within(async (w) => {
    await w.register('w1');
    const inst = await w.launch('web');
    w.clock.now += 5;
    const result = await w.run(inst.id);
    const placed = await w.get(inst.id);
    assert.equal(
      { worker: placed.worker, epoch: placed.epoch, placedAt: placed.placedAt, status: placed.status, generation: placed.generation, reason: placed.reason },
      { worker: 'w1', epoch: 1, placedAt: T0 + 5, status: 'pending', generation: 1, reason: undefined },
    );
    const host = placed.hostname;
    const prefix = host.split('.')[0];
    const scheme = tls ? 'https' : 'http';
    assert.equal(placed.endpoints, [
      { name: 'web', protocol: 'http', port: 80, hostname: host, url: `${scheme}://${host}/`, backend: `poseidon-${inst.id}:80` },
      { name: 'nc', protocol: 'tcp', port: 31337, hostname: `${prefix}-nc.web.${BASE}`, url: `tls://${prefix}-nc.web.${BASE}:${tls ? 443 : 80}`, backend: `poseidon-${inst.id}:31337` },
    ]);
    const flag = w.opened(placed);
    assert.match(flag, /^CTF\{[0-9a-f]{32}\}$/);
    assert.is(flag, w.flagOf(placed));
    // Sealed for w1, epoch 1, this instance: another key, epoch or instance does not open it.
    const sealed = parseSealedFlag(placed.sealedFlag)!.sealed;
    const other = newSealingKeys();
    assert.throws(() => unseal(other.privateKey, sealed, { instance: inst.id, epoch: 1, worker: 'w1' }));
    assert.throws(() => unseal(w.keys.get('w1')!.privateKey, sealed, { instance: inst.id, epoch: 2, worker: 'w1' }));
    assert.throws(() => unseal(w.keys.get('w1')!.privateKey, sealed, { instance: inst.id, epoch: 1, worker: 'w2' }));
    assert.not.ok(placed.sealedFlag?.includes(flag), 'the flag is not stored in clear');
    assert.equal(await w.store.findFlag(flagDigest(flag)), { team: inst.team, challenge: 'web', instance: inst.id, issuedAt: T0 + 5 });
    assert.is(result.requeueAfterMs, placed.expiresAt - (T0 + 5), 'looked at again at its expiry');
  }, { settings: { tls } }));
}

t('a placed instance on a healthy worker is left alone (no write on an idempotent pass)', () => within(async (w) => {
  await w.register('w1');
  const inst = await w.launch('web');
  await w.run(inst.id);
  const placed = await w.get(inst.id);
  w.clock.now += 1000;
  await w.run(inst.id);
  assert.equal(await w.get(inst.id), placed);
}));

t('placement only uses workers that have the image (the busier worker with it wins over an idle one without)', () => within(async (w) => {
  await w.register('w1');
  await w.register('w2', { images: null });
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) ids.push((await w.launch('web')).id);
  for (const id of ids) await w.run(id);
  for (const id of ids) assert.is((await w.get(id)).worker, 'w1');
}));

interface NoFitRow {
  label: string;
  challenge: string;
  setup(w: World): Promise<void>;
  reason: string;
  /** Makes a worker fit; returns the worker the instance must land on. */
  fix(w: World): Promise<string>;
}

const NO_FIT: NoFitRow[] = [
  {
    label: 'no worker registered', challenge: 'web', setup: async () => {}, reason: 'E_NO_CAPACITY: no worker is registered',
    fix: async (w) => { await w.register('w9'); return 'w9'; },
  },
  {
    label: 'the only worker is cordoned', challenge: 'web', setup: async (w) => { await w.register('w1'); await w.fleet.setAdmin('w1', 'cordoned'); },
    reason: 'E_NO_CAPACITY: no worker fits: 1 cordoned', fix: async (w) => { await w.fleet.setAdmin('w1', 'active'); return 'w1'; },
  },
  {
    label: 'the only worker is draining', challenge: 'web', setup: async (w) => { await w.register('w1'); await w.fleet.setAdmin('w1', 'draining'); },
    reason: 'E_NO_CAPACITY: no worker fits: 1 draining', fix: async (w) => { await w.register('w2'); return 'w2'; },
  },
  {
    label: 'the only worker is lost', challenge: 'web', setup: async (w) => { await w.register('w1'); await w.advance(LOST_AFTER + 1, ['w1']); },
    reason: 'E_NO_CAPACITY: no worker fits: 1 lost', fix: async (w) => { await w.register('w1'); return 'w1'; },
  },
  {
    label: 'gVisor challenge, runc-only workers', challenge: 'sandbox', setup: async (w) => { await w.register('w1'); await w.register('w2'); },
    reason: 'E_NO_CAPACITY: no worker fits: 2 without gvisor', fix: async (w) => { await w.register('g1', { runtimes: ['runc', 'gvisor'] }); return 'g1'; },
  },
  {
    label: 'label constraint nobody carries', challenge: 'zoned', setup: async (w) => { await w.register('w1', { labels: { zone: 'us' } }); await w.register('w2'); },
    reason: 'E_NO_CAPACITY: no worker fits: 2 without label zone=eu', fix: async (w) => { await w.register('eu1', { labels: { zone: 'eu', rack: '7' } }); return 'eu1'; },
  },
  {
    label: 'the image is not on any worker yet', challenge: 'web', setup: async (w) => { await w.register('w1', { images: null }); },
    reason: 'E_NO_CAPACITY: no worker fits: 1 without the image yet', fix: async (w) => { await w.register('w1', { images: ['web'] }); return 'w1'; },
  },
  {
    label: 'the image pull failed', challenge: 'web',
    setup: async (w) => { await w.register('w1', { images: null }); await w.fleet.reportImages('w1', { [catalog.get('web')!.image]: { state: 'failed', error: 'denied' } }); },
    reason: 'E_NO_CAPACITY: no worker fits: 1 whose image pull failed', fix: async (w) => { await w.register('w1', { images: ['web'] }); return 'w1'; },
  },
  {
    label: 'the only worker is full', challenge: 'web',
    setup: async (w) => { await w.register('w1', { slots: 1 }); const other = await w.launch('web'); await w.run(other.id); },
    reason: 'E_NO_CAPACITY: no worker fits: 1 full',
    fix: async (w) => {
      // The other instance stops and its worker finishes it: the slot is free.
      const [other] = (await w.store.listInstances({ worker: 'w1' }));
      await w.store.updateInstance(other!.id, { desired: 'stopped' }, w.clock.now);
      await w.store.updateInstance(other!.id, { status: 'stopped', finishedAt: w.clock.now, endpoints: [] }, w.clock.now);
      return 'w1';
    },
  },
  {
    label: 'several causes, counted per cause', challenge: 'sandbox',
    setup: async (w) => {
      await w.register('a', { runtimes: ['runc', 'gvisor'] });
      await w.fleet.setAdmin('a', 'cordoned');
      await w.register('b');
      await w.register('c');
      await w.register('d', { runtimes: ['runc', 'gvisor'], images: null });
    },
    reason: 'E_NO_CAPACITY: no worker fits: 2 without gvisor, 1 cordoned, 1 without the image yet',
    fix: async (w) => { await w.register('d', { images: ['sandbox'] }); return 'd'; },
  },
];

for (const row of NO_FIT) {
  t(`no worker fits (${row.label}): pending with the reason, placed as soon as one fits`, () => within(async (w) => {
    await row.setup(w);
    const inst = await w.launch(row.challenge);
    const result = await w.run(inst.id);
    const waiting = await w.get(inst.id);
    assert.equal({ status: waiting.status, reason: waiting.reason, worker: waiting.worker, epoch: waiting.epoch, sealed: waiting.sealedFlag }, {
      status: 'pending', reason: row.reason, worker: undefined, epoch: 0, sealed: undefined,
    });
    assert.is(result.requeueAfterMs, SETTINGS.retryMs);
    w.clock.now += 100;
    await w.run(inst.id);
    assert.is((await w.get(inst.id)).updatedAt, waiting.updatedAt, 'the same reason is not written again');
    const target = await row.fix(w);
    await w.run(inst.id);
    const placed = await w.get(inst.id);
    assertPlaced(w, placed, target, 1);
    assert.is(placed.reason, undefined, 'the waiting reason is cleared');
  }));
}

t('a gVisor challenge lands only on workers offering gvisor, however loaded the others are', () => within(async (w) => {
  await w.register('r1');
  await w.register('r2');
  await w.register('g1', { runtimes: ['runc', 'gvisor'], slots: 20 });
  await w.register('g2', { runtimes: ['runc', 'gvisor'], slots: 20 });
  for (let i = 0; i < 8; i++) await w.run((await w.launch('sandbox')).id);
  const placed = await w.store.listInstances({ challenge: 'sandbox' });
  assert.equal(placed.map((i) => i.worker).sort(), ['g1', 'g1', 'g1', 'g1', 'g2', 'g2', 'g2', 'g2']);
}));

t('constraint labels: instances land only on workers carrying every label', () => within(async (w) => {
  await w.register('us1', { labels: { zone: 'us' } });
  await w.register('eu1', { labels: { zone: 'eu' } });
  await w.register('eu2', { labels: { zone: 'eu', gpu: 'yes' } });
  await w.register('plain');
  for (let i = 0; i < 6; i++) await w.run((await w.launch('zoned')).id);
  for (let i = 0; i < 4; i++) await w.run((await w.launch('web')).id);
  const zoned = (await w.store.listInstances({ challenge: 'zoned' })).map((i) => i.worker).sort();
  assert.equal(zoned, ['eu1', 'eu1', 'eu1', 'eu2', 'eu2', 'eu2']);
  const web = new Set((await w.store.listInstances({ challenge: 'web' })).map((i) => i.worker));
  assert.ok(web.has('us1') && web.has('plain'), 'unconstrained challenges use every worker');
}));

t('a worker with 2 slots never gets a third, also when decisions run at once (loads come from the index)', () => within(async (w) => {
  await w.register('w1', { slots: 2 });
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) ids.push((await w.launch('web')).id);
  await w.m.index.refresh();
  await w.m.view.refresh();
  await Promise.all(ids.map((id) => w.m.reconcile(id)));
  const all = await Promise.all(ids.map((id) => w.get(id)));
  assert.is(all.filter((i) => i.worker === 'w1').length, 2);
  for (const i of all.filter((x) => x.worker === undefined)) assert.is(i.reason, 'E_NO_CAPACITY: no worker fits: 1 full');
  // A fresh manager (its index loaded from the store) sees the same load.
  const late = await w.another();
  for (const id of ids) await late.run(id);
  assert.is((await w.store.listInstances({ worker: 'w1' })).length, 2);
}));

/* ---------------------------------------------------------------- cordon, drain, lost */

t('cordoned: keeps its instances, takes no new ones', () => within(async (w) => {
  await w.register('w1');
  const kept = await w.launch('web');
  await w.run(kept.id);
  await w.store.updateInstance(kept.id, { status: 'running' }, w.clock.now);
  await w.fleet.setAdmin('w1', 'cordoned');
  await w.register('w2', { slots: 1 });
  const before = await w.get(kept.id);
  await w.run(kept.id);
  assert.equal(await w.get(kept.id), before, 'not moved, not rewritten');
  const fresh = await w.launch('web');
  await w.run(fresh.id);
  assertPlaced(w, await w.get(fresh.id), 'w2', 1);
  const third = await w.launch('web');
  await w.run(third.id);
  assert.is((await w.get(third.id)).reason, 'E_NO_CAPACITY: no worker fits: 1 cordoned, 1 full');
}));

t('draining: its instances stay while nothing else fits, then move (next generation and epoch, same hostname and expiry)', () => within(async (w) => {
  await w.register('w1');
  const inst = await w.launch('web');
  await w.run(inst.id);
  const running = await w.store.updateInstance(inst.id, { status: 'running' }, w.clock.now);
  await w.fleet.setAdmin('w1', 'draining');
  w.clock.now += 1000;
  const stay = await w.run(inst.id);
  assert.equal(await w.get(inst.id), running, 'make-before-break: untouched while no other worker fits');
  assert.is(stay.requeueAfterMs, SETTINGS.retryMs);
  await w.register('w2');
  w.clock.now += 1000;
  await w.run(inst.id);
  const moved = await w.get(inst.id);
  assertPlaced(w, moved, 'w2', 2);
  assert.equal(
    { generation: moved.generation, specHash: moved.specHash, hostname: moved.hostname, expiresAt: moved.expiresAt, maxExpiresAt: moved.maxExpiresAt, status: moved.status, reason: moved.reason, placedAt: moved.placedAt },
    { generation: running!.generation + 1, specHash: running!.specHash, hostname: running!.hostname, expiresAt: running!.expiresAt, maxExpiresAt: running!.maxExpiresAt, status: 'pending', reason: 'moved from w1 (draining)', placedAt: w.clock.now },
  );
  assert.equal(moved.endpoints.map((e) => e.hostname), running!.endpoints.map((e) => e.hostname));
  assert.is(w.opened(moved), w.flagOf(moved), 'the same flag, sealed for the new worker');
}));

interface LostRow {
  global: PlacementSettings['onWorkerLost'];
  challenge: string;
  outcome: 'moved' | 'failed';
}

const LOST: LostRow[] = [
  { global: 'reschedule', challenge: 'web', outcome: 'moved' },
  { global: 'fail', challenge: 'web', outcome: 'failed' },
  { global: 'reschedule', challenge: 'fragile', outcome: 'failed' },
  { global: 'fail', challenge: 'steady', outcome: 'moved' },
  { global: 'reschedule', challenge: 'steady', outcome: 'moved' },
  { global: 'fail', challenge: 'fragile', outcome: 'failed' },
];

for (const row of LOST) {
  t(`lost worker, policy ${row.global} globally, challenge ${row.challenge}: ${row.outcome}`, () => within(async (w) => {
    await w.register('w1');
    const inst = await w.launch(row.challenge);
    await w.run(inst.id);
    const running = await w.store.updateInstance(inst.id, { status: 'running' }, w.clock.now);
    await w.register('w2', { slots: 1 });
    // One millisecond before the deadline nothing happens.
    await w.advance(LOST_AFTER, ['w1']);
    await w.run(inst.id);
    assert.equal(await w.get(inst.id), running);
    await w.advance(1, ['w1']);
    await w.run(inst.id);
    const after = await w.get(inst.id);
    if (row.outcome === 'moved') {
      assertPlaced(w, after, 'w2', 2);
      assert.equal([after.generation, after.hostname, after.expiresAt, after.reason], [running!.generation + 1, running!.hostname, running!.expiresAt, 'moved from w1 (lost)']);
      return;
    }
    assert.is(after.status, 'failed');
    assert.match(after.reason ?? '', /^E_WORKER_LOST: worker w1 /);
    // Nobody will finish it on the lost worker: the manager does, keeping the reason.
    await w.run(inst.id);
    const finished = await w.get(inst.id);
    assert.equal({ status: finished.status, reason: finished.reason, endpoints: finished.endpoints, finishedAt: finished.finishedAt }, {
      status: 'failed', reason: after.reason, endpoints: [], finishedAt: w.clock.now,
    });
    assert.is((await w.store.listInstances({ worker: 'w2' })).length, 0, 'not placed anywhere else');
  }, { settings: { onWorkerLost: row.global } }));
}

t('lost worker and no other fits: the instance waits with the reason, then moves when one fits', () => within(async (w) => {
  await w.register('w1');
  const inst = await w.launch('web');
  await w.run(inst.id);
  await w.store.updateInstance(inst.id, { status: 'running' }, w.clock.now);
  await w.advance(LOST_AFTER + 1, ['w1']);
  await w.run(inst.id);
  const waiting = await w.get(inst.id);
  assert.equal([waiting.status, waiting.reason, waiting.worker, waiting.epoch], ['pending', 'E_NO_CAPACITY: no worker fits: 1 lost', 'w1', 1]);
  await w.register('w3');
  await w.run(inst.id);
  assertPlaced(w, await w.get(inst.id), 'w3', 2);
}));

/* ---------------------------------------------------------------- finishing and retention */

interface FinishRow {
  label: string;
  /** Builds the record; returns nothing. */
  setup(w: World, inst: Instance): Promise<void>;
  /** undefined: the record is left for its worker (not rewritten). */
  expect?: { status: 'stopped' | 'failed'; reason: string };
}

const stopRequest = async (w: World, inst: Instance) => { await w.store.updateInstance(inst.id, { desired: 'stopped' }, w.clock.now); };
const placeOn = async (w: World, inst: Instance, worker: string) => {
  await w.register(worker);
  await w.run(inst.id);
  await w.store.updateInstance(inst.id, { status: 'running' }, w.clock.now);
};
const expire = async (w: World) => { await w.advance(TTL_MS); };

const FINISH: FinishRow[] = [
  { label: 'never placed, stop requested', setup: stopRequest, expect: { status: 'stopped', reason: 'stopped on request' } },
  { label: 'never placed, expired', setup: async (w) => expire(w), expect: { status: 'stopped', reason: 'expired' } },
  {
    label: 'never placed, failed without finishing', setup: async (w, inst) => { await w.store.updateInstance(inst.id, { status: 'failed', reason: 'image gone' }, w.clock.now); },
    expect: { status: 'failed', reason: 'image gone' },
  },
  { label: 'placed on a live worker, stop requested', setup: async (w, inst) => { await placeOn(w, inst, 'w1'); await stopRequest(w, inst); } },
  { label: 'placed on a live worker, expired', setup: async (w, inst) => { await placeOn(w, inst, 'w1'); await expire(w); } },
  { label: 'placed on a cordoned worker, stop requested', setup: async (w, inst) => { await placeOn(w, inst, 'w1'); await w.fleet.setAdmin('w1', 'cordoned'); await stopRequest(w, inst); } },
  {
    label: 'placed on a lost worker, stop requested', setup: async (w, inst) => { await placeOn(w, inst, 'w1'); await w.advance(LOST_AFTER + 1, ['w1']); await stopRequest(w, inst); },
    expect: { status: 'stopped', reason: 'stopped on request' },
  },
  {
    label: 'placed on a lost worker, expired', setup: async (w, inst) => { await placeOn(w, inst, 'w1'); await w.advance(TTL_MS, ['w1']); },
    expect: { status: 'stopped', reason: 'expired' },
  },
  {
    label: 'placed on a worker that was forgotten, stop requested', setup: async (w, inst) => { await placeOn(w, inst, 'w1'); await w.fleet.forget('w1'); await stopRequest(w, inst); },
    expect: { status: 'stopped', reason: 'stopped on request' },
  },
];

for (const row of FINISH) {
  t(`not desired, ${row.label}: ${row.expect ? `the manager finishes it (${row.expect.status})` : 'left for the worker'}`, () => within(async (w) => {
    const inst = await w.launch('web');
    await row.setup(w, inst);
    const before = await w.get(inst.id);
    w.clock.now += 10;
    const result = await w.run(inst.id);
    const after = await w.get(inst.id);
    if (!row.expect) {
      assert.equal(after, before, 'no write');
      assert.ok((result.requeueAfterMs ?? 0) > 0, 'looked at again later');
      return;
    }
    assert.equal({ status: after.status, reason: after.reason, endpoints: after.endpoints, finishedAt: after.finishedAt }, { ...row.expect, endpoints: [], finishedAt: w.clock.now });
    assert.is(result.requeueAfterMs, SETTINGS.retentionMs);
  }));
}

t('a queued launch that is cancelled is finished (stopped), and its record goes after retention', () => within(async (w) => {
  await w.register('w1');
  const holder = await w.launch('web', {}, 1);
  const queued = await w.launch('web', {}, 1);
  assert.is(queued.status, 'queued');
  await w.store.updateInstance(queued.id, { desired: 'stopped' }, w.clock.now);
  w.clock.now += 10;
  await w.run(queued.id);
  const after = await w.get(queued.id);
  assert.equal({ status: after.status, reason: after.reason, worker: after.worker, finishedAt: after.finishedAt }, { status: 'stopped', reason: 'stopped on request', worker: undefined, finishedAt: w.clock.now });
  w.clock.now += SETTINGS.retentionMs;
  await w.run(queued.id);
  assert.is(await w.store.getInstance(queued.id), undefined);
  assert.ok(await w.store.getInstance(holder.id));
}));

t('a queued launch still wanted is not touched (admission decides when it starts)', () => within(async (w) => {
  await w.register('w1');
  await w.launch('web', {}, 1);
  const queued = await w.launch('web', {}, 1);
  const before = await w.get(queued.id);
  w.clock.now += 10;
  await w.run(queued.id);
  assert.equal(await w.get(queued.id), before);
}));

const RETENTION: [string, 'stopped' | 'failed'][] = [['stopped', 'stopped'], ['failed', 'failed']];

for (const [label, status] of RETENTION) {
  t(`a finished (${label}) record is deleted after the retention period, not before`, () => within(async (w) => {
    const inst = await w.launch('web');
    const finishedAt = w.clock.now;
    await w.store.updateInstance(inst.id, { desired: 'stopped', status, finishedAt, endpoints: [] }, finishedAt);
    w.clock.now = finishedAt + SETTINGS.retentionMs - 1;
    const early = await w.run(inst.id);
    assert.ok(await w.store.getInstance(inst.id));
    assert.is(early.requeueAfterMs, 1);
    w.clock.now = finishedAt + SETTINGS.retentionMs;
    await w.run(inst.id);
    assert.is(await w.store.getInstance(inst.id), undefined);
  }));
}

/* ---------------------------------------------------------------- the view's copy */

/** Runs `fn` counting the store reads of one record it makes. */
async function readsDuring(w: World, fn: () => Promise<unknown>): Promise<number> {
  const real = w.store.getInstance.bind(w.store);
  let reads = 0;
  w.store.getInstance = (id: string) => { reads++; return real(id); };
  try {
    await fn();
  } finally {
    w.store.getInstance = real;
  }
  return reads;
}

t('"nothing to do" is decided on the view\'s copy without a store read: placed and sealed (requeued at expiry), finished within retention', () => within(async (w) => {
  await w.register('w1');
  const inst = await w.launch('web');
  await w.run(inst.id);
  await w.store.updateInstance(inst.id, { status: 'running' }, w.clock.now);
  await w.m.index.refresh();
  w.clock.now += 1000;
  let result: ReconcileResult = {};
  assert.is(await readsDuring(w, async () => { result = await w.m.reconcile(inst.id); }), 0, 'no read for a settled instance');
  assert.is(result.requeueAfterMs, inst.expiresAt - w.clock.now);
  const done = await w.launch('web');
  await w.store.updateInstance(done.id, { desired: 'stopped', status: 'stopped', finishedAt: w.clock.now, endpoints: [] }, w.clock.now);
  await w.m.index.refresh();
  w.clock.now += 10;
  assert.is(await readsDuring(w, async () => { result = await w.m.reconcile(done.id); }), 0, 'no read for a finished record');
  assert.is(result.requeueAfterMs, SETTINGS.retentionMs - 10);
}));

t('a view copy that needs a decision (draining worker, expired, stale seal, unplaced) is decided on the store\'s copy', () => within(async (w) => {
  await w.register('w1');
  await w.register('w2');
  const [a, b, c] = [await w.launch('web'), await w.launch('web'), await w.launch('web')];
  for (const i of [a, b, c]) await w.run(i.id);
  // Unplaced in the view, placed in the store: the pass reads the store and leaves it alone.
  const d = await w.launch('web');
  await w.m.index.refresh();
  await w.m.reconcile(d.id);
  assert.ok((await w.get(d.id)).worker, 'the unplaced copy was placed');
  // Expired in the view: the store is read and the instance is left for its worker to finish.
  w.clock.now = a.expiresAt;
  assert.ok(await readsDuring(w, () => w.m.reconcile(a.id)) >= 1, 'an expired copy is read again');
  w.clock.now = T0 + 1000;
  // A re-keyed worker: the copy's seal is stale, the pass reads the store and reseals.
  const placedOn = (await w.get(b.id)).worker as string;
  await w.register(placedOn, { newKey: true });
  await w.m.view.refresh();
  assert.ok(await readsDuring(w, () => w.m.reconcile(b.id)) >= 1);
  assert.is(w.opened(await w.get(b.id)), w.flagOf(b), 'resealed for the new key');
  // The view's copy is older than the store's (a stop the view has not taken in): the pass
  // takes the copy's word that nothing is to be done; the change's own update wakes it later.
  await w.store.updateInstance(c.id, { desired: 'stopped' }, w.clock.now);
  assert.is(await readsDuring(w, () => w.m.reconcile(c.id)), 0);
  await w.m.index.refresh();
  assert.ok(await readsDuring(w, () => w.m.reconcile(c.id)) >= 1, 'after the view took the stop in, the store is read');
}));

/* ---------------------------------------------------------------- resealing */

t('a worker re-registered with a new key gets the flag resealed for that key (same placement)', () => within(async (w) => {
  await w.register('w1');
  const inst = await w.launch('web');
  await w.run(inst.id);
  // The worker reports it running, with what only it knows (a published port, a leased URL).
  const planned = (await w.get(inst.id)).endpoints;
  const observed = planned.map((e) => (e.protocol === 'tcp' ? { ...e, url: 'tcp://lease.ctf.test:40001', published: { host: '127.0.0.1', port: 40001 } } : e));
  const first = (await w.store.updateInstance(inst.id, { status: 'running', endpoints: observed }, w.clock.now))!;
  const oldKey = w.keys.get('w1')!.privateKey;
  await w.register('w1', { newKey: true });
  w.clock.now += 10;
  await w.run(inst.id);
  const resealed = await w.get(inst.id);
  assert.is.not(resealed.sealedFlag, first.sealedFlag);
  assertPlaced(w, resealed, 'w1', 1);
  assert.throws(() => unseal(oldKey, parseSealedFlag(resealed.sealedFlag)!.sealed, { instance: inst.id, epoch: 1, worker: 'w1' }));
  assert.equal([resealed.generation, resealed.placedAt, resealed.status], [first.generation, first.placedAt, 'running']);
  assert.equal(resealed.endpoints, observed, 'the same version keeps the observed endpoints');
  await w.run(inst.id);
  assert.equal(await w.get(inst.id), resealed, 'resealed once');
}));

t('a rollout (update: recreate) moves the instance to the new version and reseals its flag for it', async () => {
  const own = mkdtempSync(path.join(tmpdir(), 'poseidon-rollout-'));
  temp.push(own);
  writeChallenge(own, 'rolling', 'expose: [{ name: web, port: 80 }]\nupdate: recreate\nflag: { env: FLAG, format: "v1{%s}" }\n');
  const cat = await loadTestCatalog(own);
  await within(async (w) => {
    await w.register('w1');
    const inst = await w.launch('rolling');
    await w.run(inst.id);
    await w.store.updateInstance(inst.id, { status: 'running' }, w.clock.now);
    const v1 = await w.get(inst.id);
    writeChallenge(own, 'rolling', 'expose: [{ name: web, port: 8080 }]\nupdate: recreate\nflag: { env: FLAG, format: "v2{%s}" }\n');
    cat.apply(await loadSnapshot({ revision: 'r2', root: own, path: '.' }), w.clock.now);
    const v2 = cat.get('rolling')!;
    assert.is.not(v2.hash, v1.specHash);
    cat.markImage(v2.hash, 'ready', { w1: { state: 'present' } });
    await w.fleet.reportImages('w1', { [v2.image]: { state: 'present' } });
    w.clock.now += 10;
    await w.run(inst.id);
    const after = await w.get(inst.id);
    assert.is(after.specHash, v2.hash);
    assertPlaced(w, after, 'w1', 1);
    assert.match(w.opened(after), /^v2\{[0-9a-f]{32}\}$/);
    assert.ok(await w.store.findFlag(flagDigest(w.flagOf(after))), 'the new version\'s flag is recorded');
    assert.equal(after.endpoints.map((e) => [e.name, e.port, e.backend]), [['web', 8080, `poseidon-${inst.id}:8080`]], 'endpoints follow the new version');
    await w.run(inst.id);
    assert.equal(await w.get(inst.id), after, 'nothing more to do');
  }, { catalog: cat });
});

for (const how of ['draining', 'lost'] as const) t(`a ${how} worker's instance of a superseded version (update: keep) moves to the current version when no worker holds its own`, async () => {
  const own = mkdtempSync(path.join(tmpdir(), 'poseidon-keep-'));
  temp.push(own);
  writeChallenge(own, 'kept', 'expose: [{ name: web, port: 80 }]\n');
  const cat = await loadTestCatalog(own);
  await within(async (w) => {
    await w.register('w1');
    const inst = await w.launch('kept');
    await w.run(inst.id);
    const running = (await w.store.updateInstance(inst.id, { status: 'running' }, w.clock.now))!;
    // A new version with another image; workers prepare (and report) only current versions.
    writeFileSync(path.join(own, 'kept', 'challenge.yaml'), 'id: kept\nname: kept\nimage: busybox:1.37\nexpose: [{ name: web, port: 80 }]\n');
    cat.apply(await loadSnapshot({ revision: 'r2', root: own, path: '.' }), w.clock.now);
    const v2 = cat.get('kept')!;
    cat.markImage(v2.hash, 'ready', {});
    await w.fleet.pruneImages('w1', [v2.image]);
    await w.fleet.reportImages('w1', { [v2.image]: { state: 'present' } });
    await w.run(inst.id);
    assert.equal(await w.get(inst.id), running, 'policy keep: it stays on its version');
    await w.register('w2', { images: null });
    await w.fleet.reportImages('w2', { [v2.image]: { state: 'present' } });
    if (how === 'draining') await w.fleet.setAdmin('w1', 'draining');
    else await w.advance(LOST_AFTER + 1, ['w1']);
    await w.run(inst.id);
    const moved = await w.get(inst.id);
    assertPlaced(w, moved, 'w2', 2);
    assert.equal([moved.specHash, moved.generation, moved.hostname, moved.expiresAt], [v2.hash, running.generation + 1, running.hostname, running.expiresAt]);
    assert.is(moved.reason, `moved from w1 (${how}), now on version ${v2.hash}`);
    assert.ok(await w.store.findFlag(flagDigest(w.flagOf(moved))));
  }, { catalog: cat });
});

/* ---------------------------------------------------------------- as the fleet pass runs it */

t('with image states derived from worker reports, a gVisor challenge without a gVisor worker waits with E_NO_CAPACITY', async () => {
  const own = mkdtempSync(path.join(tmpdir(), 'poseidon-derived-'));
  temp.push(own);
  writeChallenge(own, 'sandbox', CHALLENGES.sandbox!);
  writeChallenge(own, 'web', CHALLENGES.web!);
  const cat = await loadTestCatalog(own);
  for (const e of cat.list()) cat.markImage(e.hash, 'building', {});
  await within(async (w) => {
    await w.register('w1');
    await w.m.view.refresh();
    deriveImageStates(cat, w.m.view);
    assert.is(cat.get('web')!.state, 'ready');
    const inst = await w.launch('sandbox');
    await w.run(inst.id);
    const waiting = await w.get(inst.id);
    assert.equal([waiting.status, waiting.reason], ['pending', 'E_NO_CAPACITY: no worker fits: 1 without gvisor']);
    await w.register('g1', { runtimes: ['runc', 'gvisor'] });
    await w.m.view.refresh();
    deriveImageStates(cat, w.m.view);
    await w.run(inst.id);
    assertPlaced(w, await w.get(inst.id), 'g1', 1);
  }, { catalog: cat });
});

/* ---------------------------------------------------------------- two managers */

t('a manager that has not seen a new worker yet does not move an instance another manager placed there', () => within(async (w) => {
  await w.register('w1', { slots: 1 });
  const a = w.m;
  const b = await w.another();
  await b.view.refresh();
  await w.run((await w.launch('web')).id);
  await w.register('w2');
  const inst = await w.launch('web');
  await a.run(inst.id);
  const placed = await w.get(inst.id);
  assertPlaced(w, placed, 'w2', 1);
  // B's last listing has no w2; the store's change notification reaches it first.
  await b.reconcile(inst.id);
  assert.equal(await w.get(inst.id), placed, 'not moved off a worker B had not listed');
  // Nor finished by B when it is stopped: w2 is alive and finishes it.
  const stopping = await w.store.updateInstance(inst.id, { desired: 'stopped' }, w.clock.now);
  const c = await w.another();
  await c.view.refresh();
  await w.register('w3');
  const late = await w.launch('web');
  await a.run(late.id);
  await w.store.updateInstance(late.id, { desired: 'stopped' }, w.clock.now);
  const lateBefore = await w.get(late.id);
  assert.is(lateBefore.worker, 'w3');
  await c.reconcile(late.id);
  await b.reconcile(inst.id);
  assert.equal([await w.get(late.id), await w.get(inst.id)], [lateBefore, stopping]);
}));

interface LateRow {
  label: string;
  /** After placement: moves the clocks and heartbeats so that this manager's view wrongly says w1 is lost, or would. */
  stale(w: World): Promise<void>;
}

const LATE: LateRow[] = [
  {
    // Both keep heartbeating, but this manager's fleet pass has not listed them for longer than the lost timeout.
    label: 'the last listing is older than the lost timeout', stale: async (w) => { await w.advance(LOST_AFTER + 1); },
  },
  {
    // The listing caught w1 late (6 s without a heartbeat); it heartbeated right after, and the listing aged past the timeout.
    label: 'the listing caught a late heartbeat that came right after', stale: async (w) => {
      await w.advance(6000, ['w1']);
      await w.m.view.refresh();
      await w.register('w1');
      await w.advance(LOST_AFTER - 6000 + 1);
    },
  },
];

for (const policy of ['reschedule', 'fail'] as const) {
  for (const row of LATE) {
    t(`policy ${policy}, ${row.label}: a live worker is not taken for lost, its instance stays`, () => within(async (w) => {
      await w.register('w1');
      await w.register('w2');
      const inst = await w.launch('web');
      await w.run(inst.id);
      const running = await w.store.updateInstance(inst.id, { status: 'running' }, w.clock.now);
      await row.stale(w);
      await w.m.reconcile(inst.id);
      assert.equal(await w.get(inst.id), running);
    }, { settings: { onWorkerLost: policy } }));
  }
}

t('two managers racing over the same 50 instances never place one twice', () => within(async (w) => {
  for (const id of ['w1', 'w2', 'w3']) await w.register(id, { slots: 100, cpu: 100 });
  const ids: string[] = [];
  for (let i = 0; i < 50; i++) ids.push((await w.launch(i % 2 ? 'web' : 'steady')).id);
  const a = w.m;
  const b = await w.another();
  for (const m of [a, b]) {
    await m.index.refresh();
    await m.view.refresh();
  }
  // Both work through every id at once, in opposite orders.
  await Promise.all([...ids.map((id) => a.reconcile(id)), ...[...ids].reverse().map((id) => b.reconcile(id))]);
  // A second round on each (their indexes catch up) changes nothing.
  const first = await w.store.listInstances();
  for (const m of [a, b]) for (const id of ids) await m.run(id);
  const all = await w.store.listInstances();
  assert.equal(all, first, 'a second round changes nothing');
  assert.is(all.length, 50);
  for (const inst of all) {
    assert.ok(inst.worker === 'w1' || inst.worker === 'w2' || inst.worker === 'w3', `${inst.id} placed (${inst.reason ?? ''})`);
    assertPlaced(w, inst, inst.worker as string, 1);
  }
  const placedLines = [...a.log.lines, ...b.log.lines].filter((l) => l.msg === 'instance placed');
  assert.is(placedLines.length, 50, 'each instance placed exactly once across both managers');
  assert.ok(a.log.lines.some((l) => l.msg === 'instance placed') && b.log.lines.some((l) => l.msg === 'instance placed'), 'both managers won some');
}));

t.run();
