/**
 * A standalone worker's metrics (`composeWorker` as `poseidon worker` builds it, the real engine,
 * in-process backends): with POSEIDON_METRICS_ADDRESS it serves `/metrics` there (bearer token
 * required), with its engine calls, its queue, its lease range and its orphan breaker, which reads
 * 1 once a resync trips it; stopping the agent closes the listener.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { openBackends, type Backends } from '../../src/compose/backends.ts';
import { composeWorker, type WorkerParts } from '../../src/compose/worker.ts';
import { loadConfig } from '../../src/config/config.ts';
import { newInstanceId } from '../../src/core/naming.ts';
import type { VersionSource } from '../../src/core/versions.ts';
import { createLogger } from '../../src/logger.ts';
import { haveDocker } from '../helpers/deps.ts';
import { cleanupByLabel, docker, testManagerId } from '../helpers/docker.ts';
import { freePort, waitFor } from '../helpers/server.ts';

const t = suite('metrics: a standalone worker on its own metrics address');
const enabled = haveDocker();
const mgr = testManagerId();
const DEPLOYMENT = `d${mgr.slice(-8)}`;
const TOKEN = 'worker-metrics-token-0123456789';
const dataDir = mkdtempSync(path.join(tmpdir(), 'poseidon-wmetrics-'));
const noVersions: VersionSource = { current: async () => [], version: async () => undefined };
let backends: Backends | undefined;
let parts: WorkerParts | undefined;
let url = '';

t.before(async () => {
  if (!enabled) return;
  const port = await freePort();
  url = `http://127.0.0.1:${port}/metrics`;
  const config = loadConfig({
    POSEIDON_DATA_DIR: dataDir, POSEIDON_MANAGER_ID: mgr, POSEIDON_DEPLOYMENT_ID: DEPLOYMENT, POSEIDON_WORKER_ID: 'metrics-w1',
    POSEIDON_METRICS_ADDRESS: `127.0.0.1:${port}`, POSEIDON_METRICS_TOKEN: TOKEN, POSEIDON_LEASE_PORTS: '30500-30509',
    POSEIDON_FIREWALL: 'off', POSEIDON_RESYNC_SECONDS: '3600', POSEIDON_LOG_LEVEL: 'silent',
  }, dataDir);
  backends = await openBackends(config);
  parts = await composeWorker(config, backends, noVersions, createLogger('silent'), false);
  await parts.agent.start();
});

t.after(async () => {
  if (!enabled) return;
  await parts?.agent.stop().catch(() => undefined);
  await backends?.close();
  await cleanupByLabel(mgr);
  rmSync(dataDir, { recursive: true, force: true });
});

const it = (name: string, fn: () => Promise<void>) => t(name, async () => { if (enabled) await fn(); });

async function scrape(token?: string): Promise<{ status: number; text: string }> {
  const res = await fetch(url, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  return { status: res.status, text: await res.text() };
}

it('serves /metrics on its address with the token: engine calls, queue, lease range, breaker clear', async () => {
  assert.is((await scrape()).status, 401);
  const { status, text } = await scrape(TOKEN);
  assert.is(status, 200);
  assert.match(text, /^poseidon_docker_api_duration_seconds_count\{engine="metrics-w1",operation="ping"\} [1-9]/m);
  assert.match(text, /^poseidon_work_queue_depth\{controller="worker:metrics-w1"\} \d+$/m);
  assert.match(text, /^poseidon_lease_range_ports\{worker="metrics-w1"\} 10$/m);
  assert.match(text, /^poseidon_lease_leased_ports\{worker="metrics-w1"\} 0$/m);
  assert.match(text, /^poseidon_orphan_breaker_tripped\{worker="metrics-w1"\} 0$/m);
  // No manager in this process: no instance or fleet view, so those gauges say nothing.
  assert.not.match(text, /^poseidon_instances\{/m);
});

it('the orphan breaker gauge reads 1 once a resync trips it', async () => {
  const agent = (parts as WorkerParts).agent;
  // Six containers of this deployment without a record: over max(5, half of 6).
  for (let n = 0; n < 6; n++) {
    const id = newInstanceId();
    await docker.createContainer({
      name: `poseidon-${id}`, Image: 'busybox:1.35', Cmd: ['sleep', '600'], HostConfig: { NetworkMode: 'none' },
      Labels: { 'poseidon.managed-by': mgr, 'poseidon.deployment': DEPLOYMENT, 'poseidon.instance': id, 'poseidon.epoch': '1', 'poseidon.generation': '1' },
    });
  }
  await agent.controller.resync();
  await agent.controller.queue.idle();
  assert.ok(agent.breaker, 'the breaker tripped');
  assert.match((await scrape(TOKEN)).text, /^poseidon_orphan_breaker_tripped\{worker="metrics-w1"\} 1$/m);
  assert.match((await scrape(TOKEN)).text, /^poseidon_engine_networks\{engine="metrics-w1"\} 0$/m);
});

it('stopping the agent closes the listener', async () => {
  await (parts as WorkerParts).agent.stop();
  await waitFor('the metrics listener closed', async () => (await fetch(url).then(() => false, () => true)) || undefined, 10_000, 100);
});

t.run();
