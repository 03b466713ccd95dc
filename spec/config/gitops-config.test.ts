import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadConfig } from '../../src/config/config.ts';

const t = suite('config: git source and webhook');
let dir: string;
const base = () => ({ POSEIDON_API_KEY: 'admin-key-0123456789', POSEIDON_FLAG_SECRET: 'flag-secret-0123456789', POSEIDON_DATA_DIR: path.join(dir, 'data'), PATH: '/usr/bin:/bin', HOME: '/root', AWS_SECRET: 'not-for-git' });
t.before.each(() => { dir = mkdtempSync(path.join(tmpdir(), 'poseidon-config-')); });
t.after.each(() => rmSync(dir, { recursive: true, force: true }));

const fails = (env: Record<string, string>): string => {
  try {
    loadConfig(env, dir);
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('expected the configuration to be refused');
};

t('defaults: no git URL (the directory is the source), branch main, the root, a 60 s poll', () => {
  const c = loadConfig(base(), dir);
  assert.equal([c.gitUrl, c.gitBranch, c.gitPath, c.gitPollSeconds, c.webhookSecret], [undefined, 'main', '', 60, undefined]);
  assert.equal(c.gitEnv, { PATH: '/usr/bin:/bin', HOME: '/root' }, 'only what git needs is passed through');
});

t('values and secrets from files (`*_FILE`)', () => {
  writeFileSync(path.join(dir, 'token'), 'tok-from-file\n');
  writeFileSync(path.join(dir, 'hook'), 'hook-secret-from-a-file-0123\n');
  writeFileSync(path.join(dir, 'key'), '-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n');
  const c = loadConfig({
    ...base(), POSEIDON_GIT_URL: 'https://git.example.test/ctf/challenges.git', POSEIDON_GIT_BRANCH: 'release/2025', POSEIDON_GIT_PATH: 'challenges',
    POSEIDON_GIT_POLL_SECONDS: '0', POSEIDON_GIT_TOKEN_FILE: 'token', POSEIDON_WEBHOOK_SECRET_FILE: path.join(dir, 'hook'), POSEIDON_GIT_SSH_KEY_FILE: 'key',
  }, dir);
  assert.equal([c.gitBranch, c.gitPath, c.gitPollSeconds, c.gitToken, c.webhookSecret], ['release/2025', 'challenges', 0, 'tok-from-file', 'hook-secret-from-a-file-0123']);
  assert.match(c.gitSshKey ?? '', /END OPENSSH PRIVATE KEY-----$/);
});

t('bad values are refused naming the variable, never echoing secrets', () => {
  assert.match(fails({ ...base(), POSEIDON_GIT_PATH: '../etc' }), /POSEIDON_GIT_PATH/);
  assert.match(fails({ ...base(), POSEIDON_GIT_BRANCH: '--upload-pack=evil' }), /POSEIDON_GIT_BRANCH/);
  const url = fails({ ...base(), POSEIDON_GIT_URL: '--config=x https://user:hunter2-secret@h/r.git' });
  assert.match(url, /POSEIDON_GIT_URL/);
  assert.not.match(url, /hunter2/);
  const short = fails({ ...base(), POSEIDON_WEBHOOK_SECRET: 'short-secret' });
  assert.match(short, /POSEIDON_WEBHOOK_SECRET/);
  assert.not.match(short, /short-secret/);
  assert.match(fails({ ...base(), POSEIDON_GIT_TOKEN: 'a', POSEIDON_GIT_TOKEN_FILE: 'x' }), /set POSEIDON_GIT_TOKEN or POSEIDON_GIT_TOKEN_FILE, not both/);
  assert.match(fails({ ...base(), POSEIDON_GIT_TOKEN_FILE: 'missing' }), /POSEIDON_GIT_TOKEN_FILE: cannot read missing \(ENOENT\)/);
});

t.run();
