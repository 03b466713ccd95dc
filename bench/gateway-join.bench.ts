/**
 * What one more instance network costs the edge: a container (standing for Traefik, which must
 * reach every instance) joins 100 internal networks one after another, and the engine's time and
 * CPU per join are read at the first 20 and the last 20. Issue 11 goal 4 (burst of 100 at 1.2x
 * the raw engine) is held back by this: on Docker 20.10 a join's cost grows with the networks the
 * container is already on, so a burst of N launches costs the engine O(N²) in joins. Measured
 * without the gateway join, a burst of 60 took 1.08-1.16x raw (dockerd CPU 4.5 s against raw's
 * 7.0 s); with it 1.41x (9.4-10.2 s). The target is what an ingress that does not join each
 * instance network would meet; it is printed so the next design can be judged by it.
 * Then the engine gets IDLE more networks that nobody joins, and two more windows of joins show
 * the shape: the edge's next joins, and a fresh container's first ones. Measured on Docker 20.10:
 * the edge's joins 101-120 cost 404 ms (520 ms of dockerd CPU) against 221 ms (260 ms) for joins
 * 81-100 before the idle networks; a fresh container's first 20 cost 93 ms (80 ms), against 52 ms
 * (30 ms) on the quiet engine. A join grows with the networks the container holds times the
 * networks the engine holds: several edges, each holding a share, would cut the first factor.
 * Everything carries `poseidon.test=<label>` and is removed at the end.
 */
import { readdirSync, readFileSync } from 'node:fs';
import Docker from 'dockerode';
import { cleanupByLabel, TEST_LABEL, testManagerId } from '../spec/helpers/docker.ts';
import type { BenchResult } from './harness.ts';

const NETWORKS = 100;
const WINDOW = 20;
/** Networks added to the engine, joined by nobody, before the last two windows. */
const IDLE = 100;

/** The dockerd process's pid, found once in /proc, or undefined when it is not visible from here. */
function dockerdPid(): string | undefined {
  return readdirSync('/proc').find((p) => {
    if (!/^\d+$/.test(p)) return false;
    try {
      return readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'dockerd';
    } catch {
      return false;
    }
  });
}

/** dockerd's CPU time in ms (utime + stime from /proc), or NaN without a pid. */
function cpuMs(pid: string | undefined): number {
  if (!pid) return Number.NaN;
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

export async function run(): Promise<BenchResult[]> {
  const docker = new Docker({ socketPath: '/var/run/docker.sock' });
  const label = testManagerId();
  const labels = { [TEST_LABEL]: label };
  const dockerd = dockerdPid();
  const dockerdCpuMs = (): number => cpuMs(dockerd);
  let made = 0;
  const network = () => docker.createNetwork({ Name: `${label}-j${made}`, Internal: true, Labels: labels, Options: { 'com.docker.network.bridge.name': `pzj${label.slice(-6)}${made++}`.slice(0, 15) } });
  const container = async () => {
    const c = await docker.createContainer({ Image: 'busybox:1.35', Cmd: ['sleep', '3600'], Labels: labels });
    await c.start();
    return c;
  };
  /** `count` new networks, each joined by `c` as soon as it is made: the time and dockerd CPU of each join. */
  const joinNew = async (c: Docker.Container, count: number) => {
    const out: { ms: number; cpuMs: number }[] = [];
    for (let i = 0; i < count; i++) {
      const net = await network();
      const cpu0 = dockerdCpuMs();
      const t0 = performance.now();
      await net.connect({ Container: c.id });
      out.push({ ms: performance.now() - t0, cpuMs: dockerdCpuMs() - cpu0 });
    }
    return out;
  };
  const line = (js: { ms: number; cpuMs: number }[]) => `median ${median(js.map((j) => j.ms)).toFixed(0)} ms, dockerd CPU ${median(js.map((j) => j.cpuMs)).toFixed(0)} ms`;
  try {
    const edge = await container();
    const joins = await joinNew(edge, NETWORKS);
    // Asking again for joins that are there (the engine refuses them): what a launch paid when it
    // asked for the join the network pool had made, before the runtime looked it up first.
    const nets = await docker.listNetworks({ filters: { label: [`${TEST_LABEL}=${label}`] } });
    const again: { ms: number; cpuMs: number }[] = [];
    for (const n of nets.slice(0, WINDOW)) {
      const cpu0 = dockerdCpuMs();
      const t0 = performance.now();
      await docker.getNetwork(n.Id).connect({ Container: edge.id }).catch(() => undefined);
      again.push({ ms: performance.now() - t0, cpuMs: dockerdCpuMs() - cpu0 });
    }
    for (let i = 0; i < IDLE; i++) await network();
    const edgeAfter = await joinNew(edge, WINDOW);
    const fresh = await joinNew(await container(), WINDOW);
    console.log(`  with ${IDLE} more networks on the engine, joined by nobody: the edge's joins ${NETWORKS + 1}-${NETWORKS + WINDOW}: ${line(edgeAfter)}; a fresh container's first ${WINDOW}: ${line(fresh)}`);
    const first = joins.slice(0, WINDOW);
    const last = joins.slice(-WINDOW);
    const [f, l] = [median(first.map((j) => j.ms)), median(last.map((j) => j.ms))];
    const [fc, lc] = [median(first.map((j) => j.cpuMs)), median(last.map((j) => j.cpuMs))];
    return [{
      name: `the edge joining its ${NETWORKS}th instance network, against its first (the engine's cost per join)`,
      measured: `joins ${NETWORKS - WINDOW + 1}-${NETWORKS}: median ${l.toFixed(0)} ms, dockerd CPU ${lc.toFixed(0)} ms (${(l / f).toFixed(1)}x the first ${WINDOW})`,
      baseline: `joins 1-${WINDOW}: median ${f.toFixed(0)} ms, dockerd CPU ${fc.toFixed(0)} ms; a join asked again once on ${NETWORKS} (refused): median ${median(again.map((j) => j.ms)).toFixed(0)} ms, dockerd CPU ${median(again.map((j) => j.cpuMs)).toFixed(0)} ms`,
      target: '<= 1.5x (a join that does not grow with the instances already routed)', ok: l <= 1.5 * f,
    }];
  } finally {
    await cleanupByLabel(label);
  }
}
