/**
 * Benchmark harness: every `bench/*.bench.ts` exports `run(): Promise<BenchResult[]>`.
 * Targets are ratios against a baseline measured in the same run, never absolute times.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { Catalog } from '../src/catalog/catalog.ts';
import { loadSnapshot } from '../src/catalog/load-snapshot.ts';

export interface BenchResult {
  name: string;
  /** Human-readable measurement, e.g. "p99 1.2 ms, 9,800 req/s". */
  measured: string;
  /** The baseline it is compared with, measured in the same run. */
  baseline: string;
  target: string;
  ok: boolean;
}

export interface LoadStats {
  requestsPerSec: number;
  /** Requests answered in the measured window (after the warm-up). */
  requests: number;
  p99Ms: number;
  errors: number;
  non2xx: number;
}

/** Runs autocannon (in a worker thread) against 127.0.0.1 for a bounded time (default 5 s) and summarises. */
export async function load(opts: {
  url: string; method?: string; headers?: Record<string, string>; body?: string; seconds?: number; connections?: number;
  /** Absolute path of a CommonJS module exporting autocannon's `setupRequest` (varies each request). */
  setupRequestFile?: string;
  /** Seconds of unmeasured warm-up first (JIT, lazy module loading). Default 1. */
  warmupSeconds?: number;
}): Promise<LoadStats> {
  const warmup = opts.warmupSeconds ?? 1;
  if (warmup > 0) await load({ ...opts, seconds: warmup, warmupSeconds: 0 });
  const result = await autocannon({
    url: opts.url,
    method: (opts.method ?? 'GET') as 'GET',
    headers: opts.headers ?? {},
    ...(opts.body ? { body: opts.body } : {}),
    ...(opts.setupRequestFile ? { requests: [{ setupRequest: opts.setupRequestFile as never }] } : {}),
    // The load generator runs in its own thread, so it does not share the servers' event loop.
    workers: 1,
    duration: opts.seconds ?? 5,
    connections: opts.connections ?? 10,
  });
  return { requestsPerSec: result.requests.average, requests: result.requests.total, p99Ms: result.latency.p99, errors: result.errors, non2xx: result.non2xx };
}

export function describe(s: LoadStats): string {
  return `p99 ${s.p99Ms.toFixed(2)} ms, ${Math.round(s.requestsPerSec).toLocaleString('en')} req/s${s.errors || s.non2xx ? `, ${s.errors} errors, ${s.non2xx} non-2xx` : ''}`;
}

/** Listens on a free port of 127.0.0.1 and returns the base URL. */
export async function listenLocal(app: { listen(o: { port: number; host: string }): Promise<unknown>; server: { address(): unknown } }): Promise<string> {
  await app.listen({ port: 0, host: '127.0.0.1' });
  return `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
}

/**
 * A temp directory holding one busybox challenge `web` exposing `port`, and a catalog loaded
 * from it (images marked ready unless `ready` is false). The caller removes `dir`.
 */
export async function webCatalog(name: string, port: number, ready = true): Promise<{ dir: string; catalog: Catalog }> {
  const dir = mkdtempSync(path.join(tmpdir(), `poseidon-bench-${name}-`));
  mkdirSync(path.join(dir, 'web'));
  writeFileSync(path.join(dir, 'web', 'challenge.yaml'), `id: web\nname: web\nimage: busybox:1.35\nexpose: [{ name: web, port: ${port} }]\n`);
  const catalog = await loadCatalog(dir);
  if (ready) for (const e of catalog.list()) catalog.markImage(e.hash, 'ready', {});
  return { dir, catalog };
}

/** A catalog loaded from a challenges directory, as a sync would apply it. */
export async function loadCatalog(root: string): Promise<Catalog> {
  const catalog = new Catalog();
  catalog.apply(await loadSnapshot({ revision: 'bench', root, path: '.' }), Date.now());
  return catalog;
}
