/**
 * Launch, queue, stop and failure metrics from the instance feed (src/metrics/instance-feed.ts,
 * through `Metrics.watchInstances`): only transitions this process saw count, restarts and moves
 * are not launches, a process that starts late never counts an old instance again, and reason
 * labels are codes only. Asserted on the exported values, not on calls.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { POOL_TEAM, type Instance } from '../../src/core/instance.ts';
import { reasonCode } from '../../src/metrics/instance-feed.ts';
import { Metrics } from '../../src/metrics/metrics.ts';

const T0 = Date.UTC(2030, 0, 1, 12, 0, 0);
let n = 0;

function instance(over: Partial<Instance> = {}): Instance {
  n++;
  return {
    id: n.toString(16).padStart(24, '0'), challenge: 'web-hello', team: 'team-a', owner: 'team:team-a', generation: 1, desired: 'running',
    status: 'pending', hostname: 'h', endpoints: [], specHash: 'x', createdAt: T0, expiresAt: T0 + 3_600_000, maxExpiresAt: T0 + 7_200_000,
    renewals: 0, updatedAt: T0, epoch: 1, ...over,
  };
}

/** A fake instance view: `emit` plays the feed. */
function feed(since = T0) {
  const listeners = new Set<(id: string, inst: Instance | undefined) => void>();
  const held = new Map<string, Instance>();
  const m = new Metrics();
  m.watchInstances({
    all: () => held.values(), challenges: () => ['web-hello', 'pwn-echo'], capacity: () => 10, now: () => since,
    onUpdate: (l) => { listeners.add(l); return () => listeners.delete(l); },
  });
  const emit = (inst: Instance, patch: Partial<Instance> = {}): Instance => {
    const next = { ...inst, ...patch };
    held.set(next.id, next);
    for (const l of listeners) l(next.id, next);
    return next;
  };
  const remove = (inst: Instance): void => {
    held.delete(inst.id);
    for (const l of listeners) l(inst.id, undefined);
  };
  return { m, emit, remove };
}

async function value(m: Metrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = m.registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  const got = await metric.get();
  return got.values.filter((v) => Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want)).reduce((sum, v) => sum + v.value, 0);
}

const at = (s: number): number => T0 + s * 1000;

test('reasonCode: the leading stable code, else unknown (never free text)', () => {
  const cases: [string | undefined, string][] = [
    ['E_NO_CAPACITY: no worker fits: 2 full', 'E_NO_CAPACITY'],
    ['E_UNHEALTHY', 'E_UNHEALTHY'],
    ['launch failed: network vanished', 'unknown'],
    [undefined, 'unknown'],
    ['e_lower: x', 'unknown'],
    ['E_X', 'unknown'],
  ];
  for (const [reason, want] of cases) assert.is(reasonCode(reason), want, String(reason));
});

test('a launch seen from request to running: one launch, its duration from createdAt to the running write', async () => {
  const { m, emit } = feed();
  const a = emit(instance({ createdAt: at(1), updatedAt: at(1) }));
  emit(a, { status: 'starting', updatedAt: at(2) });
  emit(a, { status: 'running', updatedAt: at(5) });
  emit(a, { status: 'running', updatedAt: at(9), expiresAt: at(99_999) }); // a renewal: no new observation
  assert.is(await value(m, 'poseidon_instance_launches_total', { challenge: 'web-hello' }), 1);
  assert.is(await value(m, 'poseidon_instance_launch_duration_seconds', { challenge: 'web-hello', le: '5' }), 1);
  assert.is(await value(m, 'poseidon_instance_launch_duration_seconds', { challenge: 'web-hello', le: '3' }), 0);
  assert.is(m.window.summary().launchDuration.p50, 4);
});

test('restart and move run again but are not launches', async () => {
  const { m, emit } = feed();
  let a = emit(instance({ createdAt: at(1), updatedAt: at(1) }));
  a = emit(a, { status: 'running', updatedAt: at(3) });
  a = emit(a, { status: 'pending', generation: 2, updatedAt: at(100) });
  a = emit(a, { status: 'running', updatedAt: at(104) });
  a = emit(a, { status: 'starting', generation: 3, epoch: 2, worker: 'w2', updatedAt: at(200) });
  emit(a, { status: 'running', updatedAt: at(230) });
  assert.is(await value(m, 'poseidon_instance_launches_total'), 1);
  assert.is(m.window.summary().launchDuration.count, 1);
});

