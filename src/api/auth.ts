import * as crypto from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Codes } from '../core/errors.ts';
import { sendProblem } from './problem.ts';

/**
 * `platform`: launches and reads instances (optionally for one team); `operator`: reads
 * everything an admin reads, acts on nothing; `admin`: everything; `gateway`: only what Traefik
 * needs (the HTTP provider's configuration), so the key Traefik holds opens nothing else.
 */
export type Role = 'platform' | 'operator' | 'admin' | 'gateway';
export const ROLES: readonly Role[] = ['platform', 'operator', 'admin', 'gateway'];

/** Who may call a route: `none` (no key), `admin` (shorthand), or the roles allowed. */
export type RouteAuth = 'none' | 'admin' | readonly Role[];
/** The default of a route that says nothing: what platforms (and admins) call. */
export const PLATFORM_ROUTE: readonly Role[] = ['platform', 'admin'];
/** Reads an operator may make too. */
export const READ_ROUTE: readonly Role[] = ['operator', 'admin'];

/** Shortest key accepted from any source; shorter configured keys are refused at start-up. */
export const MIN_KEY_LENGTH = 16;

/** A configured API key: only its SHA-256 digest is kept in memory. */
export interface ApiKey {
  /** Name for logs (never the key). */
  name: string;
  role: Role;
  /** When set, a platform key may act only on this team's instances. */
  team?: string;
  digest: Buffer;
}

/** Who made the request, once authenticated. */
export interface Principal {
  key: string;
  role: Role;
  team?: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
  interface FastifyContextConfig {
    /** See `RouteAuth`; default `PLATFORM_ROUTE`. */
    auth?: RouteAuth;
  }
}

/** SHA-256 of a key, the form keys are configured and compared in. */
export function keyDigest(key: string): Buffer {
  // The one-shot form where the runtime has it (Node >= 20.12): about half the cost of
  // createHash().update().digest(), paid on every request.
  return oneShot ? oneShot('sha256', key, 'buffer') : crypto.createHash('sha256').update(key).digest();
}

/** `crypto.hash`, absent before Node 20.12 (a namespace import: a missing export is undefined, not a load error). */
const oneShot: typeof crypto.hash | undefined = (crypto as { hash?: typeof crypto.hash }).hash;

/** Parses configured keys `name:role[:team]:sha256hex` (format validated by the config schema). */
export function parseApiKeys(entries: readonly string[]): ApiKey[] {
  return entries.map((e) => {
    const parts = e.split(':');
    const [name = '', role = 'platform'] = parts;
    const hex = parts[parts.length - 1] ?? '';
    const team = parts.length === 4 ? parts[2] : undefined;
    return { name, role: role as Role, ...(team ? { team } : {}), digest: Buffer.from(hex, 'hex') };
  });
}

/**
 * Finds the key in constant time per configured key (every digest is compared, no early exit).
 * An empty or short value never matches, whatever is configured.
 */
export function matchKey(keys: readonly ApiKey[], given: unknown): ApiKey | undefined {
  if (typeof given !== 'string' || given.length < MIN_KEY_LENGTH || given.length > 1024) return undefined;
  const d = keyDigest(given);
  let found: ApiKey | undefined;
  for (const k of keys) if (crypto.timingSafeEqual(k.digest, d) && !found) found = k;
  return found;
}

/** Whether `role` may call a route declared with `auth`. */
export function allowed(auth: RouteAuth | undefined, role: Role): boolean {
  if (auth === 'none') return true;
  if (auth === 'admin') return role === 'admin';
  return (auth ?? PLATFORM_ROUTE).includes(role);
}

export interface FailureLimit {
  /** Failed attempts allowed per address per window; 0 turns the limit off. */
  attempts: number;
  windowMs: number;
  /** Addresses tracked at most (the oldest window is forgotten first). */
  maxAddresses?: number;
  now?: () => number;
}

/**
 * Failed key attempts per client address in fixed windows (per process: a guessing client is
 * slowed on whichever replica it reaches). Behind a proxy the address is the proxy's unless
 * `trustProxy` names it (see README, "Keys and roles").
 */
export class FailedAuth {
  readonly #windows = new Map<string, { count: number; resetAt: number }>();

  constructor(private readonly opts: FailureLimit) {}

