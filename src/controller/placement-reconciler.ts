/**
 * The manager's instance pass (key: an instance id): decides the version an instance runs (its
 * update policy), places it on a worker (`scheduler/placement.ts`), moves it off a lost or
 * draining worker, seals its flag for the worker it lands on, finishes the record of instances
 * no worker will finish (never placed, or placed on a lost worker), and deletes records after
 * retention. Workers converge containers; this pass never touches an engine.
 */
import type { Catalog, CatalogEntry } from '../catalog/catalog.ts';
import { versionToRun } from '../catalog/rollout-hook.ts';
import type { ChallengeSpec } from '../core/challenge.ts';
import { Codes } from '../core/errors.ts';
import { deriveFlag, flagDigest } from '../core/flag.ts';
import { FINAL_STATUSES, wantsRunning, type Endpoint, type Instance, type InstanceIntent } from '../core/instance.ts';
import type { Logger, ReconcileContext, ReconcileResult } from '../core/reconcile.ts';
import { keyFingerprint, parseSealedFlag, seal, sealedFlagField } from '../core/seal.ts';
import { Semaphore } from '../core/semaphore.ts';
import { CONFLICT, type Store } from '../core/store.ts';
import type { PlacementNeeds, WorkerView } from '../core/worker.ts';
import { playerEndpoints } from '../gateway/exposure.ts';
import { FILTERS, place } from '../scheduler/placement.ts';
import type { FleetView } from './fleet-view.ts';

export interface PlacementSettings {
  baseDomain: string;
  /** Whether Traefik terminates TLS (player URLs). */
  tls: boolean;
  flagSecret: string;
  flagRetentionMs: number;
  retentionMs: number;
  /** What happens to instances of a lost worker unless their challenge says otherwise. */
  onWorkerLost: 'reschedule' | 'fail';
  /** How often an instance waiting for a worker is looked at again (fleet changes also wake it). */
  retryMs?: number;
}

export interface PlacementDeps {
  store: Store;
  catalog: Catalog;
  fleet: FleetView;
  log: Logger;
  settings: PlacementSettings;
  /** Records a write of the manager's own at once (the instance view), so the next decision sees it. */
  remember(inst: Instance): void;
  /**
   * The replica's copy of an instance (the instance view), if held. A pass whose copy needs
   * nothing from it returns without reading the store; see `settledIn`. Only safe when the pass
   * is woken by the view's updates (after it took a change in), not by the store's raw feed.
   */
  held?(id: string): Instance | undefined;
}

/** What a version needs from a worker. */
export function needsOf(spec: ChallengeSpec, image: string): PlacementNeeds {
  return {
    challenge: spec.id, runtime: spec.runtime, cpu: spec.resources.cpu, memoryBytes: spec.resources.memoryBytes, image,
    constraints: spec.placement?.labels ?? {}, leases: spec.expose.filter((p) => p.lease === true).length,
  };
}

/**
 * Passes the leader's controller runs at once. A pass mostly waits for its one record read (the
 * store pipelines concurrent reads into one round trip) and decisions are serialised anyway, so a
 * resync over 10,000 records is bound by round trips: 8 took 2.0x a plain listing of them all,
 * 32 took 1.6x, 128 no better (`npm run bench scale`, which runs the pass with this value).
 */
export const PLACEMENT_CONCURRENCY = 32;

