// Noisy top-k gating's fused ops (src/tensor/ops/fused.ts: topkGates, probInTopKAt; CPU
// kernels in src/backends/cpu/gating.ts). Their kernels give the bits of the composition the
// gate ran before (topk's values, softmax, scatter-add into zeros; balancing.ts's probInTopK),
// forward and backward, float32 and float64, ties and −0 included; so do their compositions
// on a backend without the kernels and their createGraph rules; float64 gradients pass
// gradcheck and gradgradcheck; the gate gives the same bits fused and composed; bad input is
// named.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { probInTopKAt, topkGates, topkIndices } from '../../src/tensor/ops/fused.js';
import { getBackend } from '../../src/tensor/engine.js';
import { mt, numRuns } from '../helpers.js';
import { useUnfusedCpu } from './unfused-cpu.js';

const bits = (t: mt.Tensor) => Array.from(t.dataSync());

interface Case { N: number; E: number; k: number; levels: number; seed: number }

/** Logits drawn from `levels` values (ties) or normals (levels 0), scaled over 2^-20 … 2^20. */
function logits(c: Case, dtype: 'float32' | 'float64'): number[] {
  const u = Array.from(mt.rand([c.N * c.E], { dtype: 'float64' }).dataSync());
  const z = Array.from(mt.randn([c.N * c.E], { dtype: 'float64' }).dataSync());
  const scale = 2 ** Math.floor(40 * u[0]! - 20);
  return z.map((v, i) => (c.levels > 0 ? Math.floor(u[i]! * c.levels) - 1 : v * scale)).map((v) => (dtype === 'float32' ? Math.fround(v) : v));
}

/**
 * Gates and P of one case, and a loss Σ gates·r + Σ P·q backpropagated to clean, noisy and
 * stddev (leaves): `how` 'fused' runs the fused ops, 'reference' the gate's former composition.
 */
function run(c: Case, dtype: 'float32' | 'float64', how: 'fused' | 'reference', createGraph = false) {
  mt.manualSeed(c.seed);
  const shape = [c.N, c.E];
  const clean = mt.tensor(logits(c, dtype), shape, { dtype }).requiresGrad_();
  const noisy = mt.tensor(logits(c, dtype), shape, { dtype }).requiresGrad_();
  const stddev = mt.rand(shape, { dtype }).add(0.01).requiresGrad_();
  const r = mt.randn(shape, { dtype }), q = mt.randn(shape, { dtype });
  const m = Math.min(c.k + 1, c.E);
  let gates: mt.Tensor, p: mt.Tensor | null = null;
  if (how === 'fused') {
    const top = topkIndices(noisy, m);
    gates = topkGates(noisy, top, c.k);
    if (c.k < c.E) p = probInTopKAt(clean, noisy, stddev, top, c.k);
  } else {
    const top = mt.topk(noisy, m);
    const values = m === c.k ? top.values : mt.slice(top.values, [0, 0], [c.N, c.k]);
    const indices = m === c.k ? top.indices : mt.slice(top.indices, [0, 0], [c.N, c.k]);
    gates = mt.scatterAdd(mt.zeros(shape, { dtype }), 1, indices, mt.softmax(values, -1));
    if (c.k < c.E) p = mt.probInTopK(clean, noisy, stddev, top.values, c.k);
  }
  const loss = p ? gates.mul(r).sum().add(p.mul(q).sum()) : gates.mul(r).sum();
  const leaves = [clean, noisy, stddev];
  const grads = createGraph ? mt.autograd.grad(loss, leaves, { createGraph: true, allowUnused: true }) : (loss.backward(), leaves.map((t) => t.grad));
  return {
    gatesFn: gates.gradFn, pFn: p?.gradFn, gates: bits(gates), p: p ? bits(p) : [],
    grads: grads.map((g) => (g ? bits(g) : null)),
  };
}

const caseArb = fc.integer({ min: 1, max: 9 }).chain((E) => fc.record({
  N: fc.integer({ min: 1, max: 6 }), E: fc.constant(E), k: fc.integer({ min: 1, max: E }),
  levels: fc.constantFrom(0, 0, 2, 3), seed: fc.integer({ min: 0, max: 1e6 }),
}));

test('topkGates and probInTopKAt: the bits of the former composition, forward and backward (ties, wide magnitudes, float32 and float64)', () => {
  fc.assert(fc.property(caseArb, (c) => {
    for (const dtype of ['float32', 'float64'] as const) {
      const got = run(c, dtype, 'fused'), want = run(c, dtype, 'reference');
      assert.equal(got.gatesFn, 'topkGates');
      if (c.k < c.E) assert.equal(got.pFn, 'probInTopK');
      assert.deepEqual(got.gates, want.gates);
      assert.deepEqual(got.p, want.p);
      assert.deepEqual(got.grads, want.grads);
    }
  }), numRuns(60));
});