  /** Milliseconds until `address` may try again, or 0 when it may try now. */
  blockedFor(address: string): number {
    if (this.opts.attempts <= 0) return 0;
    const w = this.#windows.get(address);
    const now = this.#now();
    if (!w || w.resetAt <= now || w.count < this.opts.attempts) return 0;
    return w.resetAt - now;
  }

  /** Counts one failed attempt. */
  fail(address: string): void {
    if (this.opts.attempts <= 0) return;
    const now = this.#now();
    let w = this.#windows.get(address);
    if (!w || w.resetAt <= now) {
      if (this.#windows.size >= (this.opts.maxAddresses ?? 100_000)) this.#prune(now);
      w = { count: 0, resetAt: now + this.opts.windowMs };
      this.#windows.delete(address);
      this.#windows.set(address, w);
    }
    w.count++;
  }

  #prune(now: number): void {
    for (const [a, w] of this.#windows) if (w.resetAt <= now) this.#windows.delete(a);
    // Still full: forget the oldest windows (insertion order).
    for (const a of this.#windows.keys()) {
      if (this.#windows.size < (this.opts.maxAddresses ?? 100_000)) break;
      this.#windows.delete(a);
    }
  }

  #now(): number {
    return this.opts.now?.() ?? Date.now();
  }
}

/** The answer of a browser session: its principal, or why the request is refused. */
export type SessionVerdict = { principal: Principal } | { status: 401 | 403; message: string };

/**
 * A browser session (the status page's cookie, src/status/session.ts), consulted only when a
 * request has no `x-api-key`: undefined when the request carries no session at all.
 */
export interface SessionAuth {
  authenticate(req: FastifyRequest): SessionVerdict | undefined;
}

/**
 * Answers 401/429 for a request without a usable key; the principal otherwise. Used by the
 * route hook and by errors raised before routing (a malformed URL still needs a key). Without
 * `x-api-key`, a valid `session` stands in for a key (its own checks decide 401/403).
 */
export function authenticate(keys: readonly ApiKey[], failures: FailedAuth, req: FastifyRequest, reply: FastifyReply, session?: SessionAuth): Principal | undefined {
  const wait = failures.blockedFor(req.ip);
  if (wait > 0) {
    const seconds = Math.max(1, Math.ceil(wait / 1000));
    reply.header('retry-after', String(seconds));
    sendProblem(reply, 429, Codes.rateLimited, `too many failed key attempts from this address; retry in ${seconds}s`, { retryAfterSeconds: seconds });
    return undefined;
  }
  const verdict = session && req.headers['x-api-key'] === undefined ? session.authenticate(req) : undefined;
  if (verdict && 'principal' in verdict) return verdict.principal;
  if (verdict) {
    sendProblem(reply, verdict.status, verdict.status === 401 ? Codes.unauthorized : Codes.forbidden, verdict.message);
    return undefined;
  }
  const key = matchKey(keys, req.headers['x-api-key']);
  if (!key) {
    failures.fail(req.ip);
    sendProblem(reply, 401, Codes.unauthorized, 'missing or invalid x-api-key');
    return undefined;
  }
  return { key: key.name, role: key.role, ...(key.team ? { team: key.team } : {}) };
}

/**
 * Requires `x-api-key` on every route (and on unknown paths) unless the route says
 * `config: { auth: 'none' }`; a key whose role the route does not allow gets 403. Failed
 * attempts are limited per client address (429 with Retry-After). Sets `req.principal`.
 * `session`: the status page's cookie sessions, accepted when no `x-api-key` is given.
 */
export function registerAuth(app: FastifyInstance, keys: readonly ApiKey[], failures: FailedAuth, session?: SessionAuth): void {
  // Callback style, not async: it runs on every request (forward-auth included) and an async
  // hook costs a promise and a tick each time (about 15% of a bare route's throughput).
  app.addHook('onRequest', (req: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) => {
    // Decided by the matched route, never by the raw URL text: the router decodes
    // percent-escapes (`/%761/instances` is `/v1/instances`), the URL string does not.
    const need = req.routeOptions.config?.auth;
    if (need === 'none') return done();
    const principal = authenticate(keys, failures, req, reply, session);
    if (!principal) return;
    if (!allowed(need, principal.role)) return void sendProblem(reply, 403, Codes.forbidden, `a ${principal.role} key cannot make this call`);
    req.principal = principal;
    done();
  });
}
