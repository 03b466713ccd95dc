import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Catalog } from '../catalog/catalog.ts';
import { Codes, PoseidonError } from '../core/errors.ts';
import type { Instance } from '../core/instance.ts';
import type { Store } from '../core/store.ts';
import { authenticate, FailedAuth, keyDigest, registerAuth, type ApiKey, type FailureLimit } from './auth.ts';
import type { RateLimits } from './guards.ts';
import type { EventHub } from '../events/hub.ts';
import type { InstanceIndex } from '../gateway/instance-index.ts';
import type { AccessContext } from '../gateway/authz.ts';
import type { GatewaySnapshot } from '../gateway/snapshot.ts';
import { accessRoutes } from './access-routes.ts';
import { catalogRoutes, type GitOpsApi } from './catalog-routes.ts';
import { eventRoutes } from './event-routes.ts';
import { gatewayRoutes } from './gateway-routes.ts';
import { flagRoutes } from './flag-routes.ts';
import { instanceRoutes } from './instance-routes.ts';
import { metricsRoutes, type MetricsRouteDeps } from './metrics-routes.ts';
import { workerRoutes, type WorkerRouteDeps } from './worker-routes.ts';
import { statusRoutes, statusSessions } from './status-routes.ts';
import type { AuditTrail } from '../status/audit.ts';
import { registerOpenApi } from './openapi.ts';
import { bounded, errorHandler, sendProblem } from './problem.ts';

export interface AppDeps {
  store: Store;
  catalog: Catalog;
  /** The admin key from POSEIDON_API_KEY (always valid as admin). */
  apiKey: string;
  /** Further keys (by digest) with roles. */
  apiKeys?: readonly ApiKey[];
  baseDomain: string;
  lifecycle: LifecycleSettings;
  /**
   * Which catalog version (spec hash) an instance should run after a renew or restart, per
   * the challenge's update policy; undefined keeps the instance's own. Provided by the catalog.
   */
  catalogVersion?: (inst: Instance, reason: 'renew' | 'restart') => string | undefined;
  /** The catalog sync loop (`/v1/catalog/plan`, `/v1/sync`, `/v1/hooks/git`); those answer 503 without it. */
  gitops?: GitOpsApi;
  /** Lifecycle events for the SSE routes; they are not registered without it. */
  events?: EventHub;
  now?: () => number;
  /** Process logger (pino); silent when absent. */
  logger?: FastifyBaseLogger;
  /** In-memory instance view (change feed + refresh) that serves instance reads; reads go to the store without it. */
  index?: InstanceIndex;
  /** Player access (forward-auth, links, catch-all page, HTTP provider); not registered without it. */
  access?: { context: AccessContext; snapshot: GatewaySnapshot; linkSeconds: number; queueMaxWaitMs?: number };
  /** Failed key attempts per client address (default 20 per minute). */
  authFailures?: FailureLimit;
  /** Fastify's `trustProxy`: the proxies whose X-Forwarded-For names the client (default none). */
  trustProxy?: boolean | string | string[];
  /** Reported by `GET /v1/version`. */
  version?: string;
  /** The fleet (`/v1/workers` and cordon, uncordon, drain); not registered without it. */
  workers?: WorkerRouteDeps;
  /** Metrics: the HTTP and forward-auth hooks, `/v1/status/summary`, and `/metrics` with a token; none without it. */
  metrics?: MetricsRouteDeps;
  /** Signs the status page's sessions (the access secret); the page (`/status`) is not served without it. */
  statusSecret?: string;
  /** What `GET /readyz` reports; without it the route says ready whenever the process answers. */
  readiness?: () => Promise<Readiness>;
  /** The status page's audit trail (shared on Redis); this process's ring without it. */
  audit?: AuditTrail;
}

/**
 * A replica's readiness (`GET /readyz`, no key: load balancers probe it): ready when it can serve
 * the API (its store answers and a catalog is loaded); whether it holds the manager lease is
 * reported, not required (followers serve the whole API).
 */
export interface Readiness {
  ready: boolean;
  leader: boolean;
  /** This replica's id in the lease. */
  replica: string;
  checks: Record<string, 'ok' | 'unreachable' | 'empty' | 'none'>;
}

/** The capacity the limits use now. */
export function capacityNow(lc: LifecycleSettings): number {
  return typeof lc.capacity === 'function' ? lc.capacity() : lc.capacity;
}

/** Limits and lifetimes the instance routes enforce (from config). */
export interface LifecycleSettings {
  teamLimit: number;
  /** Admitted live instances at most (a number, or what the fleet offers now); 0: no limit. */
  capacity: number | (() => number);
  rateLimits: RateLimits;
  renewMaxLoad: number;
  idempotencyTtlMs: number;
  flagSecret: string;
  flagRetentionMs: number;
}

