// MoE invariants as properties (fast-check): gates, importance, the load estimator,
// dispatch/combine algebra, sparse = dense, empty experts, hierarchical with one group,
// strictly balanced gating, CV², errors and memory.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { assertClose, mt, numRuns } from '../helpers.js';
import { gateWith, gatingCase, values } from './moe-helpers.js';

const dims = fc.record({
  N: fc.integer({ min: 1, max: 7 }), d: fc.integer({ min: 1, max: 4 }), E: fc.integer({ min: 1, max: 6 }),
  kRaw: fc.integer({ min: 1, max: 6 }), seed: fc.integer({ min: 0, max: 1e6 }),
});

describe('noisy top-k gating', () => {
  test('exactly k nonzero gates per row, summing to 1, on the experts of the k largest noisy logits', () => {
    fc.assert(fc.property(dims, ({ N, d, E, kRaw, seed }) => {
      const k = Math.min(kRaw, E);
      const c = gatingCase(N, d, E, seed);
      const out = gateWith(c, k).forward(c.x, { noise: c.noise });
      const g = out.gates.dataSync(), idx = out.indices.dataSync();
      for (let n = 0; n < N; n++) {
        const row = Array.from(g.subarray(n * E, (n + 1) * E));
        assert.equal(row.filter((v) => v > 0).length, k);
        assertClose([row.reduce((a, b) => a + b, 0)], [1], { rtol: 1e-12 });
        const expected = c.H.slice(n * E, (n + 1) * E).map((h, e) => [h, e] as const).sort((a, b) => b[0] - a[0]).slice(0, k).map(([, e]) => e);
        assert.deepEqual(Array.from(idx.subarray(n * k, (n + 1) * k)), expected);
        // The kept gates are the softmax of the kept noisy logits (eq. 5).
        const kept = expected.map((e) => Math.exp(c.H[n * E + e]!));
        const z = kept.reduce((a, b) => a + b, 0);
        assertClose(expected.map((e) => row[e]!), kept.map((v) => v / z), { rtol: 1e-9, atol: 1e-12 });
      }
    }), numRuns(40));
  });

  test('importance is the column sum of the gates; hard load counts the nonzero gates', () => {
    fc.assert(fc.property(dims, ({ N, d, E, kRaw, seed }) => {
      const k = Math.min(kRaw, E);
      const c = gatingCase(N, d, E, seed);
      const gate = gateWith(c, k);
      const out = gate.forward(c.x, { noise: c.noise });
      const g = out.gates.dataSync();
      const colSums = Array.from({ length: E }, (_, e) => Array.from({ length: N }, (_, n) => g[n * E + e]!).reduce((a, b) => a + b, 0));
      assertClose(out.importance.dataSync(), colSums, { rtol: 1e-12, atol: 1e-15 });
      gate.eval();
      const ev = gate.forward(c.x);
      const ge = ev.gates.dataSync();
      const counts = Array.from({ length: E }, (_, e) => Array.from({ length: N }, (_, n) => (ge[n * E + e]! > 0 ? 1 : 0) as number).reduce((a, b) => a + b, 0));
      assert.deepEqual(Array.from(ev.load.dataSync()), counts);
      assert.equal(ev.noiseStddev, null);
    }), numRuns(30));
  });

  test('the smooth load: P(x,i) in (0,1) (up to float64 rounding), and the k+1-th value trick equals brute-force kth_excluding', () => {
    fc.assert(fc.property(dims, ({ N, d, E: e, kRaw, seed }) => {
      const E = Math.max(2, e);
      const k = Math.min(kRaw, E - 1);
      const c = gatingCase(N, d, E, seed);
      const out = gateWith(c, k).forward(c.x, { noise: c.noise });
      const clean = out.cleanLogits.dataSync(), std = out.noiseStddev!.dataSync();
      const expectedLoad = new Array<number>(E).fill(0);
      for (let n = 0; n < N; n++) {
        for (let i = 0; i < E; i++) {
          const others = c.H.slice(n * E, (n + 1) * E).filter((_, j) => j !== i).sort((a, b) => b - a);
          const kth = others[k - 1]!;
          const p = mt.tensor([(clean[n * E + i]! - kth) / std[n * E + i]!], { dtype: 'float64' }).normalCdf().item();
          // In (0, 1) mathematically; in float64 Φ(z) rounds to exactly 1 beyond z ≈ 8.3.
          const z = (clean[n * E + i]! - kth) / std[n * E + i]!;
          assert.ok(p >= 0 && p <= 1 && (Math.abs(z) > 8 || (p > 0 && p < 1)), `P = ${p} at z = ${z}`);
          expectedLoad[i]! += p;
        }
      }
      assertClose(out.load.dataSync(), expectedLoad, { rtol: 1e-12, atol: 1e-15 });
    }), numRuns(30));
  });

  test('with k = E and noise off, the gate is the dense softmax (eq. 2); eval mode is deterministic', () => {
    const c = gatingCase(5, 3, 4, 7);
    const gate = gateWith(c, 4, { noisy: false });
    const soft = new mt.SoftmaxGating({ inputSize: 3, numExperts: 4, dtype: 'float64' });
    soft.loadStateDict({ w_gate: c.wGate });
    assertClose(gate.forward(c.x).gates.dataSync(), soft.forward(c.x).gates.dataSync(), { rtol: 1e-14 });
    const noisy = gateWith(c, 2).eval();
    assert.deepEqual(Array.from(noisy.forward(c.x).gates.dataSync()), Array.from(noisy.forward(c.x).gates.dataSync()));
  });

  test('zero initialization (App. A): clean logits 0, noise stddev ln 2 + ε; in eval all logits tie and experts 0..k-1 win', () => {
    const gate = new mt.NoisyTopKGating({ inputSize: 3, numExperts: 5, k: 2 });
    const x = mt.randn([4, 3]);
    const out = gate.forward(x);
    assert.ok(Array.from(out.cleanLogits.dataSync()).every((v) => v === 0));
    assertClose(out.noiseStddev!.dataSync(), new Array(20).fill(Math.log(2) + 0.01), { rtol: 1e-6 });
    gate.eval();
    assert.deepEqual(Array.from(gate.forward(x).indices.dataSync()), [0, 1, 0, 1, 0, 1, 0, 1]);
  });
});

