import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalJson } from './row.ts';
import { prng, syntheticRecords } from './testing.ts';

/** The canonical form as first written (the hashes of existing rows were made with it). */
function reference(v: unknown): string {
  if (v instanceof Date) return JSON.stringify(v.toISOString());
  if (v === null || v === undefined || typeof v !== 'object') return JSON.stringify(v ?? null);
  if (Array.isArray(v)) return `[${v.map(reference).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .filter((k) => o[k] !== undefined && o[k] !== null)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${reference(o[k])}`)
    .join(',')}}`;
}

test('canonicalJson gives exactly the original canonical form, fast path or not', () => {
  for (const r of syntheticRecords({ tenants: [{ id: 't', weight: 1 }], count: 2000, seed: 9 })) {
    assert.equal(canonicalJson(r), reference(r));
  }
  const edge: unknown[] = [
    { b: 1, a: [null, undefined, 1.5, -0, NaN, Infinity, 'x"\u2028é\ud83d\ude00\ud800', true], é: { z: 1 }, Z: new Date(0), '': 0 },
    { nested: { dropped: null, kept: 1 } },
    { a: undefined, b: [undefined, { c: undefined }] },
    { 10: 'a', 9: 'b', '1a': 'c', a1: 'd', A: 'e' },
    JSON.parse('{"__proto__": {"x": 1}, "y": 2}'),
    { toString: 1, constructor: 'c' },
    [{ 'a\u0000': 1, b: 2 }, { a: 1, '\u0000b': 2 }, { '': { '': 1 } }, { '': 1 }],
    { inner: { toString: 1 }, other: {} },
    { j: { toJSON: () => 'not used by the canonical form', k: 1 } },
    { d: new Date(1_700_000_000_123), ds: [new Date(0)] },
    [],
    {},
    [{}, [], [[]]],
    1e21,
    5e-7,
    'a',
    null,
    undefined,
    new Date(5),
  ];
  for (const e of edge) assert.equal(canonicalJson(e), reference(e), reference(e));
  // Random shapes: objects with random keys, values, nulls and nesting.
  const rnd = prng(4);
  const keys = ['a', 'b', 'B', 'é', '10', '2', 'name', 'score', 'coverage', 'x y', ''];
  const gen = (d: number): unknown => {
    const k = rnd();
    if (d > 3 || k < 0.3) return [1, -2.5, 'txt', true, false, null, 0.1 + 0.2, 1e-9][Math.floor(rnd() * 8)];
    if (k < 0.55) return Array.from({ length: Math.floor(rnd() * 4) }, () => gen(d + 1));
    return Object.fromEntries(Array.from({ length: Math.floor(rnd() * 5) }, () => [keys[Math.floor(rnd() * keys.length)], gen(d + 1)]));
  };
  for (let i = 0; i < 3000; i++) {
    const v = gen(0);
    assert.equal(canonicalJson(v), reference(v), reference(v));
  }
});
