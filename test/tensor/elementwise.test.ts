// Elementwise ops against float64 references: unary math, binary ops with NumPy
// broadcasting and number operands on either side, comparisons (int32 masks), where with
// three-way broadcasting, clamp and cast; plus their special-value conventions.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { mt, numRuns, shapeArb, size, valuesArb } from '../helpers.js';
import {
  assertNear, broadcastRef, broadcastShapesArb, EPS32, FLOATS, normalCdfRef, round, shapeValuesArb, smallIntsArb,
} from './ref.js';

const values = (t: mt.Tensor) => Array.from(t.dataSync());

// ---- unary ----------------------------------------------------------------------------

const cdfCache = new Map<number, number>();
const cdf = (x: number) => {
  let v = cdfCache.get(x);
  if (v === undefined) { v = normalCdfRef(x); cdfCache.set(x, v); }
  return v;
};

interface UnaryCase { name: string; op: (x: mt.Tensor) => mt.Tensor; ref: (x: number) => number; positive?: boolean; exact?: boolean }
const unaryCases: UnaryCase[] = [
  { name: 'neg', op: mt.neg, ref: (x) => -x, exact: true },
  { name: 'abs', op: mt.abs, ref: (x) => (x < 0 ? -x : x), exact: true },
  { name: 'sign', op: mt.sign, ref: (x) => (x > 0 ? 1 : x < 0 ? -1 : 0), exact: true },
  { name: 'relu', op: mt.relu, ref: (x) => (x > 0 ? x : 0), exact: true },
  { name: 'exp', op: mt.exp, ref: Math.exp },
  { name: 'log', op: mt.log, ref: Math.log, positive: true },
  { name: 'sqrt', op: mt.sqrt, ref: Math.sqrt, positive: true },
  // tanh from exponentials, tanh(x) = sign(x)·(1 - e^{-2|x|}) / (1 + e^{-2|x|}).
  { name: 'tanh', op: mt.tanh, ref: (x) => { const e = Math.exp(-2 * Math.abs(x)); return (x < 0 ? -1 : 1) * (1 - e) / (1 + e); } },
  { name: 'sigmoid', op: mt.sigmoid, ref: (x) => 1 / (1 + Math.exp(-x)) },
  { name: 'softplus', op: mt.softplus, ref: (x) => Math.log(1 + Math.exp(x)) },
  { name: 'normalCdf', op: mt.normalCdf, ref: cdf },
];

