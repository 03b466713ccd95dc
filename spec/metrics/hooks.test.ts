/**
 * The two hooks metrics ride on: the work queue's `observe` (reconcile duration and errors by
 * reconciler and code, through `Metrics.watchQueue`) and the webhook sender's outcomes (a local
 * HTTP receiver that fails, then accepts).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WorkQueue } from '../../src/controller/work-queue.ts';
import { PoseidonError } from '../../src/core/errors.ts';
import { MemoryOutbox } from '../../src/events/outbox.ts';
import { WebhookSender } from '../../src/events/webhook.ts';
import { WebhookRelay } from '../../src/events/webhook-relay.ts';
import type { LifecycleEvent } from '../../src/events/hub.ts';
import { Metrics } from '../../src/metrics/metrics.ts';
import { memoryLogger } from '../helpers/log.ts';
import { waitFor } from '../helpers/server.ts';

async function value(m: Metrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const got = await m.registry.getSingleMetric(name)?.get();
  const counted = (v: { metricName?: string }): boolean => !/_(bucket|sum)$/.test(v.metricName ?? '');
  return (got?.values ?? [])
    .filter((v) => counted(v as { metricName?: string }) && Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want))
    .reduce((s, v) => s + v.value, 0);
}

test('work queue passes: duration per reconciler, failures by code (terminal ones too), unknown errors as E_INTERNAL', async () => {
  const m = new Metrics();
  const id = 'abcdef0123456789abcdef01';
  const q = new WorkQueue(async (_ctx, key) => {
    if (key === 'gateway') throw new PoseidonError('E_STORE', 'redis down', { kind: 'terminal' });
    if (key === 'fleet') throw new Error('a bug');
    return {};
  }, { concurrency: 2, baseBackoffMs: 60_000, maxBackoffMs: 60_000, log: memoryLogger() });
  m.watchQueue('manager', q, { gateway: 'gateway', fleet: 'fleet' }, 'placement');
  for (const key of [id, 'gateway', 'fleet', 'something-else']) q.add(key);
  await q.idle();
  await q.stop();
  assert.is(await value(m, 'poseidon_reconcile_duration_seconds', { reconciler: 'placement' }), 1);
  assert.is(await value(m, 'poseidon_reconcile_duration_seconds', { reconciler: 'other' }), 1);
  assert.is(await value(m, 'poseidon_reconcile_errors_total', { reconciler: 'gateway', code: 'E_STORE' }), 1);
  assert.is(await value(m, 'poseidon_reconcile_errors_total', { reconciler: 'fleet', code: 'E_INTERNAL' }), 1);
  assert.is(await value(m, 'poseidon_reconcile_errors_total', { reconciler: 'placement' }), 0);
  assert.equal(m.window.summary().reconcileErrors.byReconciler, { gateway: 1, fleet: 1 });
  const text = (await m.exposition()).text;
  assert.not.ok(text.includes(id), 'an instance id became a label value');
});

test('an observer that throws never breaks the queue', async () => {
  let runs = 0;
  const q = new WorkQueue(async () => { runs++; return {}; }, {
    concurrency: 1, baseBackoffMs: 10, maxBackoffMs: 10, log: memoryLogger(), observe: () => { throw new Error('metrics bug'); },
  });
  q.add('a');
  q.add('b');
  await q.idle();
  assert.is(runs, 2);
});

test('webhook outcomes: failed attempts, delivered, abandoned, dropped', async () => {
  const m = new Metrics();
  const statuses = [500, 200, 503, 503];
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => { res.statusCode = statuses.shift() ?? 200; res.end(); });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  const sender = new WebhookSender({ url, secret: 'webhook-secret-0123456789', log: memoryLogger(), attempts: 2, baseDelayMs: 10, observe: (o) => m.webhook(o) });
  const ev = (seq: number): LifecycleEvent => ({ id: `ev_${seq}`, seq, type: 'status', at: new Date().toISOString(), instance: { id: 'x', challenge: 'c', team: 't', status: 'running' } } as unknown as LifecycleEvent);
  // The outbox keeps two: the first of three is trimmed before the relay starts (dropped).
  const outbox = new MemoryOutbox({ maxEntries: 2 });
  const relay = new WebhookRelay({ outbox, sender, token: () => 1, log: memoryLogger(), dropped: (n) => { for (let i = 0; i < n; i++) m.webhook('dropped'); } });
  try {
    for (const seq of [1, 2, 3]) await outbox.append(ev(seq));
    relay.start(); // 2: 500, then 200 (one failed attempt, delivered); 3: 503 twice (abandoned)
    await waitFor('three outcomes', async () => ((await value(m, 'poseidon_webhook_deliveries_total')) >= 3 ? true : undefined), 10_000, 20);
    assert.is(await value(m, 'poseidon_webhook_deliveries_total', { result: 'delivered' }), 1);
    assert.is(await value(m, 'poseidon_webhook_deliveries_total', { result: 'dropped' }), 1);
    assert.is(await value(m, 'poseidon_webhook_deliveries_total', { result: 'abandoned' }), 1);
    assert.is(await value(m, 'poseidon_webhook_failed_attempts_total'), 3);
  } finally {
    await relay.stop();
    await new Promise<void>((r) => server.close(() => r()));
  }
});

test.run();
