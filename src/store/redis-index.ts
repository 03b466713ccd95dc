/**
 * Schema 2 of the Redis store keeps three zset indexes (`admitted-by-expiry`, `queue`,
 * `team-live:<team>`; see redis-layout.ts) exact on every write, so counting and ordering never
 * walk instance hashes. Records written before they existed are indexed here, once per prefix.
 */
import type { Redis } from 'ioredis';
import { PoseidonError } from '../core/errors.ts';
import { SCHEMA_VERSION, type RedisKeys } from './redis-layout.ts';
import { RETRY, type StoreScripts } from './redis-scripts.ts';

/** Records reindexed per pipelined batch. */
const BATCH = 200;

/**
 * Makes sure every stored record is in the zset indexes: a no-op once `schema` says so, else
 * reindexes every id (and every queue entry), drops the old `admitted` set and records the
 * version. Idempotent, so two processes doing it at once do no harm; a process of an older
 * version writing meanwhile would not keep the zsets, so upgrade all of them together.
 */
export async function ensureIndexes(client: Redis & StoreScripts, keys: RedisKeys): Promise<void> {
  if ((await client.get(keys.schema)) === SCHEMA_VERSION) return;
  const ids = [...new Set([...(await client.smembers(keys.ids)), ...(await client.zrange(keys.queue, 0, -1))])];
  for (let i = 0; i < ids.length; i += BATCH) {
    await Promise.all(ids.slice(i, i + BATCH).map((id) => reindex(client, keys, id)));
  }
  await client.del(keys.legacyAdmitted);
  await client.set(keys.schema, SCHEMA_VERSION);
}

/** Reindexes one record; reads its team first (its `team-live` key must be declared). */
async function reindex(client: Redis & StoreScripts, keys: RedisKeys, id: string): Promise<void> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const team = (await client.hget(keys.inst(id), 'team')) ?? '';
    const reply = await client.poseidonReindex(keys.inst(id), keys.admitted, keys.queue, keys.queueSeq, keys.teamLive(team), id, team);
    if (reply !== RETRY) return;
  }
  throw new PoseidonError('E_STORE', `instance ${id} kept changing teams while being indexed`, { kind: 'transient' });
}
