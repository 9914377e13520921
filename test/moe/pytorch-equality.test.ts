// Noisy top-k gating, the smooth load estimator, cv_squared and the MoE layer give the
// values and gradients of an independent PyTorch float64 reference to within 1e-9
// relative. The reference computes the MoE densely (every expert on every row, times its
// gate), so it also checks the sparse dispatch/combine. Fixtures:
// test/fixtures/moe/torch_moe.json, made by scripts/fixtures/make_moe_fixtures.py
// (Debian's python3-torch), which also checks the notes' §1.13 table and compares the
// "k+1-th value" threshold with a brute-force kth_excluding.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { assertClose, mt } from '../helpers.js';

interface Flat { shape: number[]; values: number[] }
const fixture = JSON.parse(readFileSync('test/fixtures/moe/torch_moe.json', 'utf8')) as { torch_version: string; cases: Record<string, unknown> };
const cases = fixture.cases;

const tol = { rtol: 1e-9, atol: 1e-12 };
const t64 = (f: Flat, requiresGrad = false) => mt.tensor(f.values, f.shape, { dtype: 'float64', requiresGrad });
const expect = (t: mt.Tensor, f: Flat, what: string) => {
  assert.deepEqual([...t.shape], f.shape, `${what}: shape [${t.shape}] vs PyTorch [${f.shape}]`);
  assertClose(t.dataSync(), f.values, { ...tol, what });
};
const expectScalar = (t: mt.Tensor, v: number, what: string) => {
  assert.equal(t.rank, 0, `${what}: expected a 0-d tensor`);
  assertClose([t.item()], [v], { ...tol, what });
};
/** Integer outputs (expert indices) must match exactly. */
const expectExact = (t: mt.Tensor, f: Flat, what: string) => {
  assert.equal(t.dtype, 'int32', `${what}: dtype`);
  assert.deepEqual([...t.shape], f.shape, `${what}: shape`);
  assert.deepEqual(Array.from(t.dataSync()), f.values, what);
};
/** A gradient; PyTorch's None (the loss does not depend on the tensor) is recorded as zeros. */
const gradValues = (p: mt.Tensor): ArrayLike<number> => p.grad?.dataSync() ?? new Float64Array(p.size);

interface GatingCase {
  N: number; d: number; E: number; k: number; train: boolean; noisy: boolean; noise_epsilon: number;
  x: Flat; w_gate: Flat; w_noise: Flat; noise: Flat; r: Flat;
  clean_logits: Flat; noisy_logits: Flat; noise_stddev: Flat | null;
  gates: Flat; indices: Flat; importance: Flat; load: Flat;
  cv_importance_sq: number; cv_load_sq: number; loss: number;
  x_grad: Flat; w_gate_grad: Flat; w_noise_grad: Flat;
}

interface MoECase {
  N: number; d: number; h: number; out: number; E: number; k: number; train: boolean;
  w_importance: number; w_load: number; noise_epsilon: number; starved: number | null;
  state: Record<string, Flat>; x: Flat; noise: Flat; r: Flat;
  output: Flat; aux_loss: number; loss: number;
  stats: {
    gates: Flat; indices: Flat; importance: Flat; load: Flat; expert_counts: number[];
    cv_importance: number; cv_load: number; gate_entropy: number;
  };
  grads: Record<string, number[]>; x_grad: Flat;
}

function makeMoE(c: MoECase): mt.MoE {
  const moe = new mt.MoE({
    inputSize: c.d, outputSize: c.out, hiddenSize: c.h, numExperts: c.E, k: c.k,
    noiseEpsilon: c.noise_epsilon, wImportance: c.w_importance, wLoad: c.w_load, dtype: 'float64',
  });
  moe.loadStateDict(Object.fromEntries(Object.entries(c.state).map(([k, v]) => [k, t64(v)])));
  return c.train ? moe.train() : moe.eval();
}

