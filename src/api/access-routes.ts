/**
 * Issuing access: `POST /v1/instances/:id/access` gives the platform a short-lived link for one
 * HTTP port of a live instance (and a session token for the `X-Poseidon-Access` header), and
 * `POST /v1/access/bypass` gives an admin a token for bots and checkers. Tokens appear only in
 * these responses: never in logs or errors.
 */
import type { FastifyInstance } from 'fastify';
import type { Catalog } from '../catalog/catalog.ts';
import { Codes, PoseidonError } from '../core/errors.ts';
import { isLive, type Instance } from '../core/instance.ts';
import { portHostname } from '../core/naming.ts';
import type { Store } from '../core/store.ts';
import { LINK_PARAM, type AccessContext } from '../gateway/authz.ts';
import { assertTeam } from './guards.ts';
import { mustGet } from './instance-routes.ts';
import { DNS_LABEL, idParams, PRINCIPAL, problems } from './schemas.ts';

export interface AccessRouteDeps {
  access: AccessContext;
  store: Store;
  catalog: Catalog;
  /** Lifetime of an access link, seconds. */
  linkSeconds: number;
  /** Longest a launch waits in the queue (default 900 s): bounds when a queued instance can end. */
  queueMaxWaitMs?: number;
  now?: () => number;
}

const accessBody = {
  type: ['object', 'null'],
  additionalProperties: false,
  properties: { endpoint: { type: 'string', pattern: DNS_LABEL } },
} as const;

const accessResponse = {
  type: 'object',
  required: ['url', 'expiresAt', 'token', 'tokenExpiresAt', 'hostname', 'endpoint'],
  properties: {
    url: { type: 'string' }, expiresAt: { type: 'string', format: 'date-time' },
    token: { type: 'string' }, tokenExpiresAt: { type: 'string', format: 'date-time' },
    hostname: { type: 'string' }, endpoint: { type: 'string' },
  },
} as const;

const bypassBody = {
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: {
    name: { type: 'string', pattern: PRINCIPAL },
    challenge: { anyOf: [{ type: 'string', pattern: DNS_LABEL }, { const: '*' }] },
    ttlSeconds: { type: 'integer', minimum: 60, maximum: 7 * 86400 },
  },
} as const;

const bypassResponse = {
  type: 'object',
  required: ['token', 'expiresAt', 'name', 'challenge'],
  properties: { token: { type: 'string' }, expiresAt: { type: 'string', format: 'date-time' }, name: { type: 'string' }, challenge: { type: 'string' } },
} as const;

/** HTTP endpoints (name, hostname) of `inst`, from its spec when the catalog has it. */
function httpEndpoints(deps: AccessRouteDeps, inst: Instance, baseDomain: string): { name: string; hostname: string }[] {
  const spec = deps.catalog.get(inst.challenge)?.spec;
  if (spec) return spec.expose.flatMap((p, i) => (p.protocol === 'http' ? [{ name: p.name, hostname: portHostname(inst.id, spec, i, baseDomain) }] : []));
  return inst.endpoints.filter((e) => e.protocol === 'http').map((e) => ({ name: e.name, hostname: e.hostname }));
}

function seconds(ms: number): number {
  return Math.floor(ms / 1000) * 1000;
}

/**
 * When a session for `inst` may end at the latest. A queued instance's lifetime starts at
 * admission (which moves `maxExpiresAt`), so its session lasts until the latest end admission
 * can give it: the queue's wait limit plus the challenge's maximum lifetime. Liveness is still
 * checked on every request; this only keeps the cookie from expiring before the instance.
 */
function sessionEnd(deps: AccessRouteDeps, inst: Instance): number {
  if (inst.status !== 'queued') return inst.maxExpiresAt;
  const maxLifetime = deps.catalog.get(inst.challenge)?.spec.ttl.maxSeconds;
  const lifetime = maxLifetime !== undefined ? maxLifetime * 1000 : inst.maxExpiresAt - inst.createdAt;
  return Math.max(inst.maxExpiresAt, inst.createdAt + (deps.queueMaxWaitMs ?? 900_000) + lifetime);
}

/** Registers the access-issuing routes. */
export function accessRoutes(app: FastifyInstance, deps: AccessRouteDeps): void {
  const now = deps.now ?? Date.now;
  const { access } = deps;

  app.post<{ Params: { id: string }; Body: { endpoint?: string } | null }>('/v1/instances/:id/access', {
    schema: { summary: 'A signed access link (and header token) for one HTTP port of a live instance', params: idParams, body: accessBody, response: { 200: accessResponse, ...problems(403, 404, 409) } },
  }, async (req) => {
    const inst = await mustGet(deps.store, req.params.id);
    assertTeam(req, inst.team);
    const at = now();
    if (!isLive(inst, at)) throw new PoseidonError(Codes.notRunning, `instance ${inst.id} is ${inst.status}; launch a new one`, { kind: 'input' });
    const endpoints = httpEndpoints(deps, inst, access.baseDomain);
    const wanted = req.body?.endpoint;
    const target = wanted === undefined ? endpoints[0] : endpoints.find((e) => e.name === wanted);
    if (!target) {
      const names = endpoints.map((e) => e.name).join(', ') || 'none';
      const which = wanted === undefined ? '' : ` "${wanted}"`;
      throw new PoseidonError(Codes.badRequest, `body endpoint: no HTTP endpoint${which} (HTTP endpoints: ${names}; TCP endpoints need no link)`, { kind: 'input' });
    }
    access.index.put(inst);
    const linkExp = seconds(at + deps.linkSeconds * 1000);
    const sessionExp = seconds(sessionEnd(deps, inst));
    const claims = { instance: inst.id, team: inst.team, host: target.hostname };
    const link = access.tokens.sign({ kind: 'link', ...claims, exp: linkExp, sessionExp });
    const token = access.tokens.sign({ kind: 'session', ...claims, exp: sessionExp });
    req.log.info({ instance: inst.id, endpoint: target.name }, 'access link issued');
    return {
      url: `${access.tls ? 'https' : 'http'}://${target.hostname}/?${LINK_PARAM}=${link}`,
      expiresAt: new Date(linkExp).toISOString(), token, tokenExpiresAt: new Date(sessionExp).toISOString(),
      hostname: target.hostname, endpoint: target.name,
    };
  });

  app.post<{ Body: { name: string; challenge?: string; ttlSeconds?: number } }>('/v1/access/bypass', {
    config: { auth: 'admin' },
    schema: { summary: 'A bypass token for bots and checkers: every live instance of a challenge (admin)', body: bypassBody, response: { 200: bypassResponse, ...problems(403) } },
  }, async (req) => {
    const challenge = req.body.challenge ?? '*';
    const exp = seconds(now() + (req.body.ttlSeconds ?? 3600) * 1000);
    const token = access.tokens.sign({ kind: 'bypass', name: req.body.name, challenge, exp });
    req.log.warn({ bypass: req.body.name, challenge, by: req.principal?.key, expiresAt: new Date(exp).toISOString() }, 'access bypass token issued');
    return { token, expiresAt: new Date(exp).toISOString(), name: req.body.name, challenge };
  });
}
