// LSTMCell and LSTM, equal to PyTorch's: gate order (i, f, g, o), parameters
// weight_ih_l{n} [4H, I], weight_hh_l{n} [4H, H], bias_ih_l{n}, bias_hh_l{n} [4H], all
// initialized U(±1/√H); forward returns {output, h, c} with h, c shaped [numLayers, B, H].
//
//   i = σ(W_ii x + b_ii + W_hi h + b_hi)      f = σ(W_if x + b_if + W_hf h + b_hf)
//   g = tanh(W_ig x + b_ig + W_hg h + b_hg)   o = σ(W_io x + b_io + W_ho h + b_ho)
//   c' = f ⊙ c + i ⊙ g                        h' = o ⊙ tanh(c')

import { dropout } from '../tensor/ops/functional.js';
import { lstmCell, lstmSequence } from '../tensor/ops/fused.js';
import { matmul } from '../tensor/ops/linalg.js';
import { concat, reshape, slice, stack } from '../tensor/ops/movement.js';
import { zeros } from '../tensor/ops/creation.js';
import { tidy } from '../tensor/engine.js';
import { checkpoint } from '../autograd/checkpoint.js';
import { shapeToString } from '../core/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { uniform, type InitOptions } from './init.js';
import { checkDType, checkPositiveInt, Module, parameter } from './module.js';

export interface LSTMState { h: Tensor; c: Tensor }

/**
 * The LSTM update from the gate pre-activations z = (i, f, g, o) [B, 4H] and the cell state c:
 * one fused kernel where the backend has it (the CPU), else the same math in core ops.
 */
export function lstmUpdate(z: Tensor, c: Tensor): LSTMState {
  return lstmCell(z, c);
}

/** One LSTM step from precomputed input projections xw = x·W_ihᵀ + b_ih + b_hh. */
function step(xw: Tensor, h: Tensor, c: Tensor, weightHH: Tensor): LSTMState {
  return lstmUpdate(xw.add(matmul(h, weightHH, { transposeB: true })), c);
}

export class LSTMCell extends Module {
  weight_ih: Tensor;
  weight_hh: Tensor;
  bias_ih: Tensor | null;
  bias_hh: Tensor | null;
  constructor(readonly inputSize: number, readonly hiddenSize: number, options: { bias?: boolean } & InitOptions = {}) {
    super();
    checkPositiveInt('LSTMCell', 'inputSize', inputSize);
    checkPositiveInt('LSTMCell', 'hiddenSize', hiddenSize);
    const init = { dtype: checkDType('LSTMCell', options.dtype), ...(options.generator ? { generator: options.generator } : {}) };
    const bound = 1 / Math.sqrt(hiddenSize);
    this.weight_ih = parameter(uniform([4 * hiddenSize, inputSize], bound, init));
    this.weight_hh = parameter(uniform([4 * hiddenSize, hiddenSize], bound, init));
    this.bias_ih = options.bias === false ? null : parameter(uniform([4 * hiddenSize], bound, init));
    this.bias_hh = options.bias === false ? null : parameter(uniform([4 * hiddenSize], bound, init));
  }

  /** x [B, I] and optional state {h, c} [B, H] (zeros by default) → the next {h, c}. */
  forward(x: Tensor, state?: LSTMState): LSTMState {
    if (!(x instanceof Tensor) || x.rank !== 2 || x.shape[1] !== this.inputSize) {
      throw new Error(`LSTMCell: expected input [batch, ${this.inputSize}], got ${x instanceof Tensor ? shapeToString(x.shape) : typeof x}`);
    }
    const batch = x.shape[0]!;
    checkState('LSTMCell', state, [batch, this.hiddenSize]);
    return tidy(() => {
      let xw = matmul(x, this.weight_ih, { transposeB: true });
      if (this.bias_ih && this.bias_hh) xw = xw.add(this.bias_ih.add(this.bias_hh));
      const h = state?.h ?? zeros([batch, this.hiddenSize], { dtype: x.dtype });
      const c = state?.c ?? zeros([batch, this.hiddenSize], { dtype: x.dtype });
      return step(xw, h, c, this.weight_hh);
    });
  }
}

function checkState(op: string, state: LSTMState | undefined, shape: number[]): void {
  if (state === undefined) return;
  for (const key of ['h', 'c'] as const) {
    const t = state[key];
    if (!(t instanceof Tensor) || t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new Error(`${op}: initial state ${key} must have shape ${shapeToString(shape)}, got ${t instanceof Tensor ? shapeToString(t.shape) : String(t)}`);
    }
  }
}

export interface LSTMOptions extends InitOptions {
  inputSize: number;
  hiddenSize: number;
  numLayers?: number;
  /** Input and output as [batch, time, features] instead of [time, batch, features]. */
  batchFirst?: boolean;
  /** Dropout on the outputs of every layer but the last, while training (PyTorch). */
  dropout?: number;
  bias?: boolean;
}

export class LSTM extends Module {
  /** weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, ... (PyTorch's names). */
  readonly [param: `${'weight' | 'bias'}_${'ih' | 'hh'}_l${number}`]: Tensor;
  readonly inputSize: number;
  readonly hiddenSize: number;
  readonly numLayers: number;
  readonly batchFirst: boolean;
  readonly dropout: number;
  readonly bias: boolean;

