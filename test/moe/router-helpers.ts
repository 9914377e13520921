// Shared by the router tests: a dense "every expert on every row, times its gate" reference
// of the MoE layer, and a gradcheck function over an MoE's parameters.

import { mt } from '../helpers.js';

type T = mt.Tensor;

/** y = Σₑ gates[:, e] · expertₑ(x), every expert on every row. */
export function denseMoE(moe: mt.MoE, x: T, gates: T): T {
  const N = x.shape[0]!;
  let y = mt.zeros([N, moe.outputSize], { dtype: x.dtype });
  moe.experts.forEach((expert, e) => { y = y.add(expert.forward(x).mul(gates.slice([0, e], [N, 1]))); });
  return y;
}

/** Runs an MoE with its parameters replaced by gradcheck's leaves: [Σ output·r, auxLoss]. */
export function moeFn(moe: mt.MoE, forwardOptions: mt.MoEForwardOptions, r: T) {
  const names = moe.namedParameters().map(([n]) => n);
  return (x: T, ...params: T[]) => {
    names.forEach((name, i) => {
      const path = name.split('.');
      let owner = moe as unknown as Record<string, unknown>;
      for (const part of path.slice(0, -1)) owner = owner[part] as Record<string, unknown>;
      owner[path[path.length - 1]!] = params[i];
    });
    const out = moe.forward(x, forwardOptions);
    return [out.output.mul(r).sum(), out.auxLoss];
  };
}

export const leaves = (...ts: T[]) => ts.map((t) => t.detach().requiresGrad_());

/** The gradient of p, or zeros where the loss does not reach it. */
export const gradOf = (p: T): number[] => Array.from(p.grad?.dataSync() ?? new Float64Array(p.size));

/** Smallest gap between the two largest entries of any row of a [N, E] tensor (∞ for E = 1). */
export function topGap(t: T): number {
  const [N, E] = t.shape as [number, number];
  const v = t.dataSync();
  let gap = Infinity;
  for (let n = 0; n < N; n++) {
    const row = Array.from(v.subarray(n * E, (n + 1) * E)).sort((a, b) => b - a);
    if (E > 1) gap = Math.min(gap, row[0]! - row[1]!);
  }
  return gap;
}
