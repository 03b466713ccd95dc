/**
 * The rig the chaos suite (issue 12) drives, not a test file: Redis behind Sentinel (one primary,
 * one replica, three sentinels: spec/helpers/sentinel.ts), two `poseidon serve` managers without
 * embedded workers sharing it through the Sentinel URL, and two `poseidon worker` processes, each
 * on the real engine of one test host (spec/helpers/hosts.ts; the worker process runs here and
 * talks to that engine's socket). Faults are real: SIGKILL, SIGSTOP/SIGCONT, the Redis primary
 * killed, an engine's daemon killed and brought back. `stop` removes everything it started, by
 * pid and by label, even after a failure.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type Docker from 'dockerode';
import { ROOT } from '../helpers/deps.ts';
import { dockerFor, testHosts, type TestHost } from '../helpers/hosts.ts';
import { startSentinelRig, type SentinelRig } from '../helpers/sentinel.ts';
import { apiClient, freePort, waitFor } from '../helpers/server.ts';

export const KEY = 'e2e-chaos-admin-key-0123456789';
const METRICS_TOKEN = 'e2e-chaos-metrics-token-0123456789';
/** Short, so that takeovers happen within the suite's patience (production defaults: 15/10/2 s). */
export const LEASE = { seconds: 3, renewSeconds: 2, retrySeconds: 0.25 };
export const CHALLENGE = 'chaos-web';

export type Api = ReturnType<typeof apiClient>;

/** A process the rig started, restartable with the same environment. */
export interface RigProc {
  name: string;
  proc: ChildProcess;
  logs(): string;
  /** Sends `signal` (SIGKILL by default) and waits for the exit when it ends the process. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again (after a kill) and waits until it is up. */
  restart(extra?: Record<string, string>): Promise<void>;
}

export interface ChaosManager extends RigProc {
  url: string;
  api: Api;
  /** `GET /readyz` (undefined when it does not answer). */
  ready(): Promise<{ ready: boolean; leader: boolean } | undefined>;
  /** A counter or gauge from its `/metrics` (summed over labels), undefined when it does not answer. */
  metric(name: string): Promise<number | undefined>;
}

export interface ChaosWorker extends RigProc {
  host: TestHost;
  docker: Docker;
}

export interface ChaosRig {
  mgr: string;
  redis: SentinelRig;
  managers: [ChaosManager, ChaosManager];
  workers: [ChaosWorker, ChaosWorker];
  /** The manager holding the lease now (polls both; bounded). */
  leader(timeoutMs?: number): Promise<ChaosManager>;
  /** The first manager that answers (for reads when one may be down). */
  anyApi(): Promise<Api>;
  /** Every managed container on both engines: [worker, instance id, container id, state]. */
  containers(): Promise<[string, string, string, string][]>;
  /** Kills one engine's daemon (SIGKILL) and brings it back with the test hosts script. */
  restartEngine(w: ChaosWorker): Promise<void>;
  stop(): Promise<void>;
}

function exited(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => proc.once('exit', () => resolve()));
}

/** Spawns `src/cli.ts <command>` with `env`; output is kept (bounded) for failure messages. */
function spawnPoseidon(command: string, env: Record<string, string>): { proc: ChildProcess; logs: () => string } {
  const proc = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli.ts'), command], {
    cwd: ROOT, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const keep = (d: Buffer): void => { out = (out + d.toString()).slice(-400_000); };
  proc.stdout?.on('data', keep);
  proc.stderr?.on('data', keep);
  return { proc, logs: () => out };
}

/** Sums the samples of `name` in a Prometheus text exposition. */
export function sumMetric(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || !/^[a-z_]+(\{[^}]*\})? /.test(line)) continue;
    if (line.slice(name.length)[0] !== ' ' && line.slice(name.length)[0] !== '{') continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** Starts the whole rig, or undefined when the test hosts are missing (never under CI=true: testHosts throws). */
