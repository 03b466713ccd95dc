/**
 * `Fleet` on Redis. Keys under the prefix: `fleet:workers` (set of ids), `fleet:worker:<id>`
 * (hash: `record` JSON without the heartbeat, `sig` of that JSON, `hb` registry-clock heartbeat,
 * `admin`, `launch` the launch override as JSON when an admin set one), `fleet:images:<id>`
 * (hash: image reference -> JSON state), `fleet:shared:<name>`; the channel `fleet` carries a
 * worker id after a registration, a state or launch override change, or an image report.
 * Every script names the keys it touches.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { Codes, PoseidonError } from '../core/errors.ts';
import type { Fleet, FleetListing } from '../core/fleet.ts';
import { parseLaunchOverride, workerSignatureText, type LaunchSettings, type WorkerAdmin, type WorkerImageState, type WorkerRecord } from '../core/worker.ts';
import { createRedisClient } from './redis-client.ts';
import { redactor } from './redis.ts';

const NOW_MS = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/* KEYS: worker hash, workers set. ARGV: id, record JSON, sig, channel. Returns the heartbeat time. */
const HEARTBEAT = `${NOW_MS}
local prev = redis.call('HGET', KEYS[1], 'sig')
redis.call('HSET', KEYS[1], 'record', ARGV[2], 'sig', ARGV[3], 'hb', now)
redis.call('HSETNX', KEYS[1], 'admin', 'active')
redis.call('SADD', KEYS[2], ARGV[1])
if prev ~= ARGV[3] then redis.call('PUBLISH', ARGV[4], ARGV[1]) end
return now`;

/* KEYS: worker hash. ARGV: expected admin ('' for any), admin, channel, id. 1 when set. */
const SET_ADMIN = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'admin') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'admin', ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1`;

/* KEYS: worker hash. ARGV: override JSON ('' clears it), channel, id. 1 when set. */
const SET_LAUNCH = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] == '' then redis.call('HDEL', KEYS[1], 'launch') else redis.call('HSET', KEYS[1], 'launch', ARGV[1]) end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1`;

/* KEYS: images hash. ARGV: channel, id, then reference/JSON pairs (without "at"). */
const REPORT = `${NOW_MS}
for i = 3, #ARGV, 2 do
  local v = cjson.decode(ARGV[i + 1])
  v.at = now
  redis.call('HSET', KEYS[1], ARGV[i], cjson.encode(v))
end
redis.call('PUBLISH', ARGV[1], ARGV[2])
return now`;

type Scripted = Redis & {
  poseidonHeartbeat(worker: string, set: string, id: string, record: string, sig: string, channel: string): Promise<number>;
  poseidonSetAdmin(worker: string, expect: string, admin: string, channel: string, id: string): Promise<number>;
  poseidonReportImages(images: string, channel: string, id: string, ...pairs: string[]): Promise<number>;
  poseidonSetLaunch(worker: string, override: string, channel: string, id: string): Promise<number>;
};

/** `Fleet` backed by Redis at `url` under `prefix`; see the module comment for the layout. */
export class RedisFleet implements Fleet {
  readonly #client: Scripted;
  readonly #prefix: string;
  readonly #redact: (text: string) => string;
  readonly #listeners = new Set<() => void>();
  #sub: Redis | undefined;

  constructor(opts: { url: string; prefix?: string }) {
    this.#prefix = `${opts.prefix ?? 'poseidon:'}fleet:`;
    this.#redact = redactor(opts.url);
    const client = createRedisClient(opts.url);
    client.defineCommand('poseidonHeartbeat', { numberOfKeys: 2, lua: HEARTBEAT });
    client.defineCommand('poseidonSetAdmin', { numberOfKeys: 1, lua: SET_ADMIN });
    client.defineCommand('poseidonReportImages', { numberOfKeys: 1, lua: REPORT });
    client.defineCommand('poseidonSetLaunch', { numberOfKeys: 1, lua: SET_LAUNCH });
    this.#client = client as Scripted;
  }

  async heartbeat(record: Omit<WorkerRecord, 'heartbeatAt'>): Promise<WorkerRecord> {
    const { heartbeatAt: _h, ...rest } = record as WorkerRecord;
    const json = JSON.stringify(rest);
    const sig = createHash('sha256').update(workerSignatureText(rest)).digest('hex').slice(0, 16);
    const at = await this.#run(() => this.#client.poseidonHeartbeat(this.#key('worker', record.id), `${this.#prefix}workers`, record.id, json, sig, this.#channel()));
    // As stored (through JSON, as list() reads it): fields set to undefined come back absent.
    return { ...(JSON.parse(json) as Omit<WorkerRecord, 'heartbeatAt'>), heartbeatAt: Number(at) };
  }

