// Float64 references and arbitraries shared by the tensor-layer tests. Everything here is
// plain JS over flat arrays and nested indices: nothing calls mixtape to compute an
// expected value.

import fc from 'fast-check';
import { broadcast, broadcastIndex, ravel, shapeArb, size, unravel, valuesArb } from '../helpers.js';

export type FloatDType = 'float32' | 'float64';
export const FLOATS: readonly FloatDType[] = ['float64', 'float32'];
/** The float32 machine epsilon (spacing of floats in [1, 2)). */
export const EPS32 = 2 ** -23;
export const EPS64 = 2 ** -52;

/** The value a dtype stores for v. */
export const round = (dtype: FloatDType, v: number): number => (dtype === 'float32' ? Math.fround(v) : v);

/** Calls fn for every multi-index of shape, in row-major order (once for rank 0). */
export function forEachIndex(shape: readonly number[], fn: (index: number[], flat: number) => void): void {
  const n = size(shape);
  for (let i = 0; i < n; i++) fn(unravel(i, shape), i);
}

/** Nested JS arrays from a flat row-major list (a number for rank 0). */
export function nest(flat: readonly number[], shape: readonly number[]): unknown {
  if (shape.length === 0) return flat[0];
  const inner = size(shape.slice(1));
  return Array.from({ length: shape[0]! }, (_, i) => nest(flat.slice(i * inner, (i + 1) * inner), shape.slice(1)));
}

/** Element-wise f over broadcast operands: the reference for binary ops and where. */
export function broadcastRef(
  f: (...xs: number[]) => number, operands: readonly { values: readonly number[]; shape: readonly number[] }[],
): { values: number[]; shape: number[] } {
  let shape: number[] = [];
  for (const o of operands) shape = broadcast(shape, o.shape)!;
  const values: number[] = [];
  forEachIndex(shape, (index) => values.push(f(...operands.map((o) => o.values[broadcastIndex(index, o.shape, shape)]!))));
  return { values, shape };
}

/**
 * `count` shapes that broadcast together: a base shape (rank ≤ maxRank, dims 1..maxDim) in
 * which each operand drops some leading dimensions and replaces random others by 1.
 */
export const broadcastShapesArb = (count: number, maxRank = 4, maxDim = 3) =>
  fc.tuple(
    shapeArb(maxRank, maxDim),
    fc.array(
      fc.tuple(fc.integer({ min: 0, max: maxRank }), fc.array(fc.boolean(), { minLength: maxRank, maxLength: maxRank })),
      { minLength: count, maxLength: count },
    ),
  ).map(([base, specs]) => ({
    base,
    shapes: specs.map(([drop, ones]) => base.slice(Math.min(drop, base.length)).map((d, i) => (ones[i] ? 1 : d))),
  }));

/** A shape with values. */
export const shapeValuesArb = (shape: fc.Arbitrary<number[]>, opts?: Parameters<typeof valuesArb>[1]) =>
  shape.chain((s) => fc.tuple(fc.constant(s), valuesArb(size(s), opts)));

/** Small integers (many ties), as floats. */
export const smallIntsArb = (n: number, max = 2) => fc.array(fc.integer({ min: -max, max }), { minLength: n, maxLength: n });

/**
 * A reduction spec for a tensor of rank r: undefined (all axes), one axis as a number, or a
 * non-empty list in any order; each axis given as positive or negative at random.
 */
export const axisSpecArb = (rank: number) =>
  fc.tuple(
    fc.shuffledSubarray(Array.from({ length: rank }, (_, i) => i), { minLength: Math.min(1, rank) }),
    fc.array(fc.boolean(), { minLength: rank, maxLength: rank }),
    fc.boolean(),
    fc.boolean(),
  ).map(([axes, negs, asNumber, all]): number | number[] | undefined => {
    if (all || axes.length === 0) return undefined;
    const spelled = axes.map((a) => (negs[a] ? a - rank : a));
    return asNumber && spelled.length === 1 ? spelled[0]! : spelled;
  });

/** The sorted, non-negative axes a spec names (all for undefined). */
export function axesOf(spec: number | readonly number[] | undefined, rank: number): number[] {
  if (spec === undefined) return Array.from({ length: rank }, (_, i) => i);
  const list = typeof spec === 'number' ? [spec] : [...spec];
  return list.map((a) => (a < 0 ? a + Math.max(rank, 1) : a)).filter((a) => a < rank).sort((a, b) => a - b);
}

/**
 * Groups the elements of a tensor by reduction output: returns, for each output element
 * (row-major over the reduced shape), the list of input values reduced into it.
 */
export function reductionGroups(
  values: readonly number[], shape: readonly number[], axes: readonly number[], keepdims: boolean,
): { groups: number[][]; shape: number[] } {
  const kept = shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const groups: number[][] = Array.from({ length: size(kept) }, () => []);
  forEachIndex(shape, (index, flat) => {
    groups[ravel(index.map((v, i) => (axes.includes(i) ? 0 : v)), kept)]!.push(values[flat]!);
  });
  const outShape = keepdims ? kept : shape.filter((_, i) => !axes.includes(i));
  return { groups, shape: outShape };
}

/** |actual - expected| <= atol + rtol·|expected| elementwise, with per-element atol allowed. */
export function assertNear(
  actual: ArrayLike<number>, expected: ArrayLike<number>,
  { rtol = 0, atol = 0 as number | ArrayLike<number>, what = '' } = {},
): void {
  if (actual.length !== expected.length) throw new Error(`${what}: length ${actual.length} vs ${expected.length}`);
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!, e = expected[i]!;
    if (Number.isNaN(e) && Number.isNaN(a)) continue;
    if (a === e) continue;
    const tol = (typeof atol === 'number' ? atol : atol[i]!) + rtol * Math.abs(e);
    if (!(Math.abs(a - e) <= tol)) {
      throw new Error(`${what}: element ${i}: got ${a}, expected ${e} (|diff| ${Math.abs(a - e)} > tol ${tol})`);
    }
  }
}

/** Composite Simpson's rule with n (even) intervals, in float64 with compensated (Neumaier) summation. */
export function simpson(f: (t: number) => number, a: number, b: number, n: number): number {
  const h = (b - a) / n;
  let s = 0, c = 0;
  for (let i = 0; i <= n; i++) {
    const term = (i === 0 || i === n ? 1 : i % 2 === 1 ? 4 : 2) * f(a + i * h);
    const t = s + term;
    c += Math.abs(s) >= Math.abs(term) ? (s - t) + term : (term - t) + s;
    s = t;
  }
  return ((s + c) * h) / 3;
}

export const normalDensity = (t: number): number => Math.exp(-0.5 * t * t) / Math.sqrt(2 * Math.PI);

/**
 * Φ(x) by numerical integration of the normal density: 0.5 + ∫₀ˣ φ for x >= 0, and the
 * lower tail ∫_{|x|}^{|x|+L} φ for x < 0 (no cancellation, so it is relatively accurate
 * far out in the tail; L is long enough that the rest is below 1e-17 relative).
 */
export function normalCdfRef(x: number, n = 40000): number {
  if (Number.isNaN(x)) return NaN;
  if (x === Infinity) return 1;
  if (x === -Infinity) return 0;
  if (x >= 0) return 0.5 + simpson(normalDensity, 0, x, n);
  const a = -x;
  const L = Math.min(12, 40 / a);
  return simpson(normalDensity, a, a + L, n);
}