test('topkGates and probInTopKAt: composed where the backend has no kernels, and their createGraph rules, give the same bits', () => {
  assert.equal(getBackend().supports?.('topkGates'), true);
  assert.equal(getBackend().supports?.('probInTopK'), true);
  const cases: Case[] = [{ N: 5, E: 6, k: 2, levels: 0, seed: 3 }, { N: 4, E: 5, k: 1, levels: 3, seed: 8 }, { N: 3, E: 4, k: 4, levels: 0, seed: 1 }];
  for (const c of cases) {
    for (const dtype of ['float32', 'float64'] as const) {
      const want = run(c, dtype, 'reference');
      assert.deepEqual(run(c, dtype, 'fused', true).grads, run(c, dtype, 'reference', true).grads, `createGraph ${dtype} ${JSON.stringify(c)}`);
      useUnfusedCpu();
      const composed = run(c, dtype, 'fused');
      assert.equal(composed.gatesFn, 'scatterAdd');
      assert.deepEqual({ ...composed, gatesFn: '', pFn: '' }, { ...want, gatesFn: '', pFn: '' }, `composed ${dtype} ${JSON.stringify(c)}`);
      mt.setBackend('cpu');
    }
  }
});

test('topkGates and probInTopKAt: float64 gradcheck and gradgradcheck', () => {
  mt.manualSeed(11);
  const [N, E, k] = [3, 5, 2];
  const noisy = mt.randn([N, E], { dtype: 'float64' }).requiresGrad_();
  const clean = mt.randn([N, E], { dtype: 'float64' }).requiresGrad_();
  const stddev = mt.rand([N, E], { dtype: 'float64' }).add(0.5).requiresGrad_();
  // The indices are a constant of the check: perturbing the logits must not reorder the top.
  const top = topkIndices(noisy.detach(), k + 1);
  const gates = (x: mt.Tensor) => topkGates(x, top, k);
  const p = (a: mt.Tensor, b: mt.Tensor, s: mt.Tensor) => probInTopKAt(a, b, s, top, k);
  assert.ok(mt.gradcheck(gates, [noisy]));
  assert.ok(mt.gradgradcheck(gates, [noisy]));
  assert.ok(mt.gradcheck(p, [clean, noisy, stddev]));
  assert.ok(mt.gradgradcheck(p, [clean, noisy, stddev]));
});

test('NoisyTopKGating: the same gates, load and gradients with the fused kernels and composed (float32, training)', () => {
  const once = () => {
    mt.manualSeed(4);
    const gate = new mt.NoisyTopKGating({ inputSize: 8, numExperts: 6, k: 2 });
    for (const w of [gate.w_gate, gate.w_noise]) w.assign(mt.randn(w.shape).mul(0.5));
    const x = mt.randn([7, 8]);
    const g = gate.forward(x);
    g.gates.mul(mt.randn([7, 6])).sum().add(g.load.square().sum()).backward();
    return [g.gates, g.load, g.importance, g.indices, gate.w_gate.grad!, gate.w_noise.grad!].map(bits);
  };
  const fused = once();
  useUnfusedCpu();
  assert.deepEqual(once(), fused);
});

test('topkGates and probInTopKAt: bad input names the op, the argument and the shapes', () => {
  const x = mt.zeros([3, 4]), top = mt.tensor([0, 1, 2, 1, 2, 3, 3, 0, 1], [3, 3], { dtype: 'int32' });
  assert.throws(() => topkGates(x, mt.zeros([3, 2]), 2), /topkGates: indices must be int32 \[3, m\] with 2 ≤ m ≤ 4 .* got float32 \[3, 2\]/);
  assert.throws(() => topkGates(x, top, 4), /topkGates: indices must be int32 \[3, m\] with 4 ≤ m ≤ 4 .* got int32 \[3, 3\]/);
  assert.throws(() => topkGates(mt.zeros([4]), top, 2), /topkGates: x must be \[N, E\], got \[4\]/);
  assert.throws(() => topkGates(x, top, 0), /topkGates: k must be a positive integer, got 0/);
  assert.throws(() => topkGates(x, mt.tensor([0, 4, 0, 1, 0, 1], [3, 2], { dtype: 'int32' }), 2), /topkGates: index 4 is out of range for 4 experts/);
  assert.throws(() => probInTopKAt(x, x, mt.zeros([3, 5]), top, 2), /probInTopKAt: stddev must be float32 \[3, 4\] like clean, got float32 \[3, 5\]/);
  assert.throws(() => probInTopKAt(x, x.double(), x, top, 2), /probInTopKAt: noisy must be float32 \[3, 4\] like clean, got float64 \[3, 4\]/);
  assert.throws(() => probInTopKAt(x, x, x, top, 3), /probInTopKAt: indices must be int32 \[3, m\] with 4 ≤ m ≤ 4/);
  assert.throws(() => probInTopKAt(x, x, x, mt.tensor([0, 1, -1, 1, 2, 3, 3, 0, 1], [3, 3], { dtype: 'int32' }), 2), /probInTopK: index -1 is out of range for 4 experts/);
  assert.throws(() => topkGates(mt.zeros([3, 4], { dtype: 'int32' }), top, 2), /topkGates: argument 'x' must be a float tensor/);
});
