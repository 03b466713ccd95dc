/**
 * `Store` on Redis (ioredis): the production adapter, shared by every Poseidon process that
 * points at the same Redis and prefix. Key layout: `redis-layout.ts`;
 * scripts: `redis-scripts.ts`; both, and what they guarantee: docs/redis.md.
 */
import type { Redis, RedisOptions } from 'ioredis';
import { createRedisClient } from './redis-client.ts';
import { isPoseidonError, PoseidonError } from '../core/errors.ts';
import { POOL_TEAM, type Instance, type InstanceIntent, type InstanceObservation } from '../core/instance.ts';
import { CONFLICT } from '../core/store.ts';
import { FENCED, type Fence } from '../core/manager-lease.ts';
import type { AdmitResult, ClaimOptions, CreateOptions, CreateResult, FlagIncident, FlagRecord, InstanceFilter, Placement, RateResult, Store } from '../core/store.ts';
import { compareInstances, decodeInstance, encodeValue, pairsToMap, splitPatch } from './codec.ts';
import { createInRedis } from './redis-create.ts';
import { ensureIndexes } from './redis-index.ts';
import { redisKeys, type RedisKeys } from './redis-layout.ts';
import { RETRY, withScripts, type StoreScripts } from './redis-scripts.ts';

/** Key prefix used when none is configured. */
export const DEFAULT_PREFIX = 'poseidon:';

export interface RedisStoreOptions {
  /** `redis://[:password@]host:port[/db]`; the password never appears in errors. */
  url: string;
  /** Prepended to every key and to the change channel. Default `poseidon:`. */
  prefix?: string;
  /**
   * Replicas a created instance must reach before `createInstance` resolves (Redis WAIT, up to
   * `waitTimeoutMs`); fewer: it rejects with `E_STORE` (the client retries with its
   * Idempotency-Key and gets the same instance). 0: the primary's acknowledgement is enough.
   */
  waitReplicas?: number;
  waitTimeoutMs?: number;
}

/** Reads of a record's team before a write that must name its `team-live` key; see `#withTeam`. */
const TEAM_READS = 5;

// Commands issued in the same tick share one write (and one syscall): under concurrent API
// load this roughly halves the per-request socket cost (see bench/api.bench.ts).
/** Records read per pipeline by a listing (see `listInstances`). */
const LIST_CHUNK = 1000;

const PIPELINED: RedisOptions = { enableAutoPipelining: true };

/**
 * `Store` backed by Redis. Connects lazily on first use (`openStore` pings eagerly). Every
 * failure of Redis rejects with PoseidonError `E_STORE` (kind transient); writes are Lua
 * scripts, so each is atomic and publishes the instance id on `<prefix>changes`.
 */
export class RedisStore implements Store {
  /** The key prefix in use. */
  readonly prefix: string;
  readonly #keys: RedisKeys;
  readonly #client: Redis & StoreScripts;
  readonly #redact: (text: string) => string;
  readonly #waitReplicas: number;
  readonly #waitTimeoutMs: number;
  readonly #listeners = new Set<(id: string, created?: Instance) => void>();
  #sub: Redis | undefined;
  #indexes: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  #lastError: Error | undefined;

