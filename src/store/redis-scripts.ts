/**
 * Redis key layout and the Lua scripts that make `RedisStore` writes atomic.
 *
 * Keys, all under a prefix (default `poseidon:`):
 * - `inst:<id>`                 hash, one instance (fields per `codec.ts`)
 * - `ids`                       set of every instance id
 * - `team:<team>`               set of ids by team
 * - `challenge:<challenge>`     set of ids by challenge
 * - `slot:<owner>:<challenge>`  string, id of the instance that took the owner's slot
 * - `changes`                   pub/sub channel; each message is an instance id
 * User-supplied parts are escaped (`%` -> `%25`, `:` -> `%3A`) so they never contain the
 * separator and two different (owner, challenge) pairs can never share a key.
 */
import type { Redis } from 'ioredis';

/** Escapes `%` and `:` so a key part never contains the separator; injective. */
export function escapeKeyPart(part: string): string {
  return part.replace(/[%:]/g, (c) => (c === '%' ? '%25' : '%3A'));
}

/** Key names under one prefix. */
export interface RedisKeys {
  inst(id: string): string;
  /** Prefix of instance hash keys, for scripts that follow the slot to its holder. */
  instPrefix: string;
  ids: string;
  team(team: string): string;
  challenge(challenge: string): string;
  slot(owner: string, challenge: string): string;
  changes: string;
}

/** The key layout for `prefix` (see the module comment). */
export function redisKeys(prefix: string): RedisKeys {
  return {
    inst: (id) => `${prefix}inst:${id}`,
    instPrefix: `${prefix}inst:`,
    ids: `${prefix}ids`,
    team: (team) => `${prefix}team:${escapeKeyPart(team)}`,
    challenge: (challenge) => `${prefix}challenge:${escapeKeyPart(challenge)}`,
    slot: (owner, challenge) => `${prefix}slot:${escapeKeyPart(owner)}:${escapeKeyPart(challenge)}`,
    changes: `${prefix}changes`,
  };
}

/*
 * Create. KEYS: inst, slot, ids, team index, challenge index.
 * ARGV: now, id, instPrefix, channel, field1, value1, ...
 * The liveness test mirrors `isLive` in core/instance.ts (desired running, not failed,
 * now < expiresAt); the contract suite runs the same cases against both adapters.
 * Reads the slot holder's hash by a computed key: fine on a single Redis, not on Cluster.
 */
const CREATE = `
local held = redis.call('GET', KEYS[2])
if held then
  local hkey = ARGV[3] .. held
  local f = redis.call('HMGET', hkey, 'desired', 'status', 'expiresAt')
  local exp = tonumber(f[3])
  if f[1] == 'running' and f[2] ~= 'failed' and exp and exp > tonumber(ARGV[1]) then
    return {'existing', redis.call('HGETALL', hkey)}
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'collision'}
end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('SADD', KEYS[4], ARGV[2])
redis.call('SADD', KEYS[5], ARGV[2])
redis.call('SET', KEYS[2], ARGV[2])
redis.call('PUBLISH', ARGV[4], ARGV[2])
return {'created'}
`;

/*
 * Update. KEYS: inst. ARGV: channel, id, n, then n strings of field/value pairs (always
 * including updatedAt), then the fields to delete. A missing hash is never recreated.
 */
const UPDATE = `
if redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
local n = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], unpack(ARGV, 4, 3 + n))
if #ARGV > 3 + n then
  redis.call('HDEL', KEYS[1], unpack(ARGV, 4 + n))
end
redis.call('PUBLISH', ARGV[1], ARGV[2])
return redis.call('HGETALL', KEYS[1])
`;

/*
 * Delete. KEYS: inst, ids, team index, challenge index, slot. ARGV: id, channel.
 * The slot is freed only while it still names this id (a newer instance may hold it).
 */
const DELETE = `
local existed = redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('SREM', KEYS[4], ARGV[1])
if redis.call('GET', KEYS[5]) == ARGV[1] then
  redis.call('DEL', KEYS[5])
end
if existed == 1 then
  redis.call('PUBLISH', ARGV[2], ARGV[1])
end
return existed
`;

type ScriptArg = string | number;

/** The scripts as client methods (EVALSHA with a transparent EVAL fallback, via ioredis). */
export interface StoreScripts {
  poseidonCreate(...args: ScriptArg[]): Promise<unknown>;
  poseidonUpdate(...args: ScriptArg[]): Promise<unknown>;
  poseidonDelete(...args: ScriptArg[]): Promise<unknown>;
}

/** Registers the scripts on `client` and returns it typed with them. */
export function withScripts(client: Redis): Redis & StoreScripts {
  client.defineCommand('poseidonCreate', { numberOfKeys: 5, lua: CREATE });
  client.defineCommand('poseidonUpdate', { numberOfKeys: 1, lua: UPDATE });
  client.defineCommand('poseidonDelete', { numberOfKeys: 5, lua: DELETE });
  return client as Redis & StoreScripts;
}
