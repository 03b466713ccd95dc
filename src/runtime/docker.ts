import { readdir } from 'node:fs/promises';
import path from 'node:path';
import Docker from 'dockerode';
import { Codes, PoseidonError } from '../core/errors.ts';
import {
  LABELS,
  type ContainerPlan,
  type ContainerRuntime,
  type ContainerState,
  type HealthState,
  type NetworkPlan,
  type ObservedContainer,
  type ObservedNetwork,
} from '../core/runtime.ts';
import { toCreateOptions } from './docker-create.ts';

interface DockerishError { statusCode?: number; message?: string; json?: { message?: string } }

function status(err: unknown): number | undefined {
  return (err as DockerishError | null)?.statusCode;
}

/** Wraps an engine failure as a transient runtime error naming the operation. */
function runtimeError(op: string, err: unknown): PoseidonError {
  const msg = (err as DockerishError | null)?.json?.message ?? (err as Error | null)?.message ?? String(err);
  return new PoseidonError(Codes.runtime, `docker ${op} failed: ${msg}`, { kind: 'transient', cause: err });
}

/** Runs `fn`, treating the listed HTTP statuses from the engine as success (undefined). */
async function tolerate<T>(op: string, ok: number[], fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    if (ok.includes(status(err) ?? 0)) return undefined;
    throw runtimeError(op, err);
  }
}

function parseHealth(statusText: string): HealthState | undefined {
  if (statusText.includes('(health: starting)')) return 'starting';
  if (statusText.includes('(unhealthy)')) return 'unhealthy';
  if (statusText.includes('(healthy)')) return 'healthy';
  return undefined;
}

