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

test('every public op is also a tensor method (creation functions and multi-tensor helpers aside)', () => {
  const notMethods = new Set([
    'tensor', 'full', 'zeros', 'ones', 'zerosLike', 'onesLike', 'arange', 'linspace', 'eye', 'randn', 'rand', 'normal', 'manualSeed',
    'Generator', 'defaultGenerator', 'assembleSlices', 'logsumexpShift',
  ]);
  const proto = mt.Tensor.prototype as unknown as Record<string, unknown>;
  const missing = Object.keys(ops).filter((name) => {
    const fn = (ops as Record<string, unknown>)[name];
    return typeof fn === 'function' && isOp(name) && !notMethods.has(name) && typeof proto[name] !== 'function';
  });
  assert.deepEqual(missing, []);
});

/** The tensor ops: everything exported from src/tensor/ops. */
import * as ops from '../../src/tensor/ops/index.js';
function isOp(name: string): boolean { return name in ops; }
