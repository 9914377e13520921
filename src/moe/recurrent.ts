// A recurrent MoE (Shazeer et al. 2017, §3.1): an LSTM whose weight matrices are replaced
// by a mixture of experts. At every step each example's gate (noisy top-k over [x_t, h_{t-1}])
// picks k experts; expert e holds a full set of LSTM weights (PyTorch's names and layout:
// weight_ih [4H, I], weight_hh [4H, H], bias_ih, bias_hh [4H]), so the input and the
// recurrent projections are both MoE layers routed by the same gate:
//
//   z = Σ_e G(x_t, h_{t-1})_e · (W_ih^e x_t + b_ih^e + W_hh^e h_{t-1} + b_hh^e)
//   (i, f, g, o) = split(z);  c_t = σ(f) ⊙ c_{t-1} + σ(i) ⊙ tanh(g);  h_t = σ(o) ⊙ tanh(c_t)
//
// With one expert and k = 1 this is nn.LSTMCell with that expert's weights.
//
// The paper's point: such an MoE cannot batch all time steps into one call ("convolutional"
// batching), because step t's input depends on step t−1's output; the batch per call is
// just B examples. A larger B needs the memory of stored activations, which recomputation
// frees: RecurrentMoE.forward takes `checkpointEvery` (autograd's checkpoint()).

import { noGrad, tidy } from '../tensor/engine.js';
import { zeros, type Generator } from '../tensor/ops/creation.js';
import { gather } from '../tensor/ops/indexing.js';
import { matmul } from '../tensor/ops/linalg.js';
import { concat, reshape, slice, stack } from '../tensor/ops/movement.js';
import { shapeToString } from '../core/shape.js';
import type { DType } from '../core/dtype.js';
import { Tensor } from '../tensor/tensor.js';
import { checkpoint } from '../autograd/checkpoint.js';
import { uniform } from '../nn/init.js';
import type { LSTMState } from '../nn/lstm.js';
import { composedLstmCell } from '../tensor/ops/fused.js';
import { checkDType, checkPositiveInt, Module, parameter } from '../nn/module.js';
import { cvSquared, gateEntropy } from './balancing.js';
import { ExpertCountsOnRead } from './counts-on-read.js';
import { makeDispatcher } from './dispatcher.js';
import { NoisyTopKGating } from './gating.js';
import type { MoEStats } from './moe.js';

/** One expert: the four LSTM weight tensors of nn.LSTMCell, initialized U(±1/√H) as PyTorch does. */
export class RecurrentExpert extends Module {
  weight_ih: Tensor;
  weight_hh: Tensor;
  bias_ih: Tensor;
  bias_hh: Tensor;
  constructor(inputSize: number, hiddenSize: number, options: { dtype?: DType; generator?: Generator } = {}) {
    super();
    const init = { dtype: options.dtype ?? 'float32', ...(options.generator ? { generator: options.generator } : {}) };
    const bound = 1 / Math.sqrt(hiddenSize);
    this.weight_ih = parameter(uniform([4 * hiddenSize, inputSize], bound, init));
    this.weight_hh = parameter(uniform([4 * hiddenSize, hiddenSize], bound, init));
    this.bias_ih = parameter(uniform([4 * hiddenSize], bound, init));
    this.bias_hh = parameter(uniform([4 * hiddenSize], bound, init));
  }

  /** Gate pre-activations [n, 4H] of the examples routed here, summed in nn.LSTMCell's order. */
  forward(x: Tensor, h: Tensor): Tensor {
    return tidy(() => matmul(x, this.weight_ih, { transposeB: true }).add(this.bias_ih.add(this.bias_hh))
      .add(matmul(h, this.weight_hh, { transposeB: true })));
  }
}

export interface RecurrentMoEOptions {
  inputSize: number;
  hiddenSize: number;
  numExperts: number;
  k: number;
  noisyGating?: boolean;
  noiseEpsilon?: number;
  /** Weight of CV²(importance) (eq. 7), per step. */
  wImportance?: number;
  /** Weight of CV²(load) (eq. 11), per step. */
  wLoad?: number;
  dtype?: DType;
  generator?: Generator;
}

