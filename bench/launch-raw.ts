/**
 * The raw Engine API baseline of `launch.bench.ts`: the work a launch must do, done directly with
 * dockerode and nothing else: a new internal network with a named bridge, the same hardened
 * container (Poseidon's own create options, from `planContainer`), a start, then the service's
 * first successful answer from inside Docker (its health check command run by exec, back to back,
 * attached, until it exits 0). Every object carries `poseidon.test=<label>` for cleanup.
 */
import { randomBytes } from 'node:crypto';
import Docker from 'dockerode';
import type { ChallengeSpec } from '../src/core/challenge.ts';
import { planContainer, readinessCommand } from '../src/core/container-plan.ts';
import type { Instance } from '../src/core/instance.ts';
import { toCreateOptions } from '../src/runtime/docker-create.ts';

export interface RawTiming {
  totalMs: number;
  networkMs: number;
  createMs: number;
  startMs: number;
  readyMs: number;
}

/** One raw launcher on one engine, for one spec. */
export class RawEngine {
  readonly docker: Docker;
  readonly #label: string;
  readonly #spec: ChallengeSpec;

  constructor(opts: { socketPath: string; label: string; spec: ChallengeSpec }) {
    this.docker = new Docker({ socketPath: opts.socketPath });
    this.#label = opts.label;
    this.#spec = opts.spec;
  }

  /** Launches one container until it answers; returns the id to remove and the phases. */
  async launch(): Promise<{ id: string; network: string; timing: RawTiming }> {
    const hex = randomBytes(12).toString('hex');
    const name = `bench-raw-${hex}`;
    const labels = { 'poseidon.test': this.#label };
    const t0 = performance.now();
    const net = await this.docker.createNetwork({
      Name: name, Driver: 'bridge', Internal: true, Labels: labels, CheckDuplicate: true,
      Options: { 'com.docker.network.bridge.name': `pzr${hex.slice(0, 12)}` },
    });
    const t1 = performance.now();
    const inst = { id: hex, challenge: this.#spec.id, owner: 'team:raw', generation: 1, epoch: 1, specHash: 'raw', expiresAt: Date.now() + 3_600_000 } as Instance;
    const plan = planContainer(inst, this.#spec, { owner: { managerId: 'raw', deployment: 'raw' }, image: this.#spec.image ?? 'busybox:1.35', flag: 'flag{raw}', publishAddress: '' });
    const opts = toCreateOptions({ ...plan, name, network: name, alias: name, labels });
    const c = await this.docker.createContainer(opts);
    const t2 = performance.now();
    await c.start();
    const t3 = performance.now();
    const cmd = readinessCommand(this.#spec);
    if (cmd) await this.#answer(c, cmd);
    const t4 = performance.now();
    return { id: c.id, network: net.id, timing: { totalMs: t4 - t0, networkMs: t1 - t0, createMs: t2 - t1, startMs: t3 - t2, readyMs: t4 - t3 } };
  }

  /** Runs `cmd` in `c` until it exits 0 (bounded: 60 s). */
  async #answer(c: Docker.Container, cmd: string[]): Promise<void> {
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const e = await c.exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
      const stream = await e.start({ hijack: true, stdin: false });
      await new Promise<void>((resolve) => { stream.on('end', resolve); stream.on('close', resolve); stream.on('error', () => resolve()); stream.resume(); });
      if ((await e.inspect()).ExitCode === 0) return;
    }
    throw new Error('raw launch: the service never answered in 60 s');
  }

  /** Removes a launched container and its network. */
  async remove(l: { id: string; network: string }): Promise<void> {
    await this.docker.getContainer(l.id).remove({ force: true, v: true }).catch(() => undefined);
    await this.docker.getNetwork(l.network).remove().catch(() => undefined);
  }

  /**
   * `count` launches with at most `concurrency` at once; resolves with the wall time until the
   * last answered (the removals come after, untimed).
   */
  async burst(count: number, concurrency: number): Promise<{ wallMs: number; timings: RawTiming[] }> {
    const launched: { id: string; network: string }[] = [];
    const timings: RawTiming[] = [];
    let next = 0;
    const t0 = performance.now();
    const lane = async (): Promise<void> => {
      while (next < count) {
        next++;
        const l = await this.launch();
        launched.push(l);
        timings.push(l.timing);
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
      return { wallMs: performance.now() - t0, timings };
    } finally {
      await removeAll(this, launched);
    }
  }
}

/** Removes launched objects, a few at a time. */
export async function removeAll(raw: RawEngine, launched: readonly { id: string; network: string }[]): Promise<void> {
  const queue = [...launched];
  await Promise.all(Array.from({ length: 4 }, async () => {
    for (let l = queue.shift(); l; l = queue.shift()) await raw.remove(l);
  }));
}
