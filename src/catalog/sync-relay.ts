/**
 * Catalog requests between manager replicas. Only the lease holder syncs the source (a sync, its
 * builds and its pushes must happen once), but every replica's API takes `POST /v1/sync`,
 * `GET /v1/catalog/plan` and git webhooks, since a load balancer may send them anywhere.
 *
 * A follower queues the request in Redis and waits for the answer; the leader drains the queue
 * every `pollMs`, runs each request on its own sync loop and writes the answer, plus its sync
 * status for followers' `GET /v1/catalog`. A request outlives a change of leader (the next one
 * answers it); one older than `REQUEST_TTL_MS` is dropped unanswered, its caller having given up.
 *
 * Keys under the prefix: `sync:requests` (list of JSON requests), `sync:answer:<id>` (JSON, kept
 * `REQUEST_TTL_MS`), `sync:status` (the leader's last sync status, JSON).
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { Codes, PoseidonError } from '../core/errors.ts';
import type { Logger } from '../core/reconcile.ts';
import type { GitOpsApi } from './gitops-api.ts';
import type { CatalogPlan } from './plan.ts';
import type { SyncResult, SyncStatus } from './sync-status.ts';

const REQUEST_TTL_MS = 5 * 60_000;
/** Requests the leader takes per poll. */
const BATCH = 20;

interface RelayRequest {
  id: string;
  kind: 'sync' | 'trigger' | 'plan';
  at: number;
  force?: boolean;
  reason?: string;
}

type RelayAnswer = { ok: true; sync?: SyncResult; plan?: CatalogPlan } | { ok: false; code: string; error: string };

function keys(prefix: string): { requests: string; status: string; answer(id: string): string } {
  return { requests: `${prefix}sync:requests`, status: `${prefix}sync:status`, answer: (id) => `${prefix}sync:answer:${id}` };
}

export interface SyncRelayOptions {
  client: Redis;
  prefix: string;
  log: Logger;
  /** How often the leader looks for requests and followers for answers (default 250 ms). */
  pollMs?: number;
}

/** The leader's side: answers queued requests with its own sync loop. */
export class SyncRelayServer {
  readonly #opts: SyncRelayOptions;
  readonly #api: GitOpsApi;
  readonly #keys: ReturnType<typeof keys>;
  #timer: NodeJS.Timeout | undefined;
  #lastStatus = '';
  #pass: Promise<void> = Promise.resolve();
  #stopped = false;

  constructor(opts: SyncRelayOptions, api: GitOpsApi) {
    this.#opts = opts;
    this.#api = api;
    this.#keys = keys(opts.prefix);
  }

  start(): void {
    const tick = (): void => {
      this.#timer = setTimeout(() => {
        this.#pass = this.#once().catch((err: unknown) => this.#opts.log.warn({ err: (err as Error).message }, 'catalog relay pass failed'));
        void this.#pass.finally(() => { if (!this.#stopped) tick(); });
      }, this.#opts.pollMs ?? 250);
      this.#timer.unref();
    };
    tick();
  }

  /** Stops taking requests; one being answered finishes first. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#pass;
  }

  async #once(): Promise<void> {
    const { client } = this.#opts;
    const raw = (await client.lpop(this.#keys.requests, BATCH)) ?? [];
    const now = Date.now();
    for (const text of raw) {
      const req = parseRequest(text);
      if (!req || now - req.at > REQUEST_TTL_MS) continue;
      const answer = await this.#answer(req);
      if (answer) await client.set(this.#keys.answer(req.id), JSON.stringify(answer), 'PX', REQUEST_TTL_MS);
    }
    const status = JSON.stringify(this.#api.status());
    if (status !== this.#lastStatus) {
      await client.set(this.#keys.status, status);
      this.#lastStatus = status;
    }
  }

  async #answer(req: RelayRequest): Promise<RelayAnswer | undefined> {
    try {
      if (req.kind === 'trigger') {
        this.#api.trigger(req.reason ?? 'relayed');
        return undefined;
      }
      if (req.kind === 'plan') return { ok: true, plan: await this.#api.plan() };
      return { ok: true, sync: await this.#api.syncNow({ force: req.force === true }) };
    } catch (err) {
      const code = err instanceof PoseidonError ? err.code : Codes.internal;
      return { ok: false, code, error: err instanceof PoseidonError ? err.message : 'the leader could not answer (see its log)' };
    }
  }
}

function parseRequest(text: string): RelayRequest | undefined {
  try {
    const r = JSON.parse(text) as RelayRequest;
    return typeof r.id === 'string' && typeof r.at === 'number' && ['sync', 'trigger', 'plan'].includes(r.kind) ? r : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A follower's catalog API: requests go to the leader through Redis; `status` is the leader's
 * last published status (read every few polls). `waitMs` bounds how long a caller waits for an
 * answer (the sync route answers 202 sooner on its own).
 */
