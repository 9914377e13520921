// Indexing kernels: torch.gather / scatter_add along an axis, index_select / index_add,
// one_hot and topk. Index values are checked here; an out-of-range index is an error.

import type { TypedArray } from '../../core/dtype.js';
import { sizeOf, stridesOf, type Shape } from '../../core/shape.js';

export function checkIndex(op: string, index: number, size: number, axis: number): void {
  if (index < 0 || index >= size) {
    throw new Error(`${op}: index ${index} is out of range for axis ${axis} of size ${size}`);
  }
}

/** Whether an index [R, m] runs along axis 1 of a matrix [R, n]: offsets r·n, no strided walk needed. */
function lastOfMatrix(shape: Shape, indexShape: Shape, axis: number): boolean {
  return shape.length === 2 && axis === 1 && indexShape.length === 2 && indexShape[0] === shape[0];
}

/**
 * Visits every element of `index` (shape `indexShape`) and reports (position in index,
 * offset of the same coordinates in a tensor of shape `target`, leaving out the `axis`
 * coordinate). Callers add index[i]·stride(axis): the index picks that coordinate.
 */
function alongAxis(indexShape: Shape, target: Shape, axis: number, body: (i: number, offset: number) => void): void {
  const rank = indexShape.length;
  const n = sizeOf(indexShape);
  const strides = stridesOf(target);
  strides[axis] = 0;
  const counter = new Array<number>(rank).fill(0);
  let offset = 0;
  for (let i = 0; i < n; i++) {
    body(i, offset);
    for (let d = rank - 1; d >= 0; d--) {
      counter[d]!++;
      offset += strides[d]!;
      if (counter[d]! < indexShape[d]!) break;
      offset -= strides[d]! * indexShape[d]!;
      counter[d] = 0;
    }
  }
}

/** out[..., j, ...] = x[..., index[..., j, ...], ...] along `axis` (torch.gather). */
export function gather(x: TypedArray, shape: Shape, index: Int32Array, indexShape: Shape, axis: number, out: TypedArray): void {
  const stride = stridesOf(shape)[axis]!;
  const size = shape[axis]!;
  if (lastOfMatrix(shape, indexShape, axis)) {
    // Rows of a matrix (the gate's top-k picks): the visiting order of alongAxis, without a call per element.
    const m = indexShape[1]!;
    for (let r = 0, i = 0; r < indexShape[0]!; r++) {
      for (let j = 0; j < m; j++, i++) {
        const idx = index[i]!;
        if (idx < 0 || idx >= size) checkIndex('gather', idx, size, axis);
        out[i] = x[r * size + idx]!;
      }
    }
    return;
  }
  alongAxis(indexShape, shape, axis, (i, offset) => {
    const idx = index[i]!;
    checkIndex('gather', idx, size, axis);
    out[i] = x[offset + idx * stride]!;
  });
}

/** out = x; out[..., index[..., j, ...], ...] += src[..., j, ...] along `axis` (torch.scatter_add). */
export function scatterAdd(
  x: TypedArray, shape: Shape, index: Int32Array, indexShape: Shape, src: TypedArray, axis: number, out: TypedArray,
): void {
  out.set(x);
  const stride = stridesOf(shape)[axis]!;
  const size = shape[axis]!;
  if (lastOfMatrix(shape, indexShape, axis)) {
    const m = indexShape[1]!;
    for (let r = 0, i = 0; r < indexShape[0]!; r++) {
      for (let j = 0; j < m; j++, i++) {
        const idx = index[i]!;
        if (idx < 0 || idx >= size) checkIndex('scatterAdd', idx, size, axis);
        const o = r * size + idx;
        out[o] = out[o]! + src[i]!;
      }
    }
    return;
  }
  alongAxis(indexShape, shape, axis, (i, offset) => {
    const idx = index[i]!;
    checkIndex('scatterAdd', idx, size, axis);
    out[offset + idx * stride] = out[offset + idx * stride]! + src[i]!;
  });
}

