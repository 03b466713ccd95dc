/**
 * The worker's instance reconciler: one instance id at a time, against this worker's engine.
 * It acts only on instances placed here (`worker` names this worker) and writes status only for
 * the placement it read (its epoch), so a worker that was partitioned and declared lost can
 * neither run nor report an instance placed elsewhere since. Containers of instances placed
 * elsewhere are stale and go (after the new placement runs, or a grace period: a drain is
 * make-before-break); containers nobody desires go only when the resync cleared them.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { readinessCommand } from '../core/container-plan.ts';
import { Codes, isPoseidonError, PoseidonError } from '../core/errors.ts';
import { FINAL_STATUSES, isPoolMember, wantsRunning, type Instance, type InstanceObservation } from '../core/instance.ts';
import type { Logger, ReconcileContext, ReconcileResult } from '../core/reconcile.ts';
import type { ContainerRuntime, ObservedContainer, ObservedNetwork, Ownership } from '../core/runtime.ts';
import type { Semaphore } from '../core/semaphore.ts';
import { CONFLICT, type Store } from '../core/store.ts';
import type { VersionInfo, VersionSource } from '../core/versions.ts';
import type { Exposure } from '../gateway/exposure.ts';
import type { FlagFiles } from './flag-files.ts';
import type { WorkerImages } from './images.ts';
import { launch, openFlag, resume, type Launched } from './launch.ts';
import type { NetworkPool } from './network-pool.ts';
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
  /** Internal networks made ahead of time (`network-pool.ts`); without it every launch makes its own. */
  networkPool?: NetworkPool;
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
/**
 * How long one pass keeps probing a container it just started before it hands the wait back to
 * the queue: most services answer within it, so an instance goes from pending to running in the
 * pass that launched it, with no status write or engine listing in between.
 */
const INLINE_READY_MS = 3000;
/** A container of one generation that exits this many times fails the instance. */
const MAX_CRASHES = 5;

interface Observed {
  containers: ObservedContainer[];
  /**
   * The instance's own networks, listed on first use: only removals and a resume need them, so a
   * launch's passes and a running instance's make one engine listing each, not two.
   */
  networks(): Promise<ObservedNetwork[]>;
}

/** `networks` lists once, when first asked. */
function observe(deps: WorkerReconcilerDeps, id: string, containers: ObservedContainer[]): Observed {
  let listed: Promise<ObservedNetwork[]> | undefined;
  return { containers, networks: () => (listed ??= deps.runtime.listNetworks(id)) };
}

/** See the module comment. Returns the reconcile function for `Controller`. */
export function workerReconciler(deps: WorkerReconcilerDeps) {
  /** Per-process crash counts by `<instance>:<epoch>:<generation>`: a hint that bounds crash loops. */
  const crashes = new Map<string, number>();
  return async (ctx: ReconcileContext, id: string): Promise<ReconcileResult> => {
    const now = ctx.now().getTime();
    const [inst, containers] = await Promise.all([deps.store.getInstance(id), deps.runtime.listContainers(id)]);
    const observed = observe(deps, id, containers);
    if (!inst || inst.worker !== deps.workerId || !wantsRunning(inst, now)) {
      // Nothing of it starts here any more: its crash counts and probe state go.
      for (const key of crashes.keys()) if (key.startsWith(`${id}:`)) crashes.delete(key);
      deps.readiness.forget(id);
    }
    if (!inst) {
      if (!deps.mayRemoveOrphan(id) || await empty(observed)) return {};
      await removeAll(deps, id, observed, 'orphan');
      return {};
    }
    if (inst.worker !== deps.workerId) return placedElsewhere(deps, inst, observed, now);
    if (!wantsRunning(inst, now)) return teardown(deps, inst, observed, now);
    return converge(deps, { inst, observed, now, crashes, signal: ctx.signal, clock: () => ctx.now().getTime() });
  };
}

async function empty(o: Observed): Promise<boolean> {
  return o.containers.length === 0 && (await o.networks()).length === 0;
}

/** Removes containers, then the pooled networks they were created on (each served one container). */
async function removeContainers(deps: WorkerReconcilerDeps, containers: readonly ObservedContainer[]): Promise<void> {
  for (const c of containers) await deps.runtime.removeContainer(c.id);
  for (const c of containers) if (c.network) await deps.runtime.removePoolNetwork(c.network);
}

async function removeAll(deps: WorkerReconcilerDeps, id: string, observed: Observed, why: string): Promise<void> {
  const routed = observed.containers.some((c) => c.state === 'running');
  const networks = await observed.networks();
  await removeContainers(deps, observed.containers);
  for (const n of networks) await deps.runtime.removeNetwork(n.id);
  await deps.flagFiles.remove(id);
  await deps.exposure.release(id);
  if (routed) deps.routesChanged();
  if (observed.containers.length + networks.length > 0) deps.log.info({ instance: id, containers: observed.containers.length, why }, 'instance removed from this worker');
}

/**
 * Placed on another worker (or nowhere): our copy is stale. While the new placement is still
 * starting it keeps serving (a drain moves instances make-before-break), for a bounded time.
 */
async function placedElsewhere(deps: WorkerReconcilerDeps, inst: Instance, observed: Observed, now: number): Promise<ReconcileResult> {
  if (await empty(observed)) return {};
  const grace = (inst.placedAt ?? 0) + (deps.moveGraceMs ?? 120_000) - now;
  const newOneStarting = inst.worker !== undefined && wantsRunning(inst, now) && inst.status !== 'running';
  if (newOneStarting && grace > 0) return { requeueAfterMs: Math.min(grace, 2000) };
  await removeAll(deps, inst.id, observed, inst.worker ? `moved to ${inst.worker}` : 'unplaced');
  return {};
}

