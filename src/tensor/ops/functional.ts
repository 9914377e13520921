// Compositions used everywhere in models: softmax, logSoftmax, dropout, gelu, silu. Their
// gradients come from the primitives they are built of.

import { add, cast, div, exp, greaterEqual, log, mul, normalCdf, sigmoid, sub } from './elementwise.js';
import { logsumexpShift, max, sum } from './reduction.js';
import { rand, type Generator } from './creation.js';
import type { Tensor } from '../tensor.js';
import { checkFloat, checkTensor } from './util.js';
import { normalizeAxis } from '../../core/shape.js';
import { tidy } from '../engine.js';

/** exp(x - max) / Σ exp(x - max) along an axis; the max is a constant, so it is stable. */
export function softmax(x: Tensor, axis = -1): Tensor {
  checkTensor('softmax', x, 'x');
  checkFloat('softmax', x, 'x');
  const a = normalizeAxis(axis, x.rank, 'softmax');
  const detached = x.detach();
  const m = max(detached, a, true);
  const shifted = sub(x, m);
  const e = exp(shifted);
  const s = sum(e, a, true);
  const out = div(e, s);
  for (const t of [detached, m, shifted, e, s]) t.dispose();
  return out;
}

/** log softmax along an axis: x - logsumexp(x), computed stably. */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  checkTensor('logSoftmax', x, 'x');
  checkFloat('logSoftmax', x, 'x');
  const a = normalizeAxis(axis, x.rank, 'logSoftmax');
  if (x.shape[a] === 0) return x.clone();
  // (x − m) − log Σ exp(x − m), with m = max (a constant): the error is a few ulps of the
  // result, not of |x| (x − logsumexp(x) loses digits when |x| is large).
  const shift = logsumexpShift(x, [a]);
  const shifted = sub(x, shift);
  const e = exp(shifted);
  const s = sum(e, a, true);
  const l = log(s);
  const out = sub(shifted, l);
  for (const t of [shift, shifted, e, s, l]) t.dispose();
  return out;
}

/**
 * Inverted dropout: zeroes each element with probability p and scales the rest by
 * 1/(1-p), so the expectation is unchanged. Identity when training is false or p = 0.
 */
export function dropout(x: Tensor, p = 0.5, training = true, options: { generator?: Generator } = {}): Tensor {
  checkTensor('dropout', x, 'x');
  checkFloat('dropout', x, 'x');
  if (typeof p !== 'number' || !(p >= 0 && p <= 1)) throw new Error(`dropout: p must be a probability in [0, 1], got ${p}`);
  if (!training || p === 0) return x.clone();
  if (p === 1) return mul(x, 0);
  const u = rand(x.shape, { dtype: x.dtype, ...(options.generator ? { generator: options.generator } : {}) });
  const keepMask = greaterEqual(u, p);
  const maskAsFloat = cast(keepMask, x.dtype);
  const scaled = mul(maskAsFloat, 1 / (1 - p));
  const out = mul(x, scaled);
  for (const t of [u, keepMask, maskAsFloat, scaled]) t.dispose();
  return out;
}

export interface GeluOptions {
  /** 'none' (default): x·Φ(x), the exact form; 'tanh': PyTorch's tanh approximation. */
  approximate?: 'none' | 'tanh';
}

/**
 * GELU (Hendrycks & Gimpel 2016; torch.nn.functional.gelu): x·Φ(x) = x·½(1 + erf(x/√2)),
 * or with approximate 'tanh', ½x(1 + tanh(√(2/π)(x + 0.044715x³))).
 */
export function gelu(x: Tensor, options: GeluOptions = {}): Tensor {
  checkTensor('gelu', x, 'x');
  checkFloat('gelu', x, 'x');
  const approximate = options.approximate ?? 'none';
  if (approximate === 'none') {
    const phi = normalCdf(x);
    const out = mul(x, phi);
    phi.dispose();
    return out;
  }
  if (approximate !== 'tanh') throw new Error(`gelu: approximate must be 'none' or 'tanh', got '${String(approximate)}'`);
  // ½(1 + tanh u) = σ(2u) exactly; the σ form does not cancel where tanh u → −1 (x ≪ 0),
  // which costs 1 + tanh u all its float32 digits (1e-5 relative at x = −3).
  return tidy(() => {
    const twiceInner = mul(add(x, mul(mul(mul(x, x), x), 0.044715)), 2 * Math.sqrt(2 / Math.PI));
    return mul(x, sigmoid(twiceInner));
  });
}

/** SiLU / swish (torch.nn.functional.silu): x·σ(x). */
export function silu(x: Tensor): Tensor {
  checkTensor('silu', x, 'x');
  checkFloat('silu', x, 'x');
  const s = sigmoid(x);
  const out = mul(x, s);
  s.dispose();
  return out;
}
