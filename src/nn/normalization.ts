// LayerNorm (Ba et al. 2016) and RMSNorm (Zhang & Sennrich 2019) with PyTorch's names,
// defaults and parameters (`weight` ones, `bias` zeros, over the last axes named by
// normalizedShape), as compositions of tensor ops: their gradients are the ops' own.

import { tidy } from '../tensor/engine.js';
import { ones, zeros } from '../tensor/ops/creation.js';
import { shapeToString } from '../core/shape.js';
import { Tensor } from '../tensor/tensor.js';
import type { DType } from '../core/dtype.js';
import { checkDType, checkPositiveInt, Module, parameter } from './module.js';

function normalizedAxes(op: string, x: unknown, normalizedShape: readonly number[]): number[] {
  if (!(x instanceof Tensor)) throw new Error(`${op}: input must be a Tensor`);
  const k = normalizedShape.length;
  if (x.rank < k || normalizedShape.some((d, i) => x.shape[x.rank - k + i] !== d)) {
    throw new Error(`${op}: expected input with shape [*, ${normalizedShape.join(', ')}], got ${shapeToString(x.shape)}`);
  }
  return normalizedShape.map((_, i) => x.rank - k + i);
}

function checkAffine(op: string, name: string, t: Tensor | null | undefined, normalizedShape: readonly number[]): void {
  if (t && (t.rank !== normalizedShape.length || t.shape.some((d, i) => d !== normalizedShape[i]))) {
    throw new Error(`${op}: ${name} has shape ${shapeToString(t.shape)}, expected ${shapeToString(normalizedShape)}`);
  }
}

/**
 * (x − E[x]) / √(Var[x] + eps) · weight + bias over the last axes (F.layer_norm); the
 * variance is the biased one (divided by N), as in PyTorch.
 */
export function layerNorm(x: Tensor, normalizedShape: readonly number[], weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  const axes = normalizedAxes('layerNorm', x, normalizedShape);
  checkAffine('layerNorm', 'weight', weight, normalizedShape);
  checkAffine('layerNorm', 'bias', bias, normalizedShape);
  return tidy(() => {
    const centered = x.sub(x.mean(axes, true));
    const variance = centered.square().mean(axes, true);
    let y = centered.div(variance.add(eps).sqrt());
    if (weight) y = y.mul(weight);
    if (bias) y = y.add(bias);
    return y;
  });
}

/**
 * x / √(mean(x²) + eps) · weight over the last axes (F.rms_norm). eps defaults to the
 * machine epsilon of x's dtype, as PyTorch's eps=None.
 */
export function rmsNorm(x: Tensor, normalizedShape: readonly number[], weight?: Tensor | null, eps?: number): Tensor {
  const axes = normalizedAxes('rmsNorm', x, normalizedShape);
  checkAffine('rmsNorm', 'weight', weight, normalizedShape);
  const e = eps ?? machineEpsilon(x.dtype);
  return tidy(() => {
    const y = x.div(x.square().mean(axes, true).add(e).sqrt());
    return weight ? y.mul(weight) : y;
  });
}

/** torch.finfo(dtype).eps. */
function machineEpsilon(dtype: DType): number {
  return dtype === 'float64' ? 2 ** -52 : 2 ** -23;
}

export interface LayerNormOptions {
  eps?: number;
  /** Learnable per-element weight (and bias): PyTorch's elementwise_affine (default true). */
  elementwiseAffine?: boolean;
  /** With elementwiseAffine, a learnable bias too (default true). */
  bias?: boolean;
  dtype?: DType;
}

function checkShape(op: string, normalizedShape: number | readonly number[]): number[] {
  const shape = typeof normalizedShape === 'number' ? [normalizedShape] : [...normalizedShape];
  if (shape.length === 0) throw new Error(`${op}: normalizedShape must name at least one axis`);
  shape.forEach((d) => checkPositiveInt(op, 'normalizedShape', d));
  return shape;
}

function checkEps(op: string, eps: unknown): void {
  if (eps !== undefined && !(typeof eps === 'number' && eps >= 0 && Number.isFinite(eps))) throw new Error(`${op}: eps must be a non-negative number, got ${String(eps)}`);
}

/** torch.nn.LayerNorm: parameters `weight` (ones) and `bias` (zeros), shaped normalizedShape. */
export class LayerNorm extends Module {
  weight: Tensor | null;
  bias: Tensor | null;
  readonly normalizedShape: readonly number[];
  readonly eps: number;
  constructor(normalizedShape: number | readonly number[], options: LayerNormOptions = {}) {
    super();
    this.normalizedShape = checkShape('LayerNorm', normalizedShape);
    checkEps('LayerNorm', options.eps);
    this.eps = options.eps ?? 1e-5;
    const dtype = checkDType('LayerNorm', options.dtype);
    const affine = options.elementwiseAffine ?? true;
    this.weight = affine ? parameter(ones(this.normalizedShape, { dtype })) : null;
    this.bias = affine && (options.bias ?? true) ? parameter(zeros(this.normalizedShape, { dtype })) : null;
  }
  forward(x: Tensor): Tensor { return layerNorm(x, this.normalizedShape, this.weight, this.bias, this.eps); }
}

export interface RMSNormOptions {
  /** Default: the machine epsilon of the input's dtype (PyTorch's eps=None). */
  eps?: number;
  elementwiseAffine?: boolean;
  dtype?: DType;
}

/** torch.nn.RMSNorm: parameter `weight` (ones), shaped normalizedShape; no bias. */
export class RMSNorm extends Module {
  weight: Tensor | null;
  readonly normalizedShape: readonly number[];
  readonly eps: number | undefined;
  constructor(normalizedShape: number | readonly number[], options: RMSNormOptions = {}) {
    super();
    this.normalizedShape = checkShape('RMSNorm', normalizedShape);
    checkEps('RMSNorm', options.eps);
    this.eps = options.eps;
    const dtype = checkDType('RMSNorm', options.dtype);
    this.weight = options.elementwiseAffine ?? true ? parameter(ones(this.normalizedShape, { dtype })) : null;
  }
  forward(x: Tensor): Tensor { return rmsNorm(x, this.normalizedShape, this.weight, this.eps); }
}
