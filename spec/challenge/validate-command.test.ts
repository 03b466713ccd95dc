import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { runValidate } from '../../src/challenge/validate-command.ts';
import { FIXTURES, minimalYaml, withTempDir } from './fixtures.ts';

async function run(args: string[], cwd: string) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runValidate(args, { stdout: (s) => out.push(s), stderr: (s) => err.push(s), cwd });
  return { code, out, err };
}

async function challenges(root: string, files: Record<string, string>): Promise<void> {
  for (const [name, text] of Object.entries(files)) {
    await mkdir(path.join(root, 'challenges', name), { recursive: true });
    await writeFile(path.join(root, 'challenges', name, 'challenge.yaml'), text);
  }
}

test('all valid: lists each challenge, exit 0; dir defaults to ./challenges', () =>
  withTempDir(async (root) => {
    await challenges(root, { b: minimalYaml('bee'), a: minimalYaml('ay') });
    assert.equal(await run([], root), {
      code: 0,
      out: ['ok ay (challenges/a/challenge.yaml)', 'ok bee (challenges/b/challenge.yaml)', '2 challenges, 0 invalid'],
      err: [],
    });
  }));

test('one invalid: one line per issue, a summary, exit 1', () =>
  withTempDir(async (root) => {
    await challenges(root, {
      good: minimalYaml('good'),
      web: 'id: web\nname: Web\nimage: busybox:1.35\nexpose:\n  - { name: web, port: 8080 }\nresources:\n  memory: 64x\nfoo: 1\n',
    });
    assert.equal(await run(['challenges'], root), {
      code: 1,
      out: [
        'ok good (challenges/good/challenge.yaml)',
        'challenges/web/challenge.yaml:7:3 resources.memory: must match ^[0-9]+(k|m|g)$',
        'challenges/web/challenge.yaml:8:1 foo: unknown key "foo"',
        '2 challenges, 1 invalid',
      ],
      err: [],
    });
  }));

test('--json prints the documented shape', () =>
  withTempDir(async (root) => {
    await challenges(root, { good: minimalYaml('good'), bad: 'id: bad\nname: x\n' });
    const { code, out, err } = await run(['--json', './challenges'], root);
    assert.is(code, 1);
    assert.equal(err, []);
    assert.is(out.length, 1);
    assert.equal(JSON.parse(out[0] ?? ''), {
      ok: false,
      challenges: [
        {
          file: 'challenges/bad/challenge.yaml',
          id: 'bad',
          valid: false,
          issues: [
            { file: 'challenges/bad/challenge.yaml', line: 1, column: 1, path: '', message: 'one of "image" or "build" is required' },
            { file: 'challenges/bad/challenge.yaml', line: 1, column: 1, path: 'expose', message: 'required key "expose" is missing' },
          ],
        },
        { file: 'challenges/good/challenge.yaml', id: 'good', valid: true, issues: [] },
      ],
    });
  }));

test('--json with every challenge valid is ok: true, exit 0', () =>
  withTempDir(async (root) => {
    await challenges(root, { good: minimalYaml('good') });
    const { code, out } = await run(['challenges', '--json'], root);
    assert.is(code, 0);
    assert.is((JSON.parse(out[0] ?? '') as { ok: boolean }).ok, true);
  }));

test('no challenge found is exit 1', () =>
  withTempDir(async (root) => {
    await mkdir(path.join(root, 'challenges'));
    const { code, out } = await run([], root);
    assert.is(code, 1);
    assert.equal(out, ['0 challenges found in ./challenges (expected ./challenges/<name>/challenge.yaml)']);
  }));

test('a missing directory is exit 1 with a clear message', () =>
  withTempDir(async (root) => {
    const { code, out, err } = await run(['nope'], root);
    assert.equal([code, out], [1, []]);
    assert.equal(err, ['poseidon validate: challenges directory nope does not exist']);
    const json = await run(['nope', '--json'], root);
    assert.is(json.code, 1);
    assert.equal(JSON.parse(json.out[0] ?? ''), { ok: false, error: 'challenges directory nope does not exist', challenges: [] });
  }));

test('unknown flags and extra arguments are exit 2 with usage; --help is exit 0', async () => {
  for (const args of [['--nope'], ['-x'], ['a', 'b'], ['--json=1']]) {
    const { code, out, err } = await run(args, FIXTURES);
    assert.is(code, 2, args.join(' '));
    assert.equal(out, []);
    assert.match(err.join('\n'), /usage: poseidon validate \[dir\] \[--json\]/);
  }
  const help = await run(['--help'], FIXTURES);
  assert.is(help.code, 0);
  assert.match(help.out.join('\n'), /^usage: poseidon validate/);
});

test('the fixture tree: valid/ passes, invalid/ holds no challenge directories', async () => {
  assert.is((await run(['valid'], FIXTURES)).code, 0);
  assert.is((await run(['invalid'], FIXTURES)).code, 1);
});

test.run();
