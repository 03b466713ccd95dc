/**
 * The config file through real processes: `poseidon config check` spawned as the CLI, `serve
 * --config` answering with values from the file (the environment still winning), and `poseidon
 * worker --config` registering in Redis under the file's worker id and prefix.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cleanupByLabel, testManagerId } from '../helpers/docker.ts';
import { haveDocker, haveRedis, REDIS_URL, ROOT } from '../helpers/deps.ts';
import { cleanupRedisPrefix } from '../helpers/redis.ts';
import { apiClient, startServe, waitFor } from '../helpers/server.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'poseidon-config-cli-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const BASE_ENV = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' };

/** Writes a config file (0600) from lines. */
function configFile(name: string, lines: string[]): string {
  const p = path.join(dir, name);
  writeFileSync(p, `${lines.join('\n')}\n`, { mode: 0o600 });
  return p;
}

/** Runs `poseidon <args>` to its end (bounded); exit code and output. */
function cli(args: string[], env: Record<string, string> = {}, cwd = ROOT): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli.ts'), ...args], { cwd, env: { ...BASE_ENV, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    proc.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    proc.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    const timer = setTimeout(() => proc.kill('SIGKILL'), 60_000);
    proc.once('error', reject);
    proc.once('exit', (code) => { clearTimeout(timer); resolve({ code, out, err }); });
  });
}

const SECRET = 'cli-api-key-must-never-print-0123';
const REDIS_PASSWORD = 'redis-password-must-never-print';

test('config check (real CLI): the resolved configuration with sources, secrets masked, exit 0', async () => {
  const f = configFile('ok.yaml', [
    `POSEIDON_API_KEY: ${SECRET}`, `REDIS_URL: redis://:${REDIS_PASSWORD}@127.0.0.1:6390`,
    'POSEIDON_BASE_DOMAIN: file.example.org', 'POSEIDON_TEAM_LIMIT: 5',
  ]);
  const r = await cli(['config', 'check', '--config', f], { POSEIDON_TEAM_LIMIT: '9' });
  assert.is(r.code, 0, r.err);
  for (const s of [SECRET, REDIS_PASSWORD]) assert.not.ok((r.out + r.err).includes(s), `${s} printed`);
  assert.ok(r.out.startsWith(`configuration file: ${f}\n`), r.out);
  assert.match(r.out, new RegExp(`POSEIDON_BASE_DOMAIN +file\\.example\\.org +file ${f}:3:23\\n`));
  assert.match(r.out, /POSEIDON_TEAM_LIMIT +9 +env\n/);
  assert.match(r.out, /POSEIDON_API_KEY +\*{8} +file/);
  assert.match(r.out, /REDIS_URL +redis:\/\/:\*{8}@127\.0\.0\.1:6390 +file/);
  assert.match(r.out, /POSEIDON_CAPACITY +100 +default\n/);
  // POSEIDON_CONFIG names the file as well; --json gives the same, structured.
  const j = await cli(['config', 'check', '--json'], { POSEIDON_CONFIG: f });
  assert.is(j.code, 0, j.err);
  assert.not.ok(j.out.includes(SECRET) || j.out.includes(REDIS_PASSWORD));
  const parsed = JSON.parse(j.out) as { ok: boolean; file: string; entries: { name: string; source: string; line?: number }[] };
  assert.is(parsed.file, f);
  assert.equal(parsed.entries.find((e) => e.name === 'POSEIDON_TEAM_LIMIT'), { name: 'POSEIDON_TEAM_LIMIT', value: '5', source: 'file', line: 4, col: 22 } as never);
});

test('config check (real CLI): every problem with file:line:col, exit 1, no secret', async () => {
  const f = configFile('bad.yaml', [
    'POSEIDON_PORT: 70000', `POSEIDON_FLAG_SECRET: ${SECRET.slice(0, 10)}`, 'POSEIDON_BASE_DOMIAN: x.org', 'POSEIDON_AUTH_MODE: delegate',
  ]);
  const r = await cli(['config', 'check', '--config', f]);
  assert.is(r.code, 1);
  assert.is(r.out, '');
  assert.not.ok(r.err.includes(SECRET.slice(0, 10)));
  for (const where of [`${f}:1:16: POSEIDON_PORT`, `${f}:2:23: POSEIDON_FLAG_SECRET`, `${f}:3:1: POSEIDON_BASE_DOMIAN: unknown key (did you mean POSEIDON_BASE_DOMAIN?)`, `${f}:4:21: POSEIDON_AUTH_DELEGATE_URL is required`]) {
    assert.ok(r.err.includes(where), `${where} in\n${r.err}`);
  }
  assert.match(r.err, /4 problems:/);
  const broken = configFile('broken.yaml', ['POSEIDON_PORT: 80', `POSEIDON_API_KEY: '${SECRET}`]);
  const b = await cli(['config', 'check', '--config', broken]);
  assert.is(b.code, 1);
  assert.match(b.err, new RegExp(`${broken}:\\d+:\\d+: malformed YAML`));
  assert.not.ok(b.err.includes(SECRET));
  // serve refuses the same file before doing anything, naming it.
  const s = await cli(['serve', '--config', f]);
  assert.is(s.code, 1);
  assert.ok(s.err.includes(`E_CONFIG_INVALID: invalid configuration: ${f}:1:16: POSEIDON_PORT`), s.err);
  assert.not.ok(s.err.includes(SECRET.slice(0, 10)));
});

