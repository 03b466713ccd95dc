import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AccessTokens, MAX_TOKEN_LENGTH, type AccessClaims } from '../../src/gateway/access-token.ts';

const SECRET = 'token-test-secret-0123456789';
const tokens = new AccessTokens(SECRET);
const NOW = Date.parse('2030-01-01T00:00:00Z');
const HOUR = 3_600_000;
const session: AccessClaims = { kind: 'session', instance: '0123456789abcdef01234567', team: 'red', host: '8865fea8edb69716.web.ctf.test', exp: NOW + HOUR };

/** Changes the base64url character at `i` of `s` to another one (`+1` in the alphabet, wrapping). */
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
function flip(s: string, i: number, by = 1): string {
  const c = ALPHABET[(ALPHABET.indexOf(s[i] as string) + by) % 64] as string;
  return s.slice(0, i) + c + s.slice(i + 1);
}

test('every kind round-trips with its claims (expiry at second precision)', () => {
  const cases: AccessClaims[] = [
    session,
    { kind: 'link', instance: session.instance, team: 'red', host: session.host, exp: NOW + 120_000, sessionExp: NOW + HOUR },
    { kind: 'session', instance: session.instance, team: 'red', host: session.host, exp: NOW + HOUR, bypass: 'xss-bot' },
    { kind: 'bypass', name: 'checker', challenge: '*', exp: NOW + HOUR },
    { kind: 'session', ...{ instance: session.instance, team: 'blue', host: session.host }, exp: NOW + 1234 },
  ];
  for (const claims of cases) {
    const back = tokens.verify(tokens.sign(claims), NOW);
    const expected = { ...claims, exp: Math.floor(claims.exp / 1000) * 1000 };
    assert.equal(back, expected, claims.kind);
  }
});

test('tokens are URL-, header- and cookie-safe', () => {
  const t = tokens.sign(session);
  assert.match(t, /^[slb]\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/);
  assert.ok(t.length < 400, `length ${t.length}`);
});

test('expired tokens are refused, at the second', () => {
  const t = tokens.sign({ ...session, exp: NOW + 5000 });
  assert.ok(tokens.verify(t, NOW + 4999));
  assert.is(tokens.verify(t, NOW + 5000), undefined);
  assert.is(tokens.verify(t, NOW + HOUR), undefined);
});

test('tampering with any character of kind, payload or MAC is refused', () => {
  const t = tokens.sign(session);
  for (let i = 0; i < t.length; i++) {
    if (t[i] === '.') continue;
    // Every other character at every position, including the MAC's spare low bits.
    for (const by of [1, 2, 3, 17, 63]) {
      const bad = i === 0 ? `${t[0] === 's' ? 'l' : 's'}${t.slice(1)}` : flip(t, i, by);
      assert.is(tokens.verify(bad, NOW), undefined, `position ${i} +${by}`);
    }
  }
});

test('a token of one kind cannot pass as another (keys are derived per kind)', () => {
  const link = tokens.sign({ kind: 'link', instance: session.instance, team: 'red', host: session.host, exp: NOW + HOUR });
  const relabelled = `s${link.slice(1)}`;
  assert.is(tokens.verify(relabelled, NOW), undefined);
  const bypass = tokens.sign({ kind: 'bypass', name: 'bot', challenge: 'web', exp: NOW + HOUR });
  assert.is(tokens.verify(`s${bypass.slice(1)}`, NOW), undefined);
});

test('a rotated secret refuses every token signed with the old one', () => {
  const rotated = new AccessTokens('token-test-secret-rotated-99');
  for (const claims of [session, { kind: 'bypass', name: 'bot', challenge: '*', exp: NOW + HOUR } as AccessClaims]) {
    const t = tokens.sign(claims);
    assert.ok(tokens.verify(t, NOW));
    assert.is(rotated.verify(t, NOW), undefined);
  }
});

test('a forged payload with a valid-looking MAC from another payload is refused', () => {
  const a = tokens.sign(session);
  const b = tokens.sign({ ...session, team: 'blue' });
  const [kind, payloadB] = b.split('.');
  const macA = a.split('.')[2];
  assert.is(tokens.verify(`${kind}.${payloadB}.${macA}`, NOW), undefined);
});

test('malformed input is refused without throwing', () => {
  const t = tokens.sign(session);
  const bad: unknown[] = [
    '', '.', 's.', 's..', 'x.abc.def', 'sabc', `${t}.x`, `${t}x`, t.replaceAll('.', ''), 'A'.repeat(MAX_TOKEN_LENGTH + 1),
    `s.${Buffer.from('not json').toString('base64url')}.${t.split('.')[2]}`, `s.%%%.${t.split('.')[2]}`, undefined, null, 42, {},
  ];
  for (const b of bad) assert.is(tokens.verify(b as string, NOW), undefined, JSON.stringify(b)?.slice(0, 40));
});

test('a short secret is refused at construction', () => {
  assert.throws(() => new AccessTokens('short'));
});

test.run();
