/**
 * Operator sessions of the status page. Signing in exchanges an API key (admin or operator) for
 * a cookie `o.<payload>.<mac>` in the style of the access tokens (src/gateway/access-token.ts):
 * the payload is base64url(JSON) with the key's name, its role, an expiry and a nonce; the MAC
 * is HMAC-SHA256 with a key derived from the access secret for this purpose only, so a player
 * token can never pass for a session or the other way round. The API key itself is never in the
 * cookie; a fingerprint of its digest is, so removing or changing a key ends its sessions.
 *
 * Requests from the page that change something also carry a CSRF token: an HMAC of the session
 * token under a second derived key, sent to the page in its HTML (never in a cookie), and come
 * from the same origin (`Origin`, `Sec-Fetch-Site`).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { ApiKey, Principal, SessionAuth, SessionVerdict } from '../api/auth.ts';
import { cookieValues } from '../gateway/cookies.ts';

/** The cookie's name (host-only, Path=/; distinct from the player access cookie `poseidon`). */
export const SESSION_COOKIE = 'poseidon_status';
/** The header carrying the CSRF token on every non-GET request from the page. */
export const CSRF_HEADER = 'x-poseidon-csrf';
/** How long a session lasts. */
export const SESSION_MS = 12 * 3_600_000;
/** Roles that may sign in to the page. */
const PAGE_ROLES = new Set(['admin', 'operator']);
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
const MAX_TOKEN = 1024;

/** What a verified session says. */
export interface Session {
  name: string;
  role: 'admin' | 'operator';
  /** Expiry, epoch ms (second precision). */
  exp: number;
  /** The token itself (the CSRF token is derived from it). */
  token: string;
}

interface Wire { v: 1; n: string; r: string; e: number; k: string; s: string }

const b64 = (buf: Buffer | string): string => Buffer.from(buf).toString('base64url');

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'latin1');
  const y = Buffer.from(b, 'latin1');
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * Signs and verifies status-page sessions against the configured keys. Doubles as the
 * `SessionAuth` the API's auth hook consults when a request has no `x-api-key`.
 */
export class StatusSessions implements SessionAuth {
  readonly #mac: Buffer;
  readonly #csrf: Buffer;
  readonly #keys: readonly ApiKey[];

  /** `secret`: the access secret (at least 16 characters; throws otherwise). */
  constructor(secret: string, keys: readonly ApiKey[], private readonly now: () => number = Date.now) {
    if (typeof secret !== 'string' || secret.length < 16) throw new Error('status session secret must be at least 16 characters');
    this.#mac = createHmac('sha256', secret).update('poseidon/status/v1/session').digest();
    this.#csrf = createHmac('sha256', secret).update('poseidon/status/v1/csrf').digest();
    this.#keys = keys;
  }

  /** A session token for `key`, or undefined when its role may not sign in (platform, gateway). */
  sign(key: ApiKey): string | undefined {
    if (!PAGE_ROLES.has(key.role)) return undefined;
    const w: Wire = { v: 1, n: key.name, r: key.role, e: Math.floor((this.now() + SESSION_MS) / 1000), k: this.#fingerprint(key), s: b64(randomBytes(12)) };
    const payload = `o.${b64(JSON.stringify(w))}`;
    return `${payload}.${b64(this.#sign(payload))}`;
  }

  /**
   * The session in `token` when its MAC is right, it has not expired, and the key it was made
   * from is still configured with the same role; undefined otherwise (never throws).
   */
  verify(token: string): Session | undefined {
    if (typeof token !== 'string' || token.length > MAX_TOKEN || !token.startsWith('o.')) return undefined;
    const last = token.lastIndexOf('.');
    if (last <= 2) return undefined;
    const payload = token.slice(0, last);
    if (!safeEqual(token.slice(last + 1), b64(this.#sign(payload)))) return undefined;
    let w: Wire;
    try {
      w = JSON.parse(Buffer.from(payload.slice(2), 'base64url').toString('utf8')) as Wire;
    } catch {
      return undefined;
    }
    if (w === null || typeof w !== 'object' || w.v !== 1 || !Number.isSafeInteger(w.e) || w.e * 1000 <= this.now()) return undefined;
    const key = this.#keys.find((k) => k.name === w.n && k.role === w.r);
    if (!key || !PAGE_ROLES.has(key.role) || !safeEqual(String(w.k), this.#fingerprint(key))) return undefined;
    return { name: key.name, role: key.role as Session['role'], exp: w.e * 1000, token };
  }

  /** The first valid session among the request's cookies, if any. */
  fromRequest(req: FastifyRequest): Session | undefined {
    for (const v of cookieValues(req.headers.cookie, SESSION_COOKIE)) {
      const s = this.verify(v);
      if (s) return s;
    }
    return undefined;
  }

  /** The CSRF token of a session (what the page sends in `X-Poseidon-CSRF`). */
  csrf(session: Session): string {
    return b64(createHmac('sha256', this.#csrf).update(session.token).digest());
  }

  /**
   * The auth hook's question for a request without `x-api-key`: undefined when it carries no
   * session cookie at all; 401 when the cookie is invalid or expired; for anything but
   * GET/HEAD/OPTIONS, 403 without the right CSRF header or from another origin.
   */
  authenticate(req: FastifyRequest): SessionVerdict | undefined {
    if (cookieValues(req.headers.cookie, SESSION_COOKIE).length === 0) return undefined;
    const session = this.fromRequest(req);
    if (!session) return { status: 401, message: 'the status page session is invalid or has expired; sign in again' };
    if (!SAFE_METHODS.has(req.method)) {
      const given = req.headers[CSRF_HEADER];
      if (typeof given !== 'string' || !safeEqual(given, this.csrf(session))) return { status: 403, message: `missing or wrong ${CSRF_HEADER} header` };
      if (!sameOrigin(req)) return { status: 403, message: 'cross-origin request refused' };
    }
    const principal: Principal = { key: session.name, role: session.role };
    return { principal };
  }

  #sign(payload: string): Buffer {
    return createHmac('sha256', this.#mac).update(payload).digest();
  }

  /** Binds a session to the key's digest without revealing anything about the key. */
  #fingerprint(key: ApiKey): string {
    return b64(createHmac('sha256', this.#mac).update('key:').update(key.digest).digest().subarray(0, 12));
  }
}

/**
 * True when a browser says the request comes from this very origin: `Sec-Fetch-Site`, when
 * sent, is `same-origin`, and `Origin`, when sent, names this host (the `Host` the request was
 * made to); at least one of the two must be present (browsers send both on a POST or DELETE).
 */
export function sameOrigin(req: FastifyRequest): boolean {
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin') return false;
  const origin = req.headers.origin;
  if (origin === undefined) return site === 'same-origin';
  const host = req.headers.host?.toLowerCase();
  try {
    const u = new URL(origin);
    return (u.protocol === 'http:' || u.protocol === 'https:') && host !== undefined && u.host === host;
  } catch {
    return false;
  }
}

/** The Set-Cookie value carrying `token` (Secure over TLS), or clearing the cookie without one. */
export function sessionCookie(token: string | undefined, tls: boolean): string {
  const age = token === undefined ? 0 : Math.floor(SESSION_MS / 1000);
  return `${SESSION_COOKIE}=${token ?? ''}; Path=/; Max-Age=${age}; HttpOnly; SameSite=Strict${tls ? '; Secure' : ''}`;
}
