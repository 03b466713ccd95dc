import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parse } from 'yaml';
import { emitYaml } from '../../src/gateway/yaml.ts';

/** Deterministic pseudo-random source so a failure reproduces. */
function lcg(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s / 2 ** 31;
  };
}

const TRICKY = ['', ' ', 'yes', 'no', 'null', '~', 'true', '1e3', '0x10', '- a', ': b', '#c', '&a', '*a', '!t', '|', '>', '"q"', "'s'",
  'a\nb', 'tab\there', 'back\\slash', 'Host(`x`) || Host(`y`)', '\u2028', 'é', '{a: 1}', '[1]', '%x', '@x', '`t`', 'a: b\nc: d'];

function value(rand: () => number, depth: number): unknown {
  const r = rand();
  if (depth > 3 || r < 0.4) {
    const k = Math.floor(rand() * 4);
    if (k === 0) return TRICKY[Math.floor(rand() * TRICKY.length)];
    if (k === 1) return Math.floor(rand() * 1e6) - 5e5;
    if (k === 2) return rand() < 0.5;
    return `s${Math.floor(rand() * 1000)}`;
  }
  if (r < 0.7) return Array.from({ length: Math.floor(rand() * 4) }, () => value(rand, depth + 1));
  return Object.fromEntries(Array.from({ length: Math.floor(rand() * 4) }, () => [TRICKY[Math.floor(rand() * TRICKY.length)] + String(Math.floor(rand() * 9)), value(rand, depth + 1)]));
}

test('any JSON-shaped document round-trips through a YAML parser, however hostile its strings', () => {
  for (let seed = 1; seed <= 300; seed++) {
    const rand = lcg(seed);
    const doc = { root: value(rand, 0), list: [value(rand, 1), [value(rand, 2)], { k: value(rand, 2) }] };
    assert.equal(parse(emitYaml(doc)), doc, `seed ${seed}`);
  }
});

test('keys are sorted at every level; output is independent of insertion order', () => {
  const a = emitYaml({ b: { y: 1, x: 2 }, a: [{ d: 1, c: 2 }] });
  const b = emitYaml({ a: [{ c: 2, d: 1 }], b: { x: 2, y: 1 } });
  assert.is(a, b);
  // `y` is a YAML 1.1 boolean, so it is quoted.
  assert.is(a, 'a:\n  - c: 2\n    d: 1\nb:\n  x: 2\n  "y": 1\n');
});

test('unsupported values throw instead of being written', () => {
  for (const bad of [null, Number.NaN, Infinity, () => 1, Symbol('s'), 10n]) {
    assert.throws(() => emitYaml({ k: bad }), String(bad));
  }
});

test.run();
