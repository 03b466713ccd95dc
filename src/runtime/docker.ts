import { readdir } from 'node:fs/promises';
import path from 'node:path';
import Docker from 'dockerode';
import { Codes, PoseidonError } from '../core/errors.ts';
import { INSTANCE_ID_PATTERN, POOL_NETWORK_PATTERN } from '../core/naming.ts';
import { POOL_OWNER_PREFIX } from '../core/instance.ts';
import { SILENT, type Logger } from '../core/reconcile.ts';
import {
  LABELS,
  type ContainerPlan,
  type ContainerRuntime,
  type ContainerState,
  type EngineEvent,
  type EngineInfo,
  type HealthState,
  type ImageFacts,
  type NetworkPlan,
  type ObservedContainer,
  type ObservedNetwork,
  type Ownership,
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

/** Runs `fn`, treating a failure whose message matches `pattern` as success (undefined). */
async function tolerateMessage<T>(pattern: RegExp, fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    if (pattern.test((err as Error).message)) return undefined;
    throw err;
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
  const epoch = Number(labels[LABELS.epoch] ?? 0);
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
    epoch: Number.isFinite(epoch) ? epoch : 0,
    specHash: labels[LABELS.specHash] ?? '',
    state: info.State as ContainerState,
    published,
  };
  const health = parseHealth(info.Status ?? '');
  if (health) c.health = health;
  // Only a pool network's name: the label names what a removal removes.
  if (POOL_NETWORK_PATTERN.test(labels[LABELS.network] ?? '')) c.network = labels[LABELS.network];
  if (exit?.[1] !== undefined) c.exitCode = Number(exit[1]);
  if ((labels[LABELS.owner] ?? '').startsWith(POOL_OWNER_PREFIX)) c.pooled = true;
  return c;
}

/** A container just created from `plan`, as a listing would show it. */
function planned(plan: ContainerPlan, id: string): ObservedContainer {
  return observe({ Id: id, Names: [`/${plan.name}`], Labels: plan.labels, State: 'created', Status: 'Created', Ports: [] } as unknown as Docker.ContainerInfo);
}

/** Label recording a network's shape, so a changed plan is noticed without an inspect. */
const NETWORK_MODE_LABEL = 'poseidon.network-mode';

/** `internal` (no route out), `routed` (bridge without NAT) or `nat` (egress), with its bridge name. */
function networkMode(plan: NetworkPlan): string {
  const kind = plan.internal ? 'internal' : plan.masquerade === false ? 'routed' : 'nat';
  return `${kind}/${plan.bridge}`;
}

/** Storage drivers whose containers take `--storage-opt size` (overlay2 only on xfs with pquota: tried, see `createContainer`). */
const QUOTA_DRIVERS = new Set(['devicemapper', 'btrfs', 'zfs', 'windowsfilter']);

/** The engine's message of a failed push/pull/build stream item. */
interface ProgressItem { error?: string; errorDetail?: { message?: string }; stream?: string }

interface RawEvent { Action?: string; Actor?: { Attributes?: Record<string, string> } }

