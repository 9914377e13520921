// The recurrent MoE (paper §3.1): one expert with k = 1 is an LSTM, float64 gradcheck of
// two routed steps, checkpointed segments equal to the plain unroll (noise replayed), the
// sequence's routing statistics, and the language model built on it.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { assertClose, mt, numRuns } from '../helpers.js';

const bits = (t: mt.Tensor | null) => (t === null ? null : Array.from(t.dataSync()));

describe('RecurrentMoECell', () => {
  test('with one expert and k = 1 it is nn.LSTMCell with that expert\'s weights (property, bit for bit)', () => {
    fc.assert(fc.property(
      fc.record({ B: fc.integer({ min: 1, max: 4 }), I: fc.integer({ min: 1, max: 5 }), H: fc.integer({ min: 1, max: 5 }), seed: fc.integer({ min: 0, max: 1e6 }) }),
      ({ B, I, H, seed }) => {
        mt.manualSeed(seed);
        const cell = new mt.RecurrentMoECell({ inputSize: I, hiddenSize: H, numExperts: 1, k: 1, dtype: 'float64' });
        const lstm = new mt.LSTMCell(I, H, { dtype: 'float64' });
        lstm.loadStateDict(cell.experts[0]!.stateDict());
        const x = mt.randn([B, I], { dtype: 'float64' }), h = mt.randn([B, H], { dtype: 'float64' }), c = mt.randn([B, H], { dtype: 'float64' });
        const a = cell.forward(x, { h, c }), b = lstm.forward(x, { h, c });
        assert.deepEqual(bits(a.h), bits(b.h));
        assert.deepEqual(bits(a.c), bits(b.c));
        assert.deepEqual(Array.from(a.stats.indices.dataSync()), new Array(B).fill(0));
      }), numRuns(30));
  });

  test('gradcheck in float64: two routed steps w.r.t. the inputs, the initial state, the gate and an expert\'s weights', () => {
    for (const seed of [1, 2, 3]) {
      mt.manualSeed(seed);
      const [B, I, H, E] = [3, 2, 3, 4];
      const cell = new mt.RecurrentMoECell({ inputSize: I, hiddenSize: H, numExperts: E, k: 2, dtype: 'float64' });
      const noise = [mt.randn([B, E], { dtype: 'float64' }), mt.randn([B, E], { dtype: 'float64' })];
      const leaf = (shape: number[], scale = 1) => mt.randn(shape, { dtype: 'float64' }).mul(scale).requiresGrad_();
      const args = [leaf([B, I]), leaf([B, I]), leaf([B, H]), leaf([B, H]), leaf([I + H, E]), leaf([4 * H, H], 0.5)];
      const fn = (x1: mt.Tensor, x2: mt.Tensor, h0: mt.Tensor, c0: mt.Tensor, wGate: mt.Tensor, wHH: mt.Tensor) => {
        cell.gate.w_gate = wGate;
        cell.experts[1]!.weight_hh = wHH;
        const s1 = cell.forward(x1, { h: h0, c: c0 }, { noise: noise[0]! });
        const s2 = cell.forward(x2, s1, { noise: noise[1]! });
        return [s2.h, s2.c, s1.auxLoss.add(s2.auxLoss)];
      };
      assert.ok(mt.gradcheck(fn, args));
    }
  });

  test('bad input names the layer and the shapes', () => {
    const cell = new mt.RecurrentMoECell({ inputSize: 3, hiddenSize: 2, numExperts: 4, k: 2 });
    assert.throws(() => cell.forward(mt.zeros([2, 4])), /RecurrentMoECell: expected input \[batch, 3\], got \[2, 4\]/);
    assert.throws(() => cell.forward(mt.zeros([2, 3]), { h: mt.zeros([2, 3]), c: mt.zeros([2, 2]) }), /RecurrentMoECell: state h must have shape \[2, 2\], got \[2, 3\]/);
    assert.throws(() => new mt.RecurrentMoECell({ inputSize: 3, hiddenSize: 2, numExperts: 2, k: 3 }), /RecurrentMoECell: k \(3\) cannot exceed numExperts \(2\)/);
  });
});