test('a process starting late counts nothing about instances created before it, but transitions it sees', async () => {
  const { m, emit } = feed(at(1000));
  const old = instance({ createdAt: at(0), updatedAt: at(0) });
  emit(old, { status: 'running', updatedAt: at(10) }); // first sighting (the start-up listing): nothing
  const restarted = emit(instance({ createdAt: at(0), generation: 2, updatedAt: at(500) })); // pending after a restart
  emit(restarted, { status: 'running', updatedAt: at(1010) });
  const waiting = emit(instance({ createdAt: at(900), status: 'queued', updatedAt: at(900) }));
  emit(waiting, { status: 'pending', updatedAt: at(1100) });
  emit(waiting, { status: 'running', updatedAt: at(1103) });
  assert.is(await value(m, 'poseidon_instance_launches_total'), 0);
  // Never running before: its first run is observed, from the request (queue wait included).
  assert.is(m.window.summary().launchDuration.count, 1);
  assert.is(m.window.summary().launchDuration.max, 203);
  assert.is(m.window.summary().queueWait.max, 200);
  emit(old, { status: 'stopping', updatedAt: at(1200) });
  emit(old, { status: 'stopped', updatedAt: at(1201) });
  assert.is(await value(m, 'poseidon_instance_stops_total'), 1);
});

test('queue wait: only launches that were queued and got admitted', async () => {
  const { m, emit } = feed();
  const q1 = emit(instance({ status: 'queued', createdAt: at(1), updatedAt: at(1) }));
  emit(q1, { status: 'pending', updatedAt: at(31) });
  const q2 = emit(instance({ status: 'queued', createdAt: at(2), updatedAt: at(2) }));
  emit(q2, { status: 'stopped', desired: 'stopped', updatedAt: at(40) }); // cancelled
  const q3 = emit(instance({ status: 'queued', createdAt: at(3), updatedAt: at(3) }));
  emit(q3, { status: 'failed', reason: 'E_QUEUE_TIMEOUT: waited too long', updatedAt: at(903) });
  emit(instance({ createdAt: at(4), updatedAt: at(4) })); // never queued
  assert.is(await value(m, 'poseidon_instance_queue_wait_seconds', { le: '+Inf' }), 1);
  assert.is(await value(m, 'poseidon_instance_queue_wait_seconds', { le: '15' }), 0);
  assert.is(await value(m, 'poseidon_instance_queue_wait_seconds', { le: '60' }), 1);
  assert.is(await value(m, 'poseidon_instance_launches_total'), 4);
  assert.is(await value(m, 'poseidon_instance_stops_total'), 1);
  assert.is(await value(m, 'poseidon_instance_failures_total', { reason: 'E_QUEUE_TIMEOUT' }), 1);
});

test('failures by challenge and reason code; the same status twice counts once', async () => {
  const { m, emit } = feed();
  const a = emit(instance({ createdAt: at(1), updatedAt: at(1) }));
  emit(a, { status: 'failed', reason: 'E_UNHEALTHY: health check failing for 60s', updatedAt: at(70) });
  emit(a, { status: 'failed', reason: 'E_UNHEALTHY: health check failing for 60s', updatedAt: at(71) });
  const b = emit(instance({ challenge: 'pwn-echo', createdAt: at(2), updatedAt: at(2) }));
  emit(b, { status: 'failed', reason: 'container exited with 1', updatedAt: at(5) });
  assert.is(await value(m, 'poseidon_instance_failures_total', { challenge: 'web-hello', reason: 'E_UNHEALTHY' }), 1);
  assert.is(await value(m, 'poseidon_instance_failures_total', { challenge: 'pwn-echo', reason: 'unknown' }), 1);
  assert.equal(m.window.summary().failures.byReason, { E_UNHEALTHY: 1, unknown: 1 });
});

test('a launch first seen already running (request and start in one update) counts once; a deleted record is forgotten', async () => {
  const { m, emit, remove } = feed();
  const a = emit(instance({ status: 'running', createdAt: at(1), updatedAt: at(4) }));
  emit(a, { status: 'running', updatedAt: at(5) });
  assert.is(await value(m, 'poseidon_instance_launches_total'), 1);
  assert.equal(m.window.summary().launchDuration, { count: 1, p50: 3, p95: 3, max: 3 });
  emit(a, { status: 'stopped', desired: 'stopped', updatedAt: at(60) });
  remove(a);
  assert.is(await value(m, 'poseidon_instance_stops_total'), 1);
});