/** One event line, or undefined when it is not a JSON object (events are hints: skip, never crash). */
export function parseEvent(line: string): RawEvent | undefined {
  try {
    const ev = JSON.parse(line) as unknown;
    return ev !== null && typeof ev === 'object' && !Array.isArray(ev) ? (ev as RawEvent) : undefined;
  } catch {
    return undefined;
  }
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

export interface DockerRuntimeOptions {
  socketPath?: string;
  docker?: Docker;
  log?: Logger;
}

/**
 * `ContainerRuntime` over one Docker engine (dockerode). Owns only objects labelled with its
 * manager id AND its deployment id; an object whose `poseidon.instance` label is not a valid
 * instance id is never listed (it is logged, once), so nothing downstream can turn a hostile
 * label into a path or a key.
 */
export class DockerRuntime implements ContainerRuntime {
  readonly docker: Docker;
  readonly owner: Ownership;
  readonly #log: Logger;
  readonly #warned = new Set<string>();
  readonly #facts = new Map<string, ImageFacts>();
  #info: EngineInfo | undefined;

  constructor(owner: Ownership, opts: DockerRuntimeOptions = {}) {
    this.owner = owner;
    this.docker = opts.docker ?? new Docker({ socketPath: opts.socketPath ?? '/var/run/docker.sock' });
    this.#log = opts.log ?? SILENT;
  }

  private labelFilter(instance?: string): string[] {
    const f = [`${LABELS.managedBy}=${this.owner.managerId}`, `${LABELS.deployment}=${this.owner.deployment}`];
    if (instance) f.push(`${LABELS.instance}=${instance}`);
    return f;
  }

  /** Whether a listed object's instance label is well-formed; logs a malformed one once. */
  #wellFormed(kind: string, objectId: string, label: string | undefined): boolean {
    if (label !== undefined && INSTANCE_ID_PATTERN.test(label)) return true;
    if (!this.#warned.has(objectId)) {
      if (this.#warned.size > 10_000) this.#warned.clear();
      this.#warned.add(objectId);
      this.#log.warn({ [kind]: objectId.slice(0, 12), label: JSON.stringify((label ?? '').slice(0, 64)) }, 'ignoring a managed object with a malformed instance label');
    }
    return false;
  }

  async listContainers(instance?: string): Promise<ObservedContainer[]> {
    if (instance !== undefined && !INSTANCE_ID_PATTERN.test(instance)) return [];
    try {
      const infos = await this.docker.listContainers({ all: true, filters: { label: this.labelFilter(instance) } });
      return infos.filter((i) => this.#wellFormed('container', i.Id, i.Labels?.[LABELS.instance])).map(observe);
    } catch (err) {
      throw runtimeError('list containers', err);
    }
  }

  async listNetworks(instance?: string): Promise<ObservedNetwork[]> {
    if (instance !== undefined && !INSTANCE_ID_PATTERN.test(instance)) return [];
    try {
      const nets = await this.docker.listNetworks({ filters: { label: this.labelFilter(instance) } });
      return nets
        .filter((n) => n.Labels?.[LABELS.pool] === undefined && this.#wellFormed('network', n.Id, n.Labels?.[LABELS.instance]))
        .map((n) => ({ id: n.Id, name: n.Name, instance: n.Labels?.[LABELS.instance] ?? '', created: n.Created, mode: n.Labels?.[NETWORK_MODE_LABEL] ?? '' }))
        .sort((a, b) => (a.created === b.created ? (a.id < b.id ? -1 : 1) : a.created < b.created ? -1 : 1));
    } catch (err) {
      throw runtimeError('list networks', err);
    }
  }

  async info(): Promise<EngineInfo> {
    if (this.#info) return this.#info;
    const i = await this.docker.info().catch((err: unknown) => { throw runtimeError('info', err); }) as {
      Name?: string; NCPU?: number; MemTotal?: number; Runtimes?: Record<string, unknown>; Driver?: string; ServerVersion?: string;
    };
    this.#info = {
      name: i.Name ?? 'docker', cpus: i.NCPU ?? 1, memoryBytes: i.MemTotal ?? 0, runtimes: Object.keys(i.Runtimes ?? { runc: {} }).sort(),
      diskQuota: QUOTA_DRIVERS.has(i.Driver ?? ''), version: i.ServerVersion ?? '',
    };
    return this.#info;
  }

  async exec(container: string, cmd: string[], timeoutMs: number): Promise<number | undefined> {
    const deadline = Date.now() + timeoutMs;
    const run = (async () => {
      const e = await this.docker.getContainer(container).exec({ Cmd: cmd, AttachStdout: false, AttachStderr: false });
      await e.start({ Detach: true, Tty: false });
      // Detached: the exit code is known once the engine says the command stopped running
      // (`ExitCode` is null until then).
      for (let wait = 10; Date.now() < deadline; wait = Math.min(wait * 2, 200)) {
        const info = await e.inspect();
        if (!info.Running && info.ExitCode !== null && info.ExitCode !== undefined) return info.ExitCode;
        await new Promise((r) => setTimeout(r, wait));
      }
      return undefined;
    })();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => { timer = setTimeout(() => resolve(undefined), timeoutMs); });
    try {
      return await Promise.race([run.catch((err: unknown) => { throw runtimeError(`exec in ${container.slice(0, 12)}`, err); }), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async ping(): Promise<void> {
    await this.docker.ping().catch((err: unknown) => { throw runtimeError('ping', err); });
  }

  async imageFacts(ref: string): Promise<ImageFacts> {
    const img = await this.docker.getImage(ref).inspect().catch((err: unknown) => { throw runtimeError(`inspect image ${ref}`, err); }) as {
      Id: string; Config?: { Volumes?: Record<string, unknown> | null; User?: string };
    };
    let facts = this.#facts.get(img.Id);
    if (!facts) {
      facts = { volumes: Object.keys(img.Config?.Volumes ?? {}).sort(), user: img.Config?.User ?? '' };
      if (this.#facts.size > 1000) this.#facts.clear();
      this.#facts.set(img.Id, facts);
    }
    return facts;
  }

  async ensureNetwork(plan: NetworkPlan): Promise<string> {
    const instance = plan.labels[LABELS.instance];
    const mode = networkMode(plan);
    let nets = (await this.listNetworks(instance)).filter((n) => n.name === plan.name);
    // A spec change (egress, leases) changes the network's shape: replace it, do not reuse it.
    for (const stale of nets.filter((n) => n.mode !== mode)) await this.removeNetwork(stale.id);
    nets = nets.filter((n) => n.mode === mode);
    if (nets.length === 0) {
      // The bridge name is unique per engine, so a racing create fails with "same bridge name":
      // the network exists, which is what we wanted (CheckDuplicate alone is racy).
      await tolerateMessage(/same bridge name|already exists/, () => tolerate('create network', [409], () =>
        this.docker.createNetwork({
          Name: plan.name, Driver: 'bridge', Internal: plan.internal, Labels: { ...plan.labels, [NETWORK_MODE_LABEL]: mode }, CheckDuplicate: true,
          Options: {
            // Named so the host firewall (src/runtime/firewall.ts) matches every instance bridge.
            'com.docker.network.bridge.name': plan.bridge,
            ...(plan.masquerade === false ? { 'com.docker.network.bridge.enable_ip_masquerade': 'false' } : {}),
          },
        }),
      ));
      nets = (await this.listNetworks(instance)).filter((n) => n.name === plan.name);
    }
    const [keep, ...dupes] = nets;
    if (!keep) throw new PoseidonError(Codes.runtime, `network ${plan.name} vanished after create`, { kind: 'transient' });
    // CheckDuplicate is best effort: concurrent creates can all succeed. Keep the oldest.
    for (const d of dupes) await this.removeNetwork(d.id);
    return keep.id;
  }

  async createPoolNetwork(name: string, bridge: string): Promise<string> {
    const mode = `internal/${bridge}`;
    try {
      const net = await this.docker.createNetwork({
        Name: name, Driver: 'bridge', Internal: true, CheckDuplicate: true,
        Labels: { [LABELS.managedBy]: this.owner.managerId, [LABELS.deployment]: this.owner.deployment, [LABELS.pool]: 'internal', [NETWORK_MODE_LABEL]: mode },
        Options: { 'com.docker.network.bridge.name': bridge },
      });
      return net.id;
    } catch (err) {
      throw runtimeError('create pool network', err);
    }
  }

  async removePoolNetwork(name: string): Promise<void> {
    if (!POOL_NETWORK_PATTERN.test(name)) return;
    const info = (await tolerate('inspect network', [404], () => this.docker.getNetwork(name).inspect())) as { Id: string; Labels?: Record<string, string> } | undefined;
    const labels = info?.Labels ?? {};
    if (!info || labels[LABELS.pool] === undefined || labels[LABELS.managedBy] !== this.owner.managerId || labels[LABELS.deployment] !== this.owner.deployment) return;
    await this.removeNetwork(info.Id);
  }

  async listPoolNetworks(): Promise<ObservedNetwork[]> {
    try {
      const nets = await this.docker.listNetworks({ filters: { label: [...this.labelFilter(), LABELS.pool] } });
      return nets.map((n) => ({ id: n.Id, name: n.Name, instance: '', created: n.Created, mode: n.Labels?.[NETWORK_MODE_LABEL] ?? '' }));
    } catch (err) {
      throw runtimeError('list pool networks', err);
    }
  }

  async createContainer(plan: ContainerPlan): Promise<ObservedContainer> {
    let created: Docker.Container | undefined;
    try {
      created = await tolerate('create container', [409], () => this.docker.createContainer(toCreateOptions(plan)));
    } catch (err) {
      // overlay2 takes a size only on xfs with pquota: learn it once, then create without.
      if (plan.diskBytes === undefined || !/storage-opt|quota/i.test((err as Error).message)) throw err;
      this.#log.warn({ err: (err as Error).message.slice(0, 200) }, 'this engine cannot bound the writable layer; creating without --storage-opt size');
      if (this.#info) this.#info = { ...this.#info, diskQuota: false };
      const { diskBytes: _d, ...unbounded } = plan;
      created = await tolerate('create container', [409], () => this.docker.createContainer(toCreateOptions(unbounded)));
    }
    // Created now: it is what the plan says (no listing). A 409 adopts the one holding the name.
    if (created) return planned(plan, created.id);
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
    // Looked up first: a join the engine refuses as already there still costs it work that grows
    // with the networks the container is on (~140 ms of dockerd CPU on a gateway of 100, `npm run
    // bench gateway-join`, against ~1 ms for the two inspects), and a launch on a pooled network
    // asks for a join the pool made.
    if (await this.#attached(network, container)) return;
    try {
      await this.docker.getNetwork(network).connect({ Container: container });
    } catch (err) {
      const msg = (err as DockerishError).json?.message ?? '';
      if (status(err) === 403 && msg.includes('already exists')) return;
      throw runtimeError(`connect ${container} to ${network}`, err);
    }
  }

  /**
   * Whether `container` (a name or an id, resolved by the engine as `connect` would) has an
   * endpoint on `network`. A container that does not exist is not attached: the join then fails
   * with the engine's own error.
   */
  async #attached(network: string, container: string): Promise<boolean> {
    const [net, ctr] = await Promise.all([
      this.docker.getNetwork(network).inspect().catch((err: unknown) => { throw runtimeError(`inspect network ${network}`, err); }) as Promise<{ Containers?: Record<string, unknown> }>,
      tolerate('inspect container', [404], () => this.docker.getContainer(container).inspect()),
    ]);
    return ctr !== undefined && net.Containers?.[ctr.Id] !== undefined;
  }

  async imageExists(ref: string): Promise<boolean> {
    return (await tolerate('inspect image', [404], () => this.docker.getImage(ref).inspect())) !== undefined;
  }

  async pullImage(ref: string): Promise<void> {
    const stream = await this.docker.pull(ref).catch((err: unknown) => { throw runtimeError(`pull ${ref}`, err); });
    await this.#follow(stream, `pull ${ref}`);
  }

  async pushImage(ref: string, target: string): Promise<void> {
    const at = target.lastIndexOf(':');
    const [repo, tag] = at > target.lastIndexOf('/') ? [target.slice(0, at), target.slice(at + 1)] : [target, 'latest'];
    await this.docker.getImage(ref).tag({ repo, tag }).catch((err: unknown) => { throw runtimeError(`tag ${ref} as ${target}`, err); });
    // Engines before API 1.42 refuse a push without X-Registry-Auth, even to an open registry:
    // send an empty one (credentials, when needed, come from the engine's own login).
    const stream = await this.docker.getImage(target).push({ authconfig: {} }).catch((err: unknown) => { throw runtimeError(`push ${target}`, err); });
    await this.#follow(stream, `push ${target}`);
  }

  /** Waits for a progress stream; the engine reports failures as stream items, not HTTP errors. */
  #follow(stream: NodeJS.ReadableStream, op: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.docker.modem.followProgress(stream, (err: Error | null, items: ProgressItem[]) => {
        const failed = err?.message ?? items.find((i) => i.error || i.errorDetail)?.error ?? items.find((i) => i.errorDetail)?.errorDetail?.message;
        if (failed) reject(new PoseidonError(Codes.runtime, `docker ${op} failed: ${failed}`, { kind: 'transient' }));
        else resolve();
      });
    });
  }

  async buildImage(context: string, dockerfile: string, tag: string, labels: Record<string, string>, opts: { network?: boolean } = {}): Promise<void> {
    const src = await contextFiles(context);
    // No network for RUN steps unless the challenge asks: no metadata service, no LAN, no Internet.
    const stream = await this.docker
      .buildImage({ context, src }, { t: tag, dockerfile, labels, rm: true, forcerm: true, networkmode: opts.network ? 'default' : 'none' })
      .catch((err: unknown) => { throw runtimeError(`build ${tag}`, err); });
    const output: string[] = [];
    await new Promise<void>((resolve, reject) => {
      this.docker.modem.followProgress(stream, (err: Error | null, items: ProgressItem[]) => {
        const failed = err?.message ?? items.find((i) => i.error)?.error;
        if (failed) reject(new PoseidonError(Codes.imageNotReady, `build of ${tag} failed: ${failed}\n${output.join('')}`, { kind: 'terminal' }));
        else resolve();
      }, (item: ProgressItem) => { if (item.stream) output.push(item.stream); });
    });
  }

  async networksOf(container: string): Promise<string[]> {
    const info = await tolerate('inspect container', [404], () => this.docker.getContainer(container).inspect());
    return Object.keys(info?.NetworkSettings?.Networks ?? {});
  }

  watchEvents(onEvent: (ev: EngineEvent) => void, signal: AbortSignal): void {
    const subscribe = (): void => {
      if (signal.aborted) return;
      this.docker.getEvents({ filters: { label: this.labelFilter() } }).then((stream) => {
        signal.addEventListener('abort', () => (stream as unknown as { destroy(): void }).destroy(), { once: true });
        let buf = '';
        stream.on('data', (chunk: Buffer) => {
          buf += chunk.toString('utf8');
          // A line longer than any event means a broken stream: drop it rather than grow without bound.
          if (buf.length > 1 << 20) buf = '';
          let nl;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            const ev = parseEvent(line);
            // Health probes are execs: every probe would wake a reconcile. health_status covers them.
            if (!ev || ev.Action?.startsWith('exec_')) continue;
            const id = ev.Actor?.Attributes?.[LABELS.instance];
            if (id && INSTANCE_ID_PATTERN.test(id)) onEvent({ instance: id, action: ev.Action ?? '' });
          }
        });
        stream.on('close', () => setTimeout(subscribe, 1000).unref());
        stream.on('error', () => undefined);
      }, () => setTimeout(subscribe, 1000).unref());
    };
    subscribe();
  }
}
