// Switch routing (src/moe/routers/switch.ts) and the router z-loss: properties (one expert
// per row with gate = its probability, not renormalized; α·E·Σ fᵢPᵢ by hand; jitter only in
// training), float64 gradcheck with a margin from top-1 ties, and one error per bad option.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { assertClose, mt, numRuns } from '../../helpers.js';
import { values } from '../moe-helpers.js';
import { leaves, moeFn, topGap } from '../router-helpers.js';

const opts = { dtype: 'float64' as const };
const arb = fc.record({
  N: fc.integer({ min: 1, max: 8 }), d: fc.integer({ min: 1, max: 4 }), E: fc.integer({ min: 1, max: 6 }), seed: fc.integer({ min: 0, max: 1e6 }),
});

function switchGate(d: number, E: number, seed: number): mt.SwitchGating {
  const gate = new mt.SwitchGating({ inputSize: d, numExperts: E, dtype: 'float64' });
  gate.loadStateDict({ w_gate: mt.tensor(values(d * E, seed + 2, 1.5), [d, E], opts) });
  return gate;
}

describe('SwitchGating', () => {
  test('one nonzero gate per row: the largest probability, at its argmax, not renormalized; load counts it', () => {
    fc.assert(fc.property(arb, ({ N, d, E, seed }) => {
      const x = mt.tensor(values(N * d, seed + 1), [N, d], opts);
      const g = switchGate(d, E, seed).forward(x);
      const p = g.probs.dataSync(), gates = g.gates.dataSync(), idx = g.indices.dataSync();
      assert.deepEqual([...g.indices.shape], [N, 1]);
      const counts = new Array<number>(E).fill(0);
      for (let n = 0; n < N; n++) {
        const row = Array.from(p.subarray(n * E, (n + 1) * E));
        const best = row.indexOf(Math.max(...row));
        assert.equal(idx[n], best);
        counts[best]!++;
        for (let e = 0; e < E; e++) assert.equal(gates[n * E + e], e === best ? row[best] : 0);
        assertClose([row.reduce((a, b) => a + b, 0)], [1], { rtol: 1e-12 });
      }
      assert.deepEqual(Array.from(g.load.dataSync()), counts);
      // α·E·Σ fᵢPᵢ (without α), fᵢ = countᵢ/N, Pᵢ = mean probability.
      const P = Array.from({ length: E }, (_, e) => Array.from({ length: N }, (_, n) => p[n * E + e]!).reduce((a, b) => a + b, 0) / N);
      assertClose([g.routerAuxLoss!.item()], [E * counts.reduce((a, c, e) => a + (c / N) * P[e]!, 0)], { rtol: 1e-12 });
    }), numRuns(40));
  });

  test('with uniform router probabilities the balancing loss is E·Σ fᵢ/E = 1, whatever the routing', () => {
    const gate = new mt.SwitchGating({ inputSize: 3, numExperts: 4, dtype: 'float64' });
    gate.loadStateDict({ w_gate: mt.zeros([3, 4], opts) });
    // Zero weights: p = 1/4 everywhere, every tie goes to expert 0, so f = (1, 0, 0, 0).
    const g = gate.forward(mt.tensor(values(15, 8), [5, 3], opts));
    assert.deepEqual(Array.from(g.load.dataSync()), [5, 0, 0, 0]);
    assertClose([g.routerAuxLoss!.item()], [1], { rtol: 1e-12 });
  });

  test('jitter multiplies the router input in training only; ones change nothing', () => {
    const x = mt.tensor(values(12, 3), [4, 3], opts);
    const gate = new mt.SwitchGating({ inputSize: 3, numExperts: 5, dtype: 'float64', jitterNoise: 0.1 });
    const ones = mt.ones([4, 3], opts), j = mt.tensor(values(12, 4, 0.1).map((v) => 1 + v), [4, 3], opts);
    const plain = gate.eval().forward(x).cleanLogits.dataSync();
    assert.deepEqual(Array.from(gate.eval().forward(x, { jitter: j }).cleanLogits.dataSync()), Array.from(plain), 'eval ignores jitter');
    assert.deepEqual(Array.from(gate.train().forward(x, { jitter: ones }).cleanLogits.dataSync()), Array.from(plain));
    assertClose(gate.train().forward(x, { jitter: j }).cleanLogits.dataSync(), x.mul(j).matmul(gate.w_gate).dataSync(), { rtol: 1e-14 });
    // Drawn factors lie in [1 − ε, 1 + ε]: the logits move, by at most ε·|x|·|w|.
    mt.manualSeed(1);
    const drawn = gate.train().forward(x).cleanLogits.dataSync();
    assert.notDeepEqual(Array.from(drawn), Array.from(plain));
    const bound = x.abs().matmul(gate.w_gate.abs()).mul(0.1).dataSync();
    for (let i = 0; i < drawn.length; i++) assert.ok(Math.abs(drawn[i]! - plain[i]!) <= bound[i]! + 1e-15);
  });

  test('bad options are one clear error each', () => {
    assert.throws(() => new mt.SwitchGating({ inputSize: 2, numExperts: 3, jitterNoise: 1 }), { message: 'SwitchGating: jitterNoise must be in [0, 1), got 1' });
    assert.throws(() => new mt.SwitchGating({ inputSize: 2, numExperts: 3 }).forward(mt.zeros([2, 3])), { message: 'SwitchGating: expected input [N, 2], got [2, 3]' });
    const gate = new mt.SwitchGating({ inputSize: 2, numExperts: 3 });
    assert.throws(() => gate.forward(mt.zeros([4, 2]), { jitter: mt.ones([4, 3]) }), { message: 'SwitchGating: jitter must have shape [4, 2], got [4, 3]' });
    assert.throws(() => new mt.MoE({ inputSize: 2, outputSize: 2, hiddenSize: 2, numExperts: 3, k: 2, gating: 'switch' }), { message: "MoE: gating 'switch' routes each example to 1 expert, got k = 2" });
    assert.throws(() => new mt.MoE({ inputSize: 2, outputSize: 2, hiddenSize: 2, numExperts: 3, k: 1, gating: 'switch', auxLossWeight: -1 }), { message: 'MoE: auxLossWeight must be a non-negative number, got -1' });
    assert.throws(() => new mt.MoE({ inputSize: 2, outputSize: 2, hiddenSize: 2, numExperts: 3, k: 1, wZLoss: Number.NaN }), { message: 'MoE: wZLoss must be a non-negative number, got NaN' });
    assert.throws(() => new mt.MoE({ inputSize: 2, outputSize: 2, hiddenSize: 2, numExperts: 3, k: 1, auxLossWeight: 0.01 }), { message: "MoE: auxLossWeight applies to gating 'switch' or 'gshard', not 'noisy-topk'" });
    assert.throws(() => new mt.MoE({ inputSize: 2, outputSize: 2, hiddenSize: 2, numExperts: 3, k: 1, gating: 'deepseek', auxLossWeight: 0.01 }), { message: "MoE: auxLossWeight applies to gating 'switch' or 'gshard', not 'deepseek'" });
  });
});

