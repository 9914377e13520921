// Movement ops: reshape (a view: no copy), squeeze/unsqueeze/flatten, permute/transpose,
// broadcastTo, slice, flip, pad, concat/cat, stack, split, chunk, repeat.

import { getBackend, recordIfNeeded, runOp } from '../engine.js';
import { assertValidShape, broadcastShapes, normalizeAxes, normalizeAxis, shapesEqual, shapeToString, sizeOf, type Shape } from '../../core/shape.js';
import { Tensor } from '../tensor.js';
import { checkInt, checkTensor } from './util.js';

/** Same data, new shape; one dimension may be -1 (inferred). Shares the handle: no copy. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  checkTensor('reshape', x, 'x');
  const wanted = [...shape];
  const inferred = wanted.indexOf(-1);
  if (inferred !== -1) {
    if (wanted.indexOf(-1, inferred + 1) !== -1) throw new Error(`reshape: only one dimension can be -1, got ${shapeToString(shape)}`);
    const known = sizeOf(wanted.filter((_, i) => i !== inferred));
    if (known === 0 || x.size % known !== 0) {
      throw new Error(`reshape: cannot reshape a tensor of shape ${shapeToString(x.shape)} (${x.size} elements) into ${shapeToString(shape)}`);
    }
    wanted[inferred] = x.size / known;
  }
  assertValidShape(wanted, 'reshape');
  if (sizeOf(wanted) !== x.size) {
    throw new Error(`reshape: cannot reshape a tensor of shape ${shapeToString(x.shape)} (${x.size} elements) into ${shapeToString(shape)} (${sizeOf(wanted)} elements)`);
  }
  const backend = getBackend();
  backend.incRef(x.handle);
  const y = new Tensor(x.handle, wanted, x.dtype, backend);
  recordIfNeeded('reshape', [x], y, {});
  return y;
}

export function flatten(x: Tensor, startAxis = 0, endAxis = -1): Tensor {
  checkTensor('flatten', x, 'x');
  if (x.rank === 0) return reshape(x, [1]);
  const s = normalizeAxis(startAxis, x.rank, 'flatten', 'startAxis'), e = normalizeAxis(endAxis, x.rank, 'flatten', 'endAxis');
  if (s > e) throw new Error(`flatten: startAxis ${startAxis} comes after endAxis ${endAxis}`);
  return reshape(x, [...x.shape.slice(0, s), sizeOf(x.shape.slice(s, e + 1)), ...x.shape.slice(e + 1)]);
}

/** Removes size-1 dimensions (all of them, or the given axis/axes). */
export function squeeze(x: Tensor, axis?: number | readonly number[]): Tensor {
  checkTensor('squeeze', x, 'x');
  const axes = axis === undefined ? x.shape.map((_, i) => i).filter((i) => x.shape[i] === 1)
    : (typeof axis === 'number' ? [axis] : [...axis]).map((a) => normalizeAxis(a, x.rank, 'squeeze'));
  return reshape(x, x.shape.filter((d, i) => !(axes.includes(i) && d === 1)));
}

/** Inserts a size-1 dimension at `axis` (which may equal the rank). */
export function unsqueeze(x: Tensor, axis: number): Tensor {
  checkTensor('unsqueeze', x, 'x');
  const a = normalizeAxis(axis, x.rank + 1, 'unsqueeze');
  return reshape(x, [...x.shape.slice(0, a), 1, ...x.shape.slice(a)]);
}

export function permute(x: Tensor, perm: readonly number[]): Tensor {
  checkTensor('permute', x, 'x');
  if (!Array.isArray(perm) || perm.length !== x.rank) {
    throw new Error(`permute: perm ${Array.isArray(perm) ? shapeToString(perm) : String(perm)} must list all ${x.rank} axes of a tensor of shape ${shapeToString(x.shape)}`);
  }
  const p = perm.map((a) => normalizeAxis(a, x.rank, 'permute', 'perm'));
  if (new Set(p).size !== p.length) throw new Error(`permute: perm ${shapeToString(perm)} repeats an axis`);
  return runOp('permute', [x], { perm: p }, { shape: p.map((a) => x.shape[a]!), dtype: x.dtype }, 'permute');
}

/** Swaps two axes (default: the last two). */
export function transpose(x: Tensor, axis0 = -2, axis1 = -1): Tensor {
  checkTensor('transpose', x, 'x');
  if (x.rank < 2 && axis0 === -2 && axis1 === -1) return reshape(x, x.shape);
  const a = normalizeAxis(axis0, x.rank, 'transpose', 'axis0'), b = normalizeAxis(axis1, x.rank, 'transpose', 'axis1');
  const perm = x.shape.map((_, i) => i);
  perm[a] = b; perm[b] = a;
  return permute(x, perm);
}

export function broadcastTo(x: Tensor, shape: Shape): Tensor {
  checkTensor('broadcastTo', x, 'x');
  assertValidShape(shape, 'broadcastTo');
  const out = broadcastShapes(x.shape, shape, 'broadcastTo');
  if (!shapesEqual(out, shape)) {
    throw new Error(`broadcastTo: a tensor of shape ${shapeToString(x.shape)} cannot be broadcast to ${shapeToString(shape)}`);
  }
  if (shapesEqual(x.shape, shape)) return reshape(x, shape);
  return runOp('broadcastTo', [x], {}, { shape: [...shape], dtype: x.dtype }, 'broadcastTo');
}

