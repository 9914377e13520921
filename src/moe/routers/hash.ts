// Hash routing (Roller, Sukhbaatar, Szlam & Weston 2021, "Hash Layers For Large Sparse
// Models"): a fixed hash of the token id picks the one expert, with gate 1. Nothing is
// learned and nothing balances it: the control that tells whether learned routing beats none.
//
// The hash is Fibonacci hashing of the id: h = (id · 0x9E3779B1) mod 2³², expert =
// ⌊h · E / 2³²⌋ (the high bits, which mix every bit of the id; the low bits of a
// multiplicative hash would just permute id mod E). Fixed across runs, seeds and backends.
// (Roller et al. also study a balanced hash built from token frequencies; this is their
// "random hash" baseline.)

import { noGrad, tidy } from '../../tensor/engine.js';
import { tensor, zeros } from '../../tensor/ops/creation.js';
import { oneHot } from '../../tensor/ops/indexing.js';
import { shapeToString } from '../../core/shape.js';
import { Tensor } from '../../tensor/tensor.js';
import { checkPositiveInt, Module } from '../../nn/module.js';
import type { DType } from '../../core/dtype.js';
import type { GatingOutput } from '../gating.js';

/** The expert of token `id` among `numExperts`: ⌊((id · 0x9E3779B1) mod 2³²) · E / 2³²⌋. */
export function hashExpert(id: number, numExperts: number): number {
  const h = Math.imul(id, 0x9e3779b1) >>> 0;
  return Math.floor((h * numExperts) / 4294967296);
}

export class HashGating extends Module {
  readonly numExperts: number;
  readonly k = 1;
  readonly dtype: DType;
  constructor(options: { numExperts: number; dtype?: DType }) {
    super();
    this.numExperts = checkPositiveInt('HashGating', 'numExperts', options.numExperts);
    this.dtype = options.dtype ?? 'float32';
  }

  /** tokenIds: int32 non-negative ids, one per row of x (any shape with N elements). */
  forward(x: Tensor, tokenIds: Tensor | undefined): GatingOutput {
    const N = x.shape[0]!, E = this.numExperts;
    if (tokenIds === undefined) throw new Error(`HashGating: hash routing picks experts by token id: pass forward(x, { tokenIds }) with ${N} int32 ids`);
    if (!(tokenIds instanceof Tensor) || tokenIds.dtype !== 'int32' || tokenIds.size !== N) {
      throw new Error(`HashGating: tokenIds must be int32 with one id per row (${N}), got ${tokenIds instanceof Tensor ? `${tokenIds.dtype} ${shapeToString(tokenIds.shape)}` : typeof tokenIds}`);
    }
    const ids = tokenIds.dataSync();
    const experts = new Int32Array(N);
    for (let n = 0; n < N; n++) {
      if (!(ids[n]! >= 0)) throw new Error(`HashGating: token ids must be non-negative, got ${ids[n]} at row ${n}`);
      experts[n] = hashExpert(ids[n]!, E);
    }
    return tidy(() => {
      const indices = noGrad(() => tensor(experts, [N, 1], { dtype: 'int32' }));
      const gates = noGrad(() => oneHot(indices.reshape([N]), E, { dtype: x.dtype }));
      const counts = noGrad(() => gates.sum(0));
      // No router, so no logits: zeros stand in (the layer reports no z-loss for hash routing).
      const none = zeros([N, E], { dtype: x.dtype });
      return { gates, indices, importance: counts, load: counts.clone(), cleanLogits: none, noisyLogits: none, noiseStddev: null };
    });
  }
}
