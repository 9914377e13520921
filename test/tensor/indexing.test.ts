// Indexing ops with PyTorch's semantics: gather, scatterAdd (src shaped like index),
// indexSelect, indexAdd, oneHot and topk (sorted values + int32 indices, ties to the
// lowest index, largest: false), against plain-loop references.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { mt, numRuns, ravel, shapeArb, size } from '../helpers.js';
import { FLOATS, forEachIndex, smallIntsArb } from './ref.js';

const values = (t: mt.Tensor) => Array.from(t.dataSync());
const DTYPES: mt.DType[] = ['float64', 'float32', 'int32'];
const int32 = (vals: number[], shape: readonly number[]) => mt.tensor(vals, shape, { dtype: 'int32' });
const indicesArb = (n: number, below: number) => fc.array(fc.integer({ min: 0, max: below - 1 }), { minLength: n, maxLength: n });
const withAxis = (index: readonly number[], a: number, v: number) => index.map((x, i) => (i === a ? v : x));

/** x [xShape], an axis, and an index shape that fits x off the axis (torch.gather's rule). */
const alongAxisArb = shapeArb(3, 4, 1).chain((xShape) => fc.tuple(fc.constant(xShape), fc.nat(xShape.length - 1), fc.boolean()))
  .chain(([xShape, a, neg]) => fc.tuple(fc.constant({ xShape, a, neg }), fc.tuple(...xShape.map((d, i) => fc.integer({ min: 1, max: i === a ? 4 : d })))))
  .chain(([{ xShape, a, neg }, indexShape]) => fc.tuple(
    fc.constant({ xShape, a, neg, indexShape }),
    smallIntsArb(size(xShape), 1000), indicesArb(size(indexShape), xShape[a]!), smallIntsArb(size(indexShape), 1000),
    fc.constantFrom(...DTYPES)));

/** x, an axis and a 1-D index (length 0..5, repeats allowed) for indexSelect / indexAdd. */
const sliceIndexArb = shapeArb(3, 4, 1).chain((xShape) => fc.tuple(fc.constant(xShape), fc.nat(xShape.length - 1), fc.integer({ min: 0, max: 5 }), fc.boolean()))
  .chain(([xShape, a, m, neg]) => {
    const srcShape = withAxis(xShape, a, m);
    return fc.tuple(fc.constant({ xShape, a, neg, srcShape }), smallIntsArb(size(xShape), 1000), indicesArb(m, xShape[a]!),
      smallIntsArb(size(srcShape), 1000), fc.constantFrom(...DTYPES));
  });

describe('gather / scatterAdd', () => {
  test('gather: out[i][j] = x[i][index[i][j]] along the axis (torch.gather)', () => {
    fc.assert(fc.property(alongAxisArb, ([{ xShape, a, neg, indexShape }, xv, iv, , dtype]) => {
      const x = mt.tensor(xv, xShape, { dtype }), index = int32(iv, indexShape);
      const y = mt.gather(x, neg ? a - xShape.length : a, index);
      const expected: number[] = [];
      forEachIndex(indexShape, (idx, flat) => expected.push(xv[ravel(withAxis(idx, a, iv[flat]!), xShape)]!));
      assert.equal(y.dtype, dtype);
      assert.deepEqual([...y.shape], indexShape);
      assert.deepEqual(values(y), expected);
      assert.deepEqual(values(x.gather(a, index)), expected);
      mt.dispose([x, index, y]);
    }), numRuns(50));
    const x = mt.tensor([[1, 2], [3, 4]]);
    assert.deepEqual(x.gather(1, int32([0, 0, 1, 0], [2, 2])).toArray(), [[1, 1], [4, 3]]);
  });

  test('scatterAdd: out = x, then out[i][index[i][j]] += src[i][j]; repeated indices accumulate', () => {
    fc.assert(fc.property(alongAxisArb, ([{ xShape, a, neg, indexShape }, xv, iv, sv, dtype]) => {
      const x = mt.tensor(xv, xShape, { dtype }), index = int32(iv, indexShape), src = mt.tensor(sv, indexShape, { dtype });
      const y = mt.scatterAdd(x, neg ? a - xShape.length : a, index, src);
      const expected = [...xv];
      forEachIndex(indexShape, (idx, flat) => { expected[ravel(withAxis(idx, a, iv[flat]!), xShape)]! += sv[flat]!; });
      assert.equal(y.dtype, dtype);
      assert.deepEqual([...y.shape], xShape);
      assert.deepEqual(values(y), expected);
      assert.deepEqual(values(x), xv, 'x is not modified');
      mt.dispose([x, index, src, y]);
    }), numRuns(50));
    const z = mt.zeros([3]);
    assert.deepEqual(values(z.scatterAdd(0, int32([2, 0, 2, 2], [4]), mt.tensor([1, 2, 3, 4]))), [2, 0, 8]);
  });
});

