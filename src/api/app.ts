import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Catalog } from '../catalog/catalog.ts';
import { Codes, PoseidonError } from '../core/errors.ts';
import type { Store } from '../core/store.ts';
import { keyDigest, registerAuth, type ApiKey } from './auth.ts';
import { instanceRoutes } from './instance-routes.ts';
import { errorHandler, sendProblem } from './problem.ts';

export interface AppDeps {
  store: Store;
  catalog: Catalog;
  /** The admin key from POSEIDON_API_KEY (always valid as admin). */
  apiKey: string;
  /** Further keys (by digest) with roles. */
  apiKeys?: readonly ApiKey[];
  baseDomain: string;
  now?: () => number;
  /** Process logger (pino); silent when absent. */
  logger?: FastifyBaseLogger;
}

const BODY_LIMIT = 64 * 1024;

/**
 * Builds the HTTP API without listening (tests use `inject`). Every `/v1` route needs
 * `x-api-key` unless it opts out; errors are problem+json with stable codes.
 */
export function buildApp(deps: AppDeps): FastifyInstance {
  const app = Fastify({
    ...(deps.logger ? { loggerInstance: deps.logger } : { logger: false }),
    bodyLimit: BODY_LIMIT,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
  });
  app.setErrorHandler(errorHandler);
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, parseJson(body as string));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
  app.setNotFoundHandler((req, reply) => sendProblem(reply, 404, Codes.notFound, `no route ${req.method} ${req.url.split('?')[0]}`));
  registerAuth(app, [{ name: 'POSEIDON_API_KEY', role: 'admin', digest: keyDigest(deps.apiKey) }, ...(deps.apiKeys ?? [])]);

  app.get('/healthz', { config: { auth: 'none' } }, async () => ({ ok: true }));
  instanceRoutes(app, deps);
  app.get('/v1/challenges', async () => ({
    challenges: deps.catalog.list().map((e) => ({
      id: e.spec.id, name: e.spec.name, valid: true, state: e.state, scope: e.spec.scope,
      expose: e.spec.expose, ttl: e.spec.ttl, ...(e.error ? { error: e.error } : {}),
    })),
    invalid: deps.catalog.invalid().map((b) => ({ file: b.file, ...(b.id ? { id: b.id } : {}), valid: false, errors: b.issues })),
  }));
  return app;
}

/** JSON.parse that refuses prototype-polluting keys with a message naming them. */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text, (key, value: unknown) => {
      if (key === '__proto__') throw new PoseidonError(Codes.badRequest, 'body: forbidden key "__proto__" (prototype pollution)', { kind: 'input' });
      return value;
    });
  } catch (err) {
    if (err instanceof PoseidonError) throw err;
    throw new PoseidonError(Codes.badRequest, `body: invalid JSON (${(err as Error).message})`, { kind: 'input', cause: err });
  }
}
