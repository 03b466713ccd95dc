import type { ChallengeSpec } from './challenge.ts';
import { Codes, PoseidonError } from './errors.ts';
import { isLive, type Instance, type InstanceIntent } from './instance.ts';

/** How busy the cluster is: admitted live instances against the capacity. */
export interface Load {
  admitted: number;
  capacity: number;
  /** Refuse extensions above this share of capacity (1: never). */
  maxLoad: number;
}

function refuse(code: string, message: string): PoseidonError {
  return new PoseidonError(code, message, { kind: 'input' });
}

/** Throws E_NOT_RUNNING unless the instance is live and admitted. */
function mustBeActive(inst: Instance, now: number): void {
  if (!isLive(inst, now)) throw refuse(Codes.notRunning, `instance ${inst.id} is ${inst.status === 'running' ? 'expired' : inst.status}`);
  if (inst.status === 'queued') throw refuse(Codes.notRunning, `instance ${inst.id} is still queued`);
}

/**
 * Pure renew rule: `expiresAt = now + ttl`, never past the maximum lifetime, at most
 * `ttl.renewals` times, only inside the renew window when the spec has one, and not while the
 * cluster is over the configured load. Returns the fields to write; throws a PoseidonError
 * (kind input) whose code and message say why not.
 */
export function renewFields(inst: Instance, spec: ChallengeSpec, now: number, load: Load): InstanceIntent {
  mustBeActive(inst, now);
  const { ttl } = spec;
  if (inst.renewals >= ttl.renewals) throw refuse(Codes.renewLimit, `already renewed ${inst.renewals} times, the maximum for ${spec.id}`);
  const left = inst.expiresAt - now;
  if (ttl.renewWindowSeconds !== undefined && left > ttl.renewWindowSeconds * 1000) {
    throw refuse(Codes.renewWindow, `renewal opens ${ttl.renewWindowSeconds}s before expiry, in ${Math.ceil((left - ttl.renewWindowSeconds * 1000) / 1000)}s`);
  }
  if (load.capacity > 0 && load.admitted / load.capacity > load.maxLoad) {
    throw refuse(Codes.underLoad, `the cluster is under load (${load.admitted}/${load.capacity} in use); extensions are paused`);
  }
  const expiresAt = Math.min(now + ttl.defaultSeconds * 1000, inst.maxExpiresAt);
  if (expiresAt <= inst.expiresAt) throw refuse(Codes.renewLimit, `maximum lifetime reached (${new Date(inst.maxExpiresAt).toISOString()})`);
  return { expiresAt, renewals: inst.renewals + 1 };
}

/**
 * Pure restart rule: a fresh container (next generation) with the same hostname, running the
 * challenge's current version. The expiry stays as it is: lifetime is extended only by renew,
 * with its count, window and load rules (a restart that reset the TTL was an unlimited renew).
 * Only the request changes here; the worker reports the new container's status.
 */
export function restartFields(inst: Instance, specHash: string, now: number): InstanceIntent {
  mustBeActive(inst, now);
  return { generation: inst.generation + 1, specHash };
}

/** Parses `action=count/seconds` rate rules (validated by the config schema). */
export function parseRateLimits(rules: readonly string[]): Map<string, { limit: number; windowMs: number }> {
  const out = new Map<string, { limit: number; windowMs: number }>();
  for (const rule of rules) {
    const m = /^(\w+)=(\d+)\/(\d+)$/.exec(rule);
    if (m) out.set(m[1] as string, { limit: Number(m[2]), windowMs: Number(m[3]) * 1000 });
  }
  return out;
}
