/**
 * The launch side of warm pools (issue 11; the leader keeps them, `controller/pool-keeper.ts`).
 * A launch is first created as a normal request (every owner, team, rate and idempotency rule
 * applies to it), then it tries to take a running member of its challenge's pool in place of a
 * cold start (`Store.claimPooled`, atomic: a member goes to one claimant only), with the owner's
 * flag already sealed for the member's worker, so the worker can deliver it at once. With no member to
 * take, or a claim lost to another launch, the request stays what it was: a cold launch.
 */
import { randomInt } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import type { Catalog } from '../catalog/catalog.ts';
import { deriveFlag, flagDigest } from '../core/flag.ts';
import { isPoolMember, type Instance } from '../core/instance.ts';
import { seal, sealedFlagField } from '../core/seal.ts';
import type { WorkerView } from '../core/worker.ts';
import { CONFLICT, type Store } from '../core/store.ts';
import type { InstanceIndex } from '../gateway/instance-index.ts';

/** Members tried before a launch settles for a cold start (each try is one script call). */
const TRIES = 3;
export const CLAIM_REASON = 'claimed from the warm pool; delivering the flag';

export interface PoolClaimDeps {
  store: Store;
  catalog: Pick<Catalog, 'get' | 'version'>;
  index?: InstanceIndex;
  /** The workers' sealing keys (the fleet view); without it the manager seals the owner's flag after the claim. */
  workers?: { view: { workers(): readonly WorkerView[] } };
  lifecycle: { flagSecret: string; flagRetentionMs: number };
  /** Counts each pooled launch: `claimed` or `cold` (`poseidon_pool_claims_total`). */
  metrics?: { metrics: { poolClaims: { inc(labels: { challenge: string; result: string }): void } } };
}

/**
 * The owner's flag for `member`, sealed for its worker and placement as the manager's placement
 * would seal it (so the manager finds nothing to redo), its digest recorded first (before any
 * container can hold it, verify must know it). Undefined when the worker's key is not known here.
 */
async function sealFor(deps: PoolClaimDeps, inst: Instance, member: Instance, now: number): Promise<string | undefined> {
  const key = deps.workers?.view.workers().find((w) => w.id === member.worker)?.publicKey;
  const spec = deps.catalog.version(member.specHash)?.spec;
  if (!key || !spec || member.worker === undefined) return undefined;
  const flag = deriveFlag(deps.lifecycle.flagSecret, { team: inst.team, challenge: inst.challenge, instance: member.id }, spec.flag.format);
  await deps.store.recordFlag(flagDigest(flag), { team: inst.team, ...(inst.user ? { user: inst.user } : {}), challenge: inst.challenge, instance: member.id, issuedAt: now }, deps.lifecycle.flagRetentionMs);
  return sealedFlagField(member.specHash, key, seal(key, flag, { instance: member.id, epoch: member.epoch, worker: member.worker }));
}

/** Running members `inst` could take, in random order (two launches rarely reach for the same one). */
function candidates(index: InstanceIndex, inst: Instance, now: number): Instance[] {
  const out: Instance[] = [];
  for (const m of index.all()) {
    if (isPoolMember(m) && m.challenge === inst.challenge && m.specHash === inst.specHash && m.status === 'running'
      && m.desired === 'running' && m.worker !== undefined && m.expiresAt > now) out.push(m);
  }
  for (let i = out.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [out[i], out[j]] = [out[j] as Instance, out[i] as Instance];
  }
  return out.slice(0, TRIES);
}

/**
 * The member `inst` (just created, unplaced) took, or undefined when it stays a cold launch.
 * A failed store call is answered from the store: the claim either happened (the owner's record
 * is the member now) or did not (the request is still there).
 */
export async function claimFromPool(deps: PoolClaimDeps, inst: Instance, idempotencyKey: string | undefined, now: number, log: FastifyBaseLogger): Promise<Instance | undefined> {
  if (!deps.index || inst.worker !== undefined || !deps.catalog.get(inst.challenge)?.spec.pool) return undefined;
  const claimed = await tryMembers(deps, deps.index, inst, idempotencyKey, now, log);
  deps.metrics?.metrics.poolClaims.inc({ challenge: inst.challenge, result: claimed ? 'claimed' : 'cold' });
  return claimed;
}

/** Claims one of up to TRIES candidates; see `claimFromPool`. */
async function tryMembers(deps: PoolClaimDeps, index: InstanceIndex, inst: Instance, idempotencyKey: string | undefined, now: number, log: FastifyBaseLogger): Promise<Instance | undefined> {
  for (const member of candidates(index, inst, now)) {
    try {
      const sealedFlag = await sealFor(deps, inst, member, now);
      const claimed = await deps.store.claimPooled(inst, member, { reason: CLAIM_REASON, ...(idempotencyKey ? { idempotencyKey } : {}), ...(sealedFlag ? { sealedFlag } : {}) }, now);
      if (claimed !== CONFLICT) return claimed;
    } catch (err) {
      log.warn({ instance: inst.id, member: member.id, err: (err as Error).message }, 'pool claim failed; finding out whether it happened');
      if (await deps.store.getInstance(inst.id)) return undefined;
      const taken = await deps.store.getInstance(member.id);
      return taken?.owner === inst.owner && taken.createdAt === inst.createdAt ? taken : undefined;
    }
  }
  return undefined;
}
