// GShard top-2 routing (Lepikhin et al. 2020, §2.2 and Algorithm 1): p(x) = softmax(x·W_r);
// the first expert is argmax p, the second the argmax of the rest; both gates are
// renormalized over the two, g₁ = p₁/(p₁+p₂), g₂ = p₂/(p₁+p₂).
//
// Random routing (Algorithm 1): in training the second expert is dispatched only when
// 2·g₂ > u with u ~ U(0, 1) per example — with probability min(1, 2·g₂), so a second
// expert of small weight is usually skipped. A skipped second route has gate 0 (no
// output, no gradient, no capacity used); the first gate keeps its renormalized value.
// u comes from the generator, or is given (`uniform`, [N]) for gradient checks and
// comparisons, as the 2017 gate's noise is. In eval mode both experts are used.
//
// Balancing: GShard's ℓ_aux = (1/E)·Σₑ (cₑ/S)·mₑ, cₑ the examples whose FIRST choice is e and
// mₑ the mean router probability, scaled here by E² to the Switch form E·Σ fᵢPᵢ (1 at uniform
// routing) so that one α serves both routers.

import { tidy } from '../../tensor/engine.js';
import { rand, zeros, type Generator } from '../../tensor/ops/creation.js';
import { softmax } from '../../tensor/ops/functional.js';
import { oneHot, scatterAdd, topk } from '../../tensor/ops/indexing.js';
import { matmul } from '../../tensor/ops/linalg.js';
import { concat, slice } from '../../tensor/ops/movement.js';
import { cast, greater } from '../../tensor/ops/elementwise.js';
import { mean, sum } from '../../tensor/ops/reduction.js';
import { shapeToString } from '../../core/shape.js';
import { Tensor } from '../../tensor/tensor.js';
import { checkDType, checkPositiveInt, Module } from '../../nn/module.js';
import type { DType } from '../../core/dtype.js';
import { gatesToLoad, importance } from '../balancing.js';
import { checkGateInput } from '../gating.js';
import { routerWeight, type RouterOutput } from './switch.js';

export interface GShardGatingOptions {
  inputSize: number;
  numExperts: number;
  /** Dispatch the second expert with probability min(1, 2·g₂) in training (default true). */
  randomRouting?: boolean;
  dtype?: DType;
  generator?: Generator;
}

export interface GShardForwardOptions {
  /** [N] u ~ U(0, 1) of random routing, in place of drawing it (training only). */
  uniform?: Tensor;
}

export class GShardGating extends Module {
  w_gate: Tensor;
  readonly inputSize: number;
  readonly numExperts: number;
  readonly k = 2;
  readonly randomRouting: boolean;
  generator: Generator | undefined;

  constructor(options: GShardGatingOptions) {
    super();
    this.inputSize = checkPositiveInt('GShardGating', 'inputSize', options.inputSize);
    this.numExperts = checkPositiveInt('GShardGating', 'numExperts', options.numExperts);
    if (this.numExperts < 2) throw new Error(`GShardGating: top-2 routing needs at least 2 experts, got numExperts = ${this.numExperts}`);
    this.randomRouting = options.randomRouting ?? true;
    this.generator = options.generator;
    this.w_gate = routerWeight(this.inputSize, this.numExperts, checkDType('GShardGating', options.dtype), options.generator);
  }

  forward(x: Tensor, options: GShardForwardOptions = {}): RouterOutput {
    checkGateInput('GShardGating', x, this.inputSize);
    const [N, E] = [x.shape[0]!, this.numExperts];
    const u = options.uniform;
    if (u !== undefined && (!(u instanceof Tensor) || u.rank !== 1 || u.shape[0] !== N)) {
      throw new Error(`GShardGating: uniform must have shape [${N}], got ${u instanceof Tensor ? shapeToString(u.shape) : typeof u}`);
    }
    return tidy(() => {
      const logits = matmul(x, this.w_gate);
      const probs = softmax(logits, -1);
      const top = topk(probs, 2); // first = argmax, second = argmax of the rest; ties to the lower index
      let topGates = top.values.div(sum(top.values, -1, true));
      if (this.randomRouting && this.training) {
        const draw = u ?? rand([N], { dtype: x.dtype, ...(this.generator ? { generator: this.generator } : {}) });
        const g2 = slice(topGates, [0, 1], [N, 1]);
        const keepSecond = cast(greater(g2.detach().mul(2), draw.reshape([N, 1])), x.dtype);
        topGates = concat([slice(topGates, [0, 0], [N, 1]), g2.mul(keepSecond)], 1);
      }
      const gates = scatterAdd(zeros([N, E], { dtype: x.dtype }), 1, top.indices, topGates);
      const first = slice(top.indices, [0, 0], [N, 1]).reshape([N]);
      const firstCounts = sum(cast(oneHot(first, E), x.dtype), 0);
      const routerAuxLoss = firstCounts.div(N).mul(mean(probs, 0)).sum().mul(E);
      return {
        gates, indices: top.indices, importance: importance(gates), load: gatesToLoad(gates), probs, routerAuxLoss,
        cleanLogits: logits, noisyLogits: logits, noiseStddev: null,
      };
    });
  }
}
