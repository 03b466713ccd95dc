/**
 * Warm pools (issue 11): for every challenge whose spec asks for `pool: { size: N }`, the leader
 * keeps N instances of its current version asked to run with no owner (team `POOL_TEAM`). They are
 * placed, launched and probed like any instance, so they count against capacity and show where
 * instances show. A launch claims a running one (`api/pool-claim.ts`, `Store.claimPooled`): the
 * claim hands it to the owner, the manager seals the owner's flag and the worker writes it into
 * the container's flag file; the pass here then refills the pool. Members of a version that is
 * no longer current, of a challenge that no longer pools (or left the catalog), and members beyond
 * the size are asked to stop: a spec change drains the old version's pool.
 *
 * Level-based and idempotent: each pass counts from the instance view and writes the difference.
 */
import { newInstanceId, portHostname } from '../core/naming.ts';
import { isPoolMember, POOL_OWNER_PREFIX, POOL_TEAM, wantsRunning, type Instance } from '../core/instance.ts';
import type { Logger, ReconcileContext, ReconcileResult } from '../core/reconcile.ts';
import type { Store } from '../core/store.ts';
import type { CatalogEntry } from '../catalog/catalog.ts';

/** How long an unclaimed member lives before it is replaced by a fresh one (a claim sets the owner's expiry). */
export const MEMBER_LIFETIME_MS = 6 * 3600_000;
/** How often the pass runs without a change to wake it. */
const IDLE_PASS_MS = 5000;

export interface PoolKeeperDeps {
  /** The leader's (fenced) store. */
  store: Store;
  catalog: { list(): CatalogEntry[] };
  /** The instance view (every instance, kept current by the change feed). */
  instances(): Iterable<Instance>;
  /** Most admitted live instances overall (0: no limit): a pool never queues behind teams. */
  capacity(): number;
  baseDomain: string;
  log: Logger;
  /** Puts a record this pass wrote into the instance view at once (the next pass counts it). */
  remember(inst: Instance): void;
}

/** A pool member of `entry`'s current version, before it is stored. */
export function poolMember(entry: CatalogEntry, baseDomain: string, now: number): Instance {
  const id = newInstanceId();
  return {
    id, challenge: entry.spec.id, team: POOL_TEAM, owner: `${POOL_OWNER_PREFIX}${id}`,
    generation: 1, epoch: 0, desired: 'running', status: 'pending', hostname: portHostname(id, entry.spec, 0, baseDomain),
    endpoints: [], specHash: entry.hash, createdAt: now, updatedAt: now, renewals: 0,
    expiresAt: now + MEMBER_LIFETIME_MS, maxExpiresAt: now + MEMBER_LIFETIME_MS,
  };
}

/** The members of each challenge that are still wanted (asked to run, not failed, not expired). */
function liveMembers(instances: Iterable<Instance>, now: number): Map<string, Instance[]> {
  const out = new Map<string, Instance[]>();
  for (const i of instances) {
    if (!isPoolMember(i) || !wantsRunning(i, now)) continue;
    const list = out.get(i.challenge);
    if (list) list.push(i);
    else out.set(i.challenge, [i]);
  }
  return out;
}

/** The reconcile function of the leader's pool key (see the module comment). */
export function poolKeeper(deps: PoolKeeperDeps) {
  // Whether the last pass saw members: without pools and members a pass costs no walk of the view.
  let hadMembers = true;
  return async (ctx: ReconcileContext): Promise<ReconcileResult> => {
    const now = ctx.now().getTime();
    const pooled = new Map(deps.catalog.list().filter((e) => e.spec.pool && e.state === 'ready').map((e) => [e.spec.id, e]));
    if (pooled.size === 0 && !hadMembers) return { requeueAfterMs: IDLE_PASS_MS };
    const members = liveMembers(deps.instances(), now);
    hadMembers = members.size > 0;
    const stop: Instance[] = [];
    const wanted: Array<{ entry: CatalogEntry; missing: number }> = [];
    for (const [challenge, list] of members) {
      const entry = pooled.get(challenge);
      const current = entry ? list.filter((m) => m.specHash === entry.hash) : [];
      stop.push(...list.filter((m) => !current.includes(m)));
      // Beyond the size: the ones not running yet go first (the running ones are what claims need).
      const extra = current.length - (entry?.spec.pool?.size ?? 0);
      if (extra > 0) stop.push(...current.sort((a, b) => Number(a.status === 'running') - Number(b.status === 'running') || b.createdAt - a.createdAt).slice(0, extra));
    }
    for (const entry of pooled.values()) {
      const have = (members.get(entry.spec.id) ?? []).filter((m) => m.specHash === entry.hash).length;
      const missing = (entry.spec.pool?.size ?? 0) - have;
      if (missing > 0) wanted.push({ entry, missing });
    }
    for (const m of stop) {
      const updated = await deps.store.updateInstance(m.id, { desired: 'stopped' }, now);
      if (updated) deps.remember(updated);
      deps.log.info({ instance: m.id, challenge: m.challenge, specHash: m.specHash }, 'pool member drained');
    }
    await refill(deps, wanted, now);
    return { requeueAfterMs: IDLE_PASS_MS };
  };
}

/** Creates the missing members while the capacity has room (a member never waits in the teams' queue). */
async function refill(deps: PoolKeeperDeps, wanted: ReadonlyArray<{ entry: CatalogEntry; missing: number }>, now: number): Promise<void> {
  const capacity = deps.capacity();
  let room = capacity > 0 ? capacity - await deps.store.countAdmitted(now) : Infinity;
  for (const { entry, missing } of wanted) {
    for (let i = 0; i < missing && room > 0; i++, room--) {
      const member = poolMember(entry, deps.baseDomain, now);
      const res = await deps.store.createInstance(member, now, capacity > 0 ? { capacity } : {});
      if (!res.created) continue;
      if (res.instance.status === 'queued') {
        // Raced with teams for the last place: teams win.
        await deps.store.updateInstance(member.id, { desired: 'stopped' }, now);
        return;
      }
      deps.remember(res.instance);
      deps.log.info({ instance: member.id, challenge: entry.spec.id, specHash: entry.hash }, 'pool member requested');
    }
  }
}
