/**
 * Composition of the player-access context from configuration: tokens, delegate mode and the
 * TLS rendering options. Adapters (the instance view) come from the composition root.
 */
import type { Config } from '../config/config.ts';
import type { Logger } from '../core/reconcile.ts';
import { AccessTokens } from './access-token.ts';
import type { AccessContext } from './authz.ts';
import { DelegateAuth } from './delegate.ts';
import type { InstanceIndex } from './instance-index.ts';
import type { GatewayTls } from './traefik.ts';

/** The TLS rendering options of `config`, or undefined when no TLS entry point is configured. */
export function gatewayTls(config: Config): GatewayTls | undefined {
  if (config.tlsEntryPoints.length === 0) return undefined;
  const tls: GatewayTls = { entryPoints: [...config.tlsEntryPoints], domains: config.tlsDomains };
  if (config.tlsCertResolver) tls.certResolver = config.tlsCertResolver;
  if (config.tlsCertFile && config.tlsKeyFile) Object.assign(tls, { certFile: config.tlsCertFile, keyFile: config.tlsKeyFile });
  return tls;
}

/** The forward-auth context of `config` over the instance view `index`. */
export function composeAccess(config: Config, index: InstanceIndex, log: Logger): { context: AccessContext } {
  const context: AccessContext = {
    tokens: new AccessTokens(config.accessSecret), index, baseDomain: config.baseDomain, tls: config.tlsEntryPoints.length > 0,
    mode: config.authMode, log,
  };
  if (config.authMode === 'delegate' && config.authDelegateUrl) {
    context.delegate = new DelegateAuth({
      url: config.authDelegateUrl, cookies: [...config.authDelegateCookies], cacheMs: config.authDelegateCacheSeconds * 1000,
      timeoutMs: config.authDelegateTimeoutMs, log,
    });
  }
  return { context };
}
