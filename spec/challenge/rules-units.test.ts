import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Ajv } from 'ajv';
import type { SpecIssue } from '../../src/core/challenge.ts';
import { formatIssue } from '../../src/challenge/issue.ts';
import { checkRules } from '../../src/challenge/rules.ts';
import { challengeSchema, checkShape } from '../../src/challenge/schema.ts';
import { durationSeconds, formatDuration, formatSize, sizeBytes } from '../../src/challenge/units.ts';

test('durationSeconds', () => {
  const cases: Array<[unknown, number | undefined]> = [
    [0, 0], [90, 90], ['45s', 45], ['30m', 1800], ['2h', 7200], ['007m', 420],
    ['1h30m', undefined], ['1.5h', undefined], ['10', undefined], ['-5s', undefined], [-5, undefined], [1.5, undefined],
    ['2H', undefined], [' 2h', undefined], [null, undefined], [true, undefined],
  ];
  for (const [input, want] of cases) assert.is(durationSeconds(input), want, JSON.stringify(input));
});

test('sizeBytes', () => {
  const cases: Array<[unknown, number | undefined]> = [
    ['1k', 1024], ['64m', 64 * 1024 ** 2], ['2g', 2 * 1024 ** 3], ['0m', 0],
    ['64M', undefined], ['64mb', undefined], ['64', undefined], [64, undefined], ['1.5g', undefined],
  ];
  for (const [input, want] of cases) assert.is(sizeBytes(input), want, JSON.stringify(input));
});

test('formatDuration and formatSize give the shortest exact form', () => {
  assert.equal([7200, 5400, 45, 0, 604800].map(formatDuration), ['2h', '90m', '45s', '0s', '168h']);
  assert.equal([64 * 1024 ** 3, 16 * 1024 ** 2, 512 * 1024, 1000].map(formatSize), ['64g', '16m', '512k', '1000 bytes']);
});

const base = { id: 'x', name: 'x', image: 'busybox', expose: [{ name: 'web', port: 80 }] };

