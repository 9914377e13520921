// Strictly balanced gating (Shazeer et al. 2017, App. F). In training, the batchwise mask
// gives each expert exactly its top m = k·|X|/n examples of the softmax gate (eq. 18); the
// gates are the softmax renormalized over the mask (eq. 16). Per-expert thresholds T are
// trained with L_batchwise (eq. 20) to imitate that mask, and replace it at inference
// (eq. 19), where the batch is not available.

import { tidy } from '../tensor/engine.js';
import { ones, zeros } from '../tensor/ops/creation.js';
import { softmax } from '../tensor/ops/functional.js';
import { scatterAdd, topk } from '../tensor/ops/indexing.js';
import { matmul } from '../tensor/ops/linalg.js';
import { cast, greater, where } from '../tensor/ops/elementwise.js';
import type { Tensor } from '../tensor/tensor.js';
import type { DType } from '../core/dtype.js';
import { checkDType, checkPositiveInt, Module, parameter } from '../nn/module.js';
import { gatesToLoad, importance } from './balancing.js';
import { checkGateInput, type GatingOutput } from './gating.js';

export interface BatchwiseGatingOptions { inputSize: number; numExperts: number; k: number; dtype?: DType }

/** M_batchwise(X, m) (eq. 18): 1 for the top m rows of each column of X [N, E], lowest index first on ties. */
export function batchwiseMask(X: Tensor, m: number): Tensor {
  return tidy(() => {
    const [N, E] = X.shape as [number, number];
    const { indices } = topk(X.detach().transpose(), m);
    return scatterAdd(zeros([E, N], { dtype: X.dtype }), 1, indices, ones([E, m], { dtype: X.dtype })).transpose();
  });
}

/** M_threshold(X, T) (eq. 19): 1 where X[j, i] > T[i]. */
export function thresholdMask(X: Tensor, T: Tensor): Tensor {
  return tidy(() => cast(greater(X.detach(), T.detach()), X.dtype));
}

/**
 * L_batchwise(X, T, m) = Σⱼ Σᵢ (M_threshold(xⱼ, T)ᵢ − M_batchwise(X, m)ⱼᵢ)·(Xⱼᵢ − Tᵢ) (eq. 20).
 * Every term is >= 0 and the loss is 0 when the masks agree. It trains T only: X is
 * treated as a constant, so the gating network is not pulled toward the thresholds.
 */
export function batchwiseThresholdLoss(X: Tensor, T: Tensor, m: number): Tensor {
  return tidy(() => {
    const diff = thresholdMask(X, T).sub(batchwiseMask(X, m));
    return diff.mul(X.detach().sub(T)).sum();
  });
}

export class BatchwiseGating extends Module {
  w_gate: Tensor;
  /** T: one threshold per expert, used at inference. */
  thresholds: Tensor;
  readonly inputSize: number;
  readonly numExperts: number;
  readonly k: number;

  constructor(options: BatchwiseGatingOptions) {
    super();
    const check = (name: string, v: number) => checkPositiveInt('BatchwiseGating', name, v);
    this.inputSize = check('inputSize', options.inputSize);
    this.numExperts = check('numExperts', options.numExperts);
    this.k = check('k', options.k);
    if (this.k > this.numExperts) throw new Error(`BatchwiseGating: k (${this.k}) cannot exceed numExperts (${this.numExperts})`);
    const dtype = checkDType('BatchwiseGating', options.dtype);
    this.w_gate = parameter(zeros([this.inputSize, this.numExperts], { dtype }));
    this.thresholds = parameter(zeros([this.numExperts], { dtype }));
  }

  /** m = k·|X|/n, rounded to the nearest integer and kept within [1, |X|]. */
  examplesPerExpert(batch: number): number {
    return Math.min(batch, Math.max(1, Math.round((this.k * batch) / this.numExperts)));
  }

  forward(x: Tensor): GatingOutput & { batchwiseLoss?: Tensor; indices: Tensor } {
    checkGateInput('BatchwiseGating', x, this.inputSize, this.w_gate.dtype);
    const N = x.shape[0]!;
    return tidy(() => {
      const clean = matmul(x, this.w_gate);
      const probs = softmax(clean, -1); // G_σ (eq. 2)
      let mask: Tensor, batchwiseLoss: Tensor | undefined;
      if (this.training && N > 0) {
        const m = this.examplesPerExpert(N);
        mask = batchwiseMask(probs, m);
        batchwiseLoss = batchwiseThresholdLoss(probs, this.thresholds, m);
      } else {
        mask = thresholdMask(probs, this.thresholds);
      }
      // eq. 16: renormalize over the mask; an example no expert took gets all-zero gates.
      const masked = probs.mul(mask);
      const denom = masked.sum(-1, true);
      const hasExpert = greater(denom, 0);
      const gates = where(hasExpert, masked.div(where(hasExpert, denom, 1)), 0);
      // The k most weighted experts, for the stats (routing itself follows the mask).
      const { indices } = topk(gates.detach(), this.k);
      return {
        gates, indices, importance: importance(gates), load: gatesToLoad(gates),
        cleanLogits: clean, noisyLogits: clean, noiseStddev: null,
        ...(batchwiseLoss ? { batchwiseLoss } : {}),
      };
    });
  }
}
