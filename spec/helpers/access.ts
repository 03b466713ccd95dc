/**
 * An API app with player access wired in (forward-auth, links, page, HTTP provider) for inject
 * tests, plus small helpers that act as the platform and as Traefik's forward-auth call.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp, type LifecycleSettings } from '../../src/api/app.ts';
import { keyDigest, type ApiKey } from '../../src/api/auth.ts';
import type { Store } from '../../src/core/store.ts';
import { AccessTokens } from '../../src/gateway/access-token.ts';
import type { AccessContext } from '../../src/gateway/authz.ts';
import { DelegateAuth } from '../../src/gateway/delegate.ts';
import { InstanceIndex } from '../../src/gateway/instance-index.ts';
import { GatewaySnapshot } from '../../src/gateway/snapshot.ts';
import { loadTestCatalog } from './catalog.ts';
import { memoryLogger } from './log.ts';

export const ADMIN_KEY = 'access-admin-key-0123456789';
export const PLATFORM_KEY = 'access-platform-key-0123456';
export const RED_KEY = 'access-red-only-key-01234567';
export const SECRET = 'access-test-secret-0123456789';
export const BASE = 'ctf.test';

const CHALLENGES: Record<string, string> = {
  web: 'expose: [{ name: web, port: 80 }]',
  two: 'expose: [{ name: web, port: 80 }, { name: admin, port: 81 }]',
  pwn: 'expose: [{ name: pwn, port: 9000, protocol: tcp }]',
  solo: 'expose: [{ name: web, port: 80 }]\nscope: user',
};

export interface AccessApp {
  app: FastifyInstance;
  store: Store;
  context: AccessContext;
  snapshot: GatewaySnapshot;
  log: ReturnType<typeof memoryLogger>;
  close(): Promise<void>;
}

export interface AccessAppOptions {
  store: Store;
  secret?: string;
  tls?: boolean;
  delegate?: { url: string; cacheMs?: number; timeoutMs?: number; cookies?: string[] };
  linkSeconds?: number;
  /** Overrides of the lifecycle limits (default: no limits). */
  lifecycle?: Partial<LifecycleSettings>;
  /** Keys beside the admin, platform and red-only ones. */
  extraKeys?: ApiKey[];
  queueMaxWaitMs?: number;
  /** Failed key attempts per address (default: no limit, so suites may try many wrong keys). */
  authFailures?: { attempts: number; windowMs: number };
}

/** Builds the app over `store` with four test challenges; `close` removes everything it made. */
export async function accessApp(opts: AccessAppOptions): Promise<AccessApp> {
  const dir = mkdtempSync(path.join(tmpdir(), 'poseidon-access-'));
  for (const [id, body] of Object.entries(CHALLENGES)) {
    mkdirSync(path.join(dir, id));
    writeFileSync(path.join(dir, id, 'challenge.yaml'), `id: ${id}\nname: ${id}\nimage: busybox:1.35\n${body}\n`);
  }
  const catalog = await loadTestCatalog(dir);
  const log = memoryLogger();
  const index = new InstanceIndex(opts.store, { refreshMs: 60_000, log });
  await index.start();
  const context: AccessContext = {
    tokens: new AccessTokens(opts.secret ?? SECRET), index, baseDomain: BASE, tls: opts.tls ?? false,
    mode: opts.delegate ? 'delegate' : 'token', log,
  };
  if (opts.delegate) context.delegate = new DelegateAuth({ url: opts.delegate.url, cookies: opts.delegate.cookies ?? ['session'], cacheMs: opts.delegate.cacheMs ?? 5000, timeoutMs: opts.delegate.timeoutMs ?? 1000, log });
  const snapshot = new GatewaySnapshot();
  const apiKeys: ApiKey[] = [
    { name: 'platform', role: 'platform', digest: keyDigest(PLATFORM_KEY) },
    { name: 'red-only', role: 'platform', team: 'red', digest: keyDigest(RED_KEY) },
    ...(opts.extraKeys ?? []),
  ];
  const lifecycle: LifecycleSettings = { teamLimit: 0, capacity: 0, rateLimits: new Map(), renewMaxLoad: 1, idempotencyTtlMs: 60_000, flagSecret: 'access-flag-secret-0123', flagRetentionMs: 60_000, ...opts.lifecycle };
  const app = buildApp({
    store: opts.store, catalog, apiKey: ADMIN_KEY, apiKeys, baseDomain: BASE, lifecycle,
    authFailures: opts.authFailures ?? { attempts: 0, windowMs: 60_000 },
    access: { context, snapshot, linkSeconds: opts.linkSeconds ?? 120, ...(opts.queueMaxWaitMs !== undefined ? { queueMaxWaitMs: opts.queueMaxWaitMs } : {}) },
  });
  return {
    app, store: opts.store, context, snapshot, log,
    async close() {
      index.stop();
      await app.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Launches `challenge` for `team` through the API and marks it running; returns the instance view. */
export async function launchRunning(a: AccessApp, challenge: string, team: string, user?: string): Promise<{ id: string; hostname: string; team: string }> {
  const res = await a.app.inject({ method: 'POST', url: '/v1/instances', headers: { 'x-api-key': ADMIN_KEY }, payload: { challenge, team, ...(user ? { user } : {}) } });
  if (res.statusCode !== 202) throw new Error(`launch ${challenge}/${team}: ${res.statusCode} ${res.body}`);
  const inst = res.json() as { id: string; hostname: string; team: string };
  await a.store.updateInstance(inst.id, { status: 'running' }, Date.now());
  return inst;
}

export interface Access {
  url: string;
  link: string;
  token: string;
  hostname: string;
  expiresAt: string;
  tokenExpiresAt: string;
  endpoint: string;
}

/** Asks for an access link as the platform would; throws unless 200. */
export async function getAccess(a: AccessApp, id: string, endpoint?: string, key = PLATFORM_KEY): Promise<Access> {
  const res = await a.app.inject({ method: 'POST', url: `/v1/instances/${id}/access`, headers: { 'x-api-key': key }, ...(endpoint ? { payload: { endpoint } } : {}) });
  if (res.statusCode !== 200) throw new Error(`access ${id}: ${res.statusCode} ${res.body}`);
  const body = res.json() as Omit<Access, 'link'>;
  return { ...body, link: new URL(body.url).searchParams.get('poseidon_access') ?? '' };
}

/** One forward-auth call the way Traefik makes it (GET, X-Forwarded-* set by Traefik itself). */
export function authz(a: AccessApp, host: string, opts: { uri?: string; method?: string; cookie?: string; access?: string; accept?: string; headers?: Record<string, string> } = {}) {
  const headers: Record<string, string> = {
    'x-forwarded-host': host, 'x-forwarded-uri': opts.uri ?? '/', 'x-forwarded-method': opts.method ?? 'GET',
    'x-forwarded-proto': 'http', 'x-forwarded-for': '203.0.113.9', ...(opts.headers ?? {}),
  };
  if (opts.cookie !== undefined) headers.cookie = opts.cookie;
  if (opts.access !== undefined) headers['x-poseidon-access'] = opts.access;
  if (opts.accept !== undefined) headers.accept = opts.accept;
  return a.app.inject({ method: 'GET', url: '/v1/authz', headers });
}

/** `name=value` of the Set-Cookie header of a response, for sending back. */
export function cookieOf(setCookie: string | string[] | undefined): string {
  const first = Array.isArray(setCookie) ? setCookie[0] : setCookie;
  if (!first) throw new Error('no Set-Cookie');
  return first.split(';')[0] as string;
}
