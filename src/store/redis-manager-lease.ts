/**
 * `ManagerLease` on Redis: `<prefix>lease` (hash: holder, token, expiresAt on Redis's clock) and
 * `<prefix>fence` (the current fencing token, incremented by every acquisition; fenced writes
 * compare against it). One Lua script per operation; each names the keys it touches.
 */
import type { Redis } from 'ioredis';
import type { LeaseState, ManagerLease } from '../core/manager-lease.ts';
import { createRedisClient } from './redis-client.ts';
import { redisCall } from './redis-errors.ts';
import { redactor } from './redis.ts';

const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/* KEYS: lease, fence. ARGV: holder, leaseMs. The token held, or 0. */
const ACQUIRE = `${NOW}
local h = redis.call('HMGET', KEYS[1], 'holder', 'token', 'expiresAt')
local live = h[3] and tonumber(h[3]) > now
if live and h[1] == ARGV[1] then
  redis.call('HSET', KEYS[1], 'expiresAt', now + tonumber(ARGV[2]))
  return tonumber(h[2])
end
if live then return 0 end
local token = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'token', token, 'expiresAt', now + tonumber(ARGV[2]))
return token`;

/* KEYS: lease. ARGV: holder, token, leaseMs. 1 when renewed. */
const RENEW = `${NOW}
local h = redis.call('HMGET', KEYS[1], 'holder', 'token', 'expiresAt')
if h[1] ~= ARGV[1] or h[2] ~= ARGV[2] or not h[3] or tonumber(h[3]) <= now then return 0 end
redis.call('HSET', KEYS[1], 'expiresAt', now + tonumber(ARGV[3]))
return 1`;

/* KEYS: lease. ARGV: holder, token. */
const RELEASE = `
local h = redis.call('HMGET', KEYS[1], 'holder', 'token')
if h[1] == ARGV[1] and h[2] == ARGV[2] then redis.call('DEL', KEYS[1]) end
return 1`;

/* KEYS: lease, fence. Returns {holder or '', token, expiresAt or 0, now}. */
const STATE = `${NOW}
local h = redis.call('HMGET', KEYS[1], 'holder', 'expiresAt')
local live = h[2] and tonumber(h[2]) > now
return {live and h[1] or '', tonumber(redis.call('GET', KEYS[2]) or '0'), live and tonumber(h[2]) or 0, now}`;

type Scripted = Redis & {
  poseidonLeaseTake(lease: string, fence: string, holder: string, leaseMs: number): Promise<number>;
  poseidonLeaseRenew(lease: string, holder: string, token: string, leaseMs: number): Promise<number>;
  poseidonLeaseRelease(lease: string, holder: string, token: string): Promise<number>;
  poseidonLeaseState(lease: string, fence: string): Promise<[string, number, number, number]>;
};

/** The lease and fence keys under `prefix`: fenced store scripts read the fence key too. */
export function leaseKeys(prefix: string): { lease: string; fence: string } {
  return { lease: `${prefix}lease`, fence: `${prefix}fence` };
}

/** See the module comment. */
export class RedisManagerLease implements ManagerLease {
  readonly #client: Scripted;
  readonly #keys: { lease: string; fence: string };
  readonly #redact: (text: string) => string;

  constructor(opts: { url: string; prefix?: string }) {
    this.#keys = leaseKeys(opts.prefix ?? 'poseidon:');
    this.#redact = redactor(opts.url);
    const client = createRedisClient(opts.url);
    client.defineCommand('poseidonLeaseTake', { numberOfKeys: 2, lua: ACQUIRE });
    client.defineCommand('poseidonLeaseRenew', { numberOfKeys: 1, lua: RENEW });
    client.defineCommand('poseidonLeaseRelease', { numberOfKeys: 1, lua: RELEASE });
    client.defineCommand('poseidonLeaseState', { numberOfKeys: 2, lua: STATE });
    this.#client = client as Scripted;
  }

  async acquire(holder: string, leaseMs: number): Promise<number> {
    return Number(await this.#run(() => this.#client.poseidonLeaseTake(this.#keys.lease, this.#keys.fence, holder, leaseMs)));
  }

  async renew(holder: string, token: number, leaseMs: number): Promise<boolean> {
    return (await this.#run(() => this.#client.poseidonLeaseRenew(this.#keys.lease, holder, String(token), leaseMs))) === 1;
  }

  async release(holder: string, token: number): Promise<void> {
    await this.#run(() => this.#client.poseidonLeaseRelease(this.#keys.lease, holder, String(token)));
  }

  async state(): Promise<LeaseState> {
    const [holder, token, expiresAt] = await this.#run(() => this.#client.poseidonLeaseState(this.#keys.lease, this.#keys.fence));
    return { token: Number(token), ...(holder ? { holder, expiresAt: Number(expiresAt) } : {}) };
  }

  async close(): Promise<void> {
    this.#client.disconnect();
  }

  #run<T>(fn: () => Promise<T>): Promise<T> {
    return redisCall('lease', this.#redact, fn);
  }
}
