/**
 * The multi-host rig the workers end-to-end suite drives (not a test file): the real engines of
 * the test hosts (spec/helpers/hosts.ts), a Redis of its own that the hosts reach on the rig's
 * bridge, `poseidon serve` as a manager without an embedded worker (building once and pushing to
 * the real registry), one `poseidon worker` per host inside that host's network namespace, a
 * Traefik stand-in per host as its ingress (also in the namespace), and a stand-in edge on
 * 127.0.0.1 fed by the manager's HTTP provider. Everything is removed by `stop`, even after a
 * failure: processes by pid, containers, networks and images by label on every engine.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type Docker from 'dockerode';
import { Redis } from 'ioredis';
import { ROOT } from '../helpers/deps.ts';
import { TEST_LABEL } from '../helpers/docker.ts';
import { dockerFor, inNamespace, testHosts, type TestHost, type TestHosts } from '../helpers/hosts.ts';
import { startMiniTraefik, type MiniTraefik } from '../helpers/mini-traefik.ts';
import { apiClient, freePort, startServe, waitFor, type ServeProcess } from '../helpers/server.ts';
import { makeCertificate, type TlsFixture } from '../helpers/tls-fixture.ts';
import { gitFixture, type GitFixture } from '../source/git-fixture.ts';

export const KEY = 'e2e-fleet-admin-key-0123456789';
export const FLAG_SECRET = 'e2e-fleet-flag-secret-0123456789';
export const EDGE_SECRET = `edge${randomBytes(16).toString('hex')}`;
export const BASE = 'ctf.test';
export const CHALLENGES = ['web-hello', 'two-ports', 'pwn-echo'] as const;

/** One worker host: its engine, its agent process and its ingress process. */
export interface RigWorker {
  host: TestHost;
  docker: Docker;
  /** The ingress probe: joined to instance networks by the worker, used by the ingress to reach them. */
  probe: string;
  ingressHttp: string;
  ingressTls: string;
  agent: ChildProcess | undefined;
  logs(): string;
  /** (Re)starts the agent with extra environment (slots, labels). */
  start(extra?: Record<string, string>): Promise<void>;
  /** SIGKILL (kill -9) or SIGTERM, and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export interface FleetRig {
  hosts: TestHosts;
  mgr: string;
  deployment: string;
  redisUrl: string;
  manager: ServeProcess;
  api: ReturnType<typeof apiClient>;
  workers: RigWorker[];
  edge: MiniTraefik;
  git: GitFixture;
  registry: string;
  /** Starts one more manager on the same Redis (two managers racing). */
  startManager(): Promise<ServeProcess>;
  /** A TLS connection made from inside `from`'s namespace to `address` with SNI `servername`; what came back ('' when refused). */
  tlsFrom(from: TestHost, address: string, servername: string, line: string): Promise<string>;
  /** Every managed container on every engine, as [worker name, instance id, container id]. */
  containers(): Promise<[string, string, string][]>;
  /** Waits until the instance record satisfies `done`; on timeout says where it stood and what the processes said last. */
  waitInstance(id: string, what: string, done: (inst: any) => boolean, timeoutMs?: number): Promise<any>;
  /** Launches and waits until running (or throws with the last status). */
  launchRunning(challenge: string, team: string, api?: ReturnType<typeof apiClient>): Promise<any>;
  stop(): Promise<void>;
}

/** The rig's own Redis: reachable from the hosts at the bridge address and from here on loopback. */
async function startRedis(hostAddress: string): Promise<{ port: number; proc: ChildProcess }> {
  const port = await freePort();
  const proc = spawn('redis-server', ['--port', String(port), '--bind', `127.0.0.1 ${hostAddress}`, '--save', '', '--appendonly', 'no', '--protected-mode', 'no'], { stdio: 'ignore' });
  await waitFor('rig redis', async () => {
    const r = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    r.on('error', () => undefined);
    try {
      await r.connect();
      return (await r.ping()) === 'PONG' ? true : undefined;
    } finally {
      r.disconnect();
    }
  }, 20_000, 200);
  return { port, proc };
}

