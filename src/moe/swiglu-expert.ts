// The SwiGLU expert of the post-2017 MoE models (Shazeer 2020, "GLU Variants Improve
// Transformer"; Mixtral, DeepSeek): y = w2(silu(w1·x) ⊙ w3·x), three bias-free Linears
// named w1, w2, w3 as in Mixtral's state dict (experts.{i}.w1.weight [h, d], w2 [d, h],
// w3 [h, d]). And the choice between it and the paper's ReLU MLP expert.

import { tidy } from '../tensor/engine.js';
import { silu } from '../tensor/ops/functional.js';
import type { Tensor } from '../tensor/tensor.js';
import type { DType } from '../core/dtype.js';
import type { Generator } from '../tensor/ops/creation.js';
import { Linear } from '../nn/linear.js';
import { Module } from '../nn/module.js';

/** 'mlp': Linear → ReLU → Linear (the paper's expert); 'swiglu': the gated expert below. */
export type ExpertKind = 'mlp' | 'swiglu';

export const EXPERT_KINDS: readonly ExpertKind[] = ['mlp', 'swiglu'];

export class SwiGLUExpert extends Module {
  w1: Linear;
  w2: Linear;
  w3: Linear;
  constructor(inputSize: number, hiddenSize: number, outputSize: number, options: { dtype?: DType; generator?: Generator } = {}) {
    super();
    // Created in Mixtral's order (w1, w2, w3), so a seeded init draws in that order too.
    this.w1 = new Linear(inputSize, hiddenSize, { ...options, bias: false });
    this.w2 = new Linear(hiddenSize, outputSize, { ...options, bias: false });
    this.w3 = new Linear(inputSize, hiddenSize, { ...options, bias: false });
  }
  forward(x: Tensor): Tensor {
    return tidy(() => this.w2.forward(silu(this.w1.forward(x)).mul(this.w3.forward(x))));
  }
}

/**
 * The SwiGLU hidden size with the multiply-adds (and weights) of an MLP expert of hidden
 * size `mlpHidden` between equal input and output sizes: 3·d·h' = 2·d·h, so h' = round(2h/3)
 * (the 2/3 of Shazeer 2020 and LLaMA).
 */
export function swigluHidden(mlpHidden: number): number {
  return Math.max(1, Math.round((2 * mlpHidden) / 3));
}

/** Forward multiply-adds of one expert on one example. */
export function expertMultiplyAdds(kind: ExpertKind, inputSize: number, hiddenSize: number, outputSize: number): number {
  return (kind === 'swiglu' ? 2 : 1) * inputSize * hiddenSize + hiddenSize * outputSize;
}

export function checkExpertKind(op: string, kind: unknown): ExpertKind {
  if (kind === undefined) return 'mlp';
  if (!EXPERT_KINDS.includes(kind as ExpertKind)) throw new Error(`${op}: expert must be 'mlp' or 'swiglu', got '${String(kind)}'`);
  return kind as ExpertKind;
}
