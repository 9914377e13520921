// LSTM forward + backward (batch 32, 35 steps, 256 inputs, 256 hidden): mixtape's LSTM
// module against the same cell written by hand with tfjs-cpu ops and tf.grads, in the same
// process. Both compute the input projection of all steps in one matmul, then step the
// recurrence, and read back every weight gradient.

import { mt, tf, type Case, type Suite } from './harness.js';
import { registerTfjsGradients } from './tfjs-gradients.js';

const B = 32, T = 35, I = 256, H = 256;
const owned: { dispose(): void }[] = [];

export const lstmSuite: Suite = {
  name: 'lstm',
  title: `LSTM forward + backward, batch ${B}, ${T} steps, ${I} inputs, ${H} hidden (ms per pass; ratio = mixtape speed / tfjs-cpu speed)`,
  cases(): Case[] {
    registerTfjsGradients();
    mt.manualSeed(0);
    const lstm = new mt.LSTM({ inputSize: I, hiddenSize: H });
    const x = mt.randn([T, B, I]);
    const weights = lstm.parameters();
    owned.push(x, ...weights);
    const [wih, whh, bih, bhh] = weights.map((w) => tf.tensor(Array.from(w.dataSync()), [...w.shape] as unknown as [number, number])) as [tf.Tensor2D, tf.Tensor2D, tf.Tensor1D, tf.Tensor1D];
    const tx = tf.tensor3d(Array.from(x.dataSync()), [T, B, I]);
    owned.push(wih, whh, bih, bhh, tx);

    const tfLoss = (Wih: tf.Tensor, Whh: tf.Tensor, bi: tf.Tensor, bh: tf.Tensor): tf.Scalar => {
      const xw = tf.reshape(tf.add(tf.matMul(tf.reshape(tx, [T * B, I]) as tf.Tensor2D, Wih as tf.Tensor2D, false, true), tf.add(bi, bh)), [T, B, 4 * H]);
      const steps = tf.unstack(xw);
      let h: tf.Tensor2D = tf.zeros([B, H]), c: tf.Tensor2D = tf.zeros([B, H]);
      const outs: tf.Tensor2D[] = [];
      for (let t = 0; t < T; t++) {
        const gates = tf.add(steps[t]!, tf.matMul(h, Whh as tf.Tensor2D, false, true)) as tf.Tensor2D;
        const [i, f, g, o] = tf.split(gates, 4, 1) as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
        c = tf.add(tf.mul(tf.sigmoid(f), c), tf.mul(tf.sigmoid(i), tf.tanh(g)));
        h = tf.mul(tf.sigmoid(o), tf.tanh(c));
        outs.push(h);
      }
      return tf.sum(tf.stack(outs));
    };
    const tfGrads = tf.grads(tfLoss as (...a: tf.Tensor[]) => tf.Scalar);

    const metric = { kind: 'time', unit: 'ms' } as const;
    const options = { maxTime: 4, minSamples: 5 };
    return [{
      name: 'forward + backward',
      metric,
      mixtape: () => mt.tidy(() => {
        lstm.forward(x).output.sum().backward();
        for (const w of weights) w.grad!.dataSync();
        lstm.zeroGrad();
      }),
      tfjs: () => tf.tidy(() => { for (const g of tfGrads([wih, whh, bih, bhh])) g.dataSync(); }),
      options,
    }];
  },
  teardown() { for (const t of owned.splice(0)) t.dispose(); },
};