describe('cvSquared', () => {
  test('population variance over squared mean: [1,2,3,4] → 0.2; scale-invariant; constants, one expert and zeros → 0', () => {
    const cv = (v: number[]) => mt.cvSquared(mt.tensor(v, { dtype: 'float64' })).item();
    assertClose([cv([1, 2, 3, 4])], [0.2], { rtol: 1e-9 });
    assert.equal(cv([3, 3, 3]), 0);
    assert.equal(cv([5]), 0);
    assert.equal(cv([0, 0, 0]), 0);
    fc.assert(fc.property(fc.array(fc.integer({ min: 1, max: 100 }), { minLength: 2, maxLength: 8 }), fc.integer({ min: 1, max: 50 }), (v, s) => {
      assertClose([cv(v.map((a) => a * s))], [cv(v)], { rtol: 1e-9 });
    }), numRuns(30));
  });
});

/** Our MoE with random expert weights and the case's gate weights. */
function moeWith(c: ReturnType<typeof gatingCase>, k: number, hidden: number, out: number, seed: number): mt.MoE {
  const [d, E] = c.wGate.shape as [number, number];
  mt.manualSeed(seed);
  const moe = new mt.MoE({ inputSize: d, outputSize: out, hiddenSize: hidden, numExperts: E, k, dtype: 'float64' });
  moe.loadStateDict({ 'gate.w_gate': c.wGate, 'gate.w_noise': c.wNoise }, { strict: false });
  return moe;
}

