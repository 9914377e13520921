// GShard top-2 routing (src/moe/routers/gshard.ts): properties (top-2 of the router
// probabilities, gates renormalized over the two, the second skipped exactly when 2·g₂ ≤ u,
// both used in eval, seeded and injectable randomness, skipped routes take no capacity),
// float64 gradcheck with margins from ties and from the 2·g₂ = u boundary, and errors.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { assertClose, mt, numRuns } from '../../helpers.js';
import { values } from '../moe-helpers.js';
import { leaves, moeFn } from '../router-helpers.js';

const opts = { dtype: 'float64' as const };
const arb = fc.record({
  N: fc.integer({ min: 1, max: 8 }), d: fc.integer({ min: 1, max: 4 }), E: fc.integer({ min: 2, max: 6 }), seed: fc.integer({ min: 0, max: 1e6 }),
});

function gshardGate(d: number, E: number, seed: number, randomRouting = true): mt.GShardGating {
  const gate = new mt.GShardGating({ inputSize: d, numExperts: E, dtype: 'float64', randomRouting });
  gate.loadStateDict({ w_gate: mt.tensor(values(d * E, seed + 2, 1.5), [d, E], opts) });
  return gate;
}

describe('GShardGating', () => {
  test('top-2 of p, gates p₁/(p₁+p₂) and p₂/(p₁+p₂); the second kept iff 2·g₂ > u (training), always in eval', () => {
    fc.assert(fc.property(arb, ({ N, d, E, seed }) => {
      const x = mt.tensor(values(N * d, seed + 1), [N, d], opts);
      const u = mt.tensor(values(N, seed + 3).map((v) => (v + 1) / 2), [N], opts);
      const gate = gshardGate(d, E, seed);
      for (const training of [true, false]) {
        const g = training ? gate.train().forward(x, { uniform: u }) : gate.eval().forward(x, { uniform: u });
        const p = g.probs.dataSync(), gates = g.gates.dataSync(), idx = g.indices.dataSync(), uu = u.dataSync();
        for (let n = 0; n < N; n++) {
          const order = Array.from({ length: E }, (_, e) => e).sort((a, b) => p[n * E + b]! - p[n * E + a]! || a - b);
          assert.deepEqual(Array.from(idx.subarray(2 * n, 2 * n + 2)), order.slice(0, 2));
          const [p1, p2] = [p[n * E + order[0]!]!, p[n * E + order[1]!]!];
          const g2 = p2 / (p1 + p2), keepSecond = !training || 2 * g2 > uu[n]!;
          const want = new Array<number>(E).fill(0);
          want[order[0]!] = p1 / (p1 + p2);
          if (keepSecond) want[order[1]!] = g2;
          assertClose(gates.subarray(n * E, (n + 1) * E), want, { rtol: 1e-12, atol: 0 });
        }
        assert.deepEqual(Array.from(g.load.dataSync()), Array.from({ length: E }, (_, e) => Array.from({ length: N }, (_, n) => (gates[n * E + e]! > 0 ? 1 : 0)).reduce((a: number, b) => a + b, 0)));
        // α·E·Σ fᵢPᵢ without α, fᵢ from the first choices.
        const f = new Array<number>(E).fill(0);
        for (let n = 0; n < N; n++) f[idx[2 * n]!]! += 1 / N;
        const P = Array.from({ length: E }, (_, e) => Array.from({ length: N }, (_, n) => p[n * E + e]!).reduce((a, b) => a + b, 0) / N);
        assertClose([g.routerAuxLoss!.item()], [E * f.reduce((a, fe, e) => a + fe * P[e]!, 0)], { rtol: 1e-12 });
      }
    }), numRuns(40));
  });

  test('random routing is seeded (same seed, same routing) and injectable through its generator', () => {
    const x = mt.tensor(values(40 * 3, 5), [40, 3], opts);
    const gate = gshardGate(3, 5, 5);
    const routing = () => Array.from(gate.train().forward(x).gates.dataSync(), (v): number => (v > 0 ? 1 : 0));
    mt.manualSeed(4); const a = routing();
    mt.manualSeed(4); const b = routing();
    assert.deepEqual(a, b);
    assert.ok(a.reduce((s, v) => s + v, 0) < 80, 'some second experts are skipped');
    gate.generator = new mt.Generator(9); const c = routing();
    gate.generator = new mt.Generator(9); const d = routing();
    assert.deepEqual(c, d);
    assert.deepEqual(Array.from(gshardGate(3, 5, 5, false).train().forward(x).gates.dataSync(), (v): number => (v > 0 ? 1 : 0)).reduce((s, v) => s + v, 0), 80, 'randomRouting false keeps both');
  });

  test('with capacity, a skipped second expert takes no slot; counts never exceed ⌈f·2·N/E⌉', () => {
    fc.assert(fc.property(arb, fc.constantFrom(0.25, 0.5, 1), ({ N, d, E, seed }, factor) => {
      const x = mt.tensor(values(N * d, seed + 1), [N, d], opts);
      const u = mt.tensor(values(N, seed + 3).map((v) => (v + 1) / 2), [N], opts);
      mt.manualSeed(seed);
      const moe = new mt.MoE({ inputSize: d, outputSize: 2, hiddenSize: 2, numExperts: E, k: 2, gating: 'gshard', dtype: 'float64', capacityFactor: factor });
      moe.gate.loadStateDict({ w_gate: mt.tensor(values(d * E, seed + 2, 1.5), [d, E], opts) });
      const out = moe.forward(x, { uniform: u });
      const C = mt.expertCapacity(factor, 2, N, E);
      assert.ok(out.stats.expertCounts.every((c) => c <= C));
      const before = (moe.gate as mt.GShardGating).forward(x, { uniform: u }).gates.dataSync();
      const routed = Array.from(before).filter((v) => v > 0).length;
      const kept = out.stats.expertCounts.reduce((a, b) => a + b, 0);
      assert.equal(out.stats.droppedFraction, (routed - kept) / routed);
    }), numRuns(30));
  });

  test('bad configurations are one clear error each', () => {
    assert.throws(() => new mt.GShardGating({ inputSize: 2, numExperts: 1 }), { message: 'GShardGating: top-2 routing needs at least 2 experts, got numExperts = 1' });
    assert.throws(() => new mt.MoE({ inputSize: 2, outputSize: 2, hiddenSize: 2, numExperts: 4, k: 3, gating: 'gshard' }), { message: "MoE: gating 'gshard' routes each example to its top 2 experts, got k = 3" });
    assert.throws(() => new mt.GShardGating({ inputSize: 2, numExperts: 3 }).forward(mt.zeros([4, 2]), { uniform: mt.zeros([3]) }), { message: 'GShardGating: uniform must have shape [4], got [3]' });
    assert.throws(() => new mt.MoE({ inputSize: 2, outputSize: 2, hiddenSize: 2, numExperts: 1, k: 2, gating: 'gshard' }), { message: 'MoE: k (2) cannot exceed numExperts (1)' });
    assert.throws(() => new mt.MoE({ inputSize: 2, outputSize: 2, hiddenSize: 2, numExperts: 3, k: 1, gating: 'switch', randomRouting: false }), { message: "MoE: randomRouting applies to gating 'gshard', not 'switch'" });
  });
});

