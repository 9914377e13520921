// Reductions (sum mean max min logsumexp) over random axis subsets, with and without
// keepdims, negative axes and axis undefined = all; argmax/argmin; their tie and NaN
// conventions.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { mt, numRuns, ravel, shapeArb, size, valuesArb } from '../helpers.js';
import { assertNear, axesOf, axisSpecArb, EPS32, FLOATS, forEachIndex, reductionGroups, round, smallIntsArb } from './ref.js';

const values = (t: mt.Tensor) => Array.from(t.dataSync());

const caseArb = (vals: (n: number) => fc.Arbitrary<number[]>) =>
  shapeArb(4, 3).chain((shape) => fc.tuple(fc.constant(shape), vals(size(shape)), axisSpecArb(shape.length), fc.boolean()));

const refs = {
  sum: (g: number[]) => g.reduce((s, v) => s + v, 0),
  mean: (g: number[]) => g.reduce((s, v) => s + v, 0) / g.length,
  max: (g: number[]) => g.reduce((m, v) => (v > m ? v : m), -Infinity),
  min: (g: number[]) => g.reduce((m, v) => (v < m ? v : m), Infinity),
  logsumexp: (g: number[]) => {
    const m = g.reduce((a, v) => (v > a ? v : a), -Infinity);
    let s = 0;
    for (const v of g) s += Math.exp(v - m);
    return m + Math.log(s);
  },
};
type Reduction = keyof typeof refs;
const REDUCTIONS = Object.keys(refs) as Reduction[];

describe('reductions', () => {
  test('sum mean max min logsumexp over random axes (negative, unordered, all) with and without keepdims', () => {
    fc.assert(fc.property(caseArb((n) => valuesArb(n)), fc.constantFrom(...FLOATS), ([shape, vals, axis, keepdims], dtype) => {
      const x = mt.tensor(vals, shape, { dtype });
      const { groups, shape: outShape } = reductionGroups(vals, shape, axesOf(axis, shape.length), keepdims);
      const n = groups[0]!.length;
      const maxAbs = vals.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      for (const name of REDUCTIONS) {
        const y = mt[name](x, axis, keepdims);
        const method = x[name](axis, keepdims);
        assert.equal(y.dtype, dtype, name);
        assert.deepEqual([...y.shape], outShape, `${name} shape for axis ${JSON.stringify(axis)} keepdims ${keepdims}`);
        assert.deepEqual(values(method), values(y), `${name} method`);
        const expected = groups.map((g) => round(dtype, refs[name](g)));
        let atol: number;
        if (dtype === 'float64') atol = name === 'logsumexp' ? 1e-12 * (1 + maxAbs) : 1e-12;
        else if (name === 'logsumexp') atol = 4 * EPS32 * (maxAbs + Math.log(n) + 1);
        else atol = n * EPS32 * maxAbs;
        assertNear(y.dataSync(), expected, { rtol: dtype === 'float64' ? 1e-12 : 0, atol, what: `${name} ${dtype} [${shape}] axis ${JSON.stringify(axis)}` });
        mt.dispose([y, method]);
      }
      x.dispose();
    }), numRuns(50));
  });

  test('int32 sum/max/min stay int32 and exact', () => {
    fc.assert(fc.property(caseArb((n) => smallIntsArb(n, 100)), ([shape, vals, axis, keepdims]) => {
      const x = mt.tensor(vals, shape, { dtype: 'int32' });
      const { groups, shape: outShape } = reductionGroups(vals, shape, axesOf(axis, shape.length), keepdims);
      for (const name of ['sum', 'max', 'min'] as const) {
        const y = mt[name](x, axis, keepdims);
        assert.equal(y.dtype, 'int32');
        assert.deepEqual([...y.shape], outShape);
        assert.deepEqual(values(y), groups.map(refs[name]), name);
        y.dispose();
      }
      x.dispose();
    }), numRuns(50));
  });

  test('float64 sums of exactly representable values are exact whatever the order', () => {
    // 2⁵³ + 1 - 2⁵³ would lose the 1 in float64; these partial sums stay below 2⁵³.
    const vals = [2 ** 52, 1, -(2 ** 52), 0.5, 3, -0.25];
    const x = mt.tensor(vals, [2, 3], { dtype: 'float64' });
    assert.deepEqual(values(x.sum(0)), [2 ** 52 + 0.5, 4, -(2 ** 52) - 0.25]);
    assert.deepEqual(values(x.sum(1)), [1, 3.25]);
  });

  test('rank 0 and empty tensors: rank-0 reduces nothing; empty sums are 0, empty means NaN', () => {
    const s = mt.tensor(5, { dtype: 'float64' });
    for (const y of [s.sum(), s.sum(0), s.sum(-1), s.max(), s.mean(0, true), s.logsumexp()]) {
      assert.deepEqual([...y.shape], []);
    }
    assert.equal(s.sum().item(), 5);
    assert.equal(s.max(0).item(), 5);
    assert.equal(s.logsumexp().item(), 5);
    const e = mt.zeros([2, 0], { dtype: 'float64' });
    assert.deepEqual(values(e.sum(1)), [0, 0]);
    assert.deepEqual([...e.sum(0).shape], [0]);
    assert.equal(e.sum().item(), 0);
    assert.ok(Number.isNaN(e.mean().item()));
    assert.deepEqual(values(e.logsumexp(1)), [-Infinity, -Infinity]);
  });
});