/** out = x with the axis dimension replaced by index (1-D): torch.index_select. */
export function indexSelect(x: TypedArray, shape: Shape, index: Int32Array, axis: number, out: TypedArray): void {
  const outer = sizeOf(shape.slice(0, axis)), size = shape[axis]!, inner = sizeOf(shape.slice(axis + 1));
  const m = index.length;
  for (let j = 0; j < m; j++) checkIndex('indexSelect', index[j]!, size, axis);
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < m; j++) {
      const src = (o * size + index[j]!) * inner, dst = (o * m + j) * inner;
      // Short rows by hand: a subarray per row allocates (2048 of them for the MoE's gates,
      // 75 µs against 5 µs, and 0.2 MB of garbage per step); long rows copy faster with set.
      if (inner <= 16) for (let i = 0; i < inner; i++) out[dst + i] = x[src + i]!;
      else out.set(x.subarray(src, src + inner), dst);
    }
  }
}

/** out = x; out[..., index[j], ...] += src[..., j, ...]: torch.index_add. */
export function indexAdd(x: TypedArray, shape: Shape, index: Int32Array, src: TypedArray, axis: number, out: TypedArray): void {
  out.set(x);
  const outer = sizeOf(shape.slice(0, axis)), size = shape[axis]!, inner = sizeOf(shape.slice(axis + 1));
  const m = index.length;
  for (let j = 0; j < m; j++) checkIndex('indexAdd', index[j]!, size, axis);
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < m; j++) {
      const dst = (o * size + index[j]!) * inner, s = (o * m + j) * inner;
      for (let i = 0; i < inner; i++) out[dst + i] = out[dst + i]! + src[s + i]!;
    }
  }
}

/**
 * The MoE combine (weightedIndexAdd): out (zeroed, [numRows, d]) gets w[i] · y[i] added to row
 * index[i], rows in order. float32 products are rounded before the add, as a multiply kernel
 * followed by indexAdd would round them.
 */
export function weightedIndexAdd(y: TypedArray, w: TypedArray, index: Int32Array, d: number, numRows: number, out: TypedArray): void {
  const m = index.length;
  for (let i = 0; i < m; i++) checkIndex('weightedIndexAdd', index[i]!, numRows, 0);
  const float32 = out instanceof Float32Array;
  for (let i = 0; i < m; i++) {
    const g = w[i]!, dst = index[i]! * d, src = i * d;
    // Math.fround written in the loop: V8 inlines it (through a variable it is a call per element).
    if (float32) for (let j = 0; j < d; j++) out[dst + j] = out[dst + j]! + Math.fround(g * y[src + j]!);
    else for (let j = 0; j < d; j++) out[dst + j] = out[dst + j]! + g * y[src + j]!;
  }
}

/**
 * weightedIndexAdd's gradients: dy[i] = w[i] · dOut[index[i]] and dw[i] = Σ_j dOut[index[i], j] ·
 * y[i, j], each float32 product rounded, summed in float64 (as mul then sum(·, 1)).
 */
export function weightedIndexAddBackward(dOut: TypedArray, y: TypedArray, w: TypedArray, index: Int32Array, d: number, numRows: number, dy: TypedArray, dw: TypedArray): void {
  const m = index.length;
  for (let i = 0; i < m; i++) checkIndex('weightedIndexAddBackward', index[i]!, numRows, 0);
  const float32 = dy instanceof Float32Array;
  for (let i = 0; i < m; i++) {
    const g = w[i]!, src = index[i]! * d, row = i * d;
    let acc = 0;
    if (float32) {
      for (let j = 0; j < d; j++) {
        const o = dOut[src + j]!;
        dy[row + j] = g * o;
        acc += Math.fround(o * y[row + j]!);
      }
    } else {
      for (let j = 0; j < d; j++) {
        const o = dOut[src + j]!;
        dy[row + j] = g * o;
        acc += o * y[row + j]!;
      }
    }
    dw[i] = acc;
  }
}

