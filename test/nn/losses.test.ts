// The losses' input checks and edge values beyond the PyTorch fixtures.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { assertClose, mt } from '../helpers.js';

describe('losses', () => {
  test('crossEntropy validates shapes, dtypes and targets', () => {
    const logits = mt.zeros([3, 4]);
    assert.throws(() => mt.crossEntropy(logits, mt.tensor([0, 1, 2])), /crossEntropy: targets must be int32 class indices, got float32/);
    assert.throws(() => mt.crossEntropy(logits, mt.tensor([0, 1], { dtype: 'int32' })), /crossEntropy: logits \[3, 4\] must be targets' shape \[2\] plus a class dimension/);
    assert.throws(() => mt.crossEntropy(logits, mt.tensor([0, 1, 4], { dtype: 'int32' })), /crossEntropy: a target is not a class index in \[0, 4\) nor ignoreIndex -100/);
    assert.ok(Number.isNaN(mt.crossEntropy(logits, mt.tensor([-100, -100, -100], { dtype: 'int32' })).item()), 'all ignored: NaN, as PyTorch');
    assertClose([mt.crossEntropy(logits, mt.tensor([0, 1, 2], { dtype: 'int32' })).item()], [Math.log(4)], { rtol: 1e-7 });
    assertClose([mt.perplexity(Math.log(4))], [4], { rtol: 1e-15 });
  });
});