describe('unary ops', () => {
  test('every unary op matches its float64 reference (float64 to 1e-12, float32 to its rounding)', () => {
    fc.assert(fc.property(shapeValuesArb(shapeArb(3, 4), { maxInt: 256 }), fc.constantFrom(...FLOATS), ([shape, vals], dtype) => {
      for (const c of unaryCases) {
        const xs = c.positive ? vals.map(Math.abs) : vals;
        const x = mt.tensor(xs, shape, { dtype });
        const y = c.op(x);
        assert.equal(y.dtype, dtype, c.name);
        assert.deepEqual([...y.shape], shape, c.name);
        const expected = xs.map((v) => round(dtype, c.ref(v)));
        const rtol = c.exact ? 0 : dtype === 'float64' ? 1e-12 : 2 * EPS32;
        assertNear(y.dataSync(), expected, { rtol, what: `${c.name} ${dtype}` });
        x.dispose(); y.dispose();
      }
    }), numRuns(50));
  });

  test('a method call is the same op: x.exp() = mt.exp(x), ...', () => {
    const x = mt.tensor([-1.5, 0.5, 2], { dtype: 'float64' });
    const methods: [string, mt.Tensor, mt.Tensor][] = [
      ['neg', x.neg(), mt.neg(x)], ['abs', x.abs(), mt.abs(x)], ['sign', x.sign(), mt.sign(x)], ['relu', x.relu(), mt.relu(x)],
      ['exp', x.exp(), mt.exp(x)], ['tanh', x.tanh(), mt.tanh(x)], ['sigmoid', x.sigmoid(), mt.sigmoid(x)],
      ['softplus', x.softplus(), mt.softplus(x)], ['normalCdf', x.normalCdf(), mt.normalCdf(x)],
    ];
    for (const [name, a, b] of methods) assert.deepEqual(values(a), values(b), name);
  });

  test('int32 inputs: neg/abs/sign/relu stay int32, transcendental ops compute in float32', () => {
    const x = mt.tensor([-3, 0, 2], { dtype: 'int32' });
    for (const [op, expected] of [[mt.neg, [3, 0, -2]], [mt.abs, [3, 0, 2]], [mt.sign, [-1, 0, 1]], [mt.relu, [0, 0, 2]]] as const) {
      const y = op(x);
      assert.equal(y.dtype, 'int32');
      assert.deepEqual(values(y), expected);
    }
    const e = mt.exp(x);
    assert.equal(e.dtype, 'float32');
    assert.deepEqual(values(e), [-3, 0, 2].map((v) => Math.fround(Math.exp(v))));
    assert.equal(mt.sqrt(mt.tensor([4], { dtype: 'int32' })).dtype, 'float32');
  });

  test('normalCdf is relatively accurate far into the lower tail (vs. integrating the density)', () => {
    // The reference itself: doubling the number of intervals changes it by less than 2e-14 relative.
    for (const x of [-3.5, -20, 2]) {
      const coarse = normalCdfRef(x, 40000), fine = normalCdfRef(x, 80000);
      assert.ok(Math.abs(coarse - fine) <= 2e-14 * fine, `reference converged at ${x}`);
    }
    const xs = [-0.5, -1, -2, -2.1, -2.2, -3, -3.45, -3.453125, -3.5, -3.503, -3.54, -3.6, -4, -5, -6, -8, -10, -12, -15, -20, -25, -30, 0, 0.75, 3, 5, 8];
    const y = mt.normalCdf(mt.tensor(xs, { dtype: 'float64' }));
    assertNear(y.dataSync(), xs.map((x) => normalCdfRef(x)), { rtol: 1e-12, what: 'normalCdf tail' });
  });

  test('branch-free kernels keep no state between calls: relu after where, where after where', () => {
    // The CPU kernels select through a small scratch array (src/backends/cpu/elementwise.ts);
    // a value left there by one op must never leak into the next.
    const c = mt.tensor([1, 0], { dtype: 'int32' });
    mt.where(c, mt.tensor([1, 2]), mt.tensor([40, 50]));
    assert.deepEqual(mt.tensor([-1, 2, -3]).relu().toArray(), [0, 2, 0]);
    assert.deepEqual(mt.where(mt.tensor([0, 1], { dtype: 'int32' }), mt.tensor([7, 8]), mt.tensor([-5, -6])).toArray(), [-5, 8]);
    assert.deepEqual(mt.tensor([-4, 0.5]).relu().toArray(), [0, 0.5]);
  });

  test('conventions: relu(0) = 0, sign(0) = 0, sign(NaN) = NaN, relu(NaN) = NaN', () => {
    for (const dtype of FLOATS) {
      const x = mt.tensor([0, -0, NaN, -2, 3], { dtype });
      const r = values(mt.relu(x)), s = values(mt.sign(x));
      assert.ok(Object.is(r[0], 0) && Object.is(r[1], 0), 'relu(±0) is +0');
      assert.ok(Number.isNaN(r[2]!));
      assert.deepEqual(r.slice(3), [0, 3]);
      assert.ok(Object.is(s[0], 0), 'sign(0) = 0');
      assert.ok(s[1] === 0, 'sign(-0) is a zero');
      assert.ok(Number.isNaN(s[2]!));
      assert.deepEqual(s.slice(3), [-1, 1]);
    }
  });

  test('softplus, sigmoid and tanh do not overflow or lose their limits for large inputs', () => {
    for (const dtype of FLOATS) {
      const big = dtype === 'float64' ? [1000, 800, 710, -1000, -800, 40, -40] : [1000, 100, 89, -1000, -100, 40, -40];
      const x = mt.tensor(big, { dtype });
      const sp = values(mt.softplus(x));
      sp.forEach((v, i) => assert.ok(Number.isFinite(v), `softplus(${big[i]}) is finite, got ${v}`));
      // softplus(x) = x + log1p(e^-x) → x for large x, and e^x → 0 (never negative) for very negative x.
      assertNear(sp, big.map((v) => round(dtype, v > 0 ? v + Math.log1p(Math.exp(-v)) : Math.log1p(Math.exp(v)))),
        { rtol: dtype === 'float64' ? 1e-15 : EPS32, what: 'softplus' });
      sp.forEach((v) => assert.ok(v >= 0));
      const sg = values(mt.sigmoid(x));
      assert.deepEqual(sg.map((v) => Number.isNaN(v)), big.map(() => false));
      assert.equal(sg[0], 1);
      assert.equal(sg[3], 0);
      const th = values(mt.tanh(x));
      assert.equal(th[0], 1);
      assert.equal(th[3], -1);
      const c = values(mt.normalCdf(mt.tensor([Infinity, -Infinity, 40, -40, NaN], { dtype })));
      assert.deepEqual(c.slice(0, 3), [1, 0, 1]);
      assert.equal(c[3], dtype === 'float64' ? round(dtype, normalCdfRef(-40)) : 0);
      assert.ok(Number.isNaN(c[4]!));
    }
    // exp/log at their limits.
    assert.deepEqual(values(mt.exp(mt.tensor([-Infinity, 1000], { dtype: 'float64' }))), [0, Infinity]);
    assert.deepEqual(values(mt.log(mt.tensor([0, Infinity], { dtype: 'float64' }))), [-Infinity, Infinity]);
    assert.ok(Number.isNaN(mt.log(mt.tensor([-1], { dtype: 'float64' })).item()));
  });
});

