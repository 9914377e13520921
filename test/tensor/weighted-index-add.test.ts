// weightedIndexAdd (src/tensor/ops/fused.ts): the MoE combine as one op. Its kernels give the
// bits of the composition they replace (a multiply by the gates, then indexAdd; in backward a
// gather, two multiplies and a row sum), forward and backward, in float32 and float64; a backend
// without them composes; float64 gradients pass gradcheck and gradgradcheck; bad input is named.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { weightedIndexAdd } from '../../src/tensor/ops/fused.js';
import { getBackend } from '../../src/tensor/engine.js';
import { mt, numRuns } from '../helpers.js';
import { useUnfusedCpu } from './unfused-cpu.js';

const bits = (t: mt.Tensor) => Array.from(t.dataSync());

interface Case { numRows: number; index: number[]; d: number; seed: number }

/** out = weightedIndexAdd(y, w, index) (or its composition), loss Σ out·r; values and gradients. */
function run(c: Case, dtype: 'float32' | 'float64', fused: boolean) {
  mt.manualSeed(c.seed);
  const M = c.index.length;
  const y = mt.randn([M, c.d], { dtype }).requiresGrad_();
  const w = mt.rand([M], { dtype }).requiresGrad_();
  const index = mt.tensor(c.index, [M], { dtype: 'int32' });
  const r = mt.randn([c.numRows, c.d], { dtype });
  const out = fused ? weightedIndexAdd(y, w, index, c.numRows)
    : mt.indexAdd(mt.zeros([c.numRows, c.d], { dtype }), 0, index, y.mul(w.reshape([M, 1])));
  out.mul(r).sum().backward();
  return { gradFn: out.gradFn, out: bits(out), dy: bits(y.grad!), dw: bits(w.grad!) };
}

const caseArb = fc.integer({ min: 1, max: 9 }).chain((numRows) => fc.record({
  numRows: fc.constant(numRows),
  index: fc.array(fc.integer({ min: 0, max: numRows - 1 }), { minLength: 0, maxLength: 24 }),
  d: fc.integer({ min: 1, max: 40 }), seed: fc.integer({ min: 0, max: 1e6 }),
}));

test('weightedIndexAdd: the bits of multiply-then-indexAdd, forward and backward (repeated and missing rows, float32 and float64)', () => {
  fc.assert(fc.property(caseArb, (c) => {
    for (const dtype of ['float32', 'float64'] as const) {
      const got = run(c, dtype, true), want = run(c, dtype, false);
      assert.equal(got.gradFn, 'weightedIndexAdd');
      assert.deepEqual(got.out, want.out);
      assert.deepEqual(got.dy, want.dy);
      assert.deepEqual(got.dw, want.dw);
    }
  }), numRuns(40));
});