describe('indexSelect / indexAdd', () => {
  test('indexSelect picks whole slices along the axis (torch.index_select), repeats and empty index allowed', () => {
    fc.assert(fc.property(sliceIndexArb, ([{ xShape, a, neg, srcShape }, xv, iv, , dtype]) => {
      const x = mt.tensor(xv, xShape, { dtype }), index = int32(iv, [iv.length]);
      const y = mt.indexSelect(x, neg ? a - xShape.length : a, index);
      const expected: number[] = [];
      forEachIndex(srcShape, (idx) => expected.push(xv[ravel(withAxis(idx, a, iv[idx[a]!]!), xShape)]!));
      assert.equal(y.dtype, dtype);
      assert.deepEqual([...y.shape], srcShape);
      assert.deepEqual(values(y), expected);
      mt.dispose([x, index, y]);
    }), numRuns(50));
  });

  test('indexAdd adds slices of src at the indexed positions (torch.index_add), accumulating repeats', () => {
    fc.assert(fc.property(sliceIndexArb, ([{ xShape, a, neg, srcShape }, xv, iv, sv, dtype]) => {
      const x = mt.tensor(xv, xShape, { dtype }), index = int32(iv, [iv.length]), src = mt.tensor(sv, srcShape, { dtype });
      const y = x.indexAdd(neg ? a - xShape.length : a, index, src);
      const expected = [...xv];
      forEachIndex(srcShape, (idx, flat) => { expected[ravel(withAxis(idx, a, iv[idx[a]!]!), xShape)]! += sv[flat]!; });
      assert.equal(y.dtype, dtype);
      assert.deepEqual([...y.shape], xShape);
      assert.deepEqual(values(y), expected);
      mt.dispose([x, index, src, y]);
    }), numRuns(50));
    const x = mt.zeros([3, 2]);
    assert.deepEqual(mt.indexAdd(x, 0, int32([2, 2], [2]), mt.ones([2, 2])).toArray(), [[0, 0], [0, 0], [2, 2]]);
  });
});

describe('oneHot', () => {
  test('a 1 at each index on a new last axis; int32 by default, or the given dtype', () => {
    const arb = fc.tuple(shapeArb(2, 3), fc.integer({ min: 1, max: 5 })).chain(([shape, c]) =>
      fc.tuple(fc.constant({ shape, c }), indicesArb(size(shape), c), fc.option(fc.constantFrom(...FLOATS))));
    fc.assert(fc.property(arb, ([{ shape, c }, iv, dtype]) => {
      const index = int32(iv, shape);
      const y = dtype === null ? mt.oneHot(index, c) : index.oneHot(c, { dtype });
      const expected = new Array<number>(size(shape) * c).fill(0);
      iv.forEach((v, i) => { expected[i * c + v] = 1; });
      assert.equal(y.dtype, dtype ?? 'int32');
      assert.deepEqual([...y.shape], [...shape, c]);
      assert.deepEqual(values(y), expected);
      mt.dispose([index, y]);
    }), numRuns(50));
    assert.deepEqual(mt.oneHot(int32([0, 2], [2]), 3).toArray(), [[1, 0, 0], [0, 0, 1]]);
  });
});

