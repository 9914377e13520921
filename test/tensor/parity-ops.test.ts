// Forward values of the ops added for PyTorch parity, against float64 references written
// here independently of src/ (and known values of erf), plus their PyTorch semantics:
// argument order and defaults, stable sorting, dtypes, and errors that name the op.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { assertClose, distinctValuesArb, mt, numRuns, ravel, shapeArb, size, unravel, valuesArb } from '../helpers.js';

const f64 = (values: number[], shape: number[]) => mt.tensor(values, shape, { dtype: 'float64' });
const flat = (t: mt.Tensor) => Array.from(t.dataSync());

/** Reduces `values` of `shape` over `axes` with fold/finish, returning the kept-shape values. */
function reduceRef(values: number[], shape: number[], axes: number[], fold: (xs: number[]) => number): number[] {
  const keptShape = shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const groups: number[][] = Array.from({ length: size(keptShape) }, () => []);
  values.forEach((v, i) => {
    const index = unravel(i, shape).map((c, d) => (axes.includes(d) ? 0 : c));
    groups[ravel(index, keptShape)]!.push(v);
  });
  return groups.map(fold);
}

const axesArb = (rank: number) => fc.subarray(Array.from({ length: rank }, (_, i) => i), { minLength: 1 });

describe('new unary ops', () => {
  test('log1p expm1 sin cos erf match float64 references (erf against tabulated values)', () => {
    const xs = [-2.5, -0.1, 1e-10, 0.5, 1, 2, 3];
    const x = f64(xs, [xs.length]);
    assertClose(flat(x.log1p()), xs.map(Math.log1p), { what: 'log1p' });
    assertClose(flat(mt.expm1(x)), xs.map(Math.expm1), { what: 'expm1' });
    assertClose(flat(x.sin()), xs.map(Math.sin), { what: 'sin' });
    assertClose(flat(x.cos()), xs.map(Math.cos), { what: 'cos' });
    const erfTable = [-0.9995930479825550, -0.1124629160182849, 1.1283791670955126e-10, 0.5204998778130465, 0.8427007929497149, 0.9953222650189527, 0.9999779095030014];
    assertClose(flat(x.erf()), erfTable, { rtol: 4e-16 * 8, atol: 0, what: 'erf' });
  });

  test('floor ceil round; round sends halves to the even neighbour (torch.round)', () => {
    const x = f64([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 2.4999, -3.7, 7], [9]);
    assert.deepEqual(flat(x.floor()), [-3, -2, -1, 0, 1, 2, 2, -4, 7]);
    assert.deepEqual(flat(x.ceil()), [-2, -1, -0, 1, 2, 3, 3, -3, 7]);
    assert.deepEqual(flat(x.round()), [-2, -2, -0, 0, 2, 2, 2, -4, 7]);
    const i = mt.tensor([3, -4], { dtype: 'int32' });
    assert.equal(i.floor().dtype, 'int32');
    assert.equal(mt.round(mt.tensor([0.5, 1.5], { dtype: 'float32' })).dtype, 'float32');
  });

  test('gelu (exact and tanh) and silu against their formulas', () => {
    const xs = [-3, -1, -0.25, 0, 0.5, 2];
    const x = f64(xs, [6]);
    const phi = (v: number) => 0.5 * (1 + erfRef(v / Math.SQRT2));
    assertClose(flat(x.gelu()), xs.map((v) => v * phi(v)), { rtol: 1e-12, what: 'gelu' });
    const c = Math.sqrt(2 / Math.PI);
    assertClose(flat(mt.gelu(x, { approximate: 'tanh' })), xs.map((v) => 0.5 * v * (1 + Math.tanh(c * (v + 0.044715 * v ** 3)))), { what: 'gelu tanh' });
    assertClose(flat(x.silu()), xs.map((v) => v / (1 + Math.exp(-v))), { what: 'silu' });
  });
});

