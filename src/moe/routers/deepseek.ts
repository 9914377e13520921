// DeepSeek-style routing (DeepSeekMoE, Dai et al. 2024; DeepSeek-V3 §2.1.2, 2024). Affinities
// s = sigmoid(x·W_r) (V3) or softmax(x·W_r) (DeepSeekMoE) over the routed experts; the top k
// are chosen by s + b, where b is a per-expert bias used for SELECTION ONLY; the gates are the
// chosen raw affinities normalized to sum to 1, g = s_i / Σ_chosen s_j (so b gets no gradient
// and does not scale any output). Fine-grained experts are just more, smaller experts
// (numExperts = m·E, hiddenSize = h/m, k = m·k₀); the always-on shared experts live in the
// MoE layer (`shared_experts`).
//
// Auxiliary-loss-free balancing (V3 §2.1.2): after each training step the bias moves by
// ±γ toward balance, bᵢ ← bᵢ + γ·sign(mean load − loadᵢ): an overloaded expert becomes less
// attractive, an underloaded one more. Here it happens at the end of each forward in training
// mode (one per step in the trainer), from that batch's counts. No gradient reaches b.
// b is stored as `e_score_correction_bias` (V3's name): in the state dict and checkpoints.
// (The optional small sequence-wise auxiliary loss of V3 is not implemented.)

import { noGrad, tidy } from '../../tensor/engine.js';
import { tensor, zeros, type Generator } from '../../tensor/ops/creation.js';
import { softmax } from '../../tensor/ops/functional.js';
import { gather, scatterAdd, topk } from '../../tensor/ops/indexing.js';
import { matmul } from '../../tensor/ops/linalg.js';
import { sum } from '../../tensor/ops/reduction.js';
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
    const dtype = checkDType('DeepSeekGating', options.dtype);
    this.w_gate = routerWeight(this.inputSize, this.numExperts, dtype, options.generator);
    this.e_score_correction_bias = parameter(zeros([this.numExperts], { dtype }));
  }

  forward(x: Tensor): RouterOutput {
    checkGateInput('DeepSeekGating', x, this.inputSize);
    const [N, E, k] = [x.shape[0]!, this.numExperts, this.k];
    const out = tidy(() => {
      const logits = matmul(x, this.w_gate);
      const scores = this.scoreFunction === 'sigmoid' ? logits.sigmoid() : softmax(logits, -1);
      const { indices } = noGrad(() => topk(scores.detach().add(this.e_score_correction_bias.detach()), k));
      const chosen = gather(scores, 1, indices);
      const gates = scatterAdd(zeros([N, E], { dtype: x.dtype }), 1, indices, chosen.div(sum(chosen, -1, true)));
      return {
        gates, indices, importance: importance(gates), load: gatesToLoad(gates), probs: scores,
        cleanLogits: logits, noisyLogits: logits, noiseStddev: null,
      };
    });
    if (this.training && this.biasUpdateRate > 0) this.updateBias(out.load);
    return out;
  }

  /** bᵢ ← bᵢ + γ·sign(mean(load) − loadᵢ), from a batch's per-expert counts. */
  updateBias(load: Tensor): void {
    const counts = load.dataSync(), b = this.e_score_correction_bias.dataSync();
    const mean = Array.from(counts).reduce((a, c) => a + c, 0) / counts.length;
    const next = Array.from(b, (v, i) => v + this.biasUpdateRate * Math.sign(mean - counts[i]!));
    noGrad(() => tidy(() => { this.e_score_correction_bias.assign(tensor(next, [this.numExperts], { dtype: this.e_score_correction_bias.dtype })); }));
  }
}