describe('gradcheck: GShard MoE (margins from ties and from 2·g₂ = u checked)', () => {
  for (const [seed, options] of [[1, {}], [2, { wZLoss: 0.1, auxLossWeight: 0.5 }], [3, { capacityFactor: 0.5 }]] as const) {
    test(`output and auxLoss w.r.t. x and every parameter, ${JSON.stringify(options)} (seed ${seed})`, () => {
      const [N, d, E] = [6, 3, 4];
      const x = mt.tensor(values(N * d, seed + 1), [N, d], opts);
      mt.manualSeed(seed);
      const moe = new mt.MoE({ inputSize: d, outputSize: 2, hiddenSize: 3, numExperts: E, k: 2, gating: 'gshard', dtype: 'float64', ...options });
      moe.gate.loadStateDict({ w_gate: mt.tensor(values(d * E, seed + 2, 1.5), [d, E], opts) });
      for (const e of moe.experts) e.fc1.bias!.assign(mt.tensor(values(3, seed + 50, 0.5), [3], opts));
      const u = mt.tensor(values(N, seed + 3).map((v) => (v + 1) / 2), [N], opts);
      const g = (moe.gate as mt.GShardGating).forward(x, { uniform: u });
      const p = g.probs.dataSync(), uu = u.dataSync();
      for (let n = 0; n < N; n++) {
        const row = Array.from(p.subarray(n * E, (n + 1) * E)).sort((a, b) => b - a);
        assert.ok(row[0]! - row[1]! > 1e-3 && row[1]! - row[2]! > 1e-3, `row ${n}: top-3 margin`);
        assert.ok(Math.abs((2 * row[1]!) / (row[0]! + row[1]!) - uu[n]!) > 1e-3, `row ${n}: random-routing margin`);
      }
      const pre = mt.noGrad(() => moe.experts.map((e) => e.fc1.forward(x).abs().min().item()));
      assert.ok(Math.min(...pre) > 1e-3, `relu margin ${Math.min(...pre)}`);
      const r = mt.tensor(values(N * 2, seed + 7), [N, 2], opts);
      assert.ok(mt.gradcheck(moeFn(moe, { uniform: u }, r), leaves(x, ...moe.parameters())));
    });
  }
});
