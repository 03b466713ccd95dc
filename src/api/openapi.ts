import { PLATFORM_ROUTE, type RouteAuth } from './auth.ts';
import type { FastifyInstance, RouteOptions } from 'fastify';

declare module 'fastify' {
  interface FastifySchema {
    /** One line for the OpenAPI document. */
    summary?: string;
  }
}

interface Operation {
  method: string;
  path: string;
  schema: Record<string, unknown>;
  auth: RouteAuth | undefined;
}

/** `/v1/instances/:id` -> `/v1/instances/{id}`. */
function openapiPath(url: string): string {
  return url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

/** Path, query and header parameters from the route's JSON schemas. */
function parameters(schema: Record<string, unknown>): object[] {
  const out: object[] = [];
  const from = (where: string, s: unknown, required = false) => {
    const props = (s as { properties?: Record<string, object>; required?: string[] } | undefined);
    for (const [name, sub] of Object.entries(props?.properties ?? {})) {
      out.push({ name, in: where, required: required || (props?.required ?? []).includes(name), schema: sub });
    }
  };
  from('path', schema.params, true);
  from('query', schema.querystring);
  from('header', schema.headers);
  return out;
}

function responses(schema: Record<string, unknown>): Record<string, object> {
  const out: Record<string, object> = {};
  for (const [status, body] of Object.entries((schema.response as Record<string, object> | undefined) ?? {})) {
    const type = Number(status) >= 400 ? 'application/problem+json' : 'application/json';
    out[status] = { description: `HTTP ${status}`, content: { [type]: { schema: body } } };
  }
  if (Object.keys(out).length === 0) out['200'] = { description: 'OK' };
  return out;
}

/**
 * Collects every route as it is registered and serves an OpenAPI 3.1 document built from the
 * routes' own request and response schemas at `GET /v1/openapi.json` (any key). Routes without
 * schemas still appear, so the document always matches the routes.
 */
export function registerOpenApi(app: FastifyInstance, info: { title: string; version: string }): void {
  const ops: Operation[] = [];
  app.addHook('onRoute', (route: RouteOptions) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const method of methods) {
      if (method === 'HEAD' || route.url === '*' || route.url.includes('*')) continue;
      ops.push({ method: method.toLowerCase(), path: route.url, schema: (route.schema ?? {}) as Record<string, unknown>, auth: route.config?.auth });
    }
  });
  app.get('/v1/openapi.json', { schema: { summary: 'This document' } }, async () => document(ops, info));
}

function document(ops: Operation[], info: { title: string; version: string }): object {
  const paths: Record<string, Record<string, object>> = {};
  for (const op of ops) {
    const entry: Record<string, unknown> = {
      summary: (op.schema.summary as string | undefined) ?? `${op.method.toUpperCase()} ${op.path}`,
      operationId: `${op.method}${op.path.replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ? c.toUpperCase() : ''))}`,
      parameters: parameters(op.schema),
      responses: responses(op.schema),
    };
    if (op.schema.body) entry.requestBody = { required: true, content: { 'application/json': { schema: op.schema.body } } };
    if (op.auth === 'none') entry.security = [];
    if (op.auth !== 'none') entry['x-poseidon-roles'] = op.auth === 'admin' ? ['admin'] : [...(op.auth ?? PLATFORM_ROUTE)];
    (paths[openapiPath(op.path)] ??= {})[op.method] = entry;
  }
  return {
    openapi: '3.1.0',
    info,
    components: { securitySchemes: { apiKey: { type: 'apiKey', in: 'header', name: 'x-api-key' } } },
    security: [{ apiKey: [] }],
    paths,
  };
}
