import type { Catalog, CatalogEntry } from '../catalog/catalog.ts';
import { planContainer, planNetwork } from '../core/container-plan.ts';
import { Codes, isPoseidonError, PoseidonError } from '../core/errors.ts';
import { deriveFlag, flagDigest } from '../core/flag.ts';
import { FINAL_STATUSES, wantsRunning, type Endpoint, type Instance, type InstanceObservation } from '../core/instance.ts';
import { plannedEndpoints } from '../core/naming.ts';
import type { ContainerRuntime, ObservedContainer, ObservedNetwork } from '../core/runtime.ts';
import { CONFLICT, type Store } from '../core/store.ts';
import { versionToRun } from '../catalog/rollout-hook.ts';
import type { FlagFiles } from './flag-files.ts';
import type { Exposure } from '../gateway/exposure.ts';
import type { Semaphore } from './semaphore.ts';
import type { Logger, ReconcileContext, ReconcileResult } from '../core/reconcile.ts';

export interface InstanceReconcilerDeps {
  store: Store;
  runtime: ContainerRuntime;
  catalog: Catalog;
  flagFiles: FlagFiles;
  log: Logger;
  settings: {
    managerId: string;
    flagSecret: string;
    baseDomain: string;
    publishAddress: string;
    gatewayContainer?: string;
    retentionMs: number;
    /** How long an issued flag stays verifiable (its digest is recorded at launch). */
    flagRetentionMs: number;
  };
  /**
   * Whether objects of an id with no record may be removed now. The resync clears orphans only
   * when the circuit breaker allows; engine events about unknown ids must not bypass it.
   */
  mayRemoveOrphan(id: string): boolean;
  /** Called when an instance enters or leaves `running` (the gateway must re-render). */
  onRoutesChanged(): void;
  /** Bounds concurrent container creations on this engine, so a burst never thrashes it. */
  launches: Semaphore;
  /** Port leases and player-facing endpoint URLs (gateway); without it, no leases and plain URLs. */
  exposure?: Exposure;
}

const POLL_STARTING_MS = 500;
/** A container of one generation that exits this many times fails the instance. */
const MAX_CRASHES = 5;

/** Per-process memory of crashes by `<instance>:<generation>`: a hint that bounds crash loops. */
type Crashes = Map<string, number>;

interface Observed {
  containers: ObservedContainer[];
  networks: ObservedNetwork[];
}

/**
 * Reconciles one instance id: reads the request and the engine fresh, then either tears
 * everything down (not desired: stopped, failed, expired or unknown) or converges on exactly
 * one container of the current generation, and writes the status once.
 */
export function instanceReconciler(deps: InstanceReconcilerDeps) {
  const crashes: Crashes = new Map();
  return async (ctx: ReconcileContext, id: string): Promise<ReconcileResult> => {
    const now = ctx.now().getTime();
    const inst = await deps.store.getInstance(id);
    const observed: Observed = { containers: await deps.runtime.listContainers(id), networks: await deps.runtime.listNetworks(id) };
    if (inst?.status === 'queued' && inst.desired === 'running') {
      // Waiting for admission: nothing may run yet; the admission pass decides when.
      await removeAll(deps, id, observed);
      return {};
    }
    if (!inst && !deps.mayRemoveOrphan(id)) return {};
    if (!inst || !wantsRunning(inst, now)) {
      for (const key of crashes.keys()) if (key.startsWith(`${id}:`)) crashes.delete(key);
      return teardown(deps, id, inst, observed, now);
    }
    return converge(deps, inst, observed, now, crashes);
  };
}

async function removeAll(deps: InstanceReconcilerDeps, id: string, observed: Observed): Promise<void> {
  for (const c of observed.containers) await deps.runtime.removeContainer(c.id);
  for (const n of observed.networks) await deps.runtime.removeNetwork(n.id);
  await deps.flagFiles.remove(id);
  await deps.exposure?.release(id);
}

