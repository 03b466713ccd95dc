/**
 * The Lua scripts that make `RedisStore` writes atomic (key layout: redis-layout.ts). Every script
 * names every key it reads or writes in KEYS, so Redis Cluster (and any proxy that routes by KEYS)
 * sees the truth; `spec/store/redis-keys.test.ts` checks it command by command. docs/redis.md
 * lists each script's keys and the guarantees.
 */
import type { Redis } from 'ioredis';

/** A script's answer when a key it was handed no longer is the one to touch: read again, call again. */
export const RETRY = 'retry';

/*
 * Shared Lua helpers. `live` mirrors `isLive` in core/instance.ts (desired running, not failed,
 * queued or not yet expired); the contract suite runs the same cases against both adapters.
 * `reindex` keeps the three zsets exact after any write to a hash: membership depends only on
 * desired and status, the score on expiresAt, so time passing needs no write (a count at `now`
 * is a ZCOUNT over scores above `now`). `drop` removes a record and its entries in the given
 * index sets and zsets. Callers pass only keys they declared.
 */
const HELPERS = `
local function live(hkey, now)
  local f = redis.call('HMGET', hkey, 'desired', 'status', 'expiresAt')
  local exp = tonumber(f[3])
  return f[1] == 'running' and f[2] ~= 'failed' and (f[2] == 'queued' or (exp ~= nil and exp > now))
end
local function reindex(id, hkey, admitted, queue, seq, teamlive)
  local f = redis.call('HMGET', hkey, 'desired', 'status', 'expiresAt')
  local wanted = f[1] == 'running' and f[2] and f[2] ~= 'failed'
  if wanted and f[2] == 'queued' then
    if not redis.call('ZSCORE', queue, id) then redis.call('ZADD', queue, redis.call('INCR', seq), id) end
    redis.call('ZREM', admitted, id)
    redis.call('ZADD', teamlive, '+inf', id)
  elseif wanted then
    redis.call('ZREM', queue, id)
    redis.call('ZADD', admitted, f[3], id)
    redis.call('ZADD', teamlive, f[3], id)
  else
    redis.call('ZREM', queue, id)
    redis.call('ZREM', admitted, id)
    redis.call('ZREM', teamlive, id)
  end
end
local function drop(id, hkey, sets, zsets)
  redis.call('DEL', hkey)
  for _, k in ipairs(sets) do redis.call('SREM', k, id) end
  for _, k in ipairs(zsets) do redis.call('ZREM', k, id) end
end
-- HSET that keeps updatedAt the record's version (views keep the newer copy): a write never lowers it or
-- leaves it equal, whatever clock its caller read before awaiting its turn.
local function hset_versioned(hkey, ...)
  local before = tonumber(redis.call('HGET', hkey, 'updatedAt')) or 0
  redis.call('HSET', hkey, ...)
  if (tonumber(redis.call('HGET', hkey, 'updatedAt')) or 0) <= before then
    redis.call('HSET', hkey, 'updatedAt', string.format('%.0f', before + 1))
  end
end
local function live_count(zkey, now)
  return redis.call('ZCOUNT', zkey, '(' .. now, '+inf')
end
`;

/*
 * Create. KEYS: inst, slot, ids, team, challenge, admitted, queue, queue-seq, idem, rate,
 * team-live, then the hash of the slot holder the caller expects, the hash of the instance its
 * idempotency key names, and the hashes of the team's live holders it expects (each of the first
 * two is KEYS[1] when none is expected). ARGV: now, id, channel, teamLimit, capacity, useIdem,
 * fingerprint, idemTtlMs, rateLimit (0: none), rateWindowMs, owner, createdAt, expected slot
 * value, expected idempotency value ('' for none), holder count h, h holder ids, fields...
 * A record already stored under this id by the same owner at the same createdAt is this very
 * create retried after a lost reply: answered as created. When the slot, the idempotency key or
 * (for a team at its limit) the live holders are not what the caller declared, nothing is
 * written and the answer is {'retry', slot, idem, holders...}: the caller declares those and
 * calls again. Then, in order: replay of an idempotency key, the rate window (every non-replay
 * attempt counts), the owner's live slot, the team limit. Never walks the admitted instances:
 * capacity and the team limit are ZCOUNTs.
 */