async function teardown(deps: WorkerReconcilerDeps, inst: Instance, observed: Observed, now: number): Promise<ReconcileResult> {
  if (!(await empty(observed))) {
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

interface Pass {
  inst: Instance;
  observed: Observed;
  now: number;
  crashes: Map<string, number>;
  signal: AbortSignal;
  /** The time now (a pass that probed inline ends seconds after `now`). */
  clock(): number;
}

async function converge(deps: WorkerReconcilerDeps, p: Pass): Promise<ReconcileResult> {
  const { inst, observed, now } = p;
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
  await removeContainers(deps, stale);
  let launched: Launched | undefined;
  if (!container) {
    const result = await launchOrWait(deps, inst, version, now);
    if (!('container' in result)) return result;
    launched = result;
  } else if (container.state === 'created') {
    launched = await resume(deps, container, [...(await observed.networks()).map((n) => n.id), ...(container.network ? [container.network] : [])]);
  }
  return settle(deps, p, version, (launched?.container ?? container) as ObservedContainer, launched);
}

/** The pass's container exists: report what it is (crashed, starting, probing, running). */
async function settle(deps: WorkerReconcilerDeps, p: Pass, version: VersionInfo, container: ObservedContainer, launched: Launched | undefined): Promise<ReconcileResult> {
  const { inst, crashes } = p;
  let { now } = p;
  // A start the engine refuses leaves the container `created`: counted like a crash, or the
  // instance would wait forever without a reason.
  if (launched?.refused) return attemptFailed(deps, inst, container, now, crashes, startFailure(launched.refused));
  if (container.state === 'exited' || container.state === 'dead') return attemptFailed(deps, inst, container, now, crashes, exitFailure(container));
  if (container.state !== 'running') {
    // Restarting or paused: the engine's next event wakes the next pass.
    await write(deps, inst, { status: 'starting', reason: undefined }, now);
    return { requeueAfterMs: POLL_STARTING_MS };
  }
  // A claimed warm-pool member: ready since before the claim, it serves once it holds the owner's flag.
  const claimed = container.pooled === true && !isPoolMember(inst);
  if (claimed && version.spec.flag.file) {
    const delivered = await deliverFlag(deps, inst, now);
    if (delivered) return delivered;
  }
  const ready = claimed ? { kind: 'ready' as const } : await readiness(deps, inst, version, container, launched !== undefined ? p.signal : undefined);
  now = p.clock();
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
 * placement and generation (a restarted worker does not probe again), or a probe answers. With
 * `inline` (a container this pass started), it keeps probing with the probes' backoff for up to
 * INLINE_READY_MS, while probes answer (a probe without an answer means a busy engine or a
 * container that stopped: the queue's next pass lists it again) and until the signal aborts.
 * A stop or re-placement landing meanwhile waits for the pass (its write is fenced, so a
 * stale `running` is never written over it) and runs right after.
 */
async function readiness(deps: WorkerReconcilerDeps, inst: Instance, version: VersionInfo, container: ObservedContainer, inline?: AbortSignal): Promise<ReadinessResult> {
  const command = readinessCommand(version.spec);
  if (!command || inst.status === 'running') return { kind: 'ready' };
  const key = `${inst.id}:${inst.epoch}:${inst.generation}`;
  const timeout = version.spec.healthcheck?.timeoutSeconds ?? 30;
  const until = performance.now() + INLINE_READY_MS;
  for (;;) {
    const r = await deps.readiness.check(key, container.id, command, timeout);
    if (r.kind !== 'waiting' || !r.answered || !inline || inline.aborted || performance.now() + r.retryMs > until) return r;
    await sleep(r.retryMs, undefined, { signal: inline }).catch(() => undefined);
  }
}

/**
 * Writes the owner's flag into a claimed warm-pool member's flag file (in place: its container is
 * running); a wait while the manager has not sealed the owner's flag yet (its write wakes the next pass).
 */
async function deliverFlag(deps: WorkerReconcilerDeps, inst: Instance, now: number): Promise<ReconcileResult | undefined> {
  let flag: string;
  try {
    flag = openFlag(deps, inst);
  } catch (err) {
    if (!isPoseidonError(err, Codes.flagSeal)) throw err;
    await write(deps, inst, { status: 'starting', reason: inst.reason }, now);
    return { requeueAfterMs: 1000 };
  }
  if (await deps.flagFiles.rewrite(inst.id, flag)) deps.log.info({ instance: inst.id, challenge: inst.challenge }, 'claimed pool member: flag delivered');
  return undefined;
}

/** A container of the current placement, generation and version. */
function current(c: ObservedContainer, inst: Instance): boolean {
  return c.generation === inst.generation && c.specHash === inst.specHash && c.epoch === inst.epoch;
}

async function launchOrWait(deps: WorkerReconcilerDeps, inst: Instance, version: VersionInfo, now: number): Promise<Launched | ReconcileResult> {
  try {
    const launched = await deps.launches.run(() => launch(deps, inst, version));
    deps.log.info({ instance: inst.id, challenge: inst.challenge, generation: inst.generation, epoch: inst.epoch, started: !launched.refused }, 'container created');
    return launched;
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
