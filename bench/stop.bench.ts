/**
 * `npm run bench stop`: issue 11 goal 7 on the host engine. Launching faster must not have made
 * ending slower:
 * - stop: `DELETE /v1/instances/:id` of a running instance until the engine destroyed its
 *   container and its network, against the raw Engine API removing the same kind of container
 *   and network (`launch-raw.ts`) in the same run, interleaved; p95 <= 1.5x raw.
 * - expiry: an instance whose lifetime ends (ttl 10 s, the shortest a challenge may set) until the engine destroyed its
 *   container; <= 1 s after `expiresAt`.
 * Times come from the engine's own `destroy` events (nanosecond stamps), not from polling.
 * One `poseidon serve` (Redis store, embedded worker, as `launch.bench.ts` runs it).
 * Sizes: BENCH_STOP_RUNS (default 12).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import { cleanupByLabel, testManagerId } from '../spec/helpers/docker.ts';
import { cleanupRedisPrefix } from '../spec/helpers/redis.ts';
import type { BenchResult } from './harness.ts';
import { quantile, specOf, WEB } from './launch.bench.ts';
import { RawEngine } from './launch-raw.ts';
import { benchServe } from './launch-serve.ts';

const SOCKET = '/var/run/docker.sock';
const RUNS = Number(process.env.BENCH_STOP_RUNS ?? 12);
/** The lifetime of the expiring challenge, in seconds. */
const BRIEF_TTL = 10;

/** Engine `destroy` events of containers and networks, by name (epoch ms, from the engine's stamps). */
class Destroys {
  readonly #seen = new Map<string, number>();
  readonly #waiters = new Map<string, () => void>();
  #stream: NodeJS.ReadableStream | undefined;

  async start(docker: Docker): Promise<void> {
    const stream = await docker.getEvents({ filters: { type: ['container', 'network'], event: ['destroy'] } });
    this.#stream = stream;
    let buf = '';
    stream.on('data', (chunk: Buffer) => {
      buf += chunk.toString('utf8');
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          const e = JSON.parse(line) as { Type: string; timeNano: number; Actor: { ID: string; Attributes: Record<string, string> } };
          // Containers by their instance label (Poseidon) or name (raw); networks by name.
          const names = [e.Actor.Attributes.name, e.Actor.Attributes['poseidon.instance'] && `instance:${e.Actor.Attributes['poseidon.instance']}`, e.Actor.ID];
          for (const n of names) {
            if (!n) continue;
            const key = `${e.Type}:${n}`;
            this.#seen.set(key, e.timeNano / 1e6);
            this.#waiters.get(key)?.();
          }
        } catch {
          // not an event line
        }
      }
    });
    stream.on('error', () => undefined);
  }

  stop(): void {
    (this.#stream as unknown as { destroy?(): void } | undefined)?.destroy?.();
  }

  /** When `type:name` was destroyed; waits up to `timeoutMs`. */
  async at(type: 'container' | 'network', name: string, timeoutMs = 60_000): Promise<number> {
    const key = `${type}:${name}`;
    const seen = this.#seen.get(key);
    if (seen !== undefined) return seen;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no destroy event for ${key} in ${timeoutMs} ms`)), timeoutMs);
      this.#waiters.set(key, () => { clearTimeout(timer); this.#waiters.delete(key); resolve(); });
    });
    return this.#seen.get(key) as number;
  }
}

export async function run(): Promise<BenchResult[]> {
  const docker = new Docker({ socketPath: SOCKET });
  const work = mkdtempSync(path.join(tmpdir(), 'poseidon-bench-stop-'));
  const rawLabel = testManagerId();
  const raw = new RawEngine({ socketPath: SOCKET, label: rawLabel, spec: await specOf(work) });
  const destroys = new Destroys();
  await destroys.start(docker);
  const s = await benchServe({
    name: 'stop', work, docker,
    challenges: { web: [...WEB], brief: [...WEB, `ttl: { default: ${BRIEF_TTL}, max: ${BRIEF_TTL} }`] },
  });
  try {
    const rawMs: number[] = [];
    const stopMs: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const steps = [
        async () => {
          const l = await raw.launch();
          const t0 = Date.now();
          await raw.remove(l);
          const [c, n] = await Promise.all([destroys.at('container', l.id), destroys.at('network', l.network)]);
          rawMs.push(Math.max(c, n) - t0);
        },
        async () => {
          const { id } = await s.launch('web');
          const t0 = Date.now();
          await s.stop(id);
          const [c, n] = await Promise.all([destroys.at('container', `instance:${id}`), destroys.at('network', `poseidon-${id}`)]);
          stopMs.push(Math.max(c, n) - t0);
        },
      ];
      // Alternate which side goes first.
      for (let k = 0; k < steps.length; k++) await (steps[(i + k) % steps.length] as () => Promise<void>)();
    }
    // Expiry: a few at a time, each measured from its own expiresAt.
    const late: number[] = [];
    for (let i = 0; i < Math.max(3, Math.ceil(RUNS / 3)); i++) {
      const launched = await Promise.all([0, 1, 2].map(async () => (await s.post('brief')).id));
      await Promise.all(launched.map(async (id) => {
        const gone = await destroys.at('container', `instance:${id}`, (BRIEF_TTL + 60) * 1000);
        const inst = await s.store.getInstance(id);
        if (!inst) throw new Error(`${id}: record gone before it could be read`);
        late.push(gone - inst.expiresAt);
      }));
    }
    const [r95, p95] = [quantile(rawMs, 0.95), quantile(stopMs, 0.95)];
    const lateMax = Math.max(...late);
    console.log(`\n  stop bench: raw remove ${rawMs.map(Math.round).join(', ')} ms; stop ${stopMs.map(Math.round).join(', ')} ms; expiry late by ${late.map(Math.round).join(', ')} ms`);
    return [
      {
        name: 'goal 7: stop (DELETE -> container and network destroyed)',
        measured: `p50 ${Math.round(quantile(stopMs, 0.5))} ms, p95 ${Math.round(p95)} ms (${(p95 / r95).toFixed(2)}x) over ${RUNS}`,
        baseline: `raw Engine API remove of container + network: p50 ${Math.round(quantile(rawMs, 0.5))} ms, p95 ${Math.round(r95)} ms`,
        target: 'p95 <= 1.5x raw', ok: p95 <= 1.5 * r95,
      },
      {
        name: `goal 7: expiry (expiresAt -> container destroyed, ttl ${BRIEF_TTL} s)`,
        measured: `p50 ${Math.round(quantile(late, 0.5))} ms, max ${Math.round(lateMax)} ms after expiresAt over ${late.length}`,
        baseline: 'none (absolute)', target: '<= 1000 ms', ok: lateMax <= 1000,
      },
    ];
  } finally {
    destroys.stop();
    await s.close().catch(() => undefined);
    await cleanupByLabel(s.managerId);
    await cleanupByLabel(rawLabel);
    await cleanupRedisPrefix(`${s.managerId}:`);
    rmSync(work, { recursive: true, force: true });
  }
}
