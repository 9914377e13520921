// Every router after 2017 (#13) on the GPU against the CPU in float64, forward and backward:
// the MoE layer's output, auxLoss (z-loss, Switch/GShard α·E·Σ fᵢPᵢ, DeepSeek's sequence-wise
// loss), gates, load, and every gradient; DeepSeek's bias after its device-side update.
// Routers that read the routing on the host in the middle of the forward pass (capacity and
// dropping, Expert Choice, hash routing) need a synchronous readback: in webgpu mode, which has
// none, they are one clear error naming the router and the backend, never a silent fallback.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mt } from '../helpers.js';
import { compareLayer, gpuSuite, type Mode } from './gpu-env.js';

const [B, T, d, E] = [4, 3, 5, 4];
const N = B * T;

interface RouterCase {
  title: string;
  options: Partial<mt.MoEOptions<'mlp'>>;
  /** The selection margin (of the scores it routes by) that float32 must not cross, checked on the CPU. */
  margin: (moe: mt.MoE, x: mt.Tensor) => number;
  /** The webgpu error, for routers that route on the host. */
  hostError?: string;
}

/** Smallest gap between the k-th and (k+1)-th largest entry of any row of [N, E] scores. */
function kthGap(scores: mt.Tensor, k: number): number {
  const v = scores.dataSync(), [rows, cols] = scores.shape as [number, number];
  let gap = Infinity;
  for (let n = 0; n < rows; n++) {
    const row = Array.from(v.subarray(n * cols, (n + 1) * cols)).sort((a, b) => b - a);
    if (k < cols) gap = Math.min(gap, row[k - 1]! - row[k]!);
  }
  return gap;
}

const logitsOf = (moe: mt.MoE, x: mt.Tensor) => x.reshape([N, d]).matmul((moe.gate as mt.SwitchGating).w_gate);
const probs = (moe: mt.MoE, x: mt.Tensor) => mt.softmax(logitsOf(moe, x), -1);

const UNIFORM = Array.from({ length: N }, (_, n) => ((n * 7 + 3) % 11) / 11 + 0.02);
const TOKENS = Array.from({ length: N }, (_, n) => (n * 5 + 1) % 32);

const hostError = (what: string) => `MoE: ${what} (a synchronous readback in the middle of the forward pass), which the gpu backend in webgpu mode does not offer (it reads back asynchronously only); run it on a backend with synchronous readback`;

const CASES: RouterCase[] = [
  { title: 'switch (top-1, α·E·Σ fᵢPᵢ, router z-loss)', options: { gating: 'switch', k: 1, wZLoss: 1e-2 }, margin: (m, x) => kthGap(probs(m, x), 1) },
  {
    title: 'gshard (top-2, random routing with u given)', options: { gating: 'gshard', k: 2, auxLossWeight: 0.1 },
    margin: (m, x) => {
      const top = mt.topk(probs(m, x), 3).values.dataSync();
      let gap = kthGap(probs(m, x), 2);
      // The second expert is kept iff 2·g₂ > u: stay away from that edge too.
      for (let n = 0; n < N; n++) gap = Math.min(gap, Math.abs((2 * top[n * 3 + 1]!) / (top[n * 3]! + top[n * 3 + 1]!) - UNIFORM[n]!));
      return gap;
    },
  },
  {
    title: 'deepseek (sigmoid, 1 shared expert, sequence-wise loss, bias update)', options: { gating: 'deepseek', k: 2, sharedExperts: 1, seqAuxLossWeight: 0.1, biasUpdateRate: 0.01 },
    margin: (m, x) => {
      const s = logitsOf(m, x).sigmoid();
      return Math.min(kthGap(s.add((m.gate as mt.DeepSeekGating).e_score_correction_bias), 2), kthGap(s, 2));
    },
  },
  {
    title: 'noisy top-k with capacity factor 0.5 (routes dropped)', options: { gating: 'noisy-topk', k: 2, noisyGating: false, capacityFactor: 0.5 },
    margin: (m, x) => kthGap(logitsOf(m, x), 2), hostError: hostError("capacityFactor drops the routes over capacity on the host (gating 'noisy-topk')"),
  },
  {
    title: 'switch with capacity factor 1 (routes dropped)', options: { gating: 'switch', k: 1, capacityFactor: 1 },
    margin: (m, x) => kthGap(probs(m, x), 1), hostError: hostError("capacityFactor drops the routes over capacity on the host (gating 'switch')"),
  },
  {
    title: 'expert-choice (capacity factor 2, grouped by time step)', options: { gating: 'expert-choice', k: 2 },
    margin: (m, x) => {
      // Each expert's choice among the B rows of one time step: gap between its c-th and (c+1)-th score.
      const p = mt.permute(probs(m, x).reshape([B, T, E]), [1, 2, 0]).reshape([T * E, B]);
      return kthGap(p, Math.ceil((2 * B) / E));
    },
    hostError: hostError("gating 'expert-choice' chooses each expert's examples on the host"),
  },
  { title: 'hash (token ids)', options: { gating: 'hash', k: 1 }, margin: () => Infinity, hostError: hostError("gating 'hash' hashes the token ids on the host") },
];