const CREATE = HELPERS + `
local now = tonumber(ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 1 then
  local f = redis.call('HMGET', KEYS[1], 'owner', 'createdAt', 'status')
  if f[1] == ARGV[11] and f[2] == ARGV[12] then return {'created', f[3]} end
  return {'collision'}
end
local nh = tonumber(ARGV[15])
local held = redis.call('GET', KEYS[2]) or ''
local prev = ''
if ARGV[6] == '1' then prev = redis.call('GET', KEYS[9]) or '' end
local limit = tonumber(ARGV[4])
local function holders_now()
  if limit <= 0 or live_count(KEYS[11], ARGV[1]) < limit then return nil end
  return redis.call('ZRANGEBYSCORE', KEYS[11], '(' .. ARGV[1], '+inf')
end
local function retry()
  local out = {'retry', held, prev}
  for _, h in ipairs(holders_now() or {}) do table.insert(out, h) end
  return out
end
if held ~= ARGV[13] or prev ~= ARGV[14] then return retry() end
if prev ~= '' then
  local h = redis.call('HGETALL', KEYS[13])
  if #h > 0 then
    local sep = string.find(prev, '\\n', 1, true)
    if string.sub(prev, 1, sep - 1) == ARGV[7] then return {'replay', h} end
    return {'key-reused', h}
  end
end
local owner = held ~= '' and live(KEYS[12], now)
local holders = nil
if not owner then
  holders = holders_now()
  if holders then
    local declared = {}
    for i = 1, nh do declared[ARGV[15 + i]] = true end
    if #holders ~= nh then return retry() end
    for _, h in ipairs(holders) do if not declared[h] then return retry() end end
  end
end
local rlimit = tonumber(ARGV[9])
if rlimit > 0 then
  local c = redis.call('INCR', KEYS[10])
  if c == 1 then redis.call('PEXPIRE', KEYS[10], ARGV[10]) end
  if c > rlimit then
    local ttl = redis.call('PTTL', KEYS[10])
    if ttl < 0 then redis.call('PEXPIRE', KEYS[10], ARGV[10]); ttl = tonumber(ARGV[10]) end
    return {'rate-limited', tostring(ttl)}
  end
end
if owner then return {'owner', redis.call('HGETALL', KEYS[12])} end
if holders then
  local out = {}
  for i = 1, nh do table.insert(out, redis.call('HGETALL', KEYS[13 + i])) end
  return {'team-limit', out}
end
redis.call('HSET', KEYS[1], unpack(ARGV, 16 + nh))
local status = 'pending'
local cap = tonumber(ARGV[5])
if cap > 0 and (live_count(KEYS[6], ARGV[1]) >= cap or redis.call('ZCARD', KEYS[7]) > 0) then
  status = 'queued'
  redis.call('HSET', KEYS[1], 'status', 'queued')
end
reindex(ARGV[2], KEYS[1], KEYS[6], KEYS[7], KEYS[8], KEYS[11])
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('SADD', KEYS[4], ARGV[2])
redis.call('SADD', KEYS[5], ARGV[2])
redis.call('SET', KEYS[2], ARGV[2])
if ARGV[6] == '1' then
  redis.call('SET', KEYS[9], ARGV[7] .. '\\n' .. ARGV[2], 'PX', ARGV[8])
end
-- The record is the fields just written (the hash did not exist), the status last: no HGETALL.
local record = {unpack(ARGV, 16 + nh)}
if status == 'queued' then table.insert(record, 'status'); table.insert(record, 'queued') end
redis.call('PUBLISH', ARGV[3], ARGV[2] .. ' ' .. cjson.encode(record))
return {'created', status}
`;

