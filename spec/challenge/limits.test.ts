import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdir, symlink, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { loadChallengeFile, MAX_ISSUES_PER_FILE } from '../../src/challenge/load.ts';
import { MAX_FILE_BYTES } from '../../src/challenge/parse.ts';
import { minimalYaml, withTempDir } from './fixtures.ts';

/** Writes `text` as `<root>/c/challenge.yaml` and loads it. */
async function loadText(root: string, text: string | Buffer) {
  await mkdir(path.join(root, 'c'), { recursive: true });
  const file = path.join(root, 'c', 'challenge.yaml');
  await writeFile(file, text);
  return loadChallengeFile(file, { root });
}

function messages(result: Awaited<ReturnType<typeof loadText>>): string[] {
  return result.ok ? [] : result.issues.map((i) => `${i.line}:${i.column} ${i.path}: ${i.message}`);
}

test('a file of exactly the size limit is read; one byte more is rejected before parsing', () =>
  withTempDir(async (root) => {
    const base = minimalYaml('sized');
    const padded = (n: number) => base + '#'.repeat(n - base.length - 1) + '\n';
    assert.ok((await loadText(root, padded(MAX_FILE_BYTES))).ok);
    assert.equal(messages(await loadText(root, padded(MAX_FILE_BYTES + 1))), [
      `0:0 : file is ${MAX_FILE_BYTES + 1} bytes; the limit is ${MAX_FILE_BYTES} bytes (256 KiB)`,
    ]);
  }));

test('a huge (sparse) file is rejected from its size alone', () =>
  withTempDir(async (root) => {
    await loadText(root, '');
    await truncate(path.join(root, 'c', 'challenge.yaml'), 8 * 1024 ** 3);
    const result = await loadChallengeFile(path.join(root, 'c', 'challenge.yaml'), { root });
    assert.equal(messages(result), [`0:0 : file is ${8 * 1024 ** 3} bytes; the limit is ${MAX_FILE_BYTES} bytes (256 KiB)`]);
  }));

test('aliases within budget are fine; a billion-laughs document is an issue, quickly', () =>
  withTempDir(async (root) => {
    const reuse = `${minimalYaml('alias-ok')}command: &c [sh, -c, "true"]\nhealthcheck: { type: command, command: *c }\n`;
    assert.ok((await loadText(root, reuse)).ok);
    const levels = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 12; i++) levels.push(`l${i}: &l${i} [${Array(10).fill(i === 1 ? '*a' : `*l${i - 1}`).join(', ')}]`);
    const started = Date.now();
    const result = await loadText(root, `${minimalYaml('bomb')}${levels.join('\n')}\n`);
    assert.equal(messages(result), ['1:1 : too many alias expansions (limit 50); write the values out']);
    assert.ok(Date.now() - started < 2000);
  }));

test('duplicate keys are reported at the repeated key, nested ones with their path', () =>
  withTempDir(async (root) => {
    const text = `${minimalYaml('dups')}resources:\n  cpu: 1\n  cpu: 2\nid: again\n`;
    assert.equal(messages(await loadText(root, text)), ['7:3 resources.cpu: duplicate key "cpu"', '8:1 id: duplicate key "id"']);
  }));

test('keys that collide once converted to JS (1 and "1") count as duplicates', () =>
  withTempDir(async (root) => {
    const text = `${minimalYaml('dups')}env:\n  A1: x\n  "A1": y\n`;
    assert.equal(messages(await loadText(root, text)), ['7:3 env.A1: duplicate key "A1"']);
  }));

