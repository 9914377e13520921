// Reductions over any set of axes (sum, max, min, prod), arg-reductions over one axis and
// the running sum (cumsum).

import type { DType, TypedArray } from '../../core/dtype.js';
import { cpuPool } from './pool.js';
import { sizeOf, stridesOf, type Shape } from '../../core/shape.js';

/**
 * e^t elementwise into e, each rounded to the arrays' dtype (Math.exp's bits: the SIMD math
 * module's float64 lanes); false where it declines, having written nothing.
 */
export type VectorExp = (t: Float32Array | Float64Array, e: Float32Array | Float64Array) => boolean;

/**
 * Each row's shift and float64 sum of e^(x − shift) rounded to float32, computed elsewhere
 * (the SIMD math module's logsumexpRows_f32) with the loops' bits; false where it declines.
 */
export type RowParts = (x: Float32Array, n: number, sums: Float64Array, shifts: Float32Array) => boolean;

/**
 * logsumexp over rows of n (the logsumexpRows kernel): each step rounded to float32 where
 * `float32`, as the composition max → where(isFinite) → sub → exp → sum → log → add stores it.
 * With `exp`, the shifted values go through it in one call (at 4.8 against about 10 ns for a
 * Math.exp from JavaScript); the sums still run row by row in order: the same bits. With
 * `rowParts` (float32), the module's logsumexpRows_f32 takes each row's shift and sum in one pass
 * over x (no shifted or exponentiated copy) and this finishes the rows: the same bits again.
 */
export function logsumexpRows(x: TypedArray, n: number, float32: boolean, out: TypedArray, exp: VectorExp | null = null, rowParts: RowParts | null = null): void {
  if (rowParts !== null && x instanceof Float32Array && float32) {
    const sums = cpuPool.take('float64', out.length, false) as Float64Array, shifts = cpuPool.take('float32', out.length, false) as Float32Array;
    const done = rowParts(x, n, sums, shifts);
    if (done) for (let r = 0; r < out.length; r++) out[r] = Math.fround(Math.log(Math.fround(sums[r]!))) + shifts[r]!;
    cpuPool.give(sums);
    cpuPool.give(shifts);
    if (done) return;
  }
  if (exp !== null && (x instanceof Float32Array || x instanceof Float64Array) && out.length * n > 0) {
    const dtype = x instanceof Float32Array ? 'float32' : 'float64', total = out.length * n;
    const t = cpuPool.take(dtype, total, false) as Float32Array | Float64Array, e = cpuPool.take(dtype, total, false) as Float32Array | Float64Array;
    const shifts = new Float64Array(out.length);
    for (let r = 0, base = 0; r < out.length; r++, base += n) {
      const shift = rowShift(x, base, n);
      shifts[r] = shift;
      for (let j = 0; j < n; j++) t[base + j] = x[base + j]! - shift; // stored: rounded to the dtype
    }
    const done = exp(t, e);
    if (done) {
      for (let r = 0, base = 0; r < out.length; r++, base += n) {
        let s = 0;
        for (let j = 0; j < n; j++) s += e[base + j]!;
        out[r] = float32 ? Math.fround(Math.log(Math.fround(s))) + shifts[r]! : Math.log(s) + shifts[r]!;
      }
    }
    cpuPool.give(t);
    cpuPool.give(e);
    if (done) return;
  }
  for (let r = 0, base = 0; r < out.length; r++, base += n) {
    const shift = rowShift(x, base, n);
    let s = 0;
    if (float32) {
      for (let j = 0; j < n; j++) s += Math.fround(Math.exp(Math.fround(x[base + j]! - shift)));
      out[r] = Math.fround(Math.log(Math.fround(s))) + shift;
    } else {
      for (let j = 0; j < n; j++) s += Math.exp(x[base + j]! - shift);
      out[r] = Math.log(s) + shift;
    }
  }
}

/** A row's max (NaN if it holds one), or 0 where that is not finite: what logsumexp subtracts. */
function rowShift(x: TypedArray, base: number, n: number): number {
  let m = -Infinity;
  for (let j = 0; j < n; j++) {
    const v = x[base + j]!;
    if (v !== v) { m = NaN; break; }
    if (v > m) m = v;
  }
  return Number.isFinite(m) ? m : 0;
}

/** Σᵢ gᵢ log gᵢ over rows of n, 0 for gᵢ ≤ 0 or NaN (the gateEntropyRows kernel), rounded as the composition rounds it. */
export function gateEntropyRows(g: TypedArray, n: number, float32: boolean, out: TypedArray): void {
  for (let r = 0, base = 0; r < out.length; r++, base += n) {
    let s = 0;
    if (float32) {
      for (let j = 0; j < n; j++) { const v = g[base + j]!; if (v > 0) s += Math.fround(v * Math.fround(Math.log(v))); }
    } else {
      for (let j = 0; j < n; j++) { const v = g[base + j]!; if (v > 0) s += v * Math.log(v); }
    }
    out[r] = s;
  }
}

/** For each input element, the flat index of the output element it reduces into. */
function reduceTargets(shape: Shape, axes: readonly number[]): Int32Array {
  const n = sizeOf(shape);
  const outShape = shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const outStrides = stridesOf(outShape).map((s, i) => (axes.includes(i) ? 0 : s));
  const targets = new Int32Array(n);
  const counter = new Array<number>(shape.length).fill(0);
  let o = 0;
  for (let i = 0; i < n; i++) {
    targets[i] = o;
    for (let d = shape.length - 1; d >= 0; d--) {
      counter[d]!++;
      o += outStrides[d]!;
      if (counter[d]! < shape[d]!) break;
      o -= outStrides[d]! * shape[d]!;
      counter[d] = 0;
    }
  }
  return targets;
}