const BODY_LIMIT = 64 * 1024;
/** Longest path parameter routed (longer ones are refused by the route's own validation). */
const MAX_PARAM_LENGTH = 1024;
/** A bounded, printable quote of client input for error details (JSON-escaped by the body). */
const quote = (text: string): string => bounded(text, 120);

/**
 * Builds the HTTP API without listening (tests use `inject`). Every `/v1` route needs
 * `x-api-key` unless it opts out; errors are problem+json with stable codes.
 */
export function buildApp(deps: AppDeps): FastifyInstance {
  const keys: ApiKey[] = [{ name: 'POSEIDON_API_KEY', role: 'admin', digest: keyDigest(deps.apiKey) }, ...(deps.apiKeys ?? [])];
  const failures = new FailedAuth(deps.authFailures ?? { attempts: 20, windowMs: 60_000 });
  const sessions = statusSessions(deps, keys);
  const app = Fastify({
    ...(deps.logger ? { loggerInstance: deps.logger } : { logger: false }),
    bodyLimit: BODY_LIMIT,
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    ...(deps.trustProxy !== undefined ? { trustProxy: deps.trustProxy } : {}),
    // Errors raised before routing (a malformed URL): a key is still required, and the answer
    // is problem+json quoting a bounded part of the input, like every other error.
    frameworkErrors: (err, req, reply) => {
      if (!authenticate(keys, failures, req, reply, sessions)) return;
      void sendProblem(reply, 400, Codes.badRequest, `bad URL: ${quote(req.url.split('?')[0] ?? '')} (${err.code})`);
    },
    // SSE streams are long-lived: close them with the server instead of waiting for clients.
    forceCloseConnections: true,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
  });
  app.setErrorHandler(errorHandler);
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    try {
      // Clients send `content-type: application/json` on bodiless DELETE and POST too: an
      // empty body is no body (routes that need one say so in their own validation).
      done(null, (body as string).trim() === '' ? undefined : parseJson(body as string));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
  app.setNotFoundHandler((req, reply) => sendProblem(reply, 404, Codes.notFound, `no route ${quote(req.method)} ${quote(req.url.split('?')[0] ?? '')}`));
  registerAuth(app, keys, failures, sessions);

  registerOpenApi(app, { title: 'Poseidon', version: '1' });
  if (deps.metrics) metricsRoutes(app, deps.metrics);
  app.get('/healthz', { config: { auth: 'none' }, schema: { summary: 'Liveness' } }, async () => ({ ok: true }));
  app.get('/readyz', { config: { auth: 'none' }, schema: { summary: 'Readiness of this replica: 503 when it cannot serve; whether it leads' } }, async (_req, reply) => {
    const r = deps.readiness ? await deps.readiness() : { ready: true, leader: true, replica: 'local', checks: {} };
    return reply.code(r.ready ? 200 : 503).send(r);
  });
  app.get('/v1/version', { config: { auth: 'none' }, schema: { summary: 'Server version and API level', response: { 200: versionSchema } } }, async () => ({ version: deps.version ?? 'dev', api: 'v1' }));
  instanceRoutes(app, deps);
  flagRoutes(app, deps);
  if (deps.events) eventRoutes(app, deps, deps.events);
  if (deps.access) {
    gatewayRoutes(app, { access: deps.access.context, snapshot: deps.access.snapshot, ...(deps.now ? { now: deps.now } : {}) });
    accessRoutes(app, { access: deps.access.context, store: deps.store, catalog: deps.catalog, linkSeconds: deps.access.linkSeconds, ...(deps.access.queueMaxWaitMs !== undefined ? { queueMaxWaitMs: deps.access.queueMaxWaitMs } : {}), ...(deps.now ? { now: deps.now } : {}) });
  }
  catalogRoutes(app, deps);
  if (deps.workers) workerRoutes(app, deps.workers);
  if (sessions) statusRoutes(app, { keys, failures, sessions, ...(deps.audit ? { trail: deps.audit } : {}) });
  return app;
}

const versionSchema = { type: 'object', required: ['version', 'api'], properties: { version: { type: 'string' }, api: { type: 'string' } } } as const;

/** JSON.parse that refuses prototype-polluting keys with a message naming them. */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text, (key, value: unknown) => {
      if (key === '__proto__') throw new PoseidonError(Codes.badRequest, 'body: forbidden key "__proto__" (prototype pollution)', { kind: 'input' });
      return value;
    });
  } catch (err) {
    if (err instanceof PoseidonError) throw err;
    throw new PoseidonError(Codes.badRequest, `body: invalid JSON (${bounded((err as Error).message, 120)})`, { kind: 'input', cause: err });
  }
}