describe('sparse dispatch and combine', () => {
  test('dispatch → combine with identity experts returns x (gates sum to 1), and k·x without gate weighting', () => {
    fc.assert(fc.property(dims, ({ N, d, E, kRaw, seed }) => {
      const k = Math.min(kRaw, E);
      const c = gatingCase(N, d, E, seed);
      const out = gateWith(c, k).forward(c.x, { noise: c.noise });
      const disp = new mt.SparseDispatcher(E, out.gates, out.indices);
      const parts = disp.dispatch(c.x);
      assert.deepEqual(parts.map((p) => p.shape[0]), disp.partSizes());
      assert.equal(disp.partSizes().reduce((a, b) => a + b, 0), N * k);
      assertClose(disp.combine(parts).dataSync(), c.x.dataSync(), { rtol: 1e-12, atol: 1e-15 });
      assertClose(disp.combine(parts, false).dataSync(), Array.from(c.x.dataSync(), (v) => k * v), { rtol: 1e-12, atol: 1e-15 });
      // expertToGates / expertToBatchIndices agree with the dense gates.
      const g = out.gates.dataSync();
      disp.expertToBatchIndices().forEach((rows, e) => {
        const gs = disp.expertToGates()[e]!.dataSync();
        rows.forEach((n, j) => assert.equal(gs[j], g[n * E + e]));
        assert.deepEqual(Array.from(rows), [...rows].sort((a, b) => a - b), 'examples in increasing order within an expert');
      });
    }), numRuns(30));
  });

  test('the sparse MoE equals the dense "run every expert, weight by gates" reference in value and gradient', () => {
    fc.assert(fc.property(dims, fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 3 }), ({ N, d, E, kRaw, seed }, hidden, outSize) => {
      const k = Math.min(kRaw, E);
      const c = gatingCase(N, d, E, seed);
      const moe = moeWith(c, k, hidden, outSize, seed);
      const r = mt.tensor(values(N * outSize, seed + 9), [N, outSize], { dtype: 'float64' });
      const x1 = c.x.detach().requiresGrad_(), x2 = c.x.detach().requiresGrad_();
      const sparse = moe.forward(x1, { noise: c.noise });
      sparse.output.mul(r).sum().backward();
      const sparseGrads = moe.namedParameters().map(([n, p]) => [n, Array.from(p.grad?.dataSync() ?? new Float64Array(p.size))] as const);
      moe.zeroGrad();
      // Dense reference: every expert on every row, weighted by the same gates.
      const g = (moe.gate as mt.NoisyTopKGating).forward(x2, { noise: c.noise }).gates;
      let dense = mt.zeros([N, outSize], { dtype: 'float64' });
      moe.experts.forEach((expert, e) => { dense = dense.add(expert.forward(x2).mul(g.slice([0, e], [N, 1]))); });
      assertClose(sparse.output.dataSync(), dense.dataSync(), { rtol: 1e-12, atol: 1e-14, what: 'output' });
      dense.mul(r).sum().backward();
      for (const [name, grad] of sparseGrads) {
        const p = moe.namedParameters().find(([n]) => n === name)![1];
        assertClose(grad, p.grad?.dataSync() ?? new Float64Array(p.size), { rtol: 1e-10, atol: 1e-13, what: `grad ${name}` });
      }
      assertClose(x1.grad!.dataSync(), x2.grad!.dataSync(), { rtol: 1e-10, atol: 1e-13, what: 'x.grad' });
    }), numRuns(25));
  });

  test('an expert that receives no example gets a [0, d] input, produces no NaN and exact zero gradients', () => {
    const c = gatingCase(6, 3, 4, 21);
    const moe = moeWith(c, 2, 5, 2, 21);
    // Make expert 3 lose every row: a very negative noise for it.
    const noise = mt.tensor(Array.from(c.noise.dataSync(), (v, i) => (i % 4 === 3 ? -1e3 : v)), [6, 4], { dtype: 'float64' });
    const out = moe.forward(c.x, { noise });
    assert.equal(out.stats.expertCounts[3], 0);
    assert.ok(Array.from(out.output.dataSync()).every(Number.isFinite));
    out.output.sum().add(out.auxLoss).backward();
    for (const [name, p] of moe.namedParameters()) {
      assert.ok(Array.from(p.grad!.dataSync()).every(Number.isFinite), `${name} has a non-finite gradient`);
      if (name.startsWith('experts.3.')) assert.ok(Array.from(p.grad!.dataSync()).every((v) => v === 0), `${name} should have zero gradient`);
    }
  });
});

