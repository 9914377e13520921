// LSTM beyond the PyTorch fixtures: gradcheck in float64, long unrolls, batchFirst
// equivalence, dropout between layers, memory.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { assertClose, mt } from '../helpers.js';

describe('LSTM', () => {
  test('gradcheck passes on LSTMCell w.r.t. input, state and every parameter', () => {
    mt.manualSeed(11);
    const cell = new mt.LSTMCell(3, 2, { dtype: 'float64' });
    const [wih, whh, bih, bhh] = cell.parameters() as [mt.Tensor, mt.Tensor, mt.Tensor, mt.Tensor];
    const x = mt.randn([2, 3], { dtype: 'float64' }).requiresGrad_();
    const h = mt.randn([2, 2], { dtype: 'float64' }).requiresGrad_();
    const c = mt.randn([2, 2], { dtype: 'float64' }).requiresGrad_();
    assert.ok(mt.gradcheck((x, h, c) => { const s = cell.forward(x!, { h: h!, c: c! }); return [s.h, s.c]; }, [x, h, c]));
    assert.ok(mt.gradcheck((a, b, d, e) => {
      cell.weight_ih = a!; cell.weight_hh = b!; cell.bias_ih = d!; cell.bias_hh = e!;
      return cell.forward(x).h;
    }, [wih, whh, bih, bhh]));
  });

  test('gradcheck passes on a short 2-layer LSTM (input and initial state), and gradgradcheck on one step', () => {
    mt.manualSeed(12);
    const lstm = new mt.LSTM({ inputSize: 2, hiddenSize: 3, numLayers: 2, dtype: 'float64' });
    const x = mt.randn([3, 2, 2], { dtype: 'float64' }).requiresGrad_();
    const h0 = mt.randn([2, 2, 3], { dtype: 'float64' }).requiresGrad_();
    const c0 = mt.randn([2, 2, 3], { dtype: 'float64' }).requiresGrad_();
    assert.ok(mt.gradcheck((x, h, c) => { const o = lstm.forward(x!, { h: h!, c: c! }); return [o.output, o.h, o.c]; }, [x, h0, c0]));
    const cell = new mt.LSTMCell(2, 2, { dtype: 'float64' });
    assert.ok(mt.gradgradcheck((x) => cell.forward(x!).h, [mt.randn([1, 2], { dtype: 'float64' }).requiresGrad_()]));
  });

  test('a 2,000-step unrolled LSTM runs forward and backward without stack overflow', () => {
    mt.manualSeed(13);
    const lstm = new mt.LSTM({ inputSize: 4, hiddenSize: 8 });
    const x = mt.randn([2000, 1, 4]);
    const base = mt.memory().liveHandles;
    mt.tidy(() => {
      const { output } = lstm.forward(x);
      output.slice([1999, 0, 0]).sum().backward();
    });
    const g = Array.from(lstm.weight_hh_l0!.grad!.dataSync());
    assert.ok(g.every(Number.isFinite));
    assert.ok(g.some((v) => v !== 0));
    lstm.zeroGrad();
    assert.equal(mt.memory().liveHandles, base, 'nothing but the gradients outlived the step');
  });

  test('batchFirst is the same computation on transposed data', () => {
    mt.manualSeed(14);
    const a = new mt.LSTM({ inputSize: 3, hiddenSize: 4, numLayers: 2, dtype: 'float64' });
    const b = new mt.LSTM({ inputSize: 3, hiddenSize: 4, numLayers: 2, batchFirst: true, dtype: 'float64' });
    b.loadStateDict(a.stateDict());
    const x = mt.randn([5, 2, 3], { dtype: 'float64' });
    const ya = a.forward(x), yb = b.forward(x.transpose(0, 1));
    assertClose(yb.output.transpose(0, 1).dataSync(), ya.output.dataSync());
    assertClose(yb.h.dataSync(), ya.h.dataSync());
  });

  test('dropout applies between layers only while training', () => {
    mt.manualSeed(15);
    const lstm = new mt.LSTM({ inputSize: 3, hiddenSize: 4, numLayers: 2, dropout: 0.5, dtype: 'float64' });
    const plain = new mt.LSTM({ inputSize: 3, hiddenSize: 4, numLayers: 2, dtype: 'float64' });
    plain.loadStateDict(lstm.stateDict());
    const x = mt.randn([4, 2, 3], { dtype: 'float64' });
    lstm.eval();
    assertClose(lstm.forward(x).output.dataSync(), plain.forward(x).output.dataSync());
    lstm.train();
    const diff = lstm.forward(x).output.sub(plain.forward(x).output).abs().max().item();
    assert.ok(diff > 1e-3, `training-mode dropout should change the output (max diff ${diff})`);
  });

  test('zero-length sequences give an empty output and the initial state', () => {
    const lstm = new mt.LSTM({ inputSize: 2, hiddenSize: 3 });
    const out = lstm.forward(mt.zeros([0, 4, 2]));
    assert.deepEqual(out.output.shape, [0, 4, 3]);
    assert.deepEqual(Array.from(out.h.dataSync()), new Array(12).fill(0));
  });
});
