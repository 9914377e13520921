// An expert of the MoE layer: a feed-forward network that sees only the examples routed to
// it (paper §3.2, App. C: one ReLU hidden layer). The dense language model reuses it as its
// compute-matched feed-forward block.

import { getBackend, tidy } from '../tensor/engine.js';
import { groupedMatmul } from '../tensor/ops/fused.js';
import { Tensor } from '../tensor/tensor.js';
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
    if (this.runsGrouped(x)) {
      // As the MoE's experts run (grouped-experts.ts), on one segment of every row: each layer
      // one kernel with its bias, and fc1's relu, applied in it. The bits of the layers below
      // (a one-segment grouped product takes the SIMD path exactly where matmul would).
      const rows = [x.shape[0]!];
      const layer = (l: Linear, input: Tensor, relu: boolean) =>
        groupedMatmul(input, [l.weight], rows, { transposeB: true, ...(l.bias ? { biases: [l.bias] } : {}), relu });
      return tidy(() => layer(this.fc2, layer(this.fc1, x, true), false));
    }
    return tidy(() => this.fc2.forward(this.fc1.forward(x).relu()));
  }

  /** Whether x [N, in] of the layer's dtype goes through the backend's grouped kernel (the CPU has one). */
  private runsGrouped(x: Tensor): boolean {
    const w = this.fc1.weight;
    return x instanceof Tensor && x.rank === 2 && x.shape[0]! > 0 && x.shape[1] === this.fc1.inFeatures && x.dtype === w.dtype
      && this.fc2.weight.dtype === w.dtype && getBackend().supports?.('groupedMatmul') === true;
  }
}
