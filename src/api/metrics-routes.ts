/**
 * Metrics over HTTP: `GET /metrics` (Prometheus text format) behind a bearer token
 * (POSEIDON_METRICS_TOKEN), on the API port or on a separate listen address
 * (POSEIDON_METRICS_ADDRESS, `buildMetricsApp`); `GET /v1/status/summary` (operator or admin)
 * for the status page; and the request hooks behind the HTTP and forward-auth metrics, labelled
 * by route template (`req.routeOptions.url`), never by the raw URL.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { Codes } from '../core/errors.ts';
import { AUTHZ_PATH } from '../gateway/traefik.ts';
import type { Metrics } from '../metrics/metrics.ts';
import { READ_ROUTE } from './auth.ts';
import { errorHandler, sendProblem } from './problem.ts';

export interface MetricsRouteDeps {
  metrics: Pick<Metrics, 'exposition' | 'summary' | 'httpDuration' | 'authz' | 'sseClients' | 'poolClaims'>;
  /** Required as `Authorization: Bearer <token>` wherever `/metrics` is served. */
  token?: string;
  /** Whether this app serves `/metrics` (with a token; otherwise only the separate address does). */
  scrape: boolean;
}

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** `allow` (2xx), `redirect` (3xx: a link exchanged for a cookie), `deny` (4xx), `error` (5xx). */
export function authzResult(status: number): string {
  if (status < 300) return 'allow';
  if (status < 400) return 'redirect';
  return status < 500 ? 'deny' : 'error';
}

/** Whether `header` is `Bearer <token>` (constant time over digests). */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer[ ]+(\S{1,1024})$/i.exec(header ?? '');
  if (!m) return false;
  const digest = (s: string): Buffer => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(m[1] as string), digest(token));
}

/** Registers `GET /metrics` on `app`: the exposition, or 401 without the token. */
export function scrapeRoute(app: FastifyInstance, metrics: Pick<Metrics, 'exposition'>, token: string | undefined): void {
  app.get('/metrics', { config: { auth: 'none' }, logLevel: 'warn', schema: { summary: 'Prometheus metrics (Authorization: Bearer POSEIDON_METRICS_TOKEN)' } }, async (req, reply) => {
    if (token !== undefined && !bearerMatches(req.headers.authorization, token)) {
      reply.header('www-authenticate', 'Bearer realm="poseidon-metrics"');
      return sendProblem(reply, 401, Codes.unauthorized, 'missing or invalid bearer token (POSEIDON_METRICS_TOKEN)');
    }
    const { contentType, text } = await metrics.exposition();
    return reply.type(contentType).header('cache-control', 'no-store').send(text);
  });
}

/**
 * Registers the HTTP and forward-auth hooks, `/v1/status/summary`, and `/metrics` when
 * `deps.scrape`. Call it before the other routes.
 */
export function metricsRoutes(app: FastifyInstance, deps: MetricsRouteDeps): void {
  const { metrics } = deps;
  // Callback style like the auth hook: it runs on every request, forward-auth included.
  app.addHook('onResponse', (req: FastifyRequest, reply: FastifyReply, done: () => void) => {
    const route = req.routeOptions.url ?? 'unmatched';
    const status = reply.statusCode;
    metrics.httpDuration.observe({ method: METHODS.has(req.method) ? req.method : 'other', route, status: String(status) }, reply.elapsedTime / 1000);
    if (route === AUTHZ_PATH) metrics.authz.inc({ result: authzResult(status) });
    done();
  });
  if (deps.scrape) scrapeRoute(app, metrics, deps.token);
  app.get('/v1/status/summary', {
    config: { auth: READ_ROUTE },
    schema: { summary: 'The status page overview: launches, stops, failures and reconcile errors per minute, launch and queue percentiles (last 15 minutes), instances, workers, catalog, breakers' },
  }, async () => metrics.summary());
}

/** A bare app serving only `/metrics`, for the separate listen address (POSEIDON_METRICS_ADDRESS). */
export function buildMetricsApp(metrics: Pick<Metrics, 'exposition'>, token: string | undefined): FastifyInstance {
  const app = Fastify({ logger: false });
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((_req, reply) => sendProblem(reply, 404, Codes.notFound, 'only GET /metrics is served here'));
  scrapeRoute(app, metrics, token);
  return app;
}