export interface RecurrentMoEStepOutput extends LSTMState {
  /** This step's balancing loss: wImportance·CV²(importance) + wLoad·CV²(load) over the B examples. */
  auxLoss: Tensor;
  /** The step's routing (gates [B, E], indices [B, k], ...), as MoE reports it. */
  stats: MoEStats;
}

/** An LSTM cell whose projections are a mixture of LSTM weight sets, routed per example. */
export class RecurrentMoECell extends Module {
  gate: NoisyTopKGating;
  experts: RecurrentExpert[];
  readonly inputSize: number;
  readonly hiddenSize: number;
  readonly numExperts: number;
  readonly k: number;
  wImportance: number;
  wLoad: number;

  constructor(options: RecurrentMoEOptions) {
    super();
    this.inputSize = checkPositiveInt('RecurrentMoECell', 'inputSize', options.inputSize);
    this.hiddenSize = checkPositiveInt('RecurrentMoECell', 'hiddenSize', options.hiddenSize);
    this.numExperts = checkPositiveInt('RecurrentMoECell', 'numExperts', options.numExperts);
    this.k = checkPositiveInt('RecurrentMoECell', 'k', options.k);
    if (this.k > this.numExperts) throw new Error(`RecurrentMoECell: k (${this.k}) cannot exceed numExperts (${this.numExperts})`);
    this.wImportance = options.wImportance ?? 0.1;
    this.wLoad = options.wLoad ?? 0.1;
    for (const [name, w] of [['wImportance', this.wImportance], ['wLoad', this.wLoad]] as const) {
      if (!(typeof w === 'number' && w >= 0 && Number.isFinite(w))) throw new Error(`RecurrentMoECell: ${name} must be a non-negative number, got ${w}`);
    }
    const dtype = checkDType('RecurrentMoECell', options.dtype);
    const generator = options.generator ? { generator: options.generator } : {};
    this.gate = new NoisyTopKGating({
      inputSize: this.inputSize + this.hiddenSize, numExperts: this.numExperts, k: this.k, dtype,
      noisy: options.noisyGating ?? true, noiseEpsilon: options.noiseEpsilon ?? 1e-2, ...generator,
    });
    this.experts = Array.from({ length: this.numExperts }, () => new RecurrentExpert(this.inputSize, this.hiddenSize, { dtype, ...generator }));
  }

  /** x [B, I] and optional {h, c} [B, H] (zeros by default) → the next {h, c}, the step's balancing loss and routing. */
  forward(x: Tensor, state?: LSTMState, options: { noise?: Tensor } = {}): RecurrentMoEStepOutput {
    if (!(x instanceof Tensor) || x.rank !== 2 || x.shape[1] !== this.inputSize) {
      throw new Error(`RecurrentMoECell: expected input [batch, ${this.inputSize}], got ${x instanceof Tensor ? shapeToString(x.shape) : typeof x}`);
    }
    const B = x.shape[0]!, H = this.hiddenSize;
    for (const key of ['h', 'c'] as const) {
      const t = state?.[key];
      if (state !== undefined && (!(t instanceof Tensor) || t.rank !== 2 || t.shape[0] !== B || t.shape[1] !== H)) {
        throw new Error(`RecurrentMoECell: state ${key} must have shape [${B}, ${H}], got ${t instanceof Tensor ? shapeToString(t.shape) : String(t)}`);
      }
    }
    return tidy(() => {
      const h = state?.h ?? zeros([B, H], { dtype: x.dtype });
      const c = state?.c ?? zeros([B, H], { dtype: x.dtype });
      const g = this.gate.forward(concat([x, h], 1), options.noise ? { noise: options.noise } : {});
      const dispatcher = makeDispatcher(this.numExperts, g.gates, { indices: g.indices });
      const xs = dispatcher.dispatch(x), hs = dispatcher.dispatch(h);
      const z = dispatcher.combine(this.experts.map((expert, e) => expert.forward(xs[e]!, hs[e]!)));
      const counts = dispatcher.partSizesOnHost ? dispatcher.partSizes() : null;
      dispatcher.dispose();
      // Composed, not the fused kernel: each step's h fans out to the gate, the experts and
      // the output, and only the composed graph's walk sums those gradients in the same
      // order with and without checkpointed segments (bit-equal gradients, tested).
      const next = composedLstmCell(z, c);
      const cvImp = cvSquared(g.importance), cvLoad = cvSquared(g.load);
      const fields = {
        gates: g.gates.detach(), indices: g.indices, importance: g.importance.detach(), load: g.load.detach(),
        cvImportance: cvImp.detach().sqrt(), cvLoad: cvLoad.detach().sqrt(),
        gateEntropy: gateEntropy(noGrad(() => gather(g.gates, 1, g.indices))),
      };
      // With device dispatch the host does not know the counts: counted from the indices when
      // first read (a readback), as MoE does.
      const E = this.numExperts;
      const stats: MoEStats = counts ? { ...fields, expertCounts: counts } : Object.assign(new ExpertCountsOnRead(() => countIndices(fields.indices, E)), fields);
      return { ...next, auxLoss: cvImp.mul(this.wImportance).add(cvLoad.mul(this.wLoad)), stats };
    });
  }

