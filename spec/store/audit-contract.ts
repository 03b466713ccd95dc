/**
 * The `AuditTrail` contract, run against the memory and Redis adapters so they cannot drift.
 * Each case gets a fresh, empty trail of `SIZE` entries from `make()`; `cleanup()` runs even when
 * a case fails.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { AuditEntry, AuditTrail } from '../../src/status/audit.ts';

/** The bound every fixture's trails are made with. */
export const SIZE = 8;

export interface AuditFixture {
  trail: AuditTrail;
  /** A second handle on the same trail (another replica, for Redis; the same object in memory). */
  other: AuditTrail;
  scope: AuditTrail['scope'];
  cleanup: () => Promise<void>;
}

interface Ctx {
  fx?: AuditFixture;
}

/** Entry number `n` (who `k<n>`), with `overrides`. */
export function entry(n: number, overrides: Partial<AuditEntry> = {}): AuditEntry {
  return {
    at: new Date(1_900_000_000_000 + n * 1000).toISOString(), who: `k${n}`, role: 'admin', action: 'sync', status: 200, result: 'ok', via: 'key', ...overrides,
  };
}

const whos = (list: readonly AuditEntry[]): string[] => list.map((e) => e.who);

/** Strings that break naive quoting, encoding or parsing: JSON, Lua, Redis protocol, Unicode. */
const HOSTILE = [
  '"}],"who":"root', '\\', '\r\n*3\r\n$3\r\nDEL\r\n', "'; return redis.call('FLUSHALL') --", '\u0000\u0007\u001b[31m',
  '__proto__', '{"constructor":{"prototype":{}}}', 'ünïcødé ✓ 日本語 🐳', '\ud800 lone surrogate', '<script>alert(1)</script>', 'x'.repeat(4096),
];

/** Registers and runs `audit trail contract: <name>`. */
export function auditContract(name: string, make: () => Promise<AuditFixture>): void {
  const test = suite<Ctx>(`audit trail contract: ${name}`, {});
  test.before.each(async (ctx) => { ctx.fx = await make(); });
  test.after.each(async (ctx) => {
    const fx = ctx.fx;
    ctx.fx = undefined;
    await fx?.cleanup();
  });
  const fx = (ctx: Ctx): AuditFixture => {
    if (!ctx.fx) throw new Error('no fixture');
    return ctx.fx;
  };

  test('an empty trail lists nothing; the scope says who shares it', async (ctx) => {
    const { trail, scope } = fx(ctx);
    assert.equal(await trail.list(), []);
    assert.is(trail.scope, scope);
  });

  test('entries list newest first; a limit takes the newest', async (ctx) => {
    const { trail } = fx(ctx);
    for (let i = 1; i <= 3; i++) await trail.append(entry(i));
    assert.equal(whos(await trail.list()), ['k3', 'k2', 'k1']);
    assert.equal(whos(await trail.list(2)), ['k3', 'k2']);
    assert.equal(await trail.list(0), []);
  });

  test('the bound keeps the newest SIZE entries, even when asked for more', async (ctx) => {
    const { trail } = fx(ctx);
    for (let i = 1; i <= SIZE + 5; i++) await trail.append(entry(i));
    const want = Array.from({ length: SIZE }, (_, i) => `k${SIZE + 5 - i}`);
    assert.equal(whos(await trail.list()), want);
    assert.equal(whos(await trail.list(SIZE * 10)), want);
  });

  test('entries round-trip field for field, hostile strings included', async (ctx) => {
    const { trail, other } = fx(ctx);
    const sent = HOSTILE.map((s, i) => entry(i, { who: s, role: s, action: s, target: s, via: i % 2 ? 'session' : 'key', status: 400 + i, result: 'refused' }));
    sent.push(entry(99));
    for (const e of sent.slice(-SIZE)) await trail.append(e);
    const want = sent.slice(-SIZE).reverse();
    assert.equal(await trail.list(), want);
    assert.equal(await other.list(), want, 'the other handle reads the same');
    assert.not.ok('target' in ((await trail.list(1))[0] as AuditEntry), 'an absent target stays absent');
  });

  test('concurrent appends from two handles are all kept up to the bound, each handle in its order', async (ctx) => {
    const { trail, other } = fx(ctx);
    const n = SIZE / 2;
    const from = (t: AuditTrail, who: string) => Promise.all(Array.from({ length: n }, (_, i) => t.append(entry(i, { who: `${who}${i}` }))));
    await Promise.all([from(trail, 'a'), from(other, 'b')]);
    const all = whos(await trail.list());
    assert.equal([...all].sort(), [...Array.from({ length: n }, (_, i) => `a${i}`), ...Array.from({ length: n }, (_, i) => `b${i}`)].sort());
    for (const who of ['a', 'b']) assert.equal(all.filter((w) => w.startsWith(who)), Array.from({ length: n }, (_, i) => `${who}${n - 1 - i}`));
    // Beyond the bound: exactly SIZE kept, all distinct, each from one of the appends.
    await Promise.all([from(trail, 'c'), from(other, 'd'), from(trail, 'e')]);
    const kept = whos(await other.list());
    assert.is(kept.length, SIZE);
    assert.is(new Set(kept).size, SIZE);
    assert.ok(kept.every((w) => /^[abcde][0-9]+$/.test(w)), kept.join(','));
    assert.ok(kept.filter((w) => /^[cde]/.test(w)).length >= SIZE / 2, 'the newest appends are kept');
  });

  test.run();
}
