/**
 * The forward-auth decision: given what Traefik sends (X-Forwarded-Host/Uri/Method, the
 * player's cookies and `X-Poseidon-Access`), allow, deny, or exchange an access link for a
 * cookie. In token mode the hot path (a cookie for a held instance) is an HMAC check and two map
 * lookups: no store or network call. Denials carry the page the player should see.
 */
import type { Logger } from '../core/reconcile.ts';
import { isLive, wantsRunning, type Instance } from '../core/instance.ts';
import { hostPrefix } from '../core/naming.ts';
import type { AccessClaims, AccessTokens, PlayerClaims } from './access-token.ts';
import { accessCookie, accessCookieName, cookieValues } from './cookies.ts';
import type { DelegateAuth } from './delegate.ts';
import { parseInstanceHost, type InstanceHost } from './host.ts';
import type { InstanceIndex } from './instance-index.ts';
import { pageFor, pageStatus, type PageKind } from './page.ts';

/** Query parameter carrying an access link token. */
export const LINK_PARAM = 'poseidon_access';
/** Request header carrying a session or bypass token (the bearer form for curl and pwntools). */
export const ACCESS_HEADER = 'x-poseidon-access';

export interface AccessContext {
  tokens: AccessTokens;
  index: InstanceIndex;
  baseDomain: string;
  tls: boolean;
  mode: 'token' | 'delegate';
  delegate?: DelegateAuth;
  log: Logger;
}

/** What forward-auth receives; header values as Node gives them. */
export interface AuthzRequest {
  host: string | string[] | undefined;
  uri: string | undefined;
  method: string | undefined;
  cookie: string | string[] | undefined;
  access: string | string[] | undefined;
  authorization?: string | undefined;
}

export type AuthzDecision =
  | { status: 200 }
  | { status: 302; location: string; setCookie?: string }
  | { status: number; page: PageKind; reason: string };

type Deny = Extract<AuthzDecision, { page: PageKind }>;

/** A denial showing `page`, with that page's status; `reason` is for logs only. */
function deny(page: PageKind, reason: string): Deny {
  return { status: pageStatus(page), page, reason };
}

/**
 * The hot path, with no await: true when a session cookie or header token for `host` names the
 * instance the index holds there, of the token's team, and it is live. Undefined otherwise, and
 * then {@link authorize} decides; so this can only ever allow what `authorize` would allow.
 */
export function allowFast(ctx: AccessContext, req: AuthzRequest, now: number): boolean {
  if (typeof req.uri === 'string' && mentionsLink(req.uri)) return false;
  const parsed = parseInstanceHost(req.host, ctx.baseDomain);
  if (!parsed.ok) return false;
  const host = parsed.value;
  const held = ctx.index.byHost(host.prefix, host.challenge);
  if (!held || !wantsRunning(held, now)) return false;
  for (const { value } of candidates(ctx, req)) {
    const c = ctx.tokens.verify(value, now);
    if (c?.kind === 'session' && c.host === host.host && c.instance === held.id && c.team === held.team && c.bypass === undefined) return true;
  }
  return false;
}

function candidates(ctx: AccessContext, req: AuthzRequest): { value: string; header: boolean }[] {
  return [
    ...cookieValues(req.cookie, accessCookieName(ctx.tls)).map((value) => ({ value, header: false })),
    ...headerValues(req.access).map((value) => ({ value, header: true })),
  ];
}

/** Decides one forward-auth request at `now`; see the module comment. Never rejects. */
export async function authorize(ctx: AccessContext, req: AuthzRequest, now: number): Promise<AuthzDecision> {
  const parsed = parseInstanceHost(req.host, ctx.baseDomain);
  if (!parsed.ok) return deny('forbidden', parsed.reason);
  const host = parsed.value;
  const uri = typeof req.uri === 'string' ? req.uri : '/';
  if (mentionsLink(uri)) {
    const link = splitLink(uri);
    if (link) return exchangeAtGate(ctx, req, host, link, now);
    // The parameter in a form the exchange does not take (`;`, a second `?`, escaped): it must
    // never travel on to the backend with a token in it.
    return deny('bad-request', 'malformed access link');
  }
  const granted = await sessionGrant(ctx, req, host, now);
  if (granted === true) return { status: 200 };
  if (granted) return granted;
  if (ctx.mode === 'delegate' && ctx.delegate) return delegated(ctx, req, host, now);
  return deny('needs-link', 'no valid access token');
}

