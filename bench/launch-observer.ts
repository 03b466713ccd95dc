/**
 * Watches a Poseidon launch from outside the serve process, for `launch.bench.ts`: the store's
 * change notifications (placed on a worker, `running`), the engine's events (network created,
 * container created and started, with the engine's own timestamps) and the Traefik file (the
 * route written). Nothing here slows the launch down: it reads, it never asks the server.
 */
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import Docker from 'dockerode';
import type { Store } from '../src/core/store.ts';

/** Epoch ms of each step of one instance's launch (undefined until seen). */
export interface Timeline {
  post: number;
  accepted?: number;
  placed?: number;
  network?: number;
  create?: number;
  start?: number;
  running?: number;
  route?: number;
  hostname?: string;
}

export const PHASES = ['api', 'queue', 'network', 'create', 'start', 'ready', 'route'] as const;
export type Phase = (typeof PHASES)[number];

/** Durations of each phase of a completed timeline (a step not seen takes 0: e.g. no network with a pool). */
export function phases(t: Timeline): Record<Phase, number> {
  const accepted = t.accepted ?? t.post;
  const placed = t.placed ?? accepted;
  const network = t.network ?? placed;
  const create = t.create ?? network;
  const start = t.start ?? create;
  const running = t.running ?? start;
  const route = t.route ?? running;
  const d = (a: number, b: number): number => Math.max(0, b - a);
  return { api: d(t.post, accepted), queue: d(accepted, placed), network: d(placed, network), create: d(network, create), start: d(create, start), ready: d(start, running), route: d(running, route) };
}

export class LaunchObserver {
  readonly #timelines = new Map<string, Timeline>();
  readonly #waiters = new Map<string, () => void>();
  readonly #store: Store;
  readonly #traefikFile: string;
  #unsubscribe: (() => void) | undefined;
  #events: NodeJS.ReadableStream | undefined;
  #watcher: FSWatcher | undefined;
  #poll: NodeJS.Timeout | undefined;

  constructor(opts: { store: Store; traefikDir: string }) {
    this.#store = opts.store;
    this.#traefikFile = path.join(opts.traefikDir, 'poseidon.yml');
  }

  async start(docker: Docker): Promise<void> {
    this.#unsubscribe = this.#store.onChange((id) => void this.#onChange(id));
    const stream = await docker.getEvents({ filters: { type: ['container', 'network'], event: ['create', 'start'] } });
    this.#events = stream;
    let buf = '';
    stream.on('data', (chunk: Buffer) => {
      buf += chunk.toString('utf8');
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        this.#onEvent(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
    });
    stream.on('error', () => undefined);
    const dir = path.dirname(this.#traefikFile);
    this.#watcher = watch(dir, () => void this.#checkRoutes());
    this.#poll = setInterval(() => void this.#checkRoutes(), 100);
  }

  stop(): void {
    this.#unsubscribe?.();
    (this.#events as unknown as { destroy?(): void } | undefined)?.destroy?.();
    this.#watcher?.close();
    if (this.#poll) clearInterval(this.#poll);
  }

  /** Starts following `id`, whose POST went out at `post` (epoch ms). */
  track(id: string, post: number, accepted: number, hostname: string): Timeline {
    const t = this.#timelines.get(id) ?? { post };
    Object.assign(t, { post, accepted, hostname });
    this.#timelines.set(id, t);
    void this.#onChange(id);
    void this.#checkRoutes();
    return t;
  }

  /** Resolves once `id` is running with its route written (rejects after `timeoutMs`). */
  async done(id: string, timeoutMs = 120_000): Promise<Timeline> {
    const t = this.#timelines.get(id);
    if (!t) throw new Error(`not tracking ${id}`);
    if (t.running !== undefined && t.route !== undefined) return t;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${id} not running with a route after ${timeoutMs} ms: ${JSON.stringify(t)}`)), timeoutMs);
      this.#waiters.set(id, () => { clearTimeout(timer); resolve(); });
    });
    return t;
  }

  #settle(id: string, t: Timeline): void {
    if (t.running === undefined || t.route === undefined) return;
    const w = this.#waiters.get(id);
    this.#waiters.delete(id);
    w?.();
  }

  async #onChange(id: string): Promise<void> {
    const t = this.#timelines.get(id);
    if (!t || t.running !== undefined) return;
    const seen = Date.now();
    const inst = await this.#store.getInstance(id).catch(() => undefined);
    if (!inst) return;
    if (inst.worker !== undefined) t.placed ??= seen;
    if (inst.status === 'running') t.running ??= seen;
    if (inst.status === 'failed') console.error(`  !! ${id} failed: ${inst.reason ?? ''}`);
    this.#settle(id, t);
  }

  #onEvent(line: string): void {
    let ev: { Type?: string; Action?: string; timeNano?: number; Actor?: { Attributes?: Record<string, string> } };
    try {
      ev = JSON.parse(line) as typeof ev;
    } catch {
      return;
    }
    const attrs = ev.Actor?.Attributes ?? {};
    const at = (ev.timeNano ?? 0) / 1e6;
    const id = /^poseidon-([0-9a-f]{24})$/.exec(attrs.name ?? '')?.[1] ?? attrs['poseidon.instance'];
    const t = id ? this.#timelines.get(id) : undefined;
    if (!t) return;
    if (ev.Type === 'network') t.network ??= at;
    else if (ev.Action === 'create') t.create ??= at;
    else if (ev.Action === 'start') t.start ??= at;
  }

  /**
   * When the Traefik file, read from now on, routes `hostname` (polled every 5 ms, bounded): for a
   * claimed warm-pool member, whose hostname was routed before the claim, the route that counts
   * is the one written once it runs for its new owner.
   */
  async routedFromNow(hostname: string, timeoutMs = 30_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const text = await readFile(this.#traefikFile, 'utf8').catch(() => '');
      if (text.includes(`Host(\`${hostname}\`)`)) return Date.now();
      await new Promise((r) => setTimeout(r, 5));
    }
    throw new Error(`${hostname} not routed within ${timeoutMs} ms`);
  }

  async #checkRoutes(): Promise<void> {
    const pending = [...this.#timelines].filter(([, t]) => t.route === undefined && t.hostname);
    if (pending.length === 0) return;
    const seen = Date.now();
    const text = await readFile(this.#traefikFile, 'utf8').catch(() => '');
    for (const [id, t] of pending) {
      if (text.includes(`Host(\`${t.hostname}\`)`)) {
        t.route = seen;
        this.#settle(id, t);
      }
    }
  }
}