/** erf by its Maclaurin series (converges everywhere; used here for |x| < 3). */
function erfRef(x: number): number {
  let sum = 0, term = x;
  for (let n = 0; n < 120; n++) {
    sum += term / (2 * n + 1);
    term *= -x * x / (n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

describe('new reductions and cumsum', () => {
  test('prod, var, std, norm over random axes match references', () => {
    const arb = shapeArb(3, 4, 1).chain((s) => fc.tuple(fc.constant(s), valuesArb(size(s), { maxInt: 40 }), axesArb(s.length)));
    fc.assert(fc.property(arb, ([s, v, axes]) => {
      const x = f64(v, s);
      const keep = (t: mt.Tensor) => flat(t);
      assertClose(keep(x.prod(axes, true)), reduceRef(v, s, axes, (g) => g.reduce((a, b) => a * b, 1)), { rtol: 1e-13, what: 'prod' });
      const n = reduceRef(v, s, axes, (g) => g.length)[0]!;
      const varRef = (correction: number) => reduceRef(v, s, axes, (g) => {
        const m = g.reduce((a, b) => a + b, 0) / g.length;
        return g.reduce((a, b) => a + (b - m) ** 2, 0) / (g.length - correction);
      });
      if (n > 1) assertClose(keep(mt.var(x, axes, { keepdims: true })), varRef(1), { rtol: 1e-12, atol: 1e-14, what: 'var' });
      assertClose(keep(x.var(axes, { correction: 0, keepdims: true })), varRef(0), { rtol: 1e-12, atol: 1e-14, what: 'var correction 0' });
      if (n > 1) assertClose(keep(x.std(axes, { keepdims: true })), varRef(1).map(Math.sqrt), { rtol: 1e-12, atol: 1e-14, what: 'std' });
      for (const p of [2, 1, 3, 0.5, Infinity, -Infinity, 0]) {
        const ref = reduceRef(v, s, axes, (g) => {
          const a = g.map(Math.abs);
          if (p === Infinity) return Math.max(...a);
          if (p === -Infinity) return Math.min(...a);
          if (p === 0) return a.filter((y) => y !== 0).length;
          return a.reduce((acc, y) => acc + y ** p, 0) ** (1 / p);
        });
        assertClose(keep(x.norm(p, axes, true)), ref, { rtol: 1e-12, what: `norm p=${p}` });
      }
      x.dispose();
    }), numRuns(30));
  });

  test('defaults as PyTorch: var/std with correction 1 over every element, norm p = 2', () => {
    const x = f64([1, 2, 3, 4], [2, 2]);
    assert.equal(x.var().item(), 5 / 3);
    assert.equal(mt.std(x).item(), Math.sqrt(5 / 3));
    assert.equal(x.norm().item(), Math.sqrt(30));
    assert.deepEqual(x.var(0).shape, [2]);
    assert.deepEqual(x.norm(2, 1, true).shape, [2, 1]);
  });

  test('cumsum along any axis', () => {
    const arb = shapeArb(3, 4, 1).chain((s) => fc.tuple(fc.constant(s), valuesArb(size(s)), fc.integer({ min: -s.length, max: s.length - 1 })));
    fc.assert(fc.property(arb, ([s, v, axis]) => {
      const a = (axis + s.length) % s.length;
      const expected = v.map((_, i) => {
        const index = unravel(i, s);
        let acc = 0;
        for (let j = 0; j <= index[a]!; j++) acc += v[ravel(index.map((c, d) => (d === a ? j : c)), s)]!;
        return acc;
      });
      assertClose(flat(f64(v, s).cumsum(axis)), expected, { rtol: 1e-14, what: 'cumsum' });
    }), numRuns(30));
    assert.deepEqual(mt.tensor([1, 2, 3], { dtype: 'int32' }).cumsum(0).toArray(), [1, 3, 6]);
  });

  test('any and all: int32 0/1, NaN counts as true, empty slices give false / true', () => {
    const x = mt.tensor([[0, 0, 1], [2, 3, 4], [0, NaN, 0]]);
    assert.deepEqual(x.any(1).toArray(), [1, 1, 1]);
    assert.deepEqual(mt.all(x, 1).toArray(), [0, 1, 0]);
    assert.equal(x.any().dtype, 'int32');
    assert.equal(mt.zeros([0]).any().item(), 0);
    assert.equal(mt.zeros([0]).all().item(), 1);
    assert.deepEqual(mt.all(x, 0, true).shape, [1, 3]);
  });
});

describe('new movement, masking, creation and sorting ops', () => {
  test('flip and repeat match references', () => {
    const arb = shapeArb(3, 3, 1).chain((s) => fc.tuple(fc.constant(s), valuesArb(size(s)), axesArb(s.length),
      fc.array(fc.integer({ min: 0, max: 3 }), { minLength: s.length, maxLength: s.length + 2 })));
    fc.assert(fc.property(arb, ([s, v, axes, repeats]) => {
      const x = f64(v, s);
      const flipped = v.map((_, i) => v[ravel(unravel(i, s).map((c, d) => (axes.includes(d) ? s[d]! - 1 - c : c)), s)]!);
      assert.deepEqual(flat(x.flip(axes)), flipped);
      const padded = [...new Array<number>(repeats.length - s.length).fill(1), ...s];
      const outShape = padded.map((d, i) => d * repeats[i]!);
      const tiled = Array.from({ length: size(outShape) }, (_, i) => v[ravel(unravel(i, outShape).map((c, d) => c % padded[d]!), padded)]!);
      const r = x.repeat(repeats);
      assert.deepEqual(r.shape, outShape);
      assert.deepEqual(flat(r), tiled);
    }), numRuns(30));
    assert.deepEqual(mt.tensor([1, 2]).repeat(2, 2).toArray(), [[1, 2, 1, 2], [1, 2, 1, 2]]);
  });

  test('tril, triu (with diagonal, batched), eye, linspace', () => {
    const x = mt.arange(1, 13).reshape([1, 3, 4]);
    assert.deepEqual(x.tril().toArray(), [[[1, 0, 0, 0], [5, 6, 0, 0], [9, 10, 11, 0]]]);
    assert.deepEqual(x.tril(-1).toArray(), [[[0, 0, 0, 0], [5, 0, 0, 0], [9, 10, 0, 0]]]);
    assert.deepEqual(mt.triu(x, 1).toArray(), [[[0, 2, 3, 4], [0, 0, 7, 8], [0, 0, 0, 12]]]);
    assert.deepEqual(x.triu(-1).toArray(), [[[1, 2, 3, 4], [5, 6, 7, 8], [0, 10, 11, 12]]]);
    assert.deepEqual(mt.eye(3).toArray(), [[1, 0, 0], [0, 1, 0], [0, 0, 1]]);
    assert.deepEqual(mt.eye(2, 3, { dtype: 'int32' }).toArray(), [[1, 0, 0], [0, 1, 0]]);
    assert.deepEqual(flat(mt.linspace(-1, 1, 5, { dtype: 'float64' })), [-1, -0.5, 0, 0.5, 1]);
    // PyTorch's values (torch 1.13, AVX2) to the last bit but one; the last value is `end` exactly.
    const tenths = flat(mt.linspace(0, 1, 11, { dtype: 'float64' }));
    assertClose(tenths, [0, 0.1, 0.2, 0.30000000000000004, 0.4, 0.5, 0.6000000000000001, 0.7000000000000001, 0.8, 0.9, 1], { rtol: 2.3e-16, atol: 0, what: 'linspace' });
    assert.equal(tenths[10], 1);
    assert.deepEqual(flat(mt.linspace(3, 7, 1)), [3]);
    assert.deepEqual(mt.linspace(0, 1, 0).shape, [0]);
  });

  test('maskedFill: value where the (broadcast) mask is nonzero, x\'s dtype kept', () => {
    const x = mt.tensor([[1, 2, 3], [4, 5, 6]], { dtype: 'int32' });
    const m = mt.tensor([1, 0, 1], { dtype: 'int32' });
    const y = x.maskedFill(m, -1);
    assert.equal(y.dtype, 'int32');
    assert.deepEqual(y.toArray(), [[-1, 2, -1], [-1, 5, -1]]);
    assert.deepEqual(mt.maskedFill(mt.zeros([2, 2]), mt.eye(2), -Infinity).toArray(), [[-Infinity, 0], [0, -Infinity]]);
  });

  test('sort and argsort: a stable sort along any axis, NaN largest (PyTorch)', () => {
    const arb = shapeArb(3, 5, 1).chain((s) => fc.tuple(fc.constant(s), fc.array(fc.integer({ min: -3, max: 3 }), { minLength: size(s), maxLength: size(s) }),
      fc.integer({ min: -s.length, max: s.length - 1 }), fc.boolean()));
    fc.assert(fc.property(arb, ([s, v, axis, descending]) => {
      const a = (axis + s.length) % s.length;
      const x = f64(v, s);
      const { values, indices } = x.sort(axis, descending);
      const expectedIdx: number[] = new Array<number>(v.length);
      const expectedVal: number[] = new Array<number>(v.length);
      v.forEach((_, i) => {
        const index = unravel(i, s);
        if (index[a] !== 0) return;
        const line = Array.from({ length: s[a]! }, (_, j) => j);
        const at = (j: number) => v[ravel(index.map((c, d) => (d === a ? j : c)), s)]!;
        line.sort((p, q) => (descending ? at(q) - at(p) : at(p) - at(q)) || p - q); // stable: index order on ties
        line.forEach((j, k) => {
          const o = ravel(index.map((c, d) => (d === a ? k : c)), s);
          expectedIdx[o] = j;
          expectedVal[o] = at(j);
        });
      });
      assert.deepEqual(flat(indices), expectedIdx);
      assert.deepEqual(flat(values), expectedVal);
      assert.deepEqual(flat(mt.argsort(x, axis, descending)), expectedIdx);
    }), numRuns(40));
    const withNaN = mt.tensor([2, NaN, -1, NaN, 5]);
    assert.deepEqual(flat(withNaN.argsort()), [2, 0, 4, 1, 3]);
    assert.deepEqual(flat(withNaN.argsort(0, true)), [1, 3, 4, 0, 2]);
    assert.equal(withNaN.argsort().dtype, 'int32');
  });

  test('sort of distinct values agrees with topk of all of them', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 9 }).chain((n) => distinctValuesArb(n)), (v) => {
      const x = mt.tensor(v);
      assert.deepEqual(flat(x.sort(-1, true).indices), flat(x.topk(v.length).indices));
    }), numRuns(20));
  });
});

