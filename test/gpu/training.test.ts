// Training on the GPU: data stays on the device (one readback per step: the loss), kernels
// are compiled during the first step only, and a long run keeps the live-handle count flat.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mt } from '../helpers.js';
import { gpuSuite } from './gpu-env.js';

const LEAK_STEPS = Number(process.env.MIXTAPE_GPU_LEAK_STEPS ?? 1000);

/** The paper's MoE language model (Emb → LSTM → MoE → LSTM → softmax), tiny. */
function languageModelStep() {
  const gen = new mt.Generator(3);
  const model = new mt.MoELanguageModel({ vocabSize: 11, modelSize: 8, expertHidden: 12, numExperts: 4, k: 2, dropout: 0.1, generator: gen });
  const opt = new mt.Adam(model.parameters(), { lr: 0.01 });
  const ids = mt.tensor(Array.from({ length: 2 * 5 }, (_, i) => (i * 7) % 11), [2, 5], { dtype: 'int32' });
  const targets = mt.tensor(Array.from({ length: 2 * 5 }, (_, i) => (i * 3 + 1) % 11), [2, 5], { dtype: 'int32' });
  const step = async (): Promise<number> => {
    const loss = mt.tidy(() => {
      const out = model.forward(ids);
      const l = mt.crossEntropy(out.logits, targets).add(out.auxLoss);
      l.backward();
      return l;
    });
    opt.step();
    opt.zeroGrad();
    const value = (await loss.data())[0]!;
    loss.dispose();
    return value;
  };
  return { step };
}

gpuSuite('training', () => {
  test('a training step of the MoE language model reads back once (the loss) and compiles nothing after the first step', async () => {
    const { step } = languageModelStep();
    const first = await step();
    assert.ok(Number.isFinite(first), `loss ${first}`);
    const compiled = mt.memory().kernelsCompiled;
    const losses: number[] = [];
    for (let i = 0; i < 4; i++) {
      const before = mt.memory();
      losses.push(await step());
      const after = mt.memory();
      assert.equal(after.readbacks - before.readbacks, 1, 'exactly one readback per step');
      assert.equal(after.kernelsCompiled, compiled, 'no kernel compiled after the first step');
    }
    assert.ok(losses.every(Number.isFinite));
  });

  test('a training step of the hierarchical MoE (device dispatch at both levels) reads back once and compiles nothing after the first step', async () => {
    const gen = new mt.Generator(5);
    const moe = new mt.HierarchicalMoE({ inputSize: 6, outputSize: 3, hiddenSize: 8, numGroups: 3, expertsPerGroup: 2, kPrimary: 2, kSecondary: 1, generator: gen });
    const opt = new mt.Adam(moe.parameters(), { lr: 0.01 });
    const x = mt.randn([12, 6], { generator: gen });
    const y = mt.randn([12, 3], { generator: gen });
    const step = async (): Promise<number> => {
      const loss = mt.tidy(() => {
        const out = moe.forward(x); // noise drawn from the generator: the routing changes every step
        const l = mt.mse(out.output, y).add(out.auxLoss);
        l.backward();
        return l;
      });
      opt.step();
      opt.zeroGrad();
      const value = (await loss.data())[0]!;
      loss.dispose();
      return value;
    };
    const first = await step();
    assert.ok(Number.isFinite(first), `loss ${first}`);
    const compiled = mt.memory().kernelsCompiled;
    const losses: number[] = [];
    let live = 0;
    for (let i = 0; i < 4; i++) {
      const before = mt.memory();
      losses.push(await step());
      const after = mt.memory();
      assert.equal(after.readbacks - before.readbacks, 1, 'exactly one readback per step');
      assert.equal(after.kernelsCompiled, compiled, 'no kernel compiled after the first step');
      if (i === 0) live = after.liveHandles;
      else assert.equal(after.liveHandles, live, 'live handles stay flat');
    }
    assert.ok(losses.every(Number.isFinite));
    mt.dispose([moe.parameters(), x, y]);
  });

  test(`${LEAK_STEPS} training steps (MoE layer + SGD) keep the live-handle count and bytes constant`, async () => {
    const gen = new mt.Generator(8);
    const moe = new mt.MoE({ inputSize: 6, outputSize: 3, hiddenSize: 8, numExperts: 4, k: 2, generator: gen });
    const opt = new mt.SGD(moe.parameters(), { lr: 0.05 });
    const x = mt.randn([16, 6], { generator: gen });
    const y = mt.randn([16, 3], { generator: gen });
    let baseline: mt.MemoryInfo | null = null;
    let last = NaN;
    for (let i = 0; i < LEAK_STEPS; i++) {
      const loss = mt.tidy(() => {
        const out = moe.forward(x);
        const l = mt.mse(out.output, y).add(out.auxLoss);
        l.backward();
        return l;
      });
      opt.step();
      opt.zeroGrad();
      last = (await loss.data())[0]!;
      loss.dispose();
      if (i === 1) baseline = mt.memory();
    }
    const end = mt.memory();
    assert.ok(Number.isFinite(last));
    assert.equal(end.liveHandles, baseline!.liveHandles, 'live handles');
    assert.equal(end.bytes, baseline!.bytes, 'bytes');
    assert.equal(end.kernelsCompiled, baseline!.kernelsCompiled, 'kernels compiled');
    assert.equal(end.readbacks - baseline!.readbacks, LEAK_STEPS - 2);
    mt.dispose([moe.parameters(), x, y]);
  });
});
