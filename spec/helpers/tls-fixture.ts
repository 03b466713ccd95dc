/**
 * Self-signed certificates for tests, made with the `openssl` CLI in a temp directory: a
 * certificate for some DNS names (wildcards welcome, e.g. `*.pwn-echo.ctf.test`) that a client
 * trusts by passing it as its `ca`. Each call makes a new key pair, so two fixtures are two
 * distinct identities (a test can tell which one a TLS server presented).
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CI } from './deps.ts';

export interface TlsFixture {
  dir: string;
  certFile: string;
  keyFile: string;
  /** PEM texts. */
  cert: string;
  key: string;
  /** SHA-256 fingerprint as node's `getPeerCertificate().fingerprint256` shows it. */
  fingerprint256: string;
  /** Removes the directory. */
  cleanup(): void;
}

/** Whether the openssl CLI is there. */
export function haveOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore', timeout: 5000 });
    return true;
  } catch {
    // Under CI=true a missing dependency fails the test; elsewhere it is a loud skip.
    if (CI) throw new Error('openssl is required under CI=true but is not available (apt-get install openssl)');
    console.warn('\n  !! SKIPPED: openssl not available; run scripts/dev-env.sh\n');
    return false;
  }
}

/** A self-signed P-256 certificate for `names` (the first is also the subject CN), valid 2 days. */
export function makeCertificate(names: string[], opts: { dir?: string; days?: number } = {}): TlsFixture {
  if (names.length === 0) throw new Error('makeCertificate: no names');
  for (const n of names) if (!/^(\*\.)?[a-z0-9.-]+$/i.test(n)) throw new Error(`makeCertificate: bad name ${JSON.stringify(n)}`);
  const dir = opts.dir ?? mkdtempSync(path.join(tmpdir(), 'poseidon-tls-'));
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyFile, '-out', certFile, '-days', String(opts.days ?? 2),
    '-subj', `/CN=${names[0]}`, '-addext', `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}`,
  ], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 20_000 });
  const cert = readFileSync(certFile, 'utf8');
  return {
    dir, certFile, keyFile, cert, key: readFileSync(keyFile, 'utf8'),
    fingerprint256: new X509Certificate(cert).fingerprint256,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
