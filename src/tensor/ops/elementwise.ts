// Elementwise ops: unary math, broadcasting binary ops (numbers accepted for either
// operand), comparisons (int32 0/1 masks), where, clamp and cast.

import type { BinaryKernel, CompareKernel, UnaryKernel } from '../../core/backend.js';
import { noGrad, runOp } from '../engine.js';
import { floatTypeOf, isDType, type DType } from '../../core/dtype.js';
import { broadcastShapes } from '../../core/shape.js';
import type { Tensor } from '../tensor.js';
import { checkNumber, checkTensor, resultType, scalar, type TensorLike } from './util.js';

/** Casts to a dtype; float→float casts are differentiable, casts to int32 are not. */
export function cast(x: Tensor, dtype: DType): Tensor {
  checkTensor('cast', x, 'x');
  if (!isDType(dtype)) throw new Error(`cast: unknown dtype '${String(dtype)}'`);
  if (x.dtype === dtype) return x.clone();
  return runOp('cast', [x], {}, { shape: x.shape, dtype }, dtype === 'int32' ? null : 'cast');
}

function unary(op: UnaryKernel, keepInt: boolean) {
  return (x: Tensor): Tensor => {
    checkTensor(op, x, 'x');
    if (x.dtype === 'int32' && !keepInt) {
      const xf = cast(x, 'float32');
      const y = runOp(op, [xf], {}, { shape: x.shape, dtype: 'float32' }, op === 'sign' ? null : op);
      xf.dispose();
      return y;
    }
    return runOp(op, [x], {}, { shape: x.shape, dtype: x.dtype }, op === 'sign' ? null : op);
  };
}

export const neg = unary('neg', true);
export const abs = unary('abs', true);
/** -1, 0 or 1 (no gradient: the derivative is zero almost everywhere). */
export const sign = unary('sign', true);
export const relu = unary('relu', true);
export const exp = unary('exp', false);
export const log = unary('log', false);
export const sqrt = unary('sqrt', false);
export const tanh = unary('tanh', false);
export const sigmoid = unary('sigmoid', false);
/** log(1 + eˣ), computed without overflow. */
export const softplus = unary('softplus', false);
/** The standard normal CDF Φ(x). */
export const normalCdf = unary('normalCdf', false);
/** log(1 + x), accurate near 0. */
export const log1p = unary('log1p', false);
/** eˣ − 1, accurate near 0. */
export const expm1 = unary('expm1', false);
export const sin = unary('sin', false);
export const cos = unary('cos', false);
/** The error function erf(x) = 2/√π ∫₀ˣ e^{−t²} dt. */
export const erf = unary('erf', false);
/** Rounds down; its gradient is zero (PyTorch). int32 stays int32. */
export const floor = unary('floor', true);
/** Rounds up; its gradient is zero (PyTorch). */
export const ceil = unary('ceil', true);
/** Rounds to the nearest integer, halves to even (torch.round: 2.5 → 2); zero gradient. */
export const round = unary('round', true);

/** One operand as a tensor of `dtype`; a scalar or cast made for it is pushed to temps. */
function operand(op: string, v: TensorLike, arg: 'a' | 'b', dtype: DType, temps: Tensor[]): Tensor {
  if (typeof v === 'number') {
    checkNumber(op, v, arg);
    const s = scalar(v, dtype);
    temps.push(s);
    return s;
  }
  checkTensor(op, v, arg);
  if (v.dtype === dtype) return v;
  const c = cast(v, dtype);
  temps.push(c);
  return c;
}

/**
 * Turns two operands into tensors of a common dtype; returns temporaries to dispose.
 * (operand is a module-level function, not a closure made per call: under tsx, esbuild's
 * keepNames wraps every named closure in __name(), which tripled the cost of a tiny op.)
 */
function operands(op: string, a: TensorLike, b: TensorLike, dtype: DType): [Tensor, Tensor, Tensor[]] {
  const temps: Tensor[] = [];
  try {
    const x = operand(op, a, 'a', dtype, temps);
    return [x, operand(op, b, 'b', dtype, temps), temps];
  } catch (e) {
    disposeAll(temps); // a bad second operand must not leak the first one's scalar or cast
    throw e;
  }
}

function disposeAll(temps: readonly Tensor[]): void {
  for (const t of temps) t.dispose();
}

function binary(op: BinaryKernel, intToFloat = false) {
  return (a: TensorLike, b: TensorLike): Tensor => {
    let dtype = resultType(op, a, b);
    if (intToFloat && dtype === 'int32') dtype = 'float32'; // true division, as in PyTorch
    const [x, y, temps] = operands(op, a, b, dtype);
    try {
      return runOp(op, [x, y], {}, { shape: broadcastShapes(x.shape, y.shape, op), dtype }, op);
    } finally {
      disposeAll(temps);
    }
  };
}