  /** Forward multiply-adds per example and step: the gate's matmuls plus k experts' projections. */
  multiplyAddsPerExample(): number {
    const d = this.inputSize + this.hiddenSize;
    return (this.gate.noisy ? 2 : 1) * d * this.numExperts + this.k * 4 * this.hiddenSize * d;
  }
}

/** Examples per expert, counted from the chosen indices (a readback). */
function countIndices(indices: Tensor, E: number): number[] {
  const n = new Array<number>(E).fill(0);
  for (const e of indices.dataSync()) n[e]!++;
  return n;
}

/** The host's counts, when it has them without a readback (sparse dispatch). */
function hostCounts(stats: MoEStats): number[] | null {
  const own = Object.getOwnPropertyDescriptor(stats, 'expertCounts');
  return own && 'value' in own ? (own.value as number[]) : null;
}

export interface RecurrentMoEOutput {
  /** [B, T, H] with batchFirst, else [T, B, H]. */
  output: Tensor;
  h: Tensor;
  c: Tensor;
  /** The mean over steps of each step's balancing loss. */
  auxLoss: Tensor;
  /**
   * Routing over all B·T positions, rows in [B, T] order (as the feed-forward MoE of the
   * language model reports them): gates, indices, importance and load summed over steps,
   * their CVs over the whole sequence, the mean gate entropy per step.
   */
  stats: MoEStats;
}

/** The recurrent MoE over a sequence (one layer), optionally in checkpointed segments. */
export class RecurrentMoE extends Module {
  cell: RecurrentMoECell;
  readonly batchFirst: boolean;
  constructor(options: RecurrentMoEOptions & { batchFirst?: boolean }) {
    super();
    const { batchFirst, ...cell } = options;
    this.cell = new RecurrentMoECell(cell);
    this.batchFirst = batchFirst ?? false;
  }

  /**
   * x [T, B, I] (or [B, T, I] with batchFirst), optional {h, c} [B, H]. `checkpointEvery: N`
   * runs the steps in checkpointed segments of N: backward recomputes each segment (gating
   * noise replayed exactly) instead of keeping its activations.
   */
  forward(x: Tensor, state?: LSTMState, options: { checkpointEvery?: number } = {}): RecurrentMoEOutput {
    const cell = this.cell;
    if (!(x instanceof Tensor) || x.rank !== 3 || x.shape[2] !== cell.inputSize) {
      throw new Error(`RecurrentMoE: expected input ${this.batchFirst ? '[batch, time, ' : '[time, batch, '}${cell.inputSize}], got ${x instanceof Tensor ? shapeToString(x.shape) : typeof x}`);
    }
    const every = options.checkpointEvery;
    if (every !== undefined) checkPositiveInt('RecurrentMoE', 'checkpointEvery', every);
    const [T, B] = this.batchFirst ? [x.shape[1]!, x.shape[0]!] : [x.shape[0]!, x.shape[1]!];
    if (T === 0) throw new Error('RecurrentMoE: the sequence is empty (0 time steps)');
    return tidy(() => {
      const input = this.batchFirst ? x.transpose(0, 1) : x;
      const I = cell.inputSize, H = cell.hiddenSize;
      let h = state?.h ?? zeros([B, H], { dtype: x.dtype }), c = state?.c ?? zeros([B, H], { dtype: x.dtype });
      const segments: Segment[] = [];
      for (let start = 0; start < T; start += every ?? T) {
        const xs = slice(input, [start, 0, 0], [Math.min(every ?? T, T - start), B, I]);
        const seg = every === undefined || every >= T
          ? runSegment(cell, h, c, xs)
          : checkpoint((h0: Tensor, c0: Tensor, s: Tensor) => runSegment(cell, h0, c0, s), h, c, xs);
        segments.push(seg);
        ({ h, c } = seg);
      }
      const output = concat(segments.map((s) => s.output), 0); // [T, B, H]
      const auxLoss = segments.map((s) => s.auxLoss).reduce((a, b) => a.add(b)).div(T);
      return { output: this.batchFirst ? output.transpose(0, 1) : output, h, c, auxLoss, stats: sequenceStats(segments, cell.numExperts) };
    });
  }