// ---- binary ---------------------------------------------------------------------------

interface BinaryCase { name: string; op: (a: mt.TensorLike, b: mt.TensorLike) => mt.Tensor; ref: (a: number, b: number) => number; positiveA?: boolean; exact?: boolean }
const binaryCases: BinaryCase[] = [
  { name: 'add', op: mt.add, ref: (a, b) => a + b, exact: true },
  { name: 'sub', op: mt.sub, ref: (a, b) => a - b, exact: true },
  { name: 'mul', op: mt.mul, ref: (a, b) => a * b, exact: true },
  { name: 'div', op: mt.div, ref: (a, b) => a / b },
  { name: 'pow', op: mt.pow, ref: (a, b) => Math.exp(b * Math.log(a)), positiveA: true },
  { name: 'maximum', op: mt.maximum, ref: (a, b) => (a > b ? a : b), exact: true },
  { name: 'minimum', op: mt.minimum, ref: (a, b) => (a < b ? a : b), exact: true },
];

type Operand = [shape: number[], values: number[]];
/** Two broadcast-compatible shapes with values. */
const operandsArb = (vals: (n: number) => fc.Arbitrary<number[]>): fc.Arbitrary<[Operand, Operand]> =>
  broadcastShapesArb(2).chain(({ shapes: [sa, sb] }) =>
    fc.tuple(fc.tuple(fc.constant(sa!), vals(size(sa!))), fc.tuple(fc.constant(sb!), vals(size(sb!)))));

type Mode = 'tensor-tensor' | 'number-tensor' | 'tensor-number';
const MODES: Mode[] = ['tensor-tensor', 'number-tensor', 'tensor-number'];

/** Builds the operands for a mode: a plain number replaces one side by its first value (shape []). */
function makeOperands(mode: Mode, a: Operand, b: Operand, dtype: mt.DType) {
  const [sa, va] = a, [sb, vb] = b;
  const A = mode === 'number-tensor' ? { values: [va[0] ?? 1], shape: [] as number[] } : { values: va, shape: sa };
  const B = mode === 'tensor-number' ? { values: [vb[0] ?? 1], shape: [] as number[] } : { values: vb, shape: sb };
  const ta: mt.TensorLike = mode === 'number-tensor' ? A.values[0]! : mt.tensor(A.values, A.shape, { dtype });
  const tb: mt.TensorLike = mode === 'tensor-number' ? B.values[0]! : mt.tensor(B.values, B.shape, { dtype });
  return { A, B, ta, tb };
}

