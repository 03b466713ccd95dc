/**
 * The create path of `RedisStore`. The CREATE script (redis-scripts.ts) must declare every key it
 * touches, and three of them depend on data: the hash of the instance holding the owner's slot,
 * the hash an idempotency key names, and the hashes of the team's live holders (returned on a
 * team-limit refusal). The call declares what it expects; a script that finds otherwise writes
 * nothing and answers what it found, and the call is made again with those keys. Optimistic and
 * bounded: a retry needs another create of the same owner, key or full team to land in between.
 */
import type { Redis } from 'ioredis';
import { PoseidonError } from '../core/errors.ts';
import type { Instance } from '../core/instance.ts';
import type { CreateOptions, CreateResult } from '../core/store.ts';
import { compareInstances, decodeInstance, encodeInstance, normalizeInstance, pairsToMap } from './codec.ts';
import type { RedisKeys } from './redis-layout.ts';
import { RETRY, type StoreScripts } from './redis-scripts.ts';

/** What a create expects to find: slot value, idempotency value ('' for none), live team holders. */
interface Expected {
  held: string;
  idem: string;
  holders: string[];
}

/** More attempts than this means the same slot or team changes faster than a round trip. */
const ATTEMPTS = 8;

/** The client, its key layout, and the adapter's error mapping. */
export interface CreateContext {
  client: Redis & StoreScripts;
  keys: RedisKeys;
  run<T>(fn: () => Promise<T>): Promise<T>;
}

/**
 * `Store.createInstance` on Redis. The first call expects an empty slot, no idempotency record
 * and a team under its limit (the common launch costs one round trip). Throws PoseidonError
 * `E_STORE` (terminal) for an id collision, (transient) when Redis fails or the expected keys
 * kept changing.
 */
export async function createInRedis(cx: CreateContext, instance: Instance, now: number, opts: CreateOptions): Promise<CreateResult> {
  const stored = normalizeInstance(instance); // validates before anything is written
  const fields = Object.entries(encodeInstance(stored)).flat();
  let expected: Expected = { held: '', idem: '', holders: [] };
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const args = createArgs(cx.keys, stored, now, opts, expected);
    const reply = (await cx.run(() => cx.client.poseidonCreate(...args, ...fields))) as [string, ...unknown[]];
    if (reply[0] !== RETRY) return createResult(reply as [string, unknown], stored);
    const [, held, idem, ...holders] = reply as string[];
    expected = { held: held ?? '', idem: idem ?? '', holders };
  }
  throw new PoseidonError('E_STORE', `the slot, idempotency key or team of ${stored.id} kept changing during the create; retry`, { kind: 'transient' });
}

/** Key count, KEYS and ARGV (without the fields) of a CREATE call; see the script for the order. */
function createArgs(k: RedisKeys, inst: Instance, now: number, opts: CreateOptions, e: Expected): Array<string | number> {
  const idem = opts.idempotency;
  const rate = opts.rate;
  const self = k.inst(inst.id); // declared in place of an expected hash when none is expected
  const idemId = e.idem === '' ? undefined : e.idem.slice(e.idem.indexOf('\n') + 1);
  const keys = [
    self, k.slot(inst.owner, inst.challenge), k.ids, k.team(inst.team), k.challenge(inst.challenge), k.admitted, k.queue,
    k.queueSeq, k.idem(idem?.key ?? '-'), k.rate(rate?.key ?? '-'), k.teamLive(inst.team),
    e.held === '' ? self : k.inst(e.held), idemId === undefined ? self : k.inst(idemId), ...e.holders.map((id) => k.inst(id)),
  ];
  return [
    keys.length, ...keys,
    now, inst.id, k.changes, opts.teamLimit ?? 0, opts.capacity ?? 0, idem ? '1' : '0', idem?.fingerprint ?? '', idem?.ttlMs ?? 0,
    rate?.limit ?? 0, rate?.windowMs ?? 0, inst.owner, String(inst.createdAt), e.held, e.idem, e.holders.length, ...e.holders,
  ];
}

/** Decodes a create script reply other than a retry. */
function createResult([outcome, payload]: [string, unknown], stored: Instance): CreateResult {
  const decode = (pairs: unknown): Instance => decodeInstance(pairsToMap((pairs ?? []) as string[]));
  switch (outcome) {
    case 'created':
      return { created: true, instance: { ...stored, status: payload === 'queued' ? 'queued' : stored.status } };
    case 'owner': case 'replay': case 'key-reused':
      return { created: false, reason: outcome, existing: decode(payload) };
    case 'rate-limited':
      return { created: false, reason: 'rate-limited', retryAfterMs: Math.max(0, Number(payload)) };
    case 'team-limit': {
      const holders = (payload as unknown[]).map(decode).sort(compareInstances);
      return { created: false, reason: 'team-limit', existing: holders[0] as Instance, holders };
    }
    default:
      throw new PoseidonError('E_STORE', 'instance id collision', { kind: 'terminal' });
  }
}
