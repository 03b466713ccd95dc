/**
 * Redis key layout and the Lua scripts that make `RedisStore` writes atomic.
 *
 * Keys, all under a prefix (default `poseidon:`):
 * - `inst:<id>`                 hash, one instance (fields per `codec.ts`)
 * - `ids`                       set of every instance id
 * - `team:<team>`               set of ids by team
 * - `challenge:<challenge>`     set of ids by challenge
 * - `byworker:<worker>`         set of ids placed on a worker
 * - `slot:<owner>:<challenge>`  string, id of the instance that took the owner's slot
 * - `admitted`                  set of admitted ids (pruned of dead ones by every script that counts)
 * - `queue`                     zset of queued ids by arrival (`queue-seq` gives the scores)
 * - `idem:<key>`                string `<fingerprint>\n<id>`, with a TTL
 * - `rate:<key>`                counter with a TTL (fixed window)
 * - `flag:<sha256>`             JSON flag record, with a TTL
 * - `incidents`                 list of JSON flag-sharing incidents, newest first
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
  worker(worker: string): string;
  slot(owner: string, challenge: string): string;
  admitted: string;
  queue: string;
  queueSeq: string;
  idem(key: string): string;
  rate(key: string): string;
  flag(digest: string): string;
  incidents: string;
  changes: string;
  /** The manager lease's fencing token (see store/redis-manager-lease.ts). */
  fence: string;
}

/** The key layout for `prefix` (see the module comment). */
export function redisKeys(prefix: string): RedisKeys {
  return {
    inst: (id) => `${prefix}inst:${id}`,
    instPrefix: `${prefix}inst:`,
    ids: `${prefix}ids`,
    team: (team) => `${prefix}team:${escapeKeyPart(team)}`,
    challenge: (challenge) => `${prefix}challenge:${escapeKeyPart(challenge)}`,
    worker: (worker) => `${prefix}byworker:${escapeKeyPart(worker)}`,
    slot: (owner, challenge) => `${prefix}slot:${escapeKeyPart(owner)}:${escapeKeyPart(challenge)}`,
    admitted: `${prefix}admitted`,
    queue: `${prefix}queue`,
    queueSeq: `${prefix}queue-seq`,
    idem: (key) => `${prefix}idem:${escapeKeyPart(key)}`,
    rate: (key) => `${prefix}rate:${escapeKeyPart(key)}`,
    flag: (digest) => `${prefix}flag:${digest}`,
    incidents: `${prefix}incidents`,
    changes: `${prefix}changes`,
    fence: `${prefix}fence`,
  };
}

/*
 * Shared Lua helpers. `live` mirrors `isLive` in core/instance.ts (desired running, not failed,
 * queued or not yet expired); the contract suite runs the same cases against both adapters.
 * Scripts read hashes by computed keys: fine on a single Redis, not on Cluster.
 */
const HELPERS = `
local function live(hkey, now)
  local f = redis.call('HMGET', hkey, 'desired', 'status', 'expiresAt')
  local exp = tonumber(f[3])
  return f[1] == 'running' and f[2] ~= 'failed' and (f[2] == 'queued' or (exp ~= nil and exp > now))
end
local function prune_admitted(key, prefix, now)
  local n = 0
  for _, id in ipairs(redis.call('SMEMBERS', key)) do
    if live(prefix .. id, now) and redis.call('HGET', prefix .. id, 'status') ~= 'queued' then n = n + 1
    else redis.call('SREM', key, id) end
  end
  return n
end
local function queue_head(key, prefix, now)
  for _, id in ipairs(redis.call('ZRANGE', key, 0, -1)) do
    if redis.call('HGET', prefix .. id, 'status') == 'queued' and live(prefix .. id, now) then return id end
    redis.call('ZREM', key, id)
  end
  return nil
end
`;

