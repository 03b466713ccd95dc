/**
 * The rig the access end-to-end suites share (not a test file): `poseidon serve` on the real
 * engine and Redis with example and test challenges, the gateway probe container joined to
 * instance networks, a stand-in Traefik fed by the HTTP provider endpoint, and a lease range of
 * free 127.0.0.1 ports. Everything is labelled and removed by `stop`, even after a failure.
 */
import { randomBytes } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { deriveFlag } from '../../src/core/flag.ts';
import { haveDocker, haveRedis, REDIS_URL, ROOT } from '../helpers/deps.ts';
import { cleanupByLabel, fetchFromProbe, startProbe, testManagerId } from '../helpers/docker.ts';
import { startMiniTraefik, type BackendAnswer, type MiniTraefik } from '../helpers/mini-traefik.ts';
import { cleanupRedisPrefix } from '../helpers/redis.ts';
import { apiClient, freePort, startServe, waitFor, type ServeProcess } from '../helpers/server.ts';

export const KEY = 'e2e-access-admin-key-0123456789';
export const FLAG_SECRET = 'e2e-access-flag-secret-0123456789';
export const BASE = 'ctf.test';
/** The embedded worker's id (leases are keyed by worker). */
export const WORKER = 'local';

export interface AccessRig {
  mgr: string;
  server: ServeProcess;
  api: ReturnType<typeof apiClient>;
  gateway: MiniTraefik;
  /** Id of the gateway probe container. */
  probe: string;
  traefikDir: string;
  leaseRange: { lo: number; hi: number };
  /** Launches (or reuses the owner's live instance) and waits until it runs; returns its view. */
  launchRunning(challenge: string, team: string): Promise<any>;
  stop(): Promise<void>;
}

/** The flag the instance view `inst` should serve. */
export function expectedFlag(inst: { team: string; challenge: string; id: string }, format: string): string {
  return deriveFlag(FLAG_SECRET, { team: inst.team, challenge: inst.challenge, instance: inst.id }, format);
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** Six consecutive ports free on 127.0.0.1 (bounded search). */
async function freeRange(): Promise<{ lo: number; hi: number }> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const lo = 42000 + Math.floor(Math.random() * 18000);
    const ok = await Promise.all(Array.from({ length: 6 }, (_, i) => portFree(lo + i)));
    if (ok.every(Boolean)) return { lo, hi: lo + 5 };
  }
  throw new Error('no free port range on 127.0.0.1');
}

function writeChallenges(dir: string): void {
  cpSync(path.join(ROOT, 'challenges'), dir, { recursive: true });
  cpSync(path.join(dir, 'pwn-echo'), path.join(dir, 'lease-echo'), { recursive: true });
  const yaml = readFileSync(path.join(dir, 'lease-echo', 'challenge.yaml'), 'utf8')
    .replace('id: pwn-echo', 'id: lease-echo').replace('    protocol: tcp', '    protocol: tcp\n    lease: true');
  writeFileSync(path.join(dir, 'lease-echo', 'challenge.yaml'), yaml);
  const web = (id: string, extra: string, delay: number) => {
    mkdirSync(path.join(dir, id));
    writeFileSync(path.join(dir, id, 'challenge.yaml'), [
      `id: ${id}`, `name: ${id}`, 'image: busybox:1.35',
      `command: [sh, -c, "sleep ${delay}; mkdir -p /tmp/w && echo \\"<p>flag: $FLAG</p>\\" > /tmp/w/index.html && exec httpd -f -p 8080 -h /tmp/w"]`,
      'expose: [{ name: web, port: 8080, protocol: http }]', 'healthcheck: { type: http, port: web, path: / }', extra, '',
    ].join('\n'));
  };
  web('slow-web', '', 5);
  // Long enough to start on a loaded 2-core machine, short enough to watch it expire.
  web('short-web', 'ttl: { default: 40s, max: 60s, renewals: 0 }', 0);
}

