/**
 * Cross-field rules of the access and gateway settings that the JSON schema cannot say well;
 * called by `loadConfig` on the schema-valid raw configuration.
 */
import { Codes, PoseidonError } from '../core/errors.ts';
import { parsePortRange } from '../core/leases.ts';

/** Environment names of the access and gateway settings (merged into config's table). */
export const ACCESS_ENV_NAMES: Record<string, string> = {
  POSEIDON_ACCESS_SECRET: 'accessSecret', POSEIDON_AUTH_MODE: 'authMode',
  POSEIDON_AUTH_DELEGATE_URL: 'authDelegateUrl', POSEIDON_AUTH_DELEGATE_CACHE_SECONDS: 'authDelegateCacheSeconds',
  POSEIDON_AUTH_DELEGATE_TIMEOUT_MS: 'authDelegateTimeoutMs', POSEIDON_AUTH_DELEGATE_COOKIES: 'authDelegateCookies', POSEIDON_ACCESS_LINK_SECONDS: 'accessLinkSeconds',
  POSEIDON_TRAEFIK_TLS_ENTRYPOINTS: 'tlsEntryPoints', POSEIDON_TLS_CERT_RESOLVER: 'tlsCertResolver',
  POSEIDON_TLS_DOMAINS: 'tlsDomains', POSEIDON_TLS_CERT_FILE: 'tlsCertFile', POSEIDON_TLS_KEY_FILE: 'tlsKeyFile',
  POSEIDON_LEASE_PORTS: 'leasePorts', POSEIDON_LEASE_ADDRESS: 'leaseAddress', POSEIDON_LEASE_HOST: 'leaseHost',
};

/** Access settings as they appear on the frozen `Config`. */
export interface AccessConfig {
  /** HMAC key of access tokens (generated into `<dataDir>/access-secret` when unset). */
  readonly accessSecret: string;
  readonly authMode: 'token' | 'delegate';
  readonly authDelegateUrl?: string;
  readonly authDelegateCacheSeconds: number;
  readonly authDelegateTimeoutMs: number;
  /** Names of the platform's session cookies, the only cookies forwarded in delegate mode. */
  readonly authDelegateCookies: readonly string[];
  readonly accessLinkSeconds: number;
  /** Empty: no TLS. */
  readonly tlsEntryPoints: readonly string[];
  readonly tlsCertResolver?: string;
  readonly tlsDomains: 'wildcard' | 'host';
  readonly tlsCertFile?: string;
  readonly tlsKeyFile?: string;
  /** `lo-hi`; undefined: leases disabled. */
  readonly leasePorts?: string;
  readonly leaseAddress: string;
  readonly leaseHost?: string;
}

/**
 * Problems among the access settings of a schema-valid raw config (empty when none): delegate
 * mode needs its URL, certificate file and key come together and exclude a resolver, TLS
 * certificates need TLS entry points, the lease range must be ordered and within 1..65535.
 */
export function accessProblems(raw: Record<string, unknown>): string[] {
  const problems: string[] = [];
  if (raw.authMode === 'delegate' && raw.authDelegateUrl === undefined) problems.push('POSEIDON_AUTH_DELEGATE_URL is required with POSEIDON_AUTH_MODE=delegate');
  if ((raw.tlsCertFile === undefined) !== (raw.tlsKeyFile === undefined)) problems.push('POSEIDON_TLS_CERT_FILE and POSEIDON_TLS_KEY_FILE go together');
  if (raw.tlsCertFile !== undefined && raw.tlsCertResolver !== undefined) problems.push('POSEIDON_TLS_CERT_FILE and POSEIDON_TLS_CERT_RESOLVER are mutually exclusive');
  const tlsCerts = raw.tlsCertFile !== undefined || raw.tlsCertResolver !== undefined;
  if (tlsCerts && !(Array.isArray(raw.tlsEntryPoints) && raw.tlsEntryPoints.length > 0)) problems.push('TLS certificates need POSEIDON_TRAEFIK_TLS_ENTRYPOINTS');
  if (typeof raw.leasePorts === 'string') {
    try {
      parsePortRange(raw.leasePorts);
    } catch (err) {
      problems.push(`POSEIDON_LEASE_PORTS: ${(err as Error).message}`);
    }
  }
  return problems;
}

/** Throws `E_CONFIG_INVALID` listing {@link accessProblems}, if any. */
export function checkAccess(raw: Record<string, unknown>): void {
  const problems = accessProblems(raw);
  if (problems.length) throw new PoseidonError(Codes.configInvalid, `invalid configuration: ${problems.join('; ')}`, { kind: 'input' });
}