describe('errors name the op, the argument and the shapes', () => {
  test('bad input', () => {
    const x = mt.zeros([2, 3]);
    assert.throws(() => x.var(1, { correction: 3 }), /var: correction 3 leaves no degrees of freedom over 3 element\(s\) of shape \[2, 3\]/);
    assert.throws(() => mt.zeros([1]).std(), /std: correction 1 leaves no degrees of freedom over 1 element\(s\)/);
    assert.throws(() => mt.var(mt.zeros([2], { dtype: 'int32' })), /var: argument 'x' must be a float tensor, got int32/);
    assert.throws(() => x.norm(-1), /norm: p must be a number >= 0, Infinity or -Infinity, got -1/);
    assert.throws(() => mt.zeros([0]).norm(Infinity), /norm: p = Infinity over axis 0 of size 0/);
    assert.throws(() => x.cumsum(2), /cumsum: axis 2 is out of range/);
    assert.throws(() => mt.tensor([2147483647, 1], { dtype: 'int32' }).cumsum(0), /cumsum: the int32 running sum reaches 2147483648, which overflows int32/);
    assert.deepEqual(mt.tensor([2147483647, -1], { dtype: 'int32' }).cumsum(0).toArray(), [2147483647, 2147483646]);
    assert.throws(() => x.flip(3), /flip: axis 3 is out of range/);
    assert.throws(() => x.repeat(2), /repeat: 1 repeat count\(s\) for a tensor of shape \[2, 3\]: give at least one per axis/);
    assert.throws(() => x.repeat(2, -1), /repeat: argument 'repeats' must be an integer >= 0, got -1/);
    assert.throws(() => mt.zeros([3]).tril(), /tril: x must have at least 2 dimensions, got shape \[3\]/);
    assert.throws(() => x.triu(0.5), /triu: argument 'diagonal' must be an integer, got 0.5/);
    assert.throws(() => x.maskedFill(mt.zeros([3, 3], { dtype: 'int32' }), 1), /maskedFill: shapes \[2, 3\] and \[3, 3\] cannot be broadcast together/);
    assert.throws(() => x.maskedFill(mt.zeros([2, 2, 3], { dtype: 'int32' }), 1), /maskedFill: mask of shape \[2, 2, 3\] must broadcast to x's shape \[2, 3\]/);
    assert.throws(() => mt.zeros([2], { dtype: 'int32' }).maskedFill(mt.ones([2], { dtype: 'int32' }), 0.5), /maskedFill: value 0.5 does not fit x's dtype int32/);
    assert.throws(() => x.sort(2), /sort: axis 2 is out of range/);
    assert.throws(() => x.argsort(-1, 'yes' as unknown as boolean), /argsort: descending must be true or false, got string/);
    assert.throws(() => mt.gelu(x, { approximate: 'fast' as 'tanh' }), /gelu: approximate must be 'none' or 'tanh', got 'fast'/);
    assert.throws(() => mt.eye(-1), /eye: n must be a non-negative integer, got -1/);
    assert.throws(() => mt.linspace(0, 1, 2.5), /linspace: steps must be a non-negative integer, got 2.5/);
    assert.throws(() => mt.linspace(0, Infinity, 2), /linspace: end must be a finite number, got Infinity/);
  });
});
