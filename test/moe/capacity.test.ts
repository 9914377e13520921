// Expert capacity and token dropping (src/moe/capacity.ts) as properties: the capacity is
// never exceeded, the drop order is by choice rank then position, dropped routes give zero
// output and zero gradient through their gate (the layer equals a dense reference whose
// gates are masked), and a capacity nobody reaches changes nothing. Plus float64 gradcheck.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { assertClose, mt, numRuns } from '../helpers.js';
import { gatingCase, values } from './moe-helpers.js';
import { denseMoE, gradOf, leaves, moeFn } from './router-helpers.js';

/** An independent statement of the order: route (n, r) is kept iff fewer than C earlier (rank, row) routes chose its expert. */
function bruteKeep(idx: ArrayLike<number>, N: number, k: number, E: number, C: number): number[] {
  const keep = new Array<number>(N * E).fill(1);
  for (let n = 0; n < N; n++) {
    for (let r = 0; r < k; r++) {
      const e = idx[n * k + r]!;
      let earlier = 0;
      for (let r2 = 0; r2 <= r; r2++) for (let n2 = 0; n2 < N; n2++) {
        if ((r2 < r || n2 < n) && idx[n2 * k + r2] === e) earlier++;
      }
      if (earlier >= C) keep[n * E + e] = 0;
    }
  }
  return keep;
}

const routesArb = fc.record({
  N: fc.integer({ min: 1, max: 9 }), E: fc.integer({ min: 1, max: 6 }), kRaw: fc.integer({ min: 1, max: 4 }),
  factor: fc.constantFrom(0.25, 0.5, 0.75, 1, 1.25, 2), seed: fc.integer({ min: 0, max: 1e6 }),
});

describe('dropOverCapacity', () => {
  test('capacity = ⌈factor·k·N/E⌉ is never exceeded; kept = min(C, wanted); order by rank then position; fractions add up', () => {
    fc.assert(fc.property(routesArb, ({ N, E, kRaw, factor, seed }) => {
      const k = Math.min(kRaw, E);
      // Each row: k distinct experts from a seeded shuffle.
      const v = values(N * E, seed);
      const idx: number[] = [];
      for (let n = 0; n < N; n++) idx.push(...Array.from({ length: E }, (_, e) => e).sort((a, b) => v[n * E + a]! - v[n * E + b]!).slice(0, k));
      const C = mt.expertCapacity(factor, k, N, E);
      assert.equal(C, Math.max(1, Math.ceil(factor * k * N / E - 1e-9)));
      const drop = mt.dropOverCapacity(mt.tensor(idx, [N, k], { dtype: 'int32' }), E, C, 'float64');
      const keep = Array.from(drop.keep.dataSync());
      assert.deepEqual(keep, bruteKeep(idx, N, k, E, C));
      const wanted = new Array<number>(E).fill(0);
      for (const e of idx) wanted[e]!++;
      assert.deepEqual(drop.keptCounts, wanted.map((w) => Math.min(w, C)));
      const dropped = wanted.reduce((a, w) => a + w - Math.min(w, C), 0);
      assert.equal(drop.droppedFraction, dropped / (N * k));
      assert.deepEqual(drop.droppedPerExpert, wanted.map((w) => (w === 0 ? 0 : (w - Math.min(w, C)) / w)));
    }), numRuns(60));
  });

  test('bad capacity factors are one clear error each', () => {
    for (const f of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(() => mt.expertCapacity(f, 2, 8, 4), { message: `expertCapacity: capacityFactor must be a positive number, got ${f}` });
    }
  });
});

const layerArb = fc.record({
  N: fc.integer({ min: 2, max: 8 }), d: fc.integer({ min: 1, max: 3 }), E: fc.integer({ min: 2, max: 5 }),
  kRaw: fc.integer({ min: 1, max: 3 }), factor: fc.constantFrom(0.25, 0.5, 0.75, 1), seed: fc.integer({ min: 0, max: 1e6 }),
  dispatch: fc.constantFrom('sparse' as const, 'device' as const),
});

