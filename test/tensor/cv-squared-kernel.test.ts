// The balancing losses' cv² as one fused op (src/tensor/ops/fused.ts cvSquaredFused and
// cvSquaredGrad; CPU kernels in src/backends/cpu/gating.ts). The kernels give the bits of
// moe/balancing.ts's composition (mean → sub → square → mean → square → add → div) forward and
// backward, float32 and float64, wide magnitudes, ties, zeros, −0, NaN and one element
// included, with other gradients into v summed in; so do the createGraph rule and a whole MoE
// step; float64 gradients pass gradcheck and gradgradcheck; bad input is named.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { getBackend } from '../../src/tensor/engine.js';
import { mt, numRuns, withKernel } from '../helpers.js';

const KERNELS = ['cvSquared', 'cvSquaredBackward'];
const bits = (t: mt.Tensor | null | undefined) => (t ? Array.from(t.dataSync()) : null);

interface Case { shape: number[]; kind: 'normal' | 'ties' | 'special'; scale: number; seed: number }

function values(c: Case, n: number, dtype: 'float32' | 'float64'): number[] {
  mt.manualSeed(c.seed);
  const z = Array.from(mt.randn([n], { dtype: 'float64' }).dataSync());
  const special = [0, -0, 1, -1, 2 ** -30, 3, Number.NaN, 1e30];
  const raw = z.map((v, i) => (c.kind === 'normal' ? v * c.scale : c.kind === 'ties' ? Math.round(v) : special[(i + c.seed) % special.length]!));
  return raw.map((v) => (dtype === 'float32' ? Math.fround(v) : v));
}

/**
 * cv²(v) for a leaf v of the case, scaled by w, plus Σ v·r (another gradient into v, summed
 * with cv²'s); backward or, with createGraph, autograd.grad. Fused or composed by `fused`.
 */
function run(c: Case, dtype: 'float32' | 'float64', fused: boolean, createGraph = false) {
  return withKernel(KERNELS, fused, () => {
    const n = c.shape.reduce((a, b) => a * b, 1);
    const v = mt.tensor(values(c, n, dtype), c.shape, { dtype }).requiresGrad_();
    const w = mt.tensor([c.seed % 2 === 0 ? 0.01 : 3.5], [], { dtype });
    const r = mt.randn(c.shape, { dtype });
    const cv = mt.cvSquared(v);
    const loss = cv.mul(w).add(v.mul(r).sum());
    const grad = createGraph ? mt.autograd.grad(loss, [v], { createGraph: true })[0]! : (loss.backward(), v.grad!);
    return { fn: cv.gradFn, cv: bits(cv), grad: bits(grad) };
  });
}

const caseArb = fc.record({
  shape: fc.oneof(fc.tuple(fc.integer({ min: 1, max: 40 })).map((s) => [...s]), fc.tuple(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 7 })).map((s) => [...s])),
  kind: fc.constantFrom('normal', 'normal', 'ties', 'special'),
  scale: fc.constantFrom(1, 2 ** -20, 2 ** 20, 1e-3),
  seed: fc.integer({ min: 0, max: 1e6 }),
}) as fc.Arbitrary<Case>;

test('cvSquared: one kernel each way with the bits of the composition (float32 and float64, ties, zeros, −0, NaN, one element)', () => {
  assert.equal(getBackend().supports?.('cvSquared'), true);
  fc.assert(fc.property(caseArb, (c) => {
    for (const dtype of ['float32', 'float64'] as const) {
      const got = run(c, dtype, true), want = run(c, dtype, false);
      assert.equal(got.fn, 'cvSquared');
      assert.equal(want.fn, 'div');
      assert.deepEqual(got.cv, want.cv, `cv² ${dtype} ${JSON.stringify(c)}`);
      assert.deepEqual(got.grad, want.grad, `∂v ${dtype} ${JSON.stringify(c)}`);
    }
  }), numRuns(80));
  // The edge cases by name: one element and a constant vector give 0, all zeros 0 (1e-10 keeps
  // the quotient finite), a NaN propagates.
  for (const [vals, want] of [[[5], 0], [[2, 2, 2], 0], [[0, 0, 0, 0], 0], [[1, Number.NaN], Number.NaN]] as const) {
    const cv = mt.cvSquared(mt.tensor([...vals]));
    assert.equal(cv.gradFn, null);
    assert.ok(Object.is(cv.item(), want), `cvSquared(${vals}) = ${cv.item()}`);
  }
});

test('cvSquared: its createGraph rule gives the composition\'s bits, and float64 passes gradcheck and gradgradcheck', () => {
  const cases: Case[] = [{ shape: [16], kind: 'normal', scale: 1, seed: 3 }, { shape: [3, 4], kind: 'ties', scale: 1, seed: 8 }, { shape: [1], kind: 'normal', scale: 1, seed: 2 }];
  for (const c of cases) {
    for (const dtype of ['float32', 'float64'] as const) {
      const got = run(c, dtype, true, true), want = run(c, dtype, false, true);
      assert.equal(got.fn, 'cvSquared');
      assert.deepEqual(got.grad, want.grad, `createGraph ${dtype} ${JSON.stringify(c)}`);
    }
  }
  mt.manualSeed(5);
  const v = mt.rand([6], { dtype: 'float64' }).add(0.5).requiresGrad_();
  assert.ok(mt.gradcheck((x: mt.Tensor) => mt.cvSquared(x), [v]));
  assert.ok(mt.gradgradcheck((x: mt.Tensor) => mt.cvSquared(x), [v]));
});

test('cvSquared: a whole MoE step gives the same output, auxLoss and gradients with the kernels and composed', () => {
  const once = (fused: boolean) => withKernel(KERNELS, fused, () => {
    mt.manualSeed(6);
    const moe = new mt.MoE({ inputSize: 16, outputSize: 16, hiddenSize: 24, numExperts: 8, k: 2 });
    const x = mt.randn([40, 16]);
    const o = moe.forward(x);
    o.output.square().sum().add(o.auxLoss).backward();
    return [bits(o.output), bits(o.auxLoss), bits(o.stats.cvImportance), bits(o.stats.cvLoad), ...moe.parameters().map((p) => bits(p.grad))];
  });
  const fused = once(true), composed = once(false);
  fused.forEach((f, i) => assert.deepEqual(f, composed[i], `MoE output ${i}`));
});

test('cvSquared: bad input names the op and the argument', () => {
  assert.throws(() => mt.cvSquared(mt.zeros([0])), /cvSquared: v is empty \(shape \[0\]\)/);
  assert.throws(() => mt.cvSquared(mt.zeros([3], { dtype: 'int32' })), /cvSquared: v must be a float tensor, got int32 \[3\]/);
});