describe(`MoE equality with PyTorch ${fixture.torch_version} (float64)`, () => {
  const gatingCases: [string, string][] = [
    ['gating_k2_E4', 'training, k = 2 of 4: smooth load'],
    ['gating_k1_E5', 'training, k = 1 of 5 (gate ≡ 1)'],
    ['gating_k3_E5', 'training, k = 3 of 5, noiseEpsilon 0.05'],
    ['gating_k4_E4', 'training, k = E = 4: noise added, load = counts'],
    ['gating_noiseless_train', 'training with noisy = false: load = counts'],
    ['gating_eval', 'eval mode: no noise, load = counts'],
  ];
  for (const [name, title] of gatingCases) {
    test(`NoisyTopKGating ${title}: logits, gates, importance, load, CV² and gradients`, () => {
      const c = cases[name] as GatingCase;
      const gate = new mt.NoisyTopKGating({ inputSize: c.d, numExperts: c.E, k: c.k, noisy: c.noisy, noiseEpsilon: c.noise_epsilon, dtype: 'float64' });
      gate.loadStateDict({ w_gate: t64(c.w_gate), w_noise: t64(c.w_noise) });
      if (!c.train) gate.eval();
      const x = t64(c.x, true);
      const g = gate.forward(x, { noise: t64(c.noise) });
      expect(g.cleanLogits, c.clean_logits, 'clean logits');
      expect(g.noisyLogits, c.noisy_logits, 'noisy logits');
      if (c.noise_stddev === null) assert.equal(g.noiseStddev, null, 'no noise stddev without noise');
      else expect(g.noiseStddev!, c.noise_stddev, 'noise stddev');
      expect(g.gates, c.gates, 'gates');
      expectExact(g.indices, c.indices, 'indices');
      expect(g.importance, c.importance, 'importance');
      expect(g.load, c.load, 'load');
      const cvImp = mt.cvSquared(g.importance), cvLoad = mt.cvSquared(g.load);
      expectScalar(cvImp, c.cv_importance_sq, 'cvSquared(importance)');
      expectScalar(cvLoad, c.cv_load_sq, 'cvSquared(load)');
      const loss = g.gates.mul(t64(c.r)).sum().add(cvImp).add(cvLoad);
      expectScalar(loss, c.loss, 'loss');
      loss.backward();
      expect(x.grad!, c.x_grad, 'x.grad');
      assertClose(gradValues(gate.w_gate), c.w_gate_grad.values, { ...tol, what: 'w_gate.grad' });
      assertClose(gradValues(gate.w_noise), c.w_noise_grad.values, { ...tol, what: 'w_noise.grad' });
    });
  }

  const moeCases: [string, string][] = [
    ['moe_train', 'training, k = 2 of 4'],
    ['moe_starved_expert', 'an expert that receives no example (wImportance 0.3, wLoad 0.05)'],
    ['moe_eval', 'eval mode'],
    ['moe_k1', 'training, k = 1'],
  ];
  for (const [name, title] of moeCases) {
    test(`MoE ${title}: output, auxLoss, stats and every gradient equal the dense reference`, () => {
      const c = cases[name] as MoECase;
      const moe = makeMoE(c);
      const x = t64(c.x, true);
      const { output, auxLoss, stats } = moe.forward(x, { noise: t64(c.noise) });
      expect(output, c.output, 'output');
      expectScalar(auxLoss, c.aux_loss, 'auxLoss');
      expect(stats.gates, c.stats.gates, 'stats.gates');
      expectExact(stats.indices, c.stats.indices, 'stats.indices');
      expect(stats.importance, c.stats.importance, 'stats.importance');
      expect(stats.load, c.stats.load, 'stats.load');
      assert.deepEqual(stats.expertCounts, c.stats.expert_counts, 'stats.expertCounts');
      expectScalar(stats.cvImportance, c.stats.cv_importance, 'stats.cvImportance');
      expectScalar(stats.cvLoad, c.stats.cv_load, 'stats.cvLoad');
      expectScalar(stats.gateEntropy, c.stats.gate_entropy, 'stats.gateEntropy');
      const loss = output.mul(t64(c.r)).sum().add(auxLoss);
      expectScalar(loss, c.loss, 'loss');
      loss.backward();
      expect(x.grad!, c.x_grad, 'x.grad');
      const names = moe.namedParameters().map(([n]) => n);
      assert.deepEqual(names.slice().sort(), Object.keys(c.grads).sort(), 'parameter names');
      for (const [n, p] of moe.namedParameters()) assertClose(gradValues(p), c.grads[n]!, { ...tol, what: `grad of ${n}` });
      if (c.starved !== null) {
        assert.equal(stats.expertCounts[c.starved], 0);
        for (const [n, p] of moe.namedParameters()) {
          if (!n.startsWith(`experts.${c.starved}.`)) continue;
          assert.ok(Array.from(gradValues(p)).every((v) => v === 0), `${n}: the unrouted expert's gradient must be exactly zero`);
        }
      }
    });
  }

  test('MoE on a [2, 4, d] input equals the same rows flattened (the "convolutional" batching)', () => {
    const c = cases.moe_train as MoECase;
    const moe = makeMoE(c);
    const x = mt.tensor(c.x.values, [2, c.N / 2, c.d], { dtype: 'float64', requiresGrad: true });
    const { output, auxLoss } = moe.forward(x, { noise: t64(c.noise) });
    assert.deepEqual([...output.shape], [2, c.N / 2, c.out]);
    assertClose(output.dataSync(), c.output.values, { ...tol, what: 'output' });
    output.mul(mt.tensor(c.r.values, [2, c.N / 2, c.out], { dtype: 'float64' })).sum().add(auxLoss).backward();
    assertClose(x.grad!.dataSync(), c.x_grad.values, { ...tol, what: 'x.grad' });
    for (const [n, p] of moe.namedParameters()) assertClose(gradValues(p), c.grads[n]!, { ...tol, what: `grad of ${n}` });
  });

  test('the hand-worked vectors of the notes §1.13 (n = 4, k = 2, noise_eps = 0)', () => {
    const c = cases.notes_1_13 as {
      table: {
        softplus_r: number[][]; H: number[][]; G: number[][]; P: number[][];
        importance: number[]; load: number[]; cv2_importance: number; cv2_load: number; P_example1_eps001: number[];
      };
      x: Flat; w_gate: Flat; w_noise: Flat; noise: Flat;
      noise_stddev: Flat; noisy_logits: Flat; gates: Flat; indices: Flat; P: Flat;
      importance: Flat; load: Flat; cv_importance_sq: number; cv_load_sq: number; P_example1_eps001: Flat;
    };
    const T = c.table;
    const table = { rtol: 0, atol: 1e-6 };
    const makeGate = (noiseEpsilon: number) => {
      const gate = new mt.NoisyTopKGating({ inputSize: 4, numExperts: 4, k: 2, noiseEpsilon, dtype: 'float64' });
      gate.loadStateDict({ w_gate: t64(c.w_gate), w_noise: t64(c.w_noise) });
      return gate;
    };
    const gate = makeGate(0);
    const x = t64(c.x), noise = t64(c.noise);
    const g = gate.forward(x, { noise });
    // Against the PyTorch reference at full precision...
    expect(g.noiseStddev!, c.noise_stddev, 'softplus(r)');
    expect(g.noisyLogits, c.noisy_logits, 'H');
    expect(g.gates, c.gates, 'G');
    expectExact(g.indices, c.indices, 'indices');
    expect(g.importance, c.importance, 'Importance');
    expect(g.load, c.load, 'Load');
    expectScalar(mt.cvSquared(g.importance), c.cv_importance_sq, 'CV²(Importance)');
    expectScalar(mt.cvSquared(g.load), c.cv_load_sq, 'CV²(Load)');
    // ...and against the table's printed 6 decimals.
    assertClose(g.noiseStddev!.dataSync(), T.softplus_r.flat(), { ...table, what: 'table softplus(r)' });
    assertClose(g.noisyLogits.dataSync(), T.H.flat(), { ...table, what: 'table H' });
    assertClose(g.gates.dataSync(), T.G.flat(), { ...table, what: 'table G' });
    assertClose(g.importance.dataSync(), T.importance, { ...table, what: 'table Importance' });
    assertClose(g.load.dataSync(), T.load, { ...table, what: 'table Load' });
    assertClose([mt.cvSquared(g.importance).item()], [T.cv2_importance], { ...table, what: 'table CV²(Importance)' });
    assertClose([mt.cvSquared(g.load).item()], [T.cv2_load], { ...table, what: 'table CV²(Load)' });
    assertClose([mt.cvSquared(mt.tensor([1, 2, 3, 4], [4], { dtype: 'float64' })).item()], [0.2], { ...table, what: 'CV²([1,2,3,4])' });
    // P(x, ·) per example: the load of a one-row batch.
    for (let n = 0; n < 3; n++) {
      const row = (t: mt.Tensor) => mt.tensor(Array.from(t.dataSync()).slice(n * 4, n * 4 + 4), [1, 4], { dtype: 'float64' });
      const p = gate.forward(row(x), { noise: row(noise) }).load;
      assertClose(p.dataSync(), c.P.values.slice(n * 4, n * 4 + 4), { ...tol, what: `P(x${n + 1}, ·)` });
      assertClose(p.dataSync(), T.P[n]!, { ...table, what: `table P(x${n + 1}, ·)` });
    }
    // With tensor2tensor's noise_eps = 0.01 (in H and in Φ), example 1.
    const p1 = makeGate(0.01).forward(mt.tensor([1, 0, 0, 0], [1, 4], { dtype: 'float64' }), {
      noise: mt.tensor(Array.from(noise.dataSync()).slice(0, 4), [1, 4], { dtype: 'float64' }),
    }).load;
    assertClose(p1.dataSync(), c.P_example1_eps001.values, { ...tol, what: 'P(x1, ·), eps 0.01' });
    assertClose(p1.dataSync(), T.P_example1_eps001, { ...table, what: 'table P(x1, ·), eps 0.01' });
  });
});
