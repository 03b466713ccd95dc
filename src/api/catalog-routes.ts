/**
 * Catalog routes: `GET /v1/challenges` (launchable challenges and invalid files),
 * `GET /v1/catalog` (revision, sync status, per-challenge state), `GET /v1/catalog/plan` and
 * `POST /v1/sync` (admin), and `POST /v1/hooks/git`, which is keyless but signature-verified
 * before anything touches git.
 */
import { READ_ROUTE } from './auth.ts';
import type { GitOpsApi } from '../catalog/gitops-api.ts';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Catalog } from '../catalog/catalog.ts';
import { catalogView } from '../catalog/catalog-view.ts';
import type { SyncStatus } from '../catalog/sync-status.ts';
import { Codes } from '../core/errors.ts';
import { sendProblem, statusOf } from './problem.ts';
import { pushedRef, signatureHeader, verifyWebhook } from './webhook-signature.ts';

export type { GitOpsApi };

/** Largest webhook body accepted (GitHub sends up to 25 MB; push payloads are far smaller). */
export const WEBHOOK_BODY_LIMIT = 1024 * 1024;
/** How long `POST /v1/sync` waits for the sync before answering 202. */
const SYNC_WAIT_MS = 60_000;

const syncBody = {
  type: 'object',
  additionalProperties: false,
  properties: { force: { type: 'boolean' }, wait: { type: 'boolean' } },
} as const;

/** Registers the routes; those needing the sync loop answer 503 without `gitops`. */
export function catalogRoutes(app: FastifyInstance, deps: { catalog: Catalog; gitops?: GitOpsApi }): void {
  const { catalog } = deps;
  app.get('/v1/challenges', { config: { auth: ['platform', 'operator', 'admin'] }, schema: { summary: 'Launchable challenges and invalid files' } }, async () => ({
    challenges: catalog.list().map((e) => ({
      id: e.spec.id, name: e.spec.name, valid: true, state: e.state, scope: e.spec.scope, revision: e.revision, hash: e.hash,
      expose: e.spec.expose, ttl: e.spec.ttl, ...(e.error ? { error: e.error } : {}),
    })),
    invalid: catalog.invalid().map((b) => ({ file: b.file, ...(b.id ? { id: b.id } : {}), valid: false, errors: b.issues })),
  }));
  const status = (): SyncStatus => deps.gitops?.status() ?? { source: { kind: 'dir', path: '' }, ...(catalog.revision ? { revision: catalog.revision } : {}), failures: 0, syncing: false };
  app.get('/v1/catalog', { config: { auth: ['platform', 'operator', 'admin'] }, schema: { summary: 'Catalog revision, sync status and per-challenge state' } }, async () => catalogView(catalog, status()));
  app.get<{ Params: { id: string } }>('/v1/catalog/:id', { config: { auth: ['platform', 'operator', 'admin'] }, schema: { summary: 'One challenge with every version kept', params: idParam } }, async (req, reply) => {
    const view = catalogView(catalog, status()).challenges.find((c) => c.id === req.params.id);
    if (!view) return sendProblem(reply, 404, Codes.challengeNotFound, `challenge ${req.params.id} is not in the catalog`);
    const versions = catalog.allVersions().filter((v) => v.spec.id === req.params.id)
      .map((v) => ({ hash: v.hash, revision: v.revision, state: v.state, image: v.image, current: v.supersededAt === undefined, ...(v.supersededAt !== undefined ? { supersededAt: new Date(v.supersededAt).toISOString() } : {}), ...(v.error ? { error: v.error } : {}) }));
    return { ...view, versions };
  });
  app.get('/v1/catalog/plan', { config: { auth: READ_ROUTE }, schema: { summary: 'What syncing the newest revision would change' } }, async (_req, reply) => {
    if (!deps.gitops) return noSource(reply);
    return deps.gitops.plan();
  });
  app.post<{ Body: { force?: boolean; wait?: boolean } | undefined }>('/v1/sync', { config: { auth: 'admin' }, schema: { summary: 'Sync the catalog now', body: syncBody }, preValidation: async (req) => { req.body ??= {}; } }, async (req, reply) => {
    if (!deps.gitops) return noSource(reply);
    return syncNow(deps.gitops, req.body ?? {}, reply);
  });
  app.register(async (scope) => webhookRoute(scope, deps.gitops));
}

const idParam = { type: 'object', additionalProperties: false, required: ['id'], properties: { id: { type: 'string', pattern: '^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$' } } } as const;

function noSource(reply: FastifyReply): FastifyReply {
  return sendProblem(reply, 503, Codes.sourceUnreadable, 'this server has no catalog source');
}

async function syncNow(gitops: GitOpsApi, body: { force?: boolean; wait?: boolean }, reply: FastifyReply): Promise<FastifyReply> {
  const run = gitops.syncNow({ force: body.force === true });
  if (body.wait === false) return reply.code(202).send({ accepted: true, ...gitops.status() });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => { timer = setTimeout(() => resolve(undefined), SYNC_WAIT_MS); });
  const result = await Promise.race([run, timeout]).finally(() => clearTimeout(timer));
  if (!result) return reply.code(202).send({ accepted: true, ...gitops.status() });
  if (result.ok) return reply.code(200).send(gitops.status());
  const code = result.code ?? Codes.internal;
  return sendProblem(reply, statusOf(code, 502), code, result.error ?? 'sync failed', { lastSync: result, revision: gitops.status().revision });
}

/** The webhook route in its own scope: raw body bytes (the signature covers them exactly). */
async function webhookRoute(scope: FastifyInstance, gitops: GitOpsApi | undefined): Promise<void> {
  scope.removeAllContentTypeParsers();
  scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: WEBHOOK_BODY_LIMIT }, (_req, body, done) => done(null, body));
  const unsigned = async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    // Refused before the body is even read: no signature header, or no secret to check it with.
    if (!gitops?.webhook.secret || !signatureHeader(req.headers)) {
      await sendProblem(reply, 401, Codes.webhookSignature, gitops?.webhook.secret ? 'unsigned request: expected X-Hub-Signature-256, X-Gitea-Signature or X-Gitlab-Token' : 'webhooks are disabled: POSEIDON_WEBHOOK_SECRET is not set');
    }
  };
  scope.post<{ Body: Buffer | undefined }>('/v1/hooks/git', { config: { auth: 'none' }, bodyLimit: WEBHOOK_BODY_LIMIT, onRequest: unsigned, schema: { summary: 'Git push webhook (GitHub, Gitea, GitLab); signature-verified' } }, async (req, reply) => {
    const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const verdict = verifyWebhook(req.headers, body, gitops?.webhook.secret);
    if (!verdict.ok || !gitops) return sendProblem(reply, 401, Codes.webhookSignature, verdict.ok ? 'no catalog source' : verdict.why);
    const ref = pushedRef(body);
    const tracked = `refs/heads/${gitops.webhook.branch ?? 'main'}`;
    if (ref !== undefined && ref !== tracked) {
      return reply.code(202).send({ accepted: true, sync: false, reason: `${ref} is not the tracked ${tracked}` });
    }
    gitops.trigger(`webhook:${verdict.provider}`);
    req.log.info({ provider: verdict.provider, ref }, 'webhook accepted; sync requested');
    return reply.code(202).send({ accepted: true, sync: true });
  });
}
