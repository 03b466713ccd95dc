/**
 * `GET /readyz` tells the truth (issues 10 and 12): a `poseidon serve` on its own Redis
 * (Debian's redis-server on a loopback port, started and killed here by pid) is ready and leads;
 * with its Redis killed it answers 503 naming the component while `/healthz` (alive) stays 200;
 * with Redis back it is ready again and leads again, without a restart.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { haveDocker, haveSentinel, ROOT } from '../helpers/deps.ts';
import { freePort, startServe, waitFor, type ServeProcess } from '../helpers/server.ts';

const t = suite('e2e: readiness of a replica');
// haveSentinel: redis-server is a binary here (the shared test Redis is not killed).
const enabled = haveDocker() && haveSentinel();
const work = mkdtempSync(path.join(tmpdir(), 'poseidon-readyz-'));
let redis: ChildProcess | undefined;
let server: ServeProcess | undefined;
let port = 0;

interface Ready { ready: boolean; leader: boolean; checks: Record<string, string> }

function startRedis(): ChildProcess {
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', work], { stdio: 'ignore' });
  proc.unref();
  return proc;
}

async function readyz(): Promise<{ status: number; body: Ready } | undefined> {
  const res = await fetch(`${server?.url}/readyz`, { signal: AbortSignal.timeout(10_000) }).catch(() => undefined);
  return res ? { status: res.status, body: (await res.json()) as Ready } : undefined;
}

t.before(async () => {
  if (!enabled) return;
  port = await freePort();
  redis = startRedis();
  await waitFor('the private Redis', () => new Promise<true | undefined>((resolve) => {
    const sock = connect(port, '127.0.0.1', () => { sock.destroy(); resolve(true); }).on('error', () => resolve(undefined));
  }), 30_000, 100);
  server = await startServe({
    REDIS_URL: `redis://127.0.0.1:${port}`, POSEIDON_MANAGER_ID: `poseidon-test-readyz-${port}`, POSEIDON_DATA_DIR: path.join(work, 'data'),
    POSEIDON_TRAEFIK_DIR: path.join(work, 'traefik'), POSEIDON_CHALLENGES_DIR: path.join(ROOT, 'challenges'), POSEIDON_EMBEDDED_WORKER: 'false',
    POSEIDON_API_KEY: 'readyz-admin-key-0123456789', POSEIDON_FLAG_SECRET: 'readyz-flag-secret-0123456789', POSEIDON_LOG_LEVEL: 'warn',
    POSEIDON_LEASE_SECONDS: '3', POSEIDON_LEASE_RENEW_SECONDS: '2', POSEIDON_LEASE_RETRY_SECONDS: '0.25',
  });
});

t.after(async () => {
  await server?.kill();
  redis?.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

const it = (name: string, fn: () => Promise<void>) => t(name, async () => { if (enabled) await fn(); });

it('ready and leading with its Redis; 503 naming Redis when it is gone, alive all the same; ready and leading again when it is back', async () => {
  const up = await waitFor('ready and leading', async () => { const r = await readyz(); return r?.status === 200 && r.body.leader ? r : undefined; }, 120_000, 200);
  assert.equal(up.body.checks.redis, 'ok');
  assert.is(up.body.ready, true);

  redis?.kill('SIGKILL');
  const down = await waitFor('503 with Redis named', async () => { const r = await readyz(); return r?.status === 503 ? r : undefined; }, 60_000, 200);
  assert.is(down.body.ready, false);
  assert.is(down.body.checks.redis, 'unreachable', JSON.stringify(down.body));
  assert.is((await fetch(`${server?.url}/healthz`)).status, 200, 'alive while not ready');
  const lost = await waitFor('the lease given up', async () => { const r = await readyz(); return r?.body.leader === false ? r : undefined; }, 60_000, 200);
  assert.is(lost.body.leader, false, 'a replica that cannot renew does not claim to lead');

  redis = startRedis();
  const back = await waitFor('ready and leading again', async () => { const r = await readyz(); return r?.status === 200 && r.body.leader ? r : undefined; }, 120_000, 200);
  assert.equal(back.body.checks.redis, 'ok');
  assert.ok(!/readyz-admin-key|readyz-flag-secret/.test(server?.logs() ?? ''), 'no secret in the logs');
});

t.run();