async function start(name: string): Promise<AccessRig> {
  const mgr = testManagerId();
  const work = mkdtempSync(path.join(tmpdir(), `poseidon-${name}-`));
  const cleanup = async () => {
    await cleanupByLabel(mgr);
    await cleanupRedisPrefix(`${mgr}:`);
    rmSync(work, { recursive: true, force: true });
  };
  try {
    const challengesDir = path.join(work, 'challenges');
    writeChallenges(challengesDir);
    const probe = await startProbe(mgr, `${mgr}-gw`);
    const port = await freePort();
    const leaseRange = await freeRange();
    const traefikDir = path.join(work, 'traefik');
    const server = await startServe({
      POSEIDON_PORT: String(port), POSEIDON_URL: `http://127.0.0.1:${port}`, POSEIDON_API_KEY: KEY, POSEIDON_FLAG_SECRET: FLAG_SECRET,
      POSEIDON_ACCESS_SECRET: `e2e-access-secret-${randomBytes(8).toString('hex')}`, REDIS_URL, POSEIDON_REDIS_PREFIX: `${mgr}:`,
      POSEIDON_MANAGER_ID: mgr, POSEIDON_CHALLENGES_DIR: challengesDir, POSEIDON_TRAEFIK_DIR: traefikDir,
      POSEIDON_DATA_DIR: path.join(work, 'data'), POSEIDON_GATEWAY_CONTAINER: `${mgr}-gw`, POSEIDON_RESYNC_SECONDS: '2',
      POSEIDON_BASE_DOMAIN: BASE, POSEIDON_LEASE_PORTS: `${leaseRange.lo}-${leaseRange.hi}`, POSEIDON_LEASE_ADDRESS: '127.0.0.1',
      POSEIDON_LEASE_HOST: '127.0.0.1', POSEIDON_TEAM_LIMIT: '0', POSEIDON_WORKER_ID: WORKER,
      POSEIDON_RATE_LIMITS: 'launch=1000/60,stop=1000/60,restart=1000/60,renew=1000/60',
    });
    const api = apiClient(server.url, KEY);
    const gateway = await startMiniTraefik({
      config: async () => (await api('GET', '/v1/traefik/config')).body,
      backend: async (hostPort, p): Promise<BackendAnswer> => {
        const r = await fetchFromProbe(probe, hostPort, p);
        return r.code === 0 ? { status: 200, headers: { 'content-type': 'text/html; charset=utf-8' }, body: r.out } : { status: 502, headers: {}, body: r.err };
      },
    });
    const launchRunning = async (challenge: string, team: string) => {
      const res = await api('POST', '/v1/instances', { challenge, team });
      const id = res.status === 202 ? res.body.id : res.body.instance?.id;
      if (!id) throw new Error(`launch ${challenge}/${team}: ${res.status} ${JSON.stringify(res.body)}`);
      let last: { status?: string; reason?: string } = {};
      try {
        return await waitFor(`${challenge}/${team} running`, async () => {
          const r = await api('GET', `/v1/instances/${id}`);
          last = r.body;
          if (r.body.status === 'failed') throw new Error(`failed: ${r.body.reason}`);
          return r.body.status === 'running' ? r.body : undefined;
        }, 120_000, 200);
      } catch (err) {
        // Say where it stopped: the last status and the server's last words.
        const tail = server.logs().split('\n').slice(-15).join('\n');
        throw new Error(`${(err as Error).message} (last: ${last.status} ${last.reason ?? ''})\n${tail}`);
      }
    };
    return {
      mgr, server, api, gateway, probe, traefikDir, leaseRange, launchRunning,
      async stop() {
        await gateway.close();
        await server.stop();
        await cleanup();
      },
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

export const accessRig = {
  /** Whether Docker and Redis are there (under CI=true their absence fails instead). */
  enabled: (): boolean => haveDocker() && haveRedis(),
  start,
};