function writeChallenges(fx: GitFixture): void {
  cpSync(path.join(ROOT, 'challenges'), path.join(fx.work, 'challenges'), { recursive: true });
  // Runs only where the engine offers gVisor (w1 in the rig).
  fx.write('challenges/sandboxed/challenge.yaml', [
    'id: sandboxed', 'name: sandboxed', 'image: busybox:1.35', 'runtime: gvisor',
    'command: [sh, -c, "mkdir -p /tmp/w && echo \\"<p>$FLAG</p>\\" > /tmp/w/index.html && exec httpd -f -p 8080 -h /tmp/w"]',
    'expose: [{ name: web, port: 8080 }]', '',
  ].join('\n'));
  // Runs only on workers labelled zone=c.
  fx.write('challenges/zoned/challenge.yaml', [
    'id: zoned', 'name: zoned', 'image: busybox:1.35', 'placement: { labels: { zone: c } }',
    'command: [sh, -c, "mkdir -p /tmp/w && echo ok > /tmp/w/index.html && exec httpd -f -p 8080 -h /tmp/w"]',
    'expose: [{ name: web, port: 8080 }]', 'resources: { cpu: 0.1, memory: 16m }', '',
  ].join('\n'));
  fx.push('challenges');
}

async function startProbe(docker: Docker, name: string, mgr: string): Promise<string> {
  const labels = { [TEST_LABEL]: mgr };
  await docker.createNetwork({ Name: name, Internal: true, Labels: labels, CheckDuplicate: true });
  const c = await docker.createContainer({ name, Image: 'busybox:1.35', Labels: labels, HostConfig: { NetworkMode: name }, Cmd: ['sleep', '86400'] });
  await c.start();
  return c.id;
}

/** Removes everything labelled with the rig's manager id on one engine (containers first). */
async function cleanEngine(docker: Docker, mgr: string): Promise<void> {
  for (const label of [`poseidon.managed-by=${mgr}`, `${TEST_LABEL}=${mgr}`]) {
    for (const c of await docker.listContainers({ all: true, filters: { label: [label] } }).catch(() => [])) {
      await docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => undefined);
    }
  }
  for (const label of [`poseidon.managed-by=${mgr}`, `${TEST_LABEL}=${mgr}`]) {
    for (const n of await docker.listNetworks({ filters: { label: [label] } }).catch(() => [])) await docker.getNetwork(n.Id).remove().catch(() => undefined);
    for (const i of await docker.listImages({ filters: { label: [label] } }).catch(() => [])) await docker.getImage(i.Id).remove({ force: true }).catch(() => undefined);
  }
}

function exited(proc: ChildProcess | undefined): Promise<void> {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => proc.once('exit', () => resolve()));
}