async function teardown(deps: InstanceReconcilerDeps, id: string, inst: Instance | undefined, observed: Observed, now: number): Promise<ReconcileResult> {
  const hadObjects = observed.containers.length + observed.networks.length > 0;
  if (hadObjects) {
    if (inst && !FINAL_STATUSES.has(inst.status)) await write(deps, inst, { status: 'stopping' }, now);
    deps.onRoutesChanged();
    await removeAll(deps, id, observed);
    deps.log.info({ instance: id, containers: observed.containers.length, orphan: !inst }, 'instance removed');
  }
  if (!inst) return {};
  if (!FINAL_STATUSES.has(inst.status) || inst.finishedAt === undefined) {
    const expired = inst.desired === 'running' && now >= inst.expiresAt;
    const status = inst.status === 'failed' ? 'failed' : 'stopped';
    const reason = status === 'failed' ? inst.reason : expired ? 'expired' : 'stopped on request';
    await write(deps, inst, { status, reason, endpoints: [], finishedAt: now }, now);
    if (inst.status === 'running') deps.onRoutesChanged();
    return { requeueAfterMs: deps.settings.retentionMs };
  }
  const left = inst.finishedAt + deps.settings.retentionMs - now;
  if (left > 0) return { requeueAfterMs: left };
  await deps.store.deleteInstance(inst.id);
  return {};
}

async function converge(deps: InstanceReconcilerDeps, inst: Instance, observed: Observed, now: number, crashes: Crashes): Promise<ReconcileResult> {
  // The update policy picks the version (src/catalog/rollout-hook.ts); a container of another one is stale.
  const target = await versionToRun(deps.catalog, deps.store, inst, now, deps.log);
  if (target.kind === 'stop') return fail(deps, inst, target.reason, now);
  if (target.kind === 'wait') {
    if (inst.status !== 'running') await write(deps, inst, { status: 'pending', reason: target.reason }, now);
    return { requeueAfterMs: 1000 };
  }
  const { entry } = target;
  for (const stale of observed.containers.filter((c) => c.generation !== inst.generation || c.specHash !== inst.specHash)) {
    await deps.runtime.removeContainer(stale.id);
  }
  let current = observed.containers.find((c) => c.generation === inst.generation && c.specHash === inst.specHash);
  if (!current) {
    try {
      current = await deps.launches.run(() => launch(deps, inst, entry));
    } catch (err) {
      // No port lease: a full range waits (with its reason shown), a missing range fails the instance.
      if (!isPoseidonError(err, Codes.noPort)) {
        // Show why (address pool exhausted, engine down, ...) instead of a silent pending.
        await write(deps, inst, { reason: `launch failed: ${(err as Error).message}` }, now);
        throw err;
      }
      if (err.kind === 'terminal') return fail(deps, inst, err.message, now);
      await write(deps, inst, { status: 'pending', reason: err.message }, now);
      return { requeueAfterMs: 2000 };
    }
  }
  if (current.state === 'created') await deps.runtime.startContainer(current.id);
  if (current.state === 'exited' || current.state === 'dead') return crashed(deps, inst, current, now, crashes);
  if (current.health === 'unhealthy') return fail(deps, inst, `health check failed for ${entry.spec.healthcheck?.timeoutSeconds ?? 0}s`, now);
  if (current.state !== 'running' || current.health === 'starting') {
    await write(deps, inst, { status: 'starting', reason: undefined }, now);
    return { requeueAfterMs: POLL_STARTING_MS };
  }
  const endpoints = deps.exposure?.endpoints(inst, entry.spec, current) ?? withPublished(plannedEndpoints(inst.id, entry.spec, deps.settings.baseDomain), current);
  await write(deps, inst, { status: 'running', reason: undefined, endpoints }, now);
  return { requeueAfterMs: Math.max(0, inst.expiresAt - now) };
}

