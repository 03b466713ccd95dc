/**
 * The fleet for operators: `GET /v1/workers` (state, heartbeat age, capacity and what is
 * reserved, instances, runtimes, labels, images) and `POST /v1/workers/:id/cordon`, `/uncordon`,
 * `/drain` (admin). Cordon stops new placements; drain also moves every instance elsewhere
 * (make-before-break), then leaves the worker cordoned. `PUT /v1/workers/:id/launch-settings`
 * (admin) sets the network pool and launch bound over the worker's configuration while it runs;
 * the worker puts them in effect at its next heartbeat and reports them (`launch`).
 */
import type { FastifyInstance } from 'fastify';
import type { FleetView } from '../controller/fleet-view.ts';
import { Codes, PoseidonError } from '../core/errors.ts';
import type { Fleet } from '../core/fleet.ts';
import { LAUNCH_SETTING_BOUNDS, type LaunchSettings, type WorkerAdmin, type WorkerView } from '../core/worker.ts';
import { READ_ROUTE } from './auth.ts';
import { problems } from './schemas.ts';

export interface WorkerRouteDeps {
  view: Pick<FleetView, 'workers' | 'images' | 'loads' | 'now' | 'refresh'>;
  fleet: Pick<Fleet, 'setAdmin' | 'setLaunchOverride'>;
  /** Wakes the fleet pass (a drain starts moving instances at once). */
  changed(): void;
  now?: () => number;
}

/** The launch settings as an object: all of them (in effect), or some (an override). */
function launchSettingsSchema(all: boolean) {
  return {
    type: 'object', additionalProperties: false, ...(all ? { required: ['networkPool', 'launchConcurrency'] } : {}),
    properties: {
      networkPool: { type: 'integer', description: 'free internal networks kept ready (POSEIDON_NETWORK_POOL)' },
      launchConcurrency: { type: 'integer', description: 'container creations at once (POSEIDON_LAUNCH_CONCURRENCY)' },
    },
  } as const;
}

/** A setting of the override: in bounds, or null for the worker's own. */
const overrideField = (key: keyof LaunchSettings) => ({ type: ['integer', 'null'], minimum: LAUNCH_SETTING_BOUNDS[key].min, maximum: LAUNCH_SETTING_BOUNDS[key].max }) as const;

const launchBody = {
  type: 'object', additionalProperties: false,
  properties: { networkPool: overrideField('networkPool'), launchConcurrency: overrideField('launchConcurrency') },
} as const;

const workerSchema = {
  type: 'object',
  required: ['id', 'state', 'admin', 'address', 'slots', 'reserved', 'instances', 'runtimes', 'labels', 'heartbeatAgeMs', 'images'],
  properties: {
    id: { type: 'string' }, state: { enum: ['ready', 'cordoned', 'draining', 'lost'] }, admin: { enum: ['active', 'cordoned', 'draining'] },
    address: { type: 'string' }, slots: { type: 'integer' },
    reserved: { type: 'object', properties: { slots: { type: 'integer' }, cpu: { type: 'number' }, memoryBytes: { type: 'integer' } } },
    capacity: { type: 'object', properties: { slots: { type: 'integer' }, cpu: { type: 'number' }, memoryBytes: { type: 'integer' } } },
    instances: { type: 'integer' }, runtimes: { type: 'array', items: { type: 'string' } },
    labels: { type: 'object', additionalProperties: { type: 'string' } }, heartbeatAgeMs: { type: 'integer' }, version: { type: 'string' },
    ingress: { type: 'object', properties: { http: { type: 'string' }, tls: { type: 'string' } } },
    leasePorts: { type: 'string' },
    launch: launchSettingsSchema(true),
    networkPoolReady: { type: 'integer', description: 'free pooled networks ready for a launch at the last heartbeat (how far the pool has filled)' },
    launchOverride: launchSettingsSchema(false),
    images: { type: 'object', additionalProperties: { type: 'object', properties: { state: { type: 'string' }, error: { type: 'string' } } } },
  },
} as const;

const idParam = { type: 'object', additionalProperties: false, required: ['id'], properties: { id: { type: 'string', pattern: '^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$' } } } as const;