async function exchangeAtGate(ctx: AccessContext, req: AuthzRequest, host: InstanceHost, link: SplitLink, now: number): Promise<AuthzDecision> {
  const method = (req.method ?? 'GET').toUpperCase();
  // A link must never travel on to the backend: only a GET/HEAD can be redirected away from it.
  if (method !== 'GET' && method !== 'HEAD') return deny('bad-request', 'access link on a non-GET request');
  const exchanged = await exchangeLink(ctx, host, link.token, now);
  if (exchanged.ok) return { status: 302, location: link.clean, setCookie: exchanged.setCookie };
  if (exchanged.page !== 'link-expired') return deny(exchanged.page, 'link for an instance that is not live');
  const granted = await sessionGrant(ctx, req, host, now);
  if (granted === true) return { status: 302, location: link.clean };
  return deny('link-expired', 'invalid or expired access link');
}

export type Exchange = { ok: true; setCookie: string; instance: Instance } | { ok: false; page: PageKind };

/**
 * Turns a link (or bypass) token for `host` into a Set-Cookie value with a host-bound session.
 * The instance must exist and be live (a queued or starting one is fine: the cookie waits for
 * its route). Not ok with `link-expired` for a bad token, or the instance's page otherwise.
 */
export async function exchangeLink(ctx: AccessContext, host: InstanceHost, token: string, now: number): Promise<Exchange> {
  const claims = ctx.tokens.verify(token, now);
  const target = claims ? await linkTarget(ctx, claims, host) : undefined;
  if (!claims || !target) return { ok: false, page: 'link-expired' };
  if (!isLive(target, now)) return { ok: false, page: pageFor(target, now) };
  const session: PlayerClaims = { kind: 'session', instance: target.id, team: target.team, host: host.host, exp: target.maxExpiresAt };
  if (claims.kind === 'link' && claims.sessionExp !== undefined) session.exp = Math.min(session.exp, claims.sessionExp);
  if (claims.kind === 'bypass') {
    session.exp = Math.min(session.exp, claims.exp);
    session.bypass = claims.name;
    ctx.log.info({ bypass: claims.name, instance: target.id, host: host.host }, 'access bypass link used');
  }
  if (session.exp <= now) return { ok: false, page: 'link-expired' };
  const cookie = accessCookie(ctx.tokens.sign(session), (session.exp - now) / 1000, ctx.tls);
  return { ok: true, setCookie: cookie, instance: target };
}

async function linkTarget(ctx: AccessContext, claims: AccessClaims, host: InstanceHost): Promise<Instance | undefined> {
  if (claims.kind === 'bypass') {
    return claims.challenge === '*' || claims.challenge === host.challenge ? ctx.index.byHost(host.prefix, host.challenge) : undefined;
  }
  if (claims.kind !== 'link' || claims.host !== host.host) return undefined;
  return ownInstance(ctx, claims, host);
}

/** The instance a player token names, when it is the one behind `host` and owned by the token's team. */
async function ownInstance(ctx: AccessContext, claims: PlayerClaims, host: InstanceHost): Promise<Instance | undefined> {
  const held = ctx.index.byHost(host.prefix, host.challenge);
  if (held?.id === claims.instance) return held.team === claims.team ? held : undefined;
  let inst: Instance | undefined;
  try {
    inst = await ctx.index.resolve(claims.instance);
  } catch {
    return undefined; // fail closed when the store cannot be read
  }
  const matches = inst && inst.challenge === host.challenge && hostPrefix(inst.id) === host.prefix && inst.team === claims.team;
  return matches ? inst : undefined;
}

/**
 * True when a cookie or `X-Poseidon-Access` token grants `host` now; a denial when a valid token
 * names an instance that is no longer live; undefined when no token applies.
 */