/**
 * A contiguous block: `begin` per axis (negative counts from the end) and `size` per axis
 * (-1 = to the end). Shorter lists leave the remaining axes whole.
 */
export function slice(x: Tensor, begin: readonly number[], size?: readonly number[]): Tensor {
  checkTensor('slice', x, 'x');
  if (begin.length > x.rank || (size && size.length > x.rank)) {
    throw new Error(`slice: begin ${shapeToString(begin)} / size ${shapeToString(size ?? [])} have more entries than the rank of shape ${shapeToString(x.shape)}`);
  }
  const b: number[] = [], s: number[] = [];
  for (let d = 0; d < x.rank; d++) {
    const dim = x.shape[d]!;
    let start = checkInt('slice', begin[d] ?? 0, 'begin');
    if (start < 0) start += dim;
    const len = checkInt('slice', size?.[d] ?? -1, 'size', -1);
    const count = len === -1 ? dim - start : len;
    if (start < 0 || start > dim || count < 0 || start + count > dim) {
      throw new Error(`slice: begin ${shapeToString(begin)} with size ${shapeToString(size ?? [])} is out of range for shape ${shapeToString(x.shape)} (axis ${d})`);
    }
    b.push(start); s.push(count);
  }
  return runOp('slice', [x], { begin: b }, { shape: s, dtype: x.dtype }, 'slice');
}

/** Reverses the order of elements along the given axes (torch.flip). */
export function flip(x: Tensor, axis: number | readonly number[]): Tensor {
  checkTensor('flip', x, 'x');
  if (axis === undefined) throw new Error('flip: give the axis or axes to reverse (torch.flip needs dims)');
  const axes = normalizeAxes(axis, x.rank, 'flip').filter((a) => x.shape[a]! > 1);
  if (axes.length === 0) return reshape(x, x.shape);
  return runOp('flip', [x], { axes }, { shape: x.shape, dtype: x.dtype }, 'flip');
}

/**
 * Tiles x `repeats[d]` times along each axis (torch.Tensor.repeat, numpy.tile); extra
 * leading repeats add leading axes. A broadcast of x with a size-1 axis before each of its
 * axes, then a reshape, so the gradient is broadcastTo's: the sum over the copies.
 */
export function repeat(x: Tensor, repeats: readonly number[]): Tensor {
  checkTensor('repeat', x, 'x');
  if (!Array.isArray(repeats)) throw new Error(`repeat: repeats must be an array of counts, got ${typeof repeats}`);
  repeats.forEach((r) => checkInt('repeat', r, 'repeats', 0));
  if (repeats.length < x.rank) {
    throw new Error(`repeat: ${repeats.length} repeat count(s) for a tensor of shape ${shapeToString(x.shape)}: give at least one per axis`);
  }
  const shape = [...new Array<number>(repeats.length - x.rank).fill(1), ...x.shape];
  const interleaved = shape.flatMap((d) => [1, d]);
  const tiled = shape.flatMap((d, i) => [repeats[i]!, d]);
  const r = reshape(x, interleaved);
  const b = broadcastTo(r, tiled);
  const out = reshape(b, shape.map((d, i) => d * repeats[i]!));
  r.dispose(); b.dispose();
  return out;
}

/** Pads with zeros: `before[d]` and `after[d]` elements on each axis (the adjoint of slice). */
export function pad(x: Tensor, before: readonly number[], after: readonly number[]): Tensor {
  checkTensor('pad', x, 'x');
  if (before.length !== x.rank || after.length !== x.rank) {
    throw new Error(`pad: before ${shapeToString(before)} and after ${shapeToString(after)} need one entry per axis of shape ${shapeToString(x.shape)}`);
  }
  before.forEach((v) => checkInt('pad', v, 'before', 0));
  after.forEach((v) => checkInt('pad', v, 'after', 0));
  return runOp('pad', [x], { before: [...before] }, { shape: x.shape.map((d, i) => d + before[i]! + after[i]!), dtype: x.dtype }, 'pad');
}

/**
 * Σᵢ pad(pieces[i]) placed at begins[i] in a zero tensor of `shape`, in one pass: how
 * backward assembles the gradients of many slices of one tensor (an LSTM's time steps)
 * without a full-size pad and add per slice.
 */