  async list(): Promise<FleetListing> {
    const [[, time], [, ids]] = (await this.#run(() => this.#client.multi().time().smembers(`${this.#prefix}workers`).exec())) as [[unknown, [string, string]], [unknown, string[]]];
    const now = Number(time[0]) * 1000 + Math.floor(Number(time[1]) / 1000);
    const pipe = this.#client.pipeline();
    for (const id of ids) pipe.hgetall(this.#key('worker', id)).hgetall(this.#key('images', id));
    const replies = ids.length ? ((await this.#run(() => pipe.exec())) ?? []) : [];
    const out: FleetListing = { now, workers: [], images: {} };
    ids.forEach((id, i) => {
      const h = replies[2 * i]?.[1] as Record<string, string> | undefined;
      const imgs = replies[2 * i + 1]?.[1] as Record<string, string> | undefined;
      if (!h?.record) return;
      const record = { ...(JSON.parse(h.record) as Omit<WorkerRecord, 'heartbeatAt'>), heartbeatAt: Number(h.hb ?? 0) } as WorkerRecord;
      out.workers.push({ record, admin: (h.admin ?? 'active') as WorkerAdmin, launchOverride: launchOverrideOf(h.launch) });
      out.images[id] = Object.fromEntries(Object.entries(imgs ?? {}).map(([ref, v]) => [ref, JSON.parse(v) as WorkerImageState]));
    });
    out.workers.sort((a, b) => (a.record.id < b.record.id ? -1 : 1));
    return out;
  }

  async setAdmin(id: string, admin: WorkerAdmin): Promise<boolean> {
    return (await this.#run(() => this.#client.poseidonSetAdmin(this.#key('worker', id), '', admin, this.#channel(), id))) === 1;
  }

  async compareAdmin(id: string, expect: WorkerAdmin, admin: WorkerAdmin): Promise<boolean> {
    return (await this.#run(() => this.#client.poseidonSetAdmin(this.#key('worker', id), expect, admin, this.#channel(), id))) === 1;
  }

  async setLaunchOverride(id: string, override: Partial<LaunchSettings>): Promise<boolean> {
    const valid = parseLaunchOverride(override);
    const json = Object.keys(valid).length ? JSON.stringify(valid) : '';
    return (await this.#run(() => this.#client.poseidonSetLaunch(this.#key('worker', id), json, this.#channel(), id))) === 1;
  }

  async launchOverride(id: string): Promise<Partial<LaunchSettings>> {
    return launchOverrideOf(await this.#run(() => this.#client.hget(this.#key('worker', id), 'launch')));
  }

  async forget(id: string): Promise<void> {
    await this.#run(() => this.#client.multi().del(this.#key('worker', id), this.#key('images', id)).srem(`${this.#prefix}workers`, id).publish(this.#channel(), id).exec());
  }

  async reportImages(worker: string, states: Record<string, Omit<WorkerImageState, 'at'>>): Promise<void> {
    const pairs = Object.entries(states).flatMap(([ref, s]) => [ref, JSON.stringify(s)]);
    if (pairs.length === 0) return;
    await this.#run(() => this.#client.poseidonReportImages(this.#key('images', worker), this.#channel(), worker, ...pairs));
  }

  async pruneImages(worker: string, keep: readonly string[]): Promise<void> {
    const key = this.#key('images', worker);
    const known = await this.#run(() => this.#client.hkeys(key));
    const gone = known.filter((r) => !keep.includes(r));
    if (gone.length) await this.#run(() => this.#client.hdel(key, ...gone));
  }

  async shared(name: 'deployment' | 'edge-secret', candidate: string): Promise<string> {
    const key = `${this.#prefix}shared:${name}`;
    const [, [, value]] = (await this.#run(() => this.#client.multi().set(key, candidate, 'NX').get(key).exec())) as [unknown, [unknown, string]];
    return value;
  }

  async setShared(name: 'deployment' | 'edge-secret', value: string): Promise<void> {
    await this.#run(() => this.#client.set(`${this.#prefix}shared:${name}`, value));
  }

  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    if (!this.#sub) {
      const sub = this.#client.duplicate();
      sub.on('error', () => undefined);
      sub.on('ready', () => void sub.subscribe(this.#channel()).catch(() => undefined));
      sub.on('message', () => { for (const l of this.#listeners) try { l(); } catch { /* hints only */ } });
      sub.connect().catch(() => undefined);
      this.#sub = sub;
    }
    return () => this.#listeners.delete(listener);
  }

  async close(): Promise<void> {
    this.#listeners.clear();
    this.#sub?.disconnect();
    this.#client.disconnect();
  }

  #key(kind: 'worker' | 'images', id: string): string {
    return `${this.#prefix}${kind}:${id}`;
  }

  #channel(): string {
    return `${this.#prefix.slice(0, -'fleet:'.length)}fleet`;
  }

  async #run<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw new PoseidonError(Codes.store, `fleet registry unavailable: ${this.#redact((err as Error).message)}`, { kind: 'transient', cause: err });
    }
  }
}

/** A stored launch override; what is not JSON, or out of bounds, is left out. */
function launchOverrideOf(json: string | null | undefined): Partial<LaunchSettings> {
  if (!json) return {};
  try {
    return parseLaunchOverride(JSON.parse(json));
  } catch {
    return {};
  }
}
