// reluGrad (src/tensor/ops/fused.ts): relu's gradient in one kernel, with the bits of the
// composition mul(dy, cast(greater(x, 0))) it replaces — NaN, ±0 and ±∞ included — in float32
// and float64; autograd uses it (and the composition for gradients of gradients).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { reluGrad } from '../../src/tensor/ops/fused.js';
import { getBackend } from '../../src/tensor/engine.js';
import { mt, numRuns } from '../helpers.js';
import { useUnfusedCpu } from './unfused-cpu.js';

const bits = (t: mt.Tensor) => Array.from(t.dataSync());
const SPECIAL = [0, -0, NaN, Infinity, -Infinity, 1e-40, -1e-40, 1, -1];
const value = fc.oneof(fc.double({ noNaN: false }), fc.constantFrom(...SPECIAL));

test('reluGrad: the bits of mul(dy, cast(greater(x, 0))) for any values (NaN, ±0, ±∞), float32 and float64', () => {
  assert.equal(getBackend().supports?.('reluGrad'), true);
  fc.assert(fc.property(fc.array(fc.tuple(value, value), { minLength: 1, maxLength: 40 }), (pairs) => {
    for (const dtype of ['float32', 'float64'] as const) {
      const dy = mt.tensor(pairs.map((p) => p[0]), [pairs.length], { dtype }), x = mt.tensor(pairs.map((p) => p[1]), [pairs.length], { dtype });
      const want = bits(mt.mul(dy, mt.greater(x, 0).cast(dtype)));
      assert.deepEqual(bits(reluGrad(dy, x, false)).map((v) => Object.is(v, -0) ? '-0' : v), want.map((v) => Object.is(v, -0) ? '-0' : v));
    }
  }), numRuns(60));
});

test('relu backward: the fused gradient equals the composed one bit for bit; gradgradcheck still passes', () => {
  const run = () => {
    mt.manualSeed(11);
    const x = mt.randn([37, 29]).requiresGrad_(), r = mt.randn([37, 29]);
    mt.relu(x).mul(r).sum().backward();
    return bits(x.grad!);
  };
  const fused = run();
  const x64 = mt.randn([3, 4], { dtype: 'float64' }).add(0.05).requiresGrad_();
  assert.ok(mt.gradgradcheck((t: mt.Tensor) => mt.relu(t).mul(t), [x64]));
  useUnfusedCpu();
  assert.deepEqual(run(), fused);
});
