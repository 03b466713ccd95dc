import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Codes } from '../core/errors.ts';
import { sendProblem } from './problem.ts';

export type Role = 'platform' | 'admin';

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
    /** `none`: no key (health, forward-auth); `admin`: admin keys only; default: any key. */
    auth?: 'none' | Role;
  }
}

/** SHA-256 of a key, the form keys are configured and compared in. */
export function keyDigest(key: string): Buffer {
  return createHash('sha256').update(key).digest();
}

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

/** Finds the key in constant time per configured key (every digest is compared, no early exit). */
function match(keys: readonly ApiKey[], given: string): ApiKey | undefined {
  const d = keyDigest(given);
  let found: ApiKey | undefined;
  for (const k of keys) if (timingSafeEqual(k.digest, d) && !found) found = k;
  return found;
}

/**
 * Requires `x-api-key` on every route (and on unknown paths) unless the route says `config: { auth: 'none' }`;
 * routes with `auth: 'admin'` refuse platform keys (403). Sets `req.principal`.
 */
export function registerAuth(app: FastifyInstance, keys: readonly ApiKey[]): void {
  // Callback style, not async: it runs on every request (forward-auth included) and an async
  // hook costs a promise and a tick each time (about 15% of a bare route's throughput).
  app.addHook('onRequest', (req: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) => {
    // Decided by the matched route, never by the raw URL text: the router decodes
    // percent-escapes (`/%761/instances` is `/v1/instances`), the URL string does not.
    const need = req.routeOptions.config?.auth;
    if (need === 'none') return done();
    const given = req.headers['x-api-key'];
    const key = typeof given === 'string' ? match(keys, given) : undefined;
    if (!key) return void sendProblem(reply, 401, Codes.unauthorized, 'missing or invalid x-api-key');
    if (need === 'admin' && key.role !== 'admin') return void sendProblem(reply, 403, Codes.forbidden, 'this call needs an admin key');
    req.principal = { key: key.name, role: key.role, ...(key.team ? { team: key.team } : {}) };
    done();
  });
}