/*
 * Checks that the hash still belongs to the team the caller read (its `team-live` key is the one
 * declared); a missing hash passes (the script answers as for a missing record).
 */
const SAME_TEAM = `
local function same_team(hkey, team)
  local t = redis.call('HGET', hkey, 'team')
  return t == false or t == team
end
`;

/*
 * Admit. KEYS: inst, admitted, queue, queue-seq, team-live. ARGV: now, id, channel, capacity,
 * expiresAt, maxExpiresAt, team. Only the queue head is admitted (FIFO); the queue holds only
 * instances still waiting, so its head is the oldest live queued one.
 */
const ADMIT = HELPERS + SAME_TEAM + `
local head = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
if head ~= ARGV[2] then
  if redis.call('ZSCORE', KEYS[3], ARGV[2]) then return 'full' end
  return 'gone'
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[3], ARGV[2]) -- never recreate a deleted record from its queue entry
  return 'gone'
end
if not same_team(KEYS[1], ARGV[7]) then return 'retry' end
local cap = tonumber(ARGV[4])
if cap > 0 and live_count(KEYS[2], ARGV[1]) >= cap then return 'full' end
hset_versioned(KEYS[1], 'status', 'pending', 'expiresAt', ARGV[5], 'maxExpiresAt', ARGV[6], 'updatedAt', ARGV[1])
reindex(ARGV[2], KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
redis.call('PUBLISH', ARGV[3], ARGV[2])
return 'admitted'
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
 * Compare-and-update. KEYS: inst, admitted, queue, queue-seq, team-live. ARGV: channel, id, team,
 * nExpect, expect pairs..., nSet, set pairs..., unset... Returns false for a missing hash,
 * 'conflict' when an expectation failed, 'retry' when the team is not the one read, else the new hash.
 */
const CAS = HELPERS + SAME_TEAM + `
if redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
if not same_team(KEYS[1], ARGV[3]) then return 'retry' end
local ne = tonumber(ARGV[4])
for i = 5, 4 + ne, 2 do
  local v = redis.call('HGET', KEYS[1], ARGV[i])
  -- Records written before placement existed have no epoch: it reads as 0.
  if v == false and ARGV[i] == 'epoch' then v = '0' end
  if v ~= ARGV[i + 1] then return 'conflict' end
end
local base = 5 + ne
local ns = tonumber(ARGV[base])
hset_versioned(KEYS[1], unpack(ARGV, base + 1, base + ns))
if #ARGV > base + ns then
  redis.call('HDEL', KEYS[1], unpack(ARGV, base + ns + 1))
