/**
 * `poseidon workers|cordon|uncordon|drain|launch-settings` through the real CLI (bin/poseidon.js) against a real
 * `poseidon serve` with its embedded worker on the local engine: the listing, each action and
 * its effect seen through the API, the refusals (unknown worker, wrong key, bad usage) with their
 * exit codes, and the key never printed.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { LABELS } from '../../src/core/runtime.ts';
import { haveDocker, ROOT } from '../helpers/deps.ts';
import { cleanupByLabel, docker, testManagerId } from '../helpers/docker.ts';
import { apiClient, startServe, waitFor, type ServeProcess } from '../helpers/server.ts';

const t = suite('cli: the fleet commands against serve');
const KEY = 'fleet-cli-admin-key-0123456789';
const enabled = haveDocker();
const mgr = testManagerId();
const work = mkdtempSync(path.join(tmpdir(), 'poseidon-fleet-cli-'));
let server: ServeProcess | undefined;
let workerId = '';

/** Runs the CLI (async: the server answering it runs in another process anyway). */
function cli(args: string[], key = KEY): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [path.join(ROOT, 'bin/poseidon.js'), ...args], {
      cwd: work, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', POSEIDON_API_KEY: key, POSEIDON_DATA_DIR: path.join(work, 'cli-data') },
    });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    proc.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => proc.kill('SIGKILL'), 60_000);
    proc.on('close', (status) => { clearTimeout(timer); resolve({ status, stdout, stderr }); });
  });
}

t.before(async () => {
  if (!enabled) return;
  // One prebuilt-image challenge: the commands are about workers, not builds.
  const challenges = path.join(work, 'challenges');
  mkdirSync(path.join(challenges, 'fleet-web'), { recursive: true });
  writeFileSync(path.join(challenges, 'fleet-web', 'challenge.yaml'), 'id: fleet-web\nname: Fleet web\nimage: busybox:1.35\ncommand: [httpd, -f, -p, "8080"]\nexpose: [{ name: web, port: 8080 }]\n');
  server = await startServe({
    POSEIDON_MANAGER_ID: mgr, POSEIDON_DATA_DIR: path.join(work, 'data'), POSEIDON_TRAEFIK_DIR: path.join(work, 'traefik'),
    POSEIDON_CHALLENGES_DIR: challenges, POSEIDON_API_KEY: KEY, POSEIDON_FLAG_SECRET: 'fleet-cli-flag-secret-0123456789', POSEIDON_LOG_LEVEL: 'warn',
  });
  const api = apiClient(server.url, KEY);
  workerId = await waitFor('the embedded worker', async () => (await api('GET', '/v1/workers')).body.workers?.[0]?.id as string | undefined, 120_000, 250);
});

t.after(async () => {
  await server?.kill();
  await cleanupByLabel(mgr);
  rmSync(work, { recursive: true, force: true });
});

const it = (name: string, fn: () => Promise<void>) => t(name, async () => { if (enabled) await fn(); });
const state = async (): Promise<string> => (await apiClient(server?.url as string, KEY)('GET', '/v1/workers')).body.workers[0].state;

it('workers lists the embedded worker, as a table and as JSON', async () => {
  const table = await cli(['workers', '--server', server?.url as string]);
  assert.is(table.status, 0, table.stderr);
  const [head, row] = table.stdout.trim().split('\n');
  assert.match(head ?? '', /^WORKER\s+STATE\s+ADDRESS\s+SLOTS\s+RUNTIMES\s+HEARTBEAT\s+IMAGES\s+POOL\s+CONC\s+LABELS$/);
  assert.match(row ?? '', new RegExp(`^${workerId}\\s+ready\\s+\\S+\\s+\\d+/\\d+\\s+\\S*runc\\S*\\s+\\S+\\s+\\d+/\\d+\\s+0/0\\s+4\\s`), 'the configuration\'s pool (0, none ready) and concurrency (4), not overridden');
  const json = await cli(['workers', '--server', server?.url as string, '--json']);
  assert.is(json.status, 0, json.stderr);
  assert.equal(JSON.parse(json.stdout).workers.map((w: { id: string }) => w.id), [workerId]);
});

it('cordon, uncordon and drain act on the worker, as the API then shows', async () => {
  const c = await cli(['cordon', workerId, '--server', server?.url as string]);
  assert.is(c.status, 0, c.stderr);
  assert.is(c.stdout.trim(), `worker ${workerId}: cordoned`);
  assert.is(await state(), 'cordoned');
  const u = await cli(['uncordon', workerId, '--server', server?.url as string]);
  assert.is(u.status, 0, u.stderr);
  assert.is(await state(), 'ready');
  const d = await cli(['drain', workerId, '--server', server?.url as string]);
  assert.is(d.status, 0, d.stderr);
  assert.match(d.stdout, new RegExp(`^worker ${workerId}: (draining|cordoned)`));
  await waitFor('drained and cordoned', async () => ((await state()) === 'cordoned' ? true : undefined), 60_000, 250);
  assert.is((await cli(['uncordon', workerId, '--server', server?.url as string])).status, 0);
});