  multiplyAddsPerExample(): number { return this.cell.multiplyAddsPerExample(); }
}

/** What one run of consecutive steps gives: tensors only (checkpoint returns it through). */
interface Segment {
  h: Tensor; c: Tensor; output: Tensor; auxLoss: Tensor;
  /** [L, B, E], [L, B, k] */
  gates: Tensor; indices: Tensor;
  importance: Tensor; load: Tensor; entropy: Tensor;
  /** Examples per expert, when known on the host. */
  counts: number[] | null;
}

function runSegment(cell: RecurrentMoECell, h: Tensor, c: Tensor, xs: Tensor): Segment {
  const L = xs.shape[0]!, B = xs.shape[1]!;
  const steps: RecurrentMoEStepOutput[] = [];
  let state: LSTMState = { h, c };
  for (let t = 0; t < L; t++) {
    const out = cell.forward(reshape(slice(xs, [t, 0, 0], [1, B, xs.shape[2]!]), [B, xs.shape[2]!]), state);
    steps.push(out);
    state = out;
  }
  const sum = (ts: Tensor[]) => ts.reduce((a, b) => a.add(b));
  return {
    h: state.h, c: state.c, output: stack(steps.map((s) => s.h), 0), auxLoss: sum(steps.map((s) => s.auxLoss)),
    gates: stack(steps.map((s) => s.stats.gates), 0), indices: stack(steps.map((s) => s.stats.indices), 0),
    importance: sum(steps.map((s) => s.stats.importance)), load: sum(steps.map((s) => s.stats.load)),
    entropy: sum(steps.map((s) => s.stats.gateEntropy)),
    counts: steps.map((s) => hostCounts(s.stats)).reduce((a, b) => (a && b ? a.map((v, e) => v + b[e]!) : null)),
  };
}

function sequenceStats(segments: readonly Segment[], E: number): MoEStats {
  return noGrad(() => {
    const T = segments.reduce((n, s) => n + s.gates.shape[0]!, 0);
    const rows = (t: Tensor) => { // [T, B, m] → [B·T, m], rows in [B, T] order
      const m = t.shape[2]!;
      return reshape(t.transpose(0, 1), [t.shape[0]! * t.shape[1]!, m]);
    };
    const importance = segments.map((s) => s.importance).reduce((a, b) => a.add(b));
    const load = segments.map((s) => s.load).reduce((a, b) => a.add(b));
    const counts = segments.map((s) => s.counts).reduce<number[] | null>((a, b) => (a && b ? a.map((v, e) => v + b[e]!) : null), new Array<number>(E).fill(0));
    const fields = {
      gates: rows(concat(segments.map((s) => s.gates), 0)), indices: rows(concat(segments.map((s) => s.indices), 0)),
      importance, load, cvImportance: cvSquared(importance).sqrt(), cvLoad: cvSquared(load).sqrt(),
      gateEntropy: segments.map((s) => s.entropy).reduce((a, b) => a.add(b)).div(T),
    };
    return counts ? { ...fields, expertCounts: counts } : Object.assign(new ExpertCountsOnRead(() => countIndices(fields.indices, E)), fields);
  });
}