test('hostile shapes never crash: __proto__, collection keys, deep nesting, tabs, unresolved alias', () =>
  withTempDir(async (root) => {
    const cases: Array<[string, RegExp]> = [
      [`${minimalYaml('proto')}__proto__: { polluted: true }\n`, /^5:1 __proto__: unknown key "__proto__"$/],
      [`${minimalYaml('mapkey')}? { a: 1 }\n: x\n`, /unknown key "\{ a: 1 \}"/],
      [`id: deep\nname: ${'['.repeat(50000)}${']'.repeat(50000)}\n`, /YAML syntax error|nested too deeply|must be a string/],
      ['id: tabs\nresources:\n\tcpu: 1\n', /^3:1 : YAML syntax error: Tabs are not allowed as indentation/],
      [`${minimalYaml('alias')}command: *missing\n`, /Unresolved alias/],
    ];
    for (const [text, pattern] of cases) {
      const result = await loadText(root, text);
      assert.not.ok(result.ok);
      assert.ok(messages(result).some((m) => pattern.test(m)), `${messages(result).join('\n')} !~ ${String(pattern)}`);
      assert.equal({}.constructor.prototype.polluted, undefined);
    }
  }));

test('a file with thousands of problems yields a bounded list, in bounded time', () =>
  withTempDir(async (root) => {
    let text = minimalYaml('many');
    for (let i = 0; text.length < MAX_FILE_BYTES - 100; i++) text += `unknown${i}: 1\n`;
    const started = Date.now();
    const result = await loadText(root, text);
    assert.ok(Date.now() - started < 5000);
    if (result.ok) return assert.unreachable();
    assert.is(result.issues.length, MAX_ISSUES_PER_FILE + 1);
    assert.match(result.issues.at(-1)?.message ?? '', /^\d+ more issues not shown$/);
  }));

test('long strings against the image pattern do not backtrack', () =>
  withTempDir(async (root) => {
    const started = Date.now();
    const image = `${'a-'.repeat(100000)}!`;
    const result = await loadText(root, `id: long\nname: long\nimage: "${image}"\nexpose: [{ name: web, port: 80 }]\n`);
    assert.not.ok(result.ok);
    assert.ok(Date.now() - started < 2000);
  }));

test('invalid UTF-8 and a BOM', () =>
  withTempDir(async (root) => {
    const bad = Buffer.concat([Buffer.from('id: x\nname: "'), Buffer.from([0xc3, 0x28]), Buffer.from('"\n')]);
    assert.equal(messages(await loadText(root, bad)), ['0:0 : file is not valid UTF-8 text']);
    const bom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(minimalYaml('bom'))]);
    assert.ok((await loadText(root, bom)).ok);
  }));

test('a challenge file that is a FIFO, a directory or missing is an issue, not a hang', () =>
  withTempDir(async (root) => {
    await mkdir(path.join(root, 'fifo'));
    execFileSync('mkfifo', [path.join(root, 'fifo', 'challenge.yaml')]);
    await mkdir(path.join(root, 'dir', 'challenge.yaml'), { recursive: true });
    const fifo = await loadChallengeFile(path.join(root, 'fifo', 'challenge.yaml'), { root });
    const dir = await loadChallengeFile(path.join(root, 'dir', 'challenge.yaml'), { root });
    const missing = await loadChallengeFile(path.join(root, 'nope', 'challenge.yaml'), { root });
    assert.equal(messages(fifo), ['0:0 : not a regular file']);
    assert.equal(messages(dir), ['0:0 : not a regular file']);
    assert.equal(messages(missing), ['0:0 : cannot read file: ENOENT']);
  }));

test('a challenge file whose real path is outside the root is not read', () =>
  withTempDir(async (tmp) => {
    const root = path.join(tmp, 'challenges');
    await mkdir(path.join(root, 'c'), { recursive: true });
    await writeFile(path.join(tmp, 'secret.yaml'), minimalYaml('secret'));
    await symlink(path.join(tmp, 'secret.yaml'), path.join(root, 'c', 'challenge.yaml'));
    const result = await loadChallengeFile(path.join(root, 'c', 'challenge.yaml'), { root });
    assert.equal(messages(result), [`0:0 : resolves to ${path.join(tmp, 'secret.yaml')}, outside the challenges directory ${root}`]);
  }));

test.run();
