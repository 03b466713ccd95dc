/** JSON schemas for request validation (fastify + ajv). Unknown fields are rejected, not stripped. */
export const DNS_LABEL = '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$';
/** Team and user ids: no ':' or '/', so owner keys and flag inputs stay unambiguous. */
export const PRINCIPAL = '^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$';
export const INSTANCE_ID = '^[0-9a-f]{24}$';

export const launchBody = {
  type: 'object',
  additionalProperties: false,
  required: ['challenge', 'team'],
  properties: {
    challenge: { type: 'string', pattern: DNS_LABEL },
    team: { type: 'string', pattern: PRINCIPAL },
    user: { type: 'string', pattern: PRINCIPAL },
  },
} as const;

export const idParams = {
  type: 'object',
  additionalProperties: false,
  required: ['id'],
  properties: { id: { type: 'string', pattern: INSTANCE_ID } },
} as const;

export const idempotencyHeaders = {
  type: 'object',
  properties: { 'idempotency-key': { type: 'string', pattern: '^[A-Za-z0-9_.:-]{1,128}$' } },
} as const;

const endpoint = {
  type: 'object',
  required: ['name', 'protocol', 'port', 'hostname', 'url'],
  properties: {
    name: { type: 'string' }, protocol: { enum: ['http', 'tcp'] }, port: { type: 'integer' },
    hostname: { type: 'string' }, url: { type: 'string' },
    published: { type: 'object', properties: { host: { type: 'string' }, port: { type: 'integer' } } },
  },
} as const;

/** The API representation of an instance (see views.ts). */
export const instanceSchema = {
  type: 'object',
  required: ['id', 'challenge', 'team', 'status', 'desired', 'hostname', 'generation', 'renewals', 'createdAt', 'expiresAt', 'maxExpiresAt'],
  properties: {
    id: { type: 'string' }, challenge: { type: 'string' }, team: { type: 'string' }, user: { type: 'string' },
    status: { enum: ['queued', 'pending', 'starting', 'running', 'stopping', 'stopped', 'failed'] },
    desired: { enum: ['running', 'stopped'] }, reason: { type: 'string' }, hostname: { type: 'string' },
    endpoints: { type: 'array', items: endpoint }, generation: { type: 'integer' }, renewals: { type: 'integer' },
    createdAt: { type: 'string', format: 'date-time' }, expiresAt: { type: 'string', format: 'date-time' },
    maxExpiresAt: { type: 'string', format: 'date-time' }, worker: { type: 'string' },
    queue: { type: 'object', properties: { position: { type: 'integer' }, estimatedStartAt: { type: 'string', format: 'date-time' } } },
  },
} as const;

/** RFC 9457 problem details with Poseidon's stable `code`. */
export const problemSchema = {
  type: 'object',
  required: ['type', 'title', 'status', 'code', 'detail'],
  properties: {
    type: { type: 'string' }, title: { type: 'string' }, status: { type: 'integer' }, code: { type: 'string' }, detail: { type: 'string' },
    instance: instanceSchema, instances: { type: 'array', items: instanceSchema }, retryAfterSeconds: { type: 'integer' },
  },
} as const;

/** Standard error responses for a route, merged into its `response` schema. */
export function problems(...statuses: number[]): Record<number, typeof problemSchema> {
  return Object.fromEntries([400, 401, ...statuses].map((s) => [s, problemSchema]));
}

export const flagVerifyBody = {
  type: 'object',
  additionalProperties: false,
  required: ['challenge', 'team', 'flag'],
  properties: {
    challenge: { type: 'string', pattern: DNS_LABEL },
    team: { type: 'string', pattern: PRINCIPAL },
    flag: { type: 'string', minLength: 1, maxLength: 512 },
  },
} as const;

export const listQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    team: { type: 'string', pattern: PRINCIPAL },
    challenge: { type: 'string', pattern: DNS_LABEL },
    user: { type: 'string', pattern: PRINCIPAL },
    worker: { type: 'string', pattern: '^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$' },
    /** `true`: only live instances (queued, or asked to run, not failed and not expired). */
    live: { enum: ['true', 'false'] },
  },
} as const;