  constructor(opts: RedisStoreOptions) {
    this.prefix = opts.prefix ?? DEFAULT_PREFIX;
    this.#keys = redisKeys(this.prefix);
    this.#redact = redactor(opts.url);
    this.#waitReplicas = opts.waitReplicas ?? 0;
    this.#waitTimeoutMs = opts.waitTimeoutMs ?? 1000;
    this.#client = withScripts(createRedisClient(opts.url, PIPELINED));
    // Errors surface through the rejected commands (a listener also stops ioredis printing
    // them); the last connection error explains an otherwise bare "max retries" rejection.
    this.#client.on('error', (err: Error) => {
      this.#lastError = err;
    });
    this.#client.on('ready', () => {
      this.#lastError = undefined;
    });
  }

  /** Resolves once Redis answers PING; rejects with `E_STORE` otherwise. */
  async ping(): Promise<void> {
    await this.#run(() => this.#client.ping());
  }

  /** See `Store.createInstance`; an existing id (not the live slot holder) throws `E_STORE` terminal. */
  async createInstance(instance: Instance, now: number, opts: CreateOptions = {}): Promise<CreateResult> {
    await this.#indexed();
    const result = await createInRedis({ client: this.#client, keys: this.#keys, run: (fn) => this.#run(fn) }, instance, now, opts);
    if (result.created && this.#waitReplicas > 0) await this.#replicated('launch');
    return result;
  }

  /** Waits for the configured replicas to have every write so far; rejects when they do not in time. */
  async #replicated(what: string): Promise<void> {
    const acked = Number(await this.#run(() => this.#client.wait(this.#waitReplicas, this.#waitTimeoutMs)));
    if (acked < this.#waitReplicas) {
      throw new PoseidonError('E_STORE', `store unavailable: the ${what} reached ${acked} of ${this.#waitReplicas} Redis replica(s) in ${this.#waitTimeoutMs} ms; retry with the same Idempotency-Key`, { kind: 'transient' });
    }
  }

  /** See `Store.compareAndUpdate`. */
  async compareAndUpdate(id: string, expect: Partial<Instance>, fields: InstanceObservation | InstanceIntent, now: number, fence?: Fence): Promise<Instance | typeof CONFLICT | undefined> {
    const { set, unset } = splitPatch(fields);
    const expected = Object.entries(expect).flatMap(([key, value]) => [key, encodeValue(key, value)]);
    const pairs = Object.entries({ ...set, updatedAt: now }).flatMap(([key, value]) => [key, encodeValue(key, value)]);
    const reply = await this.#withTeam(id, (index, team) =>
      this.#client.poseidonCas(...index, this.#keys.fence, fenceArg(fence), this.#keys.changes, id, team, expected.length, ...expected, pairs.length, ...pairs, ...unset),
    );
    if (reply === null) return undefined;
    if (reply === CONFLICT) return CONFLICT;
    return decodeInstance(pairsToMap(reply as string[]));
  }

  /** See `Store.assign`. */
  async assign(id: string, from: Placement, to: string | undefined, fields: InstanceIntent, now: number, fence?: Fence): Promise<Instance | typeof CONFLICT | undefined> {
    const { set, unset } = splitPatch({ ...fields, epoch: from.epoch + 1, worker: to });
    const pairs = Object.entries({ ...set, placedAt: now, updatedAt: now }).flatMap(([key, value]) => [key, encodeValue(key, value)]);
    const k = this.#keys;
    const reply = await this.#withTeam(id, (index, team) =>
      this.#client.poseidonAssign(
        ...index, k.worker(from.worker ?? '-'), k.worker(to ?? '-'), k.fence, fenceArg(fence),
        k.changes, id, String(from.epoch), from.worker ?? '', to ?? '', team, pairs.length, ...pairs, ...unset,
      ),
    );
    if (reply === null) return undefined;
    if (reply === CONFLICT) return CONFLICT;
    return decodeInstance(pairsToMap(reply as string[]));
  }

  /** See `Store.claimPooled` (the CLAIM script). */
  async claimPooled(claimant: Instance, member: Instance, opts: ClaimOptions, now: number): Promise<Instance | typeof CONFLICT> {
    const k = this.#keys;
    const { team, owner, challenge } = claimant;
    const reply = await this.#run(() => this.#client.poseidonClaim(
      k.inst(claimant.id), k.inst(member.id), k.ids, k.team(team), k.teamLive(team), k.team(POOL_TEAM), k.teamLive(POOL_TEAM), k.challenge(challenge),
      k.admitted, k.queue, k.queueSeq, k.slot(owner, challenge), k.slot(member.owner, challenge), k.idem(opts.idempotencyKey ?? '-'),
      now, claimant.id, member.id, k.changes, team, owner, challenge, member.owner, POOL_TEAM, claimant.specHash, opts.reason, opts.idempotencyKey ? '1' : '0', opts.sealedFlag ?? '',
    ));
    if (reply === CONFLICT) return CONFLICT;
    return decodeInstance(pairsToMap(reply as string[]));
  }

  /**
   * Runs a write to `id` that keeps the zset indexes: `write` gets the record's team (read first:
   * its `team-live` key must be declared) and the index keys `[inst, admitted, queue, queue-seq,
   * team-live]`. The script answers 'retry' when the record's team is not the one read (deleted
   * and stored again meanwhile); 'fenced' throws `E_FENCED`.
   */
  async #withTeam(id: string, write: (index: string[], team: string) => Promise<unknown>): Promise<unknown> {
    const k = this.#keys;
    for (let attempt = 0; attempt < TEAM_READS; attempt++) {
      const team = (await this.#run(() => this.#client.hget(k.inst(id), 'team'))) ?? '';
      const reply = await this.#run(() => write([k.inst(id), k.admitted, k.queue, k.queueSeq, k.teamLive(team)], team));
      fencedCheck(reply);
      if (reply !== RETRY) return reply;
    }
    throw new PoseidonError('E_STORE', `instance ${id} was replaced repeatedly while being written; retry`, { kind: 'transient' });
  }

  /** See `Store.idempotentInstance`. */
  async idempotentInstance(key: string, _now: number): Promise<string | undefined> {
    const raw = await this.#run(() => this.#client.get(this.#keys.idem(key)));
    return raw === null ? undefined : raw.slice(raw.indexOf('\n') + 1);
  }

  /** See `Store.queuedIds`; the queue holds exactly the instances still waiting. */
  async queuedIds(): Promise<string[]> {
    await this.#indexed();
    return this.#run(() => this.#client.zrange(this.#keys.queue, 0, -1));
  }

  /** See `Store.queuePosition`; O(log n). */
  async queuePosition(id: string): Promise<number | undefined> {
    await this.#indexed();
    const rank = await this.#run(() => this.#client.zrank(this.#keys.queue, id));
    return rank === null ? undefined : rank + 1;
  }

  /** See `Store.admit`. */
  async admit(id: string, now: number, capacity: number, times: { expiresAt: number; maxExpiresAt: number }, fence?: Fence): Promise<AdmitResult> {
    await this.#indexed();
    const k = this.#keys;
    return (await this.#withTeam(id, (index, team) =>
      this.#client.poseidonAdmit(...index, k.fence, fenceArg(fence), now, id, k.changes, capacity, times.expiresAt, times.maxExpiresAt, team),
    )) as AdmitResult;
  }

  /** See `Store.admittedExpiry`; O(log n + position): the index is ordered by expiry. */
  async admittedExpiry(position: number, now: number): Promise<number | undefined> {
    await this.#indexed();
    const [, score] = await this.#run(() => this.#client.zrangebyscore(this.#keys.admitted, `(${now}`, '+inf', 'WITHSCORES', 'LIMIT', position - 1, 1));
    return score === undefined ? undefined : Number(score);
  }

  /** See `Store.countAdmitted`; O(log n), with no write needed as instances expire. */
  async countAdmitted(now: number): Promise<number> {
    await this.#indexed();
    return this.#run(() => this.#client.zcount(this.#keys.admitted, `(${now}`, '+inf'));
  }

  /** Resolves once the zset indexes cover every record (see redis-index.ts); retried after a failure. */
  #indexed(): Promise<void> {
    this.#indexes ??= this.#run(() => ensureIndexes(this.#client, this.#keys)).catch((err: unknown) => {
      this.#indexes = undefined;
      throw err;
    });
    return this.#indexes;
  }

  /** See `Store.hitRate`; `now` is unused: Redis keeps the window's clock. */
  async hitRate(key: string, limit: number, windowMs: number, _now: number): Promise<RateResult> {
    const [allowed, ttl] = (await this.#run(() => this.#client.poseidonRate(this.#keys.rate(key), limit, windowMs))) as [number, number];
    return { allowed: allowed === 1, retryAfterMs: Math.max(0, ttl) };
  }

  /** See `Store.recordFlag`. */
  async recordFlag(digest: string, record: FlagRecord, ttlMs: number): Promise<void> {
    await this.#run(() => this.#client.set(this.#keys.flag(digest), JSON.stringify(record), 'PX', ttlMs));
  }

  /** See `Store.findFlag`. */
  async findFlag(digest: string): Promise<FlagRecord | undefined> {
    const raw = await this.#run(() => this.#client.get(this.#keys.flag(digest)));
    return raw === null ? undefined : (JSON.parse(raw) as FlagRecord);
  }

  /** See `Store.addIncident`; keeps the latest 10,000. */
  async addIncident(incident: FlagIncident): Promise<void> {
    await this.#run(() => this.#client.multi().lpush(this.#keys.incidents, JSON.stringify(incident)).ltrim(this.#keys.incidents, 0, 9999).exec());
  }

  /** See `Store.listIncidents`. */
  async listIncidents(limit: number): Promise<FlagIncident[]> {
    const rows = await this.#run(() => this.#client.lrange(this.#keys.incidents, 0, Math.max(0, limit - 1)));
    return rows.map((r) => JSON.parse(r) as FlagIncident);
  }

  /** See `Store.getInstance`. */
  async getInstance(id: string): Promise<Instance | undefined> {
    const hash = await this.#run(() => this.#client.hgetall(this.#keys.inst(id)));
    const fields = new Map(Object.entries(hash));
    return fields.size === 0 ? undefined : decodeInstance(fields);
  }

  /** See `Store.listInstances`; ids whose hash vanished meanwhile are skipped. */
  async listInstances(filter: InstanceFilter = {}): Promise<Instance[]> {
    const ids = await this.#run(() => this.#client.sinter(...this.#indexKeys(filter)));
    const out: Instance[] = [];
    // In pipelines of LIST_CHUNK records, decoded as they come: the raw replies of a whole
    // listing of 10,000 records never exist at once (the start-up peak of a manager's memory).
    for (let from = 0; from < ids.length; from += LIST_CHUNK) {
      const pipeline = this.#client.pipeline();
      for (const id of ids.slice(from, from + LIST_CHUNK)) pipeline.hgetall(this.#keys.inst(id));
      const replies = (await this.#run(() => pipeline.exec())) ?? [];
      for (const [err, hash] of replies) {
        if (err) throw this.#fail(err);
        const fields = new Map(Object.entries(hash as Record<string, string>));
        if (fields.size > 0) out.push(decodeInstance(fields));
      }
    }
    return out.sort(compareInstances);
  }

  /** See `Store.listIds`. */
  async listIds(): Promise<string[]> {
    return this.#run(() => this.#client.smembers(this.#keys.ids));
  }

  /** See `Store.updateInstance`; patch rules are `splitPatch`'s (undefined removes optional fields). */
  async updateInstance(
    id: string,
    fields: InstanceObservation | InstanceIntent,
    now: number,
    fence?: Fence,
  ): Promise<Instance | undefined> {
    const { set, unset } = splitPatch(fields);
    const pairs = Object.entries({ ...set, updatedAt: now }).flatMap(([key, value]) => [key, encodeValue(key, value)]);
    const reply = await this.#withTeam(id, (index, team) =>
      this.#client.poseidonUpdate(...index, this.#keys.fence, fenceArg(fence), this.#keys.changes, id, team, pairs.length, ...pairs, ...unset),
    );
    return reply === null ? undefined : decodeInstance(pairsToMap(reply as string[]));
  }

  /** See `Store.deleteInstance`; idempotent. */
  async deleteInstance(id: string, fence?: Fence): Promise<void> {
    const k = this.#keys;
    // Reading first is how the script can name every key it touches; it refuses (-1) when the
    // record is no longer the one read (moved to another worker, replaced), and we read again.
    for (let attempt = 0; attempt < 10; attempt++) {
      const [team, challenge, owner, worker] = await this.#run(() =>
        this.#client.hmget(k.inst(id), 'team', 'challenge', 'owner', 'worker'),
      );
      if (team == null || challenge == null || owner == null) return;
      const done = await this.#run(() =>
        this.#client.poseidonDelete(
          k.inst(id), k.ids, k.team(team), k.challenge(challenge), k.slot(owner, challenge), k.admitted, k.queue, k.worker(worker ?? '-'),
          k.teamLive(team), k.fence, fenceArg(fence), id, k.changes, team, challenge, owner, worker ?? '',
        ),
      );
      fencedCheck(done);
      if (done !== -1) return;
    }
    throw new PoseidonError('E_STORE', `instance ${id} kept moving between workers while being deleted; retry`, { kind: 'transient' });
  }

  /**
   * See `Store.onChange`. The first call opens a dedicated subscriber connection (it resubscribes
   * after reconnects); changes published before that subscription is active are not seen.
   */
  onChange(listener: (id: string, created?: Instance) => void): () => void {
    const wrapped = (id: string, created?: Instance): void => listener(id, created);
    if (this.#closing) return () => {};
    this.#listeners.add(wrapped);
    this.#sub ??= this.#subscribe();
    return () => {
      this.#listeners.delete(wrapped);
    };
  }

  /** Closes both connections (QUIT when connected); idempotent. */
  close(): Promise<void> {
    this.#closing ??= Promise.all([shutdown(this.#client), this.#sub && shutdown(this.#sub)]).then(() => {
      this.#listeners.clear();
    });
    return this.#closing;
  }

  #subscribe(): Redis {
    const sub = this.#client.duplicate();
    const channel = this.#keys.changes;
    sub.on('error', () => {});
    // SUBSCRIBE on every ready: covers a first connect that failed and any later reconnect.
    sub.on('ready', () => void sub.subscribe(channel).catch(() => {}));
    // `<id>`, or `<id> <the stored hash as a JSON array of fields and values>` from the CREATE script.
    sub.on('message', (ch: string, message: string) => {
      if (ch === channel) this.#dispatch(...parseChange(message));
    });
    sub.connect().catch(() => {});
    return sub;
  }

  #dispatch(id: string, created?: Instance): void {
    for (const listener of this.#listeners) {
      try {
        listener(id, created);
      } catch {
        // A throwing listener must not stop the others; change events are hints anyway.
      }
    }
  }

  #indexKeys(filter: InstanceFilter): string[] {
    const keys: string[] = [];
    if (filter.team !== undefined) keys.push(this.#keys.team(filter.team));
    if (filter.challenge !== undefined) keys.push(this.#keys.challenge(filter.challenge));
    if (filter.worker !== undefined) keys.push(this.#keys.worker(filter.worker));
    return keys.length > 0 ? keys : [this.#keys.ids];
  }

  async #run<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw this.#fail(err);
    }
  }

  #fail(err: unknown): PoseidonError {
    if (isPoseidonError(err)) return err;
    let text = err instanceof Error ? err.message : String(err);
    if (err instanceof Error && err.name === 'MaxRetriesPerRequestError' && this.#lastError) {
      text = `${this.#lastError.message} (gave up after a reconnect attempt)`;
    }
    const message = this.#redact(text);
    const cause = Object.assign(new Error(message), {
      name: err instanceof Error ? err.name : 'Error',
      code: (err as { code?: unknown } | null)?.code,
    });
    return new PoseidonError('E_STORE', `store unavailable: ${message}`, { kind: 'transient', cause });
  }
}

