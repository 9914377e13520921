// The Sparsely-Gated Mixture-of-Experts layer (Shazeer et al. 2017, eq. 1):
// y = Σᵢ G(x)ᵢ·Eᵢ(x), computing Eᵢ only on the examples routed to expert i. Applied to
// every row of a [..., d] input at once (the paper's "convolutional" batching over time).

import { noGrad, tidy } from '../tensor/engine.js';
import { gather } from '../tensor/ops/indexing.js';
import { reshape } from '../tensor/ops/movement.js';
import { shapeToString } from '../core/shape.js';
import { Tensor } from '../tensor/tensor.js';
import type { DType } from '../core/dtype.js';
import { checkDType, checkPositiveInt, Module } from '../nn/module.js';
import type { Generator } from '../tensor/ops/creation.js';
import { cvSquared, gateEntropy } from './balancing.js';
import { ExpertCountsOnRead } from './counts-on-read.js';
import { makeDispatcher, type DispatchMode } from './dispatcher.js';
import { Expert } from './expert.js';
import { BatchwiseGating } from './batchwise.js';
import { NoisyTopKGating, SoftmaxGating, type GatingOutput } from './gating.js';

/** Every gating kind the MoE layer accepts (the lab's menu and the CLI's checks read this list). */
export const GATING_KINDS = ['noisy-topk', 'softmax', 'batchwise'] as const;
export type GatingKind = typeof GATING_KINDS[number];

export interface MoEOptions {
  inputSize: number;
  outputSize: number;
  hiddenSize: number;
  numExperts: number;
  k: number;
  /** Gate type: noisy top-k (eqs. 3–5, default), dense softmax (eq. 2), or strictly balanced batchwise (App. F). */
  gating?: GatingKind;
  noisyGating?: boolean;
  noiseEpsilon?: number;
  /** Weight of CV²(importance) (eq. 7); the paper's LM uses 0.1. */
  wImportance?: number;
  /** Weight of CV²(load) (eq. 11); the paper's LM uses 0.1. */
  wLoad?: number;
  /** Weight of the batchwise threshold loss (eq. 20), batchwise gating only. */
  wBatchwise?: number;
  dtype?: DType;
  generator?: Generator;
  /**
   * How examples reach their experts (makeDispatcher). 'sparse' (SparseDispatcher): exactly
   * the routed rows, grouped on the host, so the routing is read back and shapes change every
   * batch. 'device' (DeviceDispatcher): fixed-size expert buffers computed on the device, no
   * readback and no recompilation; equal results. 'auto' (default): 'sparse' on the CPU
   * backend, 'device' on the others. Batchwise gating and the CPU path are unchanged.
   */
  dispatch?: DispatchMode;
  /** Rows per expert with 'device' dispatch (default: all N, so nothing is dropped). */
  capacity?: number;
}

/** Everything a person studying routing wants from one forward pass. Tensors carry no gradient. */
export interface MoEStats {
  /** [N, E] gate values (k nonzero per row for noisy top-k). */
  gates: Tensor;
  /** [N, k] int32: the chosen experts, best first. */
  indices: Tensor;
  /** [E]: Σ_x G(x) (eq. 6). */
  importance: Tensor;
  /** [E]: smooth load (eq. 10) in training with noise, else hard counts. */
  load: Tensor;
  /**
   * Per expert: how many examples it processed (known on the host with sparse dispatch;
   * with device dispatch it is computed from `indices` when first read: a readback).
   */
  expertCounts: number[];
  /** 0-d: CV(importance) = √cv_squared. */
  cvImportance: Tensor;
  /** 0-d: CV(load). */
  cvLoad: Tensor;
  /** 0-d: mean entropy of the gate distribution, nats. */
  gateEntropy: Tensor;
  /** 0-d: the batchwise threshold loss (eq. 20), batchwise gating in training only. */
  batchwiseLoss?: Tensor;
}

export interface MoEOutput {
  output: Tensor;
  /** wImportance·CV²(importance) + wLoad·CV²(load) (+ wBatchwise·L_batchwise). */
  auxLoss: Tensor;
  stats: MoEStats;
}

/** Examples per expert from the chosen indices [N, k], or from the nonzero gates [N, E]. */
function hostCounts(E: number, t: Tensor, isIndices: boolean): number[] {
  const counts = new Array<number>(E).fill(0);
  const v = t.dataSync();
  if (isIndices) for (const e of v) counts[e]!++;
  else for (let i = 0; i < v.length; i++) if (v[i]! > 0) counts[i % E]!++;
  return counts;
}

export interface MoEForwardOptions {
  /** ε ~ N(0, 1), [N, E] over the flattened rows, for deterministic noisy gating. */
  noise?: Tensor;
}


export class MoE extends Module {
  gate: NoisyTopKGating | SoftmaxGating | BatchwiseGating;
  experts: Expert[];
  readonly inputSize: number;
  readonly outputSize: number;
  readonly hiddenSize: number;
  readonly numExperts: number;
  readonly k: number;
  readonly gating: GatingKind;
  wImportance: number;
  wLoad: number;
  wBatchwise: number;
  dispatch: DispatchMode;
  capacity: number | undefined;

