/**
 * Signed access tokens for player traffic. A token is `<kind>.<payload>.<mac>`: the kind is one
 * letter, the payload is base64url(JSON), the MAC is HMAC-SHA256 over `<kind>.<payload>` with a
 * key derived from the access secret and the kind, so one kind can never be passed off as
 * another, and nothing is parsed before the MAC has been checked. Tokens are
 * self-contained: verifying one needs no store or network call (the forward-auth hot path).
 * Rotating the secret refuses every token signed with the old one.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * `link`: one-click access link (short-lived), exchanged for a `session` on first use.
 * `session`: cookie or `X-Poseidon-Access` header of one player on one hostname.
 * `bypass`: admin/bot token for every instance of one challenge (or all), logged on each use.
 */
export type TokenKind = 'link' | 'session' | 'bypass';

/** Claims of a player token (`link` or `session`): bound to one instance, team and hostname. */
export interface PlayerClaims {
  kind: 'link' | 'session';
  instance: string;
  team: string;
  /** The exact, lower-case hostname the token is valid on. */
  host: string;
  /** Expiry, epoch milliseconds (carried with second precision). */
  exp: number;
  /** For a link: expiry of the session it is exchanged for. */
  sessionExp?: number;
  /** Set when the session was obtained with a bypass token: its name, logged on each use. */
  bypass?: string;
}

/** Claims of a bypass token: every live instance of `challenge` (`*`: every challenge). */
export interface BypassClaims {
  kind: 'bypass';
  /** Who holds it (`xss-bot`, `checker`): appears in logs, never the token. */
  name: string;
  challenge: string;
  exp: number;
}

export type AccessClaims = PlayerClaims | BypassClaims;

const KINDS: Record<string, TokenKind> = { l: 'link', s: 'session', b: 'bypass' };
const CODE: Record<TokenKind, string> = { link: 'l', session: 's', bypass: 'b' };
/** Verified tokens remembered per `AccessTokens` (about 3 MB at most). */
const VERIFIED_CACHE = 10_000;
/** Longest token accepted; anything longer is refused before any work. */
export const MAX_TOKEN_LENGTH = 1024;

interface Wire {
  v: 1;
  k: string;
  e: number;
  i?: string;
  t?: string;
  h?: string;
  x?: number;
  n?: string;
  c?: string;
}

function b64(buf: Buffer | string): string {
  return Buffer.from(buf).toString('base64url');
}

function toWire(c: AccessClaims): Wire {
  const w: Wire = { v: 1, k: CODE[c.kind], e: Math.floor(c.exp / 1000) };
  if (c.kind === 'bypass') return { ...w, n: c.name, c: c.challenge };
  Object.assign(w, { i: c.instance, t: c.team, h: c.host });
  if (c.sessionExp !== undefined) w.x = Math.floor(c.sessionExp / 1000);
  if (c.bypass !== undefined) w.n = c.bypass;
  return w;
}

function str(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= 253;
}

function fromWire(w: Wire): AccessClaims | undefined {
  const kind = KINDS[w.k];
  if (w.v !== 1 || !kind || !Number.isSafeInteger(w.e)) return undefined;
  const exp = w.e * 1000;
  if (kind === 'bypass') return str(w.n) && str(w.c) ? { kind, name: w.n, challenge: w.c, exp } : undefined;
  if (!str(w.i) || !str(w.t) || !str(w.h)) return undefined;
  const c: PlayerClaims = { kind, instance: w.i, team: w.t, host: w.h, exp };
  if (w.x !== undefined) {
    if (!Number.isSafeInteger(w.x)) return undefined;
    c.sessionExp = w.x * 1000;
  }
  if (w.n !== undefined) {
    if (!str(w.n)) return undefined;
    c.bypass = w.n;
  }
  return c;
}

/**
 * Signs and verifies access tokens with one secret. Keys are derived per kind
 * (HMAC(secret, "poseidon/access/v1/<kind>")); the secret itself is never used directly.
 */
export class AccessTokens {
  readonly #keys: Record<string, Buffer>;
  /**
   * Tokens whose MAC has been checked, with their (frozen) claims: a browser sends the same
   * cookie on every request, so forward-auth pays for the HMAC once per token, not per request.
   * Keyed by the exact token string and owned by this instance (one secret); expiry is still
   * checked on every use. Forged tokens are never cached.
   */
  readonly #verified = new Map<string, AccessClaims>();

  /** `secret` must be at least 16 characters (config enforces it); throws otherwise. */
  constructor(secret: string) {
    if (typeof secret !== 'string' || secret.length < 16) throw new Error('access secret must be at least 16 characters');
    this.#keys = {};
    for (const code of Object.values(CODE)) this.#keys[code] = createHmac('sha256', secret).update(`poseidon/access/v1/${code}`).digest();
  }

  /** A token carrying `claims`. Expiry is rounded down to the second. */
  sign(claims: AccessClaims): string {
    const w = toWire(claims);
    const signed = `${w.k}.${b64(JSON.stringify(w))}`;
    return `${signed}.${b64(this.#mac(w.k, signed))}`;
  }

  /**
   * The claims of `token` when its MAC is right for its kind, it is well-formed and not expired
   * at `now` (epoch ms); undefined otherwise (never throws). Callers still check the binding
   * (host, instance, challenge) against the request.
   */
  verify(token: string, now: number): AccessClaims | undefined {
    const known = this.#verified.get(token);
    const claims = known ?? this.#check(token);
    if (!claims) return undefined;
    if (!known) {
      // Bounded: drop the oldest entry (Map keeps insertion order) when full.
      if (this.#verified.size >= VERIFIED_CACHE) this.#verified.delete(this.#verified.keys().next().value as string);
      this.#verified.set(token, claims);
    }
    return claims.exp > now ? claims : undefined;
  }

  /** Full check of MAC and shape (no expiry); frozen claims or undefined. */
  #check(token: string): AccessClaims | undefined {
    if (typeof token !== 'string' || token.length > MAX_TOKEN_LENGTH || token[1] !== '.') return undefined;
    const code = token[0] as string;
    const last = token.lastIndexOf('.');
    if (!KINDS[code] || last <= 2) return undefined;
    const signed = token.slice(0, last);
    // Compare the encoded MAC, not decoded bytes: base64url has spare bits, so two strings can
    // decode to the same bytes, and a token must have exactly one spelling.
    const given = Buffer.from(token.slice(last + 1), 'latin1');
    const expected = Buffer.from(b64(this.#mac(code, signed)), 'latin1');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
    let w: Wire;
    try {
      w = JSON.parse(Buffer.from(signed.slice(2), 'base64url').toString('utf8')) as Wire;
    } catch {
      return undefined;
    }
    if (w === null || typeof w !== 'object' || w.k !== code) return undefined;
    const claims = fromWire(w);
    return claims && Object.freeze(claims);
  }

  #mac(code: string, payload: string): Buffer {
    return createHmac('sha256', this.#keys[code] as Buffer).update(payload).digest();
  }
}