/*
 * Create. KEYS: inst, slot, ids, team index, challenge index, admitted, queue, queue-seq, idem, rate.
 * ARGV: now, id, instPrefix, channel, teamLimit, capacity, useIdem, fingerprint, idemTtlMs,
 * rateLimit (0: none), rateWindowMs, owner, createdAt, fields...
 * A record already stored under this id by the same owner at the same createdAt is this very
 * create retried after a lost reply: answered as created. Then, in order: replay of an
 * idempotency key, the rate window (every non-replay attempt counts), the owner's live slot,
 * the team limit.
 */
const CREATE = HELPERS + `
local now = tonumber(ARGV[1])
local prefix = ARGV[3]
if redis.call('EXISTS', KEYS[1]) == 1 then
  local f = redis.call('HMGET', KEYS[1], 'owner', 'createdAt', 'status')
  if f[1] == ARGV[12] and f[2] == ARGV[13] then return {'created', f[3]} end
  return {'collision'}
end
if ARGV[7] == '1' then
  local prev = redis.call('GET', KEYS[9])
  if prev then
    local sep = string.find(prev, '\\n', 1, true)
    local h = redis.call('HGETALL', prefix .. string.sub(prev, sep + 1))
    if #h > 0 then
      if string.sub(prev, 1, sep - 1) == ARGV[8] then return {'replay', h} end
      return {'key-reused', h}
    end
  end
end
local rlimit = tonumber(ARGV[10])
if rlimit > 0 then
  local c = redis.call('INCR', KEYS[10])
  if c == 1 then redis.call('PEXPIRE', KEYS[10], ARGV[11]) end
  if c > rlimit then
    local ttl = redis.call('PTTL', KEYS[10])
    if ttl < 0 then redis.call('PEXPIRE', KEYS[10], ARGV[11]); ttl = tonumber(ARGV[11]) end
    return {'rate-limited', tostring(ttl)}
  end
end
local held = redis.call('GET', KEYS[2])
if held and live(prefix .. held, now) then
  return {'owner', redis.call('HGETALL', prefix .. held)}
end
local limit = tonumber(ARGV[5])
if limit > 0 then
  local holders = {}
  for _, mid in ipairs(redis.call('SMEMBERS', KEYS[4])) do
    if live(prefix .. mid, now) then table.insert(holders, redis.call('HGETALL', prefix .. mid)) end
  end
  if #holders >= limit then return {'team-limit', holders} end
end
redis.call('HSET', KEYS[1], unpack(ARGV, 14))
local status = 'pending'
local cap = tonumber(ARGV[6])
if cap > 0 and (prune_admitted(KEYS[6], prefix, now) >= cap or queue_head(KEYS[7], prefix, now)) then
  status = 'queued'
  redis.call('HSET', KEYS[1], 'status', 'queued')
  redis.call('ZADD', KEYS[7], redis.call('INCR', KEYS[8]), ARGV[2])
else
  redis.call('SADD', KEYS[6], ARGV[2])
end
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('SADD', KEYS[4], ARGV[2])
redis.call('SADD', KEYS[5], ARGV[2])
redis.call('SET', KEYS[2], ARGV[2])
if ARGV[7] == '1' then
  redis.call('SET', KEYS[9], ARGV[8] .. '\\n' .. ARGV[2], 'PX', ARGV[9])
end
redis.call('PUBLISH', ARGV[4], ARGV[2])
return {'created', status}
`;

/*
 * Admit. KEYS: inst, admitted, queue. ARGV: now, id, instPrefix, channel, capacity, expiresAt, maxExpiresAt.
 * Only the oldest live queued instance is admitted (FIFO); dead queue heads are dropped.
 */
const ADMIT = HELPERS + `
local now = tonumber(ARGV[1])
local head = queue_head(KEYS[3], ARGV[3], now)
if head ~= ARGV[2] then
  if redis.call('ZSCORE', KEYS[3], ARGV[2]) then return 'full' end
  return 'gone'
end
local cap = tonumber(ARGV[5])
if cap > 0 and prune_admitted(KEYS[2], ARGV[3], now) >= cap then return 'full' end
redis.call('HSET', KEYS[1], 'status', 'pending', 'expiresAt', ARGV[6], 'maxExpiresAt', ARGV[7], 'updatedAt', ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('PUBLISH', ARGV[4], ARGV[2])
return 'admitted'
`;