  constructor(options: MoEOptions) {
    super();
    this.inputSize = checkPositiveInt('MoE', 'inputSize', options.inputSize);
    this.outputSize = checkPositiveInt('MoE', 'outputSize', options.outputSize);
    this.hiddenSize = checkPositiveInt('MoE', 'hiddenSize', options.hiddenSize);
    this.numExperts = checkPositiveInt('MoE', 'numExperts', options.numExperts);
    this.gating = options.gating ?? 'noisy-topk';
    this.k = this.gating === 'softmax' ? this.numExperts : checkPositiveInt('MoE', 'k', options.k);
    if (this.k > this.numExperts) throw new Error(`MoE: k (${this.k}) cannot exceed numExperts (${this.numExperts})`);
    this.wImportance = options.wImportance ?? 0.1;
    this.wLoad = options.wLoad ?? 0.1;
    this.wBatchwise = options.wBatchwise ?? 1;
    this.dispatch = options.dispatch ?? 'auto';
    if (!['auto', 'sparse', 'device'].includes(this.dispatch)) throw new Error(`MoE: dispatch must be 'auto', 'sparse' or 'device', got '${String(this.dispatch)}'`);
    this.capacity = options.capacity === undefined ? undefined : checkPositiveInt('MoE', 'capacity', options.capacity);
    for (const [name, w] of [['wImportance', this.wImportance], ['wLoad', this.wLoad], ['wBatchwise', this.wBatchwise]] as const) {
      if (!(typeof w === 'number' && w >= 0 && Number.isFinite(w))) throw new Error(`MoE: ${name} must be a non-negative number, got ${w}`);
    }
    const dtype = checkDType('MoE', options.dtype);
    const common = { inputSize: this.inputSize, numExperts: this.numExperts, dtype };
    if (this.gating === 'noisy-topk') {
      this.gate = new NoisyTopKGating({
        ...common, k: this.k, noisy: options.noisyGating ?? true, noiseEpsilon: options.noiseEpsilon ?? 1e-2,
        ...(options.generator ? { generator: options.generator } : {}),
      });
    } else if (this.gating === 'softmax') {
      this.gate = new SoftmaxGating(common);
    } else if (this.gating === 'batchwise') {
      this.gate = new BatchwiseGating({ ...common, k: this.k });
    } else {
      throw new Error(`MoE: unknown gating '${String(this.gating)}' (expected 'noisy-topk', 'softmax' or 'batchwise')`);
    }
    const init = { dtype, ...(options.generator ? { generator: options.generator } : {}) };
    this.experts = Array.from({ length: this.numExperts }, () => new Expert(this.inputSize, this.hiddenSize, this.outputSize, init));
  }

  /** x [..., inputSize] → {output [..., outputSize], auxLoss, stats}. */
  forward(x: Tensor, options: MoEForwardOptions = {}): MoEOutput {
    if (!(x instanceof Tensor) || x.rank < 1 || x.shape[x.rank - 1] !== this.inputSize) {
      throw new Error(`MoE: expected input [..., ${this.inputSize}], got ${x instanceof Tensor ? shapeToString(x.shape) : typeof x}`);
    }
    return tidy(() => {
      const rows = reshape(x, [x.size / this.inputSize, this.inputSize]);
      const g: GatingOutput & { batchwiseLoss?: Tensor } = this.gate instanceof NoisyTopKGating
        ? this.gate.forward(rows, options.noise ? { noise: options.noise } : {})
        : this.gate.forward(rows);
      // Batchwise gating routes by its mask (a variable number of experts per example).
      const routes = this.gating === 'batchwise' ? undefined : g.indices;
      const dispatcher = makeDispatcher(this.numExperts, g.gates, { indices: routes, dispatch: this.dispatch, capacity: this.capacity });
      const inputs = dispatcher.dispatch(rows);
      // An expert with no examples sees a [0, d] input: no arithmetic, exact zero gradients.
      const outputs = inputs.map((input, e) => this.experts[e]!.forward(input));
      const combined = dispatcher.combine(outputs);
      const counts = dispatcher.partSizesOnHost ? dispatcher.partSizes() : null, capacity = dispatcher.capacity;
      dispatcher.dispose();
      const cvImp = cvSquared(g.importance), cvLoad = cvSquared(g.load);
      let auxLoss = cvImp.mul(this.wImportance).add(cvLoad.mul(this.wLoad));
      if (g.batchwiseLoss) auxLoss = auxLoss.add(g.batchwiseLoss.mul(this.wBatchwise));
      // The entropy sums over nonzero gates only: with top-k routing, over the k chosen ones.
      const fields = {
        gates: g.gates.detach(), indices: g.indices, importance: g.importance.detach(), load: g.load.detach(),
        cvImportance: cvImp.detach().sqrt(), cvLoad: cvLoad.detach().sqrt(), gateEntropy: gateEntropy(routes ? noGrad(() => gather(g.gates, 1, routes)) : g.gates),
        ...(g.batchwiseLoss ? { batchwiseLoss: g.batchwiseLoss.detach() } : {}),
      };
      // With the routing on the device, the counts come from tensors the caller owns, when
      // first read (a readback), capped at the capacity as the dispatcher's buffers are.
      const E = this.numExperts;
      const countOnRead = () => hostCounts(E, routes ? fields.indices : fields.gates, routes !== undefined).map((c) => Math.min(c, capacity));
      const stats: MoEStats = counts ? { ...fields, expertCounts: counts } : Object.assign(new ExpertCountsOnRead(countOnRead), fields);
      return { output: reshape(combined, [...x.shape.slice(0, -1), this.outputSize]), auxLoss, stats };
    });
  }

  /** Forward multiply-adds per example: gating matmuls plus k experts (the paper's ops/timestep). */
  multiplyAddsPerExample(): number {
    const gateMatmuls = this.gate instanceof NoisyTopKGating && this.gate.noisy ? 2 : 1;
    const gating = gateMatmuls * this.inputSize * this.numExperts;
    const experts = this.k * (this.inputSize * this.hiddenSize + this.hiddenSize * this.outputSize);
    return gating + experts;
  }
}
