import { test } from 'uvu';
import * as assert from 'uvu/assert';
import path from 'node:path';
import type { ChallengeSpec } from '../../src/core/challenge.ts';
import { loadChallengeDir, loadChallengeFile } from '../../src/challenge/load.ts';
import { VALID } from './fixtures.ts';

const MiB = 1024 * 1024;

const DEFAULTS = {
  resources: { cpu: 0.5, memoryBytes: 128 * MiB, pids: 128 },
  ttl: { defaultSeconds: 1800, maxSeconds: 7200, renewals: 3 },
  env: {},
  flag: { env: 'FLAG', format: 'flag{%s}' },
  scope: 'team',
  runtime: 'runc',
  network: { egress: false },
  filesystem: { readOnly: true, tmpfsBytes: 16 * MiB },
} as const;

const cases: Array<{ file: string; spec: ChallengeSpec }> = [
  {
    file: 'web-hello/challenge.yaml',
    spec: {
      id: 'web-hello',
      name: 'Hello web',
      image: 'busybox:1.35',
      expose: [{ name: 'web', port: 8080, protocol: 'http' }],
      ...DEFAULTS,
      source: path.join(VALID, 'web-hello/challenge.yaml'),
    },
  },
  {
    file: 'full/challenge.yaml',
    spec: {
      id: 'full-house',
      name: 'Every field set',
      build: { context: path.join(VALID, 'full'), dockerfile: 'docker/Dockerfile.prod' },
      command: ['httpd', '-f', '-p', '8080'],
      expose: [
        { name: 'web', port: 8080, protocol: 'http' },
        { name: 'admin', port: 9000, protocol: 'tcp' },
      ],
      resources: { cpu: 1.5, memoryBytes: 1024 * MiB, pids: 256 },
      ttl: { defaultSeconds: 900, maxSeconds: 3 * 3600, renewals: 0 },
      env: { MODE: 'production', PORT: '8080', EMPTY: '' },
      flag: { env: 'SECRET_FLAG', format: 'CTF{%s}' },
      scope: 'user',
      runtime: 'gvisor',
      network: { egress: true },
      filesystem: { readOnly: false, tmpfsBytes: 8 * MiB },
      healthcheck: { kind: 'http', port: 'web', path: '/health', timeoutSeconds: 120 },
      source: path.join(VALID, 'full/challenge.yaml'),
    },
  },
  {
    file: 'pwn-build/challenge.yml',
    spec: {
      id: 'pwn-build',
      name: 'Build from a subdirectory',
      build: { context: path.join(VALID, 'pwn-build/src'), dockerfile: 'Dockerfile' },
      expose: [{ name: 'pwn', port: 1337, protocol: 'tcp' }],
      ...DEFAULTS,
      flag: { file: '/home/ctf/flag.txt', format: 'flag{%s}' },
      healthcheck: { kind: 'command', command: ['sh', '-c', 'nc -z 127.0.0.1 1337'], timeoutSeconds: 30 },
      source: path.join(VALID, 'pwn-build/challenge.yml'),
    },
  },
];

for (const c of cases) {
  test(`valid fixture ${c.file} gives the exact defaulted spec`, async () => {
    const result = await loadChallengeFile(path.join(VALID, c.file), { root: VALID });
    if (!result.ok) assert.unreachable(JSON.stringify(result.issues));
    else assert.equal(result.spec, c.spec);
  });
}

test('loadChallengeDir finds every valid fixture, sorted, .yml included', async () => {
  const results = await loadChallengeDir(VALID);
  assert.equal(results.map((r) => [r.ok, r.file]), cases.map((c) => [true, path.join(VALID, c.file)]).sort());
});

test('specs are frozen so the catalog cannot be edited in place', async () => {
  const result = await loadChallengeFile(path.join(VALID, 'full/challenge.yaml'), { root: VALID });
  assert.ok(result.ok);
  if (!result.ok) return;
  assert.ok(Object.isFrozen(result.spec));
  assert.ok(Object.isFrozen(result.spec.expose[0]));
  assert.throws(() => {
    (result.spec.env as Record<string, string>).X = 'y';
  });
});

test('relative paths are kept as given in results and resolved against cwd', async () => {
  const cwd = path.dirname(VALID);
  const result = await loadChallengeFile('valid/web-hello/challenge.yaml', { root: 'valid', cwd });
  assert.is(result.file, 'valid/web-hello/challenge.yaml');
  assert.ok(result.ok);
  if (result.ok) assert.is(result.spec.source, path.join(VALID, 'web-hello/challenge.yaml'));
});

test.run();
