import { test } from 'uvu';
import * as assert from 'uvu/assert';
import path from 'node:path';
import { loadChallengeFile } from '../../src/challenge/load.ts';
import { FIXTURES, INVALID } from './fixtures.ts';

/** [line, column, path, message]; a message ending in '…' is matched as a prefix. */
type Expected = [number, number, string, string];

const cases: Record<string, Expected[]> = {
  'bad-memory.yaml': [
    [7, 3, 'resources.memory', 'must match ^[0-9]+(k|m|g)$'],
    [8, 3, 'resources.cpu', 'must be <= 16 (got number 32)'],
  ],
  'unknown-keys.yaml': [
    [4, 1, 'exposes', 'unknown key "exposes" (did you mean "expose"?)'],
    [8, 5, 'expose.0.proto', 'unknown key "proto"'],
    [10, 3, 'filesystem.readonly', 'unknown key "readonly" (did you mean "readOnly"?)'],
  ],
  'missing-required.yaml': [
    [2, 1, 'name', 'required key "name" is missing'],
    [6, 5, 'expose.1.port', 'required key "port" is missing'],
  ],
  'type-errors.yaml': [
    [2, 1, 'name', 'must be a string, got number 42; put the value in quotes'],
    [5, 18, 'expose.0.port', 'must be an integer, got "8080"'],
    [7, 3, 'env.PORT', 'must be a string, got a number; put the value in quotes'],
    [8, 3, 'env.DEBUG', 'must be a string, got a boolean; put the value in quotes'],
    [9, 3, 'env.1BAD', 'key "1BAD" must match ^[A-Za-z_][A-Za-z0-9_]*$'],
    [10, 12, 'network.egress', 'must be true or false, got "no"'],
  ],
  'ttl-order.yaml': [[7, 3, 'ttl.default', 'ttl.default (1h) must not exceed ttl.max (20m)']],
  'ttl-bounds.yaml': [
    [6, 3, 'ttl.default', 'must be at least 10s (got 5s)'],
    [7, 3, 'ttl.max', 'must be at most 168h (got 200h)'],
    [8, 3, 'ttl.renewals', 'must be <= 100 (got number 101)'],
    [9, 38, 'healthcheck.timeout', 'must match ^[0-9]+(s|m|h)$'],
  ],
  'flag-env-collision.yaml': [[8, 3, 'flag.env', '"SECRET" is also set in env; the flag needs a variable of its own']],
  'flag-default-collision.yaml': [
    [7, 3, 'env.FLAG', '"FLAG" receives the flag (flag.env defaults to FLAG); rename this variable or set flag.env'],
  ],
  'flag-file.yaml': [
    [7, 3, 'flag.file', '"flag.env" and "flag.file" are mutually exclusive; keep one'],
    [7, 3, 'flag.file', 'must be a normalized absolute path (no "..", "." or empty segments)'],
    [8, 3, 'flag.format', 'must contain "%s" exactly once (found 0)'],
  ],
  'healthcheck-port.yaml': [
    [8, 3, 'healthcheck.port', 'must name an exposed port (web), got "admin"'],
    [9, 3, 'healthcheck.path', 'must match ^/'],
  ],
  'healthcheck-shape.yaml': [[9, 3, 'healthcheck.path', 'key "path" is not allowed here (allowed: type, port, timeout)']],
  'healthcheck-missing.yaml': [[6, 14, 'healthcheck.command', 'required key "command" is missing']],
  'duplicate-expose.yaml': [
    [6, 18, 'expose.1.port', 'duplicate port 80 (also expose.0.port)'],
    [7, 7, 'expose.2.name', 'duplicate port name "web" (also expose.0.name)'],
  ],
  'image-and-build.yaml': [
    [4, 1, 'build', '"image" and "build" are mutually exclusive; keep one'],
    [4, 1, 'build', 'dockerfile "Dockerfile" not found in the build context…'],
  ],
  'no-image.yaml': [[1, 1, '', 'one of "image" or "build" is required']],
  'bad-values.yaml': [
    [1, 1, 'id', 'must match ^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$'],
    [3, 1, 'image', 'must be a Docker image reference such as busybox:1.36…'],
    [4, 1, 'expose', 'must have at least 1 item'],
    [5, 1, 'scope', 'must be one of: team, user (got "everyone")'],
    [6, 1, 'runtime', 'must be one of: runc, gvisor (got "kata")'],
    [7, 1, 'build2', 'unknown key "build2" (did you mean "build"?)'],
  ],
  'bad-build.yaml': [
    [3, 1, 'build', 'must be a directory path or a mapping {context, dockerfile}, got number 5'],
    [4, 8, 'ttl.default', 'must match ^[0-9]+(s|m|h)$'],
  ],
  'build-escape.yaml': [
    [3, 1, 'build', `build context "../../../.." resolves to ${path.resolve(INVALID, '../../../..')}, outside the challenges directory ${FIXTURES}`],
  ],
  'build-no-dockerfile.yaml': [
    [3, 39, 'build.dockerfile', `dockerfile "Containerfile" not found in the build context (${path.join(FIXTURES, 'valid/web-hello/Containerfile')}: ENOENT)`],
  ],
  'syntax-error.yaml': [[5, 1, '', 'YAML syntax error: Flow sequence in block collection must be sufficiently indented and end with a ]']],
  'duplicate-key.yaml': [[5, 1, 'name', 'duplicate key "name"']],
  'multi-doc.yaml': [[5, 1, '', 'a challenge file holds exactly one YAML document; found several']],
  'list-doc.yaml': [[2, 1, '', 'the document must be a mapping (id: ..., name: ...), got a list']],
  'scalar-doc.yaml': [[1, 1, '', 'the document must be a mapping (id: ..., name: ...), got a single value']],
  'empty.yaml': [[1, 1, '', 'file is empty; expected a mapping with id, name, ...']],
  'comments-only.yaml': [[1, 1, '', 'file is empty; expected a mapping with id, name, ...']],
  'alias-bomb.yaml': [[1, 1, '', 'too many alias expansions (limit 50); write the values out']],
  'invalid-utf8.yaml': [[0, 0, '', 'file is not valid UTF-8 text']],
};

for (const [name, expected] of Object.entries(cases)) {
  test(`invalid fixture ${name}`, async () => {
    const file = path.join(INVALID, name);
    const result = await loadChallengeFile(file, { root: FIXTURES });
    if (result.ok) return assert.unreachable('loaded a broken file');
    assert.ok(result.issues.every((i) => i.file === file));
    const actual = result.issues.map((i, n): Expected => {
      const want = expected[n]?.[3] ?? '';
      const message = want.endsWith('…') && i.message.startsWith(want.slice(0, -1)) ? want : i.message;
      return [i.line, i.column, i.path, message];
    });
    assert.equal(actual, expected);
  });
}

test('the id of an invalid file is reported when it is well-formed', async () => {
  const ok = await loadChallengeFile(path.join(INVALID, 'bad-memory.yaml'), { root: FIXTURES });
  const bad = await loadChallengeFile(path.join(INVALID, 'bad-values.yaml'), { root: FIXTURES });
  assert.is(!ok.ok && ok.id, 'bad-memory');
  assert.is(!bad.ok && bad.id, undefined);
});

test.run();
