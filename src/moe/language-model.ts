// The paper's language model (Shazeer et al. 2017, App. C.1), at any scale:
//   h0 = drop(Emb(w))
//   h1 = h0 + drop(LSTM₁(h0))
//   h2 = h1 + drop(sigmoid(MoE(h1)))      the MoE runs once over every time step of the batch
//   h3 = h2 + drop(LSTM₂(h2))
//   logits = Linear(h3)
// and DenseLanguageModel, the same stack with a dense feed-forward block of hidden size
// k × expert hidden in place of the MoE: the compute-matched baseline (the paper's MoE-1-Wide).
// RecurrentMoELanguageModel puts a recurrent MoE (§3.1, recurrent.ts) where the MoE is:
//   h2 = h1 + drop(sigmoid(RecurrentMoE(h1)))   a d → d LSTM whose weights are k of E experts
// Every model takes `checkpointEvery`: its recurrent layers then run in checkpointed
// segments of that many steps (activations recomputed in backward).

import { dropout } from '../tensor/ops/functional.js';
import { tidy } from '../tensor/engine.js';
import { zeros } from '../tensor/ops/creation.js';
import { shapeToString } from '../core/shape.js';
import { Tensor } from '../tensor/tensor.js';
import type { DType } from '../core/dtype.js';
import type { Generator } from '../tensor/ops/creation.js';
import { Embedding, Linear } from '../nn/linear.js';
import { LSTM, type LSTMState } from '../nn/lstm.js';
import { checkDType, checkPositiveInt, Module } from '../nn/module.js';
import { HierarchicalMoE, type HierarchicalNoise } from './hierarchical.js';
import { Expert } from './expert.js';
import { MoE, type GatingKind, type MoEOptions, type MoEStats } from './moe.js';
import { RecurrentMoE } from './recurrent.js';
import { checkExpertKind, expertMultiplyAdds, SwiGLUExpert, swigluHidden, type ExpertKind } from './swiglu-expert.js';

export interface LanguageModelOptions {
  vocabSize: number;
  /** d: embedding size = LSTM units = MoE input and output size (512 in the paper). */
  modelSize: number;
  /** Hidden size of one expert (1024 in the paper). */
  expertHidden: number;
  /** Experts per example (k). */
  k: number;
  /**
   * 'mlp' (default) or 'swiglu'. Compute-matched: a SwiGLU expert gets hidden size
   * round(2/3 · expertHidden), the multiply-adds and weights of the MLP expert it replaces.
   */
  expert?: ExpertKind;
  /** Dropout after every layer but the softmax (DropProb). */
  dropout?: number;
  /** Run the recurrent layers in checkpointed segments of this many steps (recomputed in backward). */
  checkpointEvery?: number;
  dtype?: DType;
  generator?: Generator;
}

export interface MoELanguageModelOptions extends LanguageModelOptions {
  numExperts: number;
  gating?: GatingKind;
  noisyGating?: boolean;
  wImportance?: number;
  wLoad?: number;
  /** Use a hierarchical MoE with this many groups (numExperts must be divisible by it). */
  hierarchicalGroups?: number;
  /** Hierarchical only: groups per token (default 2, at most the number of groups); k / kPrimary experts are chosen in each. */
  kPrimary?: number;
  /** The router options of MoEOptions (capacity and dropping, z-loss, α, jitter), passed to the MoE as given. */
  router?: Pick<MoEOptions, 'capacityFactor' | 'wZLoss' | 'auxLossWeight' | 'jitterNoise' | 'sharedExperts' | 'scoreFunction' | 'biasUpdateRate' | 'seqAuxLossWeight'>;
}

export interface LMState { lstm1: LSTMState; lstm2: LSTMState }

