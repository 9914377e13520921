// The Sparsely-Gated Mixture-of-Experts layer (Shazeer et al. 2017, eq. 1):
// y = Σᵢ G(x)ᵢ·Eᵢ(x), computing Eᵢ only on the examples routed to expert i. Applied to
// every row of a [..., d] input at once (the paper's "convolutional" batching over time).

import { backendInfo, getBackend, noGrad, tidy } from '../tensor/engine.js';
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
import { groupedExperts, groupsExperts } from './grouped-experts.js';
import { SparseDispatcher } from './sparse-dispatcher.js';
import { BatchwiseGating } from './batchwise.js';
import { checkLayerDType, NoisyTopKGating, SoftmaxGating, type GatingOutput } from './gating.js';
import { checkExpertKind, expertMultiplyAdds, SwiGLUExpert, type ExpertKind } from './swiglu-expert.js';
import { dropOverCapacity, expertCapacity } from './capacity.js';
import { routerZLoss } from './routers/router-z-loss.js';
import { SwitchGating, type RouterOutput } from './routers/switch.js';
import { GShardGating } from './routers/gshard.js';
import { HashGating } from './routers/hash.js';
import { ExpertChoiceGating } from './routers/expert-choice.js';
import { DeepSeekGating, type ScoreFunction } from './routers/deepseek.js';
import { zeros } from '../tensor/ops/creation.js';

/** The 2017 gates (noisy top-k, softmax, batchwise) and the routers after them (src/moe/routers/). */
export type GatingKind = 'noisy-topk' | 'softmax' | 'batchwise' | 'switch' | 'gshard' | 'hash' | 'expert-choice' | 'deepseek';
/** Every gating kind MoE accepts (the CLI's --gating, the lab's menu). */
export const GATING_KINDS: readonly GatingKind[] = ['noisy-topk', 'softmax', 'batchwise', 'switch', 'gshard', 'hash', 'expert-choice', 'deepseek'];

/**
 * Why a flat MoE layer of this gating (and capacity factor) reads values on the host in the
 * middle of its forward pass, or null: what a backend without synchronous readback (browser or
 * Node WebGPU) cannot run. The layer (MoE.hostRouting), the CLI and the lab all ask this.
 */
export function hostRoutingReason(gating: GatingKind, capacityFactor?: number | null): string | null {
  if (gating === 'expert-choice') return `gating 'expert-choice' chooses each expert's examples on the host`;
  if (gating === 'hash') return `gating 'hash' hashes the token ids on the host`;
  if (capacityFactor !== undefined && capacityFactor !== null) return `capacityFactor drops the routes over capacity on the host (gating '${gating}')`;
  return null;
}
/** Routers with no auxiliary loss: hash routing balances nothing, Expert Choice is balanced by construction, DeepSeek balances by its bias. */
const NO_AUX_LOSS: readonly GatingKind[] = ['hash', 'expert-choice', 'deepseek'];
/** Routers whose balancing is their own auxiliary loss (α·E·Σ fᵢPᵢ), not the 2017 CV² losses. */
const OWN_AUX_LOSS: readonly GatingKind[] = ['switch', 'gshard'];
/** Token-choice routers with a fixed k per example, to which capacityFactor applies. */
const TOKEN_CHOICE: readonly GatingKind[] = ['noisy-topk', 'switch', 'gshard', 'hash', 'deepseek'];
/** Routers that may leave a chosen route undispatched (gate 0): they route by the nonzero gates. */
const ROUTES_BY_GATES: readonly GatingKind[] = ['batchwise', 'gshard', 'expert-choice'];