describe('router z-loss', () => {
  test('mean over rows of logsumexp(logits)², by hand', () => {
    fc.assert(fc.property(arb, ({ N, E, seed }) => {
      const v = values(N * E, seed, 3);
      let want = 0;
      for (let n = 0; n < N; n++) want += Math.log(v.slice(n * E, (n + 1) * E).reduce((a, b) => a + Math.exp(b), 0)) ** 2;
      assertClose([mt.routerZLoss(mt.tensor(v, [N, E], opts)).item()], [want / N], { rtol: 1e-12 });
    }), numRuns(30));
  });
});

describe('gradcheck: Switch MoE (top-1 margin checked)', () => {
  for (const [seed, options] of [[1, {}], [2, { wZLoss: 0.1 }], [3, { capacityFactor: 0.5, wZLoss: 0.05, auxLossWeight: 0.3 }]] as const) {
    test(`output and auxLoss w.r.t. x and every parameter, ${JSON.stringify(options)} (seed ${seed})`, () => {
      const [N, d, E] = [6, 3, 4];
      const x = mt.tensor(values(N * d, seed + 1), [N, d], opts);
      mt.manualSeed(seed);
      const moe = new mt.MoE({ inputSize: d, outputSize: 2, hiddenSize: 3, numExperts: E, k: 1, gating: 'switch', dtype: 'float64', jitterNoise: 0.1, ...options });
      moe.gate.loadStateDict({ w_gate: mt.tensor(values(d * E, seed + 2, 1.5), [d, E], opts) });
      for (const e of moe.experts) e.fc1.bias!.assign(mt.tensor(values(3, seed + 50, 0.5), [3], opts));
      const jitter = mt.tensor(values(N * d, seed + 5, 0.1).map((v) => 1 + v), [N, d], opts);
      const gap = topGap((moe.gate as mt.SwitchGating).forward(x, { jitter }).probs);
      assert.ok(gap > 1e-3, `top-1 margin ${gap}`);
      const pre = mt.noGrad(() => moe.experts.map((e) => e.fc1.forward(x).abs().min().item()));
      assert.ok(Math.min(...pre) > 1e-3, `relu margin ${Math.min(...pre)}`);
      const r = mt.tensor(values(N * 2, seed + 7), [N, 2], opts);
      assert.ok(mt.gradcheck(moeFn(moe, { jitter }, r), leaves(x, ...moe.parameters())));
    });
  }
});
