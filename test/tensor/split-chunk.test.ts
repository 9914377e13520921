// split and chunk with PyTorch's semantics: split's number is the chunk size (the last chunk
// may be smaller), chunk's the number of pieces (each ⌈dim / n⌉, so possibly fewer pieces).
// The expected sizes are torch.split / torch.chunk's, written out.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { mt, numRuns } from '../helpers.js';

const sizesOf = (parts: mt.Tensor[], axis: number) => parts.map((p) => p.shape[axis]);

describe('split and chunk (PyTorch semantics)', () => {
  test('split by a chunk size: the last chunk holds the rest', () => {
    const x = mt.arange(7);
    assert.deepEqual(sizesOf(mt.split(x, 2), 0), [2, 2, 2, 1]);
    assert.deepEqual(sizesOf(x.split(3), 0), [3, 3, 1]);
    assert.deepEqual(sizesOf(x.split(7), 0), [7]);
    assert.deepEqual(sizesOf(x.split(10), 0), [7]);
    assert.deepEqual(mt.split(x, 3).map((p) => p.toArray()), [[0, 1, 2], [3, 4, 5], [6]]);
    assert.deepEqual(sizesOf(mt.split(mt.zeros([0, 2]), 2), 0), [0]); // one empty piece, as torch
  });

  test('chunk: ⌈dim / n⌉ per piece, fewer pieces when dim does not fill n', () => {
    assert.deepEqual(sizesOf(mt.chunk(mt.arange(5), 4), 0), [2, 2, 1]);
    assert.deepEqual(sizesOf(mt.chunk(mt.arange(6), 4), 0), [2, 2, 2]);
    assert.deepEqual(sizesOf(mt.chunk(mt.arange(8), 4), 0), [2, 2, 2, 2]);
    assert.deepEqual(sizesOf(mt.chunk(mt.arange(2), 4), 0), [1, 1]);
    assert.deepEqual(sizesOf(mt.chunk(mt.zeros([0]), 3), 0), [0, 0, 0]); // torch.chunk of an empty axis
    assert.deepEqual(mt.zeros([2, 5]).chunk(2, -1).map((p) => p.shape), [[2, 3], [2, 2]]);
  });

  test('property: pieces follow PyTorch sizes and concatenate back (cat)', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 3 }), (dim, n, other) => {
      const x = mt.arange(dim * other).reshape([other, dim]);
      const bySize = x.split(n, 1);
      const expectedBySize = Array.from({ length: Math.ceil(dim / n) }, (_, i) => Math.min(n, dim - i * n));
      assert.deepEqual(sizesOf(bySize, 1), expectedBySize);
      const chunks = x.chunk(n, 1);
      const c = Math.ceil(dim / n);
      assert.deepEqual(sizesOf(chunks, 1), Array.from({ length: Math.ceil(dim / c) }, (_, i) => Math.min(c, dim - i * c)));
      assert.deepEqual(mt.cat(chunks, 1).toArray(), x.toArray());
      assert.deepEqual(bySize[0]!.cat(bySize.slice(1), 1).toArray(), x.toArray());
      mt.dispose([x, bySize, chunks]);
    }), numRuns(40));
  });

  test('bad input names the op and the argument', () => {
    const x = mt.zeros([2, 3]);
    assert.throws(() => x.split(0, 1), /split: argument 'splitSize' must be an integer >= 1, got 0/);
    assert.throws(() => x.split(1.5, 1), /split: argument 'splitSize' must be an integer >= 1, got 1.5/);
    assert.throws(() => x.split([1, -1, 3], 1), /split: argument 'splitSize' must be an integer >= 0, got -1/);
    assert.throws(() => x.chunk(0), /chunk: argument 'chunks' must be an integer >= 1, got 0/);
    assert.throws(() => x.chunk(2, 2), /chunk: axis 2 is out of range/);
  });
});