describe('MoE layer', () => {
  test('stats: counts add to N·k, CVs are √cv_squared, entropy within [0, log k]; auxLoss is the weighted sum', () => {
    fc.assert(fc.property(dims, ({ N, d, E, kRaw, seed }) => {
      const k = Math.min(kRaw, E);
      const c = gatingCase(N, d, E, seed);
      const moe = moeWith(c, k, 3, 2, seed);
      const { auxLoss, stats } = moe.forward(c.x, { noise: c.noise });
      assert.equal(stats.expertCounts.reduce((a, b) => a + b, 0), N * k);
      const cvI = mt.cvSquared(stats.importance).item(), cvL = mt.cvSquared(stats.load).item();
      assertClose([stats.cvImportance.item() ** 2, stats.cvLoad.item() ** 2], [cvI, cvL], { rtol: 1e-9, atol: 1e-15 });
      assertClose([auxLoss.item()], [0.1 * cvI + 0.1 * cvL], { rtol: 1e-9, atol: 1e-15 });
      const h = stats.gateEntropy.item();
      assert.ok(h >= -1e-12 && h <= Math.log(k) + 1e-12);
    }), numRuns(25));
  });

  test('the MoE runs over every position of a [B, T, d] input at once', () => {
    const moe = new mt.MoE({ inputSize: 3, outputSize: 2, hiddenSize: 4, numExperts: 3, k: 2 }).eval();
    const x = mt.randn([2, 5, 3]);
    const whole = moe.forward(x).output;
    assert.deepEqual(whole.shape, [2, 5, 2]);
    const flat = moe.forward(x.reshape([10, 3])).output;
    assert.deepEqual(Array.from(whole.dataSync()), Array.from(flat.dataSync()));
  });

  test('a hierarchical MoE with one group equals the flat MoE (output, losses, gradients)', () => {
    const c = gatingCase(6, 3, 4, 33);
    const flat = moeWith(c, 2, 4, 2, 33);
    const h = new mt.HierarchicalMoE({ inputSize: 3, outputSize: 2, hiddenSize: 4, numGroups: 1, expertsPerGroup: 4, kPrimary: 1, kSecondary: 2, dtype: 'float64' });
    const renamed = Object.fromEntries(Object.entries(flat.stateDict()).map(([k, v]) => [`groups.0.${k}`, v]));
    h.loadStateDict(renamed, { strict: false });
    const a = flat.forward(c.x, { noise: c.noise });
    const b = h.forward(c.x, { noise: { primary: mt.zeros([6, 1], { dtype: 'float64' }), secondary: [c.noise] } });
    assertClose(b.output.dataSync(), a.output.dataSync(), { rtol: 1e-14, what: 'output' });
    assertClose(b.stats.importance.dataSync(), a.stats.importance.dataSync(), { rtol: 1e-14 });
    assertClose(b.stats.load.dataSync(), a.stats.load.dataSync(), { rtol: 1e-14 });
    assertClose([b.auxLoss.item()], [a.auxLoss.item()], { rtol: 1e-12 });
    a.output.sum().add(a.auxLoss).backward();
    b.output.sum().add(b.auxLoss).backward();
    for (const [name, p] of flat.namedParameters()) {
      const q = h.namedParameters().find(([n]) => n === `groups.0.${name}`)![1];
      assertClose(q.grad!.dataSync(), p.grad!.dataSync(), { rtol: 1e-10, atol: 1e-14, what: name });
    }
  });

  test('hierarchical: Importance_H sums to N; Load_H = Load_primary · Load_i / |X⁽ⁱ⁾| (eq. 14)', () => {
    mt.manualSeed(4);
    const h = new mt.HierarchicalMoE({ inputSize: 4, outputSize: 4, hiddenSize: 5, numGroups: 3, expertsPerGroup: 2, kPrimary: 2, kSecondary: 1, dtype: 'float64' });
    for (const p of h.parameters()) if (p.rank === 2 && p.shape[0] === 4) p.assign(mt.randn(p.shape, { dtype: 'float64' }));
    const x = mt.randn([10, 4], { dtype: 'float64' });
    const { stats } = h.forward(x);
    assertClose([mt.sum(stats.importance).item()], [10], { rtol: 1e-12 });
    assert.equal(stats.groupCounts.reduce((a, b) => a + b, 0), 20);
    assert.equal(stats.expertCounts.reduce((a, b) => a + b, 0), 20);
    const gates = stats.gates.dataSync();
    for (let n = 0; n < 10; n++) assert.equal(Array.from(gates.subarray(n * 6, n * 6 + 6)).filter((v) => v > 0).length, 2);
    const pl = stats.primaryLoad.dataSync(), sl = stats.secondaryLoad.dataSync();
    const expected = Array.from({ length: 6 }, (_, ij) => {
      const i = Math.floor(ij / 2);
      return stats.groupCounts[i]! > 0 ? (pl[i]! * sl[ij]!) / stats.groupCounts[i]! : 0;
    });
    assertClose(stats.load.dataSync(), expected, { rtol: 1e-12, atol: 1e-15 });
  });
});