async function launch(deps: InstanceReconcilerDeps, inst: Instance, entry: CatalogEntry): Promise<ObservedContainer> {
  const { settings } = deps;
  // Leases first: an instance waiting for a port holds no network meanwhile.
  const leased = await deps.exposure?.leasesFor(inst, entry.spec);
  const network = await deps.runtime.ensureNetwork(planNetwork(inst, entry.spec, settings.managerId, settings.publishAddress !== ''));
  if (settings.gatewayContainer) await deps.runtime.connect(network, settings.gatewayContainer);
  const flag = deriveFlag(settings.flagSecret, { team: inst.team, challenge: inst.challenge, instance: inst.id }, entry.spec.flag.format);
  // Recorded here, from the version that actually runs, so verify matches what the container got.
  await deps.store.recordFlag(flagDigest(flag), { team: inst.team, ...(inst.user ? { user: inst.user } : {}), challenge: inst.challenge, instance: inst.id, issuedAt: Date.now() }, settings.flagRetentionMs);
  const flagFileHostPath = entry.spec.flag.file ? await deps.flagFiles.write(inst.id, flag) : undefined;
  const plan = planContainer(inst, entry.spec, { managerId: settings.managerId, image: entry.image, flag, publishAddress: settings.publishAddress, ...(flagFileHostPath ? { flagFileHostPath } : {}), ...(leased ? { leased } : {}) });
  const created = await deps.runtime.createContainer({ ...plan, network });
  deps.log.info({ instance: inst.id, challenge: inst.challenge, generation: inst.generation }, 'container created');
  return created;
}

async function crashed(deps: InstanceReconcilerDeps, inst: Instance, c: ObservedContainer, now: number, crashes: Crashes): Promise<ReconcileResult> {
  await deps.runtime.removeContainer(c.id);
  const key = `${inst.id}:${inst.generation}`;
  const n = (crashes.get(key) ?? 0) + 1;
  crashes.set(key, n);
  if (n >= MAX_CRASHES) {
    crashes.delete(key);
    return fail(deps, inst, `container exited ${n} times (last code ${c.exitCode ?? 'unknown'})`, now);
  }
  const reason = `container exited with code ${c.exitCode ?? 'unknown'}; recreating`;
  await write(deps, inst, { status: 'starting', reason }, now);
  throw new PoseidonError(Codes.containerExited, reason, { kind: 'transient' });
}

async function fail(deps: InstanceReconcilerDeps, inst: Instance, reason: string, now: number): Promise<ReconcileResult> {
  deps.log.warn({ instance: inst.id, reason }, 'instance failed');
  await write(deps, inst, { status: 'failed', reason }, now);
  // Requeue at once: a failed instance is no longer desired, so the next pass tears it down.
  return { requeueAfterMs: 0 };
}

function withPublished(endpoints: Endpoint[], c: ObservedContainer): Endpoint[] {
  return endpoints.map((e) => {
    const pub = c.published[e.port];
    return pub ? { ...e, published: pub } : e;
  });
}

/**
 * Writes the observed fields that differ from the record, only if the request is still the one
 * this pass read (same generation and desired state): a restart or stop that landed meanwhile
 * wins, and its change notification runs the next pass. Notifies the gateway on (un)running.
 */
async function write(deps: InstanceReconcilerDeps, inst: Instance, fields: InstanceObservation, now: number): Promise<void> {
  const changed = Object.entries(fields).some(([k, v]) => JSON.stringify(inst[k as keyof Instance]) !== JSON.stringify(v));
  if (!changed) return;
  const updated = await deps.store.compareAndUpdate(inst.id, { generation: inst.generation, desired: inst.desired }, fields, now);
  if (updated === CONFLICT || !updated) return;
  if (fields.status && (fields.status === 'running') !== (inst.status === 'running')) deps.onRoutesChanged();
  Object.assign(inst, updated);
}
