// Seeded random numbers: Philox4x32-10 known-answer vectors (Random123), determinism
// under manualSeed and Generator, float32 = float64 truncated to 24 bits, ranges and
// loose moments.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { mt } from '../helpers.js';
import { boxMuller, philox4x32 } from '../../src/core/philox.js';

const values = (t: mt.Tensor) => Array.from(t.dataSync());
const hex = (w: Uint32Array) => Array.from(w, (v) => v.toString(16).padStart(8, '0'));

describe('Philox4x32-10', () => {
  test('known-answer vectors from Random123 (kat_vectors)', () => {
    const out = new Uint32Array(4);
    philox4x32([0, 0, 0, 0], [0, 0], out);
    assert.deepEqual(hex(out), ['6627e8d5', 'e169c58d', 'bc57ac4c', '9b00dbd8']);
    philox4x32([0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff], out);
    assert.deepEqual(hex(out), ['408f276d', '41c83b0e', 'a20bc7c6', '6d5451fd']);
    philox4x32([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0], out);
    assert.deepEqual(hex(out), ['d16cfe09', '94fdcceb', '5001e420', '24126ea1']);
  });

  test('float64 rand draws are the 53-bit uniforms of consecutive Philox blocks keyed by the seed', () => {
    const seed = 7;
    mt.manualSeed(seed);
    const r = values(mt.rand([6], { dtype: 'float64' }));
    const words = new Uint32Array(4);
    const expected: number[] = [];
    for (let block = 0; block < 3; block++) {
      philox4x32([block, 0, 0, 0], [seed, 0], words);
      expected.push(((words[0]! >>> 5) * 2 ** 26 + (words[1]! >>> 6)) / 2 ** 53);
      expected.push(((words[2]! >>> 5) * 2 ** 26 + (words[3]! >>> 6)) / 2 ** 53);
    }
    assert.deepEqual(r, expected);
  });

  test('float64 randn draws are Box–Muller pairs (cos, sin) of consecutive blocks, also from an odd position', () => {
    const seed = 11;
    const words = new Uint32Array(4);
    const pair = (block: number): [number, number] => {
      philox4x32([block, 0, 0, 0], [seed, 0], words);
      const u1 = ((words[0]! >>> 5) * 2 ** 26 + (words[1]! >>> 6)) / 2 ** 53;
      const u2 = ((words[2]! >>> 5) * 2 ** 26 + (words[3]! >>> 6)) / 2 ** 53;
      // The pair is boxMuller's: r·(cos, sin) of 2πu2 with the angle reduced exactly first, so
      // within a few ulp of Math.cos and Math.sin of the rounded angle.
      const r = Math.sqrt(-2 * Math.log(1 - u1)), out = new Float64Array(2);
      boxMuller(u1, u2, out);
      assert.ok(Math.abs(out[0]! - r * Math.cos(2 * Math.PI * u2)) <= 8e-16 * r && Math.abs(out[1]! - r * Math.sin(2 * Math.PI * u2)) <= 8e-16 * r, `block ${block}`);
      return [out[0]!, out[1]!];
    };
    mt.manualSeed(seed);
    const first = values(mt.randn([3], { dtype: 'float64' }));  // values 0, 1, 2 of the stream
    const next = values(mt.randn([2], { dtype: 'float64' }));   // a draw starts on a whole block: 4, 5
    assert.deepEqual(first, [...pair(0), pair(1)[0]]);
    assert.deepEqual(next, pair(2));
    // A state restored to an odd position starts on a sin half.
    const g = new mt.Generator(0);
    g.setState({ key: [seed, 0], counter: 3 });
    assert.deepEqual(values(mt.randn([4], { dtype: 'float64', generator: g })), [pair(1)[1], ...pair(2), pair(3)[0]]);
    // float32 draws are the same numbers rounded (normals) or truncated to 24 bits (uniforms).
    mt.manualSeed(seed);
    assert.deepEqual(values(mt.randn([3])), first.map(Math.fround));
  });
});

