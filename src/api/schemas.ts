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

export const listQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    team: { type: 'string', pattern: PRINCIPAL },
    challenge: { type: 'string', pattern: DNS_LABEL },
  },
} as const;
