// Hash routing (src/moe/routers/hash.ts): the expert is a fixed function of the token id
// (checked against BigInt arithmetic), gate 1, no auxiliary loss, no z-loss; the language
// model passes its input ids; float64 gradcheck; one error per bad input.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { mt, numRuns } from '../../helpers.js';
import { values } from '../moe-helpers.js';
import { leaves, moeFn } from '../router-helpers.js';

const opts = { dtype: 'float64' as const };
const bigHash = (id: number, E: number) => Number((((BigInt(id) * 0x9e3779b1n) % 2n ** 32n) * BigInt(E)) / 2n ** 32n);

describe('hash routing', () => {
  test('hashExpert(id, E) = ⌊((id·0x9E3779B1) mod 2³²)·E / 2³²⌋, in [0, E)', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.integer({ min: 1, max: 4096 }), (id, E) => {
      const e = mt.hashExpert(id, E);
      assert.equal(e, bigHash(id, E));
      assert.ok(e >= 0 && e < E);
    }), numRuns(200));
  });

  test('each row goes to its id\'s expert with gate 1; [B, T] ids accepted; no auxiliary loss and no z-loss', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 0, max: 1e6 }), (B, T, E, seed) => {
      const N = B * T;
      const ids = values(N, seed).map((v) => Math.floor((v + 1) * 500));
      const moe = new mt.MoE({ inputSize: 2, outputSize: 2, hiddenSize: 2, numExperts: E, k: 1, gating: 'hash', dtype: 'float64' });
      const out = moe.forward(mt.tensor(values(N * 2, seed + 1), [B, T, 2], opts), { tokenIds: mt.tensor(ids, [B, T], { dtype: 'int32' }) });
      assert.deepEqual(Array.from(out.stats.indices.dataSync()), ids.map((id) => bigHash(id, E)));
      const g = out.stats.gates.dataSync();
      for (let n = 0; n < N; n++) for (let e = 0; e < E; e++) assert.equal(g[n * E + e], e === bigHash(ids[n]!, E) ? 1 : 0);
      assert.equal(out.auxLoss.item(), 0);
      assert.equal(out.stats.routerZLoss, undefined);
      assert.equal(moe.gate.parameters().length, 0, 'hash routing learns nothing');
    }), numRuns(30));
  });

  test('the language model routes by its input token ids', () => {
    mt.manualSeed(1);
    const lm = new mt.MoELanguageModel({ vocabSize: 20, modelSize: 4, expertHidden: 4, numExperts: 4, k: 1, gating: 'hash' });
    const ids = [3, 7, 11, 19, 0, 5];
    const out = lm.forward(mt.tensor(ids, [2, 3], { dtype: 'int32' }));
    assert.deepEqual(Array.from(out.stats!.indices.dataSync()), ids.map((id) => bigHash(id, 4)));
  });

  test('gradcheck: output w.r.t. x and every expert parameter, with and without dropping', () => {
    for (const capacityFactor of [undefined, 0.5]) {
      mt.manualSeed(2);
      const moe = new mt.MoE({ inputSize: 3, outputSize: 2, hiddenSize: 3, numExperts: 3, k: 1, gating: 'hash', dtype: 'float64', ...(capacityFactor ? { capacityFactor } : {}) });
      for (const e of moe.experts) e.fc1.bias!.assign(mt.tensor(values(3, 52, 0.5), [3], opts));
      const x = mt.tensor(values(18, 3), [6, 3], opts);
      const pre = mt.noGrad(() => moe.experts.map((e) => e.fc1.forward(x).abs().min().item()));
      assert.ok(Math.min(...pre) > 1e-3, `relu margin ${Math.min(...pre)}`);
      const tokenIds = mt.tensor([1, 2, 3, 4, 5, 6], [6], { dtype: 'int32' });
      assert.ok(mt.gradcheck(moeFn(moe, { tokenIds }, mt.tensor(values(12, 8), [6, 2], opts)), leaves(x, ...moe.parameters())));
    }
  });

  test('bad inputs and configurations are one clear error each', () => {
    const moe = new mt.MoE({ inputSize: 2, outputSize: 2, hiddenSize: 2, numExperts: 3, k: 1, gating: 'hash' });
    const x = mt.zeros([4, 2]);
    assert.throws(() => moe.forward(x), { message: 'HashGating: hash routing picks experts by token id: pass forward(x, { tokenIds }) with 4 int32 ids' });
    assert.throws(() => moe.forward(x, { tokenIds: mt.zeros([4]) }), { message: 'HashGating: tokenIds must be int32 with one id per row (4), got float32 [4]' });
    assert.throws(() => moe.forward(x, { tokenIds: mt.tensor([1, 2, 3], [3], { dtype: 'int32' }) }), { message: 'HashGating: tokenIds must be int32 with one id per row (4), got int32 [3]' });
    assert.throws(() => moe.forward(x, { tokenIds: mt.tensor([1, -2, 3, 4], [4], { dtype: 'int32' }) }), { message: 'HashGating: token ids must be non-negative, got -2 at row 1' });
    assert.throws(() => new mt.MoE({ inputSize: 2, outputSize: 2, hiddenSize: 2, numExperts: 3, k: 2, gating: 'hash' }), { message: "MoE: gating 'hash' sends each token to the 1 expert its id hashes to, got k = 2" });
    assert.throws(() => new mt.MoE({ inputSize: 2, outputSize: 2, hiddenSize: 2, numExperts: 3, k: 1, gating: 'hash', wZLoss: 1e-3 }), { message: "MoE: gating 'hash' has no router logits, so wZLoss must be 0, got 0.001" });
  });
});