test('rules, table-driven', () => {
  const cases: Array<[string, Record<string, unknown>, string[]]> = [
    ['valid minimal', {}, []],
    ['memory at bounds', { resources: { memory: '4m' } }, []],
    ['memory below', { resources: { memory: '4095k' } }, ['resources.memory: must be at least 4m (got 4095k)']],
    ['memory above', { resources: { memory: '65g' } }, ['resources.memory: must be at most 64g (got 65g)']],
    ['tmpfs below', { filesystem: { tmpfs: '0m' } }, ['filesystem.tmpfs: must be at least 1m (got 0 bytes)']],
    ['ttl integer bounds', { ttl: { default: 9, max: 604801 } }, ['ttl.default: must be at least 10s (got 9s)', 'ttl.max: must be at most 168h (got 604801s)']],
    ['ttl default over implicit max', { ttl: { default: '3h' } }, ['ttl.default: ttl.default (3h) must not exceed ttl.max (2h, the default)']],
    ['implicit default over max', { ttl: { max: '20m' } }, ['ttl.max: ttl.default (30m, the default) must not exceed ttl.max (20m)']],
    ['ttl equal is fine', { ttl: { default: '1h', max: 3600 } }, []],
    ['timeout bounds', { healthcheck: { type: 'tcp', port: 'web', timeout: '2h' } }, ['healthcheck.timeout: must be at most 1h (got 2h)']],
    ['healthcheck port unknown', { healthcheck: { type: 'tcp', port: 'db' } }, ['healthcheck.port: must name an exposed port (web), got "db"']],
    ['flag file "/"', { flag: { file: '/' } }, ['flag.file: must be a file path, not "/"']],
    ['flag file trailing slash', { flag: { file: '/flag/' } }, ['flag.file: must not end with "/"']],
    ['flag file dot segment', { flag: { file: '/a/./flag' } }, ['flag.file: must be a normalized absolute path (no "..", "." or empty segments)']],
    ['flag file double slash', { flag: { file: '//flag' } }, ['flag.file: must be a normalized absolute path (no "..", "." or empty segments)']],
    ['flag file ok, FLAG free in env', { flag: { file: '/flag.txt' }, env: { FLAG: 'decoy' } }, []],
    ['flag file with mount options', { flag: { file: '/flag:rw' } }, ['flag.file: must use only letters, digits and . _ @ + - / (found ":"; ":" and "," would be read as mount options)']],
    ['flag file with a comma', { flag: { file: '/flag,ro' } }, ['flag.file: must use only letters, digits and . _ @ + - / (found ","; ":" and "," would be read as mount options)']],
    ['flag file with a space', { flag: { file: '/my flag' } }, ['flag.file: must use only letters, digits and . _ @ + - / (found " "; ":" and "," would be read as mount options)']],
    ['flag file under /proc', { flag: { file: '/proc/flag' } }, ['flag.file: must not be in /proc (managed by the kernel or the engine); use e.g. /flag.txt']],
    ['flag file is /etc/hosts', { flag: { file: '/etc/hosts' } }, ['flag.file: must not be in /etc/hosts (managed by the kernel or the engine); use e.g. /flag.txt']],
    ['flag file under /dev', { flag: { file: '/dev/shm/f' } }, ['flag.file: must not be in /dev (managed by the kernel or the engine); use e.g. /flag.txt']],
    ['flag file under /etc is fine', { flag: { file: '/etc/flag' } }, []],
    ['flag format twice', { flag: { format: '%s-%s' } }, ['flag.format: must contain "%s" exactly once (found 2)']],
    ['image and build', { build: '.' }, ['build: "image" and "build" are mutually exclusive; keep one']],
    ['pool with the flag in env', { pool: { size: 2 } }, ['pool: a pooled challenge must take its flag as a file ("flag.file"): the flag is written at the claim, after the container started']],
    ['pool with an explicit env flag', { pool: { size: 2 }, flag: { env: 'FLAG' } }, ['pool: a pooled challenge must take its flag as a file ("flag.file"): the flag is written at the claim, after the container started']],
    ['pool with a flag file is fine', { pool: { size: 2 }, flag: { file: '/flag.txt' } }, []],
  ];
  for (const [name, patch, want] of cases) {
    const issues = checkRules({ ...base, ...patch }).map((i) => `${i.path.join('.')}: ${i.message}`);
    assert.equal(issues, want, name);
  }
});

test('rules tolerate documents of the wrong shape', () => {
  const hostile = { expose: 'x', ttl: [], resources: null, flag: 7, env: 'x', healthcheck: { port: 5 } };
  assert.equal(checkRules(hostile).map((i) => i.message), ['one of "image" or "build" is required']);
});

test('the schema compiles under strict ajv and every oneOf branch declares a distinct type', () => {
  new Ajv({ allErrors: true, strict: true }).compile(challengeSchema);
  const walk = (node: unknown, at: string): void => {
    if (node === null || typeof node !== 'object') return;
    for (const key of ['oneOf', 'anyOf'] as const) {
      const branches = (node as Record<string, unknown>)[key];
      if (!Array.isArray(branches)) continue;
      const resolve = (b: Record<string, unknown>) => (typeof b.$ref === 'string' ? refTarget(b.$ref) : b);
      const types = branches.map((b) => resolve(b as Record<string, unknown>).type);
      assert.ok(types.every((t) => typeof t === 'string') && new Set(types).size === types.length, `${at}/${key}`);
      assert.type((node as Record<string, unknown>).description, 'string', `${at} needs a description`);
    }
    for (const [k, v] of Object.entries(node)) walk(v, `${at}/${k}`);
  };
  walk(challengeSchema, '#');
});

