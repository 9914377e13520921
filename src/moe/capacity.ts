// Expert capacity and token dropping for token-choice routers (GShard, Lepikhin et al. 2020
// §2.2; Switch Transformer, Fedus et al. 2021 §2.2): each expert processes at most
//
//   capacity = ⌈capacityFactor · k · N / E⌉
//
// routes; the routes over it are dropped. A dropped route contributes nothing to its example's
// output (in the language model the residual connection carries the example on) and, because
// its gate is multiplied by a 0 mask, passes no gradient to the router through that gate.
//
// Drop order (deterministic): routes are admitted by choice rank first, then by position —
// every example's first choice before any second choice (GShard's Algorithm 1 fills all
// top-1 slots before top-2 slots), and within one rank the earlier row first (Switch's
// cumulative-sum position order). Not by gate value (Riquelme et al.'s "batch prioritized
// routing" would be the other choice). The counting reads the routing on the host.

import { noGrad } from '../tensor/engine.js';
import { tensor } from '../tensor/ops/creation.js';
import type { Tensor } from '../tensor/tensor.js';

/** ⌈capacityFactor · k · N / E⌉, checked: the most routes one expert keeps. */
export function expertCapacity(capacityFactor: number, k: number, numExamples: number, numExperts: number): number {
  if (!(typeof capacityFactor === 'number' && capacityFactor > 0 && Number.isFinite(capacityFactor))) {
    throw new Error(`expertCapacity: capacityFactor must be a positive number, got ${capacityFactor}`);
  }
  return Math.max(1, Math.ceil((capacityFactor * k * numExamples) / numExperts - 1e-9));
}

export interface CapacityDrop {
  /** [N, E] 0/1 (no gradient): 0 where a chosen route was dropped, 1 elsewhere. */
  keep: Tensor;
  /** Dropped routes / routes attempted this step (N·k, less the routes whose gate was already 0). */
  droppedFraction: number;
  /** Per expert: dropped routes / routes that chose it (0 for an expert nobody chose). */
  droppedPerExpert: number[];
  /** Per expert: the routes it kept (≤ capacity). */
  keptCounts: number[];
}

/**
 * Which of the routes `indices` [N, k] (best first) fit `capacity` slots per expert, in the
 * order above. With `gates` [N, E], a route whose gate is 0 (GShard's skipped second expert)
 * is not dispatched: it takes no slot and is not counted.
 */
export function dropOverCapacity(indices: Tensor, numExperts: number, capacity: number, dtype: 'float32' | 'float64', gates?: Tensor): CapacityDrop {
  const [N, k] = indices.shape as [number, number];
  const chosen = indices.dataSync();
  const E = numExperts;
  const g = gates?.dataSync();
  let attempted = 0;
  const keep = new Float64Array(N * E).fill(1);
  const kept = new Array<number>(E).fill(0), wanted = new Array<number>(E).fill(0);
  let dropped = 0;
  for (let r = 0; r < k; r++) {
    for (let n = 0; n < N; n++) {
      const e = chosen[n * k + r]!;
      if (g !== undefined && !(g[n * E + e]! > 0)) continue;
      attempted++;
      wanted[e]!++;
      if (kept[e]! < capacity) kept[e]!++;
      else { keep[n * E + e] = 0; dropped++; }
    }
  }
  return {
    keep: noGrad(() => tensor(keep, [N, E], { dtype })),
    droppedFraction: attempted === 0 ? 0 : dropped / attempted,
    droppedPerExpert: wanted.map((w, e) => (w === 0 ? 0 : (w - kept[e]!) / w)),
    keptCounts: kept,
  };
}
