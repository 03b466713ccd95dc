/**
 * Flag files (issue 8, items 5 and 15): names only from valid instance ids, and a second write
 * (a restart) works for a process that is not root, although the file it replaces is 0444.
 */
import { spawnSync } from 'node:child_process';
import { chownSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { FlagFiles } from '../../src/worker/flag-files.ts';
import { CI, ROOT } from '../helpers/deps.ts';

const t = suite('controller: flag files');
const dir = mkdtempSync(path.join(tmpdir(), 'poseidon-flags-'));
const ID = 'a'.repeat(24);
t.after(() => rmSync(dir, { recursive: true, force: true }));

t('writes 0444 in a 0700 directory, replaces on a second write, removes', async () => {
  const files = new FlagFiles(dir);
  const p = await files.write(ID, 'flag{one}');
  assert.is(readFileSync(p, 'utf8'), 'flag{one}\n');
  assert.is(statSync(p).mode & 0o777, 0o444);
  assert.is(statSync(path.dirname(p)).mode & 0o777, 0o700);
  await files.write(ID, 'flag{two}');
  assert.is(readFileSync(p, 'utf8'), 'flag{two}\n');
  await files.remove(ID);
  assert.throws(() => statSync(p));
});

t('rewrite keeps the inode a running container mounted (a claimed pool member), writes only a change, stays 0444', async () => {
  const files = new FlagFiles(dir);
  const p = await files.write(ID, 'flag{pool}');
  const inode = statSync(p).ino;
  assert.is(await files.rewrite(ID, 'flag{team-a}'), true);
  assert.is(readFileSync(p, 'utf8'), 'flag{team-a}\n');
  assert.is(statSync(p).ino, inode, 'same inode: the bind mount sees the new flag');
  assert.is(statSync(p).mode & 0o777, 0o444);
  assert.is(await files.rewrite(ID, 'flag{team-a}'), false, 'nothing to write');
  await files.remove(ID);
  assert.is(await files.rewrite(ID, 'flag{fresh}'), true, 'a missing file is written anew');
  assert.is(readFileSync(p, 'utf8'), 'flag{fresh}\n');
  await files.remove(ID);
});

t('ids that are not instance ids never become paths (a hostile Docker label)', async () => {
  const victim = path.join(dir, 'victim');
  writeFileSync(victim, 'keep');
  const files = new FlagFiles(path.join(dir, 'data'));
  for (const id of ['../victim', '../../victim', '', 'A'.repeat(24), `${ID}/x`]) {
    let refused = false;
    try { await files.remove(id); } catch { refused = true; }
    assert.ok(refused, JSON.stringify(id));
  }
  assert.is(readFileSync(victim, 'utf8'), 'keep');
});

t('a second write works for a process that is not root (restart of a file-flag instance)', () => {
  if (process.getuid?.() !== 0) {
    if (CI) throw new Error('this test needs root to run its writer as another user');
    console.warn('\n  !! SKIPPED: not root, cannot switch to an unprivileged user\n');
    return;
  }
  const data = mkdtempSync(path.join(tmpdir(), 'poseidon-flags-nobody-'));
  chownSync(data, 65534, 65534);
  const script = `import { FlagFiles } from ${JSON.stringify(path.join(ROOT, 'src/worker/flag-files.ts'))};
const f = new FlagFiles(${JSON.stringify(data)});
await f.write('${ID}', 'flag{first}');
await f.write('${ID}', 'flag{second}');
process.stdout.write('ok');`;
  try {
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, uid: 65534, gid: 65534, encoding: 'utf8', timeout: 60_000, env: { PATH: process.env.PATH ?? '', HOME: '/tmp' } });
    assert.is(r.stdout, 'ok', r.stderr);
    assert.is(readFileSync(path.join(data, 'flags', ID), 'utf8'), 'flag{second}\n');
    assert.is(statSync(path.join(data, 'flags', ID)).uid, 65534);
  } finally {
    rmSync(data, { recursive: true, force: true });
  }
});

t.run();
