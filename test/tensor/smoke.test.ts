import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mt } from '../helpers.js';

test('a matmul → relu → sum graph gives the hand-computed value and gradient', () => {
  const a = mt.tensor([[1, -2], [3, 4]], { requiresGrad: true });
  const b = mt.tensor([[5, 6], [7, 8]]);
  const c = a.matmul(b).relu().sum();
  // a·b = [[-9, -10], [43, 50]] → relu → 93
  assert.equal(c.item(), 93);
  c.backward();
  // d/da = relu'(ab) · bᵀ: row 0 masked out.
  assert.deepEqual(a.grad!.toArray(), [[0, 0], [11, 15]]);
});
