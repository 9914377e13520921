// Training on the GPU: data stays on the device (one readback per step: the loss), kernels
// are compiled during the first step only, and a long run keeps the live-handle count flat.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { mt } from '../helpers.js';
import { assertNear, gpuSuite } from './gpu-env.js';

const LEAK_STEPS = Number(process.env.MIXTAPE_GPU_LEAK_STEPS ?? 1000);

/** The paper's MoE language model (Emb → LSTM → MoE → LSTM → softmax), tiny. */
function languageModelStep() {
  const gen = new mt.Generator(3);
  const model = new mt.MoELanguageModel({ vocabSize: 11, modelSize: 8, expertHidden: 12, numExperts: 4, k: 2, dropout: 0.1, generator: gen });
  const opt = new mt.Adam(model.parameters(), { lr: 0.01 });
  const ids = mt.tensor(Array.from({ length: 2 * 5 }, (_, i) => (i * 7) % 11), [2, 5], { dtype: 'int32' });
  const targets = mt.tensor(Array.from({ length: 2 * 5 }, (_, i) => (i * 3 + 1) % 11), [2, 5], { dtype: 'int32' });
  return { step: trainingStep(opt, () => {
    const out = model.forward(ids);
    return mt.crossEntropy(out.logits, targets).add(out.auxLoss);
  }) };
}

/**
 * Runs a first step (which compiles), then `n` more asserting each reads back exactly once and
 * compiles nothing; returns the later steps' losses (all finite) and memory after each.
 */
async function stepsReadBackOnce(step: () => Promise<number>, n: number): Promise<{ losses: number[]; after: mt.MemoryInfo[] }> {
  const first = await step();
  assert.ok(Number.isFinite(first), `loss ${first}`);
  const compiled = mt.memory().kernelsCompiled;
  const losses: number[] = [], after: mt.MemoryInfo[] = [];
  for (let i = 0; i < n; i++) {
    const before = mt.memory();
    losses.push(await step());
    after.push(mt.memory());
    assert.equal(after[i]!.readbacks - before.readbacks, 1, 'exactly one readback per step');
    assert.equal(after[i]!.kernelsCompiled, compiled, 'no kernel compiled after the first step');
  }
  assert.ok(losses.every(Number.isFinite));
  return { losses, after };
}

/** One optimizer step on `loss()` (built and differentiated inside a tidy); reads the loss back: the step's one readback. */
function trainingStep(opt: mt.Optimizer, loss: () => mt.Tensor): () => Promise<number> {
  return async () => {
    const l = mt.tidy(() => {
      const value = loss();
      value.backward();
      return value;
    });
    opt.step();
    opt.zeroGrad();
    const value = (await l.data())[0]!;
    l.dispose();
    return value;
  };
}

gpuSuite('training', (mode) => {
  test('clipGradNormTensor clips on the device (no readback) as clipGradNorm does on the CPU in float64', async () => {
    const shapes = [[6, 5], [7], [3, 2, 4]];
    const grads = shapes.map((s, i) => Array.from({ length: s.reduce((a, b) => a * b, 1) }, (_, j) => Math.fround((((j * 7 + i * 3) % 13) - 6) / 4)));
    for (const maxNorm of [1, 1e3]) {
      mt.setBackend('cpu');
      const ref = shapes.map((s) => mt.zeros(s, { dtype: 'float64', requiresGrad: true }));
      ref.forEach((p, i) => { p.grad = mt.keep(mt.tensor(grads[i]!, shapes[i], { dtype: 'float64' })); });
      const refNorm = mt.clipGradNorm(ref, maxNorm);
      mt.setBackend('gpu', { mode });
      const params = shapes.map((s) => mt.zeros(s, { requiresGrad: true }));
      params.forEach((p, i) => { p.grad = mt.keep(mt.tensor(grads[i]!, shapes[i])); });
      const before = mt.memory();
      const norm = mt.clipGradNormTensor(params, maxNorm);
      assert.equal(mt.memory().readbacks, before.readbacks, 'no readback');
      assert.equal(mt.memory().liveHandles, before.liveHandles + 1, 'only the norm stays alive');
      assertNear(await norm.data(), [refNorm], 100, `maxNorm ${maxNorm}: the norm`);
      for (const [i, p] of params.entries()) assertNear(await p.grad!.data(), ref[i]!.grad!.dataSync(), 100, `maxNorm ${maxNorm}: gradient ${i}`);
      mt.dispose([norm, params, params.map((p) => p.grad!)]);
    }
  });

  test('shutdownGpu with kernels still in flight lets the process exit', () => {
    const script = `import * as mt from ${JSON.stringify(new URL('../../src/index.ts', import.meta.url).href)};
      mt.setBackend('gpu', { mode: '${mode}' }); await mt.ready();
      const a = mt.randn([128, 128]); let b = a;
      for (let i = 0; i < 20; i++) b = b.matmul(a).tanh(); // queued, never read
      mt.shutdownGpu(); console.log('shut down');`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.signal, null, 'the process did not exit within 30 s of shutdownGpu()');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /shut down/);
  });

  test('a training step of the MoE language model reads back once (the loss) and compiles nothing after the first step', async () => {
    const { step } = languageModelStep();
    await stepsReadBackOnce(step, 4);
  });

  test('a training step of the hierarchical MoE (device dispatch at both levels) reads back once and compiles nothing after the first step', async () => {
    const gen = new mt.Generator(5);
    const moe = new mt.HierarchicalMoE({ inputSize: 6, outputSize: 3, hiddenSize: 8, numGroups: 3, expertsPerGroup: 2, kPrimary: 2, kSecondary: 1, generator: gen });
    const opt = new mt.Adam(moe.parameters(), { lr: 0.01 });
    const x = mt.randn([12, 6], { generator: gen });
    const y = mt.randn([12, 3], { generator: gen });
    const step = trainingStep(opt, () => {
      const out = moe.forward(x); // noise drawn from the generator: the routing changes every step
      return mt.mse(out.output, y).add(out.auxLoss);
    });
    const { after } = await stepsReadBackOnce(step, 4);
    for (const m of after) assert.equal(m.liveHandles, after[0]!.liveHandles, 'live handles stay flat');
    mt.dispose([moe.parameters(), x, y]);
  });

  test(`${LEAK_STEPS} training steps (MoE layer + SGD) keep the live-handle count and bytes constant`, async () => {
    const gen = new mt.Generator(8);
    const moe = new mt.MoE({ inputSize: 6, outputSize: 3, hiddenSize: 8, numExperts: 4, k: 2, generator: gen });
    const opt = new mt.SGD(moe.parameters(), { lr: 0.05 });
    const x = mt.randn([16, 6], { generator: gen });
    const y = mt.randn([16, 3], { generator: gen });
    const step = trainingStep(opt, () => {
      const out = moe.forward(x);
      return mt.mse(out.output, y).add(out.auxLoss);
    });
    let baseline: mt.MemoryInfo | null = null;
    let last = NaN;
    for (let i = 0; i < LEAK_STEPS; i++) {
      last = await step();
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
