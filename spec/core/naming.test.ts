import { createHash } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { containerName, hostPrefix, newInstanceId, ownerKey, plannedEndpoints, portHostname, INSTANCE_ID_PATTERN } from '../../src/core/naming.ts';
import { makeSpec } from '../helpers/specs.ts';

test('instance ids are 24 hex chars and unique (across many refills of the random pool)', () => {
  const ids = new Set(Array.from({ length: 5000 }, newInstanceId));
  assert.is(ids.size, 5000);
  for (const id of ids) assert.ok(INSTANCE_ID_PATTERN.test(id), id);
});

test('hostname prefix is the first 16 hex of sha256(id)', () => {
  const id = 'aaaaaaaaaaaaaaaaaaaaaaaa';
  assert.is(hostPrefix(id), createHash('sha256').update(id).digest('hex').slice(0, 16));
});

test('two-port challenges get one distinct hostname per port', () => {
  const spec = makeSpec({ id: 'two', expose: [{ name: 'web', port: 80, protocol: 'http' }, { name: 'admin', port: 81, protocol: 'http' }] });
  const id = newInstanceId();
  const p = hostPrefix(id);
  assert.is(portHostname(id, spec, 0, 'ctf.example'), `${p}.two.ctf.example`);
  assert.is(portHostname(id, spec, 1, 'ctf.example'), `${p}-admin.two.ctf.example`);
  const eps = plannedEndpoints(id, spec, 'ctf.example');
  assert.equal(eps.map((e) => e.backend), [`${containerName(id)}:80`, `${containerName(id)}:81`]);
  assert.is(eps[1]?.url, `http://${p}-admin.two.ctf.example/`);
});

test('owner key follows the challenge scope', () => {
  assert.is(ownerKey({ scope: 'team' }, 'red', 'alice'), 'team:red');
  assert.is(ownerKey({ scope: 'user' }, 'red', 'alice'), 'user:red/alice');
  assert.is.not(ownerKey({ scope: 'user' }, 'red', 'alice'), ownerKey({ scope: 'user' }, 'red', 'bob'));
  assert.is.not(ownerKey({ scope: 'user' }, 'a/b', 'c'), ownerKey({ scope: 'user' }, 'a', 'b/c'));
});

test.run();