describe('reduction conventions', () => {
  test('max/min propagate NaN (over one axis, several axes and all)', () => {
    for (const dtype of FLOATS) {
      const x = mt.tensor([[NaN, 1, 3], [4, 5, 6], [7, 8, NaN]], { dtype });
      assert.ok(Number.isNaN(x.max().item()));
      assert.ok(Number.isNaN(x.min().item()));
      const r = values(x.max(1)), c = values(x.min(0));
      assert.ok(Number.isNaN(r[0]!) && r[1] === 6 && Number.isNaN(r[2]!), `max(1) = ${r}`);
      assert.ok(Number.isNaN(c[0]!) && c[1] === 1 && Number.isNaN(c[2]!), `min(0) = ${c}`);
      // Non-contiguous axes [0, 2] of a [2, 2, 2] tensor: NaN first, and NaN last, in a slice.
      const y = mt.tensor([NaN, 1, 2, 3, 4, 5, 6, NaN], [2, 2, 2], { dtype });
      const m = values(y.max([0, 2])), n = values(y.min([-1, 0]));
      assert.ok(Number.isNaN(m[0]!) && Number.isNaN(m[1]!), `max over [0, 2] = ${m}`);
      assert.ok(Number.isNaN(n[0]!) && Number.isNaN(n[1]!), `min over [2, 0] = ${n}`);
      assert.ok(Number.isNaN(x.logsumexp().item()));
    }
  });

  test('logsumexp: all -Infinity gives -Infinity (not NaN); huge inputs do not overflow', () => {
    for (const dtype of FLOATS) {
      const x = mt.tensor([[-Infinity, -Infinity], [0, -Infinity], [1000, 1000], [-1000, -1000]], { dtype });
      const l = values(x.logsumexp(1));
      assert.equal(l[0], -Infinity);
      assert.equal(l[1], 0);
      assertNear(l.slice(2), [1000 + Math.LN2, -1000 + Math.LN2].map((v) => round(dtype, v)), { rtol: dtype === 'float64' ? 1e-15 : EPS32 });
      assert.equal(mt.tensor([-Infinity, -Infinity, -Infinity], { dtype }).logsumexp().item(), -Infinity);
      assert.deepEqual(values(mt.full([2, 3], -Infinity, { dtype }).logsumexp(0, true)), [-Infinity, -Infinity, -Infinity]);
      assert.equal(mt.tensor([Infinity, 0], { dtype }).logsumexp().item(), Infinity);
    }
  });

  test('argmax/argmin ties go to the lowest index; NaN counts as the extreme (first NaN)', () => {
    const t = mt.tensor([[3, 1, 3], [2, 2, 2], [0, 5, 5]], { dtype: 'float64' });
    assert.deepEqual(values(t.argmax(1)), [0, 0, 1]);
    assert.deepEqual(values(t.argmin(1)), [1, 0, 0]);
    assert.deepEqual(values(t.argmax(0)), [0, 2, 2]);
    assert.deepEqual(values(t.argmin(0)), [2, 0, 1]);
    assert.equal(t.argmax().item(), 7);
    assert.equal(mt.tensor([1, 0, 0, 2]).argmin().item(), 1);
    for (const dtype of FLOATS) {
      const n = mt.tensor([1, NaN, 5, NaN, Infinity], { dtype });
      assert.equal(n.argmax().item(), 1);
      assert.equal(n.argmin().item(), 1);
      assert.equal(mt.tensor([NaN, 1], { dtype }).argmax().item(), 0);
      assert.equal(mt.tensor([-Infinity, 2, NaN], { dtype }).argmax().item(), 2);
      assert.deepEqual(values(mt.tensor([[NaN, 1], [2, NaN]], { dtype }).argmax(0)), [0, 1]);
    }
  });

  test('argmax/argmin over random shapes with many ties: the first extreme, int32, keepdims', () => {
    const arb = shapeArb(3, 4).chain((shape) => fc.tuple(
      fc.constant(shape), smallIntsArb(size(shape)),
      fc.option(fc.integer({ min: -Math.max(shape.length, 1), max: Math.max(shape.length, 1) - 1 })), fc.boolean()));
    fc.assert(fc.property(arb, fc.constantFrom<mt.DType>('float64', 'float32', 'int32'), ([shape, vals, axis, keepdims], dtype) => {
      const x = mt.tensor(vals, shape, { dtype });
      for (const [name, better] of [['argmax', (a: number, b: number) => a > b], ['argmin', (a: number, b: number) => a < b]] as const) {
        const y = mt[name](x, axis ?? undefined, keepdims);
        assert.equal(y.dtype, 'int32');
        let expected: number[], outShape: number[];
        if (axis === null || shape.length === 0) {
          let best = 0;
          vals.forEach((v, i) => { if (better(v, vals[best]!)) best = i; });
          expected = [best];
          outShape = keepdims ? shape.map(() => 1) : [];
        } else {
          const a = axis < 0 ? axis + shape.length : axis;
          const reduced = shape.map((d, i) => (i === a ? 1 : d));
          expected = [];
          forEachIndex(reduced, (index) => {
            let best = 0;
            for (let j = 1; j < shape[a]!; j++) {
              const at = (k: number) => vals[ravel(index.map((v, i) => (i === a ? k : v)), shape)]!;
              if (better(at(j), at(best))) best = j;
            }
            expected.push(best);
          });
          outShape = keepdims ? reduced : shape.filter((_, i) => i !== a);
        }
        assert.deepEqual([...y.shape], outShape, name);
        assert.deepEqual(values(y), expected, `${name} axis ${axis} of [${shape}]`);
        y.dispose();
      }
      x.dispose();
    }), numRuns(50));
  });
});
