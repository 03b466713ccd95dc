import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Codes, PoseidonError } from '../core/errors.ts';
import { isLive, type Instance } from '../core/instance.ts';
import { renewFields, restartFields } from '../core/lifecycle.ts';
import { newInstanceId, ownerKey, portHostname } from '../core/naming.ts';
import { CONFLICT, type CreateResult, type Store } from '../core/store.ts';
import { capacityNow, type AppDeps } from './app.ts';
import { assertTeam, rateLimit, rateLimitedError, scopedTeam } from './guards.ts';
import { claimFromPool } from './pool-claim.ts';
import { sendProblem } from './problem.ts';
import { idempotencyHeaders, idParams, instanceSchema, launchBody, listQuery, problems } from './schemas.ts';
import { instanceView, type InstanceView } from './views.ts';

/** What fastify sends for a serialised JSON body (a string with this type is sent as is). */
const JSON_TYPE = 'application/json; charset=utf-8';
type LaunchBody = { challenge: string; team: string; user?: string };
const one = { 200: instanceSchema, 202: instanceSchema };

/** `/v1/instances`: launch, read, list, stop, renew, restart. */
export function instanceRoutes(app: FastifyInstance, deps: AppDeps): void {
  const now = deps.now ?? Date.now;
  const { lifecycle: lc } = deps;
  // Informer-style reads: the instance view kept current by the store's change feed (and a
  // periodic full refresh) answers GETs without a store round trip; this API's own writes go
  // through to it at once, so a client always reads what it just wrote.
  const index = deps.index;
  const remember = (inst: Instance): Instance => {
    index?.put(inst);
    return inst;
  };
  /** The common start of an owner's action: read fresh, check the team, count the rate, find the spec. */
  const ownedAction = async (id: string, action: 'renew' | 'restart', req: FastifyRequest, reply: FastifyReply) => {
    const at = now();
    const inst = await mustGet(deps.store, id);
    assertTeam(req, inst.team);
    await rateLimit(deps.store, lc.rateLimits, action, inst.team, reply, at);
    return { at, inst, spec: specOf(deps, inst) };
  };

  app.post<{ Body: LaunchBody; Headers: { 'idempotency-key'?: string } }>('/v1/instances', {
    schema: { summary: 'Launch an instance', body: launchBody, headers: idempotencyHeaders, response: { ...one, ...problems(403, 404, 409, 413, 422, 429) } },
  }, async (req, reply) => {
    assertTeam(req, req.body.team);
    const at = now();
    const inst = newInstance(deps, req.body, at);
    const key = req.headers['idempotency-key'];
    const idempotency = key ? { key: `${req.principal?.key ?? ''}:${key}`, fingerprint: fingerprint(req.body), ttlMs: lc.idempotencyTtlMs } : undefined;
    // The rate counts inside the create, after the replay check, so copies of one idempotent
    // request (a client retrying while the first is in flight) cost one launch between them.
    const rule = lc.rateLimits.get('launch');
    const rate = rule ? { key: `launch:${inst.team}`, limit: rule.limit, windowMs: rule.windowMs } : undefined;
    const result = await deps.store.createInstance(inst, at, { teamLimit: lc.teamLimit, capacity: capacityNow(lc), ...(idempotency ? { idempotency } : {}), ...(rate ? { rate } : {}) });
    if (result.created) {
      const pooled = await claimFromPool(deps, result.instance, idempotency?.key, at, req.log);
      const stored = remember(pooled ?? result.instance);
      req.log.info({ instance: stored.id, challenge: inst.challenge, team: inst.team, status: stored.status, ...(pooled ? { pool: true } : {}) }, 'instance requested');
      return reply.code(202).send(await view(deps, stored));
    }
    return refused(deps, result, reply);
  });

  // The serialised view of each record the view holds, by record (records are replaced on every
  // change; the stamp guards against one updated in place): a read of an unchanged instance sends
  // the same bytes again, without building and serialising its view (issue 11 goal 5).
  const bodies = new WeakMap<Instance, { stamp: number; body: string }>();
  app.get<{ Params: { id: string } }>('/v1/instances/:id', { config: { auth: ['platform', 'operator', 'admin'] }, schema: { summary: 'Read an instance', params: idParams, response: { 200: instanceSchema, ...problems(403, 404) } } }, async (req, reply) => {
    const inst = index?.byId(req.params.id) ?? remember(await mustGet(deps.store, req.params.id));
    assertTeam(req, inst.team);
    // A queued instance's view carries its place in the queue, which moves without the record changing.
    if (inst.status === 'queued') return view(deps, inst);
    const cached = bodies.get(inst);
    if (cached?.stamp === inst.updatedAt) return reply.type(JSON_TYPE).send(cached.body);
    // The route's own response serialiser: the same bytes as returning the view.
    const body = reply.serialize(instanceView(inst)) as string;
    bodies.set(inst, { stamp: inst.updatedAt, body });
    return reply.type(JSON_TYPE).send(body);
  });

  app.get<{ Querystring: { team?: string; challenge?: string; user?: string; worker?: string; live?: 'true' | 'false' } }>('/v1/instances', {
    config: { auth: ['platform', 'operator', 'admin'] }, schema: { summary: 'List instances', querystring: listQuery, response: { 200: { type: 'object', required: ['instances'], properties: { instances: { type: 'array', items: instanceSchema } } }, ...problems(403) } },
  }, async (req) => {
    const team = scopedTeam(req);
    if (team !== undefined && req.query.team !== undefined) assertTeam(req, req.query.team);
    const { user, live, ...filter } = req.query;
    const at = now();
    const list = (await deps.store.listInstances({ ...filter, ...(team !== undefined ? { team } : {}) }))
      .filter((i) => (user === undefined || i.user === user) && (live !== 'true' || isLive(i, at)));
    // Queued items carry their place and estimate, as a single read does (one queue read for all).
    const queued = list.some((i) => i.status === 'queued') ? await deps.store.queuedIds() : [];
    return { instances: await Promise.all(list.map((i) => (i.status === 'queued' ? queueView(deps, i, queued, at) : instanceView(i)))) };
  });

  app.delete<{ Params: { id: string } }>('/v1/instances/:id', { schema: { summary: 'Stop an instance (or cancel a queued one)', params: idParams, response: { ...one, ...problems(403, 404, 429) } } }, async (req, reply) => {
    const inst = await mustGet(deps.store, req.params.id);
    assertTeam(req, inst.team);
    const final = inst.status === 'stopped' || inst.status === 'failed';
    if (!final) await rateLimit(deps.store, lc.rateLimits, 'stop', inst.team, reply, now());
    // Only the request: the worker (or, for an unplaced instance, the manager) reports stopping and stopped.
    const updated = final || inst.desired === 'stopped' ? inst : await deps.store.updateInstance(inst.id, { desired: 'stopped' }, now());
    req.log.info({ instance: inst.id }, 'instance stop requested');
    return reply.code(202).send(instanceView(remember(updated ?? inst)));
  });

  app.post<{ Params: { id: string } }>('/v1/instances/:id/renew', { schema: { summary: 'Extend the lifetime', params: idParams, response: { ...one, ...problems(403, 404, 409, 429) } } }, async (req, reply) => {
    const { at, inst, spec } = await ownedAction(req.params.id, 'renew', req, reply);
    const load = { admitted: await deps.store.countAdmitted(at), capacity: capacityNow(lc), maxLoad: lc.renewMaxLoad };
    const fields = renewFields(inst, spec, at, load);
    const policy = deps.catalogVersion?.(inst, 'renew');
    const updated = await conditional(deps.store, inst, { renewals: inst.renewals, expiresAt: inst.expiresAt, status: inst.status, desired: inst.desired }, { ...fields, ...(policy ? { specHash: policy } : {}) }, at);
    req.log.info({ instance: inst.id, renewals: updated.renewals }, 'instance renewed');
    return reply.code(200).send(instanceView(remember(updated)));
  });

  app.post<{ Params: { id: string } }>('/v1/instances/:id/restart', { schema: { summary: 'Replace the container with a fresh one', params: idParams, response: { ...one, ...problems(403, 404, 409, 429) } } }, async (req, reply) => {
    const { at, inst } = await ownedAction(req.params.id, 'restart', req, reply);
    const hash = deps.catalogVersion?.(inst, 'restart') ?? deps.catalog.get(inst.challenge)?.hash ?? inst.specHash;
    const updated = await conditional(deps.store, inst, { generation: inst.generation, status: inst.status, desired: inst.desired, expiresAt: inst.expiresAt }, restartFields(inst, hash, at), at);
    req.log.info({ instance: inst.id, generation: updated.generation }, 'instance restart requested');
    return reply.code(202).send(instanceView(remember(updated)));
  });
}

