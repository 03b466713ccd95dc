import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadConfig } from '../../src/config/config.ts';
import { isPoseidonError } from '../../src/core/errors.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'poseidon-config-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

test('defaults apply and the result is frozen', () => {
  const c = loadConfig({ POSEIDON_API_KEY: 'k'.repeat(20), POSEIDON_FLAG_SECRET: 's'.repeat(20) }, dir);
  assert.is(c.port, 8080);
  assert.is(c.baseDomain, 'localhost');
  assert.is(c.challengesDir, path.join(dir, 'challenges'));
  assert.equal([...c.traefikEntryPoints], ['web']);
  assert.is(c.redisUrl, undefined);
  assert.ok(Object.isFrozen(c));
});

test('env values are coerced and lists split', () => {
  const c = loadConfig({ POSEIDON_PORT: '9090', POSEIDON_TRAEFIK_ENTRYPOINTS: 'web, websecure', POSEIDON_API_KEY: 'k'.repeat(20), POSEIDON_FLAG_SECRET: 's'.repeat(20) }, dir);
  assert.is(c.port, 9090);
  assert.equal([...c.traefikEntryPoints], ['web', 'websecure']);
});

test('missing secrets are generated once, persisted 0600 and reused', () => {
  const data = path.join(dir, 'data');
  const a = loadConfig({ POSEIDON_DATA_DIR: data }, dir);
  const b = loadConfig({ POSEIDON_DATA_DIR: data }, dir);
  assert.equal([...a.generated], ['apiKey', 'flagSecret', 'accessSecret']);
  assert.is(a.apiKey, b.apiKey);
  assert.is(a.flagSecret, b.flagSecret);
  assert.is(readFileSync(path.join(data, 'api-key'), 'utf8').trim(), a.apiKey);
  assert.is(statSync(path.join(data, 'flag-secret')).mode & 0o777, 0o600);
});

test('an empty or short persisted secret refuses start-up, naming the file; nothing is overwritten', () => {
  for (const [file, content] of [['api-key', ''], ['flag-secret', '\n'], ['access-secret', 'short\n']] as const) {
    const data = path.join(dir, `bad-${file}`);
    mkdirSync(data, { recursive: true });
    writeFileSync(path.join(data, file), content);
    try {
      loadConfig({ POSEIDON_DATA_DIR: data }, dir);
      assert.unreachable(`${file} ${JSON.stringify(content)} was accepted`);
    } catch (err) {
      assert.ok(isPoseidonError(err, 'E_CONFIG_INVALID'), String(err));
      assert.match((err as Error).message, new RegExp(`${file}.*(empty|too short)`));
    }
    assert.is(readFileSync(path.join(data, file), 'utf8'), content, 'left as it was');
  }
});

test('generated secrets leave no temporary files and are at least 16 characters', () => {
  const data = path.join(dir, 'fresh');
  const c = loadConfig({ POSEIDON_DATA_DIR: data }, dir);
  assert.equal(readdirSync(data).sort(), ['access-secret', 'api-key', 'flag-secret']);
  for (const s of [c.apiKey, c.flagSecret, c.accessSecret]) assert.ok(s.length >= 16);
});

test('bad values name the variable; secret values are never echoed', () => {
  try {
    loadConfig({ POSEIDON_PORT: 'eighty', POSEIDON_API_KEY: 'short-secret', POSEIDON_BASE_DOMAIN: 'Bad_Domain', POSEIDON_PUBLISH_ADDRESS: '0.0.0.0' }, dir);
    assert.unreachable('should throw');
  } catch (err) {
    assert.ok(isPoseidonError(err, 'E_CONFIG_INVALID'));
    const msg = (err as Error).message;
    for (const name of ['POSEIDON_PORT', 'POSEIDON_API_KEY', 'POSEIDON_BASE_DOMAIN', 'POSEIDON_PUBLISH_ADDRESS']) assert.ok(msg.includes(name), `${name} in ${msg}`);
    assert.not.ok(msg.includes('short-secret'));
  }
});

test.run();
