// The ops added for PyTorch parity pass gradcheck in float64 (and gradgradcheck where they
// are smooth) over random small shapes, axes and options. Values are built from integers:
// multiples of 1/64 shifted by 1/128 never sit on an integer or a half, where floor, ceil
// and round jump; distinct values keep sort and the ∞-norm away from ties.

import { describe, test } from 'node:test';
import fc from 'fast-check';
import { distinctValuesArb, leaf, mt, numRuns, shapeArb, size, valuesArb } from '../helpers.js';

type T = mt.Tensor;

function check(fn: (...xs: T[]) => T | T[], inputs: T[], second = false): void {
  mt.tidy(() => {
    mt.gradcheck(fn, inputs);
    if (second) mt.gradgradcheck(fn, inputs);
  });
  mt.dispose(inputs);
}

const shapeValues = (maxRank = 3, maxDim = 3, minRank = 0, options?: { margin?: number; maxInt?: number }) =>
  shapeArb(maxRank, maxDim, minRank).chain((s) => fc.tuple(fc.constant(s), valuesArb(size(s), options)));

/** A random subset of axes (undefined = all), some spelled negative. */
const axesArb = (rank: number) => fc.oneof(
  fc.constant(undefined),
  fc.subarray(Array.from({ length: rank }, (_, i) => i), { minLength: rank === 0 ? 0 : 1 }).map((axes) => axes.map((a, i) => (i % 2 ? a - rank : a))),
);

const smoothUnary: [string, (x: T) => T, (v: number) => number][] = [
  ['log1p', (x) => x.log1p(), (v) => Math.abs(v) - 0.2], // > -1
  ['expm1', (x) => x.expm1(), (v) => v],
  ['sin', (x) => x.sin(), (v) => v],
  ['cos', (x) => x.cos(), (v) => v],
  ['erf', (x) => x.erf(), (v) => v],
  ['gelu', (x) => x.gelu(), (v) => v],
  ["gelu approximate 'tanh'", (x) => x.gelu({ approximate: 'tanh' }), (v) => v],
  ['silu', (x) => x.silu(), (v) => v],
];

describe('gradcheck: new unary ops', () => {
  for (const [name, fn, shift] of smoothUnary) {
    test(`${name} (and its second derivative)`, () => {
      fc.assert(fc.property(shapeValues(3, 3, 0, { maxInt: 160 }), ([shape, values]) => {
        check(fn, [leaf(values.map(shift), shape)], true);
      }), numRuns(10));
    });
  }
  for (const name of ['floor', 'ceil', 'round'] as const) {
    test(`${name}: zero gradient away from its jumps`, () => {
      fc.assert(fc.property(shapeValues(), ([shape, values]) => {
        check((x) => x[name]().mul(x), [leaf(values.map((v) => v + 1 / 128), shape)]);
      }), numRuns(10));
    });
  }
});

