/**
 * A cold launch on this worker's engine, on the shortest path the engine allows: the network,
 * the flag file and the image facts are prepared at once, the gateway joins the network while the
 * container is created, and the container is started in the same step. Engine calls that only
 * confirm what the engine just answered are left out (a created container is described from its
 * plan; it is listed again only when its published ports must be read). With a network pool, an
 * internal network is taken from it instead of made (`network-pool.ts`).
 */
import { planContainer, planNetwork } from '../core/container-plan.ts';
import { Codes, PoseidonError } from '../core/errors.ts';
import type { Instance } from '../core/instance.ts';
import { LABELS, type ContainerRuntime, type ObservedContainer, type Ownership } from '../core/runtime.ts';
import { parseSealedFlag, unseal } from '../core/seal.ts';
import type { VersionInfo } from '../core/versions.ts';
import type { Exposure } from '../gateway/exposure.ts';
import type { FlagFiles } from './flag-files.ts';
import type { NetworkPool, PooledNetwork } from './network-pool.ts';

export interface LaunchDeps {
  workerId: string;
  owner: Ownership;
  runtime: ContainerRuntime;
  flagFiles: FlagFiles;
  privateKey: string;
  publishAddress: string;
  gatewayContainer?: string;
  exposure: Exposure;
  networkPool?: NetworkPool;
}

/** A launched container: started (`running`), or `created` with the engine's reason it would not start. */
export interface Launched {
  container: ObservedContainer;
  refused?: Error;
}

/** Creates and starts `inst`'s container (see the module comment). Throws what the engine or the lease store throws. */
export async function launch(deps: LaunchDeps, inst: Instance, version: VersionInfo): Promise<Launched> {
  const { spec } = version;
  const flag = openFlag(deps, inst);
  // Leases first: an instance waiting for a port holds no network meanwhile.
  const leased = await deps.exposure.leasesFor(inst, spec);
  const networkPlan = planNetwork(inst, spec, deps.owner, deps.publishAddress !== '');
  const pooled = networkPlan.internal ? deps.networkPool?.claim() : undefined;
  try {
    const [network, flagFileHostPath, facts, info] = await settled([
      pooled ? pooled.id : deps.runtime.ensureNetwork(networkPlan),
      spec.flag.file ? deps.flagFiles.write(inst.id, flag) : undefined,
      deps.runtime.imageFacts(version.image),
      deps.runtime.info(),
    ]);
    const plan = planContainer(inst, spec, {
      owner: deps.owner, image: version.image, flag, publishAddress: deps.publishAddress, imageVolumes: facts.volumes, diskQuota: info.diskQuota,
      ...(flagFileHostPath ? { flagFileHostPath } : {}), ...(Object.keys(leased).length ? { leased } : {}),
    });
    // The container names its pooled network: removed with it, never handed out again.
    if (pooled) plan.labels = { ...plan.labels, [LABELS.network]: pooled.name };
    // Not joined: the container stays `created`, and the next pass joins the gateway and starts it (`resume`).
    const [created] = await settled([
      deps.runtime.createContainer({ ...plan, network }),
      deps.gatewayContainer ? deps.runtime.connect(network, deps.gatewayContainer) : undefined,
    ]);
    // A 409 adopted a container another attempt made: started or exited, the pass reports it as it is.
    if (created.state !== 'created') return { container: created };
    return await start(deps.runtime, created, plan.publishAddress !== undefined || plan.leased !== undefined);
  } catch (err) {
    if (pooled) await unclaimed(deps, inst.id, pooled);
    throw err;
  } finally {
    if (pooled) deps.networkPool?.release(pooled.name);
  }
}

/** A claimed network whose container was not created: removed now (or by the pool's sweep), never reused. */
async function unclaimed(deps: LaunchDeps, instance: string, pooled: PooledNetwork): Promise<void> {
  // The create may have succeeded while the gateway's join failed: that container keeps it.
  const named = (await deps.runtime.listContainers(instance).catch(() => undefined))?.some((c) => c.network === pooled.name);
  if (named === false) await deps.runtime.removePoolNetwork(pooled.name).catch(() => undefined);
}

/**
 * Starts a container found `created` (a launch cut short after its create, or whose gateway join
 * failed while it was created): the gateway joins the instance's networks first, as in a launch.
 */
export async function resume(deps: Pick<LaunchDeps, 'runtime' | 'gatewayContainer'>, c: ObservedContainer, networks: readonly string[]): Promise<Launched> {
  if (deps.gatewayContainer) for (const n of networks) await deps.runtime.connect(n, deps.gatewayContainer);
  return start(deps.runtime, c, true);
}

/**
 * `Promise.all` that waits for every step to settle before it throws the first failure (in
 * order): no engine call or file write of a pass outlives it, to race the next pass of the key.
 */
async function settled<T extends readonly unknown[] | []>(steps: T): Promise<{ -readonly [P in keyof T]: Awaited<T[P]> }> {
  const results = await Promise.allSettled(steps);
  for (const r of results) if (r.status === 'rejected') throw r.reason;
  return results.map((r) => (r as PromiseFulfilledResult<unknown>).value) as { -readonly [P in keyof T]: Awaited<T[P]> };
}

/**
 * Starts a `created` container. Started, it is `running` (the start call returns once its process
 * runs); with published ports it is listed again for their host bindings. A start the engine
 * refuses (no such user, a missing entrypoint) leaves it `created` with the reason.
 */
export async function start(runtime: ContainerRuntime, c: ObservedContainer, published: boolean): Promise<Launched> {
  const refused = await runtime.startContainer(c.id).then(() => undefined, (err: unknown) => err as Error);
  if (refused) return { container: c, refused };
  if (!published) return { container: { ...c, state: 'running' } };
  const [listed] = (await runtime.listContainers(c.instance)).filter((x) => x.id === c.id);
  return { container: listed ?? { ...c, state: 'running' } };
}

/** The flag the manager sealed for this worker, placement and version; a waiting error until it is there. */
export function openFlag(deps: Pick<LaunchDeps, 'privateKey' | 'workerId'>, inst: Instance): string {
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
