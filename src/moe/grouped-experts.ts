// The experts of one MoE layer as grouped products (the paper's §3.1 at the scale of one
// machine's cores): the routed rows sorted by expert (SparseDispatcher.dispatchRows) go
// through each expert's layers as one groupedMatmul per layer — one kernel for all experts,
// spread over the CPU's threads, forward and backward — instead of E separate small
// products. The parameters stay each expert's own (state dict experts.{i}.fc1.weight, …):
// the grouped op takes them as E inputs, and their gradients land on them.
//
// Equal to running each expert on its segment, to rounding: the products bit for bit where
// that expert's own product would run on the SIMD kernel too (groupedMatmul; a product under
// 4096 multiply-adds runs on the scalar kernels, which round a float32 sum differently), the
// bias adds exactly (in the grouped kernel's copy-out), and a bias gradient is the same sum of
// the segment's rows in the same order (segmentSums, float64, as sum(·, 0)), and the hidden
// layer's relu exactly (applied in the same kernel).

import { getBackend } from '../tensor/engine.js';
import { zeros } from '../tensor/ops/creation.js';
import { silu } from '../tensor/ops/functional.js';
import { groupedMatmul } from '../tensor/ops/fused.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Linear } from '../nn/linear.js';
import { Expert } from './expert.js';
import { SwiGLUExpert } from './swiglu-expert.js';

/** Whether the active backend runs grouped expert products in one kernel. */
export function groupsExperts(): boolean {
  return getBackend().supports?.('groupedMatmul') === true;
}

/**
 * One Linear layer of every expert on its segment of rows: x[seg e]·W_eᵀ + b_e, then relu when
 * asked. The kernel adds each segment's bias (and applies the relu) before it copies the
 * products out; an expert built without a bias among ones with a bias (not a layout the
 * library builds) gets a constant zero bias.
 */
function groupedLinear(x: Tensor, layers: readonly Linear[], sizes: readonly number[], relu = false): Tensor {
  const weights = layers.map((l) => l.weight);
  if (layers.every((l) => l.bias === null)) return groupedMatmul(x, weights, sizes, { transposeB: true, relu });
  const biases = layers.map((l) => l.bias ?? zeros([l.outFeatures], { dtype: x.dtype }));
  return groupedMatmul(x, weights, sizes, { transposeB: true, biases, relu });
}

/**
 * The experts' outputs on their routed rows x [Σ sizes, d] (segment e: expert e's rows), in
 * the same order: [Σ sizes, d_out]. Experts are all Expert (ReLU MLP) or all SwiGLUExpert.
 */
export function groupedExperts(experts: readonly (Expert | SwiGLUExpert)[], x: Tensor, sizes: readonly number[]): Tensor {
  if (experts.every((e) => e instanceof Expert)) {
    const mlp = experts as readonly Expert[];
    const h = groupedLinear(x, mlp.map((e) => e.fc1), sizes, true);
    return groupedLinear(h, mlp.map((e) => e.fc2), sizes);
  }
  if (experts.every((e) => e instanceof SwiGLUExpert)) {
    const glu = experts as readonly SwiGLUExpert[];
    const gate = silu(groupedLinear(x, glu.map((e) => e.w1), sizes));
    const up = groupedLinear(x, glu.map((e) => e.w3), sizes);
    return groupedLinear(gate.mul(up), glu.map((e) => e.w2), sizes);
  }
  throw new Error('groupedExperts: the experts must all be Expert or all SwiGLUExpert');
}