function refTarget(ref: string): Record<string, unknown> {
  let node: unknown = challengeSchema;
  for (const seg of ref.replace(/^#\//, '').split('/')) node = (node as Record<string, unknown>)[seg];
  return node as Record<string, unknown>;
}

test('checkShape: a pool has a size from 1 to 100 and nothing else', () => {
  const shape = (pool: unknown) => checkShape({ ...base, flag: { file: '/flag.txt' }, pool }).map((i) => i.path.join('.'));
  assert.equal(shape({ size: 3 }), []);
  for (const bad of [{ size: 0 }, { size: 101 }, { size: 1.5 }, {}, { size: 2, warm: true }, 4]) assert.ok(shape(bad).length > 0, JSON.stringify(bad));
});

test('checkShape accepts the documented example and rejects unknown keys anywhere', () => {
  assert.equal(checkShape({ ...base, resources: { cpu: 0.5, memory: '64m', pids: 64 } }), []);
  const nested = { ...base, ttl: { default: '1m', nope: 1 }, expose: [{ name: 'web', port: 80, x: 1 }] };
  assert.equal(checkShape(nested).map((i) => i.path.join('.')), ['expose.0.x', 'ttl.nope']);
});

test('schema messages, table-driven (oneOf noise pruned, if/then only for the given type)', () => {
  const cases: Array<[Record<string, unknown>, string[]]> = [
    [{ healthcheck: {} }, ['healthcheck.type: required key "type" is missing']],
    [{ healthcheck: { type: 'dns' } }, ['healthcheck.type: must be one of: http, tcp, command (got "dns")']],
    [{ healthcheck: { type: 'http', port: 'web', foo: 1 } }, ['healthcheck.foo: unknown key "foo"']],
    [{ healthcheck: { type: 'command', port: 'web', command: ['true'] } }, ['healthcheck.port: key "port" is not allowed here (allowed: type, command, timeout)']],
    [{ build: { context: '.', foo: 1 } }, ['build.foo: unknown key "foo"']],
    [{ build: { dockerfile: 'Dockerfile' } }, ['build.context: required key "context" is missing']],
    [{ build: '' }, ['build: must not be empty']],
    [{ build: [] }, ['build: must be a directory path or a mapping {context, dockerfile}, got a list']],
    [{ ttl: { default: -5 } }, ['ttl.default: must be >= 0 (got number -5)']],
    [{ ttl: { default: 1.5 } }, ['ttl.default: must be integer seconds or a string like "30s", "10m", "2h", got number 1.5']],
    [{ ttl: { max: '1d' } }, ['ttl.max: must match ^[0-9]+(s|m|h)$']],
    [{ command: 'httpd -f' }, ['command: must be a list, got "httpd -f"']],
    [{ command: [] }, ['command: must have at least 1 item']],
    [{ env: { A: null } }, ['env.A: must be a string, got nothing']],
    [{ env: { TOKEN: 123456 } }, ['env.TOKEN: must be a string, got a number; put the value in quotes']],
    [{ expose: [{ name: 'Web!', port: 0 }] }, ['expose.0.name: must match ^[a-z0-9]([a-z0-9-]{0,18}[a-z0-9])?$', 'expose.0.port: must be >= 1 (got number 0)']],
    [{ id: 'a'.repeat(41) }, ['id: must match ^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$']],
  ];
  for (const [patch, want] of cases) {
    assert.equal(checkShape({ ...base, ...patch }).map((i) => `${i.path.join('.')}: ${i.message}`), want, JSON.stringify(patch));
  }
});

test('image references', () => {
  const good = ['busybox', 'busybox:1.35', 'library/nginx:1.27-alpine', 'ghcr.io/org/app:v1', 'localhost:5000/a/b', `a@sha256:${'f'.repeat(64)}`];
  const bad = ['Busybox', 'busy box', 'busybox:', '-x', 'x/', 'a@sha256:xyz', ' busybox', 'busybox\n'];
  for (const image of good) assert.equal(checkShape({ ...base, image }), [], image);
  for (const image of bad) assert.is(checkShape({ ...base, image }).length, 1, image);
});

test('formatIssue', () => {
  const issue: SpecIssue = { file: 'challenges/web/challenge.yaml', line: 7, column: 3, path: 'resources.memory', message: 'must match ^[0-9]+(k|m|g)$' };
  assert.is(formatIssue(issue), 'challenges/web/challenge.yaml:7:3 resources.memory: must match ^[0-9]+(k|m|g)$');
  assert.is(formatIssue({ ...issue, path: '' }), 'challenges/web/challenge.yaml:7:3 must match ^[0-9]+(k|m|g)$');
  assert.is(formatIssue({ ...issue, line: 0, column: 0, path: '', message: 'too large' }), 'challenges/web/challenge.yaml: too large');
});

test.run();
