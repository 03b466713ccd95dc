/**
 * TLS pieces of the Traefik stand-in: reading a ClientHello's SNI and ALPN without terminating
 * (what Traefik peeks before routing a TLS connection), and the certificate store that picks the
 * certificate for a server name as Traefik's does (pkg/tls/certificate_store.go
 * GetBestCertificate: exact or wildcard match on the certificates' names, the lexically greatest
 * matching name wins, else the default certificate).
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContext } from 'node:tls';

export interface ClientHello {
  /** Whether the first record is a TLS handshake (or an SSLv2 hello, which the handshake then refuses). */
  isTLS: boolean;
  /** SNI host name, lower-cased; '' without SNI. */
  serverName: string;
  alpn: string[];
}

/**
 * Parses what was read so far. Returns undefined while more bytes are needed (a ClientHello may
 * span several records and TCP segments), a result once the first byte says it is not TLS or
 * the whole ClientHello is there. Throws on a malformed hello.
 */
export function parseClientHello(buf: Buffer): ClientHello | undefined {
  if (buf.length === 0) return undefined;
  if (buf[0] !== 0x16) return { isTLS: buf[0] === 0x80, serverName: '', alpn: [] };
  // Reassemble the handshake message from consecutive handshake records.
  let hs = Buffer.alloc(0);
  let off = 0;
  for (;;) {
    if (buf.length < off + 5) return undefined;
    if (buf[off] !== 0x16) throw new Error('TLS: ClientHello interrupted by another record type');
    const len = buf.readUInt16BE(off + 3);
    if (buf.length < off + 5 + len) return undefined;
    hs = Buffer.concat([hs, buf.subarray(off + 5, off + 5 + len)]);
    off += 5 + len;
    if (hs.length >= 4) {
      if (hs[0] !== 1) throw new Error('TLS: first handshake message is not a ClientHello');
      const msgLen = hs.readUIntBE(1, 3);
      if (hs.length >= 4 + msgLen) return readHello(hs.subarray(4, 4 + msgLen));
    }
  }
}

function readHello(b: Buffer): ClientHello {
  let p = 2 + 32; // client_version, random
  p += 1 + b[p]!; // session id
  p += 2 + b.readUInt16BE(p); // cipher suites
  p += 1 + b[p]!; // compression methods
  const out: ClientHello = { isTLS: true, serverName: '', alpn: [] };
  if (p + 2 > b.length) return out;
  const end = p + 2 + b.readUInt16BE(p);
  p += 2;
  while (p + 4 <= end) {
    const type = b.readUInt16BE(p);
    const len = b.readUInt16BE(p + 2);
    const ext = b.subarray(p + 4, p + 4 + len);
    p += 4 + len;
    if (type === 0 && ext.length >= 2) {
      // server_name: list of (type, name); host_name is type 0.
      for (let q = 2; q + 3 <= ext.length;) {
        const nameType = ext[q]!;
        const nameLen = ext.readUInt16BE(q + 1);
        if (nameType === 0) out.serverName = ext.subarray(q + 3, q + 3 + nameLen).toString('latin1').trim().toLowerCase();
        q += 3 + nameLen;
      }
    } else if (type === 16 && ext.length >= 2) {
      for (let q = 2; q < ext.length;) {
        const l = ext[q]!;
        out.alpn.push(ext.subarray(q + 1, q + 1 + l).toString('latin1'));
        q += 1 + l;
      }
    }
  }
  return out;
}

/** A certificate as given to the stand-in: PEM text (or a path to it, as Traefik accepts both). */
export interface CertificatePair {
  cert: string | Buffer;
  key: string | Buffer;
}

function pem(v: string | Buffer): string {
  const s = v.toString();
  return s.includes('-----BEGIN') ? s : readFileSync(s, 'utf8');
}

interface Entry {
  names: string[];
  context: SecureContext;
}

/** Traefik's matchDomain: exact, or the name with its leftmost labels turned into `*` one by one. */
export function matchDomain(serverName: string, certDomain: string): boolean {
  if (serverName === certDomain) return true;
  const d = certDomain.replace(/\.+$/, '');
  const labels = serverName.split('.');
  for (let i = 0; i < labels.length; i++) {
    labels[i] = '*';
    if (labels.join('.') === d) return true;
  }
  return false;
}

/** Names a certificate answers for: its DNS SANs, else its subject CN (lower-cased). */
function namesOf(certPem: string): string[] {
  const x = new X509Certificate(certPem);
  const sans = (x.subjectAltName ?? '').split(',').map((s) => s.trim()).filter((s) => s.startsWith('DNS:')).map((s) => s.slice(4).toLowerCase());
  if (sans.length > 0) return sans;
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(x.subject);
  return cn ? [cn[1]!.toLowerCase()] : [];
}

export class CertStore {
  private readonly entries: Entry[] = [];
  private readonly fallback: SecureContext | undefined;

  /**
   * `certs` are matched by name; `defaultCert` (else the first of `certs`) answers the rest. A
   * pair that cannot be read or loaded is left out and reported to `onError` (Traefik logs it
   * and goes on with the others).
   */
  constructor(certs: CertificatePair[], defaultCert?: CertificatePair, onError: (message: string) => void = () => undefined) {
    const label = (c: CertificatePair) => (c.cert.toString().includes('-----BEGIN') ? 'a PEM certificate' : c.cert.toString());
    for (const c of certs) {
      try {
        const cert = pem(c.cert);
        this.entries.push({ names: namesOf(cert), context: createSecureContext({ cert, key: pem(c.key) }) });
      } catch (err) {
        onError(`certificate ${label(c)}: ${(err as Error).message}`);
      }
    }
    let fallback: SecureContext | undefined;
    if (defaultCert) {
      try {
        fallback = createSecureContext({ cert: pem(defaultCert.cert), key: pem(defaultCert.key) });
      } catch (err) {
        onError(`default certificate ${label(defaultCert)}: ${(err as Error).message}`);
      }
    }
    this.fallback = fallback ?? this.entries[0]?.context;
  }

  /** Whether any certificate is there to terminate TLS with. */
  get empty(): boolean {
    return this.fallback === undefined;
  }

  /** The context for `serverName` (best match, else default), or undefined with no certificate at all. */
  contextFor(serverName: string): SecureContext | undefined {
    let best: [string, SecureContext] | undefined;
    for (const e of this.entries) {
      for (const n of e.names) if (matchDomain(serverName, n) && (!best || n > best[0])) best = [n, e.context];
    }
    return best?.[1] ?? this.fallback;
  }
}
