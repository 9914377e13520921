// gradcheck in float64 of the gating math and the MoE layers, with the noise passed in
// and inputs built with a margin from top-k ties (see moe-helpers.ts), so finite
// differences never cross a routing boundary.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { mt, numRuns } from '../helpers.js';
import { gatingCase, values } from './moe-helpers.js';

type T = mt.Tensor;

/** A gate whose weights are the (differentiable) arguments. */
function gateFn(E: number, d: number, k: number, noise: T, pick: (o: mt.GatingOutput) => T | T[]) {
  const gate = new mt.NoisyTopKGating({ inputSize: d, numExperts: E, k, dtype: 'float64' });
  return (x: T, wGate: T, wNoise: T) => {
    gate.w_gate = wGate;
    gate.w_noise = wNoise;
    return pick(gate.forward(x, { noise }));
  };
}

const leaves = (...ts: T[]) => ts.map((t) => t.detach().requiresGrad_());

const caseArb = fc.record({
  N: fc.integer({ min: 1, max: 4 }), d: fc.integer({ min: 1, max: 3 }), E: fc.integer({ min: 2, max: 5 }),
  kRaw: fc.integer({ min: 1, max: 4 }), seed: fc.integer({ min: 0, max: 1e6 }),
});

describe('gradcheck: gating math (w.r.t. x, w_gate, w_noise)', () => {
  test('the gates (eqs. 3–5)', () => {
    fc.assert(fc.property(caseArb, ({ N, d, E, kRaw, seed }) => {
      const k = Math.min(kRaw, E);
      const c = gatingCase(N, d, E, seed);
      assert.ok(mt.gradcheck(gateFn(E, d, k, c.noise, (o) => o.gates), leaves(c.x, c.wGate, c.wNoise)));
    }), numRuns(20));
  });

  test('the smooth load estimator P(x, i) summed over the batch (eqs. 8–10)', () => {
    fc.assert(fc.property(caseArb, ({ N, d, E, kRaw, seed }) => {
      const k = Math.min(kRaw, E - 1);
      const c = gatingCase(N, d, E, seed);
      assert.ok(mt.gradcheck(gateFn(E, d, k, c.noise, (o) => o.load), leaves(c.x, c.wGate, c.wNoise)));
    }), numRuns(20));
  });

  test('both CV² losses: CV²(importance) (eq. 7) and CV²(load) (eq. 11)', () => {
    fc.assert(fc.property(caseArb, ({ N, d, E, kRaw, seed }) => {
      const k = Math.min(kRaw, E - 1);
      const c = gatingCase(N, d, E, seed);
      const fn = gateFn(E, d, k, c.noise, (o) => [mt.cvSquared(o.importance), mt.cvSquared(o.load)]);
      assert.ok(mt.gradcheck(fn, leaves(c.x, c.wGate, c.wNoise)));
    }), numRuns(20));
  });

  test('second derivatives of the gates and the load (gradgradcheck)', () => {
    const c = gatingCase(3, 2, 4, 5);
    assert.ok(mt.gradgradcheck(gateFn(4, 2, 2, c.noise, (o) => [o.gates, o.load]), leaves(c.x, c.wGate, c.wNoise)));
  });
});

/** Runs an MoE with its parameters replaced by the gradcheck's leaves. */
function moeFn(moe: mt.Module & { forward(x: T, o: object): mt.MoEOutput }, forwardOptions: object, r: T) {
  const names = moe.namedParameters().map(([n]) => n);
  return (x: T, ...params: T[]) => {
    setParams(moe, names, params);
    const out = moe.forward(x, forwardOptions);
    return [out.output.mul(r).sum(), out.auxLoss];
  };
}

/** Points the module's parameter properties at new tensors (by dotted name). */
function setParams(module: mt.Module, names: string[], params: T[]): void {
  names.forEach((name, i) => {
    const path = name.split('.');
    let owner: Record<string, unknown> = module as unknown as Record<string, unknown>;
    for (const part of path.slice(0, -1)) owner = owner[part] as Record<string, unknown>;
    owner[path[path.length - 1]!] = params[i];
  });
}