export interface LMOutput {
  /** [B, T, vocab] */
  logits: Tensor;
  /** The MoE's balancing loss (0 for the dense model); add it to the task loss. */
  auxLoss: Tensor;
  /** The MoE's routing statistics over the B·T positions (null for the dense model). */
  stats: MoEStats | null;
  /** The LSTMs' final states, to carry into the next segment (truncated BPTT). */
  state: LMState;
}

export interface OpsPerToken {
  lstm: number;
  mixture: number;
  softmax: number;
  /** The paper's ops/timestep: forward multiply-adds per token excluding the softmax. */
  excludingSoftmax: number;
  total: number;
  /**
   * Floating-point operations per token of one training step, counted as the paper counts
   * its TFLOPS (§5.1): forward and backward, the softmax included, a multiply-add as 2 FLOPs,
   * and the backward pass as twice the forward (a matmul's gradient is two matmuls of its
   * size): 2 · 3 · total. Elementwise ops, the embedding lookup and the balancing losses are
   * not counted (O(d) per token against O(d²)). Achieved GFLOP/s = this × tokens/s / 10⁹.
   */
  trainingFlops: number;
}


/** Shared stack; subclasses provide the middle block. */
abstract class StackedLSTMModel extends Module {
  embedding: Embedding;
  lstm1: LSTM;
  lstm2: LSTM;
  softmax: Linear;
  readonly vocabSize: number;
  readonly modelSize: number;
  readonly dropoutProb: number;
  readonly checkpointEvery: number | undefined;

  constructor(op: string, options: LanguageModelOptions) {
    super();
    this.vocabSize = checkPositiveInt(op, 'vocabSize', options.vocabSize);
    this.modelSize = checkPositiveInt(op, 'modelSize', options.modelSize);
    checkPositiveInt(op, 'expertHidden', options.expertHidden);
    checkPositiveInt(op, 'k', options.k);
    this.dropoutProb = options.dropout ?? 0;
    this.checkpointEvery = options.checkpointEvery === undefined ? undefined : checkPositiveInt(op, 'checkpointEvery', options.checkpointEvery);
    if (!(this.dropoutProb >= 0 && this.dropoutProb < 1)) throw new Error(`${op}: dropout must be in [0, 1), got ${this.dropoutProb}`);
    const init = { dtype: checkDType(op, options.dtype), ...(options.generator ? { generator: options.generator } : {}) };
    const d = this.modelSize;
    this.embedding = new Embedding(this.vocabSize, d, init);
    this.lstm1 = new LSTM({ inputSize: d, hiddenSize: d, batchFirst: true, ...init });
    this.lstm2 = new LSTM({ inputSize: d, hiddenSize: d, batchFirst: true, ...init });
    this.softmax = new Linear(d, this.vocabSize, init);
  }

  protected abstract middle(h: Tensor, noise: unknown, ids: Tensor): { output: Tensor; auxLoss: Tensor; stats: MoEStats | null };
  protected abstract middleOps(): number;

  private drop(x: Tensor): Tensor {
    return this.dropoutProb > 0 ? dropout(x, this.dropoutProb, this.training) : x;
  }

  /** ids [B, T] int32 → logits [B, T, vocab], the balancing loss, routing stats and the LSTM states. */
  protected run(ids: Tensor, options: { state?: LMState; noise?: unknown }): LMOutput {
    if (!(ids instanceof Tensor) || ids.dtype !== 'int32' || ids.rank !== 2) {
      throw new Error(`${this.constructor.name}: expected int32 token ids [batch, time], got ${ids instanceof Tensor ? `${ids.dtype} ${shapeToString(ids.shape)}` : typeof ids}`);
    }
    return tidy(() => {
      const h0 = this.drop(this.embedding.forward(ids));
      const every = this.checkpointEvery === undefined ? {} : { checkpointEvery: this.checkpointEvery };
      const r1 = this.lstm1.forward(h0, options.state?.lstm1 ? toLayers(options.state.lstm1) : undefined, every);
      const h1 = h0.add(this.drop(r1.output));
      const mid = this.middle(h1, options.noise, ids);
      const h2 = h1.add(this.drop(mid.output.sigmoid()));
      const r2 = this.lstm2.forward(h2, options.state?.lstm2 ? toLayers(options.state.lstm2) : undefined, every);
      const h3 = h2.add(this.drop(r2.output));
      return {
        logits: this.softmax.forward(h3), auxLoss: mid.auxLoss, stats: mid.stats,
        state: { lstm1: fromLayers(r1), lstm2: fromLayers(r2) },
      };
    });
  }

