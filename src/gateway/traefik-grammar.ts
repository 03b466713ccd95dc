/**
 * The grammar every value must match before the Traefik renderer puts it into a rule or the
 * file: DNS labels and hostnames in `[a-z0-9.-]`, `host:port` backends, entry point, middleware
 * and resolver names, absolute certificate paths. A bad value throws naming it rather than being
 * rendered (architecture: "Only Poseidon-generated labels reach a rule").
 */
import { Codes, PoseidonError } from '../core/errors.ts';
import { hostPrefix, INSTANCE_ID_PATTERN } from '../core/naming.ts';
import { instanceHostPattern } from './host.ts';
import type { GatewayOptions, GatewayRoute } from './traefik.ts';

const LABEL = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;
const HOSTNAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/;
const BACKEND = /^[a-z0-9.-]+:[0-9]{1,5}$/;
// Entry point, middleware and resolver names never reach a rule, but still go into the file
// verbatim; `@provider` lets a middleware live in another provider (e.g. `auth@docker`).
const ENTRY_POINT = /^[A-Za-z0-9_-]+$/;
const MIDDLEWARE = /^[A-Za-z0-9_-]+(@[a-z0-9-]+)?$/;
const FILE_PATH = /^\/[A-Za-z0-9_./@+-]*$/;

/** The error every grammar check throws: `E_INTERNAL`, terminal, naming the value. */
export function invalid(what: string, value: unknown): PoseidonError {
  return new PoseidonError(Codes.internal, `gateway: refusing to render invalid ${what} ${JSON.stringify(value)}`, {
    kind: 'terminal',
    detail: { what, value },
  });
}

function checkLabel(what: string, value: string): void {
  if (typeof value !== 'string' || value.length > 63 || !LABEL.test(value)) throw invalid(what, value);
}

/** Throws unless `value` is a lower-case DNS hostname of at most 253 characters. */
export function checkHostname(what: string, value: string): void {
  const ok =
    typeof value === 'string' &&
    value.length <= 253 &&
    HOSTNAME.test(value) &&
    value.split('.').every((l) => l.length <= 63);
  if (!ok) throw invalid(what, value);
}

export function checkBackend(value: string): void {
  if (typeof value !== 'string' || !BACKEND.test(value)) throw invalid('backend', value);
  const port = Number(value.slice(value.lastIndexOf(':') + 1));
  if (port < 1 || port > 65535) throw invalid('backend', value);
}

function checkNames(what: string, values: readonly string[] | undefined, pattern: RegExp): void {
  for (const v of values ?? []) if (typeof v !== 'string' || !pattern.test(v)) throw invalid(what, v);
}

function checkPoseidonUrl(value: string): void {
  let url: URL;
  try {
    url = new URL(value);
  } catch (err) {
    throw new PoseidonError(Codes.configInvalid, `gateway: poseidonUrl ${JSON.stringify(value)} is not a URL`, { kind: 'terminal', cause: err });
  }
  const bad = (url.protocol !== 'http:' && url.protocol !== 'https:') || url.username || url.password ||
    url.search || url.hash || /\s/.test(value);
  if (bad) throw invalid('poseidonUrl', value);
}

/** Throws unless `value` is a secret that may appear in a rule verbatim (base64url, 16..128). */
export function checkEdgeSecret(value: string): void {
  if (typeof value !== 'string' || !/^[A-Za-z0-9_-]{16,128}$/.test(value)) throw invalid('edge secret', '[hidden]');
}

/** Checks deployment-wide options; throws (see {@link invalid}) on the first bad one. */
export function checkOptions(opts: GatewayOptions): void {
  checkHostname('baseDomain', opts.baseDomain);
  if (opts.entryPoints.length === 0) throw invalid('entryPoints', opts.entryPoints);
  checkNames('entryPoint', opts.entryPoints, ENTRY_POINT);
  checkNames('middleware', opts.middlewares, MIDDLEWARE);
  checkPoseidonUrl(opts.poseidonUrl);
  const tls = opts.tls;
  if (!tls) return;
  if (tls.entryPoints.length === 0) throw invalid('tls entryPoints', tls.entryPoints);
  checkNames('tls entryPoint', tls.entryPoints, ENTRY_POINT);
  if (tls.certResolver !== undefined) checkNames('certResolver', [tls.certResolver], ENTRY_POINT);
  if ((tls.certFile === undefined) !== (tls.keyFile === undefined)) throw invalid('certFile/keyFile pair', [tls.certFile, tls.keyFile]);
  if (tls.certFile !== undefined && tls.certResolver !== undefined) throw invalid('certResolver with certFile', tls.certResolver);
  checkNames('certificate path', [tls.certFile ?? '/', tls.keyFile ?? '/'], FILE_PATH);
}

/**
 * Checks one route against the grammar the renderer requires: instance id, DNS-label challenge
 * and port name, a hostname under `.<challenge>.<baseDomain>`, a `host:port` backend.
 * Throws a `PoseidonError` (`E_INTERNAL`, terminal) naming the bad value. Exported so a caller
 * can drop a single bad route instead of failing the whole render.
 */
export function assertValidRoute(route: GatewayRoute, baseDomain: string): void {
  if (typeof route.instance !== 'string' || !INSTANCE_ID_PATTERN.test(route.instance)) throw invalid('instance', route.instance);
  checkLabel('challenge', route.challenge);
  checkLabel('port name', route.name);
  if (route.protocol !== 'http' && route.protocol !== 'tcp') throw invalid('protocol', route.protocol);
  // Only the shape forward-auth and the catch-all recognise, `<16 hex>[-<port>].<challenge>.<base>`,
  // in lower case, of the route's own challenge: never poseidon.<base> or another domain. (This
  // parse is stricter than a DNS hostname check: only [a-z0-9.-], labels of at most 63.)
  const m = typeof route.hostname === 'string' ? instanceHostPattern(baseDomain).exec(route.hostname) : null;
  if (!m || m[3] !== route.challenge || (m[2] !== undefined && m[2].length > 46)) throw invalid('hostname', route.hostname);
  // Forward-auth picks the instance by the hostname's prefix: it must be this route's instance.
  if (m[1] !== hostPrefix(route.instance)) throw invalid('hostname', route.hostname);
  checkBackend(route.backend);
  if (route.via) {
    checkBackend(route.via.http);
    checkBackend(route.via.tls);
  }
}

/** `baseDomain` as a Go regular expression literal (dots escaped; the grammar allows nothing else special). */
export function regexDomain(baseDomain: string): string {
  return baseDomain.replaceAll('.', '\\.');
}