describe('seeded generators', () => {
  test('manualSeed(s) then randn/rand repeats exactly; different seeds differ', () => {
    for (const dtype of ['float32', 'float64'] as const) {
      mt.manualSeed(123);
      const a = values(mt.randn([64], { dtype })), b = values(mt.rand([3, 5], { dtype }));
      mt.manualSeed(123);
      assert.deepEqual(values(mt.randn([64], { dtype })), a);
      assert.deepEqual(values(mt.rand([3, 5], { dtype })), b);
      mt.manualSeed(124);
      const c = values(mt.randn([64], { dtype }));
      assert.ok(c.some((v, i) => v !== a[i]), 'another seed gives other numbers');
      // Consecutive draws from one seed differ too.
      mt.manualSeed(123);
      const first = values(mt.randn([64], { dtype })), second = values(mt.randn([64], { dtype }));
      assert.ok(second.some((v, i) => v !== first[i]));
    }
    // Large seeds use both key words.
    mt.manualSeed(2 ** 40 + 5);
    const hi = values(mt.rand([8], { dtype: 'float64' }));
    mt.manualSeed(5);
    assert.notDeepEqual(values(mt.rand([8], { dtype: 'float64' })), hi);
  });

  test('a Generator passed as {generator} is independent of the default generator', () => {
    mt.manualSeed(5);
    const expected = values(mt.randn([10], { dtype: 'float64' }));
    const g = new mt.Generator(5);
    const fromG = values(mt.randn([10], { dtype: 'float64', generator: g }));
    assert.deepEqual(fromG, expected, 'the same seed gives the same stream');
    mt.manualSeed(5);
    const g2 = new mt.Generator(99);
    const other = values(mt.rand([7], { generator: g2 }));
    mt.rand([3], { generator: g2 });
    assert.deepEqual(values(mt.randn([10], { dtype: 'float64' })), expected, 'drawing from g2 did not advance the default');
    const g3 = new mt.Generator(99);
    assert.deepEqual(values(mt.rand([7], { generator: g3 })), other);
    // getState/setState replay a stream.
    const state = g3.getState();
    const next = values(mt.randn([5], { generator: g3 }));
    g3.setState(state);
    assert.deepEqual(values(mt.randn([5], { generator: g3 })), next);
    // normal(shape, mean, std) is mean + std·randn from the same stream.
    const n = values(mt.normal([4], 10, 2, { dtype: 'float64', generator: new mt.Generator(3) }));
    const z = values(mt.randn([4], { dtype: 'float64', generator: new mt.Generator(3) }));
    assert.deepEqual(n, z.map((v) => v * 2 + 10));
    // ... and leaves nothing behind but its result (a router's weight init once leaked std·z).
    const live = mt.memory().liveHandles;
    mt.normal([3], 1, 2).dispose();
    assert.equal(mt.memory().liveHandles, live);
  });

  test('element i of a draw does not depend on the draw size (counter-based): prefixes agree', () => {
    for (const dtype of ['float32', 'float64'] as const) {
      for (const op of [mt.rand, mt.randn]) {
        mt.manualSeed(77);
        const long = values(op([33], { dtype }));
        mt.manualSeed(77);
        assert.deepEqual(values(op([5], { dtype })), long.slice(0, 5));
        mt.manualSeed(77);
        assert.deepEqual(values(op([4, 4], { dtype })), long.slice(0, 16));
      }
    }
  });

  test('float32 rand values are the float64 ones truncated to 24 bits (so they stay below 1)', () => {
    mt.manualSeed(2024);
    const r64 = values(mt.rand([10_000], { dtype: 'float64' }));
    mt.manualSeed(2024);
    const r32 = values(mt.rand([10_000], { dtype: 'float32' }));
    assert.deepEqual(r32, r64.map((v) => Math.floor(v * 2 ** 24) / 2 ** 24));
    mt.manualSeed(2024);
    const n64 = values(mt.randn([1000], { dtype: 'float64' }));
    mt.manualSeed(2024);
    const n32 = values(mt.randn([1000], { dtype: 'float32' }));
    n32.forEach((v, i) => assert.ok(Math.abs(v - n64[i]!) <= 2 ** -23 * Math.abs(n64[i]!), `randn float32 ${i}`));
  });

  test('rand is in [0, 1) with mean ≈ 1/2 and variance ≈ 1/12; randn has mean ≈ 0 and std ≈ 1 (1e5 samples)', () => {
    const n = 100_000;
    for (const dtype of ['float32', 'float64'] as const) {
      mt.manualSeed(31337);
      const u = values(mt.rand([n], { dtype }));
      let lo = Infinity, hi = -Infinity, s = 0, s2 = 0;
      for (const v of u) { lo = Math.min(lo, v); hi = Math.max(hi, v); s += v; s2 += v * v; }
      assert.ok(lo >= 0 && hi < 1, `rand range [${lo}, ${hi}]`);
      const mean = s / n, variance = s2 / n - mean * mean;
      // Standard errors: mean 0.0009, variance 0.0003; bounds are ~10σ.
      assert.ok(Math.abs(mean - 0.5) < 0.01, `rand mean ${mean}`);
      assert.ok(Math.abs(variance - 1 / 12) < 0.003, `rand variance ${variance}`);
      // Every tenth of [0, 1) gets about n/10 draws (σ ≈ 95).
      const bins = new Array<number>(10).fill(0);
      for (const v of u) bins[Math.floor(v * 10)]!++;
      bins.forEach((c, i) => assert.ok(Math.abs(c - n / 10) < 1000, `bin ${i}: ${c}`));

      const z = values(mt.randn([n], { dtype }));
      let zs = 0, zs2 = 0, inside = 0;
      for (const v of z) { zs += v; zs2 += v * v; if (Math.abs(v) < 1) inside++; assert.ok(Number.isFinite(v)); }
      const zm = zs / n, zsd = Math.sqrt(zs2 / n - zm * zm);
      // Standard errors: mean 0.0032, std 0.0022.
      assert.ok(Math.abs(zm) < 0.03, `randn mean ${zm}`);
      assert.ok(Math.abs(zsd - 1) < 0.03, `randn std ${zsd}`);
      // P(|z| < 1) = 0.6827 (σ ≈ 0.0015).
      assert.ok(Math.abs(inside / n - 0.6827) < 0.015, `P(|z| < 1) ≈ ${inside / n}`);
    }
  });
});