export function assembleSlices(pieces: readonly Tensor[], begins: readonly (readonly number[])[], shape: readonly number[]): Tensor {
  if (pieces.length === 0 || pieces.length !== begins.length) throw new Error(`assembleSlices: got ${pieces.length} pieces and ${begins.length} offsets`);
  pieces.forEach((p, i) => {
    checkTensor('assembleSlices', p, `pieces[${i}]`);
    const b = begins[i]!;
    if (p.dtype !== pieces[0]!.dtype) throw new Error(`assembleSlices: dtype mismatch, pieces[0] is ${pieces[0]!.dtype} and pieces[${i}] is ${p.dtype}`);
    if (b.length !== shape.length || p.rank !== shape.length || p.shape.some((d, j) => b[j]! < 0 || b[j]! + d > shape[j]!)) {
      throw new Error(`assembleSlices: pieces[${i}] ${shapeToString(p.shape)} at ${shapeToString(b)} does not fit in ${shapeToString(shape)}`);
    }
  });
  return runOp('assembleSlices', pieces, { begins: begins.map((b) => [...b]) }, { shape: [...shape], dtype: pieces[0]!.dtype }, 'assembleSlices');
}

export function concat(xs: readonly Tensor[], axis = 0): Tensor {
  if (!Array.isArray(xs) || xs.length === 0) throw new Error('concat: needs a non-empty array of tensors');
  xs.forEach((t, i) => checkTensor('concat', t, `xs[${i}]`));
  const first = xs[0]!;
  const a = normalizeAxis(axis, first.rank, 'concat');
  if (first.rank === 0) throw new Error('concat: zero-dimensional tensors cannot be concatenated (use stack)');
  xs.forEach((t, i) => {
    if (t.dtype !== first.dtype) throw new Error(`concat: dtype mismatch, xs[0] is ${first.dtype} and xs[${i}] is ${t.dtype}`);
    if (t.rank !== first.rank || t.shape.some((d: number, j: number) => j !== a && d !== first.shape[j])) {
      throw new Error(`concat: xs[${i}] has shape ${shapeToString(t.shape)}, incompatible with xs[0] ${shapeToString(first.shape)} along axis ${a}`);
    }
  });
  const shape = [...first.shape];
  shape[a] = xs.reduce((n, t) => n + t.shape[a]!, 0);
  return runOp('concat', xs, { axis: a }, { shape, dtype: first.dtype }, 'concat');
}

/** Stacks equal-shaped tensors along a new axis. */
export function stack(xs: readonly Tensor[], axis = 0): Tensor {
  if (!Array.isArray(xs) || xs.length === 0) throw new Error('stack: needs a non-empty array of tensors');
  xs.forEach((t, i) => {
    checkTensor('stack', t, `xs[${i}]`);
    if (!shapesEqual(t.shape, xs[0]!.shape)) throw new Error(`stack: xs[${i}] has shape ${shapeToString(t.shape)} but xs[0] has ${shapeToString(xs[0]!.shape)}`);
  });
  const a = normalizeAxis(axis, xs[0]!.rank + 1, 'stack');
  const expanded = xs.map((t) => unsqueeze(t, a));
  const out = concat(expanded, a);
  for (const t of expanded) t.dispose();
  return out;
}

/**
 * Splits along an axis as torch.split: a number is the size of each chunk (the last one may
 * be smaller), an array the size of every piece. Note: before 0.2 a number here was the
 * count of equal sections; that is chunk(x, n, axis) now.
 */
export function split(x: Tensor, splitSize: number | readonly number[], axis = 0): Tensor[] {
  checkTensor('split', x, 'x');
  const a = normalizeAxis(axis, x.rank, 'split');
  const dim = x.shape[a]!;
  let parts: number[];
  if (typeof splitSize === 'number') {
    // As PyTorch: a chunk size of 0 is allowed only for an empty axis (one empty piece).
    checkInt('split', splitSize, 'splitSize', dim === 0 ? 0 : 1);
    const count = dim === 0 ? 1 : Math.ceil(dim / splitSize);
    parts = Array.from({ length: count }, (_, i) => Math.min(splitSize, dim - i * splitSize));
  } else {
    if (!Array.isArray(splitSize)) throw new Error(`split: splitSize must be a chunk size or an array of sizes, got ${typeof splitSize}`);
    parts = splitSize.map((v) => checkInt('split', v, 'splitSize', 0));
    if (parts.reduce((s, v) => s + v, 0) !== dim) throw new Error(`split: sizes ${shapeToString(parts)} do not add up to ${dim}, the size of axis ${a}`);
  }
  let start = 0;
  return parts.map((len) => {
    const begin = x.shape.map((_, d) => (d === a ? start : 0));
    const size = x.shape.map((n, d) => (d === a ? len : n));
    start += len;
    return slice(x, begin, size);
  });
}

/**
 * Splits into `chunks` pieces along an axis as torch.chunk: each of size ⌈dim / chunks⌉, the
 * last smaller, so fewer than `chunks` pieces come back when dim does not fill them all.
 */
export function chunk(x: Tensor, chunks: number, axis = 0): Tensor[] {
  checkTensor('chunk', x, 'x');
  checkInt('chunk', chunks, 'chunks', 1);
  const a = normalizeAxis(axis, x.rank, 'chunk');
  const dim = x.shape[a]!;
  // An empty axis gives `chunks` empty pieces (PyTorch), not split's single one.
  return split(x, dim === 0 ? new Array<number>(chunks).fill(0) : Math.ceil(dim / chunks), a);
}

/** concat under PyTorch's name (torch.cat). */
export function cat(xs: readonly Tensor[], axis = 0): Tensor {
  return concat(xs, axis);
}
