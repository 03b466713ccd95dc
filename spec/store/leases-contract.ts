/**
 * The `LeaseStore` contract, run against the memory and Redis adapters so they cannot drift.
 * Each case gets a fresh, empty store from `make()`; `cleanup()` runs even when a case fails.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { isPoseidonError } from '../../src/core/errors.ts';
import type { LeaseStore, PortRange } from '../../src/core/leases.ts';

export interface LeaseFixture {
  store: LeaseStore;
  /** A second handle on the same leases (another process, for Redis; the same object in memory). */
  other: LeaseStore;
  cleanup: () => Promise<void>;
}

interface Ctx {
  fx?: LeaseFixture;
}

const NOW = 1_900_000_000_000;
const R: PortRange = { lo: 30000, hi: 30199 };

/** Instance id number `n` (24 hex). */
export function inst(n: number): string {
  return n.toString(16).padStart(24, '0');
}

async function rejectsWith(p: Promise<unknown>, code: string, kind?: string): Promise<void> {
  try {
    await p;
    assert.unreachable(`expected ${code}`);
  } catch (err) {
    if (err instanceof assert.Assertion) throw err;
    assert.ok(isPoseidonError(err, code), String(err));
    if (kind) assert.is((err as { kind: string }).kind, kind);
  }
}

/** Registers and runs `lease contract: <name>`. */
export function leaseContract(name: string, make: () => Promise<LeaseFixture>): void {
  const test = suite<Ctx>(`lease contract: ${name}`, {});
  test.before.each(async (ctx) => { ctx.fx = await make(); });
  test.after.each(async (ctx) => {
    const fx = ctx.fx;
    ctx.fx = undefined;
    await fx?.cleanup();
  });
  const fx = (ctx: Ctx): LeaseFixture => {
    if (!ctx.fx) throw new Error('no fixture');
    return ctx.fx;
  };

  test('acquire gives each name its own port in the range, and again the same ones', async (ctx) => {
    const { store } = fx(ctx);
    const a = await store.acquire(inst(1), ['ssh', 'pwn'], R, NOW);
    assert.equal(Object.keys(a).sort(), ['pwn', 'ssh']);
    assert.is.not(a.ssh, a.pwn);
    for (const p of Object.values(a)) assert.ok(p >= R.lo && p <= R.hi, String(p));
    assert.equal(await store.acquire(inst(1), ['ssh', 'pwn'], R, NOW + 5), a);
    assert.equal(await store.acquire(inst(1), ['pwn'], R, NOW + 6), { pwn: a.pwn });
    assert.equal(await store.list(), Object.entries(a).map(([n, port]) => ({ port, instance: inst(1), name: n, acquiredAt: NOW })).sort((x, y) => x.port - y.port));
    assert.equal(await store.acquire(inst(1), [], R, NOW), {});
  });

  test('200 concurrent launches from two clients get 200 distinct ports; the 201st waits', async (ctx) => {
    const { store, other } = fx(ctx);
    const ids = Array.from({ length: 200 }, (_, i) => inst(1000 + i));
    const got = await Promise.all(ids.map((id, i) => (i % 2 ? other : store).acquire(id, ['pwn'], R, NOW)));
    const ports = got.map((g) => g.pwn as number);
    assert.is(new Set(ports).size, 200);
    assert.ok(ports.every((p) => p >= R.lo && p <= R.hi));
    assert.is((await store.list()).length, 200);
    await rejectsWith(store.acquire(inst(5000), ['pwn'], R, NOW), 'E_NO_PORT', 'waiting');
    // Still idempotent for the holders when the range is full.
    assert.equal(await other.acquire(ids[7] as string, ['pwn'], R, NOW), { pwn: ports[7] });
  });

  test('one instance asking at once from many places gets one port', async (ctx) => {
    const { store, other } = fx(ctx);
    const got = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? other : store).acquire(inst(9), ['pwn'], R, NOW)));
    assert.is(new Set(got.map((g) => g.pwn)).size, 1);
    assert.is((await store.list()).length, 1);
  });

  test('all or nothing: a request the range cannot fill takes nothing', async (ctx) => {
    const { store } = fx(ctx);
    const small: PortRange = { lo: 40000, hi: 40002 };
    await store.acquire(inst(1), ['a', 'b'], small, NOW);
    await rejectsWith(store.acquire(inst(2), ['a', 'b'], small, NOW), 'E_NO_PORT');
    assert.is((await store.list()).length, 2);
    assert.equal(Object.keys(await store.acquire(inst(3), ['a'], small, NOW)), ['a']);
  });

  test('release frees every port of the instance, is idempotent, and touches no other', async (ctx) => {
    const { store, other } = fx(ctx);
    const a = await store.acquire(inst(1), ['x', 'y'], R, NOW);
    const b = await store.acquire(inst(2), ['x'], R, NOW);
    assert.is(await other.release(inst(1)), 2);
    assert.is(await store.release(inst(1)), 0);
    assert.equal((await store.list()).map((l) => l.port), [b.x]);
    // A freed port can be taken again once the cursor comes round.
    const small: PortRange = { lo: a.x as number, hi: a.x as number };
    assert.equal(await store.acquire(inst(3), ['x'], small, NOW), { x: a.x });
  });

  test('round robin: a port just released is the last to be handed out again', async (ctx) => {
    const { store } = fx(ctx);
    const small: PortRange = { lo: 41000, hi: 41004 };
    const first = (await store.acquire(inst(1), ['p'], small, NOW)).p;
    await store.release(inst(1));
    const next = [];
    for (let i = 2; i <= 5; i++) next.push((await store.acquire(inst(i), ['p'], small, NOW)).p);
    assert.not.ok(next.includes(first), `${first} reused early: ${next.join(',')}`);
    assert.equal((await store.acquire(inst(6), ['p'], small, NOW)).p, first);
  });

  test('a held port outside a new range moves into it and the old one is freed', async (ctx) => {
    const { store } = fx(ctx);
    const old = await store.acquire(inst(1), ['p'], { lo: 42000, hi: 42009 }, NOW);
    const moved = await store.acquire(inst(1), ['p'], { lo: 43000, hi: 43009 }, NOW);
    assert.ok((moved.p as number) >= 43000);
    assert.equal((await store.list()).map((l) => l.port), [moved.p]);
    assert.is.not(old.p, moved.p);
  });

  test.run();
}
