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

const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const patterns = new Map<string, RegExp>();

/**
 * The instance-hostname grammar under `baseDomain` as one regular expression (cached per base
 * domain): captures prefix, port name (optional) and challenge. `baseDomain` must already be a
 * valid lower-case hostname (config and the renderer check it).
 */
export function instanceHostPattern(baseDomain: string): RegExp {
  let re = patterns.get(baseDomain);
  if (!re) {
    re = new RegExp(`^([0-9a-f]{16})(?:-(${LABEL}))?\\.(${LABEL})\\.${baseDomain.replaceAll('.', '\\.')}$`);
    if (patterns.size > 16) patterns.clear();
    patterns.set(baseDomain, re);
  }
  return re;
}

/** Why `host` (lower case, no port) is not an instance host; only called on the slow path. */
function whyNot(host: string, baseDomain: string): string {
  if (!/^[a-z0-9.-]+$/.test(host)) return 'host with invalid characters';
  if (!host.endsWith(`.${baseDomain}`)) return 'host outside the base domain';
  return 'not an instance host';
}

/** `:<port>` with a port number 1..65535 and no leading zero. */
const PORT_SUFFIX = /:([1-9][0-9]{0,4})$/;

/**
 * Parses `raw` (a Host or X-Forwarded-Host value) under `baseDomain`. Upper case maps to the
 * same host (DNS is case-insensitive and Traefik's Host matcher is too). A port is ignored, as
 * Traefik's `Host` matcher ignores it: Traefik sends `host:8443` from an entry point on a
 * non-default port, and the decision is about the host (cookies are not port-bound either).
 * Refused: missing or repeated values (a comma means the header was sent twice), a malformed
 * port (`:0`, `:65536`, `:08`, several colons, IPv6 literals), a trailing dot,
 * whitespace or any character outside `[a-z0-9.-]`, labels over 63 characters, and names that
 * are not exactly one instance label plus one challenge label above the base domain.
 */
export function parseInstanceHost(raw: string | string[] | undefined, baseDomain: string): HostResult {
  if (raw === undefined || raw === '') return { ok: false, reason: 'no host' };
  if (Array.isArray(raw) || raw.includes(',')) return { ok: false, reason: 'more than one host' };
  if (raw.length > 253) return { ok: false, reason: 'host too long' };
  const port = PORT_SUFFIX.exec(raw);
  const bare = port && Number(port[1]) <= 65535 ? raw.slice(0, port.index) : raw;
  if (bare.includes(':')) return { ok: false, reason: 'host with a malformed port' };
  if (bare.endsWith('.')) return { ok: false, reason: 'host with a trailing dot' };
  const host = bare.toLowerCase();
  const m = instanceHostPattern(baseDomain).exec(host);
  // A port name makes the first label longer than the 16-hex prefix; DNS allows 63.
  if (!m || (m[2] !== undefined && m[2].length > 46)) return { ok: false, reason: m ? 'not an instance host' : whyNot(host, baseDomain) };
  const value: InstanceHost = { host, prefix: m[1] as string, challenge: m[3] as string };
  if (m[2] !== undefined) value.port = m[2];
  return { ok: true, value };
}

/** Index key of an instance by hostname: prefix and challenge identify it (the port does not). */
export function hostKey(prefix: string, challenge: string): string {
  return `${prefix}.${challenge}`;
}
