/**
 * The Redis key layout of `RedisStore` (docs/redis.md explains it, with each script's keys).
 *
 * Keys, all under a prefix (default `poseidon:`; a prefix starting with a hash tag such as
 * `{poseidon}:` puts every key in one Cluster hash slot):
 * - `inst:<id>`                 hash, one instance (fields per `codec.ts`)
 * - `ids`                       set of every instance id
 * - `team:<team>`               set of ids by team
 * - `team-live:<team>`          zset of the team's ids asked to run and not failed, by expiresAt (+inf while queued)
 * - `challenge:<challenge>`     set of ids by challenge
 * - `byworker:<worker>`         set of ids placed on a worker
 * - `slot:<owner>:<challenge>`  string, id of the instance that took the owner's slot
 * - `admitted-by-expiry`        zset of admitted ids asked to run and not failed, by expiresAt
 * - `queue`                     zset of queued ids asked to run, by arrival (`queue-seq` gives the scores)
 * - `schema`                    `2` once the zsets above were built for every stored record
 * - `idem:<key>`                string `<fingerprint>\n<id>`, with a TTL
 * - `rate:<key>`                counter with a TTL (fixed window)
 * - `flag:<sha256>`             JSON flag record, with a TTL
 * - `incidents`                 list of JSON flag-sharing incidents, newest first
 * - `changes`                   pub/sub channel; each message is an instance id
 * User-supplied parts are escaped (`%` -> `%25`, `:` -> `%3A`) so they never contain the
 * separator and two different (owner, challenge) pairs can never share a key. Braces are left
 * alone: Redis hashes the first `{...}` of a key, which under a tagged prefix is the prefix's, so
 * a team named `{x}` cannot move its keys to another slot.
 */

/** Escapes `%` and `:` so a key part never contains the separator; injective. */
export function escapeKeyPart(part: string): string {
  return part.replace(/[%:]/g, (c) => (c === '%' ? '%25' : '%3A'));
}

/** Key names under one prefix. */
export interface RedisKeys {
  inst(id: string): string;
  ids: string;
  team(team: string): string;
  teamLive(team: string): string;
  challenge(challenge: string): string;
  worker(worker: string): string;
  slot(owner: string, challenge: string): string;
  admitted: string;
  queue: string;
  queueSeq: string;
  schema: string;
  /** The set of admitted ids kept before schema 2; dropped once the zsets are built. */
  legacyAdmitted: string;
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
    ids: `${prefix}ids`,
    team: (team) => `${prefix}team:${escapeKeyPart(team)}`,
    teamLive: (team) => `${prefix}team-live:${escapeKeyPart(team)}`,
    challenge: (challenge) => `${prefix}challenge:${escapeKeyPart(challenge)}`,
    worker: (worker) => `${prefix}byworker:${escapeKeyPart(worker)}`,
    slot: (owner, challenge) => `${prefix}slot:${escapeKeyPart(owner)}:${escapeKeyPart(challenge)}`,
    admitted: `${prefix}admitted-by-expiry`,
    queue: `${prefix}queue`,
    queueSeq: `${prefix}queue-seq`,
    schema: `${prefix}schema`,
    legacyAdmitted: `${prefix}admitted`,
    idem: (key) => `${prefix}idem:${escapeKeyPart(key)}`,
    rate: (key) => `${prefix}rate:${escapeKeyPart(key)}`,
    flag: (digest) => `${prefix}flag:${digest}`,
    incidents: `${prefix}incidents`,
    changes: `${prefix}changes`,
    fence: `${prefix}fence`,
  };
}

/** The schema version `schema` holds once every record is in the zset indexes. */
export const SCHEMA_VERSION = '2';