end
reindex(ARGV[2], KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
redis.call('PUBLISH', ARGV[1], ARGV[2])
return redis.call('HGETALL', KEYS[1])
`;

/*
 * Assign. KEYS: inst, admitted, queue, queue-seq, team-live, old worker index, new worker index.
 * ARGV: channel, id, expected epoch, expected worker ('' for none), new worker ('' for none),
 * team, nSet, set pairs..., unset... Returns false for a missing hash, 'conflict' when the
 * placement moved meanwhile, 'retry' when the team is not the one read, else the new hash.
 */
const ASSIGN = HELPERS + SAME_TEAM + `
if redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
if not same_team(KEYS[1], ARGV[6]) then return 'retry' end
local f = redis.call('HMGET', KEYS[1], 'epoch', 'worker')
if (f[1] or '0') ~= ARGV[3] or (f[2] or '') ~= ARGV[4] then return 'conflict' end
local ns = tonumber(ARGV[7])
hset_versioned(KEYS[1], unpack(ARGV, 8, 7 + ns))
if #ARGV > 7 + ns then
  redis.call('HDEL', KEYS[1], unpack(ARGV, 8 + ns))
end
if ARGV[4] ~= '' then redis.call('SREM', KEYS[6], ARGV[2]) end
if ARGV[5] ~= '' then redis.call('SADD', KEYS[7], ARGV[2]) end
reindex(ARGV[2], KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
redis.call('PUBLISH', ARGV[1], ARGV[2])
return redis.call('HGETALL', KEYS[1])
`;

/*
 * Update. KEYS: inst, admitted, queue, queue-seq, team-live. ARGV: channel, id, team, n, then n
 * strings of field/value pairs (always including updatedAt), then the fields to delete. A missing
 * hash is never recreated (false); 'retry' when the team is not the one read.
 */
const UPDATE = HELPERS + SAME_TEAM + `
if redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
if not same_team(KEYS[1], ARGV[3]) then return 'retry' end
local n = tonumber(ARGV[4])
hset_versioned(KEYS[1], unpack(ARGV, 5, 4 + n))
if #ARGV > 4 + n then
  redis.call('HDEL', KEYS[1], unpack(ARGV, 5 + n))
end
reindex(ARGV[2], KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
redis.call('PUBLISH', ARGV[1], ARGV[2])
return redis.call('HGETALL', KEYS[1])
`;

/*
 * Delete. KEYS: inst, ids, team index, challenge index, slot, admitted, queue, worker index,
 * team-live. ARGV: id, channel, then the team, challenge, owner and worker ('' for none) the
 * caller read. The slot is freed only while it still names this id (a newer instance may hold
 * it). Returns -1, deleting nothing, when the record is not the one read (it moved to another
 * worker, or vanished): the caller reads again.
 */
const DELETE = HELPERS + `
local f = redis.call('HMGET', KEYS[1], 'team', 'challenge', 'owner', 'worker')
if f[1] ~= ARGV[3] or f[2] ~= ARGV[4] or f[3] ~= ARGV[5] or (f[4] or '') ~= ARGV[6] then return -1 end
drop(ARGV[1], KEYS[1], {KEYS[8], KEYS[2], KEYS[3], KEYS[4]}, {KEYS[6], KEYS[7], KEYS[9]})
if redis.call('GET', KEYS[5]) == ARGV[1] then
  redis.call('DEL', KEYS[5])
end
redis.call('PUBLISH', ARGV[2], ARGV[1])
return 1
`;

/*
 * Claim a warm-pool member (`Store.claimPooled`). KEYS: claimant inst, member inst, ids,
 * team(claimant), team-live(claimant), team(pool), team-live(pool), challenge, admitted, queue,
 * queue-seq, slot(owner, challenge), slot(member's pool owner, challenge), idem (or a placeholder).
 * ARGV: now, claimant id, member id, channel, team, owner, challenge, member owner, pool team,
 * spec hash, reason, use idem ('1'/'0'), sealed flag ('' drops the member's). Either record not as
 * described: 'conflict', nothing written.
 */
const CLAIM = HELPERS + `
local now = tonumber(ARGV[1])
local x = redis.call('HMGET', KEYS[1], 'team', 'owner', 'challenge', 'worker', 'desired', 'status', 'specHash', 'createdAt', 'expiresAt', 'maxExpiresAt', 'user')
if x[1] ~= ARGV[5] or x[2] ~= ARGV[6] or x[3] ~= ARGV[7] or x[4] or x[5] ~= 'running' or (x[6] ~= 'pending' and x[6] ~= 'queued') or x[7] ~= ARGV[10] then return 'conflict' end
local p = redis.call('HMGET', KEYS[2], 'team', 'owner', 'challenge', 'desired', 'status', 'specHash', 'expiresAt', 'worker')
if p[1] ~= ARGV[9] or p[2] ~= ARGV[8] or p[3] ~= ARGV[7] or p[4] ~= 'running' or p[5] ~= 'running' or p[6] ~= ARGV[10] or not p[8] or (tonumber(p[7]) or 0) <= now then return 'conflict' end
hset_versioned(KEYS[2], 'team', x[1], 'owner', x[2], 'createdAt', x[8], 'expiresAt', x[9], 'maxExpiresAt', x[10], 'renewals', '0', 'status', 'starting', 'reason', ARGV[11], 'updatedAt', ARGV[1])
if x[11] then redis.call('HSET', KEYS[2], 'user', x[11]) else redis.call('HDEL', KEYS[2], 'user') end
if ARGV[13] ~= '' then redis.call('HSET', KEYS[2], 'sealedFlag', ARGV[13]) else redis.call('HDEL', KEYS[2], 'sealedFlag') end
redis.call('SREM', KEYS[6], ARGV[3])
redis.call('ZREM', KEYS[7], ARGV[3])
redis.call('SADD', KEYS[4], ARGV[3])
if redis.call('GET', KEYS[13]) == ARGV[3] then redis.call('DEL', KEYS[13]) end
redis.call('SET', KEYS[12], ARGV[3])
drop(ARGV[2], KEYS[1], {KEYS[3], KEYS[4], KEYS[8]}, {KEYS[9], KEYS[10], KEYS[5]})
reindex(ARGV[3], KEYS[2], KEYS[9], KEYS[10], KEYS[11], KEYS[5])
if ARGV[12] == '1' then
  local v = redis.call('GET', KEYS[14])
  local tail = '\\n' .. ARGV[2]
  if v and string.sub(v, -string.len(tail)) == tail then
    redis.call('SET', KEYS[14], string.sub(v, 1, string.len(v) - string.len(ARGV[2])) .. ARGV[3], 'KEEPTTL')
  end
end
redis.call('PUBLISH', ARGV[4], ARGV[2])
redis.call('PUBLISH', ARGV[4], ARGV[3])
return redis.call('HGETALL', KEYS[2])
`;

/*
 * Reindex one record (building the zsets for records stored before schema 2). KEYS: inst,
 * admitted, queue, queue-seq, team-live. ARGV: id, team. 'retry' when the team is not the one read.
 */
const REINDEX = HELPERS + SAME_TEAM + `
if not same_team(KEYS[1], ARGV[2]) then return 'retry' end
reindex(ARGV[1], KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
return 'ok'
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

/**
 * Every script the store runs, by command name; `numberOfKeys` absent means the caller passes the
 * key count first (the create declares a variable number of holders). Exported so tests can
 * check that each one is exercised.
 */
export const STORE_SCRIPTS = {
  poseidonCreate: { lua: CREATE },
  poseidonUpdate: { numberOfKeys: 6, lua: fenced(UPDATE) },
  poseidonCas: { numberOfKeys: 6, lua: fenced(CAS) },
  poseidonAssign: { numberOfKeys: 8, lua: fenced(ASSIGN) },
  poseidonDelete: { numberOfKeys: 10, lua: fenced(DELETE) },
  poseidonAdmit: { numberOfKeys: 6, lua: fenced(ADMIT) },
  poseidonReindex: { numberOfKeys: 5, lua: REINDEX },
  poseidonRate: { numberOfKeys: 1, lua: RATE },
  poseidonClaim: { numberOfKeys: 14, lua: CLAIM },
} as const satisfies Record<string, { numberOfKeys?: number; lua: string }>;

type ScriptArg = string | number;
type ScriptName = keyof typeof STORE_SCRIPTS;

/** The scripts as client methods (EVALSHA with a transparent EVAL fallback, via ioredis). */
export type StoreScripts = Record<ScriptName, (...args: ScriptArg[]) => Promise<unknown>>;

/** Registers the scripts on `client` and returns it typed with them. */
export function withScripts(client: Redis): Redis & StoreScripts {
  for (const [name, script] of Object.entries(STORE_SCRIPTS)) client.defineCommand(name, script);
  return client as Redis & StoreScripts;
}
