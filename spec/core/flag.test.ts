import { createHmac } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { deriveFlag, flagMatches } from '../../src/core/flag.ts';

const subject = { team: 'red', challenge: 'web', instance: '0123456789abcdef01234567' };

test('flag is the HMAC-SHA256 of team, challenge and instance inside the format', () => {
  const mac = createHmac('sha256', 'secret-secret-secret').update('v1:red:web:0123456789abcdef01234567').digest('hex').slice(0, 32);
  assert.is(deriveFlag('secret-secret-secret', subject, 'CTF{%s}'), `CTF{${mac}}`);
});

test('flags differ per team, challenge, instance and secret', () => {
  const base = deriveFlag('s1-s1-s1-s1-s1-s1', subject, 'f{%s}');
  const variants = [
    deriveFlag('s1-s1-s1-s1-s1-s1', { ...subject, team: 'blue' }, 'f{%s}'),
    deriveFlag('s1-s1-s1-s1-s1-s1', { ...subject, challenge: 'pwn' }, 'f{%s}'),
    deriveFlag('s1-s1-s1-s1-s1-s1', { ...subject, instance: 'ffffffffffffffffffffffff' }, 'f{%s}'),
    deriveFlag('s2-s2-s2-s2-s2-s2', subject, 'f{%s}'),
  ];
  assert.is(new Set([base, ...variants]).size, 5);
});

test('flagMatches compares exactly', () => {
  const f = deriveFlag('k'.repeat(20), subject, 'flag{%s}');
  assert.ok(flagMatches(f, f));
  assert.not.ok(flagMatches(f, `${f} `));
  assert.not.ok(flagMatches(f, f.toUpperCase()));
  assert.not.ok(flagMatches(f, ''));
});

test.run();