describe('binary ops', () => {
  test('add sub mul div pow maximum minimum broadcast like NumPy, with numbers on either side', () => {
    fc.assert(fc.property(operandsArb((n) => valuesArb(n)), fc.constantFrom(...FLOATS), fc.constantFrom(...MODES),
      ([a, b], dtype, mode) => {
        for (const c of binaryCases) {
          const pa: Operand = [a[0], c.positiveA ? a[1].map(Math.abs) : a[1]];
          const { A, B, ta, tb } = makeOperands(mode, pa, b, dtype);
          const y = c.op(ta, tb);
          const expected = broadcastRef((x, z) => round(dtype, c.ref(round(dtype, x), round(dtype, z))), [A, B]);
          assert.equal(y.dtype, dtype, c.name);
          assert.deepEqual([...y.shape], expected.shape, `${c.name} shape`);
          const rtol = c.exact ? 0 : dtype === 'float64' ? 1e-12 : 2 * EPS32;
          assertNear(y.dataSync(), expected.values, { rtol, what: `${c.name} ${dtype} ${mode} [${A.shape}] [${B.shape}]` });
          mt.dispose([ta, tb, y]);
        }
      }), numRuns(50));
  });

  test('methods take tensors and numbers: x.sub(2), x.pow(2), x.div(y)', () => {
    const x = mt.tensor([[1, 2], [3, 4]], { dtype: 'float64' }), y = mt.tensor([2, 8], { dtype: 'float64' });
    assert.deepEqual(x.sub(2).toArray(), [[-1, 0], [1, 2]]);
    assert.deepEqual(x.pow(2).toArray(), [[1, 4], [9, 16]]);
    assert.deepEqual(x.div(y).toArray(), [[0.5, 0.25], [1.5, 0.5]]);
    assert.deepEqual(mt.sub(10, x).toArray(), [[9, 8], [7, 6]]);
    assert.deepEqual(mt.div(1, y).toArray(), [0.5, 0.125]);
    assert.deepEqual(x.maximum(2.5).toArray(), [[2.5, 2.5], [3, 4]]);
    assert.deepEqual(x.minimum(y).toArray(), [[1, 2], [2, 4]]);
    assert.deepEqual(x.square().toArray(), [[1, 4], [9, 16]]);
    assert.deepEqual(y.reciprocal().toArray(), [0.5, 0.125]);
  });

  test('dtype promotion: int32 stays int32 except true division; numbers are weak; float32 with float64 is float64', () => {
    const i = mt.tensor([7, -7], { dtype: 'int32' }), j = mt.tensor([2, 2], { dtype: 'int32' });
    const f32 = mt.tensor([0.5, 0.5]), f64 = mt.tensor([0.1, 0.1], { dtype: 'float64' });
    assert.equal(mt.add(i, j).dtype, 'int32');
    assert.deepEqual(values(mt.mul(i, j)), [14, -14]);
    assert.deepEqual(values(mt.add(i, 3)), [10, -4]);
    assert.equal(mt.add(i, 3).dtype, 'int32');
    const q = mt.div(i, j);
    assert.equal(q.dtype, 'float32');
    assert.deepEqual(values(q), [3.5, -3.5]);
    const h = mt.add(i, 0.5);
    assert.equal(h.dtype, 'float32');
    assert.deepEqual(values(h), [7.5, -6.5]);
    assert.equal(mt.add(i, f32).dtype, 'float32');
    assert.equal(mt.add(i, f64).dtype, 'float64');
    const m = mt.add(f32, f64);
    assert.equal(m.dtype, 'float64');
    assert.deepEqual(values(m), [0.6, 0.6]);
    assert.equal(mt.mul(f32, 1e-3).dtype, 'float32');
    assert.equal(mt.maximum(i, j).dtype, 'int32');
    assert.equal(mt.pow(j, 3).dtype, 'int32');
    assert.deepEqual(values(mt.pow(j, 3)), [8, 8]);
  });

  test('maximum/minimum propagate NaN from either side', () => {
    for (const dtype of FLOATS) {
      const a = mt.tensor([NaN, 1, NaN, -Infinity], { dtype }), b = mt.tensor([1, NaN, NaN, 0], { dtype });
      for (const y of [mt.maximum(a, b), mt.minimum(a, b), mt.maximum(b, a), mt.minimum(b, a)]) {
        const v = values(y);
        assert.deepEqual(v.slice(0, 3).map(Number.isNaN), [true, true, true]);
      }
      assert.equal(values(mt.maximum(a, b))[3], 0);
      assert.equal(values(mt.minimum(a, b))[3], -Infinity);
      assert.ok(Number.isNaN(values(mt.maximum(a, 5))[0]!));
    }
  });
});

