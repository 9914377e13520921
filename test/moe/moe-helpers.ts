// Inputs for MoE tests with a guaranteed margin from top-k ties: the noisy logits H of
// every row are chosen first (distinct, spaced by `gap`), and the noise ε is solved from
// them: ε = (H − clean) / stddev. Perturbing x or the weights by a finite-difference step
// then moves H by far less than the gap, so the selected experts never change.

import { mt } from '../helpers.js';

/** Deterministic pseudo-random values in [-1, 1) from a seed (a tiny LCG, test-only). */
export function values(n: number, seed: number, scale = 1): number[] {
  let s = (seed * 2654435761 + 12345) >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return ((s / 4294967296) * 2 - 1) * scale;
  });
}

/** A permutation of 0..n-1 from a seed. */
function permutation(n: number, seed: number): number[] {
  const keys = values(n, seed);
  return keys.map((_, i) => i).sort((a, b) => keys[a]! - keys[b]!);
}

export interface GatingCase {
  x: mt.Tensor;
  wGate: mt.Tensor;
  wNoise: mt.Tensor;
  noise: mt.Tensor;
  /** The intended noisy logits (distinct per row, spaced by at least `gap`). */
  H: number[];
}

/** x [N, d], w_gate and w_noise [d, E], noise [N, E] with H = x·w_gate + ε·(softplus(x·w_noise) + eps) as planned. */
export function gatingCase(N: number, d: number, E: number, seed: number, { gap = 0.3, noiseEpsilon = 1e-2 } = {}): GatingCase {
  const opts = { dtype: 'float64' as const };
  const x = mt.tensor(values(N * d, seed + 1), [N, d], opts);
  const wGate = mt.tensor(values(d * E, seed + 2, 0.8), [d, E], opts);
  const wNoise = mt.tensor(values(d * E, seed + 3, 0.8), [d, E], opts);
  const H: number[] = [];
  for (let n = 0; n < N; n++) {
    const order = permutation(E, seed * 31 + n);
    for (let e = 0; e < E; e++) H.push(-1 + gap * order[e]! + 0.01 * ((n * 7 + e) % 3));
  }
  const noise = mt.noGrad(() => mt.tidy(() => {
    const clean = x.matmul(wGate);
    const std = x.matmul(wNoise).softplus().add(noiseEpsilon);
    return mt.tensor(H, [N, E], opts).sub(clean).div(std);
  }));
  return { x, wGate, wNoise, noise, H };
}

/** Our gate with the case's weights. */
export function gateWith(c: GatingCase, k: number, options: { noiseEpsilon?: number; noisy?: boolean } = {}): mt.NoisyTopKGating {
  const [d, E] = c.wGate.shape as [number, number];
  const gate = new mt.NoisyTopKGating({ inputSize: d, numExperts: E, k, dtype: 'float64', ...options });
  gate.loadStateDict({ w_gate: c.wGate, w_noise: c.wNoise });
  return gate;
}
