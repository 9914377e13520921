// Expert Choice routing (src/moe/routers/expert-choice.ts): every expert loads exactly c
// examples per group; the chosen ones are its top c scores within the group; gates are the
// scores; a [B, T, d] input is grouped by time step, so routing at step t never depends on
// a later step; float64 gradcheck with a margin from score ties; errors.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { assertClose, mt, numRuns } from '../../helpers.js';
import { values } from '../moe-helpers.js';
import { leaves, moeFn } from '../router-helpers.js';
import { expertChoiceMask } from '../../../src/moe/routers/expert-choice.js';

const opts = { dtype: 'float64' as const };
const arb = fc.record({
  B: fc.integer({ min: 1, max: 6 }), T: fc.integer({ min: 1, max: 3 }), d: fc.integer({ min: 1, max: 3 }), E: fc.integer({ min: 1, max: 5 }),
  factor: fc.constantFrom(0.5, 1, 2, 3), seed: fc.integer({ min: 0, max: 1e6 }),
});

/** (A factor above E is refused: it is capped at E, where every expert takes every token.) */
function ecMoE(d: number, E: number, factor: number, seed: number): mt.MoE {
  mt.manualSeed(seed);
  const moe = new mt.MoE({ inputSize: d, outputSize: 2, hiddenSize: 2, numExperts: E, k: 1, gating: 'expert-choice', capacityFactor: Math.min(factor, E), dtype: 'float64' });
  moe.gate.loadStateDict({ w_gate: mt.tensor(values(d * E, seed + 2, 1.5), [d, E], opts) });
  return moe;
}

