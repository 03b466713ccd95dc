/**
 * `LeaseStore` on Redis: one Lua script per operation, so acquire and release are atomic across
 * every Poseidon process sharing the Redis and prefix. Keys: `<prefix>leases:ports` (hash
 * port -> "instance\tname\tacquiredAt"), `<prefix>leases:inst:<id>` (hash name -> port) and
 * `<prefix>leases:cursor` (round-robin position within the range).
 */
import type { Redis } from 'ioredis';
import { createRedisClient } from './redis-client.ts';
import { Codes, PoseidonError } from '../core/errors.ts';
import { noPortError, type LeaseStore, type PortLease, type PortRange } from '../core/leases.ts';
import { redactor } from './redis.ts';

const ACQUIRE = `
local lo, hi, now, inst, n = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4], tonumber(ARGV[5])
local size = hi - lo + 1
local result, needed = {}, {}
for i = 1, n do
  local name = ARGV[5 + i]
  local held = redis.call('HGET', KEYS[2], name)
  local keep = false
  if held then
    local p = tonumber(held)
    local owner = redis.call('HGET', KEYS[1], held)
    local mine = owner and string.sub(owner, 1, #inst + #name + 2) == inst .. '\\t' .. name .. '\\t'
    if mine and p >= lo and p <= hi then keep = true; result[i] = p
    elseif mine then redis.call('HDEL', KEYS[1], held) end
  end
  if not keep then table.insert(needed, i) end
end
if #needed == 0 then return result end
local cursor = tonumber(redis.call('GET', KEYS[3]) or '0')
local scanned, chosen = 0, {}
for _, i in ipairs(needed) do
  local found = nil
  while scanned < size and not found do
    local p = lo + ((cursor + scanned) % size)
    scanned = scanned + 1
    if redis.call('HEXISTS', KEYS[1], tostring(p)) == 0 then found = p end
  end
  if not found then return -1 end
  chosen[i] = found
end
for i, p in pairs(chosen) do
  redis.call('HSET', KEYS[1], tostring(p), inst .. '\\t' .. ARGV[5 + i] .. '\\t' .. now)
  redis.call('HSET', KEYS[2], ARGV[5 + i], tostring(p))
  result[i] = p
end
redis.call('SET', KEYS[3], tostring((cursor + scanned) % size))
return result
`;

const RELEASE = `
local all = redis.call('HGETALL', KEYS[2])
local freed = 0
for i = 1, #all, 2 do
  local owner = redis.call('HGET', KEYS[1], all[i + 1])
  if owner and string.sub(owner, 1, #ARGV[1] + 1) == ARGV[1] .. '\\t' then
    redis.call('HDEL', KEYS[1], all[i + 1])
    freed = freed + 1
  end
end
redis.call('DEL', KEYS[2])
return freed
`;

type Scripted = Redis & {
  poseidonLeaseAcquire(ports: string, inst: string, cursor: string, ...args: (string | number)[]): Promise<number[] | number>;
  poseidonLeaseRelease(ports: string, inst: string, id: string): Promise<number>;
};

/** `LeaseStore` backed by Redis at `url` under `prefix` (default `poseidon:`); connects lazily. */
export class RedisLeaseStore implements LeaseStore {
  readonly #client: Scripted;
  readonly #prefix: string;
  readonly #redact: (text: string) => string;

  constructor(opts: { url: string; prefix?: string }) {
    this.#prefix = `${opts.prefix ?? 'poseidon:'}leases:`;
    this.#redact = redactor(opts.url);
    const client = createRedisClient(opts.url);
    client.defineCommand('poseidonLeaseAcquire', { numberOfKeys: 3, lua: ACQUIRE });
    client.defineCommand('poseidonLeaseRelease', { numberOfKeys: 2, lua: RELEASE });
    this.#client = client as Scripted;
  }

  /** See `LeaseStore.acquire`. */
  async acquire(instance: string, names: readonly string[], range: PortRange, now: number): Promise<Record<string, number>> {
    if (names.length === 0) return {};
    const reply = await this.#run(() =>
      this.#client.poseidonLeaseAcquire(`${this.#prefix}ports`, this.#inst(instance), `${this.#prefix}cursor`, range.lo, range.hi, now, instance, names.length, ...names),
    );
    if (!Array.isArray(reply)) throw noPortError(instance, names.length, range);
    return Object.fromEntries(names.map((name, i) => [name, Number(reply[i])]));
  }

  /** See `LeaseStore.release`. */
  async release(instance: string): Promise<number> {
    return Number(await this.#run(() => this.#client.poseidonLeaseRelease(`${this.#prefix}ports`, this.#inst(instance), instance)));
  }

  /** See `LeaseStore.list`. */
  async list(): Promise<PortLease[]> {
    const all = await this.#run(() => this.#client.hgetall(`${this.#prefix}ports`));
    return Object.entries(all)
      .map(([port, v]) => {
        const [instance = '', name = '', at = '0'] = v.split('\t');
        return { port: Number(port), instance, name, acquiredAt: Number(at) };
      })
      .sort((a, b) => a.port - b.port);
  }

  /** Disconnects; idempotent. */
  async close(): Promise<void> {
    this.#client.disconnect();
  }

  #inst(id: string): string {
    return `${this.#prefix}inst:${id}`;
  }

  async #run<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw new PoseidonError(Codes.store, `lease store unavailable: ${this.#redact((err as Error).message)}`, { kind: 'transient', cause: err });
    }
  }
}
