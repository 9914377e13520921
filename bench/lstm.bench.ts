// LSTM forward + backward (batch 32, 35 steps, 256 inputs, 256 hidden): mixtape's LSTM
// module against the same cell written by hand with tfjs-cpu ops and tf.grads, in the same
// process. Both compute the input projection of all steps in one matmul, then step the
// recurrence, and read back every weight gradient.

import { mt, type Case, type Suite } from './harness.js';
import { tfjsLstm } from './tfjs-lstm.js';

const B = 32, T = 35, I = 256, H = 256;
const owned: { dispose(): void }[] = [];

export const lstmSuite: Suite = {
  name: 'lstm',
  title: `LSTM forward + backward, batch ${B}, ${T} steps, ${I} inputs, ${H} hidden (ms per pass; ratio = mixtape speed / tfjs-cpu speed)`,
  cases(): Case[] {
    mt.manualSeed(0);
    const lstm = new mt.LSTM({ inputSize: I, hiddenSize: H });
    const x = mt.randn([T, B, I]);
    const weights = lstm.parameters();
    owned.push(x, ...weights);
    const peer = tfjsLstm(weights, x);
    owned.push(peer);

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
      tfjs: peer.run,
      options,
    }];
  },
  teardown() { for (const t of owned.splice(0)) t.dispose(); },
};
