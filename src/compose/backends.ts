/**
 * The shared state adapters, built once per process from configuration: the instance store, the
 * fleet registry and port leases on Redis (or in process, embedded), and the deployment's shared
 * facts (its id, the edge secret). The only place adapters are chosen.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Config } from '../config/config.ts';
import type { Fleet } from '../core/fleet.ts';
import type { LeaseStore } from '../core/leases.ts';
import type { Ownership } from '../core/runtime.ts';
import type { Store } from '../core/store.ts';
import { MemoryFleet } from '../store/memory-fleet.ts';
import { MemoryLeaseStore } from '../store/memory-leases.ts';
import { openStore } from '../store/open.ts';
import { RedisFleet } from '../store/redis-fleet.ts';
import { RedisLeaseStore } from '../store/redis-leases.ts';

export interface Backends {
  store: Store;
  fleet: Fleet;
  /** Port leases of one worker host (ports are per host, so leases are keyed by worker). */
  leases(workerId: string): LeaseStore;
  /** Whose containers these are (manager id + deployment id). */
  owner: Ownership;
  close(): Promise<void>;
}

/**
 * Reads (or creates, atomically, 0600) a small persisted value under the data directory: the
 * deployment id of an embedded deployment must survive restarts, since its containers do.
 */
export function persistedValue(dataDir: string, file: string, make: () => string): string {
  const p = path.join(dataDir, file);
  if (existsSync(p)) {
    const v = readFileSync(p, 'utf8').trim();
    if (v.length > 0) return v;
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const value = make();
  const tmp = `${p}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    writeFileSync(tmp, `${value}\n`, { mode: 0o600, flag: 'wx' });
    renameSync(tmp, p);
  } finally {
    rmSync(tmp, { force: true });
  }
  return value;
}

/** Opens the store (PING first with Redis), the fleet registry and the deployment's ownership. */
export async function openBackends(config: Config): Promise<Backends> {
  const store = await openStore({ ...(config.redisUrl ? { redisUrl: config.redisUrl } : {}), prefix: config.redisPrefix, waitReplicas: config.redisWaitReplicas });
  const url = config.redisUrl;
  const fleet: Fleet = url ? new RedisFleet({ url, prefix: config.redisPrefix }) : new MemoryFleet();
  const leaseStores: LeaseStore[] = [];
  const candidate = (): string => `d${randomBytes(6).toString('hex')}`;
  const deployment = config.deploymentId
    ?? (url ? await fleet.shared('deployment', persistedValue(config.dataDir, 'deployment-id', candidate)) : persistedValue(config.dataDir, 'deployment-id', candidate));
  return {
    store, fleet, owner: { managerId: config.managerId, deployment },
    leases(workerId) {
      const l: LeaseStore = url ? new RedisLeaseStore({ url, prefix: `${config.redisPrefix}w:${workerId}:` }) : new MemoryLeaseStore();
      leaseStores.push(l);
      return l;
    },
    async close() {
      for (const l of leaseStores) await l.close();
      await fleet.close();
      await store.close();
    },
  };
}
