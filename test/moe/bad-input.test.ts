// Every public MoE function checks its own arguments and names itself and the shapes in
// its error, instead of letting an internal op (slice, matmul) report something the caller
// never called.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { mt } from '../helpers.js';

describe('MoE functions validate their arguments', () => {
  const N = 3, E = 4;
  const clean = mt.zeros([N, E]), noisy = mt.zeros([N, E]), stddev = mt.ones([N, E]);

  test('probInTopK: k out of range, mismatched shapes, too few top values', () => {
    const top = mt.zeros([N, E]);
    for (const k of [0, 4, 7, -1, 1.5]) {
      assert.throws(() => mt.probInTopK(clean, noisy, stddev, top, k), new RegExp(`^Error: probInTopK: k must be an integer in \\[1, 3\\] .*got ${k}$`));
    }
    assert.throws(() => mt.probInTopK(clean, noisy, stddev, mt.zeros([N, 2]), 2), /probInTopK: topValues must hold the k\+1 = 3 largest noisy logits per row, shape \[3, 3\], got \[3, 2\]/);
    assert.throws(() => mt.probInTopK(clean, mt.zeros([N, 5]), stddev, top, 2), /probInTopK: noisy has shape \[3, 5\] but clean has \[3, 4\]/);
    assert.throws(() => mt.probInTopK(mt.zeros([E]), noisy, stddev, top, 2), /probInTopK: clean must be 2-d, got shape \[4\]/);
    assert.throws(() => mt.probInTopK(clean, noisy, null as never, top, 2), /probInTopK: stddev must be a Tensor, got null/);
    // In range it still runs: k = 3 < E.
    assert.deepEqual(mt.probInTopK(clean, noisy, stddev, top, 3).shape, [N, E]);
  });

  test('cvSquared, importance, gatesToLoad, gateEntropy name themselves', () => {
    assert.throws(() => mt.cvSquared([1, 2] as never), /cvSquared: v must be a Tensor, got object/);
    assert.throws(() => mt.cvSquared(mt.zeros([0])), /cvSquared: v is empty \(shape \[0\]\)/);
    assert.throws(() => mt.importance(mt.zeros([4])), /importance: gates must be 2-d, got shape \[4\]/);
    assert.throws(() => mt.gatesToLoad(mt.zeros([2, 2], { dtype: 'int32' })), /gatesToLoad: gates must be a float tensor, got int32 \[2, 2\]/);
    assert.throws(() => mt.gateEntropy(undefined as never), /gateEntropy: gates must be a Tensor, got undefined/);
  });

  test('MoE.forward and HierarchicalMoE.forward with an input of another dtype name the layer, the shape and both dtypes', () => {
    const moe = new mt.MoE({ inputSize: 4, outputSize: 4, hiddenSize: 4, numExperts: 4, k: 2 });
    assert.throws(() => moe.forward(mt.zeros([3, 4], { dtype: 'int32' })), /^Error: MoE: input \[3, 4\] is int32 but the layer's weights are float32; cast it with x\.cast\('float32'\)$/);
    assert.throws(() => moe.forward(mt.zeros([2, 3, 4], { dtype: 'float64' })), /^Error: MoE: input \[2, 3, 4\] is float64 but the layer's weights are float32; cast it with x\.cast\('float32'\) or convert the layer with \.to\('float64'\)$/);
    const hmoe = new mt.HierarchicalMoE({ inputSize: 4, outputSize: 4, hiddenSize: 4, numGroups: 2, expertsPerGroup: 2 });
    assert.throws(() => hmoe.forward(mt.zeros([3, 4], { dtype: 'float64' })), /HierarchicalMoE: input \[3, 4\] is float64 but the layer's weights are float32/);
    const gate = new mt.NoisyTopKGating({ inputSize: 4, numExperts: 4, k: 2, dtype: 'float64' });
    assert.throws(() => gate.forward(mt.zeros([3, 4])), /NoisyTopKGating: input \[3, 4\] is float32 but the layer's weights are float64/);
    assert.throws(() => new mt.SoftmaxGating({ inputSize: 4, numExperts: 4 }).forward(mt.zeros([3, 4], { dtype: 'int32' })), /SoftmaxGating: input \[3, 4\] is int32/);
    // The matching dtype still runs.
    assert.deepEqual(moe.forward(mt.zeros([3, 4])).output.shape, [3, 4]);
    assert.deepEqual(moe.to('float64').forward(mt.zeros([3, 4], { dtype: 'float64' })).output.shape, [3, 4]);
  });
});