export class RelayedGitOps implements GitOpsApi {
  readonly webhook: GitOpsApi['webhook'];
  readonly #opts: SyncRelayOptions & { waitMs?: number };
  readonly #keys: ReturnType<typeof keys>;
  #status: SyncStatus;
  #timer: NodeJS.Timeout | undefined;

  constructor(opts: SyncRelayOptions & { waitMs?: number }, webhook: GitOpsApi['webhook'], initial: SyncStatus) {
    this.#opts = opts;
    this.#keys = keys(opts.prefix);
    this.webhook = webhook;
    this.#status = initial;
  }

  /** Reads the leader's status now, then every second. */
  async start(): Promise<void> {
    await this.#readStatus();
    const tick = (): void => {
      this.#timer = setTimeout(() => { void this.#readStatus().finally(() => { if (this.#timer) tick(); }); }, 1000);
      this.#timer.unref();
    };
    tick();
  }

  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  status(): SyncStatus {
    return this.#status;
  }

  async syncNow(opts: { force?: boolean } = {}): Promise<SyncResult> {
    const started = Date.now();
    try {
      const answer = await this.#ask({ kind: 'sync', ...(opts.force ? { force: true } : {}) });
      if (answer.ok && answer.sync) return answer.sync;
      const failed = answer as { code: string; error: string };
      return { ok: false, at: new Date().toISOString(), durationMs: Date.now() - started, code: failed.code, error: failed.error };
    } catch (err) {
      return { ok: false, at: new Date().toISOString(), durationMs: Date.now() - started, code: (err as PoseidonError).code ?? Codes.store, error: (err as Error).message };
    }
  }

  trigger(reason: string): void {
    void this.#push({ kind: 'trigger', reason }).catch((err: unknown) => this.#opts.log.warn({ err: (err as Error).message, reason }, 'could not pass a sync request to the leader'));
  }

  async plan(): Promise<CatalogPlan> {
    const answer = await this.#ask({ kind: 'plan' });
    if (answer.ok && answer.plan) return answer.plan;
    const failed = answer as { code: string; error: string };
    throw new PoseidonError(failed.code, failed.error, { kind: 'transient' });
  }

  async #push(req: Omit<RelayRequest, 'id' | 'at'>): Promise<string> {
    const id = randomUUID();
    await this.#opts.client.rpush(this.#keys.requests, JSON.stringify({ ...req, id, at: Date.now() }));
    return id;
  }

  async #ask(req: Omit<RelayRequest, 'id' | 'at'>): Promise<RelayAnswer> {
    const id = await this.#push(req);
    const deadline = Date.now() + (this.#opts.waitMs ?? 120_000);
    const key = this.#keys.answer(id);
    while (Date.now() < deadline) {
      const text = await this.#opts.client.get(key);
      if (text) {
        await this.#opts.client.del(key).catch(() => undefined);
        void this.#readStatus();
        return JSON.parse(text) as RelayAnswer;
      }
      await new Promise((r) => setTimeout(r, this.#opts.pollMs ?? 250).unref());
    }
    throw new PoseidonError(Codes.sourceUnreadable, `no manager holding the lease answered within ${Math.round((this.#opts.waitMs ?? 120_000) / 1000)} s; the request stays queued for the next leader`, { kind: 'transient' });
  }

  async #readStatus(): Promise<void> {
    try {
      const text = await this.#opts.client.get(this.#keys.status);
      if (text) this.#status = JSON.parse(text) as SyncStatus;
    } catch (err) {
      this.#opts.log.debug({ err: (err as Error).message }, 'could not read the leader\'s sync status');
    }
  }
}