export function oneHot(index: Int32Array, depth: number, out: TypedArray): void {
  for (let i = 0; i < index.length; i++) {
    const idx = index[i]!;
    if (idx < 0 || idx >= depth) throw new Error(`oneHot: index ${idx} is out of range for depth ${depth}`);
    out[i * depth + idx] = 1;
  }
}

/**
 * Indices of the k largest (or, with largest = false, smallest) values of each row, in that
 * order; ties go to the lowest index, NaN counts as the largest value (first, or last).
 */
export function topkIndices(x: TypedArray, shape: Shape, k: number, out: Int32Array, largest = true): void {
  const n = shape.length === 0 ? 1 : shape[shape.length - 1]!;
  const rows = n === 0 ? 0 : x.length / n;
  const before = (a: number, ia: number, b: number, ib: number): boolean => {
    const aNaN = a !== a, bNaN = b !== b;
    if (aNaN !== bNaN) return largest ? aNaN : bNaN;
    if (!aNaN && a !== b) return largest ? a > b : a < b;
    return ia < ib;
  };
  const order = new Int32Array(n);
  // Largest first with small k (MoE gating): the k best values kept beside their indices,
  // so that the common rejection reads no index. A row with a NaN takes the general path.
  const fast = largest && k > 0 && k <= 16;
  const vals = new Float64Array(fast ? k : 0);
  for (let r = 0; r < rows; r++) {
    const base = r * n;
    if (fast && topkRowNumbers(x, base, n, k, vals, order)) {
      for (let j = 0; j < k; j++) out[r * k + j] = order[j]!;
      continue;
    }
    if (k <= 16) {
      // Insertion into a sorted list of k: O(n·k), fast for the small k of MoE gating.
      let len = 0;
      for (let j = 0; j < n; j++) {
        const v = x[base + j]!;
        if (len === k) {
          // Most values fall short of the k-th: reject them with one comparison. (Largest
          // first: a number not above the k-th stays out, a tie included, since the k-th has
          // the lower index; a NaN k-th outranks every number. NaN values take the full test.)
          if (largest && v === v && !(v > x[base + order[k - 1]!]!)) continue;
          if (!before(v, j, x[base + order[k - 1]!]!, order[k - 1]!)) continue;
        }
        let pos = len < k ? len++ : k - 1;
        while (pos > 0 && before(v, j, x[base + order[pos - 1]!]!, order[pos - 1]!)) { order[pos] = order[pos - 1]!; pos--; }
        order[pos] = j;
      }
    } else {
      const idx = Array.from({ length: n }, (_, j) => j);
      idx.sort((a, b) => (before(x[base + a]!, a, x[base + b]!, b) ? -1 : 1));
      for (let j = 0; j < k; j++) order[j] = idx[j]!;
    }
    for (let j = 0; j < k; j++) out[r * k + j] = order[j]!;
  }
}

/**
 * The k largest of x[base .. base + n) into order[0 .. k), largest first, ties to the lower
 * index (a strict > never moves a later equal value ahead; -0 and +0 are equal). Returns false,
 * leaving order unfinished, when the row holds a NaN (which topkIndices ranks first).
 */
function topkRowNumbers(x: TypedArray, base: number, n: number, k: number, vals: Float64Array, order: Int32Array): boolean {
  let len = 0;
  for (let j = 0; j < n; j++) {
    const v = x[base + j]!;
    if (v !== v) return false;
    if (len === k && !(v > vals[k - 1]!)) continue;
    let pos = len < k ? len++ : k - 1;
    while (pos > 0 && v > vals[pos - 1]!) { vals[pos] = vals[pos - 1]!; order[pos] = order[pos - 1]!; pos--; }
    vals[pos] = v;
    order[pos] = j;
  }
  return true;
}