/**
 * A float64 hierarchical MoE with random weights (gates included), its output, aux loss, stats
 * and every gradient, with the given dispatch; noise is fixed ([N, a] and [N, b] per group).
 */
function runHierarchical(dispatch: 'sparse' | 'device', o: { N: number; d: number; a: number; b: number; kP: number; kS: number; seed: number; noisy: boolean; training: boolean; capacity?: number }) {
  return mt.tidy(() => {
    const gen = new mt.Generator(o.seed);
    const h = new mt.HierarchicalMoE({
      inputSize: o.d, outputSize: 3, hiddenSize: 4, numGroups: o.a, expertsPerGroup: o.b, kPrimary: o.kP, kSecondary: o.kS,
      noisyGating: o.noisy, dtype: 'float64', generator: gen, dispatch, ...(o.capacity ? { capacity: o.capacity } : {}),
    });
    if (!o.training) h.eval();
    // Gate weights with spread (they are zero-initialized), from the same seed for both paths.
    for (const [name, p] of h.namedParameters()) if (/w_(gate|noise)$/.test(name)) p.assign(mt.randn(p.shape, { dtype: 'float64', generator: gen }));
    const x = mt.randn([o.N, o.d], { dtype: 'float64', generator: gen }).requiresGrad_();
    const noise = { primary: mt.randn([o.N, o.a], { dtype: 'float64', generator: gen }), secondary: Array.from({ length: o.a }, () => mt.randn([o.N, o.b], { dtype: 'float64', generator: gen })) };
    const out = h.forward(x, { noise });
    const w = mt.tensor(values(out.output.size, o.seed + 5), out.output.shape, { dtype: 'float64' });
    out.output.mul(w).sum().add(out.auxLoss).backward();
    const s = out.stats;
    return {
      y: Array.from(out.output.dataSync()), aux: out.auxLoss.item(),
      stats: Object.fromEntries((['gates', 'indices', 'importance', 'load', 'cvImportance', 'cvLoad', 'gateEntropy', 'primaryGates', 'primaryLoad', 'secondaryLoad'] as const)
        .map((k) => [k, Array.from(s[k].dataSync())])),
      expertCounts: s.expertCounts, groupCounts: s.groupCounts,
      grads: [['x', x] as const, ...h.namedParameters()].map(([n, p]) => [n, Array.from(p.grad?.dataSync() ?? new Float64Array(p.size))] as const),
    };
  });
}

