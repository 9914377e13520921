// Shared test helpers: float64 references, tolerance checks and well-conditioned
// fast-check arbitraries built from integers (never raw fc.double: it clusters at 0 and
// the bounds and hits kinks).

import assert from 'node:assert/strict';
import fc from 'fast-check';
import * as mt from '../src/index.js';
import { getBackend } from '../src/tensor/engine.js';

export { mt };

/** Small shapes: rank 0..maxRank, dims 1..maxDim. */
export const shapeArb = (maxRank = 3, maxDim = 4, minRank = 0) =>
  fc.array(fc.integer({ min: 1, max: maxDim }), { minLength: minRank, maxLength: maxRank });

export const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * n values of the form ±(margin + m/64) with m an integer: well away from 0 (kinks of
 * relu/abs) by `margin`, exact in binary, shrinking toward small numbers.
 */
export const valuesArb = (n: number, { margin = 0.25, maxInt = 128 } = {}) =>
  fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: maxInt })), { minLength: n, maxLength: n })
    .map((pairs) => pairs.map(([neg, m]) => (neg ? -1 : 1) * (margin + m / 64)));

/** n distinct values (pairwise gap >= gap) in random order: no ties for max/topk. */
export const distinctValuesArb = (n: number, gap = 0.125) =>
  fc.tuple(
    fc.array(fc.integer({ min: 1, max: 16 }), { minLength: n, maxLength: n }),
    fc.array(fc.integer(), { minLength: n, maxLength: n }),
  ).map(([steps, keys]) => {
    let v = -2;
    const sorted = steps.map((s) => (v += s * gap));
    const order = sorted.map((_, i) => i).sort((a, b) => keys[a]! - keys[b]! || a - b);
    return order.map((i) => sorted[i]!);
  });

/** A float64 tensor requiring grad, for gradcheck. */
export function leaf(values: readonly number[], shape: readonly number[]): mt.Tensor {
  return mt.tensor(values as number[], shape, { dtype: 'float64', requiresGrad: true });
}

export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, { rtol = 1e-12, atol = 1e-12, what = '' } = {}): void {
  assert.equal(actual.length, expected.length, `${what}: length ${actual.length} vs ${expected.length}`);
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!, e = expected[i]!;
    if (Number.isNaN(e) && Number.isNaN(a)) continue;
    if (a === e) continue;
    if (!(Math.abs(a - e) <= atol + rtol * Math.abs(e))) {
      assert.fail(`${what}: element ${i}: got ${a}, expected ${e} (|diff| ${Math.abs(a - e)}, rtol ${rtol}, atol ${atol})`);
    }
  }
}

/** Multi-index ↔ flat index helpers for the float64 references written in tests. */
export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) { s[i] = acc; acc *= shape[i]!; }
  return s;
}
export function unravel(flat: number, shape: readonly number[]): number[] {
  const strides = stridesOf(shape);
  return shape.map((d, i) => Math.floor(flat / strides[i]!) % d);
}
export function ravel(index: readonly number[], shape: readonly number[]): number {
  const strides = stridesOf(shape);
  return index.reduce((acc, v, i) => acc + v * strides[i]!, 0);
}

/** NumPy broadcasting, written independently of src/ for the references. */
export function broadcast(a: readonly number[], b: readonly number[]): number[] | null {
  const r = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < r; i++) {
    const x = a[a.length - r + i] ?? 1, y = b[b.length - r + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) return null;
    out.push(Math.max(x, y) === 1 ? Math.min(x, y) : Math.max(x, y));
  }
  return out;
}
/** The flat index in `shape` of the broadcast element `index` of `outShape`. */
export function broadcastIndex(index: readonly number[], shape: readonly number[], outShape: readonly number[]): number {
  const off = outShape.length - shape.length;
  return ravel(shape.map((d, i) => (d === 1 ? 0 : index[i + off]!)), shape);
}

export const numRuns = (n: number) => ({ numRuns: Number(process.env.MIXTAPE_NUM_RUNS ?? n) });

/** Runs `fn` with the active backend's `kernels` switched on or off (supports() answers `on` for them), then puts supports() back. */
export function withKernel<T>(kernels: string | readonly string[], on: boolean, fn: () => T): T {
  const names = typeof kernels === 'string' ? [kernels] : kernels;
  const be = getBackend() as unknown as { supports: (k: string) => boolean };
  const own = Object.getOwnPropertyDescriptor(be, 'supports');
  const original = be.supports.bind(be);
  be.supports = (k: string) => (names.includes(k) ? on : original(k));
  try { return fn(); } finally { if (own) Object.defineProperty(be, 'supports', own); else delete (be as { supports?: unknown }).supports; }
}

/** n deterministic values in [-2, 2) (a 32-bit LCG from seed), in a float32 or float64 array. */
export function lcgValues(n: number, seed: number, dtype: 'float32' | 'float64'): Float32Array | Float64Array {
  let s = seed >>> 0;
  const out = dtype === 'float32' ? new Float32Array(n) : new Float64Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32) * 4 - 2;
  }
  return out;
}
