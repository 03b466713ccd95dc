/**
 * Instance hostnames as the gateway sees them: `<prefix>[-<port>].<challenge>.<baseDomain>`,
 * prefix = 16 hex of SHA-256 of the instance id (see `core/naming.ts`). Parsing is strict and
 * total: every input either maps to exactly one (prefix, challenge, port) or is refused with a
 * reason, so two spellings can never reach different decisions.
 */

/** A well-formed instance hostname, lower-cased. */
export interface InstanceHost {
  /** The hostname as routed: lower case, no port, no trailing dot. */
  host: string;
  /** 16 lowercase hex chars. */
  prefix: string;
  /** Exposed port name for `<prefix>-<name>` hosts; undefined for the first port's host. */
  port?: string;
  challenge: string;
}

export type HostResult = { ok: true; value: InstanceHost } | { ok: false; reason: string };

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const FIRST = /^([0-9a-f]{16})(?:-([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?))?$/;

/**
 * Parses `raw` (a Host or X-Forwarded-Host value) under `baseDomain`. Upper case maps to the
 * same host (DNS is case-insensitive and Traefik's Host matcher is too). Refused: missing or
 * repeated values (a comma means the header was sent twice), any port, a trailing dot,
 * whitespace or any character outside `[a-z0-9.-]`, empty labels, and names that are not exactly
 * one instance label plus one challenge label above the base domain.
 */
export function parseInstanceHost(raw: string | string[] | undefined, baseDomain: string): HostResult {
  if (raw === undefined || raw === '') return { ok: false, reason: 'no host' };
  if (Array.isArray(raw) || raw.includes(',')) return { ok: false, reason: 'more than one host' };
  if (raw.length > 253) return { ok: false, reason: 'host too long' };
  if (raw.includes(':')) return { ok: false, reason: 'host with a port' };
  if (raw.endsWith('.')) return { ok: false, reason: 'host with a trailing dot' };
  const host = raw.toLowerCase();
  if (!/^[a-z0-9.-]+$/.test(host)) return { ok: false, reason: 'host with invalid characters' };
  const suffix = `.${baseDomain}`;
  if (!host.endsWith(suffix)) return { ok: false, reason: 'host outside the base domain' };
  const labels = host.slice(0, -suffix.length).split('.');
  if (labels.length !== 2) return { ok: false, reason: 'not an instance host' };
  const [first, challenge] = labels as [string, string];
  const m = FIRST.exec(first);
  if (!m || !LABEL.test(challenge)) return { ok: false, reason: 'not an instance host' };
  const value: InstanceHost = { host, prefix: m[1] as string, challenge };
  if (m[2] !== undefined) value.port = m[2];
  return { ok: true, value };
}

/** Index key of an instance by hostname: prefix and challenge identify it (the port does not). */
export function hostKey(prefix: string, challenge: string): string {
  return `${prefix}.${challenge}`;
}