/* Count admitted. KEYS: admitted. ARGV: now, instPrefix. */
const COUNT_ADMITTED = HELPERS + `
return prune_admitted(KEYS[1], ARGV[2], tonumber(ARGV[1]))
`;

/* Admitted expiry. KEYS: admitted. ARGV: now, instPrefix, position. The position-th earliest expiry. */
const ADMITTED_EXPIRY = HELPERS + `
prune_admitted(KEYS[1], ARGV[2], tonumber(ARGV[1]))
local t = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local e = tonumber(redis.call('HGET', ARGV[2] .. id, 'expiresAt'))
  if e then table.insert(t, e) end
end
table.sort(t)
local v = t[tonumber(ARGV[3])]
if v then return tostring(v) end
return false
`;

/* Queue listing. KEYS: queue. ARGV: now, instPrefix. Live queued ids, oldest first. */
const QUEUE = HELPERS + `
local now = tonumber(ARGV[1])
queue_head(KEYS[1], ARGV[2], now)
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if redis.call('HGET', ARGV[2] .. id, 'status') == 'queued' and live(ARGV[2] .. id, now) then table.insert(out, id) end
end
return out
`;

/* Fixed-window rate. KEYS: counter. ARGV: limit, windowMs. Returns {allowed (0/1), pttl}. */
const RATE = `
local c = redis.call('INCR', KEYS[1])
if c == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if c > tonumber(ARGV[1]) then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]); ttl = tonumber(ARGV[2]) end
  return {0, ttl}
end
return {1, 0}
`;

/*
 * Compare-and-update. KEYS: inst. ARGV: channel, id, nExpect, expect pairs..., nSet, set pairs..., unset...
 * Returns false for a missing hash, 'conflict' when an expectation failed, else the new hash.
 */
const CAS = `
if redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
local ne = tonumber(ARGV[3])
for i = 4, 3 + ne, 2 do
  local v = redis.call('HGET', KEYS[1], ARGV[i])
  -- Records written before placement existed have no epoch: it reads as 0.
  if v == false and ARGV[i] == 'epoch' then v = '0' end
  if v ~= ARGV[i + 1] then return 'conflict' end
end
local base = 4 + ne
local ns = tonumber(ARGV[base])
redis.call('HSET', KEYS[1], unpack(ARGV, base + 1, base + ns))
if #ARGV > base + ns then
  redis.call('HDEL', KEYS[1], unpack(ARGV, base + ns + 1))
end
redis.call('PUBLISH', ARGV[1], ARGV[2])
return redis.call('HGETALL', KEYS[1])
`;

/*
 * Assign. KEYS: inst, old worker index, new worker index. ARGV: channel, id, expected epoch,
 * expected worker ('' for none), new worker ('' for none), nSet, set pairs..., unset...
 * Returns false for a missing hash, 'conflict' when the placement moved meanwhile, else the new hash.
 */
