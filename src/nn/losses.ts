// Losses with PyTorch's definitions: cross-entropy (mean over non-ignored targets), MSE,
// and perplexity = exp(mean cross-entropy).

import { gather } from '../tensor/ops/indexing.js';
import { logSoftmax } from '../tensor/ops/functional.js';
import { reshape } from '../tensor/ops/movement.js';
import { notEqual, where } from '../tensor/ops/elementwise.js';
import { tidy } from '../tensor/engine.js';
import { shapeToString } from '../core/shape.js';
import { Tensor } from '../tensor/tensor.js';

export type Reduction = 'mean' | 'sum' | 'none';

export interface CrossEntropyOptions {
  /** Targets equal to this are skipped (and excluded from the mean). PyTorch's default: -100. */
  ignoreIndex?: number;
  reduction?: Reduction;
}

/**
 * Cross-entropy of logits [..., C] against int32 class targets [...], computed stably
 * through logSoftmax. With reduction 'mean' it divides by the number of non-ignored
 * targets (NaN when all are ignored, as PyTorch).
 */
export function crossEntropy(logits: Tensor, targets: Tensor, options: CrossEntropyOptions = {}): Tensor {
  if (!(logits instanceof Tensor) || !(targets instanceof Tensor)) throw new Error('crossEntropy: logits and targets must be Tensors');
  if (targets.dtype !== 'int32') throw new Error(`crossEntropy: targets must be int32 class indices, got ${targets.dtype}`);
  if (logits.dtype === 'int32') throw new Error('crossEntropy: logits must be a float tensor');
  if (logits.rank < 1 || logits.rank !== targets.rank + 1 || targets.shape.some((d, i) => d !== logits.shape[i])) {
    throw new Error(`crossEntropy: logits ${shapeToString(logits.shape)} must be targets' shape ${shapeToString(targets.shape)} plus a class dimension`);
  }
  const ignoreIndex = options.ignoreIndex ?? -100;
  const reduction = options.reduction ?? 'mean';
  const C = logits.shape[logits.rank - 1]!;
  return tidy(() => {
    const flatTargets = reshape(targets, [targets.size, 1]);
    const keep = notEqual(flatTargets, ignoreIndex);
    const safeTargets = where(keep, flatTargets, 0);
    const logProbs = logSoftmax(reshape(logits, [targets.size, C]), -1);
    let picked: Tensor;
    try {
      picked = gather(logProbs, 1, safeTargets);
    } catch (e) {
      throw new Error(`crossEntropy: a target is not a class index in [0, ${C}) nor ignoreIndex ${ignoreIndex} (${(e as Error).message})`);
    }
    const losses = where(keep, picked.neg(), 0);
    if (reduction === 'none') return reshape(losses, targets.shape);
    if (reduction === 'sum') return losses.sum();
    return losses.sum().div(keep.cast(logits.dtype).sum());
  });
}

/** Mean squared error (or its sum / elementwise values). */
export function mse(input: Tensor, target: Tensor, options: { reduction?: Reduction } = {}): Tensor {
  if (!(input instanceof Tensor) || !(target instanceof Tensor)) throw new Error('mse: input and target must be Tensors');
  if (input.shape.length !== target.shape.length || input.shape.some((d, i) => d !== target.shape[i])) {
    throw new Error(`mse: input ${shapeToString(input.shape)} and target ${shapeToString(target.shape)} must have the same shape`);
  }
  const reduction = options.reduction ?? 'mean';
  return tidy(() => {
    const sq = input.sub(target).square();
    return reduction === 'none' ? sq : reduction === 'sum' ? sq.sum() : sq.mean();
  });
}

/** Perplexity from a mean per-token cross-entropy in nats: exp(loss). */
export function perplexity(loss: Tensor | number): number {
  const value = typeof loss === 'number' ? loss : loss.item();
  return Math.exp(value);
}