test('scrape-time gauges: instances by state and challenge (zeros for every state of every challenge), oldest queued wait, capacity', async () => {
  const { m, emit } = feed(at(100));
  emit(instance({ status: 'running' }));
  emit(instance({ status: 'running', challenge: 'pwn-echo' }));
  emit(instance({ status: 'queued', createdAt: at(40) }));
  emit(instance({ status: 'queued', createdAt: at(70) }));
  assert.is(await value(m, 'poseidon_instances', { state: 'running' }), 2);
  assert.is(await value(m, 'poseidon_instances', { state: 'running', challenge: 'pwn-echo' }), 1);
  assert.is(await value(m, 'poseidon_instances', { state: 'queued', challenge: 'web-hello' }), 2);
  const series = (await m.registry.getSingleMetric('poseidon_instances')?.get())?.values ?? [];
  assert.is(series.length, 14);
  assert.is(await value(m, 'poseidon_queue_oldest_wait_seconds'), 60);
  assert.is(await value(m, 'poseidon_admission_capacity_slots'), 10);
});

test('warm-pool members are not launches; a claim is one, timed from the request to running; a member\'s failure counts', async () => {
  const { m, emit } = feed();
  const member = emit(instance({ team: POOL_TEAM, owner: 'pool:web-hello', createdAt: at(1), updatedAt: at(1) }));
  emit(member, { status: 'running', updatedAt: at(3) });
  emit(member, { status: 'running', reason: 'x', updatedAt: at(4) });
  assert.is(await value(m, 'poseidon_instance_launches_total'), 0, 'a member is not a launch');
  assert.is(m.window.summary().launchDuration.count, 0, 'nor is its cold start a launch duration');
  // The claim: the request made at 100 s takes the member, which serves the owner at 100.2 s.
  const claimed = emit(member, { team: 'team-b', owner: 'team:team-b', status: 'starting', createdAt: at(100), updatedAt: at(100.1) });
  emit(claimed, { status: 'running', updatedAt: at(100.2) });
  assert.is(await value(m, 'poseidon_instance_launches_total', { challenge: 'web-hello' }), 1);
  assert.equal(m.window.summary().launchDuration.count, 1);
  const waited = m.window.summary().launchDuration.p50 ?? -1;
  assert.ok(Math.abs(waited - 0.2) < 1e-6, `waited ${waited} s`);
  // A claim seen already running (one update) counts the same way.
  const other = emit(instance({ team: POOL_TEAM, owner: 'pool:web-hello', status: 'running', createdAt: at(1), updatedAt: at(2) }));
  emit(other, { team: 'team-c', owner: 'team:team-c', status: 'running', createdAt: at(200), updatedAt: at(200.5) });
  assert.is(await value(m, 'poseidon_instance_launches_total'), 2);
  const broken = emit(instance({ team: POOL_TEAM, owner: 'pool:web-hello', createdAt: at(5), updatedAt: at(5) }));
  emit(broken, { status: 'failed', reason: 'E_UNHEALTHY: health check failed', updatedAt: at(40) });
  assert.is(await value(m, 'poseidon_instance_failures_total', { reason: 'E_UNHEALTHY' }), 1, 'a failing pool is worth knowing');
  assert.is(await value(m, 'poseidon_instance_launches_total'), 2);
});

test('warm-pool members by state and challenge: unclaimed and asked to run only', async () => {
  const { m, emit } = feed(at(100));
  emit(instance({ team: POOL_TEAM, status: 'running' }));
  emit(instance({ team: POOL_TEAM, status: 'running' }));
  emit(instance({ team: POOL_TEAM, status: 'starting' }));
  emit(instance({ team: POOL_TEAM, status: 'running', desired: 'stopped' }));
  emit(instance({ team: 'red', status: 'running' }));
  assert.is(await value(m, 'poseidon_pool_members', { state: 'running', challenge: 'web-hello' }), 2);
  assert.is(await value(m, 'poseidon_pool_members', { state: 'starting' }), 1);
});

test.run();
