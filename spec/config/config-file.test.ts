/**
 * The config file (poseidon.yaml): precedence default < file < environment, every error class
 * with file:line:col, secrets never echoed, and `config check`'s output (in-process here; the
 * real CLI and processes are in config-cli.test.ts).
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runConfigCheck } from '../../src/config/config-check.ts';
import { loadConfig } from '../../src/config/config.ts';
import { resolveConfig } from '../../src/config/resolve.ts';
import { isPoseidonError } from '../../src/core/errors.ts';
import { ROOT } from '../helpers/deps.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'poseidon-config-file-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const KEY = 'file-api-key-0123456789';
const FLAG = 'file-flag-secret-0123456789';
let n = 0;
/** Writes `text` to a fresh file (mode 0600 unless told) and returns its path. */
function file(text: string, mode = 0o600): string {
  const p = path.join(dir, `c${n++}.yaml`);
  writeFileSync(p, text, { mode });
  chmodSync(p, mode);
  return p;
}

/** The E_CONFIG_INVALID message of loading `configFile` with `env`. */
function failure(configFile: string, env: NodeJS.ProcessEnv = {}): string {
  try {
    loadConfig(env, dir, { configFile });
  } catch (err) {
    assert.ok(isPoseidonError(err, 'E_CONFIG_INVALID'), String(err));
    return (err as Error).message;
  }
  throw new Error('the configuration was accepted');
}

test('precedence: default < file < environment; an empty variable does not hide the file', () => {
  const f = file([
    `POSEIDON_API_KEY: ${KEY}`, `POSEIDON_FLAG_SECRET: ${FLAG}`, 'POSEIDON_ACCESS_SECRET: file-access-secret-0123',
    'POSEIDON_PORT: 9091', 'POSEIDON_BASE_DOMAIN: file.example.org', 'POSEIDON_TEAM_LIMIT: 7',
    'POSEIDON_TRAEFIK_ENTRYPOINTS: [web, websecure]', 'POSEIDON_EMBEDDED_WORKER: false', 'POSEIDON_ORPHAN_BREAKER_RATIO: 0.25',
  ].join('\n'));
  const c = loadConfig({ POSEIDON_PORT: '9092', POSEIDON_TEAM_LIMIT: '' }, dir, { configFile: f });
  assert.is(c.port, 9092, 'env wins');
  assert.is(c.baseDomain, 'file.example.org', 'file over default');
  assert.is(c.teamLimit, 7, 'empty env value means unset: the file stands');
  assert.is(c.capacity, 100, 'default');
  assert.equal([...c.traefikEntryPoints], ['web', 'websecure'], 'a YAML list for a list variable');
  assert.is(c.embeddedWorker, false);
  assert.is(c.orphanBreakerRatio, 0.25);
  assert.is(c.apiKey, KEY);
  assert.equal([...c.generated], [], 'nothing generated: the file had the secrets');
  assert.is(c.configFile, f);
  const r = resolveConfig({ POSEIDON_PORT: '9092' }, dir, { configFile: f });
  const src = Object.fromEntries(r.entries.map((e) => [e.name, e]));
  assert.is(src.POSEIDON_PORT?.source, 'env');
  assert.is(src.POSEIDON_BASE_DOMAIN?.source, 'file');
  assert.equal([src.POSEIDON_BASE_DOMAIN?.line, src.POSEIDON_BASE_DOMAIN?.col], [5, 23]);
  assert.is(src.POSEIDON_CAPACITY?.source, 'default');
  assert.is(src.POSEIDON_REGISTRY?.source, 'unset');
});

test('which file: --config, else POSEIDON_CONFIG, else ./poseidon.yaml when present, else none', () => {
  const cwd = mkdtempSync(path.join(dir, 'cwd-'));
  const env = { POSEIDON_API_KEY: KEY, POSEIDON_FLAG_SECRET: FLAG, POSEIDON_ACCESS_SECRET: 'env-access-secret-0123' };
  assert.is(loadConfig(env, cwd).configFile, undefined, 'none: environment alone, as before');
  writeFileSync(path.join(cwd, 'poseidon.yaml'), 'POSEIDON_BASE_DOMAIN: default.example\n', { mode: 0o600 });
  writeFileSync(path.join(cwd, 'other.yaml'), 'POSEIDON_BASE_DOMAIN: other.example\n', { mode: 0o600 });
  writeFileSync(path.join(cwd, 'flag.yaml'), 'POSEIDON_BASE_DOMAIN: flag.example\n', { mode: 0o600 });
  assert.is(loadConfig(env, cwd).baseDomain, 'default.example');
  assert.is(loadConfig({ ...env, POSEIDON_CONFIG: 'other.yaml' }, cwd).baseDomain, 'other.example');
  assert.is(loadConfig({ ...env, POSEIDON_CONFIG: 'other.yaml' }, cwd, { configFile: 'flag.yaml' }).baseDomain, 'flag.example');
  assert.match(failure(path.join(cwd, 'missing.yaml'), env), /missing\.yaml: cannot read the config file \(ENOENT\)/);
});