const ASSIGN = `
if redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
local f = redis.call('HMGET', KEYS[1], 'epoch', 'worker')
if (f[1] or '0') ~= ARGV[3] or (f[2] or '') ~= ARGV[4] then return 'conflict' end
local ns = tonumber(ARGV[6])
redis.call('HSET', KEYS[1], unpack(ARGV, 7, 6 + ns))
if #ARGV > 6 + ns then
  redis.call('HDEL', KEYS[1], unpack(ARGV, 7 + ns))
end
if ARGV[4] ~= '' then redis.call('SREM', KEYS[2], ARGV[2]) end
if ARGV[5] ~= '' then redis.call('SADD', KEYS[3], ARGV[2]) end
redis.call('PUBLISH', ARGV[1], ARGV[2])
return redis.call('HGETALL', KEYS[1])
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
 * Delete. KEYS: inst, ids, team index, challenge index, slot, admitted, queue, worker index.
 * ARGV: id, channel, the worker the caller read ('' for none). The slot is freed only while it
 * still names this id (a newer instance may hold it). Returns -1, deleting nothing, when the
 * instance moved to another worker since it was read (the caller reads again).
 */
const DELETE = `
if (redis.call('HGET', KEYS[1], 'worker') or '') ~= ARGV[3] then return -1 end
local existed = redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[8], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('SREM', KEYS[4], ARGV[1])
redis.call('SREM', KEYS[6], ARGV[1])
redis.call('ZREM', KEYS[7], ARGV[1])
if redis.call('GET', KEYS[5]) == ARGV[1] then
  redis.call('DEL', KEYS[5])
end
if existed == 1 then
  redis.call('PUBLISH', ARGV[2], ARGV[1])
end
return existed
`;

/**
 * A fenced script: KEYS gains the fence key last, ARGV gains the token first ('' for none); the
 * write is refused ('fenced') when the token is older than the current one. The body is the
 * unfenced script with its ARGV shifted by one.
 */
function fenced(lua: string): string {
  return `
local A = {}
for i = 2, #ARGV do A[i - 1] = ARGV[i] end
if ARGV[1] ~= '' and tonumber(ARGV[1]) < tonumber(redis.call('GET', KEYS[#KEYS]) or '0') then return 'fenced' end
${lua.replaceAll('#ARGV', '#A').replaceAll('ARGV[', 'A[').replaceAll('unpack(ARGV', 'unpack(A')}`;
}

type ScriptArg = string | number;

/** The scripts as client methods (EVALSHA with a transparent EVAL fallback, via ioredis). */
export interface StoreScripts {
  poseidonCreate(...args: ScriptArg[]): Promise<unknown>;
  poseidonUpdate(...args: ScriptArg[]): Promise<unknown>;
  poseidonDelete(...args: ScriptArg[]): Promise<unknown>;
  poseidonAdmit(...args: ScriptArg[]): Promise<unknown>;
  poseidonCountAdmitted(...args: ScriptArg[]): Promise<unknown>;
  poseidonQueue(...args: ScriptArg[]): Promise<unknown>;
  poseidonAdmittedExpiry(...args: ScriptArg[]): Promise<unknown>;
  poseidonRate(...args: ScriptArg[]): Promise<unknown>;
  poseidonCas(...args: ScriptArg[]): Promise<unknown>;
  poseidonAssign(...args: ScriptArg[]): Promise<unknown>;
}

/** Registers the scripts on `client` and returns it typed with them. */
export function withScripts(client: Redis): Redis & StoreScripts {
  client.defineCommand('poseidonCreate', { numberOfKeys: 10, lua: CREATE });
  client.defineCommand('poseidonUpdate', { numberOfKeys: 2, lua: fenced(UPDATE) });
  client.defineCommand('poseidonDelete', { numberOfKeys: 9, lua: fenced(DELETE) });
  client.defineCommand('poseidonAssign', { numberOfKeys: 4, lua: fenced(ASSIGN) });
  client.defineCommand('poseidonAdmit', { numberOfKeys: 4, lua: fenced(ADMIT) });
  client.defineCommand('poseidonCountAdmitted', { numberOfKeys: 1, lua: COUNT_ADMITTED });
  client.defineCommand('poseidonQueue', { numberOfKeys: 1, lua: QUEUE });
  client.defineCommand('poseidonAdmittedExpiry', { numberOfKeys: 1, lua: ADMITTED_EXPIRY });
  client.defineCommand('poseidonRate', { numberOfKeys: 1, lua: RATE });
  client.defineCommand('poseidonCas', { numberOfKeys: 2, lua: fenced(CAS) });
  return client as Redis & StoreScripts;
}