export const add = binary('add');
export const sub = binary('sub');
export const mul = binary('mul');
export const div = binary('div', true);
export const pow = binary('pow');
/** Elementwise maximum; on ties the gradient is split ½/½, as in PyTorch. */
export const maximum = binary('maximum');
export const minimum = binary('minimum');

function compare(op: CompareKernel) {
  return (a: TensorLike, b: TensorLike): Tensor => {
    const dtype = resultType(op, a, b);
    const [x, y, temps] = operands(op, a, b, dtype);
    try {
      return runOp(op, [x, y], {}, { shape: broadcastShapes(x.shape, y.shape, op), dtype: 'int32' }, null);
    } finally {
      disposeAll(temps);
    }
  };
}

export const equal = compare('equal');
export const notEqual = compare('notEqual');
export const less = compare('less');
export const lessEqual = compare('lessEqual');
export const greater = compare('greater');
export const greaterEqual = compare('greaterEqual');

/** Elementwise cond ? a : b with broadcasting of all three; cond is any tensor, nonzero = true. */
export function where(cond: Tensor, a: TensorLike, b: TensorLike): Tensor {
  checkTensor('where', cond, 'cond');
  // Two numbers, as torch.where(cond, 1.0, 0.0): the default float dtype, or the integer
  // dtype when both are integers (int64 in PyTorch, int32 here); the shape is cond's.
  const dtype = typeof a === 'number' && typeof b === 'number' ? twoNumbersType(a, b) : resultType('where', a, b);
  const [x, y, temps] = operands('where', a, b, dtype);
  try {
    const shape = broadcastShapes(broadcastShapes(cond.shape, x.shape, 'where'), y.shape, 'where');
    return runOp('where', [cond, x, y], {}, { shape, dtype }, 'where');
  } finally {
    disposeAll(temps);
  }
}

function twoNumbersType(a: number, b: number): DType {
  if (!(Number.isInteger(a) && Number.isInteger(b))) return 'float32';
  for (const v of [a, b]) {
    if (v < -2147483648 || v > 2147483647) throw new Error(`where: the integer ${v} does not fit int32 (mixtape's integer dtype); pass it as a float or in a float tensor`);
  }
  return 'int32';
}

/** Clamps into [min, max] (either may be omitted); gradient 1 inside and at the bounds, as PyTorch. */
export function clamp(x: Tensor, min?: number, max?: number): Tensor {
  checkTensor('clamp', x, 'x');
  if (min === undefined && max === undefined) throw new Error('clamp: give at least one of min and max');
  if (min !== undefined && max !== undefined && min > max) throw new Error(`clamp: min ${min} is greater than max ${max}`);
  let out = x;
  if (min !== undefined) {
    const mask = less(out, min);
    out = where(mask, min, out);
    mask.dispose();
  }
  if (max !== undefined) {
    const mask = greater(out, max);
    const next = where(mask, max, out);
    mask.dispose();
    if (out !== x) out.dispose();
    out = next;
  }
  return out;
}

/**
 * x with `value` wherever mask is nonzero (torch.masked_fill); mask broadcasts to x's shape
 * and the result keeps x's shape and dtype. The gradient flows to x where mask is 0.
 */
export function maskedFill(x: Tensor, mask: Tensor, value: number): Tensor {
  checkTensor('maskedFill', x, 'x');
  checkTensor('maskedFill', mask, 'mask');
  checkNumber('maskedFill', value, 'value');
  const shape = broadcastShapes(x.shape, mask.shape, 'maskedFill');
  if (shape.length !== x.rank || shape.some((d, i) => d !== x.shape[i])) {
    throw new Error(`maskedFill: mask of shape [${mask.shape.join(', ')}] must broadcast to x's shape [${x.shape.join(', ')}]`);
  }
  if (x.dtype === 'int32' && !(Number.isInteger(value) && value >= -2147483648 && value <= 2147483647)) {
    throw new Error(`maskedFill: value ${value} does not fit x's dtype int32`);
  }
  const fill = scalar(value, x.dtype);
  try {
    return where(mask, fill, x);
  } finally {
    fill.dispose();
  }
}

export function square(x: Tensor): Tensor { return mul(x, x); }
export function reciprocal(x: Tensor): Tensor { return div(1, x); }

/** 1 where x is finite (not ±inf, not NaN), else 0. */
export function isFinite(x: Tensor): Tensor {
  checkTensor('isFinite', x, 'x');
  return noGrad(() => {
    const d = sub(x, x); // NaN exactly where x is ±inf or NaN
    const out = equal(d, 0);
    d.dispose();
    return out;
  });
}