/** Returns the reconcile function (see the module comment). */
export function placementReconciler(deps: PlacementDeps) {
  // Decisions are serialized in this process: each one sees the load the previous one added.
  const decide = new Semaphore(1);
  const retryMs = deps.settings.retryMs ?? 2000;
  return async (ctx: ReconcileContext, id: string): Promise<ReconcileResult> => {
    const now = ctx.now().getTime();
    const seen = deps.held?.(id);
    const settled = seen && settledIn(deps, seen, now);
    if (settled) return settled;
    const inst = await deps.store.getInstance(id);
    // Waiting for admission: the admission pass decides when it starts. Cancelled while queued, it is finished below.
    if (!inst || (inst.status === 'queued' && inst.desired === 'running')) return {};
    if (!wantsRunning(inst, now)) return finish(deps, inst, now);
    const target = await versionToRun(deps.catalog, deps.store, inst, now, deps.log);
    if (target.kind === 'stop') return write(deps, inst, { status: 'failed', reason: target.reason }, now, 0);
    if (target.kind === 'wait') return inst.worker ? until(inst, now) : write(deps, inst, { status: 'pending', reason: waitReason(deps, inst, target.reason, now) }, now, retryMs);
    const worker = await placedOn(deps, inst);
    if (worker && worker.state !== 'lost' && worker.state !== 'draining') return keepSealed(deps, inst, target.entry, worker, now);
    if (worker?.state === 'lost' && policyOf(deps, target.entry.spec) === 'fail') {
      return write(deps, inst, { status: 'failed', reason: `${Codes.workerLost}: worker ${worker.id} stopped answering; the challenge's policy is to fail its instances` }, now, 0);
    }
    return decide.run(() => placeOn(deps, inst, target.entry, worker, now, retryMs));
  };
}

/**
 * What the pass returns for `inst` when it would neither write nor read anything more: placed on
 * a serving worker, on the version its policy keeps, sealed for that version and that worker's
 * key (requeued at its expiry); or finished and within its retention (requeued at its end).
 * Undefined when the pass has something to decide, on the store's copy.
 *
 * Deciding "nothing to do" on the replica's copy is safe because every change reaches the view
 * before it wakes the pass (the leader's source is the view's update feed), and the view's
 * periodic refresh finds changes whose notification was lost, as the store listing did. A copy
 * that is merely older than the store only delays a decision until that change's own pass; every
 * write is still decided on the store's copy and guarded (`assign`, `compareAndUpdate`).
 */
function settledIn(deps: PlacementDeps, inst: Instance, now: number): ReconcileResult | undefined {
  if (!wantsRunning(inst, now)) {
    if (!FINAL_STATUSES.has(inst.status) || inst.finishedAt === undefined) return undefined;
    const left = inst.finishedAt + deps.settings.retentionMs - now;
    return left > 0 ? { requeueAfterMs: left } : undefined;
  }
  if (inst.status === 'queued' || inst.worker === undefined) return undefined;
  const pick = deps.catalog.versionFor(inst, 'reconcile');
  if (pick.action !== 'run' || pick.update || !pick.entry) return undefined;
  const worker = deps.fleet.worker(inst.worker);
  if (!worker || worker.state === 'lost' || worker.state === 'draining') return undefined;
  const sealed = parseSealedFlag(inst.sealedFlag);
  return sealed?.specHash === inst.specHash && sealed.key === keyFingerprint(worker.publicKey) ? until(inst, now) : undefined;
}

/** How old a listing may be to call a worker lost (well under the lost timeout; re-read at most this often per process). */
const LOST_LISTING_MS = 1000;

/**
 * The worker `inst` is placed on. A verdict that would move, fail or finish it is taken on a
 * fresh listing: a worker the view does not know was most likely registered after it (only an
 * operator's `forget` drops one; another manager placed `inst` there), and a late listing ages every
 * heartbeat until all look lost. Rejects when the registry cannot be read (nothing is decided).
 */
async function placedOn(deps: PlacementDeps, inst: Instance): Promise<WorkerView | undefined> {
  if (inst.worker === undefined) return undefined;
  const seen = deps.fleet.worker(inst.worker);
  if (seen && seen.state !== 'lost') return seen;
  await deps.fleet.ensureFresh(seen ? LOST_LISTING_MS : 0);
  return deps.fleet.worker(inst.worker);
}

function policyOf(deps: PlacementDeps, spec: ChallengeSpec): 'reschedule' | 'fail' {
  return spec.onWorkerLost ?? deps.settings.onWorkerLost;
}

/**
 * Why an unplaced instance waits for its version's image: the `E_NO_CAPACITY` reason when no
 * worker could run that version even with the image (none registered, none offering its runtime,
 * all full...: the image states count only eligible workers, so such a version stays `building`),
 * else the rollout's reason.
 */
