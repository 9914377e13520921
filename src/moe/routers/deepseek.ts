// DeepSeek-style routing (DeepSeekMoE, Dai et al. 2024; DeepSeek-V3 §2.1.2, 2024). Affinities
// s = sigmoid(x·W_r) (V3) or softmax(x·W_r) (DeepSeekMoE) over the routed experts; the top k
// are chosen by s + b, where b is a per-expert bias used for SELECTION ONLY; the gates are the
// chosen raw affinities normalized to sum to 1, g = s_i / Σ_chosen s_j (so b gets no gradient
// and does not scale any output). Fine-grained experts are just more, smaller experts
// (numExperts = m·E, hiddenSize = h/m, k = m·k₀; `mixtape compare --fine-grained m` sets this
// up); the always-on shared experts live in the MoE layer (`shared_experts`).
//
// Auxiliary-loss-free balancing (V3 §2.1.2): after each training step the bias moves by
// ±γ toward balance, bᵢ ← bᵢ + γ·sign(mean load − loadᵢ): an overloaded expert becomes less
// attractive, an underloaded one more. Here it happens at the end of each forward in training
// mode (one per step in the trainer), from that batch's counts. No gradient reaches b.
// b is stored as `e_score_correction_bias` (V3's name): in the state dict and checkpoints.
//
// V3's optional complementary sequence-wise balance loss (§2.1.2, eqs. 17–20), per sequence
// of T tokens, with N_r routed experts and K_r = k of them per token:
//   L_Bal = α · Σᵢ fᵢ·Pᵢ,  fᵢ = N_r/(K_r·T) · Σₜ 1(s_{i,t} ∈ Topk({s_{j,t}}, K_r)),
//   s'_{i,t} = s_{i,t} / Σⱼ s_{j,t},  Pᵢ = (1/T) · Σₜ s'_{i,t}.
// As eq. 18 is written, fᵢ counts the top K_r of the raw affinities s (not of s + b, which
// selects the routes): with b = 0 the two agree. fᵢ carries no gradient, Pᵢ does. A batch of
// sequences gets the mean of their losses. `sequenceAuxLoss` computes it (unweighted) as
// `routerAuxLoss`; the MoE layer weights it by `seqAuxLossWeight` α (0 = off, the default).

import { noGrad, tidy } from '../../tensor/engine.js';
import { ones, zeros, type Generator } from '../../tensor/ops/creation.js';
import { greater, less } from '../../tensor/ops/elementwise.js';
import { softmax } from '../../tensor/ops/functional.js';
import { gather, scatterAdd, topk } from '../../tensor/ops/indexing.js';
import { matmul } from '../../tensor/ops/linalg.js';
import { mean, sum } from '../../tensor/ops/reduction.js';
import type { Tensor } from '../../tensor/tensor.js';
import { checkDType, checkPositiveInt, Module, parameter } from '../../nn/module.js';
import type { DType } from '../../core/dtype.js';
import { gatesToLoad, importance } from '../balancing.js';
import { checkGateInput } from '../gating.js';
import { routerWeight, type RouterOutput } from './switch.js';

export type ScoreFunction = 'softmax' | 'sigmoid';

export interface DeepSeekGatingOptions {
  inputSize: number;
  numExperts: number;
  k: number;
  /** 'sigmoid' (DeepSeek-V3, default) or 'softmax' (DeepSeekMoE). */
  scoreFunction?: ScoreFunction;
  /** γ of the loss-free bias update (default 0.001, V3's value; 0 = off). */
  biasUpdateRate?: number;
  /** Compute V3's sequence-wise balance loss Σᵢ fᵢ·Pᵢ (without α) as `routerAuxLoss` (default false). */
  sequenceAuxLoss?: boolean;
  dtype?: DType;
  generator?: Generator;
}

export class DeepSeekGating extends Module {
  w_gate: Tensor;
  /** [E] selection bias b (no gradient; updated by ±γ in training). A parameter only so that it is saved and loaded with the weights. */
  e_score_correction_bias: Tensor;
  readonly inputSize: number;
  readonly numExperts: number;
  readonly k: number;
  readonly scoreFunction: ScoreFunction;
  biasUpdateRate: number;
  readonly sequenceAuxLoss: boolean;

