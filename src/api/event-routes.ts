import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { EventFilter, EventHub, LifecycleEvent } from '../events/hub.ts';
import type { AppDeps } from './app.ts';
import { assertTeam, scopedTeam } from './guards.ts';
import { mustGet } from './instance-routes.ts';
import { idParams, PRINCIPAL, problems } from './schemas.ts';

const KEEPALIVE_MS = 15_000;
/** Bytes a slow SSE client may leave unread before its stream is closed. */
const MAX_BUFFERED = 1024 * 1024;
const sseResponse = { 200: { description: 'text/event-stream of lifecycle events', type: 'string' }, ...problems(403, 404) };

function frame(ev: LifecycleEvent): string {
  return `id: ${ev.seq}\nevent: ${ev.type}\ndata: ${JSON.stringify(ev)}\n\n`;
}

/** Opens an SSE stream: snapshot events first, then live ones, with keep-alive comments. */
function stream(req: FastifyRequest, reply: FastifyReply, hub: EventHub, filter: EventFilter, snapshot: LifecycleEvent[]): void {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
  res.write(': poseidon events\n\n');
  for (const ev of snapshot) res.write(frame(ev));
  // A client that stops reading must not make the server buffer without bound: drop it.
  const send = (text: string): void => {
    if (!res.write(text) && res.writableLength > MAX_BUFFERED) res.destroy();
  };
  const unsubscribe = hub.subscribe(filter, (ev) => send(frame(ev)));
  const keepalive = setInterval(() => send(': keep-alive\n\n'), KEEPALIVE_MS);
  req.raw.on('close', () => {
    clearInterval(keepalive);
    unsubscribe();
  });
}

/** Counts an open stream in the SSE client gauge until its connection closes. */
function countClient(req: FastifyRequest, deps: AppDeps): void {
  const clients = deps.metrics?.metrics.sseClients;
  if (!clients) return;
  clients.inc();
  req.raw.once('close', () => clients.dec());
}

/**
 * Server-Sent Events: `GET /v1/instances/:id/events` for one instance, `GET /v1/events?team=`
 * for a team (admin and unscoped platform keys may omit the team to see every event).
 */
export function eventRoutes(app: FastifyInstance, deps: AppDeps, hub: EventHub): void {
  app.get<{ Params: { id: string } }>('/v1/instances/:id/events', { config: { auth: ['platform', 'operator', 'admin'] }, schema: { summary: 'Lifecycle events of one instance (SSE)', params: idParams, response: sseResponse } }, async (req, reply) => {
    const inst = await mustGet(deps.store, req.params.id);
    assertTeam(req, inst.team);
    const position = inst.status === 'queued' ? await deps.store.queuePosition(inst.id) : undefined;
    stream(req, reply, hub, { instance: inst.id }, [hub.event(inst.status === 'failed' ? 'failed' : 'status', inst, position)]);
    countClient(req, deps);
  });

  app.get<{ Querystring: { team?: string } }>('/v1/events', {
    config: { auth: ['platform', 'operator', 'admin'] }, schema: { summary: 'Lifecycle events of a team (SSE)', querystring: { type: 'object', additionalProperties: false, properties: { team: { type: 'string', pattern: PRINCIPAL } } }, response: sseResponse },
  }, async (req, reply) => {
    const team = req.query.team ?? scopedTeam(req);
    if (team !== undefined) assertTeam(req, team);
    const snapshot = team === undefined ? [] : (await deps.store.listInstances({ team })).filter((i) => i.status !== 'stopped').map((i) => hub.event('status', i));
    stream(req, reply, hub, team === undefined ? {} : { team }, snapshot);
    countClient(req, deps);
  });
}