/** [outer, reduced, inner] when the reduced axes are contiguous, else null. */
export function contiguousSplit(shape: Shape, axes: readonly number[]): [number, number, number] | null {
  if (axes.length === 0) return [sizeOf(shape), 1, 1];
  for (let i = 1; i < axes.length; i++) if (axes[i] !== axes[i - 1]! + 1) return null;
  const first = axes[0]!, last = axes[axes.length - 1]!;
  return [sizeOf(shape.slice(0, first)), sizeOf(shape.slice(first, last + 1)), sizeOf(shape.slice(last + 1))];
}

type Combine = 'sum' | 'max' | 'min' | 'prod';

export function reduce(kind: Combine, x: TypedArray, shape: Shape, axes: readonly number[], outDtype: DType, outSize: number): TypedArray {
  const out = cpuPool.take(outDtype, outSize, false); // every element is written below
  const acc = new Float64Array(outSize);
  const init = kind === 'sum' ? 0 : kind === 'prod' ? 1 : kind === 'max' ? -Infinity : Infinity;
  acc.fill(init);
  const split = contiguousSplit(shape, axes);
  if (split && split[2] === 1) {
    // The reduced elements are contiguous (innermost axes, or everything): a local accumulator.
    const [outer, r] = split;
    for (let o = 0; o < outer; o++) {
      const base = o * r;
      let a = init;
      if (kind === 'sum') for (let j = 0; j < r; j++) a += x[base + j]!;
      else for (let j = 0; j < r; j++) a = combine(kind, a, x[base + j]!);
      acc[o] = a;
    }
  } else if (split) {
    const [outer, r, inner] = split;
    // Reduced elements `inner` apart: sweep whole rows into the accumulator row (for a sum,
    // with the + written in: a bias gradient sums a [rows, n] gradient over its rows).
    if (kind === 'sum') {
      for (let o = 0; o < outer; o++) {
        const ob = o * inner;
        for (let j = 0; j < r; j++) {
          const base = (o * r + j) * inner;
          for (let i = 0; i < inner; i++) acc[ob + i] = acc[ob + i]! + x[base + i]!;
        }
      }
    } else for (let o = 0; o < outer; o++) {
      for (let j = 0; j < r; j++) {
        const base = (o * r + j) * inner, ob = o * inner;
        for (let i = 0; i < inner; i++) acc[ob + i] = combine(kind, acc[ob + i]!, x[base + i]!);
      }
    }
  } else {
    const targets = reduceTargets(shape, axes);
    for (let i = 0; i < x.length; i++) acc[targets[i]!] = combine(kind, acc[targets[i]!]!, x[i]!);
  }
  for (let i = 0; i < outSize; i++) {
    const v = acc[i]!;
    if (outDtype === 'int32' && (v < -2147483648 || v > 2147483647)) throw new Error(`${kind}: the int32 result ${v} overflows int32 (cast to float64 first)`);
    out[i] = v;
  }
  return out;
}

function combine(kind: Combine, a: number, v: number): number {
  if (kind === 'sum') return a + v;
  if (kind === 'prod') return a * v;
  if (a !== a || v !== v) return NaN; // max/min propagate NaN, as in PyTorch
  return kind === 'max' ? (v > a ? v : a) : (v < a ? v : a);
}

/** Index of the first maximum (or minimum) along `axis`; a NaN counts as the extreme, as in PyTorch. */
export function argReduce(kind: 'argmax' | 'argmin', x: TypedArray, shape: Shape, axis: number): Int32Array {
  const outer = sizeOf(shape.slice(0, axis)), n = shape[axis]!, inner = sizeOf(shape.slice(axis + 1));
  const out = cpuPool.take('int32', outer * inner, false) as Int32Array; // every element is written
  const sign = kind === 'argmax' ? 1 : -1;
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * n * inner + i;
      let best = x[base]!, bestIndex = 0;
      for (let j = 1; j < n && best === best; j++) {
        const v = x[base + j * inner]!;
        if (v !== v || sign * (v - best) > 0) { best = v; bestIndex = j; }
      }
      out[o * inner + i] = bestIndex;
    }
  }
  return out;
}

/** Inclusive running sum along `axis` (torch.cumsum), accumulated in float64. */
export function cumsum(x: TypedArray, shape: Shape, axis: number, out: TypedArray): void {
  if (out instanceof Int32Array) {
    // Bounds first: a running sum past int32 must not wrap around silently.
    let total = 0;
    for (let i = 0; i < x.length; i++) total += Math.abs(x[i]!);
    if (total > 2147483647) checkInt32Cumsum(x, shape, axis);
  }
  const outer = sizeOf(shape.slice(0, axis)), n = shape[axis]!, inner = sizeOf(shape.slice(axis + 1));
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * n * inner + i;
      let acc = 0;
      for (let j = 0; j < n; j++) {
        acc += x[base + j * inner]!;
        out[base + j * inner] = acc;
      }
    }
  }
}

function checkInt32Cumsum(x: TypedArray, shape: Shape, axis: number): void {
  const probe = new Float64Array(x.length);
  cumsum(Float64Array.from(x), shape, axis, probe);
  for (const v of probe) {
    if (v < -2147483648 || v > 2147483647) throw new Error(`cumsum: the int32 running sum reaches ${v}, which overflows int32 (cast to float64 first)`);
  }
}
