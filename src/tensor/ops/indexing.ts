// Indexing ops with PyTorch's names and argument order: gather / scatterAdd (along an
// axis, index shaped like the output), indexSelect / indexAdd (a 1-D index of slices),
// oneHot, topk, sort and argsort. Each pair is the other's gradient.

import { runOp } from '../engine.js';
import { isDType, type DType } from '../../core/dtype.js';
import { normalizeAxis, shapesEqual, shapeToString } from '../../core/shape.js';
import { transpose } from './movement.js';
import type { Tensor } from '../tensor.js';
import { checkInt, checkTensor } from './util.js';

function checkIndexTensor(op: string, index: Tensor, arg = 'index'): void {
  checkTensor(op, index, arg);
  if (index.dtype !== 'int32') throw new Error(`${op}: ${arg} must be an int32 tensor, got ${index.dtype}`);
}

function checkAlongAxis(op: string, x: Tensor, axis: number, index: Tensor): number {
  const a = normalizeAxis(axis, x.rank, op);
  if (index.rank !== x.rank) {
    throw new Error(`${op}: index of shape ${shapeToString(index.shape)} must have the same rank as x ${shapeToString(x.shape)}`);
  }
  index.shape.forEach((d, i) => {
    if (i !== a && d > x.shape[i]!) {
      throw new Error(`${op}: index of shape ${shapeToString(index.shape)} is larger than x ${shapeToString(x.shape)} on axis ${i}`);
    }
  });
  return a;
}

/** out[i][j] = x[i][index[i][j]] for axis 1 (torch.gather): picks one element per index entry. */
export function gather(x: Tensor, axis: number, index: Tensor): Tensor {
  checkTensor('gather', x, 'x');
  checkIndexTensor('gather', index);
  const a = checkAlongAxis('gather', x, axis, index);
  return runOp('gather', [x, index], { axis: a }, { shape: index.shape, dtype: x.dtype }, 'gather');
}

/** out = x, then out[i][index[i][j]] += src[i][j] for axis 1 (torch.scatter_add; src shaped like index). */
export function scatterAdd(x: Tensor, axis: number, index: Tensor, src: Tensor): Tensor {
  checkTensor('scatterAdd', x, 'x');
  checkIndexTensor('scatterAdd', index);
  checkTensor('scatterAdd', src, 'src');
  const a = checkAlongAxis('scatterAdd', x, axis, index);
  if (!shapesEqual(src.shape, index.shape)) {
    throw new Error(`scatterAdd: src of shape ${shapeToString(src.shape)} must have the shape of index ${shapeToString(index.shape)}`);
  }
  if (src.dtype !== x.dtype) throw new Error(`scatterAdd: dtype mismatch, x is ${x.dtype} and src is ${src.dtype}`);
  return runOp('scatterAdd', [x, index, src], { axis: a }, { shape: x.shape, dtype: x.dtype }, 'scatterAdd');
}

/** Selects whole slices along an axis by a 1-D index (torch.index_select). */
export function indexSelect(x: Tensor, axis: number, index: Tensor): Tensor {
  checkTensor('indexSelect', x, 'x');
  checkIndexTensor('indexSelect', index);
  if (index.rank !== 1) throw new Error(`indexSelect: index must be 1-D, got shape ${shapeToString(index.shape)}`);
  const a = normalizeAxis(axis, x.rank, 'indexSelect');
  const shape = [...x.shape];
  shape[a] = index.shape[0]!;
  return runOp('indexSelect', [x, index], { axis: a }, { shape, dtype: x.dtype }, 'indexSelect');
}

/** out = x, then out[..., index[j], ...] += src[..., j, ...] (torch.index_add). */
export function indexAdd(x: Tensor, axis: number, index: Tensor, src: Tensor): Tensor {
  checkTensor('indexAdd', x, 'x');
  checkIndexTensor('indexAdd', index);
  checkTensor('indexAdd', src, 'src');
  if (index.rank !== 1) throw new Error(`indexAdd: index must be 1-D, got shape ${shapeToString(index.shape)}`);
  const a = normalizeAxis(axis, x.rank, 'indexAdd');
  const expected = [...x.shape];
  expected[a] = index.shape[0]!;
  if (!shapesEqual(src.shape, expected)) {
    throw new Error(`indexAdd: src has shape ${shapeToString(src.shape)} but x ${shapeToString(x.shape)} with ${index.shape[0]} indices on axis ${a} needs ${shapeToString(expected)}`);
  }
  if (src.dtype !== x.dtype) throw new Error(`indexAdd: dtype mismatch, x is ${x.dtype} and src is ${src.dtype}`);
  return runOp('indexAdd', [x, index, src], { axis: a }, { shape: x.shape, dtype: x.dtype }, 'indexAdd');
}

