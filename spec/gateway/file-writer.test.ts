import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, watch, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { isPoseidonError } from '../../src/core/errors.ts';
import { TraefikFileWriter } from '../../src/gateway/file-writer.ts';

const dirs: string[] = [];
function freshDir(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'poseidon-gw-'));
  dirs.push(d);
  return d;
}

test.after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const A = 'http:\n  routers: {}\n# a\n';
const B = 'http:\n  routers: {}\n# b\n';

test('writes once, creating a missing directory', async () => {
  const dir = path.join(freshDir(), 'nested', 'dynamic');
  const w = new TraefikFileWriter(dir);
  assert.is(await w.write(A), true);
  assert.is(readFileSync(path.join(dir, 'poseidon.yml'), 'utf8'), A);
  assert.equal(readdirSync(dir), ['poseidon.yml']);
});

test('skips unchanged content: returns false and leaves mtime alone', async () => {
  const dir = freshDir();
  const w = new TraefikFileWriter(dir, 'routes.yaml');
  const target = path.join(dir, 'routes.yaml');
  assert.is(await w.write(A), true);
  const before = statSync(target, { bigint: true });
  await sleep(20);
  assert.is(await w.write(A), false);
  const after = statSync(target, { bigint: true });
  assert.is(after.mtimeNs, before.mtimeNs);
  assert.is(after.ino, before.ino);
  assert.is(await w.write(B), true);
  assert.is(readFileSync(target, 'utf8'), B);
});

test('compares against the disk: a new writer skips identical content, rewrites edited content', async () => {
  const dir = freshDir();
  const target = path.join(dir, 'poseidon.yml');
  writeFileSync(target, A);
  const mtime = statSync(target).mtimeMs;
  assert.is(await new TraefikFileWriter(dir).write(A), false);
  assert.is(statSync(target).mtimeMs, mtime);

  const w = new TraefikFileWriter(dir);
  assert.is(await w.write(B), true);
  // Someone edits (or deletes) the file behind the writer's back: the cache must not hide it.
  writeFileSync(target, 'http: {}\n# hand edit, longer than B\n');
  assert.is(await w.write(B), true);
  assert.is(readFileSync(target, 'utf8'), B);
  rmSync(target);
  assert.is(await w.write(B), true);
  assert.is(readFileSync(target, 'utf8'), B);
});

test('rename leaves no temp files behind', async () => {
  const dir = freshDir();
  const w = new TraefikFileWriter(dir);
  for (let i = 0; i < 20; i++) await w.write(`${A}# ${i}\n`);
  assert.equal(readdirSync(dir), ['poseidon.yml']);
});

test('concurrent writes are serialised: the last call wins', async () => {
  const dir = freshDir();
  const w = new TraefikFileWriter(dir);
  const contents = Array.from({ length: 30 }, (_, i) => `${A}# ${i}\n`);
  const results = await Promise.all(contents.map((c) => w.write(c)));
  assert.ok(results.every((r) => r === true));
  assert.is(readFileSync(path.join(dir, 'poseidon.yml'), 'utf8'), contents.at(-1));
  assert.equal(readdirSync(dir), ['poseidon.yml']);
});

test('a watcher never sees a half-written file or another .yml name', async () => {
  const dir = freshDir();
  const w = new TraefikFileWriter(dir);
  const target = path.join(dir, 'poseidon.yml');
  // Large, distinct contents so a torn write would be visible to a concurrent reader.
  const contents = Array.from({ length: 40 }, (_, i) => `# ${i}\n${`x${i}: ${'y'.repeat(200)}\n`.repeat(2000)}`);
  const valid = new Set(contents);
  await w.write(contents[0]!);

  const seen = new Set<string>();
  const watcher = watch(dir, (_event, name) => {
    if (name) seen.add(name.toString());
  });
  let done = false;
  const torn: number[] = [];
  const reader = (async () => {
    while (!done) {
      for (const n of readdirSync(dir)) seen.add(n);
      const text = await readFile(target, 'utf8');
      if (!valid.has(text)) torn.push(text.length);
    }
  })();
  try {
    for (const c of contents.slice(1)) await w.write(c);
    await sleep(50); // let inotify deliver the last events
  } finally {
    done = true;
    await reader;
    watcher.close();
  }
  assert.equal(torn, [], 'reader saw content that was never written whole');
  const watched = [...seen].filter((n) => /\.(ya?ml|toml)$/.test(n));
  assert.equal(watched, ['poseidon.yml']);
  assert.ok([...seen].some((n) => n.endsWith('.tmp')), 'expected the watcher to see temp names');
  assert.equal(readdirSync(dir), ['poseidon.yml']);
});

test('refuses an empty string and writes nothing', async () => {
  const dir = freshDir();
  const w = new TraefikFileWriter(dir);
  try {
    await w.write('');
    assert.unreachable('empty content was written');
  } catch (err) {
    if (err instanceof assert.Assertion) throw err;
    assert.ok(isPoseidonError(err, 'E_INTERNAL'), String(err));
  }
  assert.equal(readdirSync(dir), []);
  // The writer still works afterwards.
  assert.is(await w.write(A), true);
});

test('rejects file names Traefik would not load or that escape the directory', () => {
  for (const name of ['poseidon.json', '../poseidon.yml', 'sub/poseidon.yml', '.hidden.yml', 'poseidon.yml.tmp']) {
    assert.throws(() => new TraefikFileWriter('/tmp', name), name);
  }
});

test('filesystem failures surface as a transient PoseidonError and leave no temp file', async () => {
  const dir = freshDir();
  // The target name is taken by a non-empty directory, so the final rename must fail.
  mkdirSync(path.join(dir, 'poseidon.yml', 'child'), { recursive: true });
  const w = new TraefikFileWriter(dir);
  try {
    await w.write(A);
    assert.unreachable('write over a directory succeeded');
  } catch (err) {
    if (err instanceof assert.Assertion) throw err;
    assert.ok(isPoseidonError(err, 'E_INTERNAL'), String(err));
    assert.is(err.kind, 'transient');
    assert.ok(err.cause instanceof Error);
  }
  assert.equal(readdirSync(dir), ['poseidon.yml']);
});

test.run();
