/**
 * A `poseidon serve` process for `launch.bench.ts` (its own manager id, Redis prefix and temp
 * directories, the embedded worker on the host engine, a gateway stand-in joined to instance
 * networks as on a single host), with a launch that is timed from outside by `LaunchObserver`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type Docker from 'dockerode';
import type { Store } from '../src/core/store.ts';
import { RedisStore } from '../src/store/redis.ts';
import { REDIS_URL } from '../spec/helpers/deps.ts';
import { startProbe, testManagerId } from '../spec/helpers/docker.ts';
import { apiClient, startServe, type ServeProcess } from '../spec/helpers/server.ts';
import { burstPosts } from './burst-client.ts';
import { LaunchObserver, type Timeline } from './launch-observer.ts';

const KEY = 'bench-launch-key-0123456789';

export interface BenchServe {
  name: string;
  managerId: string;
  store: Store;
  observer: LaunchObserver;
  /** POSTs a launch for a fresh team and resolves when it is running with its route. */
  launch(challenge: string): Promise<{ id: string; timeline: Timeline; postMs: number }>;
  /** POSTs only: the id, the POST's latency and when it went out. */
  post(challenge: string): Promise<{ id: string; postMs: number; at: number }>;
  /** `count` launches for fresh teams fired at once over warmed keep-alive connections (`burst-client.ts`), then tracked. */
  burst(challenge: string, count: number): Promise<{ id: string; postMs: number; at: number }[]>;
  /** Sets the embedded worker's launch settings through the API, as an admin before an event (`PUT /v1/workers/:id/launch-settings`). */
  launchSettings(settings: { networkPool?: number; launchConcurrency?: number }): Promise<void>;
  /** Free pooled networks the embedded worker reported ready at its last heartbeat (`networkPoolReady`). */
  networkPoolReady(): Promise<number>;
  /** Stops `id` and waits until the engine holds nothing of it. */
  stop(id: string): Promise<void>;
  close(): Promise<void>;
  logs(): string;
}

let teams = 0;
/** A team no launch of this process used yet. */
const nextTeam = (): string => `t${process.pid}-${++teams}`;