describe('hierarchical MoE: device dispatch', () => {
  const hdims = fc.record({
    N: fc.integer({ min: 1, max: 8 }), d: fc.integer({ min: 1, max: 3 }), a: fc.integer({ min: 1, max: 4 }), b: fc.integer({ min: 1, max: 4 }),
    kP: fc.integer({ min: 1, max: 4 }), kS: fc.integer({ min: 1, max: 4 }), seed: fc.integer({ min: 0, max: 1e6 }),
    mode: fc.constantFrom('noisy', 'no noise', 'eval'),
  });

  test("dispatch 'device' equals 'sparse': output, aux loss (Importance_H, Load_H), every stat and every gradient", () => {
    fc.assert(fc.property(hdims, ({ N, d, a, b, kP, kS, seed, mode }) => {
      const o = { N, d, a, b, kP: Math.min(kP, a), kS: Math.min(kS, b), seed, noisy: mode !== 'no noise', training: mode !== 'eval' };
      const sparse = runHierarchical('sparse', o), device = runHierarchical('device', o);
      const tol = { rtol: 1e-12, atol: 1e-14 };
      assertClose(device.y, sparse.y, { ...tol, what: 'output' });
      assertClose([device.aux], [sparse.aux], { ...tol, what: 'aux loss' });
      for (const [k, v] of Object.entries(sparse.stats)) assertClose(device.stats[k]!, v, { ...tol, what: `stats.${k}` });
      assert.deepEqual(device.expertCounts, sparse.expertCounts, 'stats.expertCounts');
      assert.deepEqual(device.groupCounts, sparse.groupCounts, 'stats.groupCounts');
      device.grads.forEach(([name, g], i) => {
        assert.equal(name, sparse.grads[i]![0]);
        assertClose(g, sparse.grads[i]![1], { rtol: 1e-10, atol: 1e-13, what: `gradient of ${name}` });
      });
    }), numRuns(30));
  });

  test('a capacity at least N changes nothing; a smaller one drops the latest examples of a group, and its counts say so', () => {
    const o = { N: 7, d: 3, a: 3, b: 2, kP: 2, kS: 1, seed: 17, noisy: true, training: true };
    const sparse = runHierarchical('sparse', o);
    const roomy = runHierarchical('device', { ...o, capacity: 7 });
    assertClose(roomy.y, sparse.y, { rtol: 1e-12, atol: 1e-14, what: 'output with capacity N' });
    const tight = runHierarchical('device', { ...o, capacity: 3 });
    assert.deepEqual(tight.groupCounts, sparse.groupCounts.map((c) => Math.min(c, 3)));
    assert.ok(tight.y.every(Number.isFinite) && tight.grads.every(([, g]) => g.every(Number.isFinite)));
  });

  test('device dispatch: stats keep their contract; the host counts are not enumerable (tidy never reads them)', () => {
    const h = new mt.HierarchicalMoE({ inputSize: 3, outputSize: 2, hiddenSize: 4, numGroups: 3, expertsPerGroup: 2, dispatch: 'device', generator: new mt.Generator(3) });
    const out = h.forward(mt.randn([5, 3], { generator: new mt.Generator(4) }));
    assert.ok(!Object.keys(out.stats).includes('expertCounts') && !Object.keys(out.stats).includes('groupCounts'));
    assert.equal(out.stats.groupCounts.reduce((x, y) => x + y, 0), 5 * 2);
    assert.equal(out.stats.expertCounts.reduce((x, y) => x + y, 0), 5 * 2 * 2);
    assert.throws(() => new mt.HierarchicalMoE({ inputSize: 2, outputSize: 2, hiddenSize: 2, numGroups: 2, expertsPerGroup: 2, dispatch: 'magic' as 'sparse' }), /HierarchicalMoE: dispatch must be 'auto', 'sparse' or 'device', got 'magic'/);
    assert.throws(() => new mt.HierarchicalMoE({ inputSize: 2, outputSize: 2, hiddenSize: 2, numGroups: 2, expertsPerGroup: 2, capacity: 0 }), /HierarchicalMoE: capacity must be a positive integer, got 0/);
  });
});

