// The paper's language model (App. C) and its compute-matched dense baseline.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { assertClose, mt } from '../helpers.js';

const ids = (B: number, T: number, V: number) => mt.tensor(Array.from({ length: B * T }, (_, i) => (i * 7) % V), [B, T], { dtype: 'int32' });

describe('MoELanguageModel and DenseLanguageModel', () => {
  test('the stack follows App. C: residuals, a sigmoid on the MoE output, the MoE over all B·T positions', () => {
    mt.manualSeed(1);
    const lm = new mt.MoELanguageModel({ vocabSize: 11, modelSize: 6, expertHidden: 5, k: 2, numExperts: 4, dtype: 'float64' }).eval();
    const x = ids(2, 3, 11);
    const out = lm.forward(x);
    assert.deepEqual(out.logits.shape, [2, 3, 11]);
    assert.equal(out.stats!.expertCounts.reduce((a, b) => a + b, 0), 2 * 3 * 2);
    // Recompute by hand from the submodules.
    const h0 = lm.embedding.forward(x);
    const h1 = h0.add(lm.lstm1.forward(h0).output);
    const h2 = h1.add(lm.moe.forward(h1).output.sigmoid());
    const h3 = h2.add(lm.lstm2.forward(h2).output);
    assertClose(out.logits.dataSync(), lm.softmax.forward(h3).dataSync(), { rtol: 1e-14 });
  });

  test('the LSTM states carry across segments (truncated BPTT) exactly like one long sequence', () => {
    mt.manualSeed(2);
    const lm = new mt.DenseLanguageModel({ vocabSize: 9, modelSize: 4, expertHidden: 3, k: 2, dtype: 'float64' }).eval();
    const x = ids(2, 6, 9);
    const whole = lm.forward(x).logits;
    const a = lm.forward(x.slice([0, 0], [2, 3]));
    const b = lm.forward(x.slice([0, 3], [2, 3]), { state: a.state });
    assertClose(mt.concat([a.logits, b.logits], 1).dataSync(), whole.dataSync(), { rtol: 1e-12 });
  });

  test('ops per token: the dense block matches the k active experts; gating is the only difference', () => {
    const opts = { vocabSize: 100, modelSize: 32, expertHidden: 64, k: 2 };
    const moe = new mt.MoELanguageModel({ ...opts, numExperts: 16 });
    const dense = new mt.DenseLanguageModel(opts);
    const m = moe.opsPerToken(), d = dense.opsPerToken();
    assert.equal(m.lstm, 2 * 4 * (32 + 32) * 32);
    assert.equal(d.mixture, 2 * 32 * 128);
    assert.equal(m.mixture - d.mixture, 2 * 32 * 16, 'the noisy gate: x·w_gate and x·w_noise');
    assert.equal(m.softmax, 32 * 100);
    assert.equal(m.excludingSoftmax, m.lstm + m.mixture);
    const h = new mt.MoELanguageModel({ ...opts, k: 4, numExperts: 16, hierarchicalGroups: 4 });
    assert.equal(h.opsPerToken().mixture, 2 * 32 * 4 + 2 * 2 * 32 * 4 + 4 * (32 * 64 * 2));
  });

  test('dropout is active in training only, and the dense model has no auxiliary loss', () => {
    mt.manualSeed(3);
    const lm = new mt.DenseLanguageModel({ vocabSize: 7, modelSize: 4, expertHidden: 3, k: 2, dropout: 0.5 });
    const x = ids(1, 5, 7);
    const a = lm.forward(x).logits.dataSync(), b = lm.forward(x).logits.dataSync();
    assert.notDeepEqual(Array.from(a), Array.from(b));
    lm.eval();
    assert.deepEqual(Array.from(lm.forward(x).logits.dataSync()), Array.from(lm.forward(x).logits.dataSync()));
    assert.equal(lm.forward(x).auxLoss.item(), 0);
    assert.equal(lm.forward(x).stats, null);
  });

  test('a few training steps of the MoE LM lower the loss, with gradients reaching every gate and the chosen experts', () => {
    mt.manualSeed(4);
    const lm = new mt.MoELanguageModel({ vocabSize: 8, modelSize: 8, expertHidden: 8, k: 2, numExperts: 4 });
    const opt = new mt.Adam(lm.parameters(), { lr: 0.02 });
    const x = ids(4, 8, 8), y = mt.tensor(Array.from(x.dataSync(), (v) => (v + 1) % 8), [4, 8], { dtype: 'int32' });
    const losses: number[] = [];
    for (let i = 0; i < 30; i++) {
      opt.zeroGrad();
      losses.push(mt.tidy(() => {
        const out = lm.forward(x);
        const loss = mt.crossEntropy(out.logits, y);
        loss.add(out.auxLoss).backward();
        return loss.item();
      }));
      opt.step();
    }
    assert.ok(losses[29]! < losses[0]! * 0.5, `loss ${losses[0]} → ${losses[29]}`);
    assert.ok(((lm.moe as mt.MoE).gate as mt.NoisyTopKGating).w_gate.grad!.abs().sum().item() > 0);
  });

  test('bad input is a clear error', () => {
    const lm = new mt.DenseLanguageModel({ vocabSize: 7, modelSize: 4, expertHidden: 3, k: 2 });
    assert.throws(() => lm.forward(mt.zeros([2, 3])), /DenseLanguageModel: expected int32 token ids \[batch, time\], got float32 \[2, 3\]/);
    assert.throws(() => new mt.DenseLanguageModel({ vocabSize: 0, modelSize: 4, expertHidden: 3, k: 2 }), /vocabSize must be a positive integer, got 0/);
  });
});
