// PyTorch's default initializations, drawn from mixtape's seeded generator.

import { rand, randn, type Generator } from '../tensor/ops/creation.js';
import { noGrad, tidy } from '../tensor/engine.js';
import type { DType } from '../core/dtype.js';
import type { Tensor } from '../tensor/tensor.js';

export interface InitOptions { dtype?: DType; generator?: Generator }

/** U(-bound, bound). */
export function uniform(shape: readonly number[], bound: number, options: InitOptions = {}): Tensor {
  return noGrad(() => tidy(() => rand(shape, options).mul(2 * bound).sub(bound)));
}

/** N(0, std²). */
export function normalInit(shape: readonly number[], std = 1, options: InitOptions = {}): Tensor {
  return noGrad(() => tidy(() => (std === 1 ? randn(shape, options) : randn(shape, options).mul(std))));
}

/**
 * nn.Linear's default: kaiming_uniform_(a=√5) for the weight, which is U(±1/√fan_in), and
 * the same bound for the bias.
 */
export function linearBound(fanIn: number): number {
  return fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
}
