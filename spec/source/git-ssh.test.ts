/**
 * The git source over SSH with a deploy key, against a real OpenSSH server: the key is written
 * 0600 and passed to ssh only by path, host keys are checked, failures are typed and redacted.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { isPoseidonError } from '../../src/core/errors.ts';
import { GitSource } from '../../src/source/git-source.ts';
import { challengeYaml, gitFixture, TEST_GIT_ENV, type GitFixture } from './git-fixture.ts';
import { haveSshd, startSshd, type Sshd } from './sshd.ts';

const t = suite('source: git over ssh with a deploy key (real sshd)');
const enabled = haveSshd();
let sshd: Sshd;
let fx: GitFixture;
let workdir: string;

t.before(async () => {
  if (!enabled) return;
  sshd = await startSshd();
  fx = gitFixture();
  fx.write('web/challenge.yaml', challengeYaml('web'));
  fx.push();
});
t.after(async () => {
  if (!enabled) return;
  await sshd.close();
  fx.dispose();
});
t.before.each(() => { workdir = mkdtempSync(path.join(tmpdir(), 'poseidon-ssh-')); });
t.after.each(() => rmSync(workdir, { recursive: true, force: true }));

const url = () => `ssh://${sshd.user}@127.0.0.1:${sshd.port}${fx.remote}`;
const source = (credentials: ConstructorParameters<typeof GitSource>[0]['credentials']) =>
  new GitSource({ url: url(), branch: 'main', path: '', workdir, env: TEST_GIT_ENV, timeoutMs: 15_000, credentials });
const it = (name: string, fn: () => Promise<void>) => t(name, async () => { if (enabled) await fn(); });

async function failure(p: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await p;
  } catch (err) {
    return err as Error & { code?: string };
  }
  throw new Error('expected a failure');
}

it('a deploy key with pinned host keys fetches; the key lives in a 0600 file and nowhere else', async () => {
  const snap = await source({ sshKey: sshd.clientKey, knownHosts: sshd.knownHosts }).fetch();
  assert.is(snap.revision, fx.head());
  const keyFile = path.join(workdir, 'ssh', 'deploy-key');
  assert.is(statSync(keyFile).mode & 0o777, 0o600);
  assert.not.ok(readFileSync(path.join(workdir, 'mirror.git', 'config'), 'utf8').includes('PRIVATE KEY'));
});

it('without known hosts the first host key is trusted and pinned', async () => {
  await source({ sshKey: sshd.clientKey }).fetch();
  const pinned = path.join(workdir, 'ssh', 'known_hosts');
  assert.ok(existsSync(pinned));
  assert.match(readFileSync(pinned, 'utf8'), /ssh-ed25519/);
});

it('a key the server refuses is E_GIT_UNREACHABLE, without the key in the message', async () => {
  const key = sshd.otherKey();
  const err = await failure(source({ sshKey: key, knownHosts: sshd.knownHosts }).fetch());
  assert.ok(isPoseidonError(err, 'E_GIT_UNREACHABLE'), err.message);
  assert.match(err.message, /Permission denied|Could not read from remote/);
  assert.not.ok(err.message.includes(key.split('\n')[1]!));
});

it('a host key that does not match the pinned one is refused', async () => {
  const err = await failure(source({ sshKey: sshd.clientKey, knownHosts: `[127.0.0.1]:${sshd.port} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n` }).fetch());
  assert.ok(isPoseidonError(err, 'E_GIT_UNREACHABLE'), err.message);
  assert.match(err.message, /Host key verification failed|REMOTE HOST IDENTIFICATION|host key/i);
});

t.run();
