// An expert of the MoE layer: a feed-forward network that sees only the examples routed to
// it (paper §3.2, App. C: one ReLU hidden layer). The dense language model reuses it as its
// compute-matched feed-forward block.

import { tidy } from '../tensor/engine.js';
import type { Tensor } from '../tensor/tensor.js';
import type { DType } from '../core/dtype.js';
import type { Generator } from '../tensor/ops/creation.js';
import { Linear } from '../nn/linear.js';
import { Module } from '../nn/module.js';

/** An expert: Linear → ReLU → Linear (state-dict names fc1.*, fc2.*). */
export class Expert extends Module {
  fc1: Linear;
  fc2: Linear;
  constructor(inputSize: number, hiddenSize: number, outputSize: number, options: { dtype?: DType; generator?: Generator } = {}) {
    super();
    this.fc1 = new Linear(inputSize, hiddenSize, options);
    this.fc2 = new Linear(hiddenSize, outputSize, options);
  }
  forward(x: Tensor): Tensor {
    return tidy(() => this.fc2.forward(this.fc1.forward(x).relu()));
  }
}
