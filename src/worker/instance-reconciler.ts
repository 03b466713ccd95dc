/**
 * The worker's instance reconciler: one instance id at a time, against this worker's engine.
 * It acts only on instances placed here (`worker` names this worker) and writes status only for
 * the placement it read (its epoch), so a worker that was partitioned and declared lost can
 * neither run nor report an instance placed elsewhere since. Containers of instances placed
 * elsewhere are stale and go (after the new placement runs, or a grace period: a drain is
 * make-before-break); containers nobody desires go only when the resync cleared them.
 */
import { planContainer, planNetwork, readinessCommand } from '../core/container-plan.ts';
import { Codes, isPoseidonError, PoseidonError } from '../core/errors.ts';
import { FINAL_STATUSES, wantsRunning, type Instance, type InstanceObservation } from '../core/instance.ts';
import type { Logger, ReconcileContext, ReconcileResult } from '../core/reconcile.ts';
import type { ContainerRuntime, ObservedContainer, ObservedNetwork, Ownership } from '../core/runtime.ts';
import { parseSealedFlag, unseal } from '../core/seal.ts';
import type { Semaphore } from '../core/semaphore.ts';
import { CONFLICT, type Store } from '../core/store.ts';
import type { VersionInfo, VersionSource } from '../core/versions.ts';
import type { Exposure } from '../gateway/exposure.ts';
import type { FlagFiles } from './flag-files.ts';
import type { WorkerImages } from './images.ts';
import type { ReadinessProbes, ReadinessResult } from './readiness.ts';

export interface WorkerReconcilerDeps {
  workerId: string;
  owner: Ownership;
  store: Store;
  runtime: ContainerRuntime;
  versions: VersionSource;
  images: WorkerImages;
  flagFiles: FlagFiles;
  /** PEM private key that opens flags sealed for this worker. */
  privateKey: string;
  log: Logger;
  /** Publish every port on this loopback address (development); '' for none. */
  publishAddress: string;
  /** A container (the host's Traefik ingress, or the single-host gateway) joined to every instance network. */
  gatewayContainer?: string;
  /** Port leases of this host and the endpoint URLs of leased ports. */
  exposure: Exposure;
  /** Bounds concurrent container creations on this engine. */
  launches: Semaphore;
  /** Readiness probes of this engine. */
  readiness: ReadinessProbes;
  /** Whether the last resync cleared `id` (no record) for removal: events never bypass the breaker. */
  mayRemoveOrphan(id: string): boolean;
  /** An instance entered or left `running` here (the host's ingress routes change). */
  routesChanged(): void;
  /** How long a moved instance's old container stays while its new one starts (default 120 s). */
  moveGraceMs?: number;
}

const POLL_STARTING_MS = 500;
/** A container of one generation that exits this many times fails the instance. */
const MAX_CRASHES = 5;

interface Observed {
  containers: ObservedContainer[];
  networks: ObservedNetwork[];
}

/** See the module comment. Returns the reconcile function for `Controller`. */
export function workerReconciler(deps: WorkerReconcilerDeps) {
  /** Per-process crash counts by `<instance>:<epoch>:<generation>`: a hint that bounds crash loops. */
  const crashes = new Map<string, number>();
  return async (ctx: ReconcileContext, id: string): Promise<ReconcileResult> => {
    const now = ctx.now().getTime();
    const inst = await deps.store.getInstance(id);
    const observed: Observed = { containers: await deps.runtime.listContainers(id), networks: await deps.runtime.listNetworks(id) };
    if (!inst) {
      if (!deps.mayRemoveOrphan(id) || empty(observed)) return {};
      await removeAll(deps, id, observed, 'orphan');
      return {};
    }
    if (inst.worker !== deps.workerId) return placedElsewhere(deps, inst, observed, now);
    if (!wantsRunning(inst, now)) {
      for (const key of crashes.keys()) if (key.startsWith(`${id}:`)) crashes.delete(key);
      return teardown(deps, inst, observed, now);
    }
    return converge(deps, inst, observed, now, crashes);
  };
}

