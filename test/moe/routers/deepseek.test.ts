// DeepSeek-style routing (src/moe/routers/deepseek.ts) and shared experts: selection by
// s + b with gates from s alone (normalized), the ±γ bias update moving load toward
// balance, the bias in the state dict, shared experts always on; float64 gradcheck with a
// margin from selection ties; one error per bad configuration.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { assertClose, mt, numRuns } from '../../helpers.js';
import { values } from '../moe-helpers.js';
import { denseMoE, leaves, moeFn } from '../router-helpers.js';

const opts = { dtype: 'float64' as const };
const arb = fc.record({
  N: fc.integer({ min: 1, max: 8 }), d: fc.integer({ min: 1, max: 3 }), E: fc.integer({ min: 2, max: 8 }), kRaw: fc.integer({ min: 1, max: 4 }),
  score: fc.constantFrom('sigmoid' as const, 'softmax' as const), seed: fc.integer({ min: 0, max: 1e6 }),
});

function deepseekMoE(d: number, E: number, k: number, score: mt.ScoreFunction, seed: number, extra: Partial<mt.MoEOptions<'mlp'>> = {}): mt.MoE {
  mt.manualSeed(seed);
  const moe = new mt.MoE({ inputSize: d, outputSize: 2, hiddenSize: 3, numExperts: E, k, gating: 'deepseek', scoreFunction: score, dtype: 'float64', ...extra });
  moe.gate.loadStateDict({ w_gate: mt.tensor(values(d * E, seed + 2, 1.5), [d, E], opts), e_score_correction_bias: mt.tensor(values(E, seed + 4, 0.3), [E], opts) });
  return moe;
}