async function compareRouter(mode: Mode, c: RouterCase): Promise<void> {
  const gating = c.options.gating!;
  await compareLayer(mode, `MoE ${gating}`, {
    arch: () => new mt.MoE({ inputSize: d, outputSize: 3, hiddenSize: 6, numExperts: E, k: 2, ...c.options, generator: new mt.Generator(31) }),
    setup: (m) => {
      const moe = m as mt.MoE;
      if (gating !== 'hash') {
        // Router weights large enough that the routing has a clear margin.
        const w = mt.tensor(Array.from({ length: d * E }, (_, i) => 2.5 * Math.sin(1.3 * i + 0.7)), [d, E]);
        moe.gate.loadStateDict({ w_gate: w }, { strict: false });
        w.dispose();
      }
      if (gating === 'deepseek') (moe.gate as mt.DeepSeekGating).e_score_correction_bias.assign(mt.tensor([0.05, -0.1, 0.02, 0.08]));
      const x = mt.randn([B, T, d], { generator: new mt.Generator(62) }); // a seed whose routing has margins > 0.01 for every case
      const gap = mt.noGrad(() => c.margin(moe, x));
      assert.ok(gap > 1e-3, `${gating}: routing margin ${gap}`);
      const extra = gating === 'gshard' ? [mt.tensor(UNIFORM)] : gating === 'hash' ? [mt.tensor(TOKENS, [B, T], { dtype: 'int32' })] : [];
      return [x.requiresGrad_(), ...extra];
    },
    run: (m, [x, extra]) => {
      const moe = m as mt.MoE;
      const r = moe.forward(x!, gating === 'gshard' ? { uniform: extra! } : gating === 'hash' ? { tokenIds: extra! } : {});
      if (c.options.capacityFactor !== undefined) assert.ok(r.stats.droppedFraction! > 0, `${gating}: routes are dropped`);
      const outs = [r.output, r.auxLoss, r.stats.gates, r.stats.load, r.stats.cvLoad];
      if (r.stats.routerZLoss) outs.push(r.stats.routerZLoss);
      if (moe.gate instanceof mt.DeepSeekGating) outs.push(r.stats.biases!, moe.gate.e_score_correction_bias.detach().clone());
      return outs;
    },
  }, N * 6);
}

gpuSuite('routers', (mode) => {
  for (const c of CASES) {
    if (mode === 'webgpu' && c.hostError) {
      test(`${c.title}: one clear error naming the router and the backend (webgpu has no synchronous readback)`, () => {
        const moe = new mt.MoE({ inputSize: d, outputSize: 3, hiddenSize: 6, numExperts: E, k: 2, ...c.options });
        const x = mt.randn([B, T, d]);
        const options = c.options.gating === 'hash' ? { tokenIds: mt.tensor(TOKENS, [B, T], { dtype: 'int32' }) } : {};
        const live = mt.memory().liveHandles;
        assert.throws(() => moe.forward(x, options), { message: c.hostError });
        assert.equal(mt.memory().liveHandles, live, 'nothing allocated before the error');
        mt.dispose([moe.parameters(), x, Object.values(options)]);
      });
    } else {
      test(`${c.title}: forward and backward equal the CPU`, async () => { await compareRouter(mode, c); });
    }
  }
});