test('weightedIndexAdd on the SIMD math module (float32, rows a multiple of 4 wide): the scalar kernels\' bits, forward and backward, and it ran there', () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 40 }).chain((numRows) => fc.record({
    numRows: fc.constant(numRows),
    index: fc.array(fc.integer({ min: 0, max: numRows - 1 }), { minLength: 1, maxLength: 90 }),
    d: fc.integer({ min: 1, max: 24 }).map((q) => 4 * q), seed: fc.integer({ min: 0, max: 1e6 }),
  })), (c) => {
    mt.manualSeed(c.seed);
    const M = c.index.length;
    const [yv, wv, rv] = [mt.randn([M, c.d]), mt.rand([M]), mt.randn([c.numRows, c.d])].map((t) => Array.from(t.dataSync()));
    // Magnitudes 2^-40 … 2^40 apart, so that a float64 row sum rounds and its order shows.
    const scale = Array.from(mt.rand([M * c.d]).dataSync()).map((u) => 2 ** Math.floor(80 * u - 40));
    yv!.forEach((v, i) => { yv![i] = Math.fround(v * scale[i]!); });
    const once = () => {
      const y = mt.tensor(yv!, [M, c.d]).requiresGrad_(), w = mt.tensor(wv!, [M]).requiresGrad_();
      const index = mt.tensor(c.index, [M], { dtype: 'int32' }), r = mt.tensor(rv!, [c.numRows, c.d]);
      const calls = () => mt.backendInfo().simdMathCalls as number;
      const before = calls();
      const out = weightedIndexAdd(y, w, index, c.numRows);
      out.backward(r); // no other op, so that the calls counted are the combine's
      return { calls: calls() - before, out: bits(out), dy: bits(y.grad!), dw: bits(w.grad!) };
    };
    const simd = once();
    assert.equal(simd.calls, M * c.d >= 16 ? 2 : 0, 'forward and backward on the math module');
    mt.setBackend('cpu', { simd: false });
    try {
      const scalar = once();
      assert.deepEqual(simd.out, scalar.out);
      assert.deepEqual(simd.dy, scalar.dy);
      assert.deepEqual(simd.dw, scalar.dw);
    } finally {
      mt.setBackend('cpu', { simd: true });
    }
  }), numRuns(30));
  // The gate's gradient sums its row in column order in float64: (2^60 + 1) − 2^60 is 0, where
  // any other order of the second vector's lanes gives 1.
  for (const simd of [true, false]) {
    mt.setBackend('cpu', { simd });
    const y = mt.tensor([[2 ** 60, 0, 0, 0, 1, -(2 ** 60), 0, 0], [1, 2, 3, 4, 5, 6, 7, 8]]).requiresGrad_();
    const w = mt.tensor([0.5, 0.25]).requiresGrad_();
    weightedIndexAdd(y, w, mt.tensor([0, 0], [2], { dtype: 'int32' }), 1).sum().backward();
    assert.deepEqual(Array.from(w.grad!.dataSync()), [0, 36], `simd=${simd}`);
  }
  mt.setBackend('cpu', { simd: true });
  const index = mt.tensor([0, 5, 1, 2], [4], { dtype: 'int32' });
  assert.throws(() => weightedIndexAdd(mt.zeros([4, 8]), mt.zeros([4]), index, 3), /weightedIndexAdd: index 5 is out of range for axis 0 of size 3/);
});

test('weightedIndexAdd: composed where the backend has no kernel (same bits); float64 gradcheck and gradgradcheck', () => {
  assert.equal(getBackend().supports?.('weightedIndexAdd'), true);
  const c: Case = { numRows: 4, index: [2, 0, 2, 3, 2], d: 3, seed: 5 };
  const expected = run(c, 'float64', true);
  const index = mt.tensor(c.index, [5], { dtype: 'int32' });
  const y = mt.randn([5, 3], { dtype: 'float64' }).requiresGrad_();
  const w = mt.randn([5], { dtype: 'float64' }).requiresGrad_();
  const f = (a: mt.Tensor, b: mt.Tensor) => weightedIndexAdd(a, b, index, 4);
  assert.ok(mt.gradcheck(f, [y, w]));
  assert.ok(mt.gradgradcheck(f, [y, w]));
  useUnfusedCpu();
  const composed = run(c, 'float64', true);
  assert.equal(composed.gradFn, 'indexAdd');
  assert.deepEqual({ ...composed, gradFn: '' }, { ...expected, gradFn: '' });
});

test('weightedIndexAdd: bad input names the op, the argument and the shapes', () => {
  const y = mt.zeros([3, 2]), w = mt.zeros([3]), index = mt.tensor([0, 1, 1], [3], { dtype: 'int32' });
  assert.throws(() => weightedIndexAdd(y, mt.zeros([2]), index, 2), /weightedIndexAdd: y must be float \[M, d\], weights \[M\] of y's dtype and index int32 \[M\]; got y float32 \[3, 2\], weights float32 \[2\], index int32 \[3\]/);
  assert.throws(() => weightedIndexAdd(y, w, mt.zeros([3]), 2), /weightedIndexAdd: .*index float32 \[3\]/);
  assert.throws(() => weightedIndexAdd(y, w.double(), index, 2), /weightedIndexAdd: .*weights float64 \[3\]/);
  assert.throws(() => weightedIndexAdd(y, w, index, -1), /weightedIndexAdd: numRows must be a non-negative integer, got -1/);
  assert.throws(() => weightedIndexAdd(y, w, index, 1), /weightedIndexAdd: index 1 is out of range for axis 0 of size 1/);
  assert.throws(() => weightedIndexAdd(mt.zeros([3, 2], { dtype: 'int32' }), w, index, 2), /weightedIndexAdd: argument 'y' must be a float tensor/);
  assert.throws(() => weightedIndexAdd(y, 3 as unknown as mt.Tensor, index, 2), /weightedIndexAdd: argument 'weights' must be a Tensor/);
});