test('every error class names the file, the key and line:col; all problems at once; no secret echoed', () => {
  const secret = 'TopSecretValue-do-not-print';
  const cases: [string, string, RegExp][] = [
    ['malformed YAML', `POSEIDON_PORT: 80\nPOSEIDON_API_KEY: "${secret}\n`, /:3:1: malformed YAML: .*\(MISSING_CHAR\)/],
    ['duplicate key', `POSEIDON_PORT: 80\nPOSEIDON_PORT: 81\n`, /:2:1: malformed YAML: Map keys must be unique/],
    ['not a mapping', `- ${secret}\n`, /:1:1: the file must be a mapping/],
    ['unknown key, did you mean', `POSEIDON_BASE_DOMIAN: x.org\n`, /:1:1: POSEIDON_BASE_DOMIAN: unknown key \(did you mean POSEIDON_BASE_DOMAIN\?\)/],
    ['camelCase key', `baseDomain: x.org\n`, /:1:1: baseDomain: unknown key \(did you mean POSEIDON_BASE_DOMAIN\?\)/],
    ['list for a single value', `POSEIDON_API_KEY: [${secret}]\n`, /:1:19: POSEIDON_API_KEY: takes one value, not a list/],
    ['mapping for a value', `POSEIDON_PORT:\n  value: 80\n`, /:2:3: POSEIDON_PORT: must be a value, not a mapping/],
    ['wrong type', `POSEIDON_PORT: eighty\n`, /:1:16: POSEIDON_PORT: must be integer \(got "eighty"\)/],
    ['refused by the env validation', `POSEIDON_FLAG_SECRET: ${secret.slice(0, 8)}\n`, /:1:23: POSEIDON_FLAG_SECRET: must NOT have fewer than 16 characters$/],
    ['cross-field rule', `POSEIDON_AUTH_MODE: delegate\n`, /:1:21: POSEIDON_AUTH_DELEGATE_URL is required with POSEIDON_AUTH_MODE=delegate/],
  ];
  for (const [what, text, re] of cases) {
    const f = file(text);
    const msg = failure(f);
    assert.ok(msg.includes(f), `${what}: the file is named in ${msg}`);
    assert.match(msg, re, what);
    assert.not.ok(msg.includes(secret) || msg.includes(secret.slice(0, 8)), `${what}: no secret in ${msg}`);
  }
  const many = resolveConfig({}, dir, { configFile: file('POSEIDON_PORT: eighty\nPOSEIDON_CAPACITY: -1\nPOSEIDON_NOPE: 1\nPOSEIDON_LOG_LEVEL: loud\n') });
  assert.equal(many.problems.map((p) => [p.variable, p.line]).sort(), [['POSEIDON_CAPACITY', 2], ['POSEIDON_LOG_LEVEL', 4], ['POSEIDON_NOPE', 3], ['POSEIDON_PORT', 1]]);
});

test('an environment error has no file position; a value from the environment is not blamed on the file', () => {
  const f = file('POSEIDON_PORT: 80\n');
  const msg = failure(f, { POSEIDON_PORT: 'eighty' });
  assert.match(msg, /invalid configuration: POSEIDON_PORT: must be integer/);
  assert.not.ok(msg.includes(f));
});

test('a file holding secrets readable by every user is a warning; without secrets it is not', () => {
  const open = file(`POSEIDON_API_KEY: ${KEY}\n`, 0o644);
  const r = resolveConfig({}, dir, { configFile: open });
  assert.is(r.problems.length, 0);
  assert.is(r.warnings.length, 1);
  assert.match(r.warnings[0] ?? '', /holds secrets \(POSEIDON_API_KEY\).*mode 0644.*chmod 600/);
  assert.not.ok((r.warnings[0] ?? '').includes(KEY));
  assert.is(resolveConfig({}, dir, { configFile: file('POSEIDON_PORT: 80\n', 0o644) }).warnings.length, 0);
  assert.is(resolveConfig({}, dir, { configFile: file(`POSEIDON_API_KEY: ${KEY}\n`, 0o640) }).warnings.length, 0, 'group-readable is a deliberate setup');
});

/** Runs `config check` in-process; returns exit code and everything printed. */
function check(args: string[], env: NodeJS.ProcessEnv = {}): { code: number; out: string; err: string } {
  let out = '';
  let err = '';
  const code = runConfigCheck(args, { stdout: (s) => { out += `${s}\n`; }, stderr: (s) => { err += `${s}\n`; }, cwd: dir, env });
  return { code, out, err };
}

