import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Catalog } from '../../src/catalog/catalog.ts';
import { admissionReconciler } from '../../src/controller/admission.ts';
import { Semaphore } from '../../src/core/semaphore.ts';
import { newInstanceId } from '../../src/core/naming.ts';
import { MemoryStore } from '../../src/store/memory.ts';
import { loadTestCatalog } from '../helpers/catalog.ts';
import { memoryLogger } from '../helpers/log.ts';
import { makeInstance } from '../helpers/specs.ts';

const t = suite('admission and launch bounds');
const dir = mkdtempSync(path.join(tmpdir(), 'poseidon-adm-'));
let catalog: Catalog;
t.before(async () => {
  mkdirSync(path.join(dir, 'web'));
  writeFileSync(path.join(dir, 'web', 'challenge.yaml'), 'id: web\nname: web\nimage: busybox:1.35\nexpose: [{ name: web, port: 80 }]\nttl: { default: 10m, max: 1h }\n');
  catalog = await loadTestCatalog(dir);
});
t.after(() => rmSync(dir, { recursive: true, force: true }));

function setup(capacity: number, maxWaitMs = 60_000) {
  const store = new MemoryStore();
  const admitted: string[] = [];
  const pass = admissionReconciler({ store, catalog, log: memoryLogger(), capacity: () => capacity, queueMaxWaitMs: maxWaitMs, admitted: (id) => admitted.push(id) });
  const run = (now: number) => pass({ signal: new AbortController().signal, now: () => new Date(now) });
  return { store, admitted, run };
}
const T0 = 1_900_000_000_000;
const inst = (team: string, createdAt = T0) => makeInstance({ id: newInstanceId(), challenge: 'web', team, owner: `team:${team}`, createdAt, expiresAt: createdAt + 600_000 });

t('admits in arrival order as places free, starting the lifetime at admission', async () => {
  const { store, admitted, run } = setup(1);
  const holder = inst('h');
  await store.createInstance(holder, T0, { capacity: 1 });
  const q = ['a', 'b', 'c'].map((team, i) => inst(team, T0 + i));
  for (const i of q) await store.createInstance(i, T0, { capacity: 1 });
  const first = await run(T0 + 10);
  assert.equal(admitted, []);
  assert.is(first.requeueAfterMs, 60_000 - 10, 'wakes for the head\'s wait deadline');
  await store.updateInstance(holder.id, { desired: 'stopped' }, T0 + 1000);
  await run(T0 + 5000);
  assert.equal(admitted, [q[0]!.id]);
  const a = await store.getInstance(q[0]!.id);
  assert.equal([a!.status, a!.expiresAt, a!.maxExpiresAt], ['pending', T0 + 5000 + 600_000, T0 + 5000 + 3_600_000]);
  await store.updateInstance(q[0]!.id, { desired: 'stopped' }, T0 + 6000);
  await run(T0 + 6000);
  assert.equal(admitted, [q[0]!.id, q[1]!.id]);
});

t('a launch that waited too long fails with a reason and frees its owner', async () => {
  const { store, run } = setup(1, 30_000);
  await store.createInstance(inst('h'), T0, { capacity: 1 });
  const q = inst('late');
  await store.createInstance(q, T0, { capacity: 1 });
  await run(T0 + 30_000);
  const failed = await store.getInstance(q.id);
  assert.is(failed!.status, 'failed');
  assert.match(failed!.reason ?? '', /waited in the queue longer than 30s/);
  assert.ok((await store.createInstance(inst('late'), T0 + 31_000, { capacity: 1 })).created);
});

t('the launch semaphore never runs more than its limit at once', async () => {
  const sem = new Semaphore(4);
  let active = 0;
  let peak = 0;
  const order: number[] = [];
  await Promise.all(Array.from({ length: 100 }, (_, i) => sem.run(async () => {
    active++;
    peak = Math.max(peak, active);
    await sleep(1 + (i % 3));
    order.push(i);
    active--;
  })));
  assert.is(peak, 4);
  assert.is(order.length, 100);
});

t.run();
