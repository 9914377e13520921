// Per-op overhead: a chain of 1000 adds of 4-element float32 tensors, where the kernel is
// negligible and the cost is the op machinery: argument checks, broadcasting, allocation,
// tidy bookkeeping and, with autograd, recording a graph node per op.

import { mt, tf, type Case, type Suite } from './harness.js';

const CHAIN = 1000;
const owned: { dispose(): void }[] = [];

export const overheadSuite: Suite = {
  name: 'overhead',
  title: `per-op overhead: ${CHAIN} chained adds of [4] tensors (µs per add; ratio = mixtape speed / tfjs-cpu speed)`,
  cases(): Case[] {
    const values = [1, 2, 3, 4], step = [0.5, -0.25, 0.125, 1];
    const plain = mt.tensor(values), leaf = mt.tensor(values, { requiresGrad: true }), b = mt.tensor(step);
    const ta = tf.tensor1d(values), tb = tf.tensor1d(step);
    owned.push(plain, leaf, b, ta, tb);
    const chain = (x0: mt.Tensor) => {
      let x = x0;
      for (let i = 0; i < CHAIN; i++) x = x.add(b);
      x.dataSync();
    };
    const tfjs = () => tf.tidy(() => {
      let x = ta;
      for (let i = 0; i < CHAIN; i++) x = tf.add(x, tb);
      x.dataSync();
    });
    const metric = { kind: 'time', unit: 'µs', opsPerCall: CHAIN } as const;
    // Each call takes about a millisecond and allocates a few thousand objects: more samples
    // average over the garbage collector's pauses.
    const options = { maxTime: 2, minSamples: 20 };
    return [
      // Each add records a graph node (the input requires grad); tidy frees the graph.
      { name: 'add ×1000, autograd', metric, mixtape: () => mt.tidy(() => chain(leaf)), tfjs, options },
      { name: 'add ×1000, no grad (plain)', metric, mixtape: () => mt.tidy(() => chain(plain)), tfjs, options },
      { name: 'add ×1000, inside noGrad', metric, mixtape: () => mt.tidy(() => mt.noGrad(() => chain(leaf))), tfjs, options },
    ];
  },
  teardown() { for (const t of owned.splice(0)) t.dispose(); },
};
