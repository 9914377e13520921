// softmax / logSoftmax against plain-loop references (and their stability at ±1000),
// dropout's identities, scaling and keep rate.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { mt, numRuns, ravel, shapeArb, size, valuesArb } from '../helpers.js';
import { assertNear, EPS32, EPS64, FLOATS, forEachIndex, round } from './ref.js';

const values = (t: mt.Tensor) => Array.from(t.dataSync());

/** softmax and logSoftmax along axis a, in float64, by loops over the other indices. */
function softmaxRef(vals: readonly number[], shape: readonly number[], a: number) {
  const soft = new Array<number>(vals.length), logSoft = new Array<number>(vals.length);
  const rest = shape.map((d, i) => (i === a ? 1 : d));
  forEachIndex(rest, (index) => {
    const at = (j: number) => ravel(index.map((v, i) => (i === a ? j : v)), shape);
    let m = -Infinity;
    for (let j = 0; j < shape[a]!; j++) m = Math.max(m, vals[at(j)]!);
    let s = 0;
    for (let j = 0; j < shape[a]!; j++) s += Math.exp(vals[at(j)]! - m);
    for (let j = 0; j < shape[a]!; j++) {
      soft[at(j)] = Math.exp(vals[at(j)]! - m) / s;
      logSoft[at(j)] = vals[at(j)]! - m - Math.log(s);
    }
  });
  return { soft, logSoft };
}

describe('softmax / logSoftmax', () => {
  test('match the float64 reference along any axis; softmax rows sum to 1', () => {
    const arb = shapeArb(3, 4, 1).chain((shape) => fc.tuple(fc.constant(shape), valuesArb(size(shape), { maxInt: 512 }), fc.nat(shape.length - 1), fc.boolean()));
    fc.assert(fc.property(arb, fc.constantFrom(...FLOATS), ([shape, vals, a, neg], dtype) => {
      const x = mt.tensor(vals, shape, { dtype });
      const axis = neg ? a - shape.length : a;
      const s = mt.softmax(x, axis), l = x.logSoftmax(axis);
      const ref = softmaxRef(vals, shape, a);
      const maxAbs = vals.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      for (const [t, r, name] of [[s, ref.soft, 'softmax'], [l, ref.logSoft, 'logSoftmax']] as const) {
        assert.equal(t.dtype, dtype);
        assert.deepEqual([...t.shape], shape, name);
        const tol = dtype === 'float64'
          ? { rtol: 1e-12, atol: name === 'softmax' ? 1e-15 : 1e-12 * (1 + maxAbs) }
          : { rtol: 8 * EPS32, atol: name === 'softmax' ? 1e-7 * EPS32 : 8 * EPS32 * (1 + maxAbs + Math.log(shape[a]!)) };
        assertNear(t.dataSync(), r.map((v) => round(dtype, v)), { ...tol, what: `${name} ${dtype} axis ${axis} of [${shape}]` });
      }
      // Each slice along the axis sums to 1.
      const sums = s.sum(axis).dataSync();
      assertNear(sums, new Array(sums.length).fill(1), { atol: dtype === 'float64' ? 1e-14 : shape[a]! * EPS32 });
      assert.deepEqual(values(x.softmax(axis)), values(s));
      mt.dispose([x, s, l]);
    }), numRuns(50));
    // The default axis is the last one.
    const x = mt.tensor([[0, Math.log(3)], [Math.log(2), Math.log(2)]], { dtype: 'float64' });
    assertNear(x.softmax().dataSync(), [0.25, 0.75, 0.5, 0.5], { atol: 1e-15 });
  });

  test('stable for inputs like ±1000 (no overflow to NaN)', () => {
    for (const dtype of FLOATS) {
      const x = mt.tensor([[1000, -1000, 0], [1000, 1000, 1000], [-1000, -1000, -1000]], { dtype });
      const s = values(x.softmax(-1));
      assert.deepEqual(s.slice(0, 3), [1, 0, 0]);
      assertNear(s.slice(3), new Array(6).fill(round(dtype, 1 / 3)), { rtol: dtype === 'float64' ? 1e-15 : EPS32 });
      const l = values(mt.logSoftmax(mt.tensor([[1000, 0], [-1000, -1000]], { dtype })));
      // x - logsumexp(x) is accurate to a few ulps of |x| (here 1000), not of the result.
      assertNear(l, [0, -1000, -Math.LN2, -Math.LN2].map((v) => round(dtype, v)), { atol: 4 * 1000 * (dtype === 'float64' ? EPS64 : EPS32) });
      // A -Infinity entry gets probability 0 (log-probability -Infinity).
      const inf = mt.tensor([-Infinity, 0, 0], { dtype });
      assert.deepEqual(values(inf.softmax()), [0, 0.5, 0.5]);
      assert.equal(values(inf.logSoftmax())[0], -Infinity);
    }
  });
});

describe('dropout', () => {
  test('p = 0 and training = false are the identity; p = 1 gives zeros', () => {
    fc.assert(fc.property(shapeArb(3, 4).chain((s) => fc.tuple(fc.constant(s), valuesArb(size(s)))), fc.constantFrom(...FLOATS),
      fc.double({ min: 0, max: 1, noNaN: true }), ([shape, vals], dtype, p) => {
        const x = mt.tensor(vals, shape, { dtype });
        for (const y of [mt.dropout(x, 0), x.dropout(p, false), mt.dropout(x, 1, false)]) {
          assert.deepEqual([...y.shape], shape);
          assert.equal(y.dtype, dtype);
          assert.deepEqual(values(y), values(x));
          y.dispose();
        }
        const z = mt.dropout(x, 1);
        assert.ok(values(z).every((v) => v === 0), 'p = 1 zeroes everything'); // -0 for negative x, as x·0
        mt.dispose([x, z]);
      }), numRuns(30));
  });

  test('kept entries are scaled by 1/(1-p); the keep rate is about 1-p; a seeded generator repeats the mask', () => {
    const n = 100_000;
    for (const dtype of FLOATS) {
      for (const p of [0.1, 0.3, 0.5, 0.9]) {
        const x = mt.full([n], 3, { dtype });
        const y = values(mt.dropout(x, p));
        let kept = 0;
        const scaled = round(dtype, round(dtype, 1 / (1 - p)) * 3);
        for (const v of y) {
          if (v !== 0) {
            kept++;
            assertNear([v], [scaled], { rtol: dtype === 'float64' ? 1e-15 : 2 * EPS32, what: `kept value, p=${p}` });
          }
        }
        // Binomial: the rate's standard deviation is sqrt(p(1-p)/n) <= 0.0016; allow ~6σ.
        assert.ok(Math.abs(kept / n - (1 - p)) < 0.01, `keep rate ${kept / n} for p = ${p}`);
        x.dispose();
      }
    }
    const x = mt.ones([1000], { dtype: 'float64' });
    const a = values(mt.dropout(x, 0.5, true, { generator: new mt.Generator(11) }));
    const b = values(mt.dropout(x, 0.5, true, { generator: new mt.Generator(11) }));
    const c = values(mt.dropout(x, 0.5, true, { generator: new mt.Generator(12) }));
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
    assert.ok(a.every((v) => v === 0 || v === 2));
  });
});
