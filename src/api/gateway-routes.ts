/**
 * The routes Traefik calls: `GET /v1/authz` (forward-auth, no key: Traefik sends none),
 * `GET /v1/gateway/page` (the catch-all page, reached through Traefik's replacePath; no key)
 * and `GET /v1/traefik/config` (HTTP provider: a `gateway` key, which opens nothing else, or an
 * operator or admin key; it lists every routed hostname).
 * The first two log below info, so neither a request line per player request nor a token in a
 * query string ever reaches the log.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { Codes } from '../core/errors.ts';
import { allowFast, authorize, exchangeLink, LINK_PARAM, splitLink, type AccessContext } from '../gateway/authz.ts';
import { parseInstanceHost } from '../gateway/host.ts';
import { PAGE_HEADERS, pageFor, renderPage, type PageKind } from '../gateway/page.ts';
import type { GatewaySnapshot } from '../gateway/snapshot.ts';
import { AUTHZ_PATH, PAGE_PATH } from '../gateway/traefik.ts';
import { sendProblem } from './problem.ts';

export interface GatewayRouteDeps {
  access: AccessContext;
  snapshot: GatewaySnapshot;
  now?: () => number;
}

/** Sends one of the player pages (HTML or text by Accept) with its security headers. */
export function sendPage(reply: FastifyReply, kind: PageKind, accept: string | undefined): FastifyReply {
  const page = renderPage(kind, accept);
  return reply.code(page.status).headers({ ...PAGE_HEADERS, ...page.headers }).type(page.contentType).send(page.body);
}

function one(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? undefined : v;
}

/** Registers `/v1/authz`, `/v1/gateway/page` and `/v1/traefik/config`. */
export function gatewayRoutes(app: FastifyInstance, deps: GatewayRouteDeps): void {
  const now = deps.now ?? Date.now;
  const quiet = { config: { auth: 'none' as const }, logLevel: 'warn' as const };

  app.get(AUTHZ_PATH, { ...quiet, schema: { summary: 'Forward-auth for Traefik: 200 allow, 302 link exchange, 401/403 deny (X-Forwarded-Host/Uri/Method, cookies)' } }, async (req, reply) => {
    const h = req.headers;
    const at = now();
    const request = {
      host: h['x-forwarded-host'], uri: one(h['x-forwarded-uri']), method: one(h['x-forwarded-method']),
      cookie: h.cookie, access: h['x-poseidon-access'], authorization: h.authorization,
    };
    if (allowFast(deps.access, request, at)) return reply.code(200).header('cache-control', 'no-store').send();
    const d = await authorize(deps.access, request, at);
    if ('page' in d) {
      req.log.debug({ host: one(h['x-forwarded-host']), reason: d.reason }, 'access denied');
      return sendPage(reply, d.page, h.accept);
    }
    if ('location' in d) {
      reply.code(302).headers({ 'cache-control': 'no-store', 'referrer-policy': 'no-referrer', location: d.location });
      if (d.setCookie) reply.header('set-cookie', d.setCookie);
      return reply.send();
    }
    return reply.code(200).header('cache-control', 'no-store').send();
  });

  app.get(PAGE_PATH, { ...quiet, schema: { summary: 'Catch-all page for instance hostnames without a route (starting, expired, stopped, unknown)' } }, async (req, reply) => {
    const at = now();
    const parsed = parseInstanceHost(req.headers.host, deps.access.baseDomain);
    if (!parsed.ok) return sendPage(reply, 'unknown', req.headers.accept);
    const host = parsed.value;
    const inst = deps.access.index.byHost(host.prefix, host.challenge);
    const q = req.url.indexOf('?');
    const link = q !== -1 && req.url.includes(LINK_PARAM)
      ? splitLink(`${one(req.headers['x-replaced-path']) ?? '/'}${req.url.slice(q)}`) : undefined;
    let kind = pageFor(inst, at);
    if (link) {
      // A starting instance already gets its cookie here, so the page's reload lands signed in.
      const exchanged = await exchangeLink(deps.access, host, link.token, at);
      if (exchanged.ok) return reply.code(302).headers({ 'cache-control': 'no-store', 'referrer-policy': 'no-referrer', location: link.clean, 'set-cookie': exchanged.setCookie }).send();
      if (kind === 'starting' || kind === 'queued') kind = 'link-expired';
    }
    return sendPage(reply, kind, req.headers.accept);
  });

  app.get('/v1/traefik/config', { config: { auth: ['gateway', 'operator', 'admin'] }, schema: { summary: 'The Traefik dynamic configuration (HTTP provider), same as the file' } }, async (req, reply) => {
    const current = deps.snapshot.get();
    if (!current) return sendProblem(reply, 503, Codes.notReady, 'the gateway has not rendered a configuration yet');
    reply.header('etag', current.etag).header('cache-control', 'no-cache');
    if (req.headers['if-none-match'] === current.etag) return reply.code(304).send();
    return reply.type('application/json; charset=utf-8').send(current.json);
  });
}
