// The MoE layer's forward + backward (T = 1024 tokens, d = 256, expert hidden 512, k = 2)
// for E ∈ {4, 16, 64, 256}, against the compute-matched dense block (hidden k × 512) in
// the same run. The paper's point: the cost grows with k, not with E; only the gating
// matmuls (x·w_gate and x·w_noise, [T, d] × [d, E]) grow with E.

import { mt, type Case, type Suite } from './harness.js';

const T = 1024, d = 256, h = 512, k = 2;
export const MOE_EXPERTS = [4, 16, 64, 256];
const owned: { dispose(): void }[] = [];

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
    }
    return cases;
  },
  teardown() { for (const t of owned.splice(0)) t.dispose(); },
};