describe('gradcheck: MoE layers', () => {
  for (const seed of [1, 2, 3]) {
    test(`the MoE layer: output and auxLoss w.r.t. x and every parameter (seed ${seed})`, () => {
      const c = gatingCase(5, 3, 4, seed);
      mt.manualSeed(seed);
      const moe = new mt.MoE({ inputSize: 3, outputSize: 2, hiddenSize: 3, numExperts: 4, k: 2, dtype: 'float64' });
      moe.loadStateDict({ 'gate.w_gate': c.wGate, 'gate.w_noise': c.wNoise }, { strict: false });
      // Keep expert pre-activations away from relu's kink (checked, not assumed).
      for (const e of moe.experts) e.fc1.bias!.assign(mt.tensor(values(3, seed + 50, 0.5), [3], { dtype: 'float64' }));
      const pre = mt.noGrad(() => moe.experts.map((e) => e.fc1.forward(c.x).abs().min().item()));
      assert.ok(Math.min(...pre) > 1e-3, `relu margin ${Math.min(...pre)}`);
      const r = mt.tensor(values(10, seed + 7), [5, 2], { dtype: 'float64' });
      assert.ok(mt.gradcheck(moeFn(moe, { noise: c.noise }, r), leaves(c.x, ...moe.parameters())));
    });
  }

  for (const dispatch of ['sparse', 'device'] as const) test(`the hierarchical MoE (${dispatch} dispatch): output and auxLoss (Importance_H, Load_H) w.r.t. x and every parameter`, () => {
    mt.manualSeed(9);
    const h = new mt.HierarchicalMoE({ inputSize: 2, outputSize: 2, hiddenSize: 2, numGroups: 3, expertsPerGroup: 2, kPrimary: 2, kSecondary: 1, dtype: 'float64', dispatch });
    const N = 4;
    const x = mt.tensor(values(N * 2, 91), [N, 2], { dtype: 'float64' });
    // Gate weights with spread, and noise solved so every gate's noisy logits are well separated.
    const primary = gatingCase(N, 2, 3, 92), groups = [0, 1, 2].map((i) => gatingCase(N, 2, 2, 93 + i));
    const pin = (gate: mt.NoisyTopKGating, c: ReturnType<typeof gatingCase>) => {
      gate.w_gate.assign(c.wGate); gate.w_noise.assign(c.wNoise);
      return mt.noGrad(() => mt.tidy(() => mt.tensor(c.H, [N, c.wGate.shape[1]!], { dtype: 'float64' })
        .sub(x.matmul(c.wGate)).div(x.matmul(c.wNoise).softplus().add(0.01))));
    };
    const noise = { primary: pin(h.primary, primary), secondary: h.groups.map((g, i) => pin(g.gate, groups[i]!)) };
    for (const g of h.groups) for (const e of g.experts) e.fc1.bias!.assign(mt.tensor([0.7, -0.6], { dtype: 'float64' }));
    const r = mt.tensor(values(N * 2, 99), [N, 2], { dtype: 'float64' });
    const fn = moeFn(h as unknown as mt.Module & { forward(x: T, o: object): mt.MoEOutput }, { noise }, r);
    assert.ok(mt.gradcheck(fn, leaves(x, ...h.parameters())));
  });

  test('the batchwise threshold loss L_batchwise (eq. 20) w.r.t. the thresholds T', () => {
    const X = mt.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]], { dtype: 'float64' });
    for (const t of [[0.25, 0.5], [0.65, 0.35], [0.1, 0.95]]) {
      assert.ok(mt.gradcheck((T) => mt.batchwiseThresholdLoss(X, T, 2), [mt.tensor(t, { dtype: 'float64', requiresGrad: true })]));
    }
  });

  test('the batchwise-gated MoE layer w.r.t. x and every parameter', () => {
    mt.manualSeed(10);
    // L_batchwise treats the gate values as constants on purpose (it trains T only), which a
    // finite difference in x cannot see; it is checked on its own above, so weight it 0 here.
    const moe = new mt.MoE({ inputSize: 3, outputSize: 2, hiddenSize: 3, numExperts: 3, k: 1, gating: 'batchwise', wBatchwise: 0, dtype: 'float64' });
    (moe.gate as mt.NoisyTopKGating).w_gate.assign(mt.tensor(values(9, 101, 2), [3, 3], { dtype: 'float64' }));
    for (const e of moe.experts) e.fc1.bias!.assign(mt.tensor([0.5, -0.5, 0.6], { dtype: 'float64' }));
    const x = mt.tensor(values(18, 102), [6, 3], { dtype: 'float64' });
    const r = mt.tensor(values(12, 103), [6, 2], { dtype: 'float64' });
    assert.ok(mt.gradcheck(moeFn(moe, {}, r), leaves(x, ...moe.parameters())));
  });
});