export interface MoEOptions<K extends ExpertKind = ExpertKind> {
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
  /** The experts: 'mlp' (default, the paper's ReLU MLP) or 'swiglu' (Mixtral's w2(silu(w1·x) ⊙ w3·x)). */
  expert?: K;
  /**
   * Token-choice routers: each expert keeps at most ⌈capacityFactor·k·N/E⌉ routes, the rest
   * are dropped (src/moe/capacity.ts gives the order). Unset: nothing is dropped.
   */
  capacityFactor?: number;
  /** Weight of the router z-loss (ST-MoE) on the router's logits; 0 (default) = off, 1e-3 in the paper. */
  wZLoss?: number;
  /** α of the Switch/GShard balancing loss α·E·Σ fᵢ·Pᵢ (default 0.01). */
  auxLossWeight?: number;
  /** Switch: ε of the multiplicative router-input jitter U(1 − ε, 1 + ε) in training (default 0). */
  jitterNoise?: number;
  /** GShard: dispatch the second expert with probability min(1, 2·g₂) in training (default true). */
  randomRouting?: boolean;
  /** DeepSeek: always-on shared experts K_s (default 0), added to every example's output, ungated. */
  sharedExperts?: number;
  /** DeepSeek: affinities by 'sigmoid' (V3, default) or 'softmax'. */
  scoreFunction?: ScoreFunction;
  /** DeepSeek: γ of the loss-free bias update (default 0.001; 0 = off). */
  biasUpdateRate?: number;
  /**
   * DeepSeek: α of DeepSeek-V3's sequence-wise balance loss α·Σᵢ fᵢ·Pᵢ per sequence (the
   * second-last axis of x is the time axis; an [N, d] input is one sequence); 0 = off (default).
   */
  seqAuxLossWeight?: number;
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
  /** Routes dropped over capacity / all routes this step (0 without capacityFactor). */
  droppedFraction?: number;
  /** Per expert: dropped routes / routes that chose it. */
  droppedPerExpert?: number[];
  /** 0-d: mean over rows of logsumexp(router logits)² (ST-MoE), whether or not it is weighted into auxLoss. */
  routerZLoss?: Tensor;
  /** DeepSeek: [E] the selection bias used by this forward (before its update). */
  biases?: Tensor;
}

export interface MoEOutput {
  output: Tensor;
  /**
   * The balancing loss: wImportance·CV²(importance) + wLoad·CV²(load) (+ wBatchwise·L_batchwise)
   * for the 2017 gates; α·E·Σ fᵢPᵢ for Switch and GShard; 0 for hash and Expert Choice, and for
   * DeepSeek unless seqAuxLossWeight > 0; plus wZLoss·z-loss when wZLoss > 0.
   */
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
  /** Switch: [N, d] router-input jitter factors in place of drawing them. */
  jitter?: Tensor;
  /** GShard: [N] u ~ U(0, 1) of random routing in place of drawing it. */
  uniform?: Tensor;
  /** Hash routing: int32 token ids, one per row of x (shape x.shape without its last axis, or [N]). */
  tokenIds?: Tensor;
}


/** The expert class of an ExpertKind. */
export type ExpertOf<K extends ExpertKind> = K extends 'swiglu' ? SwiGLUExpert : Expert;

/** K: the expert kind ('mlp' unless options.expert says otherwise), which types `experts`. */
export class MoE<K extends ExpertKind = 'mlp'> extends Module {
  gate: NoisyTopKGating | SoftmaxGating | BatchwiseGating | SwitchGating | GShardGating | HashGating | ExpertChoiceGating | DeepSeekGating;
  experts: ExpertOf<K>[];
  /** DeepSeek's always-on shared experts, of the same kind as the others (state dict `shared_experts.{i}.*`); empty otherwise. */
  shared_experts: ExpertOf<K>[];
  readonly expert: K;
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
  readonly capacityFactor: number | undefined;
  wZLoss: number;
  auxLossWeight: number;
  /** DeepSeek's sequence-wise balance loss weight α (0 = off; other routers: 0). */
  seqAuxLossWeight: number;