test('serve --config: the API answers with the file\'s key and base domain; the environment wins over the file', async () => {
  const data = mkdtempSync(path.join(dir, 'data-'));
  const f = configFile('serve.yaml', [
    `POSEIDON_API_KEY: ${SECRET}`, 'POSEIDON_FLAG_SECRET: serve-flag-secret-0123456789', 'POSEIDON_BASE_DOMAIN: from-file.example.org',
    `POSEIDON_DATA_DIR: ${data}`, `POSEIDON_TRAEFIK_DIR: ${path.join(data, 'traefik')}`, `POSEIDON_CHALLENGES_DIR: ${path.join(ROOT, 'challenges')}`,
    'POSEIDON_EMBEDDED_WORKER: false', 'POSEIDON_PORT: 1', 'POSEIDON_LOG_LEVEL: info',
  ]);
  // startServe sets POSEIDON_PORT in the environment: serve listening there shows env over file.
  const serve = await startServe({}, ['--config', f]);
  try {
    const api = apiClient(serve.url, SECRET);
    const launched = await waitFor('a launch accepted', async () => {
      const r = await api('POST', '/v1/instances', { challenge: 'web-hello', team: 'cfg-team' });
      return r.status === 202 ? r : undefined;
    });
    assert.match(String(launched.body.hostname), /\.web-hello\.from-file\.example\.org$/);
    assert.is((await apiClient(serve.url, 'x'.repeat(20))('GET', '/v1/instances')).status, 401);
    assert.match(serve.logs(), new RegExp(`"file":"${f}".*"msg":"configuration file"`));
    assert.not.ok(serve.logs().includes(SECRET));
  } finally {
    await serve.stop();
  }
});

test('serve without a file logs "none" and runs on the environment alone', async () => {
  const cwd = mkdtempSync(path.join(dir, 'nofile-'));
  const serve = await startServe({ POSEIDON_API_KEY: SECRET, POSEIDON_DATA_DIR: path.join(cwd, 'data'), POSEIDON_TRAEFIK_DIR: path.join(cwd, 't'), POSEIDON_CHALLENGES_DIR: path.join(cwd, 'c'), POSEIDON_EMBEDDED_WORKER: 'false' });
  try {
    assert.is((await apiClient(serve.url, SECRET)('GET', '/v1/instances')).status, 200);
    assert.match(serve.logs(), /"file":"none".*"msg":"configuration file"/);
  } finally {
    await serve.stop();
  }
});

test('poseidon worker --config: registers in Redis under the file\'s prefix and worker id', async () => {
  if (!haveRedis() || !haveDocker()) return;
  const managerId = testManagerId();
  const prefix = `poseidon-test-cfg-${managerId.slice(-8)}:`;
  const workerId = `cfg-${managerId.slice(-8)}`;
  const f = configFile('worker.yaml', [
    `REDIS_URL: ${REDIS_URL}`, `POSEIDON_REDIS_PREFIX: '${prefix}'`, `POSEIDON_WORKER_ID: ${workerId}`, `POSEIDON_MANAGER_ID: ${managerId}`,
    'POSEIDON_FIREWALL: off', 'POSEIDON_ADVERTISE_ADDRESS: 127.0.0.1', `POSEIDON_DATA_DIR: ${mkdtempSync(path.join(dir, 'wdata-'))}`,
  ]);
  const proc = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli.ts'), 'worker', '--config', f], { cwd: ROOT, env: BASE_ENV, stdio: ['ignore', 'pipe', 'pipe'] });
  let logs = '';
  proc.stdout.on('data', (d: Buffer) => { logs += d.toString(); });
  proc.stderr.on('data', (d: Buffer) => { logs += d.toString(); });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  try {
    await waitFor('the worker registered', async () => {
      if (proc.exitCode !== null) throw new Error(`worker exited (${proc.exitCode}):\n${logs}`);
      const keys = await redis.keys(`${prefix}*`);
      for (const key of keys.filter((k) => k.endsWith('workers'))) {
        if ((await redis.sismember(key, workerId)) === 1) return true;
      }
      return undefined;
    }, 60_000, 250);
    assert.match(logs, new RegExp(`"file":"${f}".*"msg":"configuration file"`));
  } finally {
    if (proc.exitCode === null) proc.kill('SIGTERM');
    await exited;
    redis.disconnect();
    await cleanupRedisPrefix(prefix);
    await cleanupByLabel(managerId);
  }
});

test.run();