  constructor(options: LSTMOptions) {
    super();
    this.inputSize = checkPositiveInt('LSTM', 'inputSize', options.inputSize);
    this.hiddenSize = checkPositiveInt('LSTM', 'hiddenSize', options.hiddenSize);
    this.numLayers = checkPositiveInt('LSTM', 'numLayers', options.numLayers ?? 1);
    this.batchFirst = options.batchFirst ?? false;
    this.dropout = options.dropout ?? 0;
    this.bias = options.bias ?? true;
    if (!(this.dropout >= 0 && this.dropout <= 1)) throw new Error(`LSTM: dropout must be a probability in [0, 1], got ${this.dropout}`);
    const init = { dtype: checkDType('LSTM', options.dtype), ...(options.generator ? { generator: options.generator } : {}) };
    const bound = 1 / Math.sqrt(this.hiddenSize);
    const self = this as unknown as Record<string, Tensor>;
    // PyTorch's order: for each layer, weight_ih, weight_hh, bias_ih, bias_hh.
    for (let l = 0; l < this.numLayers; l++) {
      const inSize = l === 0 ? this.inputSize : this.hiddenSize;
      self[`weight_ih_l${l}`] = parameter(uniform([4 * this.hiddenSize, inSize], bound, init));
      self[`weight_hh_l${l}`] = parameter(uniform([4 * this.hiddenSize, this.hiddenSize], bound, init));
      if (this.bias) {
        self[`bias_ih_l${l}`] = parameter(uniform([4 * this.hiddenSize], bound, init));
        self[`bias_hh_l${l}`] = parameter(uniform([4 * this.hiddenSize], bound, init));
      }
    }
  }

  /**
   * Layer l over the steps of xs [L, B, In] from state (h, c): [h, c, outputs [L, B, H]].
   * The input projection of every step is one matmul; the recurrence is lstmSequence (one
   * kernel on the CPU, forward and backward; step by step elsewhere).
   */
  private runSteps(l: number, h: Tensor, c: Tensor, xs: Tensor): [Tensor, Tensor, Tensor] {
    const self = this as unknown as Record<string, Tensor>;
    const [L, B] = [xs.shape[0]!, xs.shape[1]!], H = this.hiddenSize;
    const xw = matmul(reshape(xs, [L * B, xs.shape[2]!]), self[`weight_ih_l${l}`]!, { transposeB: true });
    // The biases go into lstmSequence, which adds them step by step (as adding them to xw would).
    const bias = this.bias ? self[`bias_ih_l${l}`]!.add(self[`bias_hh_l${l}`]!) : undefined;
    const out = lstmSequence(reshape(xw, [L, B, 4 * H]), h, c, self[`weight_hh_l${l}`]!, bias);
    return [out.h, out.c, out.hs];
  }

  /**
   * x [T, B, I] (or [B, T, I] with batchFirst), optional initial {h, c} [numLayers, B, H]
   * → {output [T, B, H] (or [B, T, H]), h, c [numLayers, B, H]}. With `checkpointEvery: N`
   * each layer runs in checkpointed segments of N steps (autograd's checkpoint): backward
   * recomputes a segment's activations instead of keeping them, so an unrolled sequence
   * holds O(T/N + N) steps of activations instead of O(T).
   */
  forward(x: Tensor, state?: LSTMState, options: { checkpointEvery?: number } = {}): { output: Tensor; h: Tensor; c: Tensor } {
    if (!(x instanceof Tensor) || x.rank !== 3 || x.shape[2] !== this.inputSize) {
      const layout = this.batchFirst ? '[batch, time, ' : '[time, batch, ';
      throw new Error(`LSTM: expected input ${layout}${this.inputSize}], got ${x instanceof Tensor ? shapeToString(x.shape) : typeof x}`);
    }
    const [T, B] = this.batchFirst ? [x.shape[1]!, x.shape[0]!] : [x.shape[0]!, x.shape[1]!];
    const H = this.hiddenSize;
    checkState('LSTM', state, [this.numLayers, B, H]);
    const every = options.checkpointEvery;
    if (every !== undefined) checkPositiveInt('LSTM', 'checkpointEvery', every);
    return tidy(() => {
      let input = this.batchFirst ? x.transpose(0, 1) : x;
      const hs: Tensor[] = [], cs: Tensor[] = [];
      for (let l = 0; l < this.numLayers; l++) {
        let h = state ? reshape(slice(state.h, [l, 0, 0], [1, B, H]), [B, H]) : zeros([B, H], { dtype: x.dtype });
        let c = state ? reshape(slice(state.c, [l, 0, 0], [1, B, H]), [B, H]) : zeros([B, H], { dtype: x.dtype });
        if (T === 0) {
          input = zeros([0, B, H], { dtype: x.dtype });
        } else if (every === undefined || every >= T) {
          [h, c, input] = this.runSteps(l, h, c, input);
        } else {
          const segments: Tensor[] = [];
          for (let start = 0; start < T; start += every) {
            const xs = slice(input, [start, 0, 0], [Math.min(every, T - start), B, input.shape[2]!]);
            let out: Tensor;
            [h, c, out] = checkpoint((h0: Tensor, c0: Tensor, seg: Tensor) => this.runSteps(l, h0, c0, seg), h, c, xs);
            segments.push(out);
          }
          input = concat(segments, 0);
        }
        if (l < this.numLayers - 1 && this.dropout > 0 && this.training) input = dropout(input, this.dropout, true);
        hs.push(h); cs.push(c);
      }
      return { output: this.batchFirst ? input.transpose(0, 1) : input, h: stack(hs, 0), c: stack(cs, 0) };
    });
  }
}
