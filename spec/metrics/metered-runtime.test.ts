/**
 * The metered runtime (src/metrics/metered-runtime.ts) around the real Docker engine: results
 * and errors pass through unchanged, every call is timed by operation, failures are counted,
 * pulls (and builds) are image operations, and a full network listing sets the network gauge.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { planNetwork } from '../../src/core/container-plan.ts';
import { isPoseidonError } from '../../src/core/errors.ts';
import { MeteredRuntime } from '../../src/metrics/metered-runtime.ts';
import { Metrics } from '../../src/metrics/metrics.ts';
import { DockerRuntime } from '../../src/runtime/docker.ts';
import { haveDocker } from '../helpers/deps.ts';
import { cleanupByLabel, testManagerId } from '../helpers/docker.ts';
import { makeInstance, makeSpec } from '../helpers/specs.ts';

const t = suite('metered runtime (real engine)');
const enabled = haveDocker();
const mgr = testManagerId();
const owner = { managerId: mgr, deployment: `d${mgr.slice(-8)}` };
const metrics = new Metrics();
const rt = new MeteredRuntime(new DockerRuntime(owner), metrics, 'w1');

t.after(async () => { if (enabled) await cleanupByLabel(mgr); });

const it = (name: string, fn: () => Promise<void>) => t(name, async () => { if (enabled) await fn(); });

async function count(name: string, labels: Record<string, string>): Promise<number> {
  const got = await metrics.registry.getSingleMetric(name)?.get();
  const match = (l: Record<string, unknown>): boolean => Object.entries(labels).every(([k, v]) => String(l[k]) === v);
  // A histogram's values are its buckets, sum and count: only the count is a number of calls.
  const counted = (v: { metricName?: string }): boolean => !/_(bucket|sum)$/.test(v.metricName ?? '');
  return (got?.values ?? []).filter((v) => match(v.labels) && counted(v as { metricName?: string })).reduce((s, v) => s + v.value, 0);
}

it('successful calls pass their results through and are timed by operation', async () => {
  await rt.ping();
  const info = await rt.info();
  assert.ok(info.cpus > 0);
  assert.is(await rt.imageExists('busybox:1.35'), true);
  assert.equal(await rt.listContainers(), []);
  assert.is(await count('poseidon_docker_api_duration_seconds', { engine: 'w1', operation: 'ping' }), 1);
  assert.is(await count('poseidon_docker_api_duration_seconds', { engine: 'w1', operation: 'imageExists' }), 1);
  assert.is(await count('poseidon_docker_api_duration_seconds', { engine: 'w1', operation: 'listContainers' }), 1);
  assert.is(await count('poseidon_docker_api_errors_total', { engine: 'w1' }), 0);
});

it('a failing pull rejects as before and counts as a Docker error and an image failure', async () => {
  const err = await rt.pullImage('127.0.0.1:1/poseidon-metrics-test/none:missing').then(() => undefined, (e: unknown) => e);
  assert.ok(isPoseidonError(err), 'the adapter\'s error passes through unchanged');
  assert.is(await count('poseidon_docker_api_errors_total', { engine: 'w1', operation: 'pullImage' }), 1);
  assert.is(await count('poseidon_image_operation_failures_total', { engine: 'w1', operation: 'pull' }), 1);
  assert.is(await count('poseidon_image_operation_duration_seconds', { engine: 'w1', operation: 'pull' }), 1);
  const facts = await rt.imageFacts('poseidon-metrics-test/absent:none').then(() => 'present', () => 'rejected');
  assert.is(facts, 'rejected');
  assert.is(await count('poseidon_docker_api_errors_total', { engine: 'w1', operation: 'imageFacts' }), 1);
});

it('a full network listing sets the engine\'s network gauge; a listing for one instance does not', async () => {
  const inst = makeInstance({ id: `${mgr.slice(-8)}0000000000000000` });
  await rt.ensureNetwork(planNetwork(inst, makeSpec(), owner, false));
  assert.is((await rt.listNetworks(inst.id)).length, 1);
  assert.is(await count('poseidon_engine_networks', { engine: 'w1' }), 0);
  assert.is((await rt.listNetworks()).length, 1);
  assert.is(await count('poseidon_engine_networks', { engine: 'w1' }), 1);
  assert.is(await count('poseidon_docker_api_duration_seconds', { engine: 'w1', operation: 'ensureNetwork' }), 1);
  const text = (await metrics.exposition()).text;
  assert.not.ok(text.includes(inst.id), 'an instance id became a label value');
});

t.run();