/** The instance, or E_NOT_FOUND. */
export async function mustGet(store: Store, id: string): Promise<Instance> {
  const inst = await store.getInstance(id);
  if (!inst) throw new PoseidonError(Codes.notFound, `instance ${id} not found`, { kind: 'input' });
  return inst;
}

function specOf(deps: AppDeps, inst: Instance) {
  const entry = deps.catalog.get(inst.challenge);
  if (!entry) throw new PoseidonError(Codes.notRunning, `challenge ${inst.challenge} is no longer in the catalog`, { kind: 'input' });
  return entry.spec;
}

async function conditional(store: Store, inst: Instance, expect: Partial<Instance>, fields: Parameters<Store['updateInstance']>[1], at: number): Promise<Instance> {
  const r = await store.compareAndUpdate(inst.id, expect, fields, at);
  if (r === CONFLICT) throw new PoseidonError(Codes.conflict, `instance ${inst.id} changed concurrently; retry`, { kind: 'input' });
  if (!r) throw new PoseidonError(Codes.notFound, `instance ${inst.id} not found`, { kind: 'input' });
  return r;
}

/** Same body, same fingerprint: key order does not matter. */
function fingerprint(body: LaunchBody): string {
  return createHash('sha256').update(JSON.stringify([body.challenge, body.team, body.user ?? null])).digest('hex');
}

