/**
 * The access cookie: host-only (no Domain attribute), Path=/, HttpOnly, SameSite=Lax, and with
 * TLS also Secure under the `__Host-` prefix, which browsers refuse to accept from a sibling host
 * or over plain HTTP. Its value is a `session` token bound to the same hostname, so a cookie
 * tossed in from another instance's hostname (or copied by a team that owns a backend) is
 * useless anywhere else.
 */

/** Cookie name for the access session (`__Host-poseidon` with TLS, `poseidon` without). */
export function accessCookieName(tls: boolean): string {
  return tls ? '__Host-poseidon' : 'poseidon';
}

/**
 * Every value of cookie `name` in a Cookie header (browsers may send several: one per matching
 * path or domain, or a tossed one); at most 8, so a stuffed header costs bounded work.
 */
export function cookieValues(header: string | string[] | undefined, name: string): string[] {
  if (header === undefined) return [];
  const text = Array.isArray(header) ? header.join('; ') : header;
  const out: string[] = [];
  let from = 0;
  const needle = `${name}=`;
  while (out.length < 8) {
    const at = text.indexOf(needle, from);
    if (at === -1) break;
    const boundary = at === 0 || text[at - 1] === ' ' || text[at - 1] === ';';
    const end = text.indexOf(';', at);
    if (boundary) out.push(text.slice(at + needle.length, end === -1 ? undefined : end).trim());
    if (end === -1) break;
    from = end + 1;
  }
  return out;
}

/** A Set-Cookie value for the access cookie carrying `token`, expiring after `maxAgeSeconds`. */
export function accessCookie(token: string, maxAgeSeconds: number, tls: boolean): string {
  const age = Math.max(0, Math.floor(maxAgeSeconds));
  return `${accessCookieName(tls)}=${token}; Path=/; Max-Age=${age}; HttpOnly; SameSite=Lax${tls ? '; Secure' : ''}`;
}
