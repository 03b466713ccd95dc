import type { FastifyReply, FastifyRequest } from 'fastify';
import { Codes, PoseidonError } from '../core/errors.ts';
import type { Store } from '../core/store.ts';

/**
 * Refuses (E_FORBIDDEN) a platform key scoped to one team acting for another team. Admin keys
 * and unscoped platform keys act for any team.
 */
export function assertTeam(req: FastifyRequest, team: string): void {
  const p = req.principal;
  if (p?.role === 'platform' && p.team !== undefined && p.team !== team) {
    throw new PoseidonError(Codes.forbidden, `this key acts only for team ${p.team}`, { kind: 'input' });
  }
}

/** The team filter a caller is limited to (its key's team), if any. */
export function scopedTeam(req: FastifyRequest): string | undefined {
  return req.principal?.role === 'platform' ? req.principal.team : undefined;
}

/** Limits (action -> count per window) per team. */
export type RateLimits = ReadonlyMap<string, { limit: number; windowMs: number }>;

/**
 * Counts one `action` for `team`; over the limit it throws E_RATE_LIMITED after setting
 * `Retry-After` (seconds) on the reply.
 */
export async function rateLimit(store: Store, limits: RateLimits, action: string, team: string, reply: FastifyReply, now: number): Promise<void> {
  const rule = limits.get(action);
  if (!rule) return;
  const r = await store.hitRate(`${action}:${team}`, rule.limit, rule.windowMs, now);
  if (r.allowed) return;
  throw rateLimitedError(action, r.retryAfterMs, reply, `for team ${team}: at most ${rule.limit} per ${rule.windowMs / 1000}s`);
}

/** The E_RATE_LIMITED error for `action`, after setting `Retry-After` (seconds) on the reply. */
export function rateLimitedError(action: string, retryAfterMs: number, reply: FastifyReply, what = ''): PoseidonError {
  const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
  reply.header('retry-after', String(seconds));
  return new PoseidonError(Codes.rateLimited, `too many ${action} requests${what ? ` ${what}` : ''}; retry in ${seconds}s`, {
    kind: 'input', detail: { retryAfterSeconds: seconds },
  });
}