describe('topk', () => {
  test('the k largest (or smallest) of the last axis, sorted, with int32 indices; ties to the lowest index', () => {
    const arb = fc.tuple(shapeArb(2, 3), fc.integer({ min: 1, max: 6 })).chain(([batch, n]) => fc.tuple(
      fc.constant([...batch, n]), smallIntsArb(size(batch) * n, 3), fc.integer({ min: 0, max: n }), fc.boolean(), fc.constantFrom(...DTYPES)));
    fc.assert(fc.property(arb, ([shape, vals, k, largest, dtype]) => {
      const n = shape[shape.length - 1]!;
      const x = mt.tensor(vals, shape, { dtype });
      const { values: v, indices } = largest ? x.topk(k) : mt.topk(x, k, { largest: false });
      const expectedIdx: number[] = [], expectedVal: number[] = [];
      for (let r = 0; r < vals.length / n; r++) {
        const row = vals.slice(r * n, (r + 1) * n);
        const order = row.map((_, j) => j).sort((p, q) => (largest ? row[q]! - row[p]! : row[p]! - row[q]!) || p - q);
        for (const j of order.slice(0, k)) { expectedIdx.push(j); expectedVal.push(row[j]!); }
      }
      const outShape = [...shape.slice(0, -1), k];
      assert.equal(indices.dtype, 'int32');
      assert.equal(v.dtype, dtype);
      assert.deepEqual([...v.shape], outShape);
      assert.deepEqual([...indices.shape], outShape);
      assert.deepEqual(values(indices), expectedIdx, `topk k=${k} largest=${largest} of ${JSON.stringify(vals)}`);
      assert.deepEqual(values(v), expectedVal);
      mt.dispose([x, v, indices]);
    }), numRuns(100));
  });

  test('largest first over wide rows of repeats, ±0, ±Infinity and NaN (rows with a NaN take the general path)', () => {
    const special = fc.constantFrom(0, -0, Infinity, -Infinity, NaN, 1, -1, 0.5);
    const arb = fc.tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 64 })).chain(([rows, n]) => fc.tuple(
      fc.constant([rows, n]), fc.array(fc.oneof(special, fc.integer({ min: -3, max: 3 })), { minLength: rows * n, maxLength: rows * n }),
      fc.integer({ min: 0, max: Math.min(n, 16) }), fc.constantFrom<mt.DType>('float64', 'float32')));
    const rank = (a: number, b: number): number => (a !== a ? (b !== b ? 0 : -1) : b !== b ? 1 : a > b ? -1 : a < b ? 1 : 0);
    fc.assert(fc.property(arb, ([shape, vals, k, dtype]) => {
      const n = shape[1]!;
      const x = mt.tensor(vals, shape, { dtype });
      const { values: v, indices } = x.topk(k);
      const expected: number[] = [];
      for (let r = 0; r < shape[0]!; r++) {
        const row = vals.slice(r * n, (r + 1) * n);
        expected.push(...row.map((_, j) => j).sort((p, q) => rank(row[p]!, row[q]!) || p - q).slice(0, k));
      }
      assert.deepEqual(values(indices), expected, `topk k=${k} of ${JSON.stringify(vals.map(String))}`);
      assert.deepEqual(values(v).map(String), expected.map((j, i) => String(vals[Math.floor(i / k) * n + j]!)));
      mt.dispose([x, v, indices]);
    }), numRuns(200));
  });

  test('k above 16 (the sort path) and distinct values', () => {
    const n = 40;
    const vals = Array.from({ length: 2 * n }, (_, i) => ((i * 37) % 23) - 11); // repeats
    const x = mt.tensor(vals, [2, n], { dtype: 'float64' });
    for (const k of [17, 25, 40]) {
      for (const largest of [true, false]) {
        const { values: v, indices } = x.topk(k, { largest });
        const idx: number[] = [];
        for (let r = 0; r < 2; r++) {
          const row = vals.slice(r * n, (r + 1) * n);
          idx.push(...row.map((_, j) => j).sort((p, q) => (largest ? row[q]! - row[p]! : row[p]! - row[q]!) || p - q).slice(0, k));
        }
        assert.deepEqual(values(indices), idx, `k=${k} largest=${largest}`);
        assert.deepEqual(values(v), idx.map((j, i) => vals[Math.floor(i / k) * n + j]!));
      }
    }
  });

  test('conventions: [3,1,3,2] k=2 → indices [0,2]; NaN counts as the largest', () => {
    const { values: v, indices } = mt.tensor([3, 1, 3, 2]).topk(2);
    assert.deepEqual(values(indices), [0, 2]);
    assert.deepEqual(values(v), [3, 3]);
    const s = mt.tensor([1, 3, 1, 2]).topk(2, { largest: false });
    assert.deepEqual(values(s.indices), [0, 2]);
    assert.deepEqual(values(s.values), [1, 1]);
    const e = mt.tensor([[5, 6]]).topk(0);
    assert.deepEqual([...e.values.shape], [1, 0]);
    assert.deepEqual([...e.indices.shape], [1, 0]);
    for (const dtype of FLOATS) {
      const nan = mt.tensor([1, NaN, Infinity, NaN], { dtype }).topk(3);
      assert.deepEqual(values(nan.indices), [1, 3, 2]);
      const v3 = values(nan.values);
      assert.ok(Number.isNaN(v3[0]!) && Number.isNaN(v3[1]!) && v3[2] === Infinity);
    }
  });

  test('largest: false still treats NaN as the largest, so it comes last (PyTorch); int32 extremes are exact', () => {
    for (const dtype of FLOATS) {
      const { values: v, indices } = mt.tensor([1, NaN, 0, -Infinity, NaN], { dtype }).topk(4, { largest: false });
      assert.deepEqual(values(indices), [3, 2, 0, 1]);
      const got = values(v);
      assert.deepEqual(got.slice(0, 3), [-Infinity, 0, 1]);
      assert.ok(Number.isNaN(got[3]!));
    }
    // -(-2³¹) does not exist in int32: the smallest int32 must still come first.
    const i = mt.tensor([5, -2147483648, 2147483647, 0], { dtype: 'int32' });
    const s = i.topk(2, { largest: false });
    assert.deepEqual(values(s.indices), [1, 3]);
    assert.deepEqual(values(s.values), [-2147483648, 0]);
    assert.deepEqual(values(i.topk(2).indices), [2, 0]);
  });
});
