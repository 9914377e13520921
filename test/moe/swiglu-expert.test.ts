// The SwiGLU expert (Mixtral's w2(silu(w1·x) ⊙ w3·x)) in the MoE: Mixtral's state-dict names,
// the layer equal to a dense "every expert, weighted by its gate" reference, gradcheck in
// float64 on both dispatchers, compute matching in the language models, and errors.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { assertClose, mt } from '../helpers.js';
import { gatingCase, values } from './moe-helpers.js';

type T = mt.Tensor;
const leaves = (...ts: T[]) => ts.map((t) => t.detach().requiresGrad_());

function setParams(module: mt.Module, names: string[], params: T[]): void {
  names.forEach((name, i) => {
    const path = name.split('.');
    let owner: Record<string, unknown> = module as unknown as Record<string, unknown>;
    for (const part of path.slice(0, -1)) owner = owner[part] as Record<string, unknown>;
    owner[path[path.length - 1]!] = params[i];
  });
}

describe('SwiGLU experts', () => {
  test("state-dict names and shapes are Mixtral's: experts.{i}.w1|w2|w3.weight, no biases", () => {
    const moe = new mt.MoE({ inputSize: 6, outputSize: 5, hiddenSize: 4, numExperts: 3, k: 2, expert: 'swiglu' });
    const shapes = Object.fromEntries(moe.namedParameters().map(([n, p]) => [n, p.shape]));
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(shapes[`experts.${i}.w1.weight`], [4, 6]);
      assert.deepEqual(shapes[`experts.${i}.w2.weight`], [5, 4]);
      assert.deepEqual(shapes[`experts.${i}.w3.weight`], [4, 6]);
    }
    assert.deepEqual(Object.keys(shapes).filter((n) => n.startsWith('experts.0.')), ['experts.0.w1.weight', 'experts.0.w2.weight', 'experts.0.w3.weight']);
    assert.ok(moe.experts[0] instanceof mt.SwiGLUExpert);
    assert.ok(new mt.MoE({ inputSize: 2, outputSize: 2, hiddenSize: 2, numExperts: 2, k: 1 }).experts[0] instanceof mt.Expert);
  });

  test('one expert computes w2(silu(w1·x) ⊙ w3·x)', () => {
    const e = new mt.SwiGLUExpert(3, 4, 2, { dtype: 'float64' });
    const x = mt.tensor(values(6, 3), [2, 3], { dtype: 'float64' });
    const w1 = e.w1.weight.toArray() as number[][], w2 = e.w2.weight.toArray() as number[][], w3 = e.w3.weight.toArray() as number[][];
    const xs = x.toArray() as number[][];
    const dot = (a: number[], b: number[]) => a.reduce((s, v, i) => s + v * b[i]!, 0);
    const ref = xs.flatMap((row) => {
      const h = w1.map((w, j) => { const a = dot(w, row); return (a / (1 + Math.exp(-a))) * dot(w3[j]!, row); });
      return w2.map((w) => dot(w, h));
    });
    assertClose(Array.from(e.forward(x).dataSync()), ref, { rtol: 1e-12, atol: 1e-14, what: 'SwiGLU expert' });
  });

  for (const dispatch of ['sparse', 'device'] as const) {
    test(`the MoE with SwiGLU experts equals Σ gate · expert(x) over all experts, and passes gradcheck (${dispatch})`, () => {
      const c = gatingCase(5, 3, 4, 11);
      mt.manualSeed(11);
      const moe = new mt.MoE({ inputSize: 3, outputSize: 2, hiddenSize: 3, numExperts: 4, k: 2, dtype: 'float64', expert: 'swiglu', dispatch });
      moe.loadStateDict({ 'gate.w_gate': c.wGate, 'gate.w_noise': c.wNoise }, { strict: false });
      const out = moe.forward(c.x, { noise: c.noise });
      const dense = mt.noGrad(() => moe.experts.map((e, i) => e.forward(c.x).mul(out.stats.gates.slice([0, i], [-1, 1]))).reduce((a, b) => a.add(b)));
      assertClose(Array.from(out.output.dataSync()), Array.from(dense.dataSync()), { rtol: 1e-12, atol: 1e-14, what: 'sparse vs dense' });
      const r = mt.tensor(values(10, 17), [5, 2], { dtype: 'float64' });
      const names = moe.namedParameters().map(([n]) => n);
      const fn = (x: T, ...params: T[]) => {
        setParams(moe, names, params);
        const o = moe.forward(x, { noise: c.noise });
        return [o.output.mul(r).sum(), o.auxLoss];
      };
      assert.ok(mt.gradcheck(fn, leaves(c.x, ...moe.parameters())));
    });
  }

  test('compute-matched: the SwiGLU hidden size is round(2/3 · expertHidden), multiply-adds and weights match', () => {
    assert.equal(mt.swigluHidden(96), 64);
    assert.equal(mt.swigluHidden(64), 43);
    const base = { vocabSize: 20, modelSize: 12, expertHidden: 48, k: 2, numExperts: 4 };
    const mlp = new mt.MoELanguageModel(base), glu = new mt.MoELanguageModel({ ...base, expert: 'swiglu' });
    assert.equal((glu.moe as mt.MoE<mt.ExpertKind>).hiddenSize, 32);
    assert.equal(glu.opsPerToken().mixture, mlp.opsPerToken().mixture); // 3·12·32 = 2·12·48
    const expertWeights = (m: mt.MoELanguageModel) => m.namedParameters().filter(([n]) => /^moe\.experts\.0\..*weight$/.test(n)).reduce((s, [, p]) => s + p.size, 0);
    assert.equal(expertWeights(glu), expertWeights(mlp));
    const dense = new mt.DenseLanguageModel({ ...base, expert: 'swiglu' });
    assert.ok(dense.ffn instanceof mt.SwiGLUExpert);
    assert.equal(dense.opsPerToken().mixture, new mt.DenseLanguageModel(base).opsPerToken().mixture);
    const ids = mt.tensor([[1, 2, 3], [4, 5, 6]], { dtype: 'int32' });
    const o = glu.forward(ids);
    assert.deepEqual(o.logits.shape, [2, 3, 20]);
    assert.ok(Number.isFinite(o.logits.sum().item()));
  });

  test('bad input: an unknown expert kind, SwiGLU in the hierarchical MoE', () => {
    assert.throws(() => new mt.MoE({ inputSize: 2, outputSize: 2, hiddenSize: 2, numExperts: 2, k: 1, expert: 'geglu' as 'mlp' }), /MoE: expert must be 'mlp' or 'swiglu', got 'geglu'/);
    assert.throws(() => new mt.MoELanguageModel({ vocabSize: 8, modelSize: 4, expertHidden: 6, k: 2, numExperts: 4, hierarchicalGroups: 2, expert: 'swiglu' }),
      /MoELanguageModel: the hierarchical MoE has MLP experts only; expert 'swiglu' needs a flat MoE/);
  });
});