function empty(o: Observed): boolean {
  return o.containers.length + o.networks.length === 0;
}

async function removeAll(deps: WorkerReconcilerDeps, id: string, observed: Observed, why: string): Promise<void> {
  const routed = observed.containers.some((c) => c.state === 'running');
  for (const c of observed.containers) await deps.runtime.removeContainer(c.id);
  for (const n of observed.networks) await deps.runtime.removeNetwork(n.id);
  await deps.flagFiles.remove(id);
  await deps.exposure.release(id);
  if (routed) deps.routesChanged();
  if (observed.containers.length + observed.networks.length > 0) deps.log.info({ instance: id, containers: observed.containers.length, why }, 'instance removed from this worker');
}

/**
 * Placed on another worker (or nowhere): our copy is stale. While the new placement is still
 * starting it keeps serving (a drain moves instances make-before-break), for a bounded time.
 */
async function placedElsewhere(deps: WorkerReconcilerDeps, inst: Instance, observed: Observed, now: number): Promise<ReconcileResult> {
  if (empty(observed)) return {};
  const grace = (inst.placedAt ?? 0) + (deps.moveGraceMs ?? 120_000) - now;
  const newOneStarting = inst.worker !== undefined && wantsRunning(inst, now) && inst.status !== 'running';
  if (newOneStarting && grace > 0) return { requeueAfterMs: Math.min(grace, 2000) };
  await removeAll(deps, inst.id, observed, inst.worker ? `moved to ${inst.worker}` : 'unplaced');
  return {};
}

async function teardown(deps: WorkerReconcilerDeps, inst: Instance, observed: Observed, now: number): Promise<ReconcileResult> {
  if (!empty(observed)) {
    if (!FINAL_STATUSES.has(inst.status)) await write(deps, inst, { status: 'stopping' }, now);
    await removeAll(deps, inst.id, observed, inst.desired === 'stopped' ? 'stopped' : 'not desired');
  }
  if (FINAL_STATUSES.has(inst.status) && inst.finishedAt !== undefined) return {};
  const expired = inst.desired === 'running' && now >= inst.expiresAt;
  const status = inst.status === 'failed' ? 'failed' : 'stopped';
  const reason = status === 'failed' ? inst.reason : expired ? 'expired' : 'stopped on request';
  await write(deps, inst, { status, reason, endpoints: [], finishedAt: now }, now);
  return {};
}

async function converge(deps: WorkerReconcilerDeps, inst: Instance, observed: Observed, now: number, crashes: Map<string, number>): Promise<ReconcileResult> {
  const version = await deps.versions.version(inst.specHash);
  if (!version) return wait(deps, inst, `version ${inst.specHash} is not known on worker ${deps.workerId} yet`, now, 1000);
  const stale = observed.containers.filter((c) => !current(c, inst));
  let container = observed.containers.find((c) => current(c, inst));
  if (!container) {
    // The image first: a rollout keeps the old container serving while the new image is pulled.
    const image = deps.images.ensure(version);
    if (image.state === 'failed') return fail(deps, inst, `image ${version.image} is not available on worker ${deps.workerId}: ${image.error ?? 'failed'}`, now);
    if (image.state !== 'present') return wait(deps, inst, `preparing image ${version.image}`, now, 1000);
  }
  for (const c of stale) await deps.runtime.removeContainer(c.id);
  if (!container) {
    const launched = await launchOrWait(deps, inst, version, now);
    if (!('container' in launched)) return launched;
    container = launched.container;
  }
  if (container.state === 'created') {
    // A start the engine refuses (no such user, a missing entrypoint) leaves the container
    // `created`: counted like a crash, or the instance would wait forever without a reason.
    const refused = await deps.runtime.startContainer(container.id).then(() => undefined, (err: unknown) => err as Error);
    if (refused) return attemptFailed(deps, inst, container, now, crashes, startFailure(refused));
  }
  if (container.state === 'exited' || container.state === 'dead') return attemptFailed(deps, inst, container, now, crashes, exitFailure(container));
  if (container.state !== 'running') {
    // Created or restarting: the engine's start event wakes the next pass.
    await write(deps, inst, { status: 'starting', reason: undefined }, now);
    return { requeueAfterMs: POLL_STARTING_MS };
  }
  const ready = await readiness(deps, inst, version, container);
  if (ready.kind === 'failed') return fail(deps, inst, ready.reason, now);
  if (ready.kind === 'waiting') {
    await write(deps, inst, { status: 'starting', reason: undefined }, now);
    return { requeueAfterMs: ready.retryMs };
  }
  // Docker's health check is liveness only: shown, never a reason to fail (load looks the same).
  const reason = container.health === 'unhealthy' ? 'health check failing (the service stopped answering its check)' : undefined;
  await write(deps, inst, { status: 'running', reason, endpoints: deps.exposure.observedEndpoints(inst, version.spec, container) }, now);
  return { requeueAfterMs: Math.max(0, inst.expiresAt - now) };
}

