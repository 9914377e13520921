// Switch routing (Fedus, Zoph & Shazeer 2021, §2.1–2.2): p(x) = softmax(x·W_r), each example
// goes to its top-1 expert i = argmax p(x) with gate p_i(x). The gate is NOT renormalized
// (renormalizing one gate would make it 1 and give the router no gradient at k = 1).
// Balancing (eq. 4): loss = α · E · Σᵢ fᵢ · Pᵢ, with fᵢ the fraction of examples sent to i
// (a count: no gradient) and Pᵢ the mean router probability for i (differentiable); its
// minimum, α, is reached at uniform routing. Optional multiplicative jitter (§2.4, "we
// multiply the router's input by U(1 − ε, 1 + ε)") in training only.

import { tidy } from '../../tensor/engine.js';
import { normal, rand, zeros, type Generator } from '../../tensor/ops/creation.js';
import { softmax } from '../../tensor/ops/functional.js';
import { scatterAdd, topk } from '../../tensor/ops/indexing.js';
import { matmul } from '../../tensor/ops/linalg.js';
import { mean } from '../../tensor/ops/reduction.js';
import { shapeToString } from '../../core/shape.js';
import { Tensor } from '../../tensor/tensor.js';
import { checkDType, checkPositiveInt, Module, parameter } from '../../nn/module.js';
import type { DType } from '../../core/dtype.js';
import { gatesToLoad, importance } from '../balancing.js';
import { checkGateInput, type GatingOutput } from '../gating.js';

export interface RouterOutput extends GatingOutput {
  /** [N, E]: the router's probabilities softmax(x·W_r) (or its affinities). */
  probs: Tensor;
  /** The router's own balancing loss before its weight α (Switch/GShard eq.), when it has one. */
  routerAuxLoss?: Tensor;
}

export interface RouterForwardOptions {
  /** [N, d] multiplicative jitter factors (in place of drawing U(1 − ε, 1 + ε)), training only. */
  jitter?: Tensor;
}

/**
 * A learned router's weight [d, E]: small random values (Switch §2.4 draws from a truncated
 * normal of variance 0.1/d). Not zeros, as the 2017 gate is: with no noise, zero logits
 * tie everywhere and top-1 would send every example to expert 0.
 */
export function routerWeight(d: number, E: number, dtype: DType, generator: Generator | undefined): Tensor {
  return parameter(normal([d, E], 0, Math.sqrt(0.1 / d), { dtype, ...(generator ? { generator } : {}) }));
}

/** x·(jitter) for the router input: U(1 − ε, 1 + ε) per element in training, or the given factors. */
export function jitterInput(op: string, x: Tensor, epsilon: number, training: boolean, given: Tensor | undefined, generator: Generator | undefined): Tensor {
  if (!training || (epsilon === 0 && given === undefined)) return x;
  if (given !== undefined) {
    if (!(given instanceof Tensor) || given.rank !== 2 || given.shape[0] !== x.shape[0] || given.shape[1] !== x.shape[1]) {
      throw new Error(`${op}: jitter must have shape ${shapeToString(x.shape)}, got ${given instanceof Tensor ? shapeToString(given.shape) : typeof given}`);
    }
    return x.mul(given);
  }
  const u = rand(x.shape, { dtype: x.dtype, ...(generator ? { generator } : {}) });
  return x.mul(u.mul(2 * epsilon).add(1 - epsilon));
}

export interface SwitchGatingOptions {
  inputSize: number;
  numExperts: number;
  /** ε of the multiplicative input jitter (default 0: off). */
  jitterNoise?: number;
  dtype?: DType;
  generator?: Generator;
}

export class SwitchGating extends Module {
  w_gate: Tensor;
  readonly inputSize: number;
  readonly numExperts: number;
  readonly k = 1;
  readonly jitterNoise: number;
  generator: Generator | undefined;

  constructor(options: SwitchGatingOptions) {
    super();
    this.inputSize = checkPositiveInt('SwitchGating', 'inputSize', options.inputSize);
    this.numExperts = checkPositiveInt('SwitchGating', 'numExperts', options.numExperts);
    this.jitterNoise = options.jitterNoise ?? 0;
    if (!(this.jitterNoise >= 0 && this.jitterNoise < 1)) throw new Error(`SwitchGating: jitterNoise must be in [0, 1), got ${this.jitterNoise}`);
    this.generator = options.generator;
    this.w_gate = routerWeight(this.inputSize, this.numExperts, checkDType('SwitchGating', options.dtype), options.generator);
  }

  forward(x: Tensor, options: RouterForwardOptions = {}): RouterOutput {
    checkGateInput('SwitchGating', x, this.inputSize);
    const [N, E] = [x.shape[0]!, this.numExperts];
    return tidy(() => {
      const logits = matmul(jitterInput('SwitchGating', x, this.jitterNoise, this.training, options.jitter, this.generator), this.w_gate);
      const probs = softmax(logits, -1);
      const top = topk(probs, 1); // ties to the lowest expert index
      const gates = scatterAdd(zeros([N, E], { dtype: x.dtype }), 1, top.indices, top.values);
      const counts = gatesToLoad(gates);
      // α·E·Σ fᵢ·Pᵢ without α: fᵢ = countᵢ / N carries no gradient, Pᵢ = mean_x pᵢ(x) does.
      const routerAuxLoss = counts.div(N).mul(mean(probs, 0)).sum().mul(E);
      return {
        gates, indices: top.indices, importance: importance(gates), load: counts, probs, routerAuxLoss,
        cleanLogits: logits, noisyLogits: logits, noiseStddev: null,
      };
    });
  }
}