describe('DeepSeek routing', () => {
  test('top k of s + b; gates = the chosen s normalized to 1 (b only selects); shared experts added ungated', () => {
    fc.assert(fc.property(arb, fc.integer({ min: 0, max: 1 }), ({ N, d, E, kRaw, score, seed }, shared) => {
      const k = Math.min(kRaw, E - 1);
      const moe = deepseekMoE(d, E, k, score, seed, { sharedExperts: shared, biasUpdateRate: 0 });
      const x = mt.tensor(values(N * d, seed + 1), [N, d], opts);
      const out = moe.forward(x);
      const gate = moe.gate as mt.DeepSeekGating;
      const logits = x.matmul(gate.w_gate);
      const s = (score === 'sigmoid' ? logits.sigmoid() : mt.softmax(logits, -1)).dataSync(), b = gate.e_score_correction_bias.dataSync();
      const g = out.stats.gates.dataSync();
      for (let n = 0; n < N; n++) {
        const order = Array.from({ length: E }, (_, e) => e).sort((p, q) => s[n * E + q]! + b[q]! - (s[n * E + p]! + b[p]!) || p - q).slice(0, k);
        const z = order.reduce((a, e) => a + s[n * E + e]!, 0);
        const want = Array.from({ length: E }, (_, e) => (order.includes(e) ? s[n * E + e]! / z : 0));
        assertClose(g.subarray(n * E, (n + 1) * E), want, { rtol: 1e-12, atol: 0 });
      }
      let dense = denseMoE(moe, x, out.stats.gates);
      for (const e of moe.shared_experts) dense = dense.add(e.forward(x));
      assertClose(out.output.dataSync(), dense.dataSync(), { rtol: 1e-12, atol: 1e-14 });
      assert.equal(out.auxLoss.item(), 0, 'loss-free balancing: no auxiliary loss');
      assert.deepEqual(Array.from(out.stats.biases!.dataSync()), Array.from(b));
    }), numRuns(40));
  });

  test('the bias update moves load toward balance: bᵢ += γ·sign(mean − loadᵢ); repeated steps lower CV(load)', () => {
    fc.assert(fc.property(arb, ({ N, d, E, kRaw, score, seed }) => {
      const k = Math.min(kRaw, E - 1);
      const moe = deepseekMoE(d, E, k, score, seed, { biasUpdateRate: 0.05 });
      const x = mt.tensor(values(N * d, seed + 1), [N, d], opts);
      const gate = moe.gate as mt.DeepSeekGating;
      const before = Array.from(gate.e_score_correction_bias.dataSync());
      const load = Array.from(moe.forward(x).stats.load.dataSync());
      const mean = load.reduce((a, c) => a + c, 0) / E;
      assertClose(gate.e_score_correction_bias.dataSync(), before.map((v, i) => v + 0.05 * Math.sign(mean - load[i]!)), { rtol: 1e-14, atol: 1e-15 });
      moe.eval().forward(x);
      assert.deepEqual(Array.from(gate.e_score_correction_bias.dataSync()), before.map((v, i) => v + 0.05 * Math.sign(mean - load[i]!)), 'no update in eval mode');
    }), numRuns(30));
    // On a fixed batch routed unevenly at b = 0 (CV(load) ≈ 1), 300 updates of γ = 0.01 spread
    // the load: the last 50 steps all stay below 0.4. (With near-identical tokens the
    // sign update can oscillate instead; this batch is varied.)
    const moe = deepseekMoE(2, 4, 1, 'sigmoid', 1, { biasUpdateRate: 0.01 });
    moe.gate.loadStateDict({ w_gate: mt.tensor([3, 1, 0, -1, 0, 1, 2, 3], [2, 4], opts), e_score_correction_bias: mt.zeros([4], opts) });
    const x = mt.tensor(values(64 * 2, 9), [64, 2], opts);
    const cvs = Array.from({ length: 300 }, () => moe.forward(x).stats.cvLoad.item());
    assert.ok(cvs[0]! > 0.9, `initial CV(load) ${cvs[0]}`);
    assert.ok(Math.max(...cvs.slice(-50)) < 0.4, `final CV(load) up to ${Math.max(...cvs.slice(-50))}`);
  });

  test('the bias and the shared experts are in the state dict and survive save/load; the bias gets no gradient', () => {
    const moe = deepseekMoE(3, 5, 2, 'sigmoid', 1, { sharedExperts: 2 });
    const keys = Object.keys(moe.stateDict());
    for (const key of ['gate.w_gate', 'gate.e_score_correction_bias', 'shared_experts.0.fc1.weight', 'shared_experts.1.fc2.bias']) assert.ok(keys.includes(key), key);
    moe.forward(mt.tensor(values(12, 2), [4, 3], opts)).output.sum().backward();
    assert.equal((moe.gate as mt.DeepSeekGating).e_score_correction_bias.grad, null);
    const file = join(mkdtempSync(join(tmpdir(), 'mixtape-deepseek-')), 'moe.safetensors');
    mt.saveSafetensors(file, moe.stateDict());
    const other = deepseekMoE(3, 5, 2, 'sigmoid', 8, { sharedExperts: 2 });
    other.loadStateDict(mt.loadSafetensors(file).tensors);
    rmSync(file);
    assert.deepEqual(Array.from((other.gate as mt.DeepSeekGating).e_score_correction_bias.dataSync()), Array.from((moe.gate as mt.DeepSeekGating).e_score_correction_bias.dataSync()));
  });

  for (const [seed, score, shared] of [[1, 'sigmoid', 1], [2, 'softmax', 2], [4, 'sigmoid', 0]] as const) {
    test(`gradcheck (${score}, ${shared} shared): output and auxLoss w.r.t. x and every parameter (seed ${seed})`, () => {
      const [N, d, E, k] = [5, 3, 6, 2];
      const moe = deepseekMoE(d, E, k, score, seed, { sharedExperts: shared, biasUpdateRate: 0, wZLoss: 0.1 });
      for (const e of [...moe.experts, ...moe.shared_experts]) e.fc1.bias!.assign(mt.tensor(values(3, seed + 50, 0.5), [3], opts));
      const x = mt.tensor(values(N * d, seed + 1), [N, d], opts);
      const gate = moe.gate as mt.DeepSeekGating;
      const logits = x.matmul(gate.w_gate);
      const sel = (score === 'sigmoid' ? logits.sigmoid() : mt.softmax(logits, -1)).add(gate.e_score_correction_bias).dataSync();
      for (let n = 0; n < N; n++) {
        const row = Array.from(sel.subarray(n * E, (n + 1) * E)).sort((p, q) => q - p);
        assert.ok(row[k - 1]! - row[k]! > 1e-3, `row ${n}: selection margin ${row[k - 1]! - row[k]!}`);
      }
      const pre = mt.noGrad(() => [...moe.experts, ...moe.shared_experts].map((e) => e.fc1.forward(x).abs().min().item()));
      assert.ok(Math.min(...pre) > 1e-3, `relu margin ${Math.min(...pre)}`);
      assert.ok(mt.gradcheck(moeFn(moe, {}, mt.tensor(values(N * 2, seed + 7), [N, 2], opts)), leaves(x, ...moe.parameters())));
    });
  }

  test('sequence-wise balance loss (V3): the batch loss is the mean of its sequences\' losses; 0 (and not computed) by default', () => {
    fc.assert(fc.property(arb, fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 4 }), ({ d, E, kRaw, score, seed }, B, T) => {
      const k = Math.min(kRaw, E - 1);
      const alpha = 0.25;
      const moe = deepseekMoE(d, E, k, score, seed, { biasUpdateRate: 0, seqAuxLossWeight: alpha });
      const x = mt.tensor(values(B * T * d, seed + 1), [B, T, d], opts);
      const whole = moe.forward(x).auxLoss.item();
      const each = Array.from({ length: B }, (_, b) => moe.forward(x.slice([b, 0, 0], [1, T, d])).auxLoss.item());
      assertClose([whole], [each.reduce((a, v) => a + v, 0) / B], { rtol: 1e-12, atol: 1e-15 });
      // One sequence by hand (eqs. 17–20): f from the top k of the raw s, P from s / Σ s.
      const gate = moe.gate as mt.DeepSeekGating;
      const logits = x.slice([0, 0, 0], [1, T, d]).reshape([T, d]).matmul(gate.w_gate);
      const s = (score === 'sigmoid' ? logits.sigmoid() : mt.softmax(logits, -1)).dataSync();
      const f = new Array<number>(E).fill(0), P = new Array<number>(E).fill(0);
      for (let t = 0; t < T; t++) {
        const row = Array.from(s.subarray(t * E, (t + 1) * E));
        const z = row.reduce((a, v) => a + v, 0);
        const top = row.map((v, e) => [v, e] as const).sort((p, q) => q[0] - p[0] || p[1] - q[1]).slice(0, k).map(([, e]) => e);
        for (const e of top) f[e]! += E / (k * T);
        row.forEach((v, e) => { P[e]! += v / z / T; });
      }
      assertClose([each[0]!], [alpha * f.reduce((a, fi, e) => a + fi * P[e]!, 0)], { rtol: 1e-12, atol: 1e-15 });
      assert.equal(deepseekMoE(d, E, k, score, seed, { biasUpdateRate: 0 }).forward(x).auxLoss.item(), 0);
    }), numRuns(30));
  });

  for (const [seed, score] of [[8, 'sigmoid'], [6, 'softmax']] as const) {
    test(`gradcheck with the sequence-wise balance loss (${score}, α = 0.5, [2, 3, d] input, seed ${seed})`, () => {
      const [B, T, d, E, k] = [2, 3, 3, 5, 2];
      const moe = deepseekMoE(d, E, k, score, seed, { sharedExperts: 1, biasUpdateRate: 0, seqAuxLossWeight: 0.5 });
      for (const e of [...moe.experts, ...moe.shared_experts]) e.fc1.bias!.assign(mt.tensor(values(3, seed + 50, 0.5), [3], opts));
      const x = mt.tensor(values(B * T * d, seed + 1), [B, T, d], opts);
      const gate = moe.gate as mt.DeepSeekGating;
      const logits = x.reshape([B * T, d]).matmul(gate.w_gate);
      const s = score === 'sigmoid' ? logits.sigmoid() : mt.softmax(logits, -1);
      // Margins from ties of the routed top k (of s + b) and of eq. 18's top k (of s).
      for (const sel of [s.add(gate.e_score_correction_bias).dataSync(), s.dataSync()]) {
        for (let n = 0; n < B * T; n++) {
          const row = Array.from(sel.subarray(n * E, (n + 1) * E)).sort((p, q) => q - p);
          assert.ok(row[k - 1]! - row[k]! > 1e-3, `row ${n}: selection margin ${row[k - 1]! - row[k]!}`);
        }
      }
      const pre = mt.noGrad(() => [...moe.experts, ...moe.shared_experts].map((e) => e.fc1.forward(x).abs().min().item()));
      assert.ok(Math.min(...pre) > 1e-3, `relu margin ${Math.min(...pre)}`);
      assert.ok(moe.forward(x).auxLoss.item() > 0);
      assert.ok(mt.gradcheck(moeFn(moe, {}, mt.tensor(values(B * T * 2, seed + 7), [B, T, 2], opts)), leaves(x, ...moe.parameters())));
    });
  }

  test('bad configurations are one clear error each', () => {
    const base = { inputSize: 2, outputSize: 2, hiddenSize: 2, numExperts: 4, k: 2 };
    assert.throws(() => new mt.MoE({ ...base, gating: 'deepseek', sharedExperts: 4 }), { message: 'MoE: sharedExperts (4) must be fewer than numExperts (4)' });
    assert.throws(() => new mt.MoE({ ...base, gating: 'deepseek', sharedExperts: -1 }), { message: 'MoE: sharedExperts must be a non-negative integer, got -1' });
    assert.throws(() => new mt.MoE({ ...base, sharedExperts: 1 }), { message: "MoE: sharedExperts needs gating 'deepseek', got 'noisy-topk'" });
    assert.throws(() => new mt.MoE({ ...base, gating: 'deepseek', scoreFunction: 'tanh' as 'sigmoid' }), { message: "DeepSeekGating: scoreFunction must be 'softmax' or 'sigmoid', got 'tanh'" });
    assert.throws(() => new mt.MoE({ ...base, gating: 'deepseek', biasUpdateRate: -0.1 }), { message: 'DeepSeekGating: biasUpdateRate must be a non-negative number, got -0.1' });
    assert.throws(() => new mt.MoE({ ...base, gating: 'deepseek', k: 5 }), { message: 'MoE: k (5) cannot exceed numExperts (4)' });
    assert.throws(() => new mt.MoE({ ...base, gating: 'deepseek', seqAuxLossWeight: -1 }), { message: 'MoE: seqAuxLossWeight must be a non-negative number, got -1' });
    assert.throws(() => new mt.MoE({ ...base, gating: 'gshard', seqAuxLossWeight: 0.1 }), { message: "MoE: seqAuxLossWeight applies to gating 'deepseek', not 'gshard'" });
    assert.throws(() => new mt.MoE({ ...base, scoreFunction: 'softmax' }), { message: "MoE: scoreFunction applies to gating 'deepseek', not 'noisy-topk'" });
    assert.throws(() => new mt.MoE({ ...base, gating: 'expert-choice', biasUpdateRate: 0.1 }), { message: "MoE: biasUpdateRate applies to gating 'deepseek', not 'expert-choice'" });
    assert.throws(() => new mt.DeepSeekGating({ inputSize: 2, numExperts: 4, k: 2 }).forward(mt.zeros([6, 2]), 4), { message: 'DeepSeekGating: sequenceLength must be a positive divisor of the 6 rows, got 4' });
  });
});
