// Expert Choice routing (Zhou et al. 2022, §3.1): the experts choose the examples. With router
// scores S = softmax(x·W_r) over experts [N, E], each expert takes the c examples of its group
// with the highest score for it (ties to the lower row), and gate G[n, e] = S[n, e] for the
// examples it took (0 elsewhere; not renormalized). An example may get 0..E experts; every
// expert processes exactly c examples per group: perfect load by construction, no
// auxiliary loss. c = ⌈capacityFactor · n / E⌉ for a group of n examples (at most n); the
// paper's capacity factor is the average number of experts per example, so the default is k.
//
// Causality: choosing "the top c of a group" lets an example's routing depend on the other
// examples of its group. In a language model the MoE sees [batch, time, d]; its groups are the
// time steps — expert e picks among the batch's B tokens at position t — so routing never uses
// a later position of the same sequence (nor any later position). It does use the other
// sequences at the same position, so a token's routing depends on its batch; with one
// sequence (B = 1) every expert takes the single token of each step. An [N, d] input is one group.

import { noGrad, tidy } from '../../tensor/engine.js';
import { tensor } from '../../tensor/ops/creation.js';
import { softmax } from '../../tensor/ops/functional.js';
import { topk } from '../../tensor/ops/indexing.js';
import { matmul } from '../../tensor/ops/linalg.js';
import type { Tensor } from '../../tensor/tensor.js';
import { checkDType, checkPositiveInt, Module } from '../../nn/module.js';
import type { Generator } from '../../tensor/ops/creation.js';
import type { DType } from '../../core/dtype.js';
import { gatesToLoad, importance } from '../balancing.js';
import { checkGateInput } from '../gating.js';
import { routerWeight, type RouterOutput } from './switch.js';

export interface ExpertChoiceGatingOptions {
  inputSize: number;
  numExperts: number;
  /** Average experts per example; c = ⌈capacityFactor·n/E⌉ examples per expert and group. */
  capacityFactor: number;
  dtype?: DType;
  generator?: Generator;
}

/** Examples per expert in a group of n: ⌈capacityFactor·n/E⌉, at least 1, at most n. */
export function expertChoiceCapacity(capacityFactor: number, groupSize: number, numExperts: number): number {
  return Math.min(groupSize, Math.max(1, Math.ceil((capacityFactor * groupSize) / numExperts - 1e-9)));
}

/**
 * The Expert Choice mask [N, E] (1 = expert e takes row r): in each group (rows r with
 * r mod numGroups = group), each expert's c rows of largest score S[r, e], ties to the lower
 * row: the rows a sort by (score descending, row ascending) puts first. One pass per (group,
 * expert) keeps the best c so far (a sort per pair took about 6% of a training run); a group
 * with a NaN score takes the sort. c is in [1, n], as expertChoiceCapacity gives it.
 */
export function expertChoiceMask(S: ArrayLike<number>, N: number, E: number, numGroups: number, c: number): Float64Array {
  const n = N / numGroups, mask = new Float64Array(N * E);
  const top = new Int32Array(c), best = new Float64Array(c);
  for (let group = 0; group < numGroups; group++) {
    for (let e = 0; e < E; e++) {
      let len = 0, nan = false;
      // Rows in increasing order, so an equal score never displaces an earlier row.
      for (let j = 0; j < n; j++) {
        const row = j * numGroups + group, v = S[row * E + e]!;
        if (v !== v) { nan = true; break; }
        if (len === c && !(v > best[c - 1]!)) continue;
        let pos = len < c ? len++ : c - 1;
        for (; pos > 0 && v > best[pos - 1]!; pos--) { best[pos] = best[pos - 1]!; top[pos] = top[pos - 1]!; }
        best[pos] = v;
        top[pos] = row;
      }
      if (nan) {
        const rows = Array.from({ length: n }, (_, j) => j * numGroups + group);
        rows.sort((a, b) => S[b * E + e]! - S[a * E + e]! || a - b);
        for (let j = 0; j < c; j++) mask[rows[j]! * E + e] = 1;
      } else {
        for (let j = 0; j < len; j++) mask[top[j]! * E + e] = 1;
      }
    }
  }
  return mask;
}

export class ExpertChoiceGating extends Module {
  w_gate: Tensor;
  readonly inputSize: number;
  readonly numExperts: number;
  readonly capacityFactor: number;

  constructor(options: ExpertChoiceGatingOptions) {
    super();
    this.inputSize = checkPositiveInt('ExpertChoiceGating', 'inputSize', options.inputSize);
    this.numExperts = checkPositiveInt('ExpertChoiceGating', 'numExperts', options.numExperts);
    this.capacityFactor = options.capacityFactor;
    if (!(typeof this.capacityFactor === 'number' && this.capacityFactor > 0 && Number.isFinite(this.capacityFactor))) {
      throw new Error(`ExpertChoiceGating: capacityFactor must be a positive number, got ${this.capacityFactor}`);
    }
    // c = f·n/E > n: an expert would have to take more examples than its group holds.
    if (this.capacityFactor > this.numExperts) {
      throw new Error(`ExpertChoiceGating: capacityFactor (${this.capacityFactor}) is the average number of experts per example and cannot exceed numExperts (${this.numExperts})`);
    }
    this.w_gate = routerWeight(this.inputSize, this.numExperts, checkDType('ExpertChoiceGating', options.dtype), options.generator);
  }

  /**
   * x [N, d]; rows are grouped as row mod `numGroups` (for a [B, T] batch flattened to rows
   * b·T + t and numGroups = T, a group is one time step). Default: one group.
   */
  forward(x: Tensor, numGroups = 1): RouterOutput {
    checkGateInput('ExpertChoiceGating', x, this.inputSize);
    const [N, E] = [x.shape[0]!, this.numExperts];
    if (!Number.isInteger(numGroups) || numGroups < 1 || N % numGroups !== 0) {
      throw new Error(`ExpertChoiceGating: numGroups must be a positive divisor of the ${N} rows, got ${numGroups}`);
    }
    return tidy(() => {
      const logits = matmul(x, this.w_gate);
      const probs = softmax(logits, -1);
      // Which examples each expert takes: its top c scores in each group, ties to the lower row.
      const S = probs.dataSync();
      const mask = expertChoiceMask(S, N, E, numGroups, expertChoiceCapacity(this.capacityFactor, N / numGroups, E));
      const gates = probs.mul(noGrad(() => tensor(mask, [N, E], { dtype: x.dtype })));
      // Every expert is a candidate, best first; the nonzero gates say which took the example.
      const { indices } = topk(gates.detach(), E);
      return {
        gates, indices, importance: importance(gates), load: gatesToLoad(gates), probs,
        cleanLogits: logits, noisyLogits: logits, noiseStddev: null,
      };
    });
  }
}