it('launch-settings puts a network pool and a launch bound on the running worker, shown by workers; cleared (--all), its configuration is back', async () => {
  const api = apiClient(server?.url as string, KEY);
  const launch = async () => (await api('GET', '/v1/workers')).body.workers[0].launch as { networkPool: number; launchConcurrency: number };
  const pooled = async () => (await docker.listNetworks({ filters: { label: [`${LABELS.managedBy}=${mgr}`, LABELS.pool] } })).length;
  const set = await cli(['launch-settings', workerId, '--network-pool', '2', '--launch-concurrency', '6', '--server', server?.url as string]);
  assert.is(set.status, 0, set.stderr);
  assert.match(set.stdout.trim(), new RegExp(`^worker ${workerId}: launch override networkPool=2 launchConcurrency=6, in effect at its next heartbeat \\(now pool 0/0, concurrency 4\\)$`), 'the settings still in effect, unmarked');
  await waitFor('the worker reports the override', async () => ((await launch()).networkPool === 2 ? true : undefined), 60_000, 250);
  assert.equal(await launch(), { networkPool: 2, launchConcurrency: 6 });
  await waitFor('two pooled networks on the engine', async () => ((await pooled()) === 2 ? true : undefined), 60_000, 250);
  await waitFor('the worker reports both networks ready', async () => ((await api('GET', '/v1/workers')).body.workers[0].networkPoolReady === 2 ? true : undefined), 60_000, 250);
  const table = await cli(['workers', '--server', server?.url as string]);
  assert.match(table.stdout.trim().split('\n')[1] ?? '', /\s2\/2\*\s+6\*\s/, 'the table shows the override, and the pool filled');
  // --all: every registered worker (here the one).
  const cleared = await cli(['launch-settings', '--all', '--server', server?.url as string]);
  assert.is(cleared.status, 0, cleared.stderr);
  assert.match(cleared.stdout, new RegExp(`^worker ${workerId}: launch override cleared`));
  assert.is(cleared.stdout.trim().split('\n').length, 1);
  await waitFor('the configuration back', async () => ((await launch()).networkPool === 0 ? true : undefined), 60_000, 250);
  assert.equal(await launch(), { networkPool: 0, launchConcurrency: 4 });
  await waitFor('the free pooled networks removed', async () => ((await pooled()) === 0 ? true : undefined), 60_000, 250);
  await waitFor('the worker reports none ready', async () => ((await api('GET', '/v1/workers')).body.workers[0].networkPoolReady === 0 ? true : undefined), 60_000, 250);
  const both = await cli(['launch-settings', workerId, '--all', '--server', server?.url as string]);
  assert.is(both.status, 2);
  assert.match(both.stderr, /takes no worker id with --all/);
  const bad = await cli(['launch-settings', workerId, '--network-pool', 'lots', '--server', server?.url as string]);
  assert.is(bad.status, 2);
  assert.match(bad.stderr, /--network-pool must be a whole number, not "lots"/);
  const big = await cli(['launch-settings', workerId, '--network-pool', '300', '--server', server?.url as string]);
  assert.is(big.status, 1);
  assert.match(big.stderr, /E_BAD_REQUEST: body networkPool/);
  assert.equal(await launch(), { networkPool: 0, launchConcurrency: 4 }, 'a refused setting changed nothing');
});

it('refusals: an unknown worker, a wrong key, bad usage, no server; the key is never printed', async () => {
  const unknown = await cli(['cordon', 'no-such-worker', '--server', server?.url as string]);
  assert.is(unknown.status, 1);
  assert.match(unknown.stderr, /E_WORKER_NOT_FOUND/);
  const wrongKey = 'not-the-key-but-long-enough-0123';
  const denied = await cli(['workers', '--server', server?.url as string], wrongKey);
  assert.is(denied.status, 1);
  assert.match(denied.stderr, /E_UNAUTHORIZED/);
  assert.ok(!denied.stderr.includes(wrongKey) && !denied.stdout.includes(wrongKey), 'the key is not echoed');
  const usage = await cli(['cordon', '--server', server?.url as string]);
  assert.is(usage.status, 2);
  assert.match(usage.stderr, /needs exactly one worker id/);
  const down = await cli(['workers', '--server', 'http://127.0.0.1:9']);
  assert.is(down.status, 1);
  assert.match(down.stderr, /cannot reach http:\/\/127\.0\.0\.1:9/);
  for (const r of [unknown, usage, down]) assert.ok(!(r.stdout + r.stderr).includes(KEY), 'the key is never printed');
});

t.run();