describe('MoE with capacityFactor (noisy top-k)', () => {
  test('equals the dense reference with the dropped gates zeroed, in value and every gradient; dropped rows give 0 and no gradient', () => {
    fc.assert(fc.property(layerArb, ({ N, d, E, kRaw, factor, seed, dispatch }) => {
      const k = Math.min(kRaw, E);
      const c = gatingCase(N, d, E, seed);
      mt.manualSeed(seed);
      const moe = new mt.MoE({ inputSize: d, outputSize: 2, hiddenSize: 3, numExperts: E, k, dtype: 'float64', capacityFactor: factor, dispatch, wImportance: 0, wLoad: 0 });
      moe.loadStateDict({ 'gate.w_gate': c.wGate, 'gate.w_noise': c.wNoise }, { strict: false });
      const r = mt.tensor(values(N * 2, seed + 9), [N, 2], { dtype: 'float64' });
      const x1 = c.x.detach().requiresGrad_();
      const out = moe.forward(x1, { noise: c.noise });
      out.output.mul(r).sum().backward();
      const sparseGrads = moe.parameters().map(gradOf), xGrad = gradOf(x1);
      moe.zeroGrad();

      const C = mt.expertCapacity(factor, k, N, E);
      const gate = moe.gate as mt.NoisyTopKGating;
      const g = gate.forward(c.x, { noise: c.noise });
      const keep = bruteKeep(g.indices.dataSync(), N, k, E, C);
      assert.ok(out.stats.expertCounts.every((n) => n <= C), `counts ${out.stats.expertCounts} over capacity ${C}`);
      assert.deepEqual(Array.from(out.stats.gates.dataSync()).map((v) => (v > 0 ? 1 : 0)), Array.from(g.gates.dataSync()).map((v, i) => (v > 0 ? keep[i]! : 0)));
      const x2 = c.x.detach().requiresGrad_();
      const dense = denseMoE(moe, x2, gate.forward(x2, { noise: c.noise }).gates.mul(mt.tensor(keep, [N, E], { dtype: 'float64' })));
      dense.mul(r).sum().backward();
      assertClose(out.output.dataSync(), dense.dataSync(), { rtol: 1e-12, atol: 1e-14, what: 'output' });
      assertClose(xGrad, gradOf(x2), { rtol: 1e-10, atol: 1e-12, what: 'x.grad' });
      moe.parameters().forEach((p, i) => assertClose(sparseGrads[i]!, gradOf(p), { rtol: 1e-10, atol: 1e-12, what: 'parameter grad' }));
      // A row whose every route was dropped: zero output, and its input gets no gradient.
      for (let n = 0; n < N; n++) {
        const idx = g.indices.dataSync();
        if (Array.from({ length: k }, (_, r2) => keep[n * E + idx[n * k + r2]!]).every((v) => v === 0)) {
          assert.deepEqual(Array.from(out.output.dataSync().subarray(n * 2, n * 2 + 2)), [0, 0]);
          assert.deepEqual(xGrad.slice(n * d, (n + 1) * d), new Array<number>(d).fill(0));
        }
      }
      const dropped = keep.filter((v, i) => v === 0 && g.gates.dataSync()[i]! > 0).length;
      assert.equal(out.stats.droppedFraction, dropped / (N * k));
    }), numRuns(30));
  });

  test('a capacity nobody reaches changes nothing (droppedFraction 0)', () => {
    const c = gatingCase(6, 3, 4, 11);
    const run = (capacityFactor?: number) => {
      mt.manualSeed(3);
      const moe = new mt.MoE({ inputSize: 3, outputSize: 2, hiddenSize: 3, numExperts: 4, k: 2, dtype: 'float64', ...(capacityFactor ? { capacityFactor } : {}) });
      moe.loadStateDict({ 'gate.w_gate': c.wGate, 'gate.w_noise': c.wNoise }, { strict: false });
      const out = moe.forward(c.x, { noise: c.noise });
      out.output.sum().add(out.auxLoss).backward();
      return { y: Array.from(out.output.dataSync()), grads: moe.parameters().map(gradOf), dropped: out.stats.droppedFraction };
    };
    const a = run(), b = run(2);
    assert.deepEqual(b.y, a.y);
    assert.deepEqual(b.grads, a.grads);
    assert.equal(a.dropped, 0);
    assert.equal(b.dropped, 0);
  });

  for (const seed of [1, 2, 3]) {
    test(`gradcheck with routes dropped (capacityFactor 0.5): output and auxLoss w.r.t. x and every parameter (seed ${seed})`, () => {
      const c = gatingCase(6, 3, 4, seed);
      mt.manualSeed(seed);
      const moe = new mt.MoE({ inputSize: 3, outputSize: 2, hiddenSize: 3, numExperts: 4, k: 2, dtype: 'float64', capacityFactor: 0.5 });
      moe.loadStateDict({ 'gate.w_gate': c.wGate, 'gate.w_noise': c.wNoise }, { strict: false });
      for (const e of moe.experts) e.fc1.bias!.assign(mt.tensor(values(3, seed + 50, 0.5), [3], { dtype: 'float64' }));
      const pre = mt.noGrad(() => moe.experts.map((e) => e.fc1.forward(c.x).abs().min().item()));
      assert.ok(Math.min(...pre) > 1e-3, `relu margin ${Math.min(...pre)}`);
      assert.ok(moe.forward(c.x, { noise: c.noise }).stats.droppedFraction! > 0, 'this case must drop routes');
      const r = mt.tensor(values(12, seed + 7), [6, 2], { dtype: 'float64' });
      assert.ok(mt.gradcheck(moeFn(moe, { noise: c.noise }, r), leaves(c.x, ...moe.parameters())));
    });
  }

  test('bad configurations are one clear error each', () => {
    const base = { inputSize: 2, outputSize: 2, hiddenSize: 2, numExperts: 4, k: 2 };
    assert.throws(() => new mt.MoE({ ...base, capacityFactor: 0 }), { message: 'MoE: capacityFactor must be a positive number, got 0' });
    assert.throws(() => new mt.MoE({ ...base, capacityFactor: -1 }), { message: 'MoE: capacityFactor must be a positive number, got -1' });
    assert.throws(() => new mt.MoE({ ...base, gating: 'batchwise', capacityFactor: 1 }), { message: "MoE: capacityFactor applies to token-choice routers (noisy-topk, switch, gshard, hash, deepseek) and expert-choice, not gating 'batchwise'" });
    assert.throws(() => new mt.MoE({ ...base, gating: 'softmax', capacityFactor: 1 }), { message: "MoE: capacityFactor applies to token-choice routers (noisy-topk, switch, gshard, hash, deepseek) and expert-choice, not gating 'softmax'" });
    assert.throws(() => new mt.MoE({ ...base, capacityFactor: Infinity }), { message: 'MoE: capacityFactor must be a positive number, got Infinity' });
    assert.throws(() => new mt.MoE({ ...base, k: 5 }), { message: 'MoE: k (5) cannot exceed numExperts (4)' });
    assert.throws(() => new mt.MoE({ ...base, capacityFactor: 1, capacity: 3 }), { message: 'MoE: give capacityFactor or capacity, not both (capacityFactor sets the device buffers too)' });
  });
});
