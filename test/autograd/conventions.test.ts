// One stated convention per non-smooth point (see the header of src/autograd/rules.ts),
// each tested deterministically.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { leaf, mt } from '../helpers.js';

const gradOf = (f: (x: mt.Tensor) => mt.Tensor, values: number[], shape = [values.length]) => {
  const x = leaf(values, shape);
  f(x).sum().backward();
  return Array.from(x.grad!.dataSync());
};

test("relu'(0) = 0 and abs'(0) = 0 (minimum-norm subgradient, as PyTorch)", () => {
  assert.deepEqual(gradOf((x) => x.relu(), [-1, 0, 2]), [0, 0, 1]);
  assert.deepEqual(gradOf((x) => x.abs(), [-1, 0, 2]), [-1, 0, 1]);
});

test('maximum/minimum split the gradient ½/½ on ties (PyTorch)', () => {
  const a = leaf([1, 2, 3], [3]), b = leaf([1, 5, 0], [3]);
  a.maximum(b).sum().backward();
  assert.deepEqual(Array.from(a.grad!.dataSync()), [0.5, 0, 1]);
  assert.deepEqual(Array.from(b.grad!.dataSync()), [0.5, 1, 0]);
  const c = leaf([4, 4], [2]);
  c.minimum(4).sum().backward();
  assert.deepEqual(Array.from(c.grad!.dataSync()), [0.5, 0.5]);
});

test('max/min reductions send the gradient to the first extreme on ties, over any axes', () => {
  assert.deepEqual(gradOf((x) => x.max(), [1, 3, 3, 2]), [0, 1, 0, 0]);
  assert.deepEqual(gradOf((x) => x.min(1), [2, 1, 1, 5, 5, 7], [2, 3]), [0, 1, 0, 1, 0, 0]);
  // Over axes [0, 2] of a [2, 2, 2] tensor with all values tied: the first in row-major order of the reduced axes.
  assert.deepEqual(gradOf((x) => x.max([0, 2]), [1, 1, 1, 1, 1, 1, 1, 1], [2, 2, 2]), [1, 0, 1, 0, 0, 0, 0, 0]);
});

test('topk ties: lowest index first, and the gradient flows to the returned positions only', () => {
  const x = leaf([3, 1, 3, 2], [4]);
  const { values, indices } = x.topk(2);
  assert.deepEqual(Array.from(indices.dataSync()), [0, 2]);
  values.mul(mt.tensor([10, 1], { dtype: 'float64' })).sum().backward();
  assert.deepEqual(Array.from(x.grad!.dataSync()), [10, 0, 1, 0]);
  const y = leaf([5, 5, 5], [3]);
  y.topk(1).values.sum().backward();
  assert.deepEqual(Array.from(y.grad!.dataSync()), [1, 0, 0]);
});

test("sqrt'(0) is +inf (the limit), log'(0) is +inf, as PyTorch", () => {
  assert.deepEqual(gradOf((x) => x.sqrt(), [0, 4]), [Infinity, 0.25]);
  assert.deepEqual(gradOf((x) => x.log(), [0]), [Infinity]);
});

test('d(aᵇ)/db is 0 where a = 0 (PyTorch), and clamp passes the gradient at its bounds', () => {
  const a = leaf([0, 2], [2]), b = leaf([2, 3], [2]);
  a.pow(b).sum().backward();
  assert.deepEqual(Array.from(b.grad!.dataSync()), [0, 8 * Math.log(2)]);
  assert.deepEqual(gradOf((x) => x.clamp(-1, 1), [-2, -1, 0, 1, 2]), [0, 1, 1, 1, 0]);
});

test('floor, ceil and round have gradient 0, their jumps included (PyTorch)', () => {
  for (const name of ['floor', 'ceil', 'round'] as const) {
    assert.deepEqual(gradOf((x) => x[name](), [-1.5, -1, 0, 0.5, 2.5, 3.7]), [0, 0, 0, 0, 0, 0]);
  }
});

test('sort: each value\'s gradient goes back to its position; ties keep their order (stable)', () => {
  const x = leaf([3, 1, 3, 2], [4]);
  const { values, indices } = x.sort();
  assert.deepEqual(Array.from(indices.dataSync()), [1, 3, 0, 2]);
  values.mul(mt.tensor([1, 10, 100, 1000], { dtype: 'float64' })).sum().backward();
  assert.deepEqual(Array.from(x.grad!.dataSync()), [100, 1, 1000, 10]);
  const y = leaf([3, 1, 3, 2], [4]);
  const down = y.sort(0, true);
  assert.deepEqual(Array.from(down.indices.dataSync()), [0, 2, 3, 1]); // the first 3 first
  down.values.mul(mt.tensor([1, 10, 100, 1000], { dtype: 'float64' })).sum().backward();
  assert.deepEqual(Array.from(y.grad!.dataSync()), [1, 1000, 10, 100]);
});

test('prod: the gradient is the product of the other entries, zeros included', () => {
  assert.deepEqual(gradOf((x) => x.prod(), [2, 0, 3]), [0, 6, 0]);       // one zero
  assert.deepEqual(gradOf((x) => x.prod(), [2, 0, 0, 3]), [0, 0, 0, 0]);  // two zeros
  assert.deepEqual(gradOf((x) => x.prod(1), [2, 4, 0, 5], [2, 2]), [4, 2, 5, 0]);
});

test('norm: gradient 0 where the norm is 0 (every p); p = ±∞ shares it equally among ties', () => {
  for (const p of [2, 1, 3, 1.5, 0.5, Infinity]) {
    assert.deepEqual(gradOf((x) => x.norm(p), [0, 0, 0]), [0, 0, 0], `p = ${p}`);
  }
  assert.deepEqual(gradOf((x) => x.norm(1), [-2, 0, 3]), [-1, 0, 1]); // sign(0) = 0
  assert.deepEqual(gradOf((x) => x.norm(Infinity), [-3, 1, 3, 2]), [-0.5, 0, 0.5, 0]);
  assert.deepEqual(gradOf((x) => x.norm(-Infinity), [-1, 1, 3]), [-0.5, 0.5, 0]);
  assert.deepEqual(gradOf((x) => x.norm(0), [0, 1, 3]), [0, 0, 0]);
});

test('std: gradient 0 where a slice is constant (PyTorch), not 0·∞ = NaN', () => {
  assert.deepEqual(gradOf((x) => x.std(1), [2, 2, 1, 3], [2, 2]), [0, 0, -1 / Math.SQRT2, 1 / Math.SQRT2]);
});
