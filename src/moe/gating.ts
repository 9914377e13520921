// Gating networks (Shazeer et al. 2017 §2.1): dense softmax gating (eq. 2) and noisy
// top-k gating (eqs. 3–5), with tensor2tensor's conventions: w_gate and w_noise [d, E],
// zero-initialized (App. A); noise stddev softplus(x·w_noise) + noiseEpsilon; noise only
// in training; ties to the lowest expert index; load by prob_in_top_k when noisy.

import { tidy } from '../tensor/engine.js';
import { randn, zeros, type Generator } from '../tensor/ops/creation.js';
import { softmax } from '../tensor/ops/functional.js';
import { topk } from '../tensor/ops/indexing.js';
import { noisyTopKLogits, probInTopKAt, topkGates, topkIndices } from '../tensor/ops/fused.js';
import { matmul } from '../tensor/ops/linalg.js';
import { slice } from '../tensor/ops/movement.js';
import { softplus } from '../tensor/ops/elementwise.js';
import { shapeToString } from '../core/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { checkDType, checkPositiveInt, Module, parameter } from '../nn/module.js';
import type { DType } from '../core/dtype.js';
import { gatesToLoad, importance } from './balancing.js';

export interface GatingOutput {
  /** [N, E]: exactly k nonzero gates per row (noisy top-k), summing to 1. */
  gates: Tensor;
  /** [N, k] int32: the chosen experts, best first. */
  indices: Tensor;
  /** [E]: Σ_x G(x) (eq. 6). */
  importance: Tensor;
  /** [E]: the smooth load Σ_x P(x, ·) (eq. 10) when noisy and training, else the hard counts. */
  load: Tensor;
  /** [N, E]: x·w_gate. */
  cleanLogits: Tensor;
  /** [N, E]: clean + ε·stddev (equal to cleanLogits when no noise is added). */
  noisyLogits: Tensor;
  /** [N, E]: softplus(x·w_noise) + noiseEpsilon, or null when no noise is added. */
  noiseStddev: Tensor | null;
}

export interface GateForwardOptions {
  /** ε ~ N(0, 1) per (example, expert), [N, E]: supply it for gradient checks and comparisons. */
  noise?: Tensor;
  /**
   * [N] 0/1: which rows count. Rows with 0 are padding (the fixed-size buffers of device
   * dispatch): they are gated like any row, but importance and load sum the rows with 1 only.
   */
  mask?: Tensor;
}


export function checkGateInput(op: string, x: unknown, inputSize: number, dtype?: DType): Tensor {
  if (!(x instanceof Tensor) || x.rank !== 2 || x.shape[1] !== inputSize) {
    throw new Error(`${op}: expected input [N, ${inputSize}], got ${x instanceof Tensor ? shapeToString(x.shape) : typeof x}`);
  }
  if (dtype !== undefined) checkLayerDType(op, x, dtype);
  return x;
}

/** A layer's input must have the layer's dtype (matmul does not promote): say so with the layer's name and the shapes. */
export function checkLayerDType(op: string, x: Tensor, dtype: DType): void {
  if (x.dtype === dtype) return;
  const fix = x.dtype === 'int32' ? `cast it with x.cast('${dtype}')` : `cast it with x.cast('${dtype}') or convert the layer with .to('${x.dtype}')`;
  throw new Error(`${op}: input ${shapeToString(x.shape)} is ${x.dtype} but the layer's weights are ${dtype}; ${fix}`);
}

export interface NoisyTopKGatingOptions {
  inputSize: number;
  numExperts: number;
  k: number;
  noisy?: boolean;
  noiseEpsilon?: number;
  dtype?: DType;
  /** Where the noise comes from when forward() is not given any (default: the global generator). */
  generator?: Generator;
}

/** noisy_top_k_gating: G(x) = Softmax(KeepTopK(H(x), k)), H(x) = x·W_g + ε·(softplus(x·W_noise) + noiseEpsilon). */
export class NoisyTopKGating extends Module {
  w_gate: Tensor;
  w_noise: Tensor;
  readonly inputSize: number;
  readonly numExperts: number;
  readonly k: number;
  readonly noisy: boolean;
  readonly noiseEpsilon: number;
  generator: Generator | undefined;

  constructor(options: NoisyTopKGatingOptions) {
    super();
    this.inputSize = checkPositiveInt('NoisyTopKGating', 'inputSize', options.inputSize);
    this.numExperts = checkPositiveInt('NoisyTopKGating', 'numExperts', options.numExperts);
    this.k = checkPositiveInt('NoisyTopKGating', 'k', options.k);
    if (this.k > this.numExperts) throw new Error(`NoisyTopKGating: k (${this.k}) cannot exceed numExperts (${this.numExperts})`);
    this.noisy = options.noisy ?? true;
    this.noiseEpsilon = options.noiseEpsilon ?? 1e-2;
    if (!(this.noiseEpsilon >= 0)) throw new Error(`NoisyTopKGating: noiseEpsilon must be non-negative, got ${this.noiseEpsilon}`);
    this.generator = options.generator;
    const dtype = checkDType('NoisyTopKGating', options.dtype);
    // Both zero-initialized: "no signal and some noise" (App. A), so early routing is balanced.
    this.w_gate = parameter(zeros([this.inputSize, this.numExperts], { dtype }));
    this.w_noise = parameter(zeros([this.inputSize, this.numExperts], { dtype }));
  }