/** Starts serve with `env` over a challenges dir holding `challenges` (id -> YAML lines). */
export async function benchServe(opts: { name: string; work: string; docker: Docker; challenges: Record<string, string[]>; env?: Record<string, string> }): Promise<BenchServe> {
  const mgr = testManagerId();
  const dir = path.join(opts.work, opts.name);
  for (const [id, lines] of Object.entries(opts.challenges)) {
    mkdirSync(path.join(dir, 'challenges', id), { recursive: true });
    writeFileSync(path.join(dir, 'challenges', id, 'challenge.yaml'), [`id: ${id}`, `name: ${id}`, ...lines, ''].join('\n'));
  }
  const traefikDir = path.join(dir, 'traefik');
  mkdirSync(traefikDir, { recursive: true });
  await startProbe(mgr, `${mgr}-gw`);
  const server: ServeProcess = await startServe({
    POSEIDON_API_KEY: KEY, POSEIDON_FLAG_SECRET: 'bench-launch-secret-0123456789', REDIS_URL, POSEIDON_REDIS_PREFIX: `${mgr}:`,
    POSEIDON_MANAGER_ID: mgr, POSEIDON_CHALLENGES_DIR: path.join(dir, 'challenges'), POSEIDON_TRAEFIK_DIR: traefikDir,
    POSEIDON_DATA_DIR: path.join(dir, 'data'), POSEIDON_GATEWAY_CONTAINER: `${mgr}-gw`, POSEIDON_TEAM_LIMIT: '0',
    POSEIDON_RATE_LIMITS: 'launch=100000/60,stop=100000/60', POSEIDON_CAPACITY: '0', POSEIDON_WORKER_SLOTS: '400',
    // The bench measures the engine, not the scheduler's bounds: a burst of 100 must fit (the
    // host's 2 cores and its memory, the embedded worker's defaults, hold about 32).
    POSEIDON_WORKER_CPU: '400', POSEIDON_WORKER_MEMORY: '400g',
    // The host firewall is global to the machine: other suites may be using it.
    POSEIDON_FIREWALL: 'off', POSEIDON_LOG_LEVEL: 'warn', ...opts.env,
  });
  const api = apiClient(server.url, KEY);
  const store = new RedisStore({ url: REDIS_URL, prefix: `${mgr}:` });
  const observer = new LaunchObserver({ store, traefikDir });
  await observer.start(opts.docker);
  const post = async (challenge: string): Promise<{ id: string; postMs: number; at: number; hostname: string }> => {
    const at = Date.now();
    const t0 = performance.now();
    const res = await api('POST', '/v1/instances', { challenge, team: nextTeam() });
    const postMs = performance.now() - t0;
    if (res.status !== 202) throw new Error(`launch refused: ${res.status} ${JSON.stringify(res.body)}`);
    return { id: res.body.id as string, postMs, at, hostname: res.body.hostname as string };
  };
  return {
    name: opts.name, managerId: mgr, store, observer,
    async post(challenge) {
      const p = await post(challenge);
      observer.track(p.id, p.at, p.at + p.postMs, p.hostname);
      return p;
    },
    async burst(challenge, count) {
      const bodies = Array.from({ length: count }, () => JSON.stringify({ challenge, team: nextTeam() }));
      const answers = await burstPosts({ base: server.url, warmPath: '/healthz', postPath: '/v1/instances', headers: { 'x-api-key': KEY }, bodies });
      // Tracked once every POST is answered: the observer's own work does not delay them.
      return answers.map((a) => {
        const body = JSON.parse(a.body) as { id?: string; hostname?: string };
        if (a.status !== 202 || !body.id) throw new Error(`launch refused: ${a.status} ${a.body}`);
        observer.track(body.id, a.at, a.at + a.ms, body.hostname ?? '');
        return { id: body.id, postMs: a.ms, at: a.at };
      });
    },
    async launch(challenge) {
      const p = await post(challenge);
      observer.track(p.id, p.at, p.at + p.postMs, p.hostname);
      return { id: p.id, postMs: p.postMs, timeline: await observer.done(p.id) };
    },
    async launchSettings(settings) {
      const worker = (await api('GET', '/v1/workers')).body.workers?.[0]?.id as string | undefined;
      if (!worker) throw new Error('no worker registered');
      const res = await api('PUT', `/v1/workers/${worker}/launch-settings`, settings);
      if (res.status !== 200) throw new Error(`launch settings refused: ${res.status} ${JSON.stringify(res.body)}`);
      for (let n = 0; n < 600; n++) {
        const launch = (await api('GET', '/v1/workers')).body.workers?.[0]?.launch as Record<string, number> | undefined;
        if (Object.entries(settings).every(([k, v]) => launch?.[k] === v)) return;
        await sleep(100);
      }
      throw new Error('the worker did not report its launch settings within 60 s');
    },
    async networkPoolReady() {
      return Number((await api('GET', '/v1/workers')).body.workers?.[0]?.networkPoolReady ?? 0);
    },
    async stop(id) {
      await api('DELETE', `/v1/instances/${id}`);
      for (let n = 0; n < 600; n++) {
        const label = [`poseidon.instance=${id}`, `poseidon.managed-by=${mgr}`];
        const [containers, networks] = await Promise.all([opts.docker.listContainers({ all: true, filters: { label } }), opts.docker.listNetworks({ filters: { label } })]);
        if (containers.length + networks.length === 0) return;
        await sleep(50);
      }
      throw new Error(`${id} still on the engine 30 s after its stop`);
    },
    async close() {
      observer.stop();
      await server.stop();
      await store.close();
    },
    logs: () => server.logs(),
  };
}
