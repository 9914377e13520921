// Creation ops: tensor() from numbers, nested arrays, flat values + shape and typed
// arrays; zeros/ones/full/zerosLike/onesLike; arange's values and dtype rule.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { mt, numRuns, shapeArb, size } from '../helpers.js';
import { nest, shapeValuesArb } from './ref.js';

const values = (t: mt.Tensor) => Array.from(t.dataSync());

describe('tensor()', () => {
  test('nested arrays: the shape is inferred and values are row-major (float64 keeps them exactly)', () => {
    fc.assert(fc.property(shapeValuesArb(shapeArb(4, 3)), ([shape, vals]) => {
      const nested = nest(vals, shape) as mt.NestedArray;
      const t = mt.tensor(nested, { dtype: 'float64' });
      assert.deepEqual([...t.shape], shape);
      assert.equal(t.dtype, 'float64');
      assert.equal(t.size, size(shape));
      assert.equal(t.rank, shape.length);
      assert.deepEqual(values(t), vals);
      assert.deepEqual(t.toArray(), nested);
      t.dispose();
    }), numRuns(50));
  });

  test('a flat array with an explicit shape is laid out row-major in that shape', () => {
    fc.assert(fc.property(shapeValuesArb(shapeArb(4, 3)), ([shape, vals]) => {
      const t = mt.tensor(vals, shape, { dtype: 'float64' });
      assert.deepEqual([...t.shape], shape);
      assert.deepEqual(t.toArray(), nest(vals, shape));
      t.dispose();
    }), numRuns(50));
  });

  test('the default dtype is float32 and values are rounded to float32', () => {
    const t = mt.tensor([[0.1, 1 / 3], [1e-50, 16777217]]);
    assert.equal(t.dtype, 'float32');
    assert.ok(t.dataSync() instanceof Float32Array);
    assert.deepEqual(values(t), [Math.fround(0.1), Math.fround(1 / 3), 0, 16777216]);
  });

  test('a number gives a 0-d tensor; empty arrays give zero-size dimensions', () => {
    const s = mt.tensor(2.5, { dtype: 'float64' });
    assert.deepEqual([...s.shape], []);
    assert.equal(s.item(), 2.5);
    assert.equal(s.toArray(), 2.5);
    assert.deepEqual([...mt.tensor([]).shape], [0]);
    const e = mt.tensor([[], [], []]);
    assert.deepEqual([...e.shape], [3, 0]);
    assert.equal(e.size, 0);
    assert.deepEqual(e.toArray(), [[], [], []]);
    assert.deepEqual([...mt.tensor([], [2, 0, 3]).shape], [2, 0, 3]);
  });

  test('typed arrays keep their dtype (unless one is given) and are copied', () => {
    const f64 = new Float64Array([0.1, -2, 3e300]);
    const f32 = new Float32Array([0.5, 1.25]);
    const i32 = new Int32Array([-2147483648, 0, 2147483647, 7, 8, 9]);
    const a = mt.tensor(f64), b = mt.tensor(f32), c = mt.tensor(i32, [2, 3]);
    assert.equal(a.dtype, 'float64');
    assert.equal(b.dtype, 'float32');
    assert.equal(c.dtype, 'int32');
    assert.deepEqual([...c.shape], [2, 3]);
    assert.deepEqual(values(a), [0.1, -2, 3e300]);
    assert.deepEqual(c.toArray(), [[-2147483648, 0, 2147483647], [7, 8, 9]]);
    assert.ok(c.dataSync() instanceof Int32Array);
    f64[0] = 99; f32[0] = 99; i32[0] = 99;
    assert.equal(a.dataSync()[0], 0.1, 'the tensor does not alias the source array');
    assert.equal(b.dataSync()[0], 0.5, 'nor a float32 one');
    assert.equal(c.dataSync()[0], -2147483648, 'nor an int32 one');
    // A view into a larger buffer: only its elements.
    const view = mt.tensor(i32.subarray(2, 5));
    assert.deepEqual(values(view), [2147483647, 7, 8]);
    i32[3] = -1;
    assert.deepEqual(values(view), [2147483647, 7, 8]);
    const converted = mt.tensor(i32, { dtype: 'float64' });
    assert.equal(converted.dtype, 'float64');
    assert.deepEqual(values(converted), Array.from(i32));
    const down = mt.tensor(new Float64Array([0.1]), { dtype: 'float32' });
    assert.deepEqual(values(down), [Math.fround(0.1)]);
  });

  test('int32 from plain arrays holds exact integers; requiresGrad is set on float tensors', () => {
    const t = mt.tensor([[1, -2], [3, 2147483647]], { dtype: 'int32' });
    assert.equal(t.dtype, 'int32');
    assert.deepEqual(t.toArray(), [[1, -2], [3, 2147483647]]);
    const g = mt.tensor([1, 2], { dtype: 'float64', requiresGrad: true });
    assert.equal(g.requiresGrad, true);
    assert.equal(g.isLeaf, true);
    assert.equal(mt.tensor([1]).requiresGrad, false);
  });
});