  /** Forward multiply-adds per token (the paper's ops/timestep is `excludingSoftmax`). */
  opsPerToken(): OpsPerToken {
    const d = this.modelSize;
    const lstm = 2 * 4 * (d + d) * d;
    const mixture = this.middleOps();
    const softmax = d * this.vocabSize;
    const total = lstm + mixture + softmax;
    return { lstm, mixture, softmax, excludingSoftmax: lstm + mixture, total, trainingFlops: 2 * 3 * total };
  }
}

// The LSTMs keep [1, B, H] states; the model exposes [B, H] ones.
const toLayers = (s: LSTMState): LSTMState => ({ h: s.h.unsqueeze(0), c: s.c.unsqueeze(0) });
const fromLayers = (r: { h: Tensor; c: Tensor }): LSTMState => ({ h: r.h.squeeze(0), c: r.c.squeeze(0) });

export class MoELanguageModel extends StackedLSTMModel {
  moe: MoE<ExpertKind> | HierarchicalMoE;
  constructor(options: MoELanguageModelOptions) {
    super('MoELanguageModel', options);
    const d = this.modelSize;
    const expert = checkExpertKind('MoELanguageModel', options.expert);
    const common = {
      inputSize: d, outputSize: d, hiddenSize: expert === 'swiglu' ? swigluHidden(options.expertHidden) : options.expertHidden,
      noisyGating: options.noisyGating ?? true, wImportance: options.wImportance ?? 0.1, wLoad: options.wLoad ?? 0.1,
      dtype: checkDType('MoELanguageModel', options.dtype), ...(options.generator ? { generator: options.generator } : {}),
    };
    const groups = options.hierarchicalGroups;
    if (groups !== undefined) {
      checkPositiveInt('MoELanguageModel', 'hierarchicalGroups', groups);
      if (expert !== 'mlp') throw new Error(`MoELanguageModel: the hierarchical MoE has MLP experts only; expert '${expert}' needs a flat MoE (no hierarchicalGroups)`);
      if (options.numExperts % groups !== 0) {
        throw new Error(`MoELanguageModel: numExperts (${options.numExperts}) must be divisible by hierarchicalGroups (${groups})`);
      }
      // k experts per token in all, kPrimary groups × kSecondary experts; App. C uses 2 × 2.
      const kPrimary = options.kPrimary ?? Math.min(2, groups, options.k);
      const kSecondary = options.k / kPrimary;
      if (!Number.isInteger(kSecondary)) {
        throw new Error(`MoELanguageModel: k (${options.k}) must be a multiple of kPrimary (${kPrimary}) for a hierarchical MoE`);
      }
      this.moe = new HierarchicalMoE({ ...common, numGroups: groups, expertsPerGroup: options.numExperts / groups, kPrimary, kSecondary });
    } else {
      this.moe = new MoE<ExpertKind>({ ...common, ...options.router, numExperts: options.numExperts, k: options.k, gating: options.gating ?? 'noisy-topk', expert });
    }
  }

  forward(ids: Tensor, options: { state?: LMState; noise?: Tensor | HierarchicalNoise } = {}): LMOutput {
    return this.run(ids, options);
  }