// ---- comparisons and where ------------------------------------------------------------

const comparisons: [string, (a: mt.TensorLike, b: mt.TensorLike) => mt.Tensor, (a: number, b: number) => boolean][] = [
  ['equal', mt.equal, (a, b) => a === b],
  ['notEqual', mt.notEqual, (a, b) => a !== b],
  ['less', mt.less, (a, b) => a < b],
  ['lessEqual', mt.lessEqual, (a, b) => a <= b],
  ['greater', mt.greater, (a, b) => a > b],
  ['greaterEqual', mt.greaterEqual, (a, b) => a >= b],
];

describe('comparisons and where', () => {
  test('comparisons broadcast and return int32 0/1 masks (values with many ties)', () => {
    fc.assert(fc.property(operandsArb((n) => smallIntsArb(n)), fc.constantFrom<mt.DType>('float64', 'float32', 'int32'),
      fc.constantFrom(...MODES), ([a, b], dtype, mode) => {
        for (const [name, op, ref] of comparisons) {
          const { A, B, ta, tb } = makeOperands(mode, a, b, dtype);
          const y = op(ta, tb);
          const expected = broadcastRef((x, z) => (ref(x, z) ? 1 : 0), [A, B]);
          assert.equal(y.dtype, 'int32', name);
          assert.deepEqual([...y.shape], expected.shape, name);
          assert.deepEqual(values(y), expected.values, `${name} ${mode}`);
          mt.dispose([ta, tb, y]);
        }
      }), numRuns(50));
  });

  test('comparisons with NaN: only notEqual is true; mixed dtypes compare the promoted values', () => {
    const x = mt.tensor([NaN, NaN, 1], { dtype: 'float64' }), y = mt.tensor([NaN, 1, NaN], { dtype: 'float64' });
    for (const [name, op] of comparisons) {
      assert.deepEqual(values(op(x, y)), name === 'notEqual' ? [1, 1, 1] : [0, 0, 0], name);
    }
    const i = mt.tensor([1, 2], { dtype: 'int32' });
    assert.deepEqual(values(mt.less(i, 1.5)), [1, 0]);
    assert.deepEqual(values(mt.equal(i, mt.tensor([1, 2.5], { dtype: 'float64' }))), [1, 0]);
    assert.deepEqual(values(i.greaterEqual(2)), [0, 1]);
    assert.deepEqual(values(mt.less(0, mt.tensor([-1, 1]))), [0, 1]);
  });

  test('where(cond, a, b) broadcasts all three; any nonzero cond selects a', () => {
    fc.assert(fc.property(
      broadcastShapesArb(3).chain(({ shapes: [sc, sa, sb] }) => fc.tuple(
        fc.constant([sc!, sa!, sb!]),
        fc.array(fc.constantFrom(0, 0, 1, -2, 0.5), { minLength: size(sc!), maxLength: size(sc!) }),
        valuesArb(size(sa!)), valuesArb(size(sb!)))),
      fc.constantFrom(...FLOATS), fc.constantFrom<mt.DType>('int32', 'float32', 'float64'), fc.constantFrom(...MODES),
      ([[sc, sa, sb], vc, va, vb], dtype, condDtype, mode) => {
        const condValues = condDtype === 'int32' ? vc.map((v) => Math.trunc(v * 2)) : vc;
        const cond = mt.tensor(condValues, sc, { dtype: condDtype });
        const { A, B, ta, tb } = makeOperands(mode, [sa, va], [sb, vb], dtype);
        const y = mt.where(cond, ta, tb);
        const expected = broadcastRef((c, x, z) => (c !== 0 ? x : z), [{ values: condValues, shape: sc }, A, B]);
        assert.equal(y.dtype, dtype);
        assert.deepEqual([...y.shape], expected.shape);
        assert.deepEqual(values(y), expected.values.map((v) => round(dtype, v)));
        mt.dispose([cond, ta, tb, y]);
      }), numRuns(50));
    // The method form is PyTorch's Tensor.where: this where cond, else other.
    const a = mt.tensor([1, 2, 3]), c = mt.tensor([1, 0, 1], { dtype: 'int32' });
    assert.deepEqual(values(a.where(c, -1)), [1, -1, 3]);
  });

  test('where(cond, number, number): PyTorch\'s result type, cond\'s shape', () => {
    const c = mt.tensor([[1, 0, 2], [0, 0, -1]], [2, 3], { dtype: 'int32' });
    const ints = mt.where(c, 1, 0);      // torch.where(c, 1, 0): integers (int64 there, int32 here)
    assert.equal(ints.dtype, 'int32');
    assert.deepEqual([...ints.shape], [2, 3]);
    assert.deepEqual(values(ints), [1, 0, 1, 0, 0, 1]);
    const floats = mt.where(mt.greater(mt.tensor([0.5, -2, 3]), 0), 0.5, -Infinity); // the default float dtype
    assert.equal(floats.dtype, 'float32');
    assert.deepEqual(values(floats), [0.5, -Infinity, 0.5]);
    assert.throws(() => mt.where(c, 2 ** 40, 0), /where: the integer 1099511627776 does not fit int32/);
    assert.throws(() => mt.where(c, 'x' as unknown as number, 0), /where/);
    mt.dispose([c, ints, floats]);
  });

  test('clamp, isFinite', () => {
    fc.assert(fc.property(shapeValuesArb(shapeArb(3, 4)), fc.constantFrom(...FLOATS), fc.integer({ min: -3, max: 3 }), fc.integer({ min: 0, max: 3 }),
      fc.constantFrom('both', 'min', 'max'), ([shape, vals], dtype, lo, width, which) => {
        const min = which === 'max' ? undefined : lo / 2, max = which === 'min' ? undefined : lo / 2 + width;
        const x = mt.tensor(vals, shape, { dtype });
        const y = mt.clamp(x, min, max);
        assert.equal(y.dtype, dtype);
        assert.deepEqual(values(y), vals.map((v) => Math.min(Math.max(v, min ?? -Infinity), max ?? Infinity)));
        mt.dispose([x, y]);
      }), numRuns(30));
    const f = mt.isFinite(mt.tensor([1, Infinity, -Infinity, NaN, -0, 1e308], { dtype: 'float64' }));
    assert.equal(f.dtype, 'int32');
    assert.deepEqual(values(f), [1, 0, 0, 0, 1, 1]);
  });
});

