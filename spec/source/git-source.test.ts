/**
 * The git source against real repositories: a bare remote and a working clone that pushes.
 */
import { existsSync, lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { isPoseidonError } from '../../src/core/errors.ts';
import { classify, GitSource, normalizeSubPath } from '../../src/source/git-source.ts';
import { challengeYaml, gitFixture, TEST_GIT_ENV, type GitFixture } from './git-fixture.ts';
import { startGitHttpServer } from './git-http-server.ts';

const t = suite('source: git');
let fx: GitFixture;
let workdir: string;

t.before.each(() => {
  fx = gitFixture();
  workdir = mkdtempSync(path.join(tmpdir(), 'poseidon-gitsrc-'));
});
t.after.each(() => {
  fx.dispose();
  rmSync(workdir, { recursive: true, force: true });
});

const source = (over: Partial<ConstructorParameters<typeof GitSource>[0]> = {}) =>
  new GitSource({ url: fx.remote, branch: 'main', path: '', workdir, env: TEST_GIT_ENV, timeoutMs: 20_000, ...over });

async function rejects(p: Promise<unknown>, code: string): Promise<Error> {
  try {
    await p;
  } catch (err) {
    assert.ok(isPoseidonError(err, code), `expected ${code}, got ${(err as { code?: string }).code}: ${(err as Error).message}`);
    return err as Error;
  }
  throw new Error(`expected ${code}, resolved`);
}

t('first fetch clones and checks out the branch head into its own snapshot', async () => {
  fx.write('web/challenge.yaml', challengeYaml('web'));
  fx.write('web/run.sh', '#!/bin/sh\necho hi\n', 0o755);
  fx.symlink('web/link', 'run.sh');
  const sha = fx.push();
  const snap = await source().fetch();
  assert.is(snap.revision, sha);
  assert.is(snap.path, '.');
  assert.is(readFileSync(path.join(snap.root, 'web/challenge.yaml'), 'utf8'), challengeYaml('web'));
  assert.ok(statSync(path.join(snap.root, 'web/run.sh')).mode & 0o100, 'executable bit kept');
  assert.ok(lstatSync(path.join(snap.root, 'web/link')).isSymbolicLink(), 'symlinks stay links');
  assert.is(readlinkSync(path.join(snap.root, 'web/link')), 'run.sh');
  assert.ok(existsSync(path.join(workdir, 'mirror.git', 'HEAD')), 'one clone Poseidon owns');
});

t('a push gives a new revision in a new snapshot; the old snapshot is left untouched', async () => {
  fx.write('web/challenge.yaml', challengeYaml('web'));
  const first = fx.push();
  const src = source();
  const a = await src.fetch();
  assert.is((await src.fetch({ since: first })).revision, first, 'no change, same revision');
  fx.write('web/challenge.yaml', challengeYaml('web', { name: 'Renamed' }));
  const second = fx.push();
  const b = await src.fetch({ since: first });
  assert.is(b.revision, second);
  assert.is.not(a.root, b.root);
  assert.match(readFileSync(path.join(a.root, 'web/challenge.yaml'), 'utf8'), /Challenge web/);
  assert.match(readFileSync(path.join(b.root, 'web/challenge.yaml'), 'utf8'), /Renamed/);
  await src.retain([second]);
  assert.not.ok(existsSync(a.root), 'retain frees older snapshots');
  assert.ok(existsSync(b.root));
});

t('a sub-directory is the challenges path; a missing one is E_GIT_PATH_MISSING', async () => {
  fx.write('ctf/challenges/web/challenge.yaml', challengeYaml('web'));
  fx.write('README.md', 'not a challenge');
  fx.push();
  const snap = await source({ path: '/ctf/challenges/' }).fetch();
  assert.is(snap.path, 'ctf/challenges');
  assert.ok(existsSync(path.join(snap.root, snap.path, 'web/challenge.yaml')));
  const err = await rejects(source({ path: 'nope' }).fetch(), 'E_GIT_PATH_MISSING');
  assert.match(err.message, /"nope"/);
  assert.throws(() => normalizeSubPath('../etc'), /inside the repository/);
});

t('an unreachable remote is E_GIT_UNREACHABLE, with credentials in the URL redacted', async () => {
  const err = await rejects(source({ url: 'https://robot:s3cr3t-t0ken@127.0.0.1:1/nope.git', timeoutMs: 10_000 }).fetch(), 'E_GIT_UNREACHABLE');
  assert.not.match(err.message, /s3cr3t-t0ken/);
  assert.match(err.message, /https:\/\/\*\*\*@127\.0\.0\.1:1/);
  const missing = await rejects(source({ url: path.join(fx.base, 'missing.git') }).fetch(), 'E_GIT_UNREACHABLE');
  assert.match(missing.message, /missing\.git/);
});

t('a deleted branch is E_GIT_BRANCH_MISSING', async () => {
  fx.write('web/challenge.yaml', challengeYaml('web'));
  fx.push();
  const src = source();
  await src.fetch();
  fx.git('--git-dir', fx.remote, 'config', 'receive.denyDeleteCurrent', 'ignore');
  fx.git('push', '-q', 'origin', 'HEAD:other');
  fx.git('push', '-q', 'origin', '--delete', 'main');
  await rejects(src.fetch(), 'E_GIT_BRANCH_MISSING');
});

t('a force-push is E_GIT_REWRITE against the served revision until accepted', async () => {
  fx.write('a/challenge.yaml', challengeYaml('a'));
  fx.push();
  fx.write('b/challenge.yaml', challengeYaml('b'));
  const served = fx.push();
  const src = source();
  await src.fetch();
  fx.git('reset', '-q', '--hard', 'HEAD~1');
  fx.write('c/challenge.yaml', challengeYaml('c'));
  const rewritten = fx.push('rewrite');
  const err = await rejects(src.fetch({ since: served }), 'E_GIT_REWRITE');
  assert.match(err.message, new RegExp(served.slice(0, 12)));
  const ok = await src.fetch({ since: served, allowRewrite: true });
  assert.is(ok.revision, rewritten);
  assert.ok(existsSync(path.join(ok.root, 'c/challenge.yaml')));
});

t('a corrupt working copy is E_GIT_CORRUPT, wiped, and the next fetch clones again', async () => {
  fx.write('web/challenge.yaml', challengeYaml('web'));
  const sha = fx.push();
  const src = source();
  await src.fetch();
  rmSync(path.join(workdir, 'snapshots'), { recursive: true, force: true });
  writeFileSync(path.join(workdir, 'mirror.git', 'HEAD'), 'garbage\n');
  await rejects(src.fetch(), 'E_GIT_CORRUPT');
  assert.not.ok(existsSync(path.join(workdir, 'mirror.git')), 'wiped');
  assert.is((await src.fetch()).revision, sha);
  // A lock left behind by a fetch that was killed half-way.
  fx.write('web/challenge.yaml', challengeYaml('web', { name: 'Next' }));
  const next = fx.push();
  writeFileSync(path.join(workdir, 'mirror.git', 'refs', 'remotes', 'origin', 'main.lock'), '');
  const locked = await rejects(src.fetch(), 'E_GIT_CORRUPT');
  assert.match(locked.message, /lock/);
  assert.is((await src.fetch()).revision, next);
});

t('an HTTPS token travels only in a header: not in the clone config, errors or status', async () => {
  fx.write('web/challenge.yaml', challengeYaml('web'));
  const sha = fx.push();
  const token = 'tok-9f8e7d6c5b4a39281706';
  const server = await startGitHttpServer(fx.base, 'x-access-token', token);
  try {
    const src = source({ url: `${server.url}/remote.git`, credentials: { token } });
    assert.is((await src.fetch()).revision, sha);
    assert.ok(server.seen.length > 0, 'the server saw credentials');
    const config = readFileSync(path.join(workdir, 'mirror.git', 'config'), 'utf8');
    assert.not.ok(config.includes(token));
    // Credentials written into the URL are moved out of it as well.
    rmSync(workdir, { recursive: true, force: true });
    const inUrl = source({ url: `${server.url.replace('http://', `http://x-access-token:${token}@`)}/remote.git` });
    assert.is((await inUrl.fetch()).revision, sha);
    assert.not.ok(JSON.stringify(inUrl.info).includes(token));
    assert.not.ok(readFileSync(path.join(workdir, 'mirror.git', 'config'), 'utf8').includes(token));
    const wrong = 'wrong-token-0123456789';
    const err = await rejects(source({ url: `${server.url}/remote.git`, credentials: { token: wrong } }).fetch(), 'E_GIT_UNREACHABLE');
    assert.not.ok(err.message.includes(wrong));
  } finally {
    await server.close();
  }
});

t('failures are classified by where they happen and what git said', () => {
  assert.is(classify("fatal: couldn't find remote ref refs/heads/main", 'remote'), 'E_GIT_BRANCH_MISSING');
  assert.is(classify('fatal: unable to access \'https://h/\': Could not resolve host: h', 'remote'), 'E_GIT_UNREACHABLE');
  assert.is(classify('fatal: not a git repository', 'remote'), 'E_GIT_CORRUPT');
  assert.is(classify('fatal: something odd', 'local'), 'E_GIT_CORRUPT');
  assert.is(classify('fatal: something odd', 'remote'), 'E_GIT_UNREACHABLE');
});

t.run();