async function sessionGrant(ctx: AccessContext, req: AuthzRequest, host: InstanceHost, now: number): Promise<true | Deny | undefined> {
  let gone: Deny | undefined;
  for (const { value, header } of candidates(ctx, req)) {
    const claims = ctx.tokens.verify(value, now);
    if (!claims || claims.kind === 'link') continue;
    // Bypass tokens are not host-bound, so only the header (stripped before the backend) may carry one.
    const inst = claims.kind === 'bypass' ? (header ? bypassTarget(ctx, claims, host) : undefined)
      : claims.host === host.host ? await ownInstance(ctx, claims, host) : undefined;
    if (!inst) continue;
    if (!wantsRunning(inst, now)) {
      gone = deny(pageFor(inst, now), 'instance is not live');
      continue;
    }
    const bypass = claims.kind === 'bypass' ? claims.name : claims.bypass;
    if (bypass !== undefined) ctx.log.info({ bypass, instance: inst.id, host: host.host }, 'access bypass used');
    return true;
  }
  return gone;
}

function bypassTarget(ctx: AccessContext, claims: Extract<AccessClaims, { kind: 'bypass' }>, host: InstanceHost): Instance | undefined {
  if (claims.challenge !== '*' && claims.challenge !== host.challenge) return undefined;
  return ctx.index.byHost(host.prefix, host.challenge);
}

function headerValues(v: string | string[] | undefined): string[] {
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : v.split(',')).slice(0, 4).map((s) => s.trim());
}

async function delegated(ctx: AccessContext, req: AuthzRequest, host: InstanceHost, now: number): Promise<AuthzDecision> {
  const inst = ctx.index.byHost(host.prefix, host.challenge);
  if (!inst) return deny('forbidden', 'unknown instance');
  if (!wantsRunning(inst, now)) return deny(pageFor(inst, now), 'instance is not live');
  const cookie = Array.isArray(req.cookie) ? req.cookie.join('; ') : req.cookie;
  const who = await (ctx.delegate as DelegateAuth).whoIs(cookie, req.authorization);
  if (who.kind === 'unavailable') return deny('unavailable', who.reason);
  if (who.kind === 'anonymous') return deny('needs-login', 'platform does not know this session');
  // Only user-scoped instances belong to one user; a team's instance admits every teammate.
  const sameUser = !inst.owner.startsWith('user:') || inst.user === who.user;
  return who.team === inst.team && sameUser ? { status: 200 } : deny('forbidden', 'instance owned by another team');
}

/** Whether the link parameter appears anywhere in the URI, percent-decoded and in any case. */
function mentionsLink(uri: string): boolean {
  let text = uri;
  for (let i = 0; i < 3 && text.includes('%'); i++) text = safeDecode(text);
  return text.toLowerCase().includes(LINK_PARAM);
}

export interface SplitLink {
  token: string;
  /** Where to send the browser: the same path and query without the link parameter. */
  clean: string;
}

/**
 * Splits a request URI into its first link token and the clean URI without any link parameter.
 * The clean URI always starts with exactly one `/` (never `//host`, an open redirect) and holds
 * only printable ASCII. Undefined when there is no link parameter.
 */
export function splitLink(uri: string): SplitLink | undefined {
  const q = uri.indexOf('?');
  const rawPath = q === -1 ? uri : uri.slice(0, q);
  const kept: string[] = [];
  let token: string | undefined;
  for (const part of q === -1 ? [] : uri.slice(q + 1).split('&')) {
    const eq = part.indexOf('=');
    const key = safeDecode(eq === -1 ? part : part.slice(0, eq));
    if (key !== LINK_PARAM) {
      if (part !== '') kept.push(part);
      continue;
    }
    token ??= safeDecode(eq === -1 ? '' : part.slice(eq + 1));
  }
  if (token === undefined) return undefined;
  const path = `/${rawPath.replace(/^[/\\]+/, '')}`;
  const clean = kept.length ? `${path}?${kept.join('&')}` : path;
  return { token, clean: /^[\x21-\x7e]*$/.test(clean) ? clean : '/' };
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s.replaceAll('+', ' '));
  } catch {
    return s;
  }
}
