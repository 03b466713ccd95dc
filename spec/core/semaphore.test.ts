/**
 * The launch bound (`Semaphore`): first come, first served, and resizable while tasks run (an
 * admin's launch settings): a larger bound lets waiters in at once, a smaller one starts no
 * waiter until fewer than it run.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Semaphore } from '../../src/core/semaphore.ts';

/** A task that runs until `finish()`; `started` says whether it got a place. */
function gated(sem: Semaphore, log: string[], name: string) {
  let finish!: () => void;
  const gate = new Promise<void>((resolve) => { finish = resolve; });
  const state = { started: false, finish: () => finish(), done: undefined as Promise<void> | undefined };
  state.done = sem.run(async () => { state.started = true; log.push(name); await gate; });
  return state;
}

const turn = () => new Promise((r) => setImmediate(r));

test('at most the bound run, waiters start in order as places free', async () => {
  const sem = new Semaphore(2);
  const log: string[] = [];
  const tasks = ['a', 'b', 'c', 'd'].map((n) => gated(sem, log, n));
  await turn();
  assert.equal(log, ['a', 'b']);
  assert.is(sem.running, 2);
  tasks[1]!.finish();
  await turn();
  assert.equal(log, ['a', 'b', 'c'], 'the first waiter took the freed place');
  for (const t of tasks) t.finish();
  await Promise.all(tasks.map((t) => t.done));
  assert.equal(log, ['a', 'b', 'c', 'd']);
  assert.is(sem.running, 0);
});

test('raised, waiters start at once; lowered, none starts until fewer than the new bound run', async () => {
  const sem = new Semaphore(1);
  const log: string[] = [];
  const tasks = ['a', 'b', 'c', 'd', 'e'].map((n) => gated(sem, log, n));
  await turn();
  assert.equal(log, ['a']);
  sem.resize(3);
  await turn();
  assert.equal(log, ['a', 'b', 'c'], 'two waiters let in by the larger bound');
  assert.is(sem.running, 3);
  sem.resize(1);
  tasks[0]!.finish();
  await turn();
  assert.equal(log, ['a', 'b', 'c'], 'a place freed above the new bound is not handed on');
  assert.is(sem.running, 2);
  tasks[1]!.finish();
  await turn();
  assert.equal(log, ['a', 'b', 'c'], 'still at the bound: nothing new');
  assert.is(sem.running, 1);
  tasks[2]!.finish();
  await turn();
  assert.equal(log, ['a', 'b', 'c', 'd'], 'below it, the next waiter starts');
  assert.is(sem.running, 1);
  tasks[3]!.finish();
  tasks[4]!.finish();
  await Promise.all(tasks.map((t) => t.done));
  assert.equal(log, ['a', 'b', 'c', 'd', 'e']);
  assert.is(sem.running, 0);
});

test('a task that throws frees its place', async () => {
  const sem = new Semaphore(1);
  const err = await sem.run(async () => { throw new Error('boom'); }).then(() => undefined, (e: Error) => e);
  assert.match(err?.message ?? '', /boom/);
  assert.is(sem.running, 0);
  assert.is(await sem.run(async () => 42), 42);
});

test.run();