function waitReason(deps: PlacementDeps, inst: Instance, reason: string, now: number): string {
  const entry = [deps.catalog.version(inst.specHash), deps.catalog.get(inst.challenge)].find((e) => e?.state === 'building');
  if (!entry) return reason;
  const needs = needsOf(entry.spec, entry.image);
  const result = place(needs, deps.fleet.candidates(needs, deps.fleet.loads(now)), FILTERS.filter((f) => f.name !== 'image'));
  return result.ok ? reason : `${Codes.noCapacity}: ${result.reason}`;
}

/** Requeue at the instance's expiry (expiry is level-based: the pass then finishes it). */
function until(inst: Instance, now: number): ReconcileResult {
  return { requeueAfterMs: Math.max(0, inst.expiresAt - now) };
}

/** Places (or moves) `inst`; when no worker fits it stays pending with the reason. */
async function placeOn(deps: PlacementDeps, inst: Instance, own: CatalogEntry, from: WorkerView | undefined, now: number, retryMs: number): Promise<ReconcileResult> {
  const choice = choose(deps, inst, own, now);
  if (!choice.ok) {
    const reason = `${Codes.noCapacity}: ${choice.reason}`;
    // A move keeps the old placement serving (make-before-break) until a worker fits.
    if (inst.worker && from?.state === 'draining') return { requeueAfterMs: retryMs };
    return write(deps, inst, { status: 'pending', reason }, now, retryMs);
  }
  const { worker, entry } = choice;
  const epoch = inst.epoch + 1;
  const flag = await issueFlag(deps, inst, entry, now);
  const moved = inst.worker ? `moved from ${inst.worker} (${from?.state ?? 'gone'})${entry.hash === inst.specHash ? '' : `, now on version ${entry.hash}`}` : undefined;
  const fields: InstanceIntent = {
    status: 'pending', reason: moved,
    // A move is a fresh container: the next generation, same hostname and expiry.
    generation: inst.worker ? inst.generation + 1 : inst.generation,
    ...(entry.hash === inst.specHash ? {} : { specHash: entry.hash }),
    endpoints: playerEndpoints(inst.id, entry.spec, deps.settings),
    sealedFlag: sealedFlagField(entry.hash, worker.publicKey, seal(worker.publicKey, flag, { instance: inst.id, epoch, worker: worker.id })),
  };
  const placed = await deps.store.assign(inst.id, { epoch: inst.epoch, ...(inst.worker ? { worker: inst.worker } : {}) }, worker.id, fields, now);
  if (placed === CONFLICT || !placed) return {}; // another decision won; its change runs the next pass
  deps.remember(placed);
  deps.log.info({ instance: inst.id, challenge: inst.challenge, worker: worker.id, epoch, from: inst.worker }, inst.worker ? 'instance moved' : 'instance placed');
  return until(placed, now);
}

type Choice = { ok: true; worker: WorkerView; entry: CatalogEntry } | { ok: false; reason: string };

/**
 * The worker (and version) for `inst`: its own version where one fits. A move whose own version
 * no worker holds takes the current one, as a restart would (a move is a fresh container anyway):
 * workers prepare current versions only, so an instance kept on a superseded version (`keep`,
 * `on-renew`) could otherwise never leave a draining or lost worker.
 */
function choose(deps: PlacementDeps, inst: Instance, own: CatalogEntry, now: number): Choice {
  const loads = deps.fleet.loads(now);
  const attempt = (entry: CatalogEntry) => {
    const needs = needsOf(entry.spec, entry.image);
    return place(needs, deps.fleet.candidates(needs, loads));
  };
  const first = attempt(own);
  if (first.ok) return { ok: true, worker: deps.fleet.worker(first.worker) as WorkerView, entry: own };
  const current = inst.worker !== undefined && (first.rejected.image ?? 0) > 0 ? deps.catalog.versionFor(inst, 'restart') : undefined;
  if (current?.action !== 'run' || !current.entry || current.entry.hash === own.hash) return first;
  const second = attempt(current.entry);
  return second.ok ? { ok: true, worker: deps.fleet.worker(second.worker) as WorkerView, entry: current.entry } : first;
}

