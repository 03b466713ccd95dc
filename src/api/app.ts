import { createHash, timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Catalog } from '../catalog/catalog.ts';
import { Codes, PoseidonError } from '../core/errors.ts';
import type { Instance } from '../core/instance.ts';
import { newInstanceId, ownerKey, portHostname } from '../core/naming.ts';
import type { Store } from '../core/store.ts';
import { errorHandler, sendProblem } from './problem.ts';
import { idParams, launchBody, listQuery } from './schemas.ts';
import { instanceView } from './views.ts';

export interface AppDeps {
  store: Store;
  catalog: Catalog;
  apiKey: string;
  baseDomain: string;
  now?: () => number;
  /** Process logger (pino); silent when absent. */
  logger?: FastifyBaseLogger;
}

const BODY_LIMIT = 64 * 1024;

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Builds the HTTP API without listening (tests use `inject`). Every `/v1` route needs `x-api-key`. */
export function buildApp(deps: AppDeps): FastifyInstance {
  const now = deps.now ?? Date.now;
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

  const keyDigest = digest(deps.apiKey);
  app.addHook('onRequest', async (req, reply) => {
    if (!req.url.startsWith('/v1/')) return;
    const given = req.headers['x-api-key'];
    // Compare fixed-length digests in constant time, so neither length nor content leaks.
    if (typeof given !== 'string' || !timingSafeEqual(digest(given), keyDigest)) {
      return sendProblem(reply, 401, Codes.unauthorized, 'missing or invalid x-api-key');
    }
  });

  app.get('/healthz', async () => ({ ok: true }));

  app.post<{ Body: { challenge: string; team: string; user?: string } }>('/v1/instances', { schema: { body: launchBody } }, async (req, reply) => {
    const inst = newInstance(deps, req.body, now());
    const result = await deps.store.createInstance(inst, inst.createdAt);
    if (!result.created) {
      return sendProblem(reply, 409, Codes.ownerLimit, `owner already has a live instance of ${inst.challenge}`, { instance: instanceView(result.existing) });
    }
    req.log.info({ instance: inst.id, challenge: inst.challenge, team: inst.team }, 'instance requested');
    return reply.code(202).send(instanceView(result.instance));
  });

  app.get<{ Params: { id: string } }>('/v1/instances/:id', { schema: { params: idParams } }, async (req) => {
    return instanceView(await mustGet(deps.store, req.params.id));
  });

  app.get<{ Querystring: { team?: string; challenge?: string } }>('/v1/instances', { schema: { querystring: listQuery } }, async (req) => {
    const list = await deps.store.listInstances(req.query);
    return { instances: list.map(instanceView) };
  });

  app.delete<{ Params: { id: string } }>('/v1/instances/:id', { schema: { params: idParams } }, async (req, reply) => {
    const inst = await mustGet(deps.store, req.params.id);
    const final = inst.status === 'stopped' || inst.status === 'failed';
    const updated = final ? inst : await deps.store.updateInstance(inst.id, { desired: 'stopped', status: 'stopping' }, now());
    req.log.info({ instance: inst.id }, 'instance stop requested');
    return reply.code(202).send(instanceView(updated ?? inst));
  });

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

async function mustGet(store: Store, id: string): Promise<Instance> {
  const inst = await store.getInstance(id);
  if (!inst) throw new PoseidonError(Codes.notFound, `instance ${id} not found`, { kind: 'input' });
  return inst;
}

function newInstance(deps: AppDeps, body: { challenge: string; team: string; user?: string }, at: number): Instance {
  const entry = deps.catalog.get(body.challenge);
  if (!entry) throw new PoseidonError(Codes.challengeNotFound, `challenge ${body.challenge} not found`, { kind: 'input' });
  const { spec } = entry;
  if (spec.scope === 'user' && !body.user) throw new PoseidonError(Codes.badRequest, `body user: required, challenge ${spec.id} is user-scoped`, { kind: 'input' });
  const id = newInstanceId();
  const inst: Instance = {
    id, challenge: spec.id, team: body.team, owner: ownerKey(spec, body.team, body.user),
    generation: 1, desired: 'running', status: 'pending', hostname: portHostname(id, spec, 0, deps.baseDomain),
    endpoints: [], specHash: entry.hash, createdAt: at, updatedAt: at, renewals: 0,
    expiresAt: at + spec.ttl.defaultSeconds * 1000, maxExpiresAt: at + spec.ttl.maxSeconds * 1000,
  };
  if (body.user) inst.user = body.user;
  return inst;
}
