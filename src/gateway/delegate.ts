/**
 * Delegate mode: the platform (CTFd or similar) knows whose browser session a cookie is, so
 * Poseidon asks it. `GET <url>` with the player's Cookie (and Authorization) headers; the
 * platform answers 200 `{"team": "...", "user": "..."}` for a signed-in player, 401/403 (or a
 * redirect to its login page) otherwise. Answers are cached for a few seconds per credential;
 * concurrent questions about the same credential share one call. Anything else (timeout,
 * 5xx, malformed body) is "unavailable": the caller must deny (fail closed), and it is not cached.
 */
import { createHash } from 'node:crypto';

export type DelegateAnswer =
  | { kind: 'player'; team: string; user?: string }
  | { kind: 'anonymous' }
  | { kind: 'unavailable'; reason: string };

export interface DelegateOptions {
  url: string;
  /**
   * The platform's session cookie names (CTFd: `session`): only these cookies are sent, and the
   * cache is keyed by them alone, so challenge cookies never reach the platform and a random
   * extra cookie per request costs no call. Empty: none forwarded (Authorization only).
   */
  cookies: readonly string[];
  cacheMs: number;
  timeoutMs: number;
  /** Entries kept at most (oldest dropped first). Default 10,000. */
  maxEntries?: number;
  now?: () => number;
  /** Told (at most every 10 s) when the platform cannot answer, so a fail-closed outage is visible. */
  log?: { warn(obj: object, msg: string): void };
}

/** Same grammar as API team and user ids: anything else from the platform is refused. */
const PRINCIPAL = /^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$/;
const MAX_BODY = 16 * 1024;

/** Asks the platform who a credential belongs to; see the module comment for the contract. */
export class DelegateAuth {
  readonly #opts: DelegateOptions;
  readonly #now: () => number;
  readonly #cache = new Map<string, { answer: DelegateAnswer; until: number }>();
  readonly #inflight = new Map<string, Promise<DelegateAnswer>>();
  #warnedAt = -Infinity;

  constructor(opts: DelegateOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
  }

  /**
   * Who `cookie`/`authorization` belong to. No credential at all is `anonymous` without a call.
   * Never rejects: failures come back as `unavailable`.
   */
  whoIs(cookieHeader: string | undefined, authorization: string | undefined): Promise<DelegateAnswer> {
    const cookie = sessionCookies(cookieHeader, this.#opts.cookies);
    if (!cookie && !authorization) return Promise.resolve({ kind: 'anonymous' });
    const key = createHash('sha256').update(`${cookie ?? ''}\n${authorization ?? ''}`).digest('base64');
    const hit = this.#cache.get(key);
    if (hit && hit.until > this.#now()) return Promise.resolve(hit.answer);
    const pending = this.#inflight.get(key);
    if (pending) return pending;
    const call = this.#ask(cookie, authorization).then((answer) => {
      if (answer.kind !== 'unavailable') this.#remember(key, answer);
      else this.#warn(answer.reason);
      return answer;
    }).finally(() => this.#inflight.delete(key));
    this.#inflight.set(key, call);
    return call;
  }

  #warn(reason: string): void {
    const now = this.#now();
    if (now - this.#warnedAt < 10_000) return;
    this.#warnedAt = now;
    this.#opts.log?.warn({ reason }, 'platform cannot say who a session belongs to: refusing access (delegate mode)');
  }

  #remember(key: string, answer: DelegateAnswer): void {
    if (this.#opts.cacheMs <= 0) return;
    const max = this.#opts.maxEntries ?? 10_000;
    while (this.#cache.size >= max) {
      const oldest = this.#cache.keys().next().value as string;
      this.#cache.delete(oldest);
    }
    this.#cache.delete(key);
    this.#cache.set(key, { answer, until: this.#now() + this.#opts.cacheMs });
  }

  async #ask(cookie: string | undefined, authorization: string | undefined): Promise<DelegateAnswer> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (cookie) headers.cookie = cookie;
    if (authorization) headers.authorization = authorization;
    let res: Response;
    try {
      res = await fetch(this.#opts.url, { headers, redirect: 'manual', signal: AbortSignal.timeout(this.#opts.timeoutMs) });
    } catch (err) {
      return { kind: 'unavailable', reason: `platform unreachable: ${(err as Error).name}` };
    }
    if (res.status === 401 || res.status === 403 || (res.status >= 300 && res.status < 400)) {
      await res.body?.cancel();
      return { kind: 'anonymous' };
    }
    if (res.status !== 200) {
      await res.body?.cancel();
      return { kind: 'unavailable', reason: `platform answered ${res.status}` };
    }
    return parseAnswer(await readCapped(res));
  }
}

/**
 * The `name=value` pairs of `header` whose name is one of `names` (at most 4 per name, each
 * value at most 4 KiB), in header order, joined as a Cookie header; undefined when none.
 */
export function sessionCookies(header: string | undefined, names: readonly string[]): string | undefined {
  if (!header || names.length === 0) return undefined;
  const kept: string[] = [];
  const seen = new Map<string, number>();
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const name = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    const n = seen.get(name) ?? 0;
    if (!names.includes(name) || n >= 4 || value.length > 4096) continue;
    seen.set(name, n + 1);
    kept.push(`${name}=${value}`);
  }
  return kept.length ? kept.join('; ') : undefined;
}

async function readCapped(res: Response): Promise<string | undefined> {
  const declared = Number(res.headers.get('content-length') ?? '0');
  if (declared > MAX_BODY) {
    await res.body?.cancel();
    return undefined;
  }
  const text = await res.text().catch(() => undefined);
  return text !== undefined && text.length <= MAX_BODY ? text : undefined;
}

function parseAnswer(text: string | undefined): DelegateAnswer {
  if (text === undefined) return { kind: 'unavailable', reason: 'platform answer too large' };
  let body: { team?: unknown; user?: unknown };
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    return { kind: 'unavailable', reason: 'platform answer is not JSON' };
  }
  if (body === null || typeof body !== 'object') return { kind: 'unavailable', reason: 'platform answer is not an object' };
  if (body.team === undefined || body.team === null) return { kind: 'anonymous' };
  if (typeof body.team !== 'string' || !PRINCIPAL.test(body.team)) return { kind: 'unavailable', reason: 'platform answered a malformed team' };
  if (body.user !== undefined && (typeof body.user !== 'string' || !PRINCIPAL.test(body.user))) {
    return { kind: 'unavailable', reason: 'platform answered a malformed user' };
  }
  return body.user === undefined ? { kind: 'player', team: body.team } : { kind: 'player', team: body.team, user: body.user };
}