describe('zeros / ones / full / *Like', () => {
  test('fill every element with the value, in the given dtype (float32 by default)', () => {
    fc.assert(fc.property(shapeArb(4, 3), fc.constantFrom('float32', 'float64', 'int32'), fc.integer({ min: -9, max: 9 }),
      (shape, dtype, v) => {
        const n = size(shape);
        const z = mt.zeros(shape, { dtype }), o = mt.ones(shape, { dtype }), f = mt.full(shape, v, { dtype });
        for (const [t, expected] of [[z, 0], [o, 1], [f, v]] as const) {
          assert.deepEqual([...t.shape], shape);
          assert.equal(t.dtype, dtype);
          assert.deepEqual(values(t), new Array(n).fill(expected));
        }
        const zl = mt.zerosLike(f), ol = mt.onesLike(f);
        assert.equal(zl.dtype, dtype);
        assert.equal(ol.dtype, dtype);
        assert.deepEqual([...ol.shape], shape);
        assert.deepEqual(values(zl), new Array(n).fill(0));
        assert.deepEqual(values(ol), new Array(n).fill(1));
        mt.dispose([z, o, f, zl, ol]);
      }), numRuns(50));
    assert.equal(mt.zeros([2]).dtype, 'float32');
    assert.equal(mt.full([], 1.5).item(), 1.5);
    assert.deepEqual(values(mt.full([2], 0.1, { dtype: 'float64' })), [0.1, 0.1]);
    assert.deepEqual(values(mt.full([2], 0.1)), [Math.fround(0.1), Math.fround(0.1)]);
    const like = mt.onesLike(mt.zeros([2, 1], { dtype: 'int32' }), { dtype: 'float64' });
    assert.equal(like.dtype, 'float64');
    assert.deepEqual([...like.shape], [2, 1]);
    assert.equal(mt.zerosLike(mt.zeros([3]), { requiresGrad: true }).requiresGrad, true);
    assert.equal(mt.full([2], Infinity).dataSync()[0], Infinity);
  });
});

describe('arange', () => {
  test('integer arguments: start, start+step, ... strictly before end, as int32', () => {
    fc.assert(fc.property(fc.integer({ min: -20, max: 20 }), fc.integer({ min: -20, max: 20 }), fc.integer({ min: 1, max: 7 }), fc.boolean(),
      (start, end, magnitude, down) => {
        const step = down ? -magnitude : magnitude;
        fc.pre((end - start) * step >= 0);
        const expected: number[] = [];
        for (let v = start; step > 0 ? v < end : v > end; v += step) expected.push(v);
        const t = mt.arange(start, end, step);
        assert.equal(t.dtype, 'int32');
        assert.deepEqual([...t.shape], [expected.length]);
        assert.deepEqual(values(t), expected);
        t.dispose();
      }), numRuns(100));
  });

  test('arange(n) is 0..n-1; a fractional argument gives float32; a dtype can be given', () => {
    assert.deepEqual(values(mt.arange(5)), [0, 1, 2, 3, 4]);
    assert.equal(mt.arange(5).dtype, 'int32');
    assert.deepEqual(values(mt.arange(0)), []);
    assert.deepEqual(values(mt.arange(3, 3)), []);
    // An empty range has size +0 (a -0 dimension would fail strict shape comparisons).
    assert.ok(Object.is(mt.arange(-16, -16, -1).shape[0], 0));
    assert.ok(Object.is(mt.arange(2, 2, -0.5).size, 0));
    const f = mt.arange(0, 1, 0.25);
    assert.equal(f.dtype, 'float32');
    assert.deepEqual(values(f), [0, 0.25, 0.5, 0.75]);
    const g = mt.arange(2.5);
    assert.equal(g.dtype, 'float32');
    assert.deepEqual(values(g), [0, 1, 2]);
    const h = mt.arange(1, -1, -0.5);
    assert.deepEqual(values(h), [1, 0.5, 0, -0.5]);
    const d = mt.arange(0, 4, 1, { dtype: 'float64' });
    assert.equal(d.dtype, 'float64');
    assert.deepEqual(values(d), [0, 1, 2, 3]);
    // The length is ceil((end - start) / step), as torch.arange.
    assert.equal(mt.arange(0, 1, 0.3).size, 4);
  });
});