const SECRETS = {
  POSEIDON_API_KEY: 'sk-api-AAAAAAAAAAAAAAAA', POSEIDON_FLAG_SECRET: 'sk-flag-BBBBBBBBBBBBBBBB', POSEIDON_ACCESS_SECRET: 'sk-access-CCCCCCCCCCCC',
  POSEIDON_EVENTS_WEBHOOK_SECRET: 'sk-hook-DDDDDDDDDDDDDDDD', POSEIDON_EDGE_SECRET: 'skedgeEEEEEEEEEEEEEEEE', POSEIDON_METRICS_TOKEN: 'sk-metrics-FFFFFFFFFFFF',
  POSEIDON_GIT_TOKEN: 'sk-git-GGGGGGGGGGGGGGGG', POSEIDON_WEBHOOK_SECRET: 'sk-gitwebhook-HHHHHHHHH', POSEIDON_GIT_SSH_KEY: 'sk-ssh-IIIIIIIIIIIIIIII',
};
const REDIS_PASSWORD = 'sk-redis-JJJJJJJJJJJJ';

test('config check: every variable with its source, secrets masked (file and env), URL passwords masked', () => {
  const f = file([
    ...Object.entries(SECRETS).map(([k, v]) => `${k}: ${v}`),
    `REDIS_URL: redis://:${REDIS_PASSWORD}@127.0.0.1:6390/0`, 'POSEIDON_EVENTS_WEBHOOK_URL: https://hooks.example/x',
    'POSEIDON_BASE_DOMAIN: ctf.example.org', 'POSEIDON_PORT: 9093',
  ].join('\n'));
  const env = { POSEIDON_PORT: '9094', POSEIDON_METRICS_TOKEN: 'sk-env-metrics-KKKKKKKK' };
  const text = check(['--config', f], env);
  assert.is(text.code, 0, text.err);
  const json = check(['--config', f, '--json'], env);
  assert.is(json.code, 0);
  for (const out of [text.out + text.err, json.out + json.err]) {
    for (const s of [...Object.values(SECRETS), REDIS_PASSWORD, env.POSEIDON_METRICS_TOKEN]) assert.not.ok(out.includes(s), `${s} printed`);
  }
  assert.match(text.out, new RegExp(`^configuration file: ${f}`));
  assert.match(text.out, /POSEIDON_BASE_DOMAIN +ctf\.example\.org +file .*:\d+:23\n/);
  assert.match(text.out, /POSEIDON_PORT +9094 +env\n/);
  assert.match(text.out, /POSEIDON_CAPACITY +100 +default\n/);
  assert.match(text.out, /REDIS_URL +redis:\/\/:\*{8}@127\.0\.0\.1:6390\/0 +file/);
  const parsed = JSON.parse(json.out) as { ok: boolean; file: string; entries: { name: string; value: string | null; source: string }[] };
  assert.is(parsed.ok, true);
  const by = Object.fromEntries(parsed.entries.map((e) => [e.name, e]));
  assert.equal(by.POSEIDON_METRICS_TOKEN, { name: 'POSEIDON_METRICS_TOKEN', value: '********', source: 'env' });
  assert.is(by.POSEIDON_GIT_TOKEN?.value, '********');
  assert.is(by.POSEIDON_REGISTRY?.source, 'unset');
});

test('config check: every problem, exit 1, nothing of the secret', () => {
  const f = file(`POSEIDON_PORT: 99999\nPOSEIDON_API_KEY: ${'sk-short'}\nPOSEIDON_TEM_LIMIT: 3\n`);
  for (const args of [['--config', f], ['--config', f, '--json']]) {
    const r = check(args);
    assert.is(r.code, 1);
    const all = r.out + r.err;
    assert.not.ok(all.includes('sk-short'));
    assert.ok(all.includes(`${f}:1:16`) && all.includes(`${f}:2:19`) && all.includes(`${f}:3:1`), all);
    assert.ok(all.includes('did you mean POSEIDON_TEAM_LIMIT?'), all);
  }
  assert.is(check(['--nope']).code, 2);
});

test('the README example poseidon.yaml resolves without problems', () => {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const example = /```yaml\n(# poseidon\.yaml[^\n]*\n[\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(example, 'README has the example');
  const tokenFile = file('a-git-token\n');
  const r = resolveConfig({}, dir, { configFile: file(example.replace('/run/secrets/git-token', tokenFile)) });
  assert.equal(r.problems, []);
  assert.is(r.entries.find((e) => e.name === 'POSEIDON_BASE_DOMAIN')?.source, 'file');
});

test('serve with no file and no POSEIDON_CONFIG reads nothing but the environment', () => {
  const cwd = mkdtempSync(path.join(dir, 'plain-'));
  mkdirSync(path.join(cwd, 'data'));
  const c = loadConfig({ POSEIDON_DATA_DIR: 'data' }, cwd);
  assert.is(c.configFile, undefined);
  assert.equal([...c.generated].sort(), ['accessSecret', 'apiKey', 'flagSecret']);
});

test.run();