describe('gradcheck: new reductions and scans', () => {
  test('prod over random axes, zeros included (one or several per slice; second order up to one zero)', () => {
    const arb = shapeArb(3, 3, 1).chain((s) => fc.tuple(fc.constant(s), valuesArb(size(s), { maxInt: 40 }),
      fc.array(fc.boolean(), { minLength: size(s), maxLength: size(s) }), axesArb(s.length), fc.boolean()));
    fc.assert(fc.property(arb, ([s, v, zero, axes, keepdims]) => {
      // about one value in four is an exact zero: prod is a polynomial, smooth there too.
      const values = v.map((x, i) => (zero[i] && i % 2 === 0 ? 0 : x));
      // Second derivatives hold up to one zero; with two, the rule's "only zero" mask is
      // piecewise constant there (PyTorch's prod backward returns a constant 0 there too).
      check((x) => x.prod(axes, keepdims), [leaf(values, s)], values.filter((x) => x === 0).length <= 1);
    }), numRuns(20));
  });

  test('cumsum along a random axis', () => {
    const arb = shapeArb(3, 4, 1).chain((s) => fc.tuple(fc.constant(s), valuesArb(size(s)), fc.integer({ min: -s.length, max: s.length - 1 })));
    fc.assert(fc.property(arb, ([s, v, axis]) => check((x) => x.cumsum(axis).mul(x), [leaf(v, s)], true)), numRuns(15));
  });

  test('var and std over random axes, correction 0, 1 or 2', () => {
    const arb = shapeArb(3, 4, 1).chain((s) => fc.tuple(fc.constant(s), distinctValuesArb(size(s)), axesArb(s.length), fc.integer({ min: 0, max: 2 }), fc.boolean()));
    fc.assert(fc.property(arb, ([s, v, axes, correction, keepdims]) => {
      const n = axes === undefined ? size(s) : axes.reduce((k, a) => k * s[(a + s.length) % s.length]!, 1);
      if (n - correction <= 0 || n < 2) return; // no degrees of freedom (an error) or a constant slice
      check((x) => mt.var(x, axes, { correction, keepdims }), [leaf(v, s)], true);
      check((x) => x.std(axes, { correction, keepdims }), [leaf(v, s)], true);
    }), numRuns(20));
  });

  test('norm for p = 2, 1, 3, 1.5, 0.5, ∞, −∞ over random axes', () => {
    const arb = shapeArb(3, 3, 1).chain((s) => fc.tuple(fc.constant(s), distinctValuesArb(size(s)), axesArb(s.length),
      fc.constantFrom(2, 1, 3, 1.5, 0.5, Infinity, -Infinity), fc.boolean()));
    fc.assert(fc.property(arb, ([s, v, axes, p, keepdims]) => {
      // distinct values shifted off 0 (|x| kinks) and off each other's negatives (∞-norm ties of |x|)
      const values = v.map((x) => x + 1 / 256);
      check((x) => x.norm(p, axes, keepdims), [leaf(values, s)], Number.isFinite(p) && p !== 1);
    }), numRuns(25));
  });
});

describe('gradcheck: new movement, masking and sorting ops', () => {
  test('flip over random axes, repeat with random counts', () => {
    const arb = shapeArb(3, 3, 1).chain((s) => fc.tuple(fc.constant(s), valuesArb(size(s)), axesArb(s.length),
      fc.array(fc.integer({ min: 1, max: 3 }), { minLength: s.length, maxLength: s.length + 1 })));
    fc.assert(fc.property(arb, ([s, v, axes, repeats]) => {
      check((x) => x.flip(axes ?? s.map((_, i) => i)).mul(x), [leaf(v, s)], true);
      check((x) => x.repeat(repeats).square(), [leaf(v, s)], true);
    }), numRuns(15));
  });

  test('tril and triu with random diagonals; maskedFill with a broadcast mask', () => {
    const arb = shapeArb(3, 4, 2).chain((s) => fc.tuple(fc.constant(s), valuesArb(size(s)), fc.integer({ min: -3, max: 3 }),
      fc.array(fc.integer({ min: 0, max: 1 }), { minLength: s[s.length - 1]!, maxLength: s[s.length - 1]! })));
    fc.assert(fc.property(arb, ([s, v, diagonal, m]) => {
      check((x) => x.tril(diagonal).mul(x), [leaf(v, s)], true);
      check((x) => mt.triu(x, diagonal).exp(), [leaf(v, s)], true);
      const mask = mt.tensor(m, [m.length], { dtype: 'int32' });
      check((x) => x.maskedFill(mask, -2.5).mul(x), [leaf(v, s)], true);
      mask.dispose();
    }), numRuns(15));
  });

  test('sort along a random axis, ascending or descending (distinct values)', () => {
    const arb = shapeArb(3, 4, 1).chain((s) => fc.tuple(fc.constant(s), distinctValuesArb(size(s)), fc.integer({ min: -s.length, max: s.length - 1 }), fc.boolean()));
    fc.assert(fc.property(arb, ([s, v, axis, descending]) => {
      const weights = mt.tensor(Array.from({ length: size(s) }, (_, i) => i + 1), s, { dtype: 'float64' });
      check((x) => x.sort(axis, descending).values.mul(weights), [leaf(v, s)], true);
      weights.dispose();
    }), numRuns(15));
  });

  test('cat and chunk', () => {
    fc.assert(fc.property(shapeValues(3, 3, 1), fc.integer({ min: 1, max: 4 }), ([s, v], n) => {
      check((x) => mt.cat(mt.chunk(mt.cat([x, x.exp()], 0), n, 0).map((p, i) => p.mul(i + 1)), 0), [leaf(v, s)], true);
    }), numRuns(10));
  });
});
