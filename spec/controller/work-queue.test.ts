import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WorkQueue } from '../../src/controller/work-queue.ts';
import { PoseidonError } from '../../src/core/errors.ts';
import { memoryLogger } from '../helpers/log.ts';

const opts = { concurrency: 4, baseBackoffMs: 10, maxBackoffMs: 40, log: memoryLogger() };

test('a key is never reconciled twice at once, and an add during a run runs it again once', async () => {
  let running = 0; let maxRunning = 0; let runs = 0;
  const q = new WorkQueue(async () => {
    running++; runs++; maxRunning = Math.max(maxRunning, running);
    await sleep(20);
    running--;
    return {};
  }, opts);
  q.add('a');
  await sleep(5);
  for (let i = 0; i < 10; i++) q.add('a');
  await q.idle();
  assert.is(maxRunning, 1);
  assert.is(runs, 2);
});

test('waiting keys are deduplicated, in-flight keys rerun once, concurrency is bounded', async () => {
  const seen: string[] = []; let running = 0; let maxRunning = 0;
  const q = new WorkQueue(async (_ctx, key) => {
    running++; maxRunning = Math.max(maxRunning, running); seen.push(key);
    await sleep(5);
    running--;
    return {};
  }, { ...opts, concurrency: 2 });
  for (let i = 0; i < 3; i++) for (const k of ['a', 'b', 'c', 'd']) q.add(k);
  await q.idle();
  assert.ok(maxRunning <= 2);
  // a and b were in flight during the repeats (rerun once each); c and d were waiting (deduplicated).
  assert.equal([...seen].sort(), ['a', 'a', 'b', 'b', 'c', 'd']);
});

test('transient errors retry with backoff; terminal errors stall', async () => {
  const attempts = new Map<string, number>();
  const q = new WorkQueue(async (_ctx, key) => {
    const n = (attempts.get(key) ?? 0) + 1;
    attempts.set(key, n);
    if (key === 'flaky' && n < 3) throw new PoseidonError('E_RUNTIME', 'boom', { kind: 'transient' });
    if (key === 'stuck') throw new PoseidonError('E_SPEC_INVALID', 'bad', { kind: 'terminal' });
    return {};
  }, opts);
  q.add('flaky'); q.add('stuck');
  await sleep(200);
  assert.is(attempts.get('flaky'), 3);
  assert.is(attempts.get('stuck'), 1);
  await q.stop();
});

test('requeueAfterMs schedules the next pass; the earliest schedule wins', async () => {
  const times: number[] = [];
  const start = Date.now();
  const q = new WorkQueue(async () => {
    times.push(Date.now() - start);
    return times.length === 1 ? { requeueAfterMs: 20_000 } : {};
  }, opts);
  q.add('k');
  const deadline = Date.now() + 15_000;
  while (times.length === 0 && Date.now() < deadline) await sleep(5);
  q.addAfter('k', 30_000);
  q.addAfter('k', 50);
  while (times.length < 2 && Date.now() < deadline) await sleep(5);
  await q.stop();
  // Neither the 20 s requeue nor the 30 s schedule may win over the 50 ms one; no fixed timing is asserted.
  assert.is(times.length, 2, `runs at ${times.join(',')}`);
  assert.ok((times[1] ?? 0) - (times[0] ?? 0) >= 45, `second run at ${times[1]} after the first at ${times[0]}`);
  assert.ok((times[1] ?? 0) < 15_000, `second run at ${times[1]}`);
});

test('stop cancels timers and refuses new keys', async () => {
  let runs = 0;
  const q = new WorkQueue(async () => { runs++; return {}; }, opts);
  q.addAfter('k', 30);
  await q.stop();
  q.add('k');
  await sleep(60);
  assert.is(runs, 0);
});

test.run();
