// Peak memory of activation checkpointing (Shazeer et al. 2017 §3.1; Chen et al. 2016): an
// LSTM language model (embedding → 2-layer LSTM → softmax) over T = 256 steps, one training
// step (forward, loss, backward), with the LSTM run in checkpointed segments of √T = 16
// steps against the plain unroll; then the same for the paper's stack with a recurrent MoE
// (RecurrentMoELanguageModel), whose feed-forward parts are not checkpointed. The figure is the peak of the bytes
// held by live tensors (sampled after every kernel and upload, on a CPU backend that
// counts them), above what the parameters and the batch hold before the step. Memory, not
// time: the numbers do not depend on the machine's load. Run: `npx tsx bench/checkpoint-memory.ts`.

import * as mt from '../src/index.js';
import { CpuBackend } from '../src/backends/cpu/cpu-backend.js';
import type { Handle, KernelAttrs, KernelName, OutInfo, TensorInfo } from '../src/core/backend.js';
import type { TypedArray } from '../src/core/dtype.js';
import { registerBackend } from '../src/core/registry.js';

/** The CPU backend, sampling its live bytes after every allocation. */
class PeakCpuBackend extends CpuBackend {
  peak = 0;
  override run<K extends KernelName>(kernel: K, inputs: readonly TensorInfo[], attrs: KernelAttrs[K], out: OutInfo): Handle {
    const h = super.run(kernel, inputs, attrs, out);
    this.peak = Math.max(this.peak, this.memory().bytes);
    return h;
  }
  override upload(values: TypedArray): Handle {
    const h = super.upload(values);
    this.peak = Math.max(this.peak, this.memory().bytes);
    return h;
  }
}

const backend = new PeakCpuBackend({ name: 'cpu-peak' });
registerBackend('cpu-peak', { create: () => backend });
mt.setBackend('cpu-peak' as never);

const T = 256, B = 16, V = 64, d = 128;
const every = Math.round(Math.sqrt(T));

/** Embedding → LSTM (2 layers) → Linear: the LSTM language model of the paper's baselines, small. */
class LSTMLanguageModel extends mt.Module {
  embedding: mt.Embedding;
  lstm: mt.LSTM;
  softmax: mt.Linear;
  constructor(readonly checkpointEvery?: number) {
    super();
    this.embedding = new mt.Embedding(V, d);
    this.lstm = new mt.LSTM({ inputSize: d, hiddenSize: d, numLayers: 2, batchFirst: true });
    this.softmax = new mt.Linear(d, V);
  }
  forward(ids: mt.Tensor): { logits: mt.Tensor; auxLoss: mt.Tensor } {
    const every = this.checkpointEvery ? { checkpointEvery: this.checkpointEvery } : {};
    const h = this.lstm.forward(this.embedding.forward(ids), undefined, every).output;
    return { logits: this.softmax.forward(h), auxLoss: mt.zeros([]) };
  }
}

/** Peak live bytes of one training step above the bytes held before it, and the seconds it took. */
function measure(model: { forward(ids: mt.Tensor): { logits: mt.Tensor; auxLoss: mt.Tensor }; parameters(): mt.Tensor[] }): { peak: number; seconds: number; loss: number } {
  mt.manualSeed(1);
  const ids = mt.tensor(Array.from({ length: B * T }, (_, i) => (i * 7919) % V), [B, T], { dtype: 'int32' });
  const before = backend.memory().bytes;
  backend.peak = before;
  const t0 = performance.now();
  let loss = 0;
  mt.tidy(() => {
    const out = model.forward(ids);
    const l = mt.crossEntropy(out.logits, ids).add(out.auxLoss);
    l.backward();
    loss = l.item();
  });
  const seconds = (performance.now() - t0) / 1000;
  for (const p of model.parameters()) { p.grad?.dispose(); p.grad = null; }
  ids.dispose();
  return { peak: backend.peak - before, seconds, loss };
}

const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
const rows: string[] = [];
const models = {
  'LSTM LM (2 × LSTM-128)': (checkpointEvery?: number) => new LSTMLanguageModel(checkpointEvery),
  'paper stack with a recurrent MoE (d = 64, E = 8, k = 2)': (checkpointEvery?: number) => new mt.RecurrentMoELanguageModel({ vocabSize: V, modelSize: d / 2, expertHidden: d, k: 2, numExperts: 8, ...(checkpointEvery ? { checkpointEvery } : {}) }),
};
for (const [name, make] of Object.entries(models)) {
  mt.manualSeed(0);
  const plainModel = make();
  mt.manualSeed(0);
  const checkpointed = make(every);
  // The peak is a count of bytes, the same every run; the times are one run each (indicative only).
  const [p, c] = [measure(plainModel), measure(checkpointed)];
  if (Math.abs(p.loss - c.loss) > 1e-4 * Math.abs(p.loss)) throw new Error(`${name}: the checkpointed loss ${c.loss} differs from the plain ${p.loss}`);
  rows.push(`| ${name} | ${mb(p.peak)} | ${mb(c.peak)} | ${(p.peak / c.peak).toFixed(1)}× | ${p.seconds.toFixed(2)} s | ${c.seconds.toFixed(2)} s |`);
  for (const m of [plainModel, checkpointed]) for (const t of m.parameters()) t.dispose();
}
console.log(`T = ${T} steps, batch ${B}, vocabulary ${V}, float32, checkpoint every √T = ${every} steps; one training step (peak above parameters and batch).\n`);
console.log('| model | peak live bytes, plain | with checkpoints | ratio | step time, plain | with checkpoints |');
console.log('|---|---|---|---|---|---|');
console.log(rows.join('\n'));