  constructor(options: DeepSeekGatingOptions) {
    super();
    this.inputSize = checkPositiveInt('DeepSeekGating', 'inputSize', options.inputSize);
    this.numExperts = checkPositiveInt('DeepSeekGating', 'numExperts', options.numExperts);
    this.k = checkPositiveInt('DeepSeekGating', 'k', options.k);
    if (this.k > this.numExperts) throw new Error(`DeepSeekGating: k (${this.k}) cannot exceed numExperts (${this.numExperts})`);
    this.scoreFunction = options.scoreFunction ?? 'sigmoid';
    if (this.scoreFunction !== 'sigmoid' && this.scoreFunction !== 'softmax') throw new Error(`DeepSeekGating: scoreFunction must be 'softmax' or 'sigmoid', got '${String(this.scoreFunction)}'`);
    this.biasUpdateRate = options.biasUpdateRate ?? 1e-3;
    if (!(this.biasUpdateRate >= 0 && Number.isFinite(this.biasUpdateRate))) throw new Error(`DeepSeekGating: biasUpdateRate must be a non-negative number, got ${this.biasUpdateRate}`);
    this.sequenceAuxLoss = options.sequenceAuxLoss ?? false;
    if (typeof this.sequenceAuxLoss !== 'boolean') throw new Error(`DeepSeekGating: sequenceAuxLoss must be true or false, got ${String(this.sequenceAuxLoss)}`);
    const dtype = checkDType('DeepSeekGating', options.dtype);
    this.w_gate = routerWeight(this.inputSize, this.numExperts, dtype, options.generator);
    this.e_score_correction_bias = parameter(zeros([this.numExperts], { dtype }));
  }

  /**
   * x [N, d]. `sequenceLength` T: the rows are N/T sequences of T consecutive rows (a [B, T, d]
   * input flattened), for the sequence-wise loss; default: one sequence of all N rows.
   */
  forward(x: Tensor, sequenceLength?: number): RouterOutput {
    checkGateInput('DeepSeekGating', x, this.inputSize);
    const [N, E, k] = [x.shape[0]!, this.numExperts, this.k];
    const T = sequenceLength ?? N;
    if (!Number.isInteger(T) || T < 1 || N % T !== 0) throw new Error(`DeepSeekGating: sequenceLength must be a positive divisor of the ${N} rows, got ${T}`);
    const out = tidy(() => {
      const logits = matmul(x, this.w_gate);
      const scores = this.scoreFunction === 'sigmoid' ? logits.sigmoid() : softmax(logits, -1);
      const { indices } = noGrad(() => topk(scores.detach().add(this.e_score_correction_bias.detach()), k));
      const chosen = gather(scores, 1, indices);
      const gates = scatterAdd(zeros([N, E], { dtype: x.dtype }), 1, indices, chosen.div(sum(chosen, -1, true)));
      return {
        gates, indices, importance: importance(gates), load: gatesToLoad(gates), probs: scores,
        cleanLogits: logits, noisyLogits: logits, noiseStddev: null,
        ...(this.sequenceAuxLoss ? { routerAuxLoss: sequenceBalanceLoss(scores, k, T) } : {}),
      };
    });
    if (this.training && this.biasUpdateRate > 0) this.updateBias(out.load);
    return out;
  }

  /** bᵢ ← bᵢ + γ·sign(mean(load) − loadᵢ), from a batch's per-expert counts, on the device (no readback). */
  updateBias(load: Tensor): void {
    const b = this.e_score_correction_bias;
    noGrad(() => tidy(() => {
      const counts = load.detach().cast(b.dtype), m = mean(counts);
      const sign = greater(m, counts).cast(b.dtype).sub(less(m, counts).cast(b.dtype));
      b.assign(b.detach().add(sign.mul(this.biasUpdateRate)));
    }));
  }
}

/**
 * V3's sequence-wise balance loss without α (eqs. 17–20): the mean over the N/T sequences of
 * Σᵢ fᵢ·Pᵢ, from the affinities s [N, E] of T consecutive rows per sequence.
 */
export function sequenceBalanceLoss(scores: Tensor, k: number, T: number): Tensor {
  const [N, E] = scores.shape as [number, number];
  const S = N / T;
  return tidy(() => {
    // fᵢ: E/(k·T) · how often i is among a token's top k raw affinities, per sequence (no gradient).
    const f = noGrad(() => {
      const { indices } = topk(scores.detach(), k);
      const chosen = scatterAdd(zeros([N, E], { dtype: scores.dtype }), 1, indices, ones([N, k], { dtype: scores.dtype }));
      return sum(chosen.reshape([S, T, E]), 1).mul(E / (k * T));
    });
    // Pᵢ: the mean over the sequence of the normalized affinities s' = s / Σⱼ s.
    const P = mean(scores.div(sum(scores, -1, true)).reshape([S, T, E]), 1);
    return sum(f.mul(P)).div(S);
  });
}
