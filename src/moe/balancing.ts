// The balancing statistics of Shazeer et al. 2017 §4 and App. A: importance (eq. 6), the
// squared coefficient of variation used by both losses (eqs. 7, 11), the smooth load
// estimator P(x, i) (eqs. 8–10, tensor2tensor's prob_in_top_k), and hard counts.

import { getBackend, noGrad, runOp } from '../tensor/engine.js';
import { Tensor } from '../tensor/tensor.js';
import { sum, mean } from '../tensor/ops/reduction.js';
import { slice } from '../tensor/ops/movement.js';
import { cast, greater, normalCdf, sub, div, where } from '../tensor/ops/elementwise.js';
import { tidy } from '../tensor/engine.js';
import { cvSquaredFused } from '../tensor/ops/fused.js';
import { shapeToString } from '../core/shape.js';

/** Each function checks its own arguments and names itself (an internal op's error would not). */
function checkTensor(op: string, name: string, v: unknown, rank?: number): Tensor {
  if (!(v instanceof Tensor)) throw new Error(`${op}: ${name} must be a Tensor, got ${v === null ? 'null' : typeof v}`);
  if (rank !== undefined && v.rank !== rank) throw new Error(`${op}: ${name} must be ${rank}-d, got shape ${shapeToString(v.shape)}`);
  if (v.dtype === 'int32') throw new Error(`${op}: ${name} must be a float tensor, got int32 ${shapeToString(v.shape)}`);
  return v;
}

/**
 * cv_squared(v) = Var(v) / (Mean(v)² + 1e-10), with the population variance (÷n), as in
 * tensor2tensor. 0 for a single expert or a constant vector. A 0-d tensor. One kernel each way
 * where the backend has it (the CPU), with this composition's bits.
 */
export function cvSquared(v: Tensor): Tensor {
  checkTensor('cvSquared', 'v', v);
  if (v.size === 0) throw new Error(`cvSquared: v is empty (shape ${shapeToString(v.shape)})`);
  const fused = cvSquaredFused(v);
  if (fused !== null) return fused;
  return tidy(() => {
    const flat = v.reshape([v.size]);
    const m = mean(flat);
    const variance = mean(flat.sub(m).square());
    return variance.div(m.square().add(1e-10));
  });
}

/** Importance(X) = Σ_x G(x) (eq. 6): the batchwise sum of gate values per expert. */
export function importance(gates: Tensor): Tensor {
  checkTensor('importance', 'gates', gates, 2);
  return sum(gates, 0);
}

/** The number of examples routed to each expert (nonzero gates), as a float vector without gradient. */
export function gatesToLoad(gates: Tensor): Tensor {
  checkTensor('gatesToLoad', 'gates', gates, 2);
  return noGrad(() => tidy(() => sum(cast(greater(gates, 0), gates.dtype), 0)));
}

/**
 * prob_in_top_k: P(x, i) = Φ((clean_i − kth_excluding(H, k, i)) / stddev_i) (eq. 9), the
 * probability that expert i stays in the top k under a fresh draw of its own noise,
 * the other experts' noise held fixed.
 *
 * `topValues` holds the k+1 largest noisy logits per row, sorted descending. For an expert
 * inside the top k the threshold is the (k+1)-th largest; for one outside, the k-th: this
 * equals "the k-th largest of the others" without sorting per expert. "Inside" is strict
 * (H_i > threshold_if_in), so a tie counts as outside, as in tensor2tensor.
 */
export function probInTopK(clean: Tensor, noisy: Tensor, stddev: Tensor, topValues: Tensor, k: number): Tensor {
  checkTensor('probInTopK', 'clean', clean, 2);
  const [N, E] = clean.shape as [number, number];
  for (const [name, t] of [['noisy', noisy], ['stddev', stddev]] as const) {
    checkTensor('probInTopK', name, t, 2);
    if (t.shape[0] !== N || t.shape[1] !== E) throw new Error(`probInTopK: ${name} has shape ${shapeToString(t.shape)} but clean has ${shapeToString(clean.shape)}`);
  }
  checkTensor('probInTopK', 'topValues', topValues, 2);
  // The thresholds are the k-th and (k+1)-th largest noisy logits: k+1 must exist, so 1 <= k < E.
  if (!Number.isInteger(k) || k < 1 || k >= E) {
    throw new Error(`probInTopK: k must be an integer in [1, ${E - 1}] (k < numExperts ${E}: the (k+1)-th largest logit is the threshold), got ${k}`);
  }
  if (topValues.shape[0] !== N || topValues.shape[1]! < k + 1) {
    throw new Error(`probInTopK: topValues must hold the k+1 = ${k + 1} largest noisy logits per row, shape [${N}, ${k + 1}], got ${shapeToString(topValues.shape)}`);
  }
  return tidy(() => {
    const rows = clean.shape[0]!;
    const thresholdIfIn = slice(topValues, [0, k], [rows, 1]);
    const thresholdIfOut = slice(topValues, [0, k - 1], [rows, 1]);
    const isIn = greater(noisy, thresholdIfIn);
    // One Φ per (example, expert): pick the threshold first (the gradient follows the pick).
    const threshold = where(isIn, thresholdIfIn, thresholdIfOut);
    return normalCdf(div(sub(clean, threshold), stddev));
  });
}

/** Mean over examples of the gate distribution's entropy −Σᵢ gᵢ log gᵢ (0·log 0 = 0), in nats. */
export function gateEntropy(gates: Tensor): Tensor {
  checkTensor('gateEntropy', 'gates', gates);
  const n = gates.rank === 0 ? 0 : gates.shape[gates.rank - 1]!;
  if (n > 0 && getBackend().supports?.('gateEntropyRows')) {
    // Each row's Σᵢ gᵢ log gᵢ in one pass, the composition's bits.
    return noGrad(() => tidy(() => mean(runOp('gateEntropyRows', [gates], {}, { shape: gates.shape.slice(0, -1), dtype: gates.dtype }, null)).neg()));
  }
  return noGrad(() => tidy(() => {
    const positive = greater(gates, 0);
    const safe = where(positive, gates, 1);
    const terms = where(positive, gates.mul(safe.log()), 0);
    return mean(sum(terms, -1)).neg();
  }));
}