  /** Whether this forward adds noise: noisy gating, in training mode. */
  get addsNoise(): boolean { return this.noisy && this.training; }

  forward(x: Tensor, options: GateForwardOptions = {}): GatingOutput {
    return tidy(() => {
      const { balance, ...routed } = this.route(x, options);
      return { ...routed, ...balance() };
    });
  }

  /**
   * forward() in two halves, for the MoE layer, which runs its experts between them: the
   * routing (eqs. 3–5: the logits, the noise, the top k and their gates), and `balance`, which
   * gives importance and load (eqs. 6 and 10, from the same tensors). Call it inside a tidy,
   * and balance() inside the same one.
   */
  route(x: Tensor, options: GateForwardOptions = {}): Omit<GatingOutput, 'importance' | 'load'> & { balance: () => Pick<GatingOutput, 'importance' | 'load'> } {
    checkGateInput('NoisyTopKGating', x, this.inputSize, this.w_gate.dtype);
    const [N, E, k] = [x.shape[0]!, this.numExperts, this.k];
    if (options.noise !== undefined && this.addsNoise) {
      const n = options.noise;
      if (!(n instanceof Tensor) || n.rank !== 2 || n.shape[0] !== N || n.shape[1] !== E) {
        throw new Error(`NoisyTopKGating: noise must have shape [${N}, ${E}], got ${n instanceof Tensor ? shapeToString(n.shape) : typeof n}`);
      }
    }
    const mask = options.mask;
    if (mask !== undefined && (!(mask instanceof Tensor) || mask.rank !== 1 || mask.shape[0] !== N || mask.dtype === 'int32')) {
      throw new Error(`NoisyTopKGating: mask must be a float [${N}] tensor, got ${mask instanceof Tensor ? `${mask.dtype} ${shapeToString(mask.shape)}` : typeof mask}`);
    }
    // One more than k for the load estimator's thresholds (tensor2tensor's min(k+1, n)).
    const m = Math.min(k + 1, E);
    // With drawn noise, one kernel where the backend has it (the same graph and bits).
    const fused = this.addsNoise && options.noise === undefined ? noisyTopKLogits(x, this.w_gate, this.w_noise, this.noiseEpsilon, m, this.generator) : null;
    let clean: Tensor, noisy: Tensor, stddev: Tensor | null = null, top: Tensor;
    if (fused !== null) {
      ({ clean, noisy, stddev, top } = fused);
    } else {
      clean = matmul(x, this.w_gate); // eq. 3, first term
      noisy = clean;
      if (this.addsNoise) {
        stddev = softplus(matmul(x, this.w_noise)).add(this.noiseEpsilon);
        const eps = options.noise ?? randn([N, E], { dtype: x.dtype, ...(this.generator ? { generator: this.generator } : {}) });
        noisy = clean.add(eps.mul(stddev)); // eq. 4
      }
      top = topkIndices(noisy, m);
    }
    const indices = m === k ? top : slice(top, [0, 0], [N, k]);
    // eq. 5: the softmax over the kept noisy logits, scattered into zeros (one kernel on the CPU).
    const gates = topkGates(noisy, top, k);
    const balance = () => {
      const rowMask = mask ? mask.reshape([N, 1]) : null;
      const counted = rowMask ? gates.mul(rowMask) : gates;
      // eq. 10: P(x, i) from the same top indices (balancing.ts's probInTopK, one kernel on the CPU).
      const p = stddev !== null && k < E ? probInTopKAt(clean, noisy, stddev, top, k) : null;
      const load = p !== null ? (rowMask ? p.mul(rowMask) : p).sum(0) : gatesToLoad(counted);
      return { importance: importance(counted), load };
    };
    return { gates, indices, cleanLogits: clean, noisyLogits: noisy, noiseStddev: stddev, balance };
  }
}

export interface SoftmaxGatingOptions { inputSize: number; numExperts: number; dtype?: DType }

/** Dense softmax gating, G_σ(x) = Softmax(x·W_g) (eq. 2): every expert gets every example. */
export class SoftmaxGating extends Module {
  w_gate: Tensor;
  readonly inputSize: number;
  readonly numExperts: number;
  constructor(options: SoftmaxGatingOptions) {
    super();
    this.inputSize = checkPositiveInt('SoftmaxGating', 'inputSize', options.inputSize);
    this.numExperts = checkPositiveInt('SoftmaxGating', 'numExperts', options.numExperts);
    this.w_gate = parameter(zeros([this.inputSize, this.numExperts], { dtype: checkDType('SoftmaxGating', options.dtype) }));
  }

  forward(x: Tensor): GatingOutput {
    checkGateInput('SoftmaxGating', x, this.inputSize, this.w_gate.dtype);
    const E = this.numExperts;
    return tidy(() => {
      const clean = matmul(x, this.w_gate);
      const gates = softmax(clean, -1);
      // All experts are "chosen", best first.
      const { indices } = topk(clean.detach(), E);
      return {
        gates, indices, importance: importance(gates), load: gatesToLoad(gates),
        cleanLogits: clean, noisyLogits: clean, noiseStddev: null,
      };
    });
  }
}
