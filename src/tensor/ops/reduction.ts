// Reductions over any axes with keepdims (sum, mean, max, min, logsumexp) and
// arg-reductions over one axis (argmax, argmin; ties go to the lowest index).

import { runOp } from '../engine.js';
import { normalizeAxes, normalizeAxis, reducedShape, sizeOf } from '../../core/shape.js';
import type { Tensor } from '../tensor.js';
import { full } from './creation.js';
import { add, exp, isFinite, log, sub, where } from './elementwise.js';
import { reshape } from './movement.js';
import { checkFloat, checkTensor } from './util.js';

export type Axis = number | readonly number[];

function reduction(op: 'sum' | 'max' | 'min') {
  return (x: Tensor, axis?: Axis, keepdims = false): Tensor => {
    checkTensor(op, x, 'x');
    const axes = normalizeAxes(axis, x.rank, op);
    if (op !== 'sum') {
      for (const a of axes) {
        if (x.shape[a] === 0) throw new Error(`${op}: cannot reduce over axis ${a} of size 0 (shape [${x.shape.join(', ')}])`);
      }
    }
    return runOp(op, [x], { axes }, { shape: reducedShape(x.shape, axes, keepdims), dtype: x.dtype }, op);
  };
}

export const sum = reduction('sum');
/** Maximum over axes. Its gradient goes to the first maximum (lowest index) of each slice. */
export const max = reduction('max');
export const min = reduction('min');

export function mean(x: Tensor, axis?: Axis, keepdims = false): Tensor {
  checkTensor('mean', x, 'x');
  checkFloat('mean', x, 'x');
  const axes = normalizeAxes(axis, x.rank, 'mean');
  const count = sizeOf(axes.map((a) => x.shape[a]!));
  const s = sum(x, axes, keepdims);
  const out = s.div(count);
  s.dispose();
  return out;
}

/**
 * The stable shift for log Σ exp over `axes` (keepdims): the maximum, treated as a constant;
 * 0 where the maximum is not finite (an all −inf slice would give −inf − −inf = NaN) and
 * over empty axes (the sum is 0 and the result −inf, as in PyTorch).
 */
export function logsumexpShift(x: Tensor, axes: readonly number[]): Tensor {
  if (axes.some((a) => x.shape[a] === 0)) return full(reducedShape(x.shape, axes, true), 0, { dtype: x.dtype });
  const detached = x.detach();
  const m = max(detached, axes, true);
  const finite = isFinite(m);
  const shift = where(finite, m, 0);
  for (const t of [detached, m, finite]) t.dispose();
  return shift;
}

/** log Σ exp(x), stable: the maximum is subtracted first (and treated as a constant). */
export function logsumexp(x: Tensor, axis?: Axis, keepdims = false): Tensor {
  checkTensor('logsumexp', x, 'x');
  checkFloat('logsumexp', x, 'x');
  const axes = normalizeAxes(axis, x.rank, 'logsumexp');
  const shift = logsumexpShift(x, axes);
  const shifted = sub(x, shift);
  const e = exp(shifted);
  const s = sum(e, axes, true);
  const l = log(s);
  const withShift = add(l, shift);
  const out = keepdims ? withShift : reshape(withShift, reducedShape(x.shape, axes, false));
  for (const t of [shift, shifted, e, s, l]) t.dispose();
  if (out !== withShift) withShift.dispose();
  return out;
}

function argReduction(op: 'argmax' | 'argmin') {
  return (x: Tensor, axis?: number, keepdims = false): Tensor => {
    checkTensor(op, x, 'x');
    if (axis === undefined) {
      // Over the flattened tensor, as in PyTorch.
      if (x.size === 0) throw new Error(`${op}: cannot reduce an empty tensor`);
      const flat = reshape(x, [x.size]);
      const out = runOp(op, [flat], { axis: 0 }, { shape: keepdims ? x.shape.map(() => 1) : [], dtype: 'int32' }, null);
      flat.dispose();
      return out;
    }
    const a = normalizeAxis(axis, x.rank, op);
    if (x.rank > 0 && x.shape[a] === 0) throw new Error(`${op}: cannot reduce over axis ${a} of size 0`);
    return runOp(op, [x], { axis: x.rank === 0 ? 0 : a }, { shape: reducedShape(x.shape, x.rank === 0 ? [] : [a], keepdims), dtype: 'int32' }, null);
  };
}

/** Index of the maximum along an axis (the first one on ties; NaN counts as the maximum). */
export const argmax = argReduction('argmax');
export const argmin = argReduction('argmin');
