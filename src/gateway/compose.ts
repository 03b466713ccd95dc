/**
 * Composition of the player-access parts from configuration, for `main.ts`: tokens, the
 * instance index, delegate mode, port leases and exposure, the Traefik rendering options and
 * the snapshot the HTTP provider serves.
 */
import type { Config } from '../config/config.ts';
import type { Logger } from '../core/reconcile.ts';
import { parsePortRange, type LeaseStore } from '../core/leases.ts';
import type { Store } from '../core/store.ts';
import { MemoryLeaseStore } from '../store/memory-leases.ts';
import { RedisLeaseStore } from '../store/redis-leases.ts';
import { AccessTokens } from './access-token.ts';
import type { AccessContext } from './authz.ts';
import { DelegateAuth } from './delegate.ts';
import { Exposure } from './exposure.ts';
import { InstanceIndex } from './instance-index.ts';
import { GatewaySnapshot } from './snapshot.ts';
import type { GatewayOptions, GatewayTls } from './traefik.ts';

export interface AccessParts {
  context: AccessContext;
  index: InstanceIndex;
  snapshot: GatewaySnapshot;
  exposure: Exposure;
  leases: LeaseStore;
  gateway: GatewayOptions;
  /** Loads the instance index (rejects when the store cannot be read). */
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** The TLS rendering options of `config`, or undefined when no TLS entry point is configured. */
export function gatewayTls(config: Config): GatewayTls | undefined {
  if (config.tlsEntryPoints.length === 0) return undefined;
  const tls: GatewayTls = { entryPoints: [...config.tlsEntryPoints], domains: config.tlsDomains };
  if (config.tlsCertResolver) tls.certResolver = config.tlsCertResolver;
  if (config.tlsCertFile && config.tlsKeyFile) Object.assign(tls, { certFile: config.tlsCertFile, keyFile: config.tlsKeyFile });
  return tls;
}

/** Builds every access part from `config` over `store`; nothing runs until `start`. */
export function composeAccess(config: Config, store: Store, log: Logger): AccessParts {
  const tls = gatewayTls(config);
  const index = new InstanceIndex(store, { refreshMs: config.resyncSeconds * 1000, log });
  const context: AccessContext = {
    tokens: new AccessTokens(config.accessSecret), index, baseDomain: config.baseDomain, tls: tls !== undefined,
    mode: config.authMode, log,
  };
  if (config.authMode === 'delegate' && config.authDelegateUrl) {
    context.delegate = new DelegateAuth({ url: config.authDelegateUrl, cookies: [...config.authDelegateCookies], cacheMs: config.authDelegateCacheSeconds * 1000, timeoutMs: config.authDelegateTimeoutMs, log });
  }
  const leases: LeaseStore = config.redisUrl ? new RedisLeaseStore({ url: config.redisUrl, prefix: config.redisPrefix }) : new MemoryLeaseStore();
  const exposure = new Exposure({
    baseDomain: config.baseDomain, tls: tls !== undefined, leases, leaseAddress: config.leaseAddress,
    leaseHost: config.leaseHost ?? config.baseDomain, log,
    ...(config.leasePorts ? { range: parsePortRange(config.leasePorts) } : {}),
  });
  const gateway: GatewayOptions = { baseDomain: config.baseDomain, entryPoints: [...config.traefikEntryPoints], poseidonUrl: config.poseidonUrl };
  if (tls) gateway.tls = tls;
  return {
    context, index, snapshot: new GatewaySnapshot(), exposure, leases, gateway,
    async start() {
      await index.start();
      log.info({
        mode: config.authMode, tls: tls ? tls.entryPoints : false, leases: config.leasePorts ?? false, instances: index.size,
      }, 'player access ready');
    },
    async stop() {
      index.stop();
      await leases.close();
    },
  };
}