// ---- cast -----------------------------------------------------------------------------

describe('cast', () => {
  test('float → int32 truncates toward zero; int32 → float is exact; float64 → float32 rounds', () => {
    fc.assert(fc.property(fc.array(fc.double({ min: -1e6, max: 1e6, noNaN: true }), { maxLength: 20 }), fc.constantFrom(...FLOATS), (vals, dtype) => {
      const x = mt.tensor(vals, { dtype });
      const stored = vals.map((v) => round(dtype, v));
      const i = mt.cast(x, 'int32');
      assert.equal(i.dtype, 'int32');
      assert.deepEqual(values(i), stored.map((v) => (v < 0 ? Math.ceil(v) : Math.floor(v)) + 0));
      const back = i.double();
      assert.equal(back.dtype, 'float64');
      assert.deepEqual(values(back), values(i));
      const f32 = x.float();
      assert.deepEqual(values(f32), vals.map((v) => Math.fround(v)));
      mt.dispose([x, i, back, f32]);
    }), numRuns(50));
    assert.deepEqual(values(mt.tensor([1.7, -1.7, 2.5, -2.5, -0.5, 0.99]).int()), [1, -1, 2, -2, 0, 0]);
  });

  test('casting to the same dtype is a copy with the same values', () => {
    const x = mt.tensor([1.5, 2], { dtype: 'float64' });
    const y = x.cast('float64');
    assert.notEqual(y, x);
    assert.equal(y.dtype, 'float64');
    assert.deepEqual(values(y), [1.5, 2]);
    x.dispose();
    assert.deepEqual(values(y), [1.5, 2], 'the copy outlives the original');
  });
});