  protected middle(h: Tensor, noise: unknown, ids: Tensor): { output: Tensor; auxLoss: Tensor; stats: MoEStats } {
    if (this.moe instanceof HierarchicalMoE) {
      return this.moe.forward(h, noise ? { noise: noise as HierarchicalNoise } : {});
    }
    // Hash routing reads the input token at each position (the MoE sees h1 of the same position).
    if (this.moe.gating === 'hash') return this.moe.forward(h, { tokenIds: ids });
    return this.moe.forward(h, noise ? { noise: noise as Tensor } : {});
  }

  protected middleOps(): number { return this.moe.multiplyAddsPerExample(); }
}

export interface RecurrentMoELanguageModelOptions extends LanguageModelOptions {
  numExperts: number;
  noisyGating?: boolean;
  wImportance?: number;
  wLoad?: number;
}

/**
 * The paper's stack with a recurrent MoE (§3.1) in the MoE's place: an LSTM of size d whose
 * weights are a mixture of E expert weight sets, k per example and step. Its multiply-adds
 * per token are k·4d·2d (plus the gate), so the compute-matched dense model is
 * DenseLanguageModel with expertHidden = 4d (k·expertHidden·2d); `mixtape compare` uses that.
 */
export class RecurrentMoELanguageModel extends StackedLSTMModel {
  rmoe: RecurrentMoE;
  constructor(options: RecurrentMoELanguageModelOptions) {
    super('RecurrentMoELanguageModel', options);
    this.rmoe = new RecurrentMoE({
      inputSize: this.modelSize, hiddenSize: this.modelSize, numExperts: options.numExperts, k: options.k, batchFirst: true,
      noisyGating: options.noisyGating ?? true, wImportance: options.wImportance ?? 0.1, wLoad: options.wLoad ?? 0.1,
      dtype: checkDType('RecurrentMoELanguageModel', options.dtype), ...(options.generator ? { generator: options.generator } : {}),
    });
  }

  forward(ids: Tensor, options: { state?: LMState } = {}): LMOutput { return this.run(ids, options); }

  protected middle(h: Tensor): { output: Tensor; auxLoss: Tensor; stats: MoEStats } {
    const r = this.rmoe.forward(h, undefined, this.checkpointEvery === undefined ? {} : { checkpointEvery: this.checkpointEvery });
    return { output: r.output, auxLoss: r.auxLoss, stats: r.stats };
  }

  protected middleOps(): number { return this.rmoe.multiplyAddsPerExample(); }
}

export class DenseLanguageModel extends StackedLSTMModel {
  /**
   * The compute-matched feed-forward block: d → k·expertHidden → d (an Expert of that width),
   * or with expert 'swiglu' a SwiGLU block of hidden size round(2/3 · k·expertHidden).
   */
  ffn: Expert | SwiGLUExpert;
  readonly expert: ExpertKind;
  constructor(options: LanguageModelOptions) {
    super('DenseLanguageModel', options);
    const init = { dtype: checkDType('DenseLanguageModel', options.dtype), ...(options.generator ? { generator: options.generator } : {}) };
    this.expert = checkExpertKind('DenseLanguageModel', options.expert);
    const hidden = options.k * options.expertHidden;
    this.ffn = this.expert === 'swiglu'
      ? new SwiGLUExpert(this.modelSize, swigluHidden(hidden), this.modelSize, init)
      : new Expert(this.modelSize, hidden, this.modelSize, init);
  }

  forward(ids: Tensor, options: { state?: LMState } = {}): LMOutput { return this.run(ids, options); }

  protected middle(h: Tensor): { output: Tensor; auxLoss: Tensor; stats: null } {
    return { output: this.ffn.forward(h), auxLoss: zeros([], { dtype: h.dtype }), stats: null };
  }

  protected middleOps(): number {
    const d = this.modelSize, hidden = this.ffn instanceof SwiGLUExpert ? this.ffn.w1.outFeatures : this.ffn.fc1.outFeatures;
    return expertMultiplyAdds(this.expert, d, hidden, d);
  }
}
