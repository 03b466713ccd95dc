import type { FastifyInstance } from 'fastify';
import { Codes, PoseidonError } from '../core/errors.ts';
import type { Instance } from '../core/instance.ts';
import { newInstanceId, ownerKey, portHostname } from '../core/naming.ts';
import type { Store } from '../core/store.ts';
import type { AppDeps } from './app.ts';
import { sendProblem } from './problem.ts';
import { idParams, launchBody, listQuery } from './schemas.ts';
import { instanceView } from './views.ts';

/** `/v1/instances`: launch, read, list, stop. */
export function instanceRoutes(app: FastifyInstance, deps: AppDeps): void {
  const now = deps.now ?? Date.now;

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
}

/** The instance, or E_NOT_FOUND. */
export async function mustGet(store: Store, id: string): Promise<Instance> {
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