async function refused(deps: AppDeps, result: Exclude<CreateResult, { created: true }>, reply: Parameters<typeof sendProblem>[0]) {
  switch (result.reason) {
    case 'rate-limited':
      throw rateLimitedError('launch', result.retryAfterMs, reply);
    case 'replay':
      return reply.code(202).send(await view(deps, result.existing));
    case 'key-reused':
      return sendProblem(reply, 422, Codes.idempotencyMismatch, 'Idempotency-Key was already used with a different body', { instance: instanceView(result.existing) });
    case 'team-limit':
      return sendProblem(reply, 409, Codes.teamLimit, `team ${result.existing.team} already has ${result.holders.length} live instances, the limit`, { instances: result.holders.map((h) => instanceView(h)) });
    default:
      return sendProblem(reply, 409, Codes.ownerLimit, `owner already has a live instance of ${result.existing.challenge}`, { instance: instanceView(result.existing) });
  }
}

/** The view of a queued instance given the queue (oldest first), with its place and an estimate. */
async function queueView(deps: AppDeps, inst: Instance, queue: readonly string[], at: number): Promise<InstanceView> {
  const position = queue.indexOf(inst.id) + 1;
  if (position === 0) return instanceView(inst);
  const eta = await deps.store.admittedExpiry(position, at);
  return instanceView(inst, { position, ...(eta ? { estimatedStartAt: new Date(eta).toISOString() } : {}) });
}

/** The view, with queue position and an estimated start while queued. */
async function view(deps: AppDeps, inst: Instance): Promise<InstanceView> {
  if (inst.status !== 'queued') return instanceView(inst);
  const position = await deps.store.queuePosition(inst.id);
  if (position === undefined) return instanceView(inst);
  // The k-th place to free up is the k-th earliest expiry among admitted live instances.
  const eta = await deps.store.admittedExpiry(position, (deps.now ?? Date.now)());
  return instanceView(inst, { position, ...(eta ? { estimatedStartAt: new Date(eta).toISOString() } : {}) });
}

/** The record a launch of `body` creates (exported for `bench api`'s store floor). */
export function newInstance(deps: Pick<AppDeps, 'catalog' | 'baseDomain'>, body: LaunchBody, at: number): Instance {
  // 404 when unknown or removed, 409 when its image failed; a building image waits (pending).
  const entry = deps.catalog.launchable(body.challenge);
  const { spec } = entry;
  if (spec.scope === 'user' && !body.user) throw new PoseidonError(Codes.badRequest, `body user: required, challenge ${spec.id} is user-scoped`, { kind: 'input' });
  const id = newInstanceId();
  const inst: Instance = {
    id, challenge: spec.id, team: body.team, owner: ownerKey(spec, body.team, body.user),
    generation: 1, epoch: 0, desired: 'running', status: 'pending', hostname: portHostname(id, spec, 0, deps.baseDomain),
    endpoints: [], specHash: entry.hash, createdAt: at, updatedAt: at, renewals: 0,
    expiresAt: at + spec.ttl.defaultSeconds * 1000, maxExpiresAt: at + spec.ttl.maxSeconds * 1000,
  };
  if (body.user) inst.user = body.user;
  return inst;
}

