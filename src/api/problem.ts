import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { Codes, PoseidonError } from '../core/errors.ts';

/** HTTP status per stable error code; the only place statuses are chosen. */
const STATUS: Record<string, number> = {
  [Codes.badRequest]: 400,
  [Codes.specInvalid]: 400,
  [Codes.unauthorized]: 401,
  [Codes.forbidden]: 403,
  [Codes.notFound]: 404,
  [Codes.challengeNotFound]: 404,
  [Codes.ownerLimit]: 409,
  [Codes.teamLimit]: 409,
  [Codes.notRunning]: 409,
  [Codes.renewLimit]: 409,
  [Codes.renewWindow]: 409,
  [Codes.underLoad]: 409,
  [Codes.conflict]: 409,
  [Codes.idempotencyMismatch]: 422,
  [Codes.rateLimited]: 429,
  [Codes.imageNotReady]: 409,
  [Codes.bodyTooLarge]: 413,
  [Codes.store]: 503,
  [Codes.runtime]: 503,
  [Codes.noPort]: 503,
  [Codes.notReady]: 503,
  [Codes.webhookSignature]: 401,
  [Codes.sourceEmpty]: 409,
  [Codes.gitUnreachable]: 502,
  [Codes.gitBranchMissing]: 502,
  [Codes.gitPathMissing]: 502,
  [Codes.gitRewrite]: 409,
  [Codes.gitCorrupt]: 502,
  [Codes.sourceUnreadable]: 502,
  [Codes.workerNotFound]: 404,
};

/** The HTTP status of a stable error code, or `fallback` for codes without one. */
export function statusOf(code: string, fallback: number): number {
  return STATUS[code] ?? fallback;
}

/** Sends an RFC 9457 problem+json body with the stable `code`. */
export function sendProblem(reply: FastifyReply, status: number, code: string, detail: string, extra: Record<string, unknown> = {}): FastifyReply {
  return reply
    .code(status)
    .type('application/problem+json')
    .send({ type: `https://poseidon.dev/problems/${code}`, title: code, status, code, detail, ...extra });
}

/** Error messages may quote client input (a content type, a URL): bounded and printable. */
export function bounded(text: string, max = 200): string {
  const clean = text.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}

/** Maps fastify's own errors (validation, body size, content type) to codes. */
function fromFastify(err: FastifyError): { status: number; code: string; detail: string } {
  if (err.validation) {
    const first = err.validation[0];
    const where = first?.instancePath ? first.instancePath.slice(1).replaceAll('/', '.') : (first?.params as { missingProperty?: string; additionalProperty?: string } | undefined)?.missingProperty ?? '';
    const extra = (first?.params as { additionalProperty?: string } | undefined)?.additionalProperty;
    const field = extra ? `${where ? `${where}.` : ''}${extra}` : where;
    const ctx = err.validationContext ?? 'request';
    return { status: 400, code: Codes.badRequest, detail: `${ctx}${field ? ` ${field}` : ''}: ${extra ? 'unknown field' : first?.message ?? 'invalid'}` };
  }
  if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return { status: 413, code: Codes.bodyTooLarge, detail: 'request body is too large' };
  if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) return { status: err.statusCode, code: Codes.badRequest, detail: bounded(err.message) };
  return { status: 500, code: Codes.internal, detail: 'internal error' };
}

/** The app's error handler: PoseidonError by code, fastify errors by kind, anything else 500. */
export function errorHandler(err: FastifyError | PoseidonError, req: FastifyRequest, reply: FastifyReply): FastifyReply {
  if (err instanceof PoseidonError) {
    const status = STATUS[err.code] ?? (err.kind === 'input' ? 400 : 500);
    if (status >= 500) req.log.error({ code: err.code, err: err.message }, 'request failed');
    return sendProblem(reply, status, err.code, status >= 500 && err.kind !== 'transient' ? 'internal error' : err.message, err.detail ?? {});
  }
  const mapped = fromFastify(err);
  if (mapped.status >= 500) req.log.error({ err }, 'request failed');
  return sendProblem(reply, mapped.status, mapped.code, mapped.detail);
}
