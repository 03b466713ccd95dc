import type { FastifyInstance } from 'fastify';
import { flagDigest } from '../core/flag.ts';
import type { Store } from '../core/store.ts';
import type { AppDeps } from './app.ts';
import { READ_ROUTE } from './auth.ts';
import { assertTeam, scopedTeam } from './guards.ts';
import { flagVerifyBody, problems } from './schemas.ts';

const verifyResponse = {
  type: 'object',
  required: ['correct'],
  properties: {
    correct: { type: 'boolean' },
    owner: { type: 'object', required: ['team', 'instance'], properties: { team: { type: 'string' }, user: { type: 'string' }, instance: { type: 'string' } } },
  },
} as const;

const incidentsResponse = {
  type: 'object',
  required: ['incidents'],
  properties: {
    incidents: {
      type: 'array',
      items: {
        type: 'object',
        properties: { at: { type: 'string' }, challenge: { type: 'string' }, submittedBy: { type: 'string' }, owner: { type: 'string' }, instance: { type: 'string' } },
      },
    },
  },
} as const;

/**
 * Flag service. `POST /v1/flags/verify` answers whether `flag` is `team`'s flag for `challenge`,
 * from issued-flag records (by SHA-256), so it works after the instance is gone. Another team's
 * flag is incorrect, names its owner, and is recorded as a flag-sharing incident
 * (`GET /v1/flags/incidents`, admin). Flags themselves are never stored or logged.
 */
export function flagRoutes(app: FastifyInstance, deps: Pick<AppDeps, 'store' | 'now'>): void {
  const now = deps.now ?? Date.now;
  app.post<{ Body: { challenge: string; team: string; flag: string } }>('/v1/flags/verify', {
    schema: { summary: 'Verify a submitted flag', body: flagVerifyBody, response: { 200: verifyResponse, ...problems(403) } },
  }, async (req) => {
    assertTeam(req, req.body.team);
    const result = await verify(deps.store, req.body, now(), (obj, msg) => req.log.warn(obj, msg));
    // A team-scoped caller learns only "wrong": the owner's instance id would give away the
    // other team's hostname (and TCP routes have no other gate). Unscoped keys list every
    // instance anyway; admins see incidents.
    return scopedTeam(req) === undefined ? result : { correct: result.correct };
  });

  app.get<{ Querystring: { limit?: string } }>('/v1/flags/incidents', {
    config: { auth: READ_ROUTE },
    schema: {
      summary: 'Flag-sharing incidents, newest first',
      // Query strings are text (the API does not coerce types): a decimal of 1..1000.
      querystring: { type: 'object', additionalProperties: false, properties: { limit: { type: 'string', pattern: '^(1000|[1-9][0-9]{0,2})$' } } },
      response: { 200: incidentsResponse, ...problems(403) },
    },
  }, async (req) => {
    const list = await deps.store.listIncidents(req.query.limit === undefined ? 100 : Number(req.query.limit));
    return { incidents: list.map((i) => ({ ...i, at: new Date(i.at).toISOString() })) };
  });
}

async function verify(store: Store, body: { challenge: string; team: string; flag: string }, at: number, warn: (obj: object, msg: string) => void) {
  const rec = await store.findFlag(flagDigest(body.flag));
  if (!rec || rec.challenge !== body.challenge) return { correct: false };
  if (rec.team === body.team) return { correct: true };
  await store.addIncident({ at, challenge: body.challenge, submittedBy: body.team, owner: rec.team, instance: rec.instance });
  warn({ challenge: body.challenge, submittedBy: body.team, owner: rec.team, instance: rec.instance }, 'flag sharing detected');
  return { correct: false, owner: { team: rec.team, ...(rec.user ? { user: rec.user } : {}), instance: rec.instance } };
}
