// Reductions over any axes with keepdims (sum, mean, max, min, prod, logsumexp, var, std,
// norm, any, all), arg-reductions over one axis (argmax, argmin; ties go to the lowest
// index) and the running sum cumsum.

import { getBackend, isGradEnabled, noGrad, recordIfNeeded, runOp } from '../engine.js';
import { normalizeAxes, normalizeAxis, reducedShape, shapeToString, sizeOf } from '../../core/shape.js';
import type { Tensor } from '../tensor.js';
import { full } from './creation.js';
import { abs, add, cast, equal, exp, greater, isFinite, log, mul, notEqual, pow, sqrt, sub, where } from './elementwise.js';
import { reshape } from './movement.js';
import { checkFloat, checkNumber, checkTensor } from './util.js';

export type Axis = number | readonly number[];

function reduction(op: 'sum' | 'max' | 'min' | 'prod') {
  return (x: Tensor, axis?: Axis, keepdims = false): Tensor => {
    checkTensor(op, x, 'x');
    const axes = normalizeAxes(axis, x.rank, op);
    if (op === 'max' || op === 'min') {
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
/** Product over axes (1 over none). Its gradient is the product of the other entries, zeros included. */
export const prod = reduction('prod');

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
  // No gradient to record (an MoE's z-loss statistic): one pass over the rows where the
  // backend has the kernel, the composition's bits.
  if (axes.length === 1 && axes[0] === x.rank - 1 && x.shape[x.rank - 1]! > 0 && !(isGradEnabled() && x.requiresGrad)
    && getBackend().supports?.('logsumexpRows')) {
    return runOp('logsumexpRows', [x], {}, { shape: reducedShape(x.shape, axes, keepdims), dtype: x.dtype }, null);
  }
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

/** Inclusive running sum along an axis (torch.cumsum); its gradient is the reversed running sum of dy. */
export function cumsum(x: Tensor, axis: number): Tensor {
  checkTensor('cumsum', x, 'x');
  if (x.rank === 0) {
    normalizeAxis(axis, 0, 'cumsum');
    return reshape(x, []);
  }
  const a = normalizeAxis(axis, x.rank, 'cumsum');
  return runOp('cumsum', [x], { axis: a }, { shape: x.shape, dtype: x.dtype }, 'cumsum');
}

export interface VarOptions {
  /** Subtracted from the count in the divisor: 1 (default, PyTorch 2) is Bessel's unbiased estimate, 0 the population variance. */
  correction?: number;
  keepdims?: boolean;
}

/** The divisor N − correction of var/std over `axes`; no degrees of freedom left is an error, not a silent NaN. */
function degreesOfFreedom(op: string, x: Tensor, axes: readonly number[], correction: number): number {
  checkNumber(op, correction, 'correction');
  const n = sizeOf(axes.map((a) => x.shape[a]!));
  if (!(n - correction > 0)) {
    throw new Error(`${op}: correction ${correction} leaves no degrees of freedom over ${n} element(s) of shape ${shapeToString(x.shape)} (PyTorch would return NaN or inf)`);
  }
  return n - correction;
}

/** Σ (x − mean)² / (N − correction) over axes (torch.var; correction 1 by default). */
export function variance(x: Tensor, axis?: Axis, options: VarOptions = {}): Tensor {
  checkTensor('var', x, 'x');
  checkFloat('var', x, 'x');
  const axes = normalizeAxes(axis, x.rank, 'var');
  const dof = degreesOfFreedom('var', x, axes, options.correction ?? 1);
  const m = mean(x, axes, true);
  const d = sub(x, m);
  const d2 = mul(d, d);
  const s = sum(d2, axes, options.keepdims ?? false);
  const out = s.div(dof);
  for (const t of [m, d, d2, s]) t.dispose();
  return out;
}

/**
 * √var (torch.std; correction 1 by default). Recorded as one node: where the deviation is
 * 0 (a constant slice) its gradient is 0, as in PyTorch, where √ of a composition gives 0·∞.
 */
export function std(x: Tensor, axis?: Axis, options: VarOptions = {}): Tensor {
  checkTensor('std', x, 'x');
  checkFloat('std', x, 'x');
  const axes = normalizeAxes(axis, x.rank, 'std');
  const correction = options.correction ?? 1;
  degreesOfFreedom('std', x, axes, correction);
  const out = noGrad(() => {
    const v = variance(x, axes, { correction, keepdims: options.keepdims ?? false });
    const r = sqrt(v);
    v.dispose();
    return r;
  });
  recordIfNeeded('std', [x], out, { axes, correction });
  return out;
}

/**
 * The vector p-norm over axes (torch.linalg.vector_norm / torch.norm): (Σ |x|ᵖ)^{1/p}; p = 2
 * by default, Infinity (max |x|), -Infinity (min |x|), 0 (the count of nonzeros), any p > 0.
 * Recorded as one node with PyTorch's gradient: 0 where the norm is 0; for p = ±∞ the
 * gradient is shared equally by the entries tied at the extreme.
 */
export function norm(x: Tensor, p = 2, axis?: Axis, keepdims = false): Tensor {
  checkTensor('norm', x, 'x');
  checkFloat('norm', x, 'x');
  if (typeof p !== 'number' || Number.isNaN(p) || (p < 0 && p !== -Infinity)) {
    throw new Error(`norm: p must be a number >= 0, Infinity or -Infinity, got ${String(p)}`);
  }
  const axes = normalizeAxes(axis, x.rank, 'norm');
  if (p === -Infinity || p === Infinity) {
    for (const a of axes) if (x.shape[a] === 0) throw new Error(`norm: p = ${p} over axis ${a} of size 0 (shape ${shapeToString(x.shape)}) has no entries`);
  }
  const out = noGrad(() => {
    const ax = abs(x);
    let r: Tensor;
    if (p === Infinity) r = max(ax, axes, keepdims);
    else if (p === -Infinity) r = min(ax, axes, keepdims);
    else if (p === 0) {
      const nz = notEqual(x, 0), f = cast(nz, x.dtype);
      r = sum(f, axes, keepdims);
      nz.dispose(); f.dispose();
    } else if (p === 1) r = sum(ax, axes, keepdims);
    else if (p === 2) {
      const sq = mul(x, x), s = sum(sq, axes, keepdims);
      r = sqrt(s);
      sq.dispose(); s.dispose();
    } else {
      const powered = pow(ax, p), s = sum(powered, axes, keepdims);
      r = pow(s, 1 / p);
      powered.dispose(); s.dispose();
    }
    ax.dispose();
    return r;
  });
  recordIfNeeded('norm', [x], out, { p, axes });
  return out;
}

function truthReduction(op: 'any' | 'all') {
  return (x: Tensor, axis?: Axis, keepdims = false): Tensor => {
    checkTensor(op, x, 'x');
    const axes = normalizeAxes(axis, x.rank, op);
    return noGrad(() => {
      // any: some entry is nonzero (NaN counts as true); all: no entry is zero. Empty: false / true.
      const hits = op === 'any' ? notEqual(x, 0) : equal(x, 0);
      const count = sum(hits, axes, keepdims);
      const out = op === 'any' ? greater(count, 0) : equal(count, 0);
      hits.dispose(); count.dispose();
      return out;
    });
  };
}

/** 1 where some entry over axes is nonzero (torch.any; int32 0/1, no gradient). */
export const any = truthReduction('any');
/** 1 where every entry over axes is nonzero (torch.all; int32 0/1, no gradient). */
export const all = truthReduction('all');

// `var` is a reserved word: the function is `variance`, exported under PyTorch's name too.
export { variance as var };