/** Starts the whole rig, or returns undefined when the test hosts are missing (never under CI=true). */
export async function startFleetRig(): Promise<FleetRig | undefined> {
  const hosts = testHosts();
  if (!hosts) return undefined;
  const mgr = `poseidon-test-fleet-${randomBytes(3).toString('hex')}`;
  const deployment = `d-${mgr.slice(-6)}`;
  const work = mkdtempSync(path.join(tmpdir(), 'poseidon-fleet-'));
  const procs: ChildProcess[] = [];
  const engines = hosts.hosts.map((h) => dockerFor(h));
  const git = gitFixture();
  let redis: { port: number; proc: ChildProcess } | undefined;
  let cert: TlsFixture | undefined;
  const servers: ServeProcess[] = [];
  let edge: MiniTraefik | undefined;
  const cleanup = async () => {
    await edge?.close().catch(() => undefined);
    for (const s of servers) await s.kill().catch(() => undefined);
    for (const p of procs) {
      if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
      await exited(p);
    }
    for (const d of engines) await cleanEngine(d, mgr);
    const host = (await import('../helpers/docker.ts')).docker;
    await cleanEngine(host, mgr);
    redis?.proc.kill('SIGKILL');
    await exited(redis?.proc);
    cert?.cleanup();
    git.dispose();
    rmSync(work, { recursive: true, force: true });
  };
  try {
    redis = await startRedis(hosts.hostAddress);
    const prefix = `${mgr}:`;
    const localRedis = `redis://127.0.0.1:${redis.port}`;
    const hostRedis = `redis://${hosts.hostAddress}:${redis.port}`;
    writeChallenges(git);
    cert = makeCertificate([...CHALLENGES, 'sandboxed', 'zoned'].map((c) => `*.${c}.${BASE}`));
    const registry = `${hosts.registry}/${mgr}`;
    const common = {
      POSEIDON_MANAGER_ID: mgr, POSEIDON_DEPLOYMENT_ID: deployment, POSEIDON_REDIS_PREFIX: prefix, POSEIDON_HEARTBEAT_SECONDS: '1',
      POSEIDON_WORKER_LOST_SECONDS: '20', POSEIDON_RESYNC_SECONDS: '3', POSEIDON_BASE_DOMAIN: BASE, POSEIDON_LOG_LEVEL: 'info',
    };
    const managerEnv = async (): Promise<Record<string, string>> => {
      const port = await freePort();
      return {
        ...common, POSEIDON_PORT: String(port), POSEIDON_URL: `http://127.0.0.1:${port}`, POSEIDON_API_KEY: KEY, POSEIDON_FLAG_SECRET: FLAG_SECRET,
        REDIS_URL: localRedis, POSEIDON_EMBEDDED_WORKER: 'false', POSEIDON_REGISTRY: registry, POSEIDON_GIT_URL: git.remote,
        POSEIDON_GIT_PATH: 'challenges', POSEIDON_GIT_POLL_SECONDS: '0', POSEIDON_EDGE_SECRET: EDGE_SECRET, POSEIDON_TEAM_LIMIT: '0',
        POSEIDON_CAPACITY: '0', POSEIDON_RATE_LIMITS: 'launch=1000/60,stop=1000/60,restart=1000/60,renew=1000/60',
        POSEIDON_TRAEFIK_DIR: path.join(work, `manager-${port}`, 'traefik'), POSEIDON_DATA_DIR: path.join(work, `manager-${port}`, 'data'),
        POSEIDON_FIREWALL: 'off',
      };
    };
    const manager = await startServe(await managerEnv());
    servers.push(manager);
    const api = apiClient(manager.url, KEY);
    const workers: RigWorker[] = [];
    for (const [i, host] of hosts.hosts.entries()) {
      const docker = engines[i] as Docker;
      const probe = await startProbe(docker, `${mgr}-ingress`, mgr);
      const dir = path.join(work, host.name);
      mkdirSync(path.join(dir, 'traefik'), { recursive: true });
      writeFileSync(path.join(dir, 'traefik', 'poseidon-ingress.yml'), '{}\n');
      const ingressHttp = `${host.address}:18080`;
      const ingressTls = `${host.address}:18443`;
      // The ingress: a Traefik stand-in in the host's namespace, on the worker's ingress file.
      const ingress = inNamespace(host, process.execPath, [
        '--import', 'tsx', path.join(ROOT, 'spec/helpers/mini-traefik-cli.ts'), '--config', path.join(dir, 'traefik', 'poseidon-ingress.yml'),
        '--http', `web=${ingressHttp}`, '--tls', `websecure=${ingressTls}`, '--cert', cert.certFile, '--key', cert.keyFile,
        '--docker-socket', host.socket, '--probe', probe,
      ], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      procs.push(ingress);
      await new Promise<void>((resolve, reject) => {
        let out = '';
        const timer = setTimeout(() => reject(new Error(`ingress on ${host.name} did not start: ${out}`)), 60_000);
        ingress.stdout?.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('ready')) { clearTimeout(timer); resolve(); } });
        ingress.stderr?.on('data', (d: Buffer) => { out += d.toString(); });
        ingress.once('exit', (code) => { clearTimeout(timer); reject(new Error(`ingress on ${host.name} exited ${code}: ${out}`)); });
      });
      let logs = '';
      const w: RigWorker = {
        host, docker, probe, ingressHttp, ingressTls, agent: undefined,
        logs: () => logs,
        async start(extra = {}) {
          logs = '';
          const env = {
            ...common, PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', REDIS_URL: hostRedis,
            POSEIDON_DOCKER_SOCKET: host.socket, POSEIDON_WORKER_ID: host.name, POSEIDON_ADVERTISE_ADDRESS: host.address,
            POSEIDON_INGRESS_HTTP: ingressHttp, POSEIDON_INGRESS_TLS: ingressTls, POSEIDON_TRAEFIK_DIR: path.join(dir, 'traefik'),
            POSEIDON_DATA_DIR: path.join(dir, 'data'), POSEIDON_GATEWAY_CONTAINER: probe, POSEIDON_WORKER_SLOTS: '20',
            // The edge (the stand-in in the test process) reaches the hosts from the bridge's host side.
            POSEIDON_EDGE_SOURCES: hosts.hostAddress, ...extra,
          };
          const proc = inNamespace(host, process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli.ts'), 'worker'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
          proc.stdout?.on('data', (d: Buffer) => { logs += d.toString(); });
          proc.stderr?.on('data', (d: Buffer) => { logs += d.toString(); });
          procs.push(proc);
          w.agent = proc;
          await waitFor(`worker ${host.name} registered`, async () => {
            if (proc.exitCode !== null) throw new Error(`worker ${host.name} exited: ${logs.slice(-2000)}`);
            return /worker registered/.test(logs) ? true : undefined;
          }, 90_000, 200);
        },
        async kill(signal = 'SIGKILL') {
          const proc = w.agent;
          if (proc && proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
          await exited(proc);
        },
      };
      workers.push(w);
    }
    await Promise.all(workers.map((w) => w.start()));
    edge = await startMiniTraefik({ config: async () => (await api('GET', '/v1/traefik/config')).body });
    const workersLogs = (id: string): string => workers.map((w) => `${w.host.name}:\n${w.logs().split('\n').filter((l) => l.includes(id) || /"level":(40|50)/.test(l)).slice(-8).join('\n')}`).join('\n');
    const rig: FleetRig = {
      hosts, mgr, deployment, redisUrl: localRedis, manager, api, workers, edge, git, registry,
      async startManager() {
        const s = await startServe(await managerEnv());
        servers.push(s);
        return s;
      },
      async tlsFrom(from, address, servername, line) {
        const [host, port] = [address.slice(0, address.lastIndexOf(':')), address.slice(address.lastIndexOf(':') + 1)];
        const script = `const s=require('tls').connect({host:${JSON.stringify(host)},port:${Number(port)},servername:${JSON.stringify(servername)},rejectUnauthorized:false},()=>s.write(${JSON.stringify(`${line}\n`)}));let o='';s.setTimeout(10000,()=>s.destroy());s.on('data',d=>{o+=d});s.on('close',()=>{process.stdout.write(o);process.exit(0)});s.on('error',()=>{process.exit(0)});`;
        const proc = inNamespace(from, process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'ignore'] });
        let out = '';
        proc.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
        await exited(proc);
        return out;
      },
      async containers() {
        const out: [string, string, string][] = [];
        for (const w of workers) {
          const list = await w.docker.listContainers({ all: true, filters: { label: [`poseidon.managed-by=${mgr}`] } });
          for (const c of list) out.push([w.host.name, c.Labels['poseidon.instance'] ?? '', c.Id]);
        }
        return out.sort();
      },
      async waitInstance(id, what, done, timeoutMs = 240_000) {
        let last: any = {};
        try {
          return await waitFor(`${id} ${what}`, async () => {
            last = (await api('GET', `/v1/instances/${id}`)).body;
            return done(last) ? last : undefined;
          }, timeoutMs, 250);
        } catch (err) {
          const tail = (text: string) => text.split('\n').filter((l) => l.includes(id) || /"level":(40|50)/.test(l)).slice(-12).join('\n');
          const workers = (await api('GET', '/v1/workers')).body.workers?.map((w: any) => `${w.id}:${w.state}:${w.instances}/${w.slots}`).join(' ');
          throw new Error(`${(err as Error).message}\nlast: ${JSON.stringify(last)}\nworkers: ${workers}\nmanager:\n${tail(manager.logs())}\n${workersLogs(id)}`);
        }
      },
      async launchRunning(challenge, team, client = api) {
        const res = await client('POST', '/v1/instances', { challenge, team });
        const id = res.status === 202 ? res.body.id : res.body.instance?.id;
        if (!id) throw new Error(`launch ${challenge}/${team}: ${res.status} ${JSON.stringify(res.body)}`);
        let last: any = {};
        try {
          return await waitFor(`${challenge}/${team} running`, async () => {
            last = (await client('GET', `/v1/instances/${id}`)).body;
            if (last.status === 'failed') throw new Error(`failed: ${last.reason}`);
            return last.status === 'running' ? last : undefined;
          }, 180_000, 250);
        } catch (err) {
          throw new Error(`${(err as Error).message} (last: ${last.status} ${last.reason ?? ''} on ${last.worker ?? '-'})`);
        }
      },
      async stop() {
        await cleanup();
      },
    };
    return rig;
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/** Polls until `fn` returns a value, with a generous bound (the machine may be loaded). */
export async function eventually<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  return waitFor(what, fn, timeoutMs, 250);
}

export { sleep };