export async function startChaosRig(): Promise<ChaosRig | undefined> {
  const hosts = testHosts();
  if (!hosts) return undefined;
  const mgr = `poseidon-test-chaos-${randomBytes(3).toString('hex')}`;
  const work = mkdtempSync(path.join(tmpdir(), 'poseidon-chaos-'));
  const procs: RigProc[] = [];
  const engines = hosts.hosts.slice(0, 2).map((h) => dockerFor(h));
  let redis: SentinelRig | undefined;
  const cleanup = async (): Promise<void> => {
    for (const p of procs) {
      // A stopped process must be continued to die cleanly and release its sockets.
      try { p.proc.kill('SIGCONT'); } catch { /* gone */ }
      await p.kill('SIGKILL').catch(() => undefined);
    }
    for (const d of engines) {
      for (const c of await d.listContainers({ all: true, filters: { label: [`poseidon.managed-by=${mgr}`] } }).catch(() => [])) {
        await d.getContainer(c.Id).remove({ force: true, v: true }).catch(() => undefined);
      }
      for (const n of await d.listNetworks({ filters: { label: [`poseidon.managed-by=${mgr}`] } }).catch(() => [])) await d.getNetwork(n.Id).remove().catch(() => undefined);
    }
    await redis?.stop();
    rmSync(work, { recursive: true, force: true });
  };
  try {
    redis = await startSentinelRig({ replicas: 2 });
    const challenges = path.join(work, 'challenges');
    mkdirSync(path.join(challenges, CHALLENGE), { recursive: true });
    writeFileSync(path.join(challenges, CHALLENGE, 'challenge.yaml'), [
      `id: ${CHALLENGE}`, 'name: Chaos web', 'image: busybox:1.35',
      'command: [sh, -c, "mkdir -p /tmp/w && echo ok > /tmp/w/index.html && exec httpd -f -p 8080 -h /tmp/w"]',
      'expose: [{ name: web, port: 8080, protocol: http }]', 'ttl: { default: 30m, max: 60m }', 'resources: { cpu: 0.05, memory: 16m }', '',
    ].join('\n'));
    const common = {
      REDIS_URL: redis.url, POSEIDON_REDIS_PREFIX: `${mgr}:`, POSEIDON_MANAGER_ID: mgr, POSEIDON_DEPLOYMENT_ID: `d-${mgr.slice(-6)}`,
      POSEIDON_HEARTBEAT_SECONDS: '1', POSEIDON_WORKER_LOST_SECONDS: '10', POSEIDON_RESYNC_SECONDS: '3', POSEIDON_LOG_LEVEL: 'info',
      POSEIDON_FIREWALL: 'off', POSEIDON_BASE_DOMAIN: 'chaos.test',
    };
    const managers: ChaosManager[] = [];
    for (const i of [1, 2]) {
      let env: Record<string, string> = {};
      const base = async (): Promise<Record<string, string>> => {
        const port = await freePort();
        return {
          ...common, POSEIDON_PORT: String(port), POSEIDON_HOST: '127.0.0.1', POSEIDON_URL: `http://127.0.0.1:${port}`, POSEIDON_API_KEY: KEY,
          POSEIDON_FLAG_SECRET: 'e2e-chaos-flag-secret-0123456789', POSEIDON_EMBEDDED_WORKER: 'false', POSEIDON_CHALLENGES_DIR: challenges,
          POSEIDON_TRAEFIK_DIR: path.join(work, `m${i}`, 'traefik'), POSEIDON_DATA_DIR: path.join(work, `m${i}`, 'data'),
          POSEIDON_TEAM_LIMIT: '0', POSEIDON_CAPACITY: '0', POSEIDON_RATE_LIMITS: 'launch=100000/60,stop=100000/60,restart=100000/60,renew=100000/60',
          POSEIDON_LEASE_SECONDS: String(LEASE.seconds), POSEIDON_LEASE_RENEW_SECONDS: String(LEASE.renewSeconds), POSEIDON_LEASE_RETRY_SECONDS: String(LEASE.retrySeconds),
          POSEIDON_REDIS_WAIT_REPLICAS: '1', POSEIDON_METRICS_TOKEN: METRICS_TOKEN,
        };
      };
      env = await base();
      let run = spawnPoseidon('serve', env);
      const m: ChaosManager = {
        name: `m${i}`, proc: run.proc, logs: () => run.logs(), url: env.POSEIDON_URL as string, api: apiClient(env.POSEIDON_URL as string, KEY),
        async kill(signal = 'SIGKILL') {
          if (m.proc.exitCode !== null || m.proc.signalCode !== null) return;
          m.proc.kill(signal);
          if (signal === 'SIGKILL' || signal === 'SIGTERM') await exited(m.proc);
        },
        async restart(extra = {}) {
          env = { ...env, ...extra };
          run = spawnPoseidon('serve', env);
          m.proc = run.proc;
          await upManager(m);
        },
        async ready() {
          return fetch(`${m.url}/readyz`, { signal: AbortSignal.timeout(3000) }).then((r) => r.json() as Promise<{ ready: boolean; leader: boolean }>, () => undefined);
        },
        async metric(name) {
          const text = await fetch(`${m.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` }, signal: AbortSignal.timeout(5000) }).then((r) => (r.ok ? r.text() : undefined), () => undefined);
          return text === undefined ? undefined : sumMetric(text, name);
        },
      };
      procs.push(m);
      managers.push(m);
    }
    await Promise.all(managers.map((m) => upManager(m)));
    const workers: ChaosWorker[] = [];
    for (const [i, host] of hosts.hosts.slice(0, 2).entries()) {
      const env = {
        ...common, POSEIDON_DOCKER_SOCKET: host.socket, POSEIDON_WORKER_ID: host.name, POSEIDON_DATA_DIR: path.join(work, host.name), POSEIDON_WORKER_SLOTS: '40',
      };
      let run = spawnPoseidon('worker', env);
      const w: ChaosWorker = {
        name: host.name, host, docker: engines[i] as Docker, proc: run.proc, logs: () => run.logs(),
        async kill(signal = 'SIGKILL') {
          if (w.proc.exitCode !== null || w.proc.signalCode !== null) return;
          w.proc.kill(signal);
          if (signal === 'SIGKILL' || signal === 'SIGTERM') await exited(w.proc);
        },
        async restart() {
          run = spawnPoseidon('worker', env);
          w.proc = run.proc;
          await upWorker(w);
        },
      };
      procs.push(w);
      workers.push(w);
    }
    await Promise.all(workers.map((w) => upWorker(w)));
    const rig: ChaosRig = {
      mgr, redis, managers: managers as [ChaosManager, ChaosManager], workers: workers as [ChaosWorker, ChaosWorker],
      async leader(timeoutMs = 60_000) {
        return waitFor('a manager holding the lease', async () => {
          for (const m of managers) if ((await m.ready())?.leader) return m;
          return undefined;
        }, timeoutMs, 100);
      },
      async anyApi() {
        return waitFor('a manager answering', async () => {
          for (const m of managers) if ((await m.ready())?.ready) return m.api;
          return undefined;
        }, 60_000, 200);
      },
      async containers() {
        const out: [string, string, string, string][] = [];
        for (const w of workers) {
          const list = await w.docker.listContainers({ all: true, filters: { label: [`poseidon.managed-by=${mgr}`] } });
          for (const c of list) out.push([w.name, c.Labels['poseidon.instance'] ?? '', c.Id, c.State]);
        }
        return out.sort();
      },
      async restartEngine(w) {
        const pid = Number(readFileSync(w.host.socket.replace(/\.sock$/, '.pid'), 'utf8').trim());
        process.kill(pid, 'SIGKILL');
        await waitFor(`${w.name}'s engine gone`, async () => (w.docker.ping().then(() => undefined, () => true)), 30_000, 100);
        execFileSync('bash', ['scripts/test-hosts.sh', 'up'], { cwd: ROOT, stdio: 'ignore', timeout: 180_000 });
        await waitFor(`${w.name}'s engine back`, async () => (w.docker.ping().then(() => true, () => undefined)), 120_000, 250);
      },
      stop: cleanup,
    };
    return rig;
  } catch (err) {
    await cleanup();
    throw err;
  }
}

async function upManager(m: ChaosManager): Promise<void> {
  await waitFor(`${m.name} ready`, async () => {
    if (m.proc.exitCode !== null) throw new Error(`${m.name} exited ${m.proc.exitCode}: ${m.logs().slice(-3000)}`);
    return (await m.ready())?.ready ? true : undefined;
  }, 120_000, 200);
}

async function upWorker(w: ChaosWorker): Promise<void> {
  await waitFor(`${w.name} registered`, async () => {
    if (w.proc.exitCode !== null) throw new Error(`${w.name} exited ${w.proc.exitCode}: ${w.logs().slice(-3000)}`);
    return /worker registered/.test(w.logs()) ? true : undefined;
  }, 120_000, 200);
}
