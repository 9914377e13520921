// The MoE layer's forward + backward (T = 1024 tokens, d = 256, expert hidden 512, k = 2)
// for E ∈ {4, 16, 64, 256}, against the compute-matched dense block (hidden k × 512) in
// the same run. The paper's point: the cost grows with k, not with E; only the gating
// matmuls (x·w_gate and x·w_noise, [T, d] × [d, E]) grow with E.

import { mt, type Case, type Suite } from './harness.js';

const T = 1024, d = 256, h = 512, k = 2;
export const MOE_EXPERTS = [4, 16, 64, 256];
const owned: { dispose(): void }[] = [];

/**
 * The matrix products of one MoE step run alone, with no autograd and no other op: the five
 * products of every expert (x·W1ᵀ, h·W2ᵀ, dy·W2, dyᵀ·h, dhᵀ·x) at the row counts a real
 * routing gives, and the four gating products (x·w_gate, x·w_noise and their weight
 * gradients). Their growth from E = 4 to E = 256 is a floor under the layer's: what the
 * kernels cost before any framework, routing or elementwise work.
 */
function productsAlone(moe: mt.MoE, x: mt.Tensor): Case[] {
  const E = moe.numExperts;
  const counts = mt.noGrad(() => mt.tidy(() => moe.forward(x).stats.expertCounts));
  const per = counts.map((m) => ({ x: mt.randn([m, d]), dy: mt.randn([m, d]), h: mt.randn([m, h]), dh: mt.randn([m, h]) }));
  const dLogits = mt.randn([T, E]);
  owned.push(...per.flatMap((t) => [t.x, t.dy, t.h, t.dh]), dLogits);
  const gate = moe.gate as mt.NoisyTopKGating;
  const metric = { kind: 'time', unit: 'ms' } as const;
  const options = { maxTime: 3, minSamples: 5 };
  return [{
    name: `expert products alone E=${E}`, metric, options,
    mixtape: () => mt.noGrad(() => mt.tidy(() => {
      per.forEach((t, e) => {
        const { fc1, fc2 } = moe.experts[e]!;
        mt.matmul(t.x, fc1.weight, { transposeB: true });
        mt.matmul(t.h, fc2.weight, { transposeB: true });
        mt.matmul(t.dy, fc2.weight);
        mt.matmul(t.dy, t.h, { transposeA: true });
        mt.matmul(t.dh, t.x, { transposeA: true });
      });
    })),
  }, {
    name: `gating products alone E=${E}`, metric, options,
    mixtape: () => mt.noGrad(() => mt.tidy(() => {
      mt.matmul(x, gate.w_gate);
      mt.matmul(x, gate.w_noise);
      mt.matmul(x, dLogits, { transposeA: true });
      mt.matmul(x, dLogits, { transposeA: true });
    })),
  }];
}

export const moeSuite: Suite = {
  name: 'moe',
  title: `MoE layer forward + backward, T = ${T} tokens, d = ${d}, expert hidden ${h}, k = ${k} (ms per pass; no tfjs peer: the baseline is mixtape's compute-matched dense block)`,
  cases(): Case[] {
    mt.manualSeed(0);
    const x = mt.randn([T, d]);
    owned.push(x);
    const metric = { kind: 'time', unit: 'ms' } as const;
    const options = { maxTime: 4, minSamples: 5 };
    const dense = new mt.Expert(d, k * h, d);
    owned.push(...dense.parameters());
    const cases: Case[] = [{
      name: `dense (hidden ${k}×${h})`, metric, options,
      mixtape: () => mt.tidy(() => { dense.forward(x).sum().backward(); dense.zeroGrad(); }),
    }];
    const kernelCases: Case[] = [];
    for (const E of MOE_EXPERTS) {
      const moe = new mt.MoE({ inputSize: d, outputSize: d, hiddenSize: h, numExperts: E, k });
      owned.push(...moe.parameters());
      cases.push({
        name: `MoE E=${E}`, metric, options,
        mixtape: () => mt.tidy(() => {
          const out = moe.forward(x);
          out.output.sum().add(out.auxLoss).backward();
          moe.zeroGrad();
        }),
      });
      if (E === MOE_EXPERTS[0] || E === MOE_EXPERTS[MOE_EXPERTS.length - 1]) kernelCases.push(...productsAlone(moe, x));
    }
    return [...cases, ...kernelCases];
  },
  teardown() { for (const t of owned.splice(0)) t.dispose(); },
};