describe('strictly balanced (batchwise) gating', () => {
  test('in training every expert takes exactly m = k·N/E examples; L_batchwise >= 0; thresholds at inference', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 2, max: 5 }), fc.integer({ min: 0, max: 1e6 }), (mult, E, seed) => {
      const k = 2 > E ? 1 : 2, N = E * mult;
      const moe = new mt.MoE({ inputSize: 3, outputSize: 2, hiddenSize: 4, numExperts: E, k, gating: 'batchwise', dtype: 'float64' });
      (moe.gate as mt.NoisyTopKGating).w_gate.assign(mt.tensor(values(3 * E, seed), [3, E], { dtype: 'float64' }));
      const x = mt.tensor(values(N * 3, seed + 1), [N, 3], { dtype: 'float64' });
      const { stats } = moe.forward(x);
      assert.deepEqual(stats.expertCounts, new Array(E).fill(k * mult));
      assert.ok(stats.batchwiseLoss!.item() >= 0);
      const rowSums = Array.from({ length: N }, (_, n) => Array.from(stats.gates.dataSync().subarray(n * E, (n + 1) * E)).reduce((a, b) => a + b, 0));
      rowSums.forEach((s) => assert.ok(s === 0 || Math.abs(s - 1) < 1e-12));
      moe.eval();
      assert.equal(moe.forward(x).stats.batchwiseLoss, undefined);
    }), numRuns(20));
  });

  test('L_batchwise is 0 exactly when the threshold mask agrees with the batchwise mask', () => {
    const X = mt.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]], { dtype: 'float64' });
    // m = 2: expert 0 takes rows 0 and 2, expert 1 takes rows 1 and 3.
    assert.deepEqual(mt.batchwiseMask(X, 2).toArray(), [[1, 0], [0, 1], [1, 0], [0, 1]]);
    assert.equal(mt.batchwiseThresholdLoss(X, mt.tensor([0.5, 0.5], { dtype: 'float64' }), 2).item(), 0);
    const loss = mt.batchwiseThresholdLoss(X, mt.tensor([0.25, 0.5], { dtype: 'float64' }), 2).item();
    assertClose([loss], [0.3 - 0.25], { rtol: 1e-12 }); // row 3: threshold says yes (0.3 > 0.25), batchwise says no
  });
});

describe('configuration errors and memory', () => {
  test('invalid configurations are clear errors', () => {
    const base = { inputSize: 4, outputSize: 4, hiddenSize: 8, numExperts: 4, k: 2 };
    assert.throws(() => new mt.MoE({ ...base, k: 0 }), /MoE: k must be a positive integer, got 0/);
    assert.throws(() => new mt.MoE({ ...base, k: 5 }), /MoE: k \(5\) cannot exceed numExperts \(4\)/);
    assert.throws(() => new mt.MoE({ ...base, hiddenSize: -1 }), /MoE: hiddenSize must be a positive integer, got -1/);
    assert.throws(() => new mt.MoE({ ...base, numExperts: 0 }), /MoE: numExperts must be a positive integer, got 0/);
    assert.throws(() => new mt.MoE({ ...base, gating: 'bogus' as 'softmax' }), /MoE: unknown gating 'bogus'/);
    assert.throws(() => new mt.MoE(base).forward(mt.zeros([3, 5])), /MoE: expected input \[\.\.\., 4\], got \[3, 5\]/);
    assert.throws(() => new mt.MoE(base).forward(mt.zeros([3, 4]), { noise: mt.zeros([3, 2]) }), /NoisyTopKGating: noise must have shape \[3, 4\], got \[3, 2\]/);
    assert.throws(() => new mt.HierarchicalMoE({ ...base, numGroups: 2, expertsPerGroup: 2, kPrimary: 3 }), /HierarchicalMoE: kPrimary \(3\) cannot exceed numGroups \(2\)/);
    assert.throws(() => new mt.MoELanguageModel({ vocabSize: 8, modelSize: 4, expertHidden: 4, k: 2, numExperts: 6, hierarchicalGroups: 4 }), /numExperts \(6\) must be divisible by hierarchicalGroups \(4\)/);
  });

  test('a full MoE forward + backward inside tidy leaks nothing', () => {
    const moe = new mt.MoE({ inputSize: 4, outputSize: 4, hiddenSize: 8, numExperts: 5, k: 2 });
    const x = mt.randn([16, 4]);
    const step = () => mt.tidy(() => { const r = moe.forward(x); r.output.square().mean().add(r.auxLoss).backward(); });
    step();
    moe.zeroGrad();
    const base = mt.memory().liveHandles;
    step();
    moe.zeroGrad();
    assert.equal(mt.memory().liveHandles, base);
  });
});