/** One-hot encoding on a new last axis (int32 by default, as PyTorch's integer one_hot). */
export function oneHot(index: Tensor, numClasses: number, options: { dtype?: DType } = {}): Tensor {
  checkIndexTensor('oneHot', index);
  checkInt('oneHot', numClasses, 'numClasses', 1);
  const dtype = options.dtype ?? 'int32';
  if (!isDType(dtype)) throw new Error(`oneHot: unknown dtype '${String(dtype)}'`);
  return runOp('oneHot', [index], { depth: numClasses }, { shape: [...index.shape, numClasses], dtype }, null);
}

/**
 * The k largest (or smallest) entries of the last axis, sorted, with their int32 indices.
 * Ties go to the lowest index; the gradient flows to the returned positions only.
 */
export function topk(x: Tensor, k: number, options: { largest?: boolean } = {}): { values: Tensor; indices: Tensor } {
  checkTensor('topk', x, 'x');
  const n = x.rank === 0 ? 1 : x.shape[x.rank - 1]!;
  if (typeof k !== 'number' || !Number.isInteger(k) || k < 0 || k > n) {
    throw new Error(`topk: k must be an integer from 0 to ${n} (the size of the last axis of shape ${shapeToString(x.shape)}), got ${String(k)}`);
  }
  // The kernel orders smallest-first itself: negating x would put NaN (the largest value, as
  // in PyTorch) first among the smallest, and -(-2³¹) overflows int32.
  const largest = options.largest ?? true;
  const x2 = x.rank === 0 ? x.reshape([1]) : x;
  const shape = [...x2.shape.slice(0, -1), k];
  const indices = runOp('topkIndices', [x2], { k, largest }, { shape, dtype: 'int32' }, null);
  const values = gather(x2, -1, indices);
  if (x2 !== x) x2.dispose();
  return { values, indices };
}

/** x with `axis` moved last (by swapping it with the last axis), and the inverse of that move. */
function axisLast(x: Tensor, a: number): [Tensor, (t: Tensor) => Tensor] {
  if (x.rank === 0 || a === x.rank - 1) return [x, (t) => t];
  return [transpose(x, a, -1), (t) => { const back = transpose(t, a, -1); t.dispose(); return back; }];
}

function checkDescending(op: string, descending: unknown): boolean {
  if (typeof descending !== 'boolean') throw new Error(`${op}: descending must be true or false, got ${typeof descending}`);
  return descending;
}

/**
 * Indices that sort x along an axis (torch.argsort): stable (equal values keep their order),
 * NaN counted as the largest value, as torch.sort. int32, no gradient.
 */
export function argsort(x: Tensor, axis = -1, descending = false): Tensor {
  checkTensor('argsort', x, 'x');
  checkDescending('argsort', descending);
  const a = x.rank === 0 ? 0 : normalizeAxis(axis, x.rank, 'argsort');
  const [moved, back] = axisLast(x, a);
  const indices = runOp('argsort', [moved], { descending }, { shape: moved.shape, dtype: 'int32' }, null);
  if (moved !== x) moved.dispose();
  return back(indices);
}

/**
 * Sorts along an axis (torch.sort): `{values, indices}`, stable, ascending unless
 * `descending`. values = gather(x, indices), so the gradient goes back to each value's
 * original position; indices carry none.
 */
export function sort(x: Tensor, axis = -1, descending = false): { values: Tensor; indices: Tensor } {
  checkTensor('sort', x, 'x');
  checkDescending('sort', descending);
  const a = x.rank === 0 ? 0 : normalizeAxis(axis, x.rank, 'sort');
  const [moved, back] = axisLast(x, a);
  const order = runOp('argsort', [moved], { descending }, { shape: moved.shape, dtype: 'int32' }, null);
  const values = moved.rank === 0 ? moved.clone() : gather(moved, -1, order);
  if (moved !== x) moved.dispose();
  return { values: back(values), indices: back(order) };
}
