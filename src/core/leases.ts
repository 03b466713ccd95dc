/**
 * Port leases: TCP ports of a configured range handed to instances whose challenge asks for a
 * plain port (`expose[].lease: true`, for `nc` and SSH without TLS). A port is held by at most one
 * instance at a time; leases go when the instance stops. Adapters: `store/redis-leases.ts`
 * (shared by every Poseidon process on the same Redis) and `store/memory-leases.ts`, both
 * checked by one contract suite (`spec/store/leases-contract.ts`).
 */
import { Codes, PoseidonError } from './errors.ts';

/** An inclusive port range, `lo <= hi`, both in 1..65535. */
export interface PortRange {
  lo: number;
  hi: number;
}

/** One held port. */
export interface PortLease {
  port: number;
  instance: string;
  /** Exposed port name within the instance. */
  name: string;
  /** Epoch ms when it was first taken. */
  acquiredAt: number;
}

export interface LeaseStore {
  /**
   * Gives `instance` one port of `range` for each of `names`, atomically: either every name gets
   * a port or none is taken. Idempotent: names the instance already holds (inside the range) keep
   * their port. Free ports are handed out round-robin, so a port just released is the last to be
   * reused. Rejects with `E_NO_PORT` (kind waiting) when the range has too few free ports, and
   * `E_STORE` when the backend fails.
   */
  acquire(instance: string, names: readonly string[], range: PortRange, now: number): Promise<Record<string, number>>;
  /** Frees every port of `instance`; returns how many were freed (0 when none: idempotent). */
  release(instance: string): Promise<number>;
  /** Every held lease, by port. */
  list(): Promise<PortLease[]>;
  close(): Promise<void>;
}

/**
 * Parses `"30000-30999"` (or a single port `"30000"`) into a range. Throws `E_CONFIG_INVALID`
 * for anything else, a reversed range or ports outside 1..65535.
 */
export function parsePortRange(text: string): PortRange {
  const m = /^\s*(\d{1,5})\s*(?:-\s*(\d{1,5})\s*)?$/.exec(text);
  const lo = Number(m?.[1]);
  const hi = m?.[2] === undefined ? lo : Number(m[2]);
  if (!m || lo < 1 || hi > 65535 || lo > hi) {
    throw new PoseidonError(Codes.configInvalid, `invalid port range ${JSON.stringify(text)} (want e.g. 30000-30999)`, { kind: 'input' });
  }
  return { lo, hi };
}

/** The error both adapters throw when the range cannot satisfy a request. */
export function noPortError(instance: string, wanted: number, range: PortRange): PoseidonError {
  return new PoseidonError(Codes.noPort, `no free port in ${range.lo}-${range.hi} for ${wanted} lease(s) of instance ${instance}`, {
    kind: 'waiting',
    detail: { range: `${range.lo}-${range.hi}` },
  });
}
