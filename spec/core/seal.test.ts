/**
 * Sealed flags (src/core/seal.ts): a flag sealed for one worker, instance and epoch opens only
 * with that worker's private key and that exact context, and not at all once altered.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { newSealingKeys, seal, unseal, type SealContext } from '../../src/core/seal.ts';

const KEYS = newSealingKeys();
const OTHER = newSealingKeys();
const CTX: SealContext = { instance: '0123456789abcdef01234567', epoch: 3, worker: 'w1' };
const FLAG = 'CTF{9f86d081884c7d659a2feaa0c55ad015}';
const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

function refused(sealed: string, ctx: SealContext = CTX, key = KEYS.privateKey): boolean {
  try {
    unseal(key, sealed, ctx);
    return false;
  } catch {
    return true;
  }
}

test('new keys are PEM X25519 pairs, different each time', () => {
  assert.match(KEYS.publicKey, /^-----BEGIN PUBLIC KEY-----\n/);
  assert.match(KEYS.privateKey, /^-----BEGIN PRIVATE KEY-----\n/);
  assert.is.not(KEYS.publicKey, OTHER.publicKey);
});

const FLAGS: Array<[string, string]> = [
  ['a typical flag', FLAG],
  ['a 250-character flag', `CTF{${'x'.repeat(124)}${'0123456789'.repeat(12)}e}`],
  ['non-ASCII text', 'flag{ünïcødé-😀-旗}'],
  ['an empty string', ''],
];

for (const [label, flag] of FLAGS) {
  test(`round trip: ${label}`, () => {
    const sealed = seal(KEYS.publicKey, flag, CTX);
    assert.match(sealed, /^v1(\.[A-Za-z0-9_-]*){4}$/);
    assert.not.match(sealed, flag || 'never', 'the flag is not readable in the sealed text');
    assert.is(unseal(KEYS.privateKey, sealed, CTX), flag);
  });
}

test('the 250-character flag is really 250 characters', () => {
  assert.is(FLAGS[1]![1].length, 250);
});

test('sealing twice gives different texts that both open', () => {
  const a = seal(KEYS.publicKey, FLAG, CTX);
  const b = seal(KEYS.publicKey, FLAG, CTX);
  assert.is.not(a, b);
  assert.is(unseal(KEYS.privateKey, a, CTX), FLAG);
  assert.is(unseal(KEYS.privateKey, b, CTX), FLAG);
});

test('refused with another private key', () => {
  const sealed = seal(KEYS.publicKey, FLAG, CTX);
  assert.ok(refused(sealed, CTX, OTHER.privateKey));
  assert.ok(refused(seal(OTHER.publicKey, FLAG, CTX)), 'sealed for the other key, opened with ours');
});

const CONTEXTS: Array<[string, SealContext]> = [
  ['another instance', { ...CTX, instance: 'ffffffffffffffffffffffff' }],
  ['another epoch (the next one)', { ...CTX, epoch: 4 }],
  ['another epoch (the previous one)', { ...CTX, epoch: 2 }],
  ['another worker', { ...CTX, worker: 'w2' }],
];

for (const [label, ctx] of CONTEXTS) {
  test(`refused for ${label}`, () => {
    const sealed = seal(KEYS.publicKey, FLAG, CTX);
    assert.ok(refused(sealed, ctx));
    assert.is(unseal(KEYS.privateKey, sealed, CTX), FLAG, 'still opens in its own context');
  });
}

// With a bare '\n' between the fields both contexts would read `abc\n3\n5\nw1`.
test('refused when the context is shifted between its fields', () => {
  const sealed = seal(KEYS.publicKey, FLAG, { instance: 'abc\n3', epoch: 5, worker: 'w1' });
  assert.ok(refused(sealed, { instance: 'abc', epoch: 3, worker: '5\nw1' }));
});

test('refused when any single character of the sealed text is changed', () => {
  for (const flag of [FLAG, FLAGS[1]![1]]) {
    const sealed = seal(KEYS.publicKey, flag, CTX);
    const opened: string[] = [];
    for (let i = 0; i < sealed.length; i++) {
      const ch = sealed[i]!;
      // Two other characters of the alphabet per position (the neighbour flips the lowest bit,
      // which a lenient decoder can ignore in the last character), plus the '+'/'/' aliases.
      const pos = B64URL.indexOf(ch);
      const subs = ch === '.' ? ['A', '-'] : [B64URL[(pos + 1) % 64]!, B64URL[(pos + 32) % 64]!, ch === '-' ? '+' : ch === '_' ? '/' : '.'];
      for (const sub of subs) {
        const altered = sealed.slice(0, i) + sub + sealed.slice(i + 1);
        if (!refused(altered)) opened.push(`${i}:${ch}->${sub}`);
      }
    }
    assert.equal(opened, [], `altered texts that still opened (flag of ${flag.length} chars, sealed ${sealed.length} chars)`);
  }
});

test('refused when truncated, extended or a part is dropped', () => {
  const sealed = seal(KEYS.publicKey, FLAG, CTX);
  const parts = sealed.split('.');
  const variants = [
    sealed.slice(0, -1),
    sealed.slice(0, -2),
    `${sealed}A`,
    `${sealed}AA`,
    `${sealed}.`,
    `${sealed}.AAAA`,
    parts.filter((_, i) => i !== 3).join('.'),
    [...parts.slice(0, 4), parts[4]!.slice(0, 6)].join('.'), // a 4-byte tag
    `v2.${parts.slice(1).join('.')}`,
    '',
    'v1....',
  ];
  for (const v of variants) assert.ok(refused(v), JSON.stringify(v));
});

test.run();