/** The fence argument of a fenced script ('' for an unfenced write). */
function fenceArg(fence: Fence | undefined): string {
  return fence ? String(fence.token) : '';
}

/** Throws `E_FENCED` for a write the store refused because its token is stale. */
function fencedCheck(reply: unknown): void {
  if (reply === 'fenced') throw new PoseidonError(FENCED, 'write refused: this manager\'s lease token is stale (another replica leads now)', { kind: 'terminal' });
}

/** `scheme://user:` then the password: everything up to the last `@` before the first `/`. */
const URL_PASSWORD = /^([a-z][a-z0-9+.-]*:\/\/[^:@/]*:)([^/]*)@/i;

/** `url` with its password (if any) replaced by `***`; safe for logs and error messages. */
export function redactUrl(url: string): string {
  return url.replace(URL_PASSWORD, '$1***@');
}

/** A function that removes the password of `url` (raw and percent-decoded) from any text. */
export function redactor(url: string): (text: string) => string {
  const raw = URL_PASSWORD.exec(url)?.[2] ?? '';
  const secrets = [raw, safeDecode(raw)].filter((s) => s.length > 0);
  return (text) => secrets.reduce((acc, secret) => acc.split(secret).join('***'), text.split(url).join(redactUrl(url)));
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** QUIT when connected (falls back to a hard disconnect); otherwise just stop reconnecting. */
async function shutdown(client: Redis): Promise<void> {
  if (client.status !== 'ready') {
    client.disconnect();
    return;
  }
  try {
    await client.quit();
  } catch {
    client.disconnect();
  }
}

/** A change message: the id, and the created record when it carries one (a bad record is only the id). */
function parseChange(message: string): [string, Instance?] {
  const space = message.indexOf(' ');
  if (space < 0) return [message];
  const id = message.slice(0, space);
  try {
    const created = decodeInstance(pairsToMap(JSON.parse(message.slice(space + 1)) as string[]));
    return created.id === id ? [id, created] : [id];
  } catch {
    return [id];
  }
}
