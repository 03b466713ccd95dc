/**
 * A stand-in for Traefik in tests (Traefik cannot be installed here): an HTTP server on
 * 127.0.0.1 that routes by the dynamic configuration Poseidon generated, the way Traefik v3
 * does for the subset Poseidon emits. Routers by `Host`/`HostRegexp` and priority (explicit, or
 * rule length); middlewares `forwardAuth` (with `trustForwardHeader: false` semantics: the
 * X-Forwarded-* headers it sends are its own, whatever the client sent; only
 * `authRequestHeaders` are copied; a non-2xx answer goes back to the client as is), `headers`
 * (`customRequestHeaders`, empty value removes), `replacePath` (sets X-Replaced-Path) and
 * `redirectScheme`; `loadBalancer` services with `passHostHeader`. It accepts proxy-form
 * requests, so a browser can use it as its HTTP proxy. Backends that are not on 127.0.0.1 are
 * reached through `backend` (a probe container), never dialled from the host.
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

type Json = Record<string, any>;

export interface BackendAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export interface MiniTraefikOptions {
  /** The current dynamic configuration (called per request). */
  config: () => Promise<Json>;
  entryPoint?: string;
  /** Fetches `path` from a non-loopback backend `host:port`. */
  backend: (hostPort: string, path: string, headers: Record<string, string>) => Promise<BackendAnswer>;
}

export interface MiniTraefik {
  url: string;
  port: number;
  /** Every forward-auth call made: [x-forwarded-host, status]. */
  authCalls: [string, number][];
  close(): Promise<void>;
}

const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'proxy-connection', 'upgrade', 'te', 'trailer']);

function matches(rule: string, host: string): boolean {
  const h = host.replace(/:\d+$/, '').toLowerCase();
  const exact = /^Host\(`([^`]+)`\)$/.exec(rule);
  if (exact) return exact[1]!.toLowerCase() === h;
  const re = /^HostRegexp\(`(.+)`\)$/.exec(rule);
  if (!re) throw new Error(`mini-traefik: unsupported rule ${rule}`);
  const src = re[1]!.replace('(?i)', '');
  return new RegExp(src, re[1]!.includes('(?i)') ? 'i' : '').test(h);
}

function pickRouter(cfg: Json, entryPoint: string, host: string): Json | undefined {
  const candidates = Object.values((cfg.http?.routers ?? {}) as Record<string, Json>)
    .filter((r) => (!r.entryPoints || r.entryPoints.includes(entryPoint)) && matches(r.rule, host));
  return candidates.sort((a, b) => (b.priority || b.rule.length) - (a.priority || a.rule.length))[0];
}

function send(res: ServerResponse, status: number, headers: Record<string, string | string[]>, body: string | Buffer): void {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(headers)) if (!HOP.has(k.toLowerCase())) out[k] = v;
  res.writeHead(status, out).end(body);
}

function loopback(url: URL, method: string, path: string, headers: Record<string, string>): Promise<{ status: number; headers: Record<string, string | string[]>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 502, headers: res.headers as Record<string, string | string[]>, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

interface Flow {
  method: string;
  host: string;
  path: string;
  headers: Record<string, string>;
  client: Record<string, string>;
}

/** Runs one middleware; returns true when it answered the client itself. */
async function middleware(mw: Json, flow: Flow, res: ServerResponse, mt: MiniTraefik): Promise<boolean> {
  if (mw.forwardAuth) {
    const fa = mw.forwardAuth;
    const headers: Record<string, string> = {};
    for (const name of (fa.authRequestHeaders ?? Object.keys(flow.client)) as string[]) {
      const v = flow.client[name.toLowerCase()];
      if (v !== undefined) headers[name.toLowerCase()] = v;
    }
    if (fa.trustForwardHeader) throw new Error('mini-traefik: Poseidon must never emit trustForwardHeader: true');
    Object.assign(headers, {
      'x-forwarded-method': flow.method, 'x-forwarded-proto': 'http', 'x-forwarded-host': flow.client.host ?? '',
      'x-forwarded-uri': flow.path, 'x-forwarded-for': '127.0.0.1',
    });
    const answer = await loopback(new URL(fa.address), 'GET', new URL(fa.address).pathname, headers);
    mt.authCalls.push([headers['x-forwarded-host'] as string, answer.status]);
    if (answer.status >= 200 && answer.status < 300) return false;
    send(res, answer.status, answer.headers, answer.body);
    return true;
  }
  if (mw.headers) {
    for (const [k, v] of Object.entries(mw.headers.customRequestHeaders ?? {}) as [string, string][]) {
      if (v === '') delete flow.headers[k.toLowerCase()];
      else flow.headers[k.toLowerCase()] = v;
    }
    return false;
  }
  if (mw.replacePath) {
    const q = flow.path.indexOf('?');
    flow.headers['x-replaced-path'] = q === -1 ? flow.path : flow.path.slice(0, q);
    flow.path = mw.replacePath.path + (q === -1 ? '' : flow.path.slice(q));
    return false;
  }
  if (mw.redirectScheme) {
    send(res, mw.redirectScheme.permanent ? 301 : 302, { location: `${mw.redirectScheme.scheme}://${flow.host}${flow.path}` }, '');
    return true;
  }
  throw new Error(`mini-traefik: unsupported middleware ${JSON.stringify(mw)}`);
}

async function handle(opts: MiniTraefikOptions, mt: MiniTraefik, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const cfg = await opts.config();
  const absolute = /^https?:\/\//.test(req.url ?? '');
  const target = absolute ? new URL(req.url as string) : undefined;
  const client = Object.fromEntries(Object.entries(req.headers).filter(([, v]) => typeof v === 'string')) as Record<string, string>;
  const host = target?.host ?? client.host ?? '';
  const flow: Flow = { method: req.method ?? 'GET', host, path: target ? target.pathname + target.search : (req.url ?? '/'), headers: { ...client }, client };
  const router = pickRouter(cfg, opts.entryPoint ?? 'web', host);
  if (!router) return send(res, 404, { 'content-type': 'text/plain' }, '404 page not found\n');
  for (const name of (router.middlewares ?? []) as string[]) {
    if (await middleware(cfg.http.middlewares[name], flow, res, mt)) return;
  }
  const service = cfg.http.services[router.service].loadBalancer;
  const server = new URL(service.servers[0].url);
  if (!service.passHostHeader) flow.headers.host = server.host;
  for (const k of Object.keys(flow.headers)) if (k.startsWith('proxy-')) delete flow.headers[k];
  if (server.hostname === '127.0.0.1') {
    const answer = await loopback(server, flow.method, flow.path, flow.headers);
    return send(res, answer.status, answer.headers, answer.body);
  }
  const answer = await opts.backend(server.host, flow.path, flow.headers);
  return send(res, answer.status, answer.headers, answer.body);
}

/** Starts the stand-in on a free 127.0.0.1 port. */
export async function startMiniTraefik(opts: MiniTraefikOptions): Promise<MiniTraefik> {
  let server: Server | undefined;
  const mt: MiniTraefik = { url: '', port: 0, authCalls: [], close: () => new Promise((r) => { server?.closeAllConnections(); server?.close(() => r()); }) };
  server = createServer((req, res) => {
    handle(opts, mt, req, res).catch((err: unknown) => send(res, 502, { 'content-type': 'text/plain' }, `mini-traefik: ${(err as Error).message}\n`));
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
  mt.port = (server.address() as AddressInfo).port;
  mt.url = `http://127.0.0.1:${mt.port}`;
  return mt;
}
