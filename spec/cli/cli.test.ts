import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT } from '../helpers/deps.ts';

const run = (...args: string[]) => spawnSync(process.execPath, [path.join(ROOT, 'bin/poseidon.js'), ...args], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });

test('poseidon validate passes the shipped examples', () => {
  const r = run('validate', 'challenges');
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /3 challenges, 0 invalid/);
});

test('poseidon validate reports every broken file as file:line:col and exits 1', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'poseidon-cli-'));
  const files: Record<string, string> = {
    good: 'id: good\nname: Good\nimage: busybox:1.35\nexpose: [{ name: web, port: 80 }]\n',
    memory: 'id: memory\nname: M\nimage: busybox:1.35\nexpose: [{ name: web, port: 80 }]\nresources:\n  memory: lots\n',
    unknown: 'id: unknown\nname: U\nimage: busybox:1.35\nexpose: [{ name: web, port: 80 }]\nprivileged: true\n',
    syntax: 'id: syntax\nname: [unclosed\n',
  };
  try {
    for (const [name, text] of Object.entries(files)) {
      mkdirSync(path.join(dir, name));
      writeFileSync(path.join(dir, name, 'challenge.yaml'), text);
    }
    const r = spawnSync(process.execPath, [path.join(ROOT, 'bin/poseidon.js'), 'validate', '.'], { cwd: dir, encoding: 'utf8', timeout: 30_000 });
    assert.is(r.status, 1);
    const out = r.stdout + r.stderr;
    assert.match(out, /^memory\/challenge\.yaml:6:3 resources\.memory: .*\^\[0-9\]\+\(k\|m\|g\)\$/m);
    assert.match(out, /^unknown\/challenge\.yaml:5:1 .*privileged/m);
    assert.match(out, /^syntax\/challenge\.yaml:\d+:\d+ /m);
    assert.match(out, /ok good/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('poseidon validate --json is machine-readable', () => {
  const r = run('validate', 'challenges', '--json');
  const doc = JSON.parse(r.stdout);
  assert.is(doc.ok, true);
  assert.equal(doc.challenges.map((c: { id: string }) => c.id), ['pwn-echo', 'two-ports', 'web-hello']);
});

test('unknown commands and options exit 2 with usage', () => {
  const r = run('frobnicate');
  assert.is(r.status, 2);
  assert.match(r.stderr, /usage: poseidon/);
});

test.run();