/**
 * Whether the container serves: no health check, or already reported running for this
 * placement and generation (a restarted worker does not probe again), or a probe answers now.
 */
async function readiness(deps: WorkerReconcilerDeps, inst: Instance, version: VersionInfo, container: ObservedContainer): Promise<ReadinessResult> {
  const command = readinessCommand(version.spec);
  if (!command || inst.status === 'running') return { kind: 'ready' };
  return deps.readiness.check(`${inst.id}:${inst.epoch}:${inst.generation}`, container.id, command, version.spec.healthcheck?.timeoutSeconds ?? 30);
}

/** A container of the current placement, generation and version. */
function current(c: ObservedContainer, inst: Instance): boolean {
  return c.generation === inst.generation && c.specHash === inst.specHash && c.epoch === inst.epoch;
}

async function launchOrWait(deps: WorkerReconcilerDeps, inst: Instance, version: VersionInfo, now: number): Promise<{ container: ObservedContainer } | ReconcileResult> {
  try {
    return { container: await deps.launches.run(() => launch(deps, inst, version)) };
  } catch (err) {
    // No port lease: a full range waits (with its reason shown), a missing range fails the instance.
    if (isPoseidonError(err, Codes.noPort)) {
      if (err.kind === 'terminal') return fail(deps, inst, err.message, now);
      return wait(deps, inst, err.message, now, 2000);
    }
    if (isPoseidonError(err, Codes.flagSeal)) return wait(deps, inst, err.message, now, 1000);
    // Show why (address pool exhausted, engine down, ...) instead of a silent pending.
    await write(deps, inst, { reason: `launch failed: ${(err as Error).message}` }, now);
    throw err;
  }
}

async function launch(deps: WorkerReconcilerDeps, inst: Instance, version: VersionInfo): Promise<ObservedContainer> {
  const { spec } = version;
  const flag = openFlag(deps, inst);
  // Leases first: an instance waiting for a port holds no network meanwhile.
  const leased = await deps.exposure.leasesFor(inst, spec);
  const network = await deps.runtime.ensureNetwork(planNetwork(inst, spec, deps.owner, deps.publishAddress !== ''));
  if (deps.gatewayContainer) await deps.runtime.connect(network, deps.gatewayContainer);
  const flagFileHostPath = spec.flag.file ? await deps.flagFiles.write(inst.id, flag) : undefined;
  const [facts, info] = await Promise.all([deps.runtime.imageFacts(version.image), deps.runtime.info()]);
  const plan = planContainer(inst, spec, {
    owner: deps.owner, image: version.image, flag, publishAddress: deps.publishAddress, imageVolumes: facts.volumes, diskQuota: info.diskQuota,
    ...(flagFileHostPath ? { flagFileHostPath } : {}), ...(Object.keys(leased).length ? { leased } : {}),
  });
  const created = await deps.runtime.createContainer({ ...plan, network });
  deps.log.info({ instance: inst.id, challenge: inst.challenge, generation: inst.generation, epoch: inst.epoch }, 'container created');
  return created;
}

