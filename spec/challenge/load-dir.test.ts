import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { LoadResult } from '../../src/core/challenge.ts';
import { isPoseidonError } from '../../src/core/errors.ts';
import { formatIssue } from '../../src/challenge/issue.ts';
import { loadChallengeDir } from '../../src/challenge/load.ts';
import { minimalYaml, withTempDir } from './fixtures.ts';

/** Creates files under `root` from a `{ 'a/challenge.yaml': text }` map. */
async function layout(root: string, files: Record<string, string>): Promise<void> {
  for (const [name, text] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(root, name)), { recursive: true });
    await writeFile(path.join(root, name), text);
  }
}

function summary(results: LoadResult[]): string[] {
  return results.map((r) => (r.ok ? `ok ${r.spec.id} ${r.file}` : r.issues.map(formatIssue).join('\n')));
}

test('one broken file never hides the others; results are sorted by directory', () =>
  withTempDir(async (root) => {
    await layout(root, {
      'c-last/challenge.yaml': minimalYaml('c-last'),
      'a-first/challenge.yaml': minimalYaml('a-first'),
      'b-broken/challenge.yaml': 'id: b-broken\nname: [unclosed\n',
      'd-yml/challenge.yml': minimalYaml('d-yml'),
      'e-empty-dir/README.md': 'no challenge here',
      '.hidden/challenge.yaml': minimalYaml('hidden'),
      'loose.yaml': minimalYaml('loose'),
    });
    const results = await loadChallengeDir(root);
    assert.equal(results.map((r) => [r.ok, path.relative(root, r.file)]), [
      [true, 'a-first/challenge.yaml'],
      [false, 'b-broken/challenge.yaml'],
      [true, 'c-last/challenge.yaml'],
      [true, 'd-yml/challenge.yml'],
    ]);
  }));

test('every file sharing an id gets an issue at its id, naming the others', () =>
  withTempDir(async (root) => {
    await layout(root, {
      'one/challenge.yaml': minimalYaml('same'),
      'two/challenge.yaml': `# copy\n${minimalYaml('same')}`,
      'three/challenge.yaml': `${minimalYaml('same')}resources: { memory: 1x }\n`,
      'other/challenge.yaml': minimalYaml('other'),
    });
    const results = await loadChallengeDir('.', { cwd: root });
    assert.equal(summary(results), [
      'one/challenge.yaml:1:1 id: duplicate id "same" (also in three/challenge.yaml, two/challenge.yaml)',
      'ok other other/challenge.yaml',
      [
        'three/challenge.yaml:1:1 id: duplicate id "same" (also in one/challenge.yaml, two/challenge.yaml)',
        'three/challenge.yaml:5:14 resources.memory: must match ^[0-9]+(k|m|g)$',
      ].join('\n'),
      'two/challenge.yaml:2:1 id: duplicate id "same" (also in one/challenge.yaml, three/challenge.yaml)',
    ]);
  }));

test('a build context escaping the root through ".." is an issue naming the path', () =>
  withTempDir(async (tmp) => {
    const root = path.join(tmp, 'challenges');
    await layout(tmp, {
      'outside/Dockerfile': 'FROM scratch\n',
      'challenges/esc/challenge.yaml': 'id: esc\nname: esc\nbuild: ../../outside\nexpose: [{ name: web, port: 80 }]\n',
      'challenges/shared/Dockerfile': 'FROM scratch\n',
      'challenges/uses-shared/challenge.yaml': 'id: uses-shared\nname: x\nbuild: { context: ../shared }\nexpose: [{ name: web, port: 80 }]\n',
    });
    assert.equal(summary(await loadChallengeDir(root)), [
      `${root}/esc/challenge.yaml:3:1 build: build context "../../outside" resolves to ${tmp}/outside, outside the challenges directory ${root}`,
      `ok uses-shared ${root}/uses-shared/challenge.yaml`,
    ]);
  }));

test('a build context or Dockerfile escaping the root through a symlink is an issue', () =>
  withTempDir(async (tmp) => {
    const root = path.join(tmp, 'challenges');
    await layout(tmp, {
      'outside/Dockerfile': 'FROM scratch\n',
      'challenges/link/challenge.yaml': 'id: link\nname: x\nbuild: ctx\nexpose: [{ name: web, port: 80 }]\n',
      'challenges/df/challenge.yaml': 'id: df\nname: x\nbuild: { context: ., dockerfile: Dockerfile }\nexpose: [{ name: web, port: 80 }]\n',
    });
    await symlink(path.join(tmp, 'outside'), path.join(root, 'link', 'ctx'));
    await symlink(path.join(tmp, 'outside', 'Dockerfile'), path.join(root, 'df', 'Dockerfile'));
    assert.equal(summary(await loadChallengeDir(root)), [
      `${root}/df/challenge.yaml:3:22 build.dockerfile: dockerfile "Dockerfile" resolves to ${tmp}/outside/Dockerfile, outside the build context ${root}/df`,
      `${root}/link/challenge.yaml:3:1 build: build context "ctx" resolves to ${tmp}/outside, outside the challenges directory ${root}`,
    ]);
  }));

test('a build context that is missing or a file is an issue', () =>
  withTempDir(async (root) => {
    await layout(root, {
      'gone/challenge.yaml': 'id: gone\nname: x\nbuild: nope\nexpose: [{ name: web, port: 80 }]\n',
      'file/challenge.yaml': 'id: file\nname: x\nbuild: { context: Dockerfile }\nexpose: [{ name: web, port: 80 }]\n',
      'file/Dockerfile': 'FROM scratch\n',
    });
    assert.equal(summary(await loadChallengeDir(root)), [
      `${root}/file/challenge.yaml:3:10 build.context: build context "Dockerfile" (${root}/file/Dockerfile) is not a directory`,
      `${root}/gone/challenge.yaml:3:1 build: build context "nope" does not exist (${root}/gone/nope: ENOENT)`,
    ]);
  }));

test('challenge.yaml and challenge.yml side by side: the .yml is reported, the .yaml loads', () =>
  withTempDir(async (root) => {
    await layout(root, { 'x/challenge.yaml': minimalYaml('x'), 'x/challenge.yml': minimalYaml('x') });
    assert.equal(summary(await loadChallengeDir('.', { cwd: root })), [
      'ok x x/challenge.yaml',
      'x/challenge.yml: x/ also has a challenge.yaml; keep only one challenge file',
    ]);
  }));

test('an empty directory yields no results; a missing one throws E_SPEC_INVALID', () =>
  withTempDir(async (root) => {
    assert.equal(await loadChallengeDir(root), []);
    try {
      await loadChallengeDir(path.join(root, 'missing'));
      assert.unreachable('should throw');
    } catch (err) {
      assert.ok(isPoseidonError(err, 'E_SPEC_INVALID'), String(err));
      assert.match(String((err as Error).message), /challenges directory .*missing does not exist$/);
    }
  }));

test.run();
