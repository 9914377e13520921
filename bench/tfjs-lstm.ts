// The LSTM cell written by hand in tfjs ops, for the benches that run mixtape's LSTM beside
// tfjs (bench/lstm.bench.ts against tfjs-cpu, bench/peers.bench.ts against tfjs-wasm): the
// input projection of all steps in one matmul, then the recurrence, gradients by tf.grads.
// The backend is whichever tfjs has set when it runs.

import * as tf from '@tensorflow/tfjs-core';
import type * as mt from '../src/index.js';
import { registerTfjsGradients } from './tfjs-gradients.js';

export interface TfjsLstm {
  /** One forward + backward: every weight gradient, read back. */
  run(): void;
  dispose(): void;
}

/** tfjs copies of an mt.LSTM's weights [W_ih, W_hh, b_ih, b_hh] and its input x [T, B, I]. */
export function tfjsLstm(weights: readonly mt.Tensor[], x: mt.Tensor): TfjsLstm {
  registerTfjsGradients();
  const [T, B, I] = x.shape as [number, number, number];
  const H = weights[1]!.shape[1]!;
  const [wih, whh, bih, bhh] = weights.map((w) => tf.tensor(w.dataSync() as Float32Array, [...w.shape] as [number, number])) as [tf.Tensor2D, tf.Tensor2D, tf.Tensor1D, tf.Tensor1D];
  const tx = tf.tensor3d(x.dataSync() as Float32Array, [T, B, I]);
  const loss = (Wih: tf.Tensor, Whh: tf.Tensor, bi: tf.Tensor, bh: tf.Tensor): tf.Scalar => {
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
  const grads = tf.grads(loss as (...a: tf.Tensor[]) => tf.Scalar);
  return {
    run: () => tf.tidy(() => { for (const g of grads([wih, whh, bih, bhh])) g.dataSync(); }),
    dispose: () => { for (const t of [wih, whh, bih, bhh, tx]) t.dispose(); },
  };
}