describe('Expert Choice', () => {
  test('the selection takes the rows a sort by (score descending, row ascending) puts first, ties and NaN scores included', () => {
    const bySort = (S: number[], N: number, E: number, groups: number, c: number) => {
      const mask = new Float64Array(N * E), n = N / groups;
      for (let g = 0; g < groups; g++) for (let e = 0; e < E; e++) {
        const rows = Array.from({ length: n }, (_, j) => j * groups + g).sort((a, b) => S[b * E + e]! - S[a * E + e]! || a - b);
        for (let j = 0; j < c; j++) mask[rows[j]! * E + e] = 1;
      }
      return mask;
    };
    fc.assert(fc.property(
      fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 5 }), fc.nat(), fc.boolean(),
      fc.array(fc.constantFrom(0, 0.1, 0.25, 0.5, 0.9, 1), { minLength: 9 * 4 * 5, maxLength: 9 * 4 * 5 }),
      (groups, n, E, cSeed, withNaN, pool) => {
        const N = groups * n, c = 1 + (cSeed % n);
        const S: number[] = pool.slice(0, N * E);
        if (withNaN) S[cSeed % (N * E)] = NaN;
        assert.deepEqual(expertChoiceMask(S, N, E, groups, c), bySort(S, N, E, groups, c));
      }), numRuns(500));
  });

  test('each expert takes exactly c = ⌈f·B/E⌉ tokens per time step, its top c scores there, with gate = score', () => {
    fc.assert(fc.property(arb, ({ B, T, d, E, factor, seed }) => {
      const moe = ecMoE(d, E, factor, seed);
      const x = mt.tensor(values(B * T * d, seed + 1), [B, T, d], opts);
      const out = moe.forward(x);
      const c = Math.min(B, Math.max(1, Math.ceil((factor * B) / E - 1e-9)));
      assert.equal(mt.expertChoiceCapacity(factor, B, E), c);
      assert.deepEqual(out.stats.expertCounts, new Array<number>(E).fill(c * T));
      const S = mt.softmax(x.reshape([B * T, d]).matmul((moe.gate as mt.ExpertChoiceGating).w_gate), -1).dataSync();
      const g = out.stats.gates.dataSync();
      for (let t = 0; t < T; t++) for (let e = 0; e < E; e++) {
        const rows = Array.from({ length: B }, (_, b) => b * T + t);
        const chosen = rows.filter((r) => g[r * E + e]! > 0);
        assert.equal(chosen.length, c);
        const worstChosen = Math.min(...chosen.map((r) => S[r * E + e]!));
        for (const r of rows) if (!chosen.includes(r)) assert.ok(S[r * E + e]! <= worstChosen);
        for (const r of chosen) assertClose([g[r * E + e]!], [S[r * E + e]!], { rtol: 1e-14 });
      }
      assert.equal(out.auxLoss.item(), 0, 'no auxiliary loss');
      assert.equal(out.stats.cvLoad.item(), 0, 'perfect load');
    }), numRuns(40));
  });

  test('causal: changing a later time step of the batch changes nothing at earlier steps', () => {
    fc.assert(fc.property(arb.filter((a) => a.T >= 2), ({ B, T, d, E, factor, seed }) => {
      const moe = ecMoE(d, E, factor, seed);
      const v = values(B * T * d, seed + 1);
      const w = v.map((val, i) => (Math.floor(i / d) % T === T - 1 ? val + 3 : val)); // perturb the last step only
      const a = moe.forward(mt.tensor(v, [B, T, d], opts)), b = moe.forward(mt.tensor(w, [B, T, d], opts));
      const ga = a.stats.gates.dataSync(), gb = b.stats.gates.dataSync(), ya = a.output.dataSync(), yb = b.output.dataSync();
      for (let bb = 0; bb < B; bb++) for (let t = 0; t < T - 1; t++) {
        const r = bb * T + t;
        assert.deepEqual(Array.from(gb.subarray(r * E, (r + 1) * E)), Array.from(ga.subarray(r * E, (r + 1) * E)));
        assert.deepEqual(Array.from(yb.subarray(r * 2, r * 2 + 2)), Array.from(ya.subarray(r * 2, r * 2 + 2)));
      }
    }), numRuns(30));
  });

  for (const seed of [1, 2, 3]) {
    test(`gradcheck: output and auxLoss (router z-loss 0.1) w.r.t. x and every parameter, [4, 2, 3] input (seed ${seed})`, () => {
      const [B, T, d, E] = [4, 2, 3, 4];
      mt.manualSeed(seed);
      const moe = new mt.MoE({ inputSize: d, outputSize: 2, hiddenSize: 3, numExperts: E, k: 2, gating: 'expert-choice', dtype: 'float64', wZLoss: 0.1 });
      moe.gate.loadStateDict({ w_gate: mt.tensor(values(d * E, seed + 2, 1.5), [d, E], opts) });
      for (const e of moe.experts) e.fc1.bias!.assign(mt.tensor(values(3, seed + 50, 0.5), [3], opts));
      const x = mt.tensor(values(B * T * d, seed + 1), [B, T, d], opts);
      // Margin: at each step, each expert's 2nd and 3rd best scores (c = 2 of 4) are apart.
      const S = mt.softmax(x.reshape([B * T, d]).matmul((moe.gate as mt.ExpertChoiceGating).w_gate), -1).dataSync();
      for (let t = 0; t < T; t++) for (let e = 0; e < E; e++) {
        const s = Array.from({ length: B }, (_, b) => S[(b * T + t) * E + e]!).sort((p, q) => q - p);
        assert.ok(s[1]! - s[2]! > 1e-3, `step ${t}, expert ${e}: score margin ${s[1]! - s[2]!}`);
      }
      const pre = mt.noGrad(() => moe.experts.map((e) => e.fc1.forward(x).abs().min().item()));
      assert.ok(Math.min(...pre) > 1e-3, `relu margin ${Math.min(...pre)}`);
      assert.ok(mt.gradcheck(moeFn(moe, {}, mt.tensor(values(B * T * 2, seed + 7), [B, T, 2], opts)), leaves(x, ...moe.parameters())));
    });
  }

  test('bad configurations are one clear error each', () => {
    assert.throws(() => new mt.ExpertChoiceGating({ inputSize: 2, numExperts: 3, capacityFactor: 0 }), { message: 'ExpertChoiceGating: capacityFactor must be a positive number, got 0' });
    assert.throws(() => new mt.ExpertChoiceGating({ inputSize: 2, numExperts: 3, capacityFactor: 1 }).forward(mt.zeros([5, 2]), 2), { message: 'ExpertChoiceGating: numGroups must be a positive divisor of the 5 rows, got 2' });
    assert.throws(() => new mt.MoE({ inputSize: 2, outputSize: 2, hiddenSize: 2, numExperts: 3, k: 1, gating: 'expert-choice', capacityFactor: -2 }), { message: 'MoE: capacityFactor must be a positive number, got -2' });
    assert.throws(() => new mt.MoE({ inputSize: 2, outputSize: 2, hiddenSize: 2, numExperts: 3, k: 1, gating: 'expert-choice', capacityFactor: 4 }), { message: 'ExpertChoiceGating: capacityFactor (4) is the average number of experts per example and cannot exceed numExperts (3)' });
    assert.throws(() => new mt.MoE({ inputSize: 2, outputSize: 2, hiddenSize: 2, numExperts: 3, k: 4, gating: 'expert-choice' }), { message: 'MoE: k (4) cannot exceed numExperts (3)' });
    assert.throws(() => new mt.MoE({ inputSize: 2, outputSize: 2, hiddenSize: 2, numExperts: 3, k: 1, gating: 'expert-choice', jitterNoise: 0.1 }), { message: "MoE: jitterNoise applies to gating 'switch', not 'expert-choice'" });
  });
});
