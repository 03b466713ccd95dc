/**
 * The operator status page (issue 10): `GET /status` (the sign-in page, or the signed-in shell),
 * its static files under `/status/`, `POST /status/login` (an admin or operator API key for an
 * HttpOnly, SameSite=Strict session cookie), `POST /status/logout`, and `GET /status/audit`
 * (the audit trail: this process's, or with Redis the one every replica shares). The page reads
 * and acts through the ordinary `/v1` routes with its session (see `SessionAuth` in auth.ts);
 * every operator and admin action is audited here.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Codes } from '../core/errors.ts';
import { loadAssets } from '../status/assets.ts';
import { actionName, AUDIT_SIZE, AuditLog, type AuditTrail } from '../status/audit.ts';
import { loginPage, PAGE_HEADERS, shellPage } from '../status/page.ts';
import { sameOrigin, sessionCookie, StatusSessions } from '../status/session.ts';
import { matchKey, READ_ROUTE, type ApiKey, type FailedAuth } from './auth.ts';
import { sendProblem } from './problem.ts';

export interface StatusRouteDeps {
  keys: readonly ApiKey[];
  failures: FailedAuth;
  sessions: StatusSessions;
  /** Where audit entries are kept (default: this process's ring). */
  trail?: AuditTrail;
}

/** The page's sessions, when the app has a secret to sign them with (`statusSecret`). */
export function statusSessions(deps: { statusSecret?: string; now?: () => number }, keys: readonly ApiKey[]): StatusSessions | undefined {
  return deps.statusSecret ? new StatusSessions(deps.statusSecret, keys, deps.now) : undefined;
}

const loginBody = { type: 'object', additionalProperties: false, required: ['key'], properties: { key: { type: 'string', maxLength: 1024 } } } as const;
const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);
/** The activity figures another module serves; the page shows dashes until it exists. */
const SUMMARY_URL = '/v1/status/summary';

const tls = (req: FastifyRequest): boolean => req.protocol === 'https';

function page(reply: FastifyReply, html: string): FastifyReply {
  return reply.headers(PAGE_HEADERS).type('text/html; charset=utf-8').send(html);
}

/** Registers the page's routes and the audit hook (on every route of `app`). */
export function statusRoutes(app: FastifyInstance, deps: StatusRouteDeps): void {
  const audit = new AuditLog(app.log, deps.trail);
  pageRoutes(app, deps.sessions);
  sessionRoutes(app, deps, audit);
  auditRoutes(app, deps.sessions, audit);
}

/** `GET /status` (sign-in page or shell) and the static files. */
function pageRoutes(app: FastifyInstance, sessions: StatusSessions): void {
  const assets = loadAssets();
  const modules = [...assets.keys()];
  app.get('/status', { config: { auth: 'none' }, schema: { summary: 'Status page (HTML)' } }, async (req, reply) => {
    const s = sessions.fromRequest(req);
    if (!s) return page(reply, loginPage(modules));
    const summary = app.hasRoute({ method: 'GET', url: SUMMARY_URL }) ? SUMMARY_URL : undefined;
    return page(reply, shellPage({ name: s.name, role: s.role, csrf: sessions.csrf(s), expiresAt: new Date(s.exp).toISOString(), modules, ...(summary ? { summary } : {}) }));
  });
  for (const [name, asset] of assets) {
    app.get(`/status/${name}`, { config: { auth: 'none' }, schema: { summary: 'Status page asset' } }, async (req, reply) => {
      reply.headers({ ...PAGE_HEADERS, 'cache-control': 'no-cache', etag: asset.etag });
      if (req.headers['if-none-match'] === asset.etag) return reply.code(304).send();
      return reply.type(asset.type).send(asset.body);
    });
  }
}

/** `POST /status/login` and `POST /status/logout`. */
function sessionRoutes(app: FastifyInstance, deps: StatusRouteDeps, audit: AuditLog): void {
  app.post<{ Body: { key: string } }>('/status/login', {
    config: { auth: 'none' }, schema: { summary: 'Status page: exchange an admin or operator key for a session cookie', body: loginBody },
  }, async (req, reply) => signIn(req, reply, deps, audit));
  app.post('/status/logout', { config: { auth: 'none' }, schema: { summary: 'Status page: sign out' } }, async (req, reply) => {
    reply.headers(PAGE_HEADERS);
    if (!sameOrigin(req)) return sendProblem(reply, 403, Codes.forbidden, 'cross-origin sign-out refused');
    const s = deps.sessions.fromRequest(req);
    if (s) audit.record({ who: s.name, role: s.role, action: 'sign out', status: 204, via: 'session' });
    return reply.header('set-cookie', sessionCookie(undefined, tls(req))).code(204).send();
  });
}