/** The flag the manager sealed for this worker, placement and version. */
function openFlag(deps: WorkerReconcilerDeps, inst: Instance): string {
  const field = parseSealedFlag(inst.sealedFlag);
  if (!field || field.specHash !== inst.specHash) {
    throw new PoseidonError(Codes.flagSeal, 'waiting for the manager to seal the flag for this placement', { kind: 'waiting' });
  }
  try {
    return unseal(deps.privateKey, field.sealed, { instance: inst.id, epoch: inst.epoch, worker: deps.workerId });
  } catch {
    throw new PoseidonError(Codes.flagSeal, 'the sealed flag does not open with this worker\'s key (re-registered with a new key?); waiting for a new seal', { kind: 'waiting' });
  }
}

/** How a failed attempt to run a container is reported: while retrying, and once given up. */
interface AttemptFailure {
  retrying: string;
  final(attempts: number): string;
}

function exitFailure(c: ObservedContainer): AttemptFailure {
  const code = c.exitCode ?? 'unknown';
  return { retrying: `container exited with code ${code}; recreating`, final: (n) => `container exited ${n} times (last code ${code})` };
}

function startFailure(err: Error): AttemptFailure {
  const why = err.message.replace(/^docker start container failed: /, '');
  return { retrying: `container failed to start: ${why}; recreating`, final: (n) => `container failed to start ${n} times: ${why}` };
}

/** The container of this generation exited or could not start: remove it and retry, failing the instance after MAX_CRASHES. */
async function attemptFailed(deps: WorkerReconcilerDeps, inst: Instance, c: ObservedContainer, now: number, crashes: Map<string, number>, failure: AttemptFailure): Promise<ReconcileResult> {
  await deps.runtime.removeContainer(c.id);
  const key = `${inst.id}:${inst.epoch}:${inst.generation}`;
  const n = (crashes.get(key) ?? 0) + 1;
  crashes.set(key, n);
  if (n >= MAX_CRASHES) {
    crashes.delete(key);
    return fail(deps, inst, failure.final(n), now);
  }
  await write(deps, inst, { status: 'starting', reason: failure.retrying }, now);
  throw new PoseidonError(Codes.containerExited, failure.retrying, { kind: 'transient' });
}

async function wait(deps: WorkerReconcilerDeps, inst: Instance, reason: string, now: number, ms: number): Promise<ReconcileResult> {
  if (inst.status !== 'running') await write(deps, inst, { status: 'pending', reason }, now);
  return { requeueAfterMs: ms };
}

async function fail(deps: WorkerReconcilerDeps, inst: Instance, reason: string, now: number): Promise<ReconcileResult> {
  deps.log.warn({ instance: inst.id, reason }, 'instance failed');
  await write(deps, inst, { status: 'failed', reason }, now);
  // Requeue at once: a failed instance is no longer desired, so the next pass tears it down.
  return { requeueAfterMs: 0 };
}

/**
 * Writes the observed fields that differ from the record, only if the record is still the one
 * this pass read: same placement (epoch), generation and desired state. A restart, stop or
 * re-placement that landed meanwhile wins, and its change notification runs the next pass.
 */
async function write(deps: WorkerReconcilerDeps, inst: Instance, fields: InstanceObservation, now: number): Promise<void> {
  const changed = Object.entries(fields).some(([k, v]) => JSON.stringify(inst[k as keyof Instance]) !== JSON.stringify(v));
  if (!changed) return;
  const updated = await deps.store.compareAndUpdate(inst.id, { epoch: inst.epoch, generation: inst.generation, desired: inst.desired }, fields, now);
  if (updated === CONFLICT || !updated) return;
  if (fields.status && (fields.status === 'running') !== (inst.status === 'running')) deps.routesChanged();
  Object.assign(inst, updated);
}
