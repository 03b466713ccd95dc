/** The `lease` option of an exposed port: TCP only, normalised to `lease: true` or absent. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadChallengeFile } from '../../src/challenge/load.ts';

const root = mkdtempSync(path.join(tmpdir(), 'poseidon-lease-spec-'));
test.after(() => rmSync(root, { recursive: true, force: true }));

async function load(name: string, expose: string) {
  mkdirSync(path.join(root, name), { recursive: true });
  const file = path.join(root, name, 'challenge.yaml');
  writeFileSync(file, `id: ${name}\nname: ${name}\nimage: busybox:1.35\nexpose:\n${expose}\n`);
  return loadChallengeFile(file, { root });
}

test('a leased tcp port loads as lease: true; unleased ports carry no key at all', async () => {
  const r = await load('ssh', '  - { name: ssh, port: 22, protocol: tcp, lease: true }\n  - { name: pwn, port: 9000, protocol: tcp, lease: false }\n  - { name: web, port: 80 }');
  assert.ok(r.ok, JSON.stringify(r));
  if (!r.ok) return;
  assert.equal(r.spec.expose, [
    { name: 'ssh', port: 22, protocol: 'tcp', lease: true },
    { name: 'pwn', port: 9000, protocol: 'tcp' },
    { name: 'web', port: 80, protocol: 'http' },
  ]);
  assert.not.ok('lease' in (r.spec.expose[1] as object), 'existing specs keep their shape (and hash)');
});

test('lease on an http port, or a non-boolean lease, is refused with file:line:col', async () => {
  const http = await load('bad-http', '  - { name: web, port: 80, lease: true }');
  assert.not.ok(http.ok);
  if (!http.ok) {
    assert.equal(http.issues.map((i) => [i.path, i.message]), [['expose.0.lease', 'only a tcp port can be leased (set protocol: tcp)']]);
    assert.ok(http.issues[0]!.line >= 5);
  }
  const type = await load('bad-type', '  - { name: ssh, port: 22, protocol: tcp, lease: "yes" }');
  assert.not.ok(type.ok);
  if (!type.ok) assert.is(type.issues[0]!.path, 'expose.0.lease');
});

test.run();