/** The API form of one worker. */
export function workerJson(w: WorkerView, deps: WorkerRouteDeps, loads: ReturnType<WorkerRouteDeps['view']['loads']>): Record<string, unknown> {
  const load = loads.get(w.id);
  const images = Object.fromEntries(Object.entries(deps.view.images(w.id)).map(([ref, s]) => [ref, { state: s.state, ...(s.error ? { error: s.error.split('\n')[0] } : {}) }]));
  return {
    id: w.id, state: w.state, admin: w.admin, address: w.address, slots: w.capacity.slots, capacity: w.capacity,
    reserved: { slots: load?.slots ?? 0, cpu: load?.cpu ?? 0, memoryBytes: load?.memoryBytes ?? 0 }, instances: load?.slots ?? 0,
    runtimes: w.runtimes, labels: w.labels, heartbeatAgeMs: Math.max(0, Math.round(deps.view.now() - w.heartbeatAt)), version: w.version,
    ...(w.ingress ? { ingress: w.ingress } : {}), ...(w.leasePorts ? { leasePorts: w.leasePorts } : {}),
    ...(w.launch ? { launch: w.launch } : {}), ...(w.networkPoolReady !== undefined ? { networkPoolReady: w.networkPoolReady } : {}), launchOverride: w.launchOverride ?? {}, images,
  };
}

/** Registers the fleet routes. */
export function workerRoutes(app: FastifyInstance, deps: WorkerRouteDeps): void {
  app.get('/v1/workers', {
    config: { auth: READ_ROUTE },
    schema: { summary: 'Workers: state, heartbeat, capacity, reserved, instances, images', response: { 200: { type: 'object', required: ['workers'], properties: { workers: { type: 'array', items: workerSchema } } }, ...problems(403) } },
  }, async () => {
    await deps.view.refresh();
    const loads = deps.view.loads(deps.now?.() ?? Date.now());
    return { workers: deps.view.workers().map((w) => workerJson(w, deps, loads)) };
  });

  const notRegistered = (id: string) => new PoseidonError(Codes.workerNotFound, `worker ${id} is not registered`, { kind: 'input' });
  /** The worker as the registry holds it after an admin's change. */
  const answer = async (id: string) => {
    await deps.view.refresh();
    const w = deps.view.workers().find((x) => x.id === id);
    if (!w) throw notRegistered(id);
    return workerJson(w, deps, deps.view.loads(deps.now?.() ?? Date.now()));
  };
  const action = (verb: 'cordon' | 'uncordon' | 'drain', admin: WorkerAdmin): void => {
    app.post<{ Params: { id: string } }>(`/v1/workers/:id/${verb}`, {
      config: { auth: 'admin' },
      schema: { summary: `${verb[0]?.toUpperCase()}${verb.slice(1)} a worker (admin)`, params: idParam, response: { 200: workerSchema, ...problems(403, 404) } },
    }, async (req) => {
      if (!(await deps.fleet.setAdmin(req.params.id, admin))) throw notRegistered(req.params.id);
      req.log.warn({ worker: req.params.id, action: verb, by: req.principal?.key }, 'worker state changed');
      deps.changed();
      return answer(req.params.id);
    });
  };
  app.put<{ Params: { id: string }; Body: { networkPool?: number | null; launchConcurrency?: number | null } }>('/v1/workers/:id/launch-settings', {
    config: { auth: 'admin' },
    schema: {
      summary: 'Set the network pool and launch bound over a worker\'s configuration (admin; a field absent or null: the worker\'s own); in effect at its next heartbeat',
      params: idParam, body: launchBody, response: { 200: workerSchema, ...problems(403, 404) },
    },
  }, async (req) => {
    const override = Object.fromEntries(Object.entries(req.body ?? {}).filter(([, v]) => v !== null)) as Partial<LaunchSettings>;
    if (!(await deps.fleet.setLaunchOverride(req.params.id, override))) throw notRegistered(req.params.id);
    req.log.warn({ worker: req.params.id, launch: override, by: req.principal?.key }, 'worker launch settings changed');
    return answer(req.params.id);
  });

  action('cordon', 'cordoned');
  action('uncordon', 'active');
  action('drain', 'draining');
}
