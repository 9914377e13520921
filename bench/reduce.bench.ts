// Reductions of a 1000×1000 float32 matrix: sum of all elements, sum over the last axis,
// max over axis 0.

import { mt, tf, type Case, type Suite } from './harness.js';

const N = 1000;
const owned: { dispose(): void }[] = [];

export const reduceSuite: Suite = {
  name: 'reduce',
  title: `reductions of a ${N}×${N} float32 matrix (time per op; ratio = mixtape speed / tfjs-cpu speed)`,
  cases(): Case[] {
    const x = mt.randn([N, N], { generator: new mt.Generator(1) });
    const tx = tf.tensor2d(x.dataSync() as Float32Array, [N, N]);
    owned.push(x, tx);
    const metric = { kind: 'time', unit: 'ms' } as const;
    return [
      { name: 'sum (all)', metric, mixtape: () => mt.tidy(() => { x.sum().dataSync(); }), tfjs: () => tf.tidy(() => { tf.sum(tx).dataSync(); }) },
      { name: 'sum axis -1', metric, mixtape: () => mt.tidy(() => { x.sum(-1).dataSync(); }), tfjs: () => tf.tidy(() => { tf.sum(tx, -1).dataSync(); }) },
      { name: 'max axis 0', metric, mixtape: () => mt.tidy(() => { x.max(0).dataSync(); }), tfjs: () => tf.tidy(() => { tf.max(tx, 0).dataSync(); }) },
    ];
  },
  teardown() { for (const t of owned.splice(0)) t.dispose(); },
};
