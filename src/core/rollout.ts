/**
 * Which version of a challenge an instance should run: the per-challenge update policy applied
 * to the version the instance was launched (or last renewed/restarted) with and the catalog's
 * current good version. Pure; the catalog feeds it, the reconciler and the API act on it.
 */

/**
 * How running instances follow a spec change: `recreate` replaces them as soon as the new
 * version is ready, `on-renew` moves them at their next renew or restart, `keep` leaves them on
 * their version until they expire (a restart still picks up the current version).
 */
export type UpdatePolicy = 'recreate' | 'on-renew' | 'keep';
export const UPDATE_POLICIES: readonly UpdatePolicy[] = ['recreate', 'on-renew', 'keep'];
export const DEFAULT_UPDATE_POLICY: UpdatePolicy = 'keep';

/** Why a version is being chosen: a reconcile pass, or an owner's renew/restart request. */
export type RolloutReason = 'reconcile' | 'renew' | 'restart';

/** Image state of one version (`ready`: present on every eligible worker). */
export type VersionState = 'ready' | 'building' | 'image-missing';

export interface VersionRef {
  hash: string;
  state: VersionState;
  /** Why the image is missing, when it is. */
  error?: string;
}

export interface RolloutInput {
  policy: UpdatePolicy;
  reason: RolloutReason;
  /** The hash the instance was launched (or last moved) with: `instance.specHash`. */
  launched: string;
  /** That version, when the catalog still has it. */
  running?: VersionRef;
  /** The challenge's current good version; undefined when the challenge was removed. */
  current?: VersionRef;
}

/**
 * `run`: run version `hash` (`update` when it differs from `launched`);
 * `wait`: nothing runnable yet (an image is being prepared), ask again later;
 * `stop`: the instance cannot or must not run any more (at renew/restart: refuse the request).
 */
export type RolloutDecision =
  | { action: 'run'; hash: string; update: boolean; why: string }
  | { action: 'wait'; why: string }
  | { action: 'stop'; why: string };

/** True when this policy and reason move the instance to the current version. */
export function wantsCurrent(policy: UpdatePolicy, reason: RolloutReason): boolean {
  return reason === 'restart' || policy === 'recreate' || (policy === 'on-renew' && reason === 'renew');
}

/**
 * Decides the version to run. A move to the current version waits for its image while the
 * instance's own version is still runnable (no downtime for a build); an instance whose version
 * is gone falls back to the current one; a removed challenge stops instances whose policy would
 * move them and lets the others finish on their version.
 */
export function decideVersion(input: RolloutInput): RolloutDecision {
  const { running, current, launched } = input;
  if (wantsCurrent(input.policy, input.reason)) {
    if (!current) return { action: 'stop', why: `the challenge is not in the catalog any more (update policy ${input.policy}, ${input.reason})` };
    if (current.state !== 'ready' && running?.state === 'ready') {
      return run(running, launched, `new version ${current.hash} is ${current.state}; staying on ${running.hash}`);
    }
    return choose(current, launched, current.hash === launched ? 'current version' : `update to ${current.hash} (policy ${input.policy}, ${input.reason})`);
  }
  if (running) return choose(running, launched, current && current.hash !== running.hash ? `keeping ${running.hash} (policy ${input.policy})` : 'current version');
  if (current) return choose(current, launched, `version ${launched} is no longer available; using ${current.hash}`);
  return { action: 'stop', why: `version ${launched} is no longer available and the challenge is not in the catalog` };
}

function choose(v: VersionRef, launched: string, why: string): RolloutDecision {
  if (v.state === 'ready') return run(v, launched, why);
  if (v.state === 'building') return { action: 'wait', why: `waiting for the image of version ${v.hash}` };
  return { action: 'stop', why: `image of version ${v.hash} is not available${v.error ? `: ${v.error}` : ''}` };
}

function run(v: VersionRef, launched: string, why: string): RolloutDecision {
  return { action: 'run', hash: v.hash, update: v.hash !== launched, why };
}
