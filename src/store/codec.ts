/**
 * Instance <-> flat string fields (a Redis hash), and validation of update patches. Pure; shared
 * by both store adapters so they accept and reject exactly the same inputs.
 *
 * Encoding: strings as is, numbers as decimal strings, `endpoints` as JSON; optional fields that
 * are absent (or undefined) are omitted from the hash rather than stored as empty strings.
 */
import { PoseidonError } from '../core/errors.ts';
import type { Instance, InstanceIntent, InstanceObservation } from '../core/instance.ts';

/** Hash fields holding strings that every record has. */
const REQUIRED_STRINGS = ['id', 'challenge', 'team', 'owner', 'desired', 'status', 'hostname', 'specHash'] as const;
/** Hash fields holding numbers that every record has. */
const REQUIRED_NUMBERS = ['generation', 'createdAt', 'expiresAt', 'maxExpiresAt', 'renewals', 'updatedAt'] as const;

/** Fields an update may write, and whether an `undefined` value deletes them (optional fields). */
const PATCHABLE: ReadonlyMap<string, 'optional' | 'required'> = new Map([
  ['status', 'required'],
  ['desired', 'required'],
  ['expiresAt', 'required'],
  ['generation', 'required'],
  ['renewals', 'required'],
  ['endpoints', 'required'],
  ['specHash', 'required'],
  ['reason', 'optional'],
  ['finishedAt', 'optional'],
  ['worker', 'optional'],
  ['epoch', 'required'],
  ['placedAt', 'optional'],
  ['sealedFlag', 'optional'],
]);

/** An update patch split into fields to write and (optional) fields to remove. */
export interface SplitPatch {
  set: Partial<Instance>;
  unset: string[];
}

/** Encodes an instance as hash fields (see the module comment for the rules). */
export function encodeInstance(inst: Instance): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(inst)) {
    if (value === undefined) continue;
    out[key] = encodeValue(key, value);
  }
  return out;
}

/**
 * Encodes one field value: JSON for endpoints, decimal for numbers, strings as is. Throws
 * PoseidonError `E_INTERNAL` (terminal) for a value no record can hold (NaN, an object, ...).
 */
export function encodeValue(key: string, value: unknown): string {
  if (key === 'endpoints' && Array.isArray(value)) return JSON.stringify(value);
  if (key !== 'endpoints' && typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (key !== 'endpoints' && typeof value === 'string') return value;
  throw invalid(`field ${key} cannot hold ${typeof value === 'number' ? String(value) : typeof value}`);
}

/**
 * The instance exactly as a store will hold it (encode, then decode): a deep copy with absent
 * optional fields dropped. Throws PoseidonError `E_INTERNAL` (terminal) when it could not be
 * stored faithfully (missing required field, non-finite number, ...). Both adapters use it, so
 * neither accepts what the other would reject.
 */
export function normalizeInstance(inst: Instance): Instance {
  const fields = new Map(Object.entries(encodeInstance(inst)));
  try {
    return decodeInstance(fields);
  } catch (err) {
    throw invalid(err instanceof Error ? err.message : String(err), err);
  }
}

/**
 * Decodes hash fields into an instance. Throws PoseidonError `E_STORE` (terminal) when a required
 * field is missing or malformed: the record was not written by this codec.
 */
export function decodeInstance(fields: ReadonlyMap<string, string>): Instance {
  const id = fields.get('id') ?? '?';
  const inst: Record<string, unknown> = {};
  for (const key of REQUIRED_STRINGS) inst[key] = need(fields, key, id);
  for (const key of REQUIRED_NUMBERS) inst[key] = toNumber(need(fields, key, id), key, id);
  inst.endpoints = parseEndpoints(need(fields, 'endpoints', id), id);
  const user = fields.get('user');
  if (user !== undefined) inst.user = user;
  const reason = fields.get('reason');
  if (reason !== undefined) inst.reason = reason;
  const finishedAt = fields.get('finishedAt');
  if (finishedAt !== undefined) inst.finishedAt = toNumber(finishedAt, 'finishedAt', id);
  // Records written before placement existed have no epoch: epoch 0, not placed.
  const epoch = fields.get('epoch');
  inst.epoch = epoch === undefined ? 0 : toNumber(epoch, 'epoch', id);
  for (const key of ['worker', 'sealedFlag'] as const) {
    const v = fields.get(key);
    if (v !== undefined) inst[key] = v;
  }
  const placedAt = fields.get('placedAt');
  if (placedAt !== undefined) inst.placedAt = toNumber(placedAt, 'placedAt', id);
  return inst as unknown as Instance;
}

/** Listing order shared by both adapters: oldest `createdAt` first, then by id. */
export function compareInstances(a: Instance, b: Instance): number {
  return a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** Pairs `[k1, v1, k2, v2, ...]` (a Redis HGETALL/Lua reply) as a map; prototype-safe. */
export function pairsToMap(pairs: readonly string[]): Map<string, string> {
  const map = new Map<string, string>();
  for (let i = 0; i + 1 < pairs.length; i += 2) map.set(pairs[i] as string, pairs[i + 1] as string);
  return map;
}

/**
 * Validates an update patch. Keys present with value `undefined` remove optional fields (reason,
 * finishedAt) and are ignored for required ones, so a record can never lose a required field.
 * Throws PoseidonError `E_INTERNAL` (terminal) for a field that updates may not write (id, owner,
 * team, challenge, ...: changing those would orphan index entries) or a value `encodeValue` refuses.
 */
export function splitPatch(fields: InstanceObservation | InstanceIntent): SplitPatch {
  const set: Record<string, unknown> = {};
  const unset: string[] = [];
  for (const [key, value] of Object.entries(fields)) {
    const kind = PATCHABLE.get(key);
    if (kind === undefined) {
      throw new PoseidonError('E_INTERNAL', `instance field ${key} cannot be updated`, { kind: 'terminal' });
    }
    if (value !== undefined) {
      encodeValue(key, value); // throws for a value no record can hold
      set[key] = value;
    } else if (kind === 'optional') unset.push(key);
  }
  return { set: set as Partial<Instance>, unset };
}

function need(fields: ReadonlyMap<string, string>, key: string, id: string): string {
  const value = fields.get(key);
  if (value === undefined) throw corrupt(id, `missing field ${key}`);
  return value;
}

function toNumber(raw: string, key: string, id: string): number {
  const n = Number(raw);
  if (raw === '' || !Number.isFinite(n)) throw corrupt(id, `field ${key} is not a number`);
  return n;
}

function parseEndpoints(raw: string, id: string): Instance['endpoints'] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (cause) {
    throw corrupt(id, 'field endpoints is not JSON', cause);
  }
  if (!Array.isArray(parsed)) throw corrupt(id, 'field endpoints is not an array');
  return parsed as Instance['endpoints'];
}

function invalid(what: string, cause?: unknown): PoseidonError {
  return new PoseidonError('E_INTERNAL', `invalid instance: ${what}`, { kind: 'terminal', cause });
}

function corrupt(id: string, what: string, cause?: unknown): PoseidonError {
  return new PoseidonError('E_STORE', `corrupt instance record ${id}: ${what}`, { kind: 'terminal', cause });
}

/**
 * The `updatedAt` of a write to `prev` at the caller's `now`: strictly greater than the stored
 * one, so it versions the record (views keep the copy with the newer `updatedAt`) even when the
 * caller read its clock before awaiting its turn and another write landed meanwhile.
 */
export function restamp(prev: Pick<Instance, 'updatedAt'>, now: number): number {
  return Math.max(now, prev.updatedAt + 1);
}