describe('RecurrentMoE over a sequence', () => {
  /** Output, loss and every gradient of a training-mode forward (noisy gates) over T steps. */
  function run(every: number | undefined, dtype: 'float32' | 'float64') {
    mt.manualSeed(4);
    const layer = new mt.RecurrentMoE({ inputSize: 3, hiddenSize: 4, numExperts: 4, k: 2, batchFirst: true, dtype });
    for (const p of layer.cell.gate.parameters()) p.assign(mt.randn(p.shape, { dtype }));
    const x = mt.randn([2, 9, 3], { dtype }).requiresGrad_();
    mt.manualSeed(8);
    const out = layer.forward(x, undefined, every === undefined ? {} : { checkpointEvery: every });
    out.output.square().sum().add(out.h.sum()).add(out.auxLoss).backward();
    return {
      output: bits(out.output), indices: bits(out.stats.indices), counts: out.stats.expertCounts, x: bits(x.grad),
      ...Object.fromEntries(layer.namedParameters().map(([n, p]) => [n, bits(p.grad)])),
    };
  }

  for (const dtype of ['float32', 'float64'] as const) {
    test(`checkpointEvery 2, 3 or 4 gives the plain unroll's outputs, routing and gradients bit for bit (${dtype}, noisy gates)`, () => {
      const plain = run(undefined, dtype);
      for (const every of [2, 3, 4]) assert.deepEqual(run(every, dtype), plain, `checkpointEvery ${every}`);
    });
  }

  test('the statistics cover all B·T positions, rows in [B, T] order', () => {
    mt.manualSeed(1);
    const layer = new mt.RecurrentMoE({ inputSize: 2, hiddenSize: 3, numExperts: 5, k: 2, batchFirst: true });
    for (const p of layer.cell.gate.parameters()) p.assign(mt.randn(p.shape));
    layer.eval();
    const x = mt.randn([3, 4, 2]);
    const s = layer.forward(x).stats;
    assert.deepEqual(s.gates.shape, [12, 5]);
    assert.deepEqual(s.indices.shape, [12, 2]);
    assert.equal(s.expertCounts.reduce((a, b) => a + b, 0), 12 * 2);
    // Row b·T + t is example b at step t: the same routing as running the cell on that step.
    let state: mt.LSTMState | undefined;
    const perStep: number[][] = [];
    for (let t = 0; t < 4; t++) {
      const o = layer.cell.forward(x.slice([0, t, 0], [3, 1, 2]).reshape([3, 2]), state);
      perStep.push(Array.from(o.stats.indices.dataSync()));
      state = o;
    }
    const rows = s.indices.dataSync();
    for (let b = 0; b < 3; b++) for (let t = 0; t < 4; t++) {
      assert.deepEqual(Array.from(rows.subarray((b * 4 + t) * 2, (b * 4 + t) * 2 + 2)), perStep[t]!.slice(b * 2, b * 2 + 2));
    }
    assertClose(s.importance.dataSync(), s.gates.sum(0).dataSync(), { rtol: 1e-6, atol: 1e-6, what: 'importance' });
  });
});

describe('RecurrentMoELanguageModel', () => {
  test('trains a step, reports routing like the MoE model, and checkpointing changes no number', () => {
    const step = (every?: number) => {
      mt.manualSeed(2);
      const model = new mt.RecurrentMoELanguageModel({ vocabSize: 7, modelSize: 4, expertHidden: 16, numExperts: 3, k: 2, dtype: 'float64', ...(every ? { checkpointEvery: every } : {}) });
      const ids = mt.tensor([[1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1]], { dtype: 'int32' });
      const out = model.forward(ids);
      mt.crossEntropy(out.logits, ids).add(out.auxLoss).backward();
      assert.deepEqual(out.stats!.gates.shape, [12, 3]);
      return { logits: bits(out.logits), grads: model.parameters().map((p) => bits(p.grad)), ops: model.opsPerToken() };
    };
    const plain = step(), checkpointed = step(2);
    assert.deepEqual(checkpointed.logits, plain.logits);
    plain.grads.forEach((g, i) => assertClose(checkpointed.grads[i]!, g!, { rtol: 1e-12, atol: 1e-14, what: `parameter ${i}` }));
    // k·4d·2d for the experts plus 2·2d·E for the noisy gate.
    assert.equal(plain.ops.mixture, 2 * 4 * 4 * 8 + 2 * 8 * 3);
  });
});

describe('nn.LSTM checkpointEvery', () => {
  test('equals the plain unroll (outputs exactly, gradients to 1e-12) and rejects a bad value', () => {
    const run = (every?: number) => {
      mt.manualSeed(6);
      const lstm = new mt.LSTM({ inputSize: 3, hiddenSize: 4, numLayers: 2, dtype: 'float64' });
      const x = mt.randn([10, 2, 3], { dtype: 'float64' }).requiresGrad_();
      const out = lstm.forward(x, undefined, every ? { checkpointEvery: every } : {});
      out.output.sum().add(out.c.sum()).backward();
      return { y: bits(out.output), grads: [x, ...lstm.parameters()].map((p) => bits(p.grad)) };
    };
    const plain = run(), checkpointed = run(3);
    assert.deepEqual(checkpointed.y, plain.y);
    plain.grads.forEach((g, i) => assertClose(checkpointed.grads[i]!, g!, { rtol: 1e-12, atol: 1e-14, what: `gradient ${i}` }));
    assert.throws(() => new mt.LSTM({ inputSize: 1, hiddenSize: 1 }).forward(mt.zeros([2, 1, 1]), undefined, { checkpointEvery: 0 }), /LSTM: checkpointEvery must be a positive integer/);
  });
});