/**
 * Exchanges a key for a session cookie: same origin only, under the same per-address failure
 * limit as keys on the API (a wrong key counts), admin and operator keys only.
 */
async function signIn(req: FastifyRequest<{ Body: { key: string } }>, reply: FastifyReply, deps: StatusRouteDeps, audit: AuditLog): Promise<FastifyReply> {
  const { failures, sessions } = deps;
  reply.headers(PAGE_HEADERS);
  if (!sameOrigin(req)) return sendProblem(reply, 403, Codes.forbidden, 'cross-origin sign-in refused');
  const wait = failures.blockedFor(req.ip);
  if (wait > 0) {
    const seconds = Math.max(1, Math.ceil(wait / 1000));
    reply.header('retry-after', String(seconds));
    return sendProblem(reply, 429, Codes.rateLimited, `too many failed key attempts from this address; retry in ${seconds}s`, { retryAfterSeconds: seconds });
  }
  const key = matchKey(deps.keys, req.body.key);
  if (!key) {
    failures.fail(req.ip);
    audit.record({ who: '(unknown key)', role: '-', action: 'sign in', status: 401, via: 'key' });
    return sendProblem(reply, 401, Codes.unauthorized, 'unknown API key');
  }
  const token = sessions.sign(key);
  const session = token === undefined ? undefined : sessions.verify(token);
  if (!token || !session) {
    audit.record({ who: key.name, role: key.role, action: 'sign in', status: 403, via: 'key' });
    return sendProblem(reply, 403, Codes.forbidden, `a ${key.role} key cannot sign in to the status page (admin or operator only)`);
  }
  audit.record({ who: key.name, role: key.role, action: 'sign in', status: 200, via: 'key' });
  return reply.header('set-cookie', sessionCookie(token, tls(req))).send({ name: key.name, role: key.role, expiresAt: new Date(session.exp).toISOString() });
}

/** `GET /status/audit` and the hook that records every operator and admin action. */
function auditRoutes(app: FastifyInstance, sessions: StatusSessions, audit: AuditLog): void {
  app.get('/status/audit', { config: { auth: READ_ROUTE }, schema: { summary: 'Operator and admin actions, newest first (last 500; scope: this process, or shared by every replica on Redis); 503 when the trail is unreadable' } }, async (_req, reply) => {
    reply.header('cache-control', 'no-store');
    return { entries: await audit.list(), size: AUDIT_SIZE, scope: audit.trail.scope };
  });
  // Every action an operator or admin makes, through the page or with a key; refusals of a
  // page session too (an operator session trying an admin action, a missing CSRF header).
  // Callback style and a method check first: it runs on every request, forward-auth included.
  app.addHook('onResponse', (req, reply, done) => {
    const route = req.routeOptions.url;
    if (SAFE.has(req.method) || route === undefined || route.startsWith('/status')) return done();
    const p = req.principal;
    const target = auditTarget(route, req.params, req.body);
    const base = { action: actionName(req.method, route), status: reply.statusCode, ...(target ? { target } : {}) };
    if (p && (p.role === 'admin' || p.role === 'operator')) {
      audit.record({ ...base, who: p.key, role: p.role, via: req.headers['x-api-key'] === undefined ? 'session' : 'key' });
    } else if (!p && (reply.statusCode === 401 || reply.statusCode === 403) && req.headers['x-api-key'] === undefined) {
      const s = sessions.fromRequest(req);
      if (s) audit.record({ ...base, who: s.name, role: s.role, via: 'session' });
    }
    done();
  });
}

/**
 * What an action was aimed at: the route's `:id` (instance, worker), or for a launch its
 * team/challenge. Only those named fields are read (a body may hold a flag: never quoted).
 */
function auditTarget(route: string, params: unknown, body: unknown): string | undefined {
  const id = (params as { id?: unknown } | undefined)?.id;
  if (typeof id === 'string') return id.slice(0, 128);
  const b = body as { team?: unknown; challenge?: unknown } | undefined;
  if (route === '/v1/instances' && typeof b?.team === 'string' && typeof b.challenge === 'string') return `${b.team}/${b.challenge}`.slice(0, 128);
  return undefined;
}