function observe(info: Docker.ContainerInfo): ObservedContainer {
  const labels = info.Labels ?? {};
  const published: ObservedContainer['published'] = {};
  for (const p of info.Ports ?? []) {
    if (p.PublicPort && p.IP && !p.IP.includes(':')) published[p.PrivatePort] = { host: p.IP, port: p.PublicPort };
  }
  const exit = /Exited \((-?\d+)\)/.exec(info.Status ?? '');
  const c: ObservedContainer = {
    id: info.Id,
    name: (info.Names?.[0] ?? '').replace(/^\//, ''),
    instance: labels[LABELS.instance] ?? '',
    challenge: labels[LABELS.challenge] ?? '',
    generation: Number(labels[LABELS.generation] ?? 0),
    specHash: labels[LABELS.specHash] ?? '',
    state: info.State as ContainerState,
    published,
  };
  const health = parseHealth(info.Status ?? '');
  if (health) c.health = health;
  if (exit?.[1] !== undefined) c.exitCode = Number(exit[1]);
  return c;
}

/** Label recording a network's shape, so a changed plan is noticed without an inspect. */
const NETWORK_MODE_LABEL = 'poseidon.network-mode';

/** `internal` (no route out), `routed` (bridge without NAT) or `nat` (egress). */
function networkMode(plan: NetworkPlan): string {
  if (plan.internal) return 'internal';
  return plan.masquerade === false ? 'routed' : 'nat';
}

/** Lists the files of a build context (relative paths), skipping nothing but `.git`. */
async function contextFiles(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(path.join(dir, prefix), { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.name === '.git') continue;
    if (entry.isDirectory()) out.push(...(await contextFiles(dir, rel)));
    else out.push(rel);
  }
  return out.sort();
}

/** `ContainerRuntime` over one Docker engine (dockerode). Owns only objects labelled with `managerId`. */
export class DockerRuntime implements ContainerRuntime {
  readonly docker: Docker;

  constructor(private readonly managerId: string, opts: { socketPath?: string; docker?: Docker } = {}) {
    this.docker = opts.docker ?? new Docker({ socketPath: opts.socketPath ?? '/var/run/docker.sock' });
  }

  private labelFilter(instance?: string): string[] {
    const f = [`${LABELS.managedBy}=${this.managerId}`];
    if (instance) f.push(`${LABELS.instance}=${instance}`);
    return f;
  }

  async listContainers(instance?: string): Promise<ObservedContainer[]> {
    try {
      const infos = await this.docker.listContainers({ all: true, filters: { label: this.labelFilter(instance) } });
      return infos.map(observe);
    } catch (err) {
      throw runtimeError('list containers', err);
    }
  }

  async listNetworks(instance?: string): Promise<ObservedNetwork[]> {
    try {
      const nets = await this.docker.listNetworks({ filters: { label: this.labelFilter(instance) } });
      return nets
        .map((n) => ({ id: n.Id, name: n.Name, instance: n.Labels?.[LABELS.instance] ?? '', created: n.Created, mode: n.Labels?.[NETWORK_MODE_LABEL] ?? '' }))
        .sort((a, b) => (a.created === b.created ? (a.id < b.id ? -1 : 1) : a.created < b.created ? -1 : 1));
    } catch (err) {
      throw runtimeError('list networks', err);
    }
  }

  async ensureNetwork(plan: NetworkPlan): Promise<string> {
    const instance = plan.labels[LABELS.instance];
    const mode = networkMode(plan);
    let nets = (await this.listNetworks(instance)).filter((n) => n.name === plan.name);
    // A spec change (egress, leases) changes the network's shape: replace it, do not reuse it.
    for (const stale of nets.filter((n) => n.mode !== mode)) await this.removeNetwork(stale.id);
    nets = nets.filter((n) => n.mode === mode);
    if (nets.length === 0) {
      await tolerate('create network', [409], () =>
        this.docker.createNetwork({
          Name: plan.name, Driver: 'bridge', Internal: plan.internal, Labels: { ...plan.labels, [NETWORK_MODE_LABEL]: mode }, CheckDuplicate: true,
          ...(plan.masquerade === false ? { Options: { 'com.docker.network.bridge.enable_ip_masquerade': 'false' } } : {}),
        }),
      );
      nets = (await this.listNetworks(instance)).filter((n) => n.name === plan.name);
    }
    const [keep, ...dupes] = nets;
    if (!keep) throw new PoseidonError(Codes.runtime, `network ${plan.name} vanished after create`, { kind: 'transient' });
    // CheckDuplicate is best effort: concurrent creates can all succeed. Keep the oldest.
    for (const d of dupes) await this.removeNetwork(d.id);
    return keep.id;
  }

  async createContainer(plan: ContainerPlan): Promise<ObservedContainer> {
    await tolerate('create container', [409], () => this.docker.createContainer(toCreateOptions(plan)));
    const [found] = await this.docker.listContainers({ all: true, filters: { name: [`^/${plan.name}$`] } }).catch((err: unknown) => {
      throw runtimeError('list containers', err);
    });
    if (!found) throw new PoseidonError(Codes.runtime, `container ${plan.name} vanished after create`, { kind: 'transient' });
    return observe(found);
  }

  async startContainer(id: string): Promise<void> {
    await tolerate('start container', [304], () => this.docker.getContainer(id).start());
  }

  async removeContainer(id: string): Promise<void> {
    await tolerate('remove container', [404, 409], () => this.docker.getContainer(id).remove({ force: true, v: true }));
  }

  async removeNetwork(id: string): Promise<void> {
    const net = this.docker.getNetwork(id);
    const info = (await tolerate('inspect network', [404], () => net.inspect())) as { Containers?: Record<string, unknown> } | undefined;
    if (!info) return;
    for (const container of Object.keys(info.Containers ?? {})) {
      await tolerate('disconnect', [404, 403], () => net.disconnect({ Container: container, Force: true }));
    }
    await tolerate('remove network', [404], () => net.remove());
  }

  async connect(network: string, container: string): Promise<void> {
    try {
      await this.docker.getNetwork(network).connect({ Container: container });
    } catch (err) {
      const msg = (err as DockerishError).json?.message ?? '';
      if (status(err) === 403 && msg.includes('already exists')) return;
      throw runtimeError(`connect ${container} to ${network}`, err);
    }
  }

  async imageExists(ref: string): Promise<boolean> {
    return (await tolerate('inspect image', [404], () => this.docker.getImage(ref).inspect())) !== undefined;
  }

  async pullImage(ref: string): Promise<void> {
    const stream = await this.docker.pull(ref).catch((err: unknown) => { throw runtimeError(`pull ${ref}`, err); });
    await new Promise<void>((resolve, reject) => {
      this.docker.modem.followProgress(stream, (err: Error | null) => (err ? reject(runtimeError(`pull ${ref}`, err)) : resolve()));
    });
  }

  async buildImage(context: string, dockerfile: string, tag: string, labels: Record<string, string>): Promise<void> {
    const src = await contextFiles(context);
    const stream = await this.docker
      .buildImage({ context, src }, { t: tag, dockerfile, labels, rm: true, forcerm: true })
      .catch((err: unknown) => { throw runtimeError(`build ${tag}`, err); });
    const output: string[] = [];
    await new Promise<void>((resolve, reject) => {
      this.docker.modem.followProgress(stream, (err: Error | null, items: { error?: string; stream?: string }[]) => {
        const failed = err?.message ?? items.find((i) => i.error)?.error;
        if (failed) reject(new PoseidonError(Codes.imageNotReady, `build of ${tag} failed: ${failed}\n${output.join('')}`, { kind: 'terminal' }));
        else resolve();
      }, (item: { stream?: string }) => { if (item.stream) output.push(item.stream); });
    });
  }

  async networksOf(container: string): Promise<string[]> {
    const info = await tolerate('inspect container', [404], () => this.docker.getContainer(container).inspect());
    return Object.keys(info?.NetworkSettings?.Networks ?? {});
  }

  watchEvents(onInstance: (instance: string) => void, signal: AbortSignal): void {
    const subscribe = (): void => {
      if (signal.aborted) return;
      this.docker.getEvents({ filters: { label: [`${LABELS.managedBy}=${this.managerId}`] } }).then((stream) => {
        signal.addEventListener('abort', () => (stream as unknown as { destroy(): void }).destroy(), { once: true });
        let buf = '';
        stream.on('data', (chunk: Buffer) => {
          buf += chunk.toString('utf8');
          let nl;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            const ev = JSON.parse(line) as { Action?: string; Actor?: { Attributes?: Record<string, string> } };
            // Health probes are execs: every probe would wake a reconcile. health_status covers them.
            if (ev.Action?.startsWith('exec_')) continue;
            const id = ev.Actor?.Attributes?.[LABELS.instance];
            if (id) onInstance(id);
          }
        });
        stream.on('close', () => setTimeout(subscribe, 1000).unref());
        stream.on('error', () => undefined);
      }, () => setTimeout(subscribe, 1000).unref());
    };
    subscribe();
  }
}
