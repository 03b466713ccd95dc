/** The access, TLS and lease settings of the configuration. */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadConfig } from '../../src/config/config.ts';
import { isPoseidonError } from '../../src/core/errors.ts';
import { gatewayTls } from '../../src/gateway/compose.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'poseidon-access-config-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));
const BASE = { POSEIDON_API_KEY: 'k'.repeat(20), POSEIDON_FLAG_SECRET: 's'.repeat(20), POSEIDON_ACCESS_SECRET: 'a'.repeat(20) };

function refused(env: Record<string, string>, re: RegExp, secret?: string): void {
  try {
    loadConfig({ ...BASE, ...env }, dir);
    assert.unreachable(JSON.stringify(env));
  } catch (err) {
    if (err instanceof assert.Assertion) throw err;
    assert.ok(isPoseidonError(err, 'E_CONFIG_INVALID'), String(err));
    assert.match((err as Error).message, re);
    if (secret) assert.not.ok((err as Error).message.includes(secret), 'secret echoed');
  }
}

test('defaults: token mode, 2-minute links, no TLS, leases off, published on all addresses', () => {
  const c = loadConfig(BASE, dir);
  assert.is(c.authMode, 'token');
  assert.is(c.accessLinkSeconds, 120);
  assert.equal([...c.tlsEntryPoints], []);
  assert.is(gatewayTls(c), undefined);
  assert.is(c.leasePorts, undefined);
  assert.is(c.leaseAddress, '0.0.0.0');
  assert.is(c.authDelegateCacheSeconds, 5);
  assert.is(loadConfig(BASE, dir, { dev: true }).leaseAddress, '127.0.0.1', '--dev keeps leased ports on loopback');
});

test('the access secret is generated once, 0600, reused, and announced as generated', () => {
  const data = path.join(dir, 'gen');
  const a = loadConfig({ POSEIDON_API_KEY: 'k'.repeat(20), POSEIDON_FLAG_SECRET: 's'.repeat(20), POSEIDON_DATA_DIR: data }, dir);
  const file = path.join(data, 'access-secret');
  assert.ok(existsSync(file));
  assert.is(statSync(file).mode & 0o777, 0o600);
  assert.is(readFileSync(file, 'utf8').trim(), a.accessSecret);
  assert.ok(a.generated.includes('accessSecret'));
  const b = loadConfig({ POSEIDON_API_KEY: 'k'.repeat(20), POSEIDON_FLAG_SECRET: 's'.repeat(20), POSEIDON_DATA_DIR: data }, dir);
  assert.is(b.accessSecret, a.accessSecret);
  assert.is.not(a.accessSecret, a.flagSecret);
});

test('TLS options become the gateway TLS settings', () => {
  const c = loadConfig({ ...BASE, POSEIDON_TRAEFIK_TLS_ENTRYPOINTS: 'websecure, alt', POSEIDON_TLS_CERT_RESOLVER: 'le', POSEIDON_TLS_DOMAINS: 'host' }, dir);
  assert.equal(gatewayTls(c), { entryPoints: ['websecure', 'alt'], domains: 'host', certResolver: 'le' });
  const f = loadConfig({ ...BASE, POSEIDON_TRAEFIK_TLS_ENTRYPOINTS: 'websecure', POSEIDON_TLS_CERT_FILE: '/certs/w.crt', POSEIDON_TLS_KEY_FILE: '/certs/w.key' }, dir);
  assert.equal(gatewayTls(f), { entryPoints: ['websecure'], domains: 'wildcard', certFile: '/certs/w.crt', keyFile: '/certs/w.key' });
});

test('bad access settings are refused with the variable named, secrets never echoed', () => {
  refused({ POSEIDON_AUTH_MODE: 'magic' }, /POSEIDON_AUTH_MODE/);
  refused({ POSEIDON_AUTH_MODE: 'delegate' }, /POSEIDON_AUTH_DELEGATE_URL is required/);
  refused({ POSEIDON_AUTH_MODE: 'delegate', POSEIDON_AUTH_DELEGATE_URL: 'ftp://x' }, /POSEIDON_AUTH_DELEGATE_URL/);
  refused({ POSEIDON_ACCESS_SECRET: 'short-secret' }, /POSEIDON_ACCESS_SECRET/, 'short-secret');
  refused({ POSEIDON_ACCESS_LINK_SECONDS: '5' }, /POSEIDON_ACCESS_LINK_SECONDS/);
  refused({ POSEIDON_TRAEFIK_TLS_ENTRYPOINTS: 'websecure', POSEIDON_TLS_CERT_FILE: '/a.crt' }, /go together/);
  refused({ POSEIDON_TRAEFIK_TLS_ENTRYPOINTS: 'websecure', POSEIDON_TLS_CERT_FILE: '/a.crt', POSEIDON_TLS_KEY_FILE: '/a.key', POSEIDON_TLS_CERT_RESOLVER: 'le' }, /mutually exclusive/);
  refused({ POSEIDON_TLS_CERT_RESOLVER: 'le' }, /need POSEIDON_TRAEFIK_TLS_ENTRYPOINTS/);
  refused({ POSEIDON_TRAEFIK_TLS_ENTRYPOINTS: 'web secure' }, /POSEIDON_TRAEFIK_TLS_ENTRYPOINTS/);
  refused({ POSEIDON_TLS_CERT_FILE: 'relative.crt', POSEIDON_TLS_KEY_FILE: '/a.key' }, /POSEIDON_TLS_CERT_FILE/);
  refused({ POSEIDON_LEASE_PORTS: '31000-30000' }, /POSEIDON_LEASE_PORTS/);
  refused({ POSEIDON_LEASE_PORTS: '1-70000' }, /POSEIDON_LEASE_PORTS/);
  refused({ POSEIDON_LEASE_PORTS: 'lots' }, /POSEIDON_LEASE_PORTS/);
  refused({ POSEIDON_LEASE_ADDRESS: 'everywhere' }, /POSEIDON_LEASE_ADDRESS/);
});

test.run();
