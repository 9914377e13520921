// The module system: PyTorch's parameter names and order, state dicts with checked keys
// and shapes, train/eval, dtype conversion, initialization.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { mt } from '../helpers.js';

class Block extends mt.Module {
  fc1 = new mt.Linear(4, 8);
  experts = [new mt.Linear(8, 2, { bias: false }), new mt.Linear(8, 2)];
  scale = mt.parameter(mt.ones([2]));
  notAParameter = mt.ones([3]);
}

describe('Module', () => {
  test('namedParameters: own parameters first, then children, arrays as name.i (PyTorch keys)', () => {
    const names = new Block().namedParameters().map(([n, p]) => `${n}${JSON.stringify(p.shape)}`);
    assert.deepEqual(names, ['scale[2]', 'fc1.weight[8,4]', 'fc1.bias[8]', 'experts.0.weight[2,8]', 'experts.1.weight[2,8]', 'experts.1.bias[2]']);
    const lstm = new mt.LSTM({ inputSize: 3, hiddenSize: 5, numLayers: 2 });
    assert.deepEqual(lstm.namedParameters().map(([n, p]) => `${n}${JSON.stringify(p.shape)}`), [
      'weight_ih_l0[20,3]', 'weight_hh_l0[20,5]', 'bias_ih_l0[20]', 'bias_hh_l0[20]',
      'weight_ih_l1[20,5]', 'weight_hh_l1[20,5]', 'bias_ih_l1[20]', 'bias_hh_l1[20]',
    ]);
    const seq = new mt.Sequential(new mt.Linear(2, 3), new mt.ReLU(), new mt.Linear(3, 1));
    assert.deepEqual(Object.keys(seq.stateDict()), ['0.weight', '0.bias', '2.weight', '2.bias']);
    assert.equal(seq.numParameters(), 2 * 3 + 3 + 3 + 1);
  });

  test('parameters() are namedParameters()\' tensors in the same order (walked without names), also where a subclass lists its own', () => {
    class Listed extends mt.Module {
      inner = new mt.Linear(2, 2);
      hidden = mt.parameter(mt.ones([1]));
      override namedParameters(): [string, mt.Tensor][] { return [['only', this.inner.weight]]; }
    }
    const models: mt.Module[] = [
      new Block(), new mt.Sequential(new mt.Linear(2, 3), new mt.ReLU(), new mt.Linear(3, 1)),
      new mt.LSTM({ inputSize: 3, hiddenSize: 5, numLayers: 2 }),
      new mt.MoE({ inputSize: 4, outputSize: 4, hiddenSize: 6, numExperts: 5, k: 2 }),
      new mt.MoE({ inputSize: 4, outputSize: 4, hiddenSize: 6, numExperts: 4, k: 2, gating: 'deepseek', sharedExperts: 1, expert: 'swiglu' }),
      new Listed(),
      // An override below the top is asked too, as namedParameters() asks it.
      new (class Holder extends mt.Module { fc = new mt.Linear(2, 2); listed = [new Listed()]; })(),
    ];
    for (const m of models) {
      const named = m.namedParameters().map(([, p]) => p), plain = m.parameters();
      assert.equal(plain.length, named.length, m.constructor.name);
      plain.forEach((p, i) => assert.equal(p, named[i], `${m.constructor.name}: parameter ${i}`));
    }
    assert.equal(new mt.MoE({ inputSize: 4, outputSize: 4, hiddenSize: 6, numExperts: 5, k: 2 }).parameters().length, 2 + 5 * 4);
  });

  test('loadStateDict copies values, converts dtypes, and names missing, unexpected and mis-shaped keys', () => {
    const a = new mt.Linear(3, 2), b = new mt.Linear(3, 2, { dtype: 'float64' });
    b.loadStateDict(a.stateDict());
    assert.equal(b.weight.dtype, 'float64');
    assert.deepEqual(Array.from(b.weight.dataSync()), Array.from(a.weight.dataSync()));
    assert.throws(() => b.loadStateDict({ weight: a.weight }), /loadStateDict: missing keys: bias/);
    assert.throws(() => b.loadStateDict({ ...a.stateDict(), extra: a.bias! }), /unexpected keys: extra/);
    assert.throws(() => b.loadStateDict({ weight: mt.zeros([2, 4]), bias: a.bias! }), /size mismatch for weight: the checkpoint has shape \[2, 4\], the module has \[2, 3\]/);
    b.loadStateDict({ weight: mt.zeros([2, 3]) }, { strict: false });
    assert.deepEqual(b.weight.toArray(), [[0, 0, 0], [0, 0, 0]]);
  });

  test('loadStateDict does not disturb graphs recorded before it (values are replaced, not mutated)', () => {
    const lin = new mt.Linear(2, 1, { bias: false });
    const x = mt.tensor([[1, 2]]);
    const y = lin.forward(x).sum();
    const before = Array.from(lin.weight.dataSync());
    lin.loadStateDict({ weight: mt.tensor([[10, 20]]) });
    y.backward();
    assert.deepEqual(Array.from(lin.weight.grad!.dataSync()), [1, 2]);
    assert.notDeepEqual(before, [10, 20]);
  });

  test('train/eval switch every submodule; Dropout is the identity in eval mode', () => {
    const seq = new mt.Sequential(new mt.Linear(4, 4), new mt.Dropout(0.5));
    seq.eval();
    assert.ok(seq.namedModules().every(([, m]) => !m.training));
    const x = mt.ones([2, 4]);
    assert.deepEqual(new mt.Dropout(0.5).eval().forward(x).toArray(), x.toArray());
    seq.train();
    assert.ok(seq.namedModules().every(([, m]) => m.training));
  });

  test('to(dtype) converts every parameter in place, keeping identities', () => {
    const block = new Block();
    const p = block.fc1.weight;
    block.to('float64');
    assert.equal(block.fc1.weight, p);
    assert.ok(block.parameters().every((q) => q.dtype === 'float64' && q.requiresGrad));
    assert.throws(() => block.to('int32'), /Module.to: dtype must be 'float32' or 'float64'/);
  });

  test('initialization follows PyTorch: Linear U(±1/√in), LSTM U(±1/√H), Embedding N(0, 1); seeded', () => {
    mt.manualSeed(3);
    const lin = new mt.Linear(400, 50);
    const w = lin.weight.dataSync();
    const bound = 1 / Math.sqrt(400);
    assert.ok(w.every((v) => Math.abs(v) <= bound));
    assert.ok(Math.max(...w) > 0.95 * bound && Math.min(...w) < -0.95 * bound);
    const lstm = new mt.LSTM({ inputSize: 8, hiddenSize: 16 });
    assert.ok(lstm.parameters().every((p) => p.dataSync().every((v) => Math.abs(v) <= 0.25)));
    const e = Array.from(new mt.Embedding(100, 100).weight.dataSync());
    const mean = e.reduce((a, b) => a + b, 0) / e.length;
    const std = Math.sqrt(e.reduce((a, b) => a + (b - mean) ** 2, 0) / e.length);
    assert.ok(Math.abs(mean) < 0.03 && Math.abs(std - 1) < 0.03, `mean ${mean}, std ${std}`);
    mt.manualSeed(3);
    assert.deepEqual(Array.from(new mt.Linear(400, 50).weight.dataSync()), Array.from(w));
  });

  test('bad sizes and inputs are clear errors', () => {
    assert.throws(() => new mt.Linear(0, 3), /Linear: inFeatures must be a positive integer, got 0/);
    assert.throws(() => new mt.Linear(3, 2).forward(mt.ones([2, 4])), /Linear: expected input with last dimension 3 \(inFeatures\), got shape \[2, 4\]/);
    assert.throws(() => new mt.Embedding(5, 2).forward(mt.ones([3])), /Embedding: indices must be an int32 tensor, got float32/);
    assert.throws(() => new mt.Embedding(5, 2).forward(mt.tensor([7], { dtype: 'int32' })), /Embedding: indexSelect: index 7 is out of range for axis 0 of size 5 \(the table has 5 rows\)/);
    assert.throws(() => new mt.LSTM({ inputSize: 3, hiddenSize: 2 }).forward(mt.ones([4, 3])), /LSTM: expected input \[time, batch, 3\], got \[4, 3\]/);
    assert.throws(() => new mt.LSTM({ inputSize: 3, hiddenSize: 2 }).forward(mt.ones([4, 1, 3]), { h: mt.zeros([1, 2]), c: mt.zeros([1, 1, 2]) }), /LSTM: initial state h must have shape \[1, 1, 2\], got \[1, 2\]/);
    assert.throws(() => new mt.Dropout(1.5), /Dropout: p must be a probability in \[0, 1\], got 1.5/);
    assert.throws(() => new mt.Linear(2, 2, { dtype: 'int32' }), /Linear: dtype must be 'float32' or 'float64', got 'int32'/);
  });

  test('toString summarizes the module tree with parameter shapes', () => {
    const text = String(new Block());
    assert.match(text, /^Block scale\[2\]\n  \(fc1\): Linear weight\[8, 4\] bias\[8\]\n  \(experts.0\): Linear weight\[2, 8\]/);
  });
});