/** Derives `inst`'s flag and records its digest (before any container can hold it, so verify knows it). */
async function issueFlag(deps: PlacementDeps, inst: Instance, entry: CatalogEntry, now: number): Promise<string> {
  const flag = deriveFlag(deps.settings.flagSecret, { team: inst.team, challenge: inst.challenge, instance: inst.id }, entry.spec.flag.format);
  await deps.store.recordFlag(flagDigest(flag), { team: inst.team, ...(inst.user ? { user: inst.user } : {}), challenge: inst.challenge, instance: inst.id, issuedAt: now }, deps.settings.flagRetentionMs);
  return flag;
}

/** Placed on a healthy worker: reseal the flag when the version (a rollout) or the worker's key changed, else nothing. */
async function keepSealed(deps: PlacementDeps, inst: Instance, entry: CatalogEntry, worker: WorkerView, now: number): Promise<ReconcileResult> {
  const current = parseSealedFlag(inst.sealedFlag);
  if (current?.specHash === inst.specHash && current.key === keyFingerprint(worker.publicKey)) return until(inst, now);
  const flag = await issueFlag(deps, inst, entry, now);
  const sealedFlag = sealedFlagField(inst.specHash, worker.publicKey, seal(worker.publicKey, flag, { instance: inst.id, epoch: inst.epoch, worker: worker.id }));
  // Another version (a rollout, a restart) may expose other ports: plan them as a placement does.
  // The same plan keeps what the worker observed (published ports, leased URLs).
  const planned = playerEndpoints(inst.id, entry.spec, deps.settings);
  const endpoints = samePlan(inst.endpoints, planned) ? {} : { endpoints: planned };
  return write(deps, inst, { sealedFlag, ...endpoints }, now, Math.max(0, inst.expiresAt - now));
}

/** Whether two endpoint lists route the same ports to the same hostnames and backends. */
function samePlan(a: readonly Endpoint[], b: readonly Endpoint[]): boolean {
  const key = (e: Endpoint): string => JSON.stringify([e.name, e.protocol, e.port, e.hostname, e.backend]);
  return a.length === b.length && a.every((e, i) => key(e) === key(b[i] as Endpoint));
}

/**
 * Not desired any more. The worker it is placed on finishes the record (after removing the
 * container); the manager finishes it only when no worker will: never placed, or placed on a
 * lost or unregistered worker. Finished records are deleted after the retention period.
 */
async function finish(deps: PlacementDeps, inst: Instance, now: number): Promise<ReconcileResult> {
  if (FINAL_STATUSES.has(inst.status) && inst.finishedAt !== undefined) {
    const left = inst.finishedAt + deps.settings.retentionMs - now;
    if (left > 0) return { requeueAfterMs: left };
    await deps.store.deleteInstance(inst.id);
    return {};
  }
  const worker = await placedOn(deps, inst);
  if (worker && worker.state !== 'lost') return { requeueAfterMs: 5000 };
  const expired = inst.desired === 'running' && inst.status !== 'failed' && now >= inst.expiresAt;
  const status = inst.status === 'failed' ? 'failed' : 'stopped';
  const reason = status === 'failed' ? inst.reason : expired ? 'expired' : 'stopped on request';
  return write(deps, inst, { status, reason, endpoints: [], finishedAt: now }, now, deps.settings.retentionMs);
}

/** Writes the fields that differ, only if the placement and request are still the ones read. */
async function write(deps: PlacementDeps, inst: Instance, fields: InstanceIntent, now: number, requeueAfterMs: number): Promise<ReconcileResult> {
  const changed = Object.entries(fields).some(([k, v]) => JSON.stringify(inst[k as keyof Instance]) !== JSON.stringify(v));
  if (!changed) return { requeueAfterMs };
  const updated = await deps.store.compareAndUpdate(inst.id, { epoch: inst.epoch, generation: inst.generation, desired: inst.desired }, fields, now);
  if (updated && updated !== CONFLICT) deps.remember(updated);
  return { requeueAfterMs };
}
