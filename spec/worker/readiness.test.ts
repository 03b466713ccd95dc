/** Readiness probes (issue 11): fast, bounded per engine, and load never reads as failure. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ReadinessProbes } from '../../src/worker/readiness.ts';

function rig(answers: (number | undefined)[], opts: { concurrency?: number } = {}) {
  let clock = 1_000_000;
  let running = 0;
  let peak = 0;
  const calls: string[] = [];
  const runtime = {
    exec: async (container: string) => {
      calls.push(container);
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setImmediate(r));
      running--;
      return answers.length > 1 ? answers.shift() : answers[0];
    },
  };
  const probes = new ReadinessProbes({ runtime, now: () => clock, ...opts });
  return { probes, calls, advance: (ms: number) => { clock += ms; }, peak: () => peak };
}

test('ready at the first probe that answers 0', async () => {
  const { probes, calls } = rig([1, 0]);
  assert.equal(await probes.check('a:1:1', 'c1', ['true'], 30), { kind: 'waiting', retryMs: 25, answered: true });
  assert.equal(await probes.check('a:1:1', 'c1', ['true'], 30), { kind: 'ready' });
  assert.equal(calls, ['c1', 'c1']);
});

test('retries back off from 25 ms doubling to 400 ms', async () => {
  const { probes } = rig([1]);
  const delays: number[] = [];
  for (let i = 0; i < 7; i++) {
    const r = await probes.check('a:1:1', 'c', ['x'], 3600);
    if (r.kind === 'waiting') delays.push(r.retryMs);
  }
  assert.equal(delays, [25, 50, 100, 200, 400, 400, 400]);
});

test('completed failures fail the instance only after its health timeout', async () => {
  const { probes, advance } = rig([7]);
  for (let i = 0; i < 5; i++) assert.is((await probes.check('a:1:1', 'c', ['x'], 10)).kind, 'waiting');
  advance(10_001);
  const r = await probes.check('a:1:1', 'c', ['x'], 10);
  assert.is(r.kind, 'failed');
  if (r.kind === 'failed') assert.match(r.reason, /health check failed for 10s \(6 of 6 probes failed, the last with exit code 7\)/);
});

test('probes that do not answer (an overloaded engine) never fail an instance before the hard cap', async () => {
  const { probes, advance } = rig([undefined]);
  for (let i = 0; i < 20; i++) {
    advance(10_000);
    assert.is((await probes.check('a:1:1', 'c', ['x'], 10)).kind, 'waiting', `after ${(i + 1) * 10}s`);
  }
  advance(200_000);
  assert.is((await probes.check('a:1:1', 'c', ['x'], 10)).kind, 'failed', 'ten times the timeout, at least 5 minutes');
});

test('a busy spell without answers does not count: the failure window opens at the first answered failure', async () => {
  const { probes, advance } = rig([undefined, undefined, undefined, 1]);
  for (let i = 0; i < 3; i++) {
    advance(20_000);
    assert.equal(await probes.check('a:1:1', 'c', ['x'], 10), { kind: 'waiting', retryMs: 25 * 2 ** i, answered: false });
  }
  // 60 s after the first attempt the engine answers again, the service still starting.
  for (let i = 0; i < 5; i++) {
    advance(400);
    assert.is((await probes.check('a:1:1', 'c', ['x'], 10)).kind, 'waiting', `answered failure ${i + 1}, within 10 s of the first`);
  }
  advance(10_000);
  const r = await probes.check('a:1:1', 'c', ['x'], 10);
  assert.is(r.kind, 'failed', 'failing for longer than the timeout once answers came');
  if (r.kind === 'failed') assert.match(r.reason, /\(6 of 9 probes failed, the last with exit code 1\)/);
});

test('probes per engine are bounded, whatever the number of starting containers', async () => {
  const { probes, peak } = rig([1], { concurrency: 3 });
  await Promise.all(Array.from({ length: 50 }, (_, i) => probes.check(`i${i}:1:1`, `c${i}`, ['x'], 30)));
  assert.is(peak(), 3);
});

test('state is per container generation and forgotten on request', async () => {
  const { probes, advance } = rig([1]);
  await probes.check('a:1:1', 'c', ['x'], 1);
  advance(5000);
  probes.forget('a');
  for (let i = 0; i < 2; i++) assert.is((await probes.check('a:1:1', 'c', ['x'], 1)).kind, 'waiting', 'a fresh start after forget');
});

test.run();