  constructor(options: MoEOptions<K>) {
    super();
    this.inputSize = checkPositiveInt('MoE', 'inputSize', options.inputSize);
    this.outputSize = checkPositiveInt('MoE', 'outputSize', options.outputSize);
    this.hiddenSize = checkPositiveInt('MoE', 'hiddenSize', options.hiddenSize);
    this.numExperts = checkPositiveInt('MoE', 'numExperts', options.numExperts);
    this.gating = options.gating ?? 'noisy-topk';
    if (!GATING_KINDS.includes(this.gating)) throw new Error(`MoE: unknown gating '${String(this.gating)}' (expected ${GATING_KINDS.map((g) => `'${g}'`).join(', ')})`);
    if (this.gating === 'switch' && options.k !== undefined && options.k !== 1) throw new Error(`MoE: gating 'switch' routes each example to 1 expert, got k = ${options.k}`);
    if (this.gating === 'gshard' && options.k !== undefined && options.k !== 2) throw new Error(`MoE: gating 'gshard' routes each example to its top 2 experts, got k = ${options.k}`);
    if (this.gating === 'hash' && options.k !== undefined && options.k !== 1) throw new Error(`MoE: gating 'hash' sends each token to the 1 expert its id hashes to, got k = ${options.k}`);
    this.k = this.gating === 'softmax' ? this.numExperts : this.gating === 'switch' || this.gating === 'hash' ? 1 : this.gating === 'gshard' ? 2 : checkPositiveInt('MoE', 'k', options.k);
    if (this.k > this.numExperts) throw new Error(`MoE: k (${this.k}) cannot exceed numExperts (${this.numExperts})`);
    this.wImportance = options.wImportance ?? 0.1;
    this.wLoad = options.wLoad ?? 0.1;
    this.wBatchwise = options.wBatchwise ?? 1;
    this.dispatch = options.dispatch ?? 'auto';
    if (!['auto', 'sparse', 'device'].includes(this.dispatch)) throw new Error(`MoE: dispatch must be 'auto', 'sparse' or 'device', got '${String(this.dispatch)}'`);
    this.capacity = options.capacity === undefined ? undefined : checkPositiveInt('MoE', 'capacity', options.capacity);
    this.capacityFactor = options.capacityFactor;
    if (this.capacityFactor !== undefined) {
      if (!(typeof this.capacityFactor === 'number' && this.capacityFactor > 0 && Number.isFinite(this.capacityFactor))) throw new Error(`MoE: capacityFactor must be a positive number, got ${this.capacityFactor}`);
      if (!TOKEN_CHOICE.includes(this.gating) && this.gating !== 'expert-choice') throw new Error(`MoE: capacityFactor applies to token-choice routers (${TOKEN_CHOICE.join(', ')}) and expert-choice, not gating '${this.gating}'`);
      if (options.capacity !== undefined) throw new Error(`MoE: give capacityFactor or capacity, not both (capacityFactor sets the device buffers too)`);
    }
    this.wZLoss = options.wZLoss ?? 0;
    this.auxLossWeight = options.auxLossWeight ?? 0.01;
    this.seqAuxLossWeight = options.seqAuxLossWeight ?? 0;
    // A router's own option given to another router would be silently ignored: refuse it.
    const ownOptions: [keyof MoEOptions, readonly GatingKind[]][] = [
      ['auxLossWeight', OWN_AUX_LOSS], ['jitterNoise', ['switch']], ['randomRouting', ['gshard']],
      ['scoreFunction', ['deepseek']], ['biasUpdateRate', ['deepseek']], ['seqAuxLossWeight', ['deepseek']],
    ];
    for (const [name, kinds] of ownOptions) {
      if (options[name] !== undefined && !kinds.includes(this.gating)) throw new Error(`MoE: ${name} applies to gating ${kinds.map((g) => `'${g}'`).join(' or ')}, not '${this.gating}'`);
    }
    for (const [name, w] of [['wImportance', this.wImportance], ['wLoad', this.wLoad], ['wBatchwise', this.wBatchwise], ['wZLoss', this.wZLoss], ['auxLossWeight', this.auxLossWeight], ['seqAuxLossWeight', this.seqAuxLossWeight]] as const) {
      if (!(typeof w === 'number' && w >= 0 && Number.isFinite(w))) throw new Error(`MoE: ${name} must be a non-negative number, got ${w}`);
    }
    this.expert = checkExpertKind('MoE', options.expert) as K;
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
    } else if (this.gating === 'deepseek') {
      this.gate = new DeepSeekGating({
        ...common, k: this.k, scoreFunction: options.scoreFunction ?? 'sigmoid', biasUpdateRate: options.biasUpdateRate ?? 1e-3,
        sequenceAuxLoss: this.seqAuxLossWeight > 0,
        ...(options.generator ? { generator: options.generator } : {}),
      });
    } else if (this.gating === 'expert-choice') {
      // Expert Choice's capacity factor is its average experts per example: k by default.
      this.gate = new ExpertChoiceGating({ ...common, capacityFactor: this.capacityFactor ?? this.k, ...(options.generator ? { generator: options.generator } : {}) });
    } else if (this.gating === 'hash') {
      if (this.wZLoss > 0) throw new Error(`MoE: gating 'hash' has no router logits, so wZLoss must be 0, got ${this.wZLoss}`);
      this.gate = new HashGating({ numExperts: this.numExperts, dtype });
    } else if (this.gating === 'gshard') {
      this.gate = new GShardGating({ ...common, randomRouting: options.randomRouting ?? true, ...(options.generator ? { generator: options.generator } : {}) });
    } else {
      this.gate = new SwitchGating({ ...common, jitterNoise: options.jitterNoise ?? 0, ...(options.generator ? { generator: options.generator } : {}) });
    }
    const init = { dtype, ...(options.generator ? { generator: options.generator } : {}) };
    const Kind = this.expert === 'swiglu' ? SwiGLUExpert : Expert;
    this.experts = Array.from({ length: this.numExperts }, () => new Kind(this.inputSize, this.hiddenSize, this.outputSize, init) as ExpertOf<K>);
    const shared = options.sharedExperts ?? 0;
    if (!Number.isInteger(shared) || shared < 0) throw new Error(`MoE: sharedExperts must be a non-negative integer, got ${shared}`);
    if (shared > 0 && this.gating !== 'deepseek') throw new Error(`MoE: sharedExperts needs gating 'deepseek', got '${this.gating}'`);
    if (shared >= this.numExperts) throw new Error(`MoE: sharedExperts (${shared}) must be fewer than numExperts (${this.numExperts})`);
    this.shared_experts = Array.from({ length: shared }, () => new Kind(this.inputSize, this.hiddenSize, this.outputSize, init) as ExpertOf<K>);
  }

  /** x [..., inputSize] → {output [..., outputSize], auxLoss, stats}. */
  forward(x: Tensor, options: MoEForwardOptions = {}): MoEOutput {
    if (!(x instanceof Tensor) || x.rank < 1 || x.shape[x.rank - 1] !== this.inputSize) {
      throw new Error(`MoE: expected input [..., ${this.inputSize}], got ${x instanceof Tensor ? shapeToString(x.shape) : typeof x}`);
    }
    const first = this.experts[0] as Expert | SwiGLUExpert;
    checkLayerDType('MoE', x, (first instanceof SwiGLUExpert ? first.w1 : first.fc1).weight.dtype);
    const onHost = this.hostRouting();
    if (onHost !== null && getBackend().capabilities.syncReadback === false) {
      const info = backendInfo();
      throw new Error(`MoE: ${onHost} (a synchronous readback in the middle of the forward pass), which the ${info.name} backend in ${info.mode} mode does not offer (it reads back asynchronously only); run it on a backend with synchronous readback`);
    }
    // The backend may leave the experts' last product running while the balancing half of the
    // gate, the losses and the statistics are computed (Backend.overlapJobs).
    const backend = getBackend();
    const body = () => tidy(() => {
      const rows = reshape(x, [x.size / this.inputSize, this.inputSize]);
      const biases = this.gate instanceof DeepSeekGating ? this.gate.e_score_correction_bias.detach().clone() : undefined;
      // Noisy top-k: its routing now, its importance and load (balance) after the experts.
      const routed = this.gate instanceof NoisyTopKGating ? this.gate.route(rows, options.noise ? { noise: options.noise } : {}) : null;
      const early: (Omit<GatingOutput, 'importance' | 'load'> & Partial<GatingOutput> & { batchwiseLoss?: Tensor } & Partial<RouterOutput>) = routed !== null
        ? routed
        : this.gate instanceof SwitchGating ? this.gate.forward(rows, options.jitter ? { jitter: options.jitter } : {})
          : this.gate instanceof GShardGating ? this.gate.forward(rows, options.uniform ? { uniform: options.uniform } : {})
          : this.gate instanceof HashGating ? this.gate.forward(rows, options.tokenIds)
          // [..., T, d]: one group per time step (causal); [N, d]: one group.
          : this.gate instanceof ExpertChoiceGating ? this.gate.forward(rows, x.rank >= 3 ? x.shape[x.rank - 2]! : 1)
          // [..., T, d]: sequences of T consecutive rows (its sequence-wise loss); [N, d]: one sequence.
          : this.gate instanceof DeepSeekGating ? this.gate.forward(rows, x.rank >= 3 ? x.shape[x.rank - 2]! : rows.shape[0]!)
            : (this.gate as SoftmaxGating | BatchwiseGating).forward(rows);
      // Batchwise gating routes by its mask (a variable number of experts per example).
      let routes = ROUTES_BY_GATES.includes(this.gating) ? undefined : early.indices;
      let gates = early.gates, capacity = this.capacity, dropped = { fraction: 0, perExpert: new Array<number>(this.numExperts).fill(0) };
      if (this.capacityFactor !== undefined && this.gating !== 'expert-choice') {
        capacity = expertCapacity(this.capacityFactor, this.k, rows.shape[0]!, this.numExperts);
        const drop = dropOverCapacity(early.indices, this.numExperts, capacity, rows.dtype === 'float64' ? 'float64' : 'float32', early.gates);
        // A dropped route's gate becomes 0 (no output, no gradient through it); the dispatcher
        // then routes the nonzero gates, so an expert never holds more than `capacity` rows.
        gates = early.gates.mul(drop.keep);
        routes = undefined;
        dropped = { fraction: drop.droppedFraction, perExpert: drop.droppedPerExpert };
      }
      const dispatcher = makeDispatcher(this.numExperts, gates, { indices: routes, dispatch: this.dispatch, capacity });
      let combine: () => Tensor;
      if (dispatcher instanceof SparseDispatcher && groupsExperts()) {
        // All experts in one grouped product per layer (grouped-experts.ts), over the threads;
        // the combine after the balancing half, so that it runs beside the last product.
        const expertRows = groupedExperts(this.experts, dispatcher.dispatchRows(rows), dispatcher.partSizes());
        combine = () => dispatcher.combineRows(expertRows);
      } else {
        const inputs = dispatcher.dispatch(rows);
        // An expert with no examples sees a [0, d] input: no arithmetic, exact zero gradients.
        const outputs = inputs.map((input, e) => this.experts[e]!.forward(input));
        combine = () => dispatcher.combine(outputs);
      }
      const g: GatingOutput & { batchwiseLoss?: Tensor } & Partial<RouterOutput> = routed !== null
        ? { ...early, ...routed.balance() } : early as GatingOutput;
      const cvImp = cvSquared(g.importance), cvLoad = cvSquared(g.load);
      // Hash routing learns nothing and balances nothing: no auxiliary loss.
      let auxLoss = NO_AUX_LOSS.includes(this.gating) ? zeros([], { dtype: rows.dtype })
        : OWN_AUX_LOSS.includes(this.gating) ? g.routerAuxLoss!.mul(this.auxLossWeight)
          : cvImp.mul(this.wImportance).add(cvLoad.mul(this.wLoad));
      if (g.batchwiseLoss) auxLoss = auxLoss.add(g.batchwiseLoss.mul(this.wBatchwise));
      // DeepSeek-V3's optional sequence-wise balance loss (computed only when weighted).
      if (this.gating === 'deepseek' && this.seqAuxLossWeight > 0) auxLoss = auxLoss.add(g.routerAuxLoss!.mul(this.seqAuxLossWeight));
      // Reported for every router with logits; recorded for backward only when it is in the loss.
      const zLoss = this.gating === 'hash' ? null
        : this.wZLoss > 0 ? routerZLoss(g.cleanLogits) : noGrad(() => routerZLoss(g.cleanLogits));
      if (zLoss && this.wZLoss > 0) auxLoss = auxLoss.add(zLoss.mul(this.wZLoss));
      // The entropy sums over nonzero gates only: with top-k routing, over the k chosen ones.
      const fields = {
        gates: gates.detach(), indices: g.indices, importance: g.importance.detach(), load: g.load.detach(),
        cvImportance: cvImp.detach().sqrt(), cvLoad: cvLoad.detach().sqrt(), gateEntropy: gateEntropy(routes ? noGrad(() => gather(g.gates, 1, routes)) : g.gates),
        ...(g.batchwiseLoss ? { batchwiseLoss: g.batchwiseLoss.detach() } : {}),
        droppedFraction: dropped.fraction, droppedPerExpert: dropped.perExpert, ...(zLoss ? { routerZLoss: zLoss.detach() } : {}), ...(biases ? { biases } : {}),
      };
      let combined = combine();
      // DeepSeek's shared experts see every example, ungated (DeepSeekMoE eq. 9).
      for (const expert of this.shared_experts) combined = combined.add(expert.forward(rows));
      const counts = dispatcher.partSizesOnHost ? dispatcher.partSizes() : null, bufferRows = dispatcher.capacity;
      dispatcher.dispose();
      // With the routing on the device, the counts come from tensors the caller owns, when
      // first read (a readback), capped at the capacity as the dispatcher's buffers are.
      const E = this.numExperts;
      const countOnRead = () => hostCounts(E, routes ? fields.indices : fields.gates, routes !== undefined).map((c) => Math.min(c, bufferRows));
      const stats: MoEStats = counts ? { ...fields, expertCounts: counts } : Object.assign(new ExpertCountsOnRead(countOnRead), fields);
      return { output: reshape(combined, [...x.shape.slice(0, -1), this.outputSize]), auxLoss, stats };
    });
    return backend.overlapJobs ? backend.overlapJobs(body) : body();
  }

  /** Why this layer reads its routing on the host during forward, or null when it routes on the device. */
  hostRouting(): string | null {
    return hostRoutingReason(this.gating, this.capacityFactor);
  }

  /** Forward multiply-adds per example: gating matmuls plus k experts (the paper's ops/timestep). */
  multiplyAddsPerExample(): number {
    const gateMatmuls = this.gate instanceof NoisyTopKGating && this.gate.noisy ? 2 : 1;
    const gating = gateMatmuls * this.inputSize * this.numExperts;
    // Expert Choice: each example gets capacityFactor experts on average.
    const perExample = (this.gating === 'expert-choice' ? (this.capacityFactor ?? this.k) : this.k) + this.shared_experts.length;
    const experts = perExample * expertMultiplyAdds(this.expert, this.inputSize, this.hiddenSize, this.outputSize);
    return gating + experts;
  }
}
