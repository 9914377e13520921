// Data movement: permute, broadcastTo, slice, flip, pad, concat.

import type { TypedArray } from '../../core/dtype.js';
import { sizeOf, stridesOf, type Shape } from '../../core/shape.js';
import { broadcastFast, broadcastLoop } from './elementwise.js';

/** Copies a strided view of `x` (element (i₀..iₙ) at offset + Σ iₐ·strides[a]) into `out`. */
function gatherStrided(x: TypedArray, offset: number, strides: readonly number[], shape: Shape, out: TypedArray): void {
  const rank = shape.length;
  const n = out.length;
  if (n === 0) return;
  if (rank === 0) { out[0] = x[offset]!; return; }
  const inner = shape[rank - 1]!, innerStride = strides[rank - 1]!;
  const counter = new Array<number>(rank).fill(0);
  let src = offset;
  for (let o = 0; o < n; ) {
    if (innerStride === 1 && inner >= 64) {
      out.set(x.subarray(src, src + inner), o);
      o += inner;
    } else {
      for (let i = 0, s = src; i < inner; i++, s += innerStride) out[o++] = x[s]!;
    }
    for (let d = rank - 2; d >= 0; d--) {
      counter[d]!++;
      src += strides[d]!;
      if (counter[d]! < shape[d]!) break;
      src -= strides[d]! * shape[d]!;
      counter[d] = 0;
    }
  }
}

export function permute(x: TypedArray, shape: Shape, perm: readonly number[], out: TypedArray): void {
  const strides = stridesOf(shape);
  gatherStrided(x, 0, perm.map((p) => strides[p]!), perm.map((p) => shape[p]!), out);
}

export function broadcastTo(x: TypedArray, shape: Shape, out: TypedArray, outShape: Shape): void {
  if (!broadcastFast(x, shape, out, outShape)) broadcastLoop(outShape, [shape], (o, off) => { out[o] = x[off[0]!]!; });
}

export function slice(x: TypedArray, shape: Shape, begin: readonly number[], out: TypedArray, outShape: Shape): void {
  const strides = stridesOf(shape);
  let offset = 0;
  for (let d = 0; d < shape.length; d++) offset += begin[d]! * strides[d]!;
  // Trailing dimensions taken whole are one contiguous run with the last one cut: copy runs,
  // not rows (a [1, B, H] slice of [7, B, H] is one run of B·H, not B runs of H).
  let r = shape.length, run = 1;
  while (r > 0 && outShape[r - 1] === shape[r - 1]) run *= shape[--r]!;
  if (r === 0) { out.set(x.subarray(offset, offset + run)); return; }
  gatherStrided(x, offset, [...strides.slice(0, r - 1), 1], [...outShape.slice(0, r - 1), outShape[r - 1]! * run], out);
}

/** x reversed along `axes`: a strided read from each flipped axis's last element, stride negated. */
export function flip(x: TypedArray, shape: Shape, axes: readonly number[], out: TypedArray): void {
  if (out.length === 0) return;
  const strides = stridesOf(shape);
  let offset = 0;
  const walk = strides.map((s, d) => {
    if (!axes.includes(d)) return s;
    offset += (shape[d]! - 1) * s;
    return -s;
  });
  gatherStrided(x, offset, walk, shape, out);
}

/**
 * Writes x into `out` at offset `before` (the adjoint of slice; `out` starts as zeros), or
 * adds it there with `accumulate` (to assemble several slices' gradients in one buffer).
 */
export function pad(x: TypedArray, shape: Shape, before: readonly number[], out: TypedArray, outShape: Shape, accumulate = false): void {
  const outStrides = stridesOf(outShape);
  const rank = shape.length;
  const n = x.length;
  if (n === 0) return;
  if (rank === 0) { out[0] = x[0]!; return; }
  let dst = 0;
  for (let d = 0; d < rank; d++) dst += before[d]! * outStrides[d]!;
  const inner = shape[rank - 1]!;
  const counter = new Array<number>(rank).fill(0);
  for (let i = 0; i < n; i += inner) {
    if (accumulate) for (let j = 0; j < inner; j++) out[dst + j] = out[dst + j]! + x[i + j]!;
    else out.set(x.subarray(i, i + inner), dst);
    for (let d = rank - 2; d >= 0; d--) {
      counter[d]!++;
      dst += outStrides[d]!;
      if (counter[d]! < shape[d]!) break;
      dst -= outStrides[d]! * shape[d]!;
      counter[d] = 0;
    }
  }
}

export function concat(xs: readonly TypedArray[], shapes: readonly Shape[], axis: number, out: TypedArray, outShape: Shape): void {
  const outer = sizeOf(outShape.slice(0, axis));
  const inner = sizeOf(outShape.slice(axis + 1));
  const rowOut = outShape[axis]! * inner;
  let column = 0;
  xs.forEach((x, j) => {
    const chunk = shapes[j]![axis]! * inner;
    for (let o = 0; o < outer; o++) out.set(x.subarray(o * chunk, (o + 1) * chunk), o * rowOut + column);
    column += chunk;
  });
}
