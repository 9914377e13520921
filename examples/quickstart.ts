// Quick start: fit a two-layer network to a seeded synthetic problem (two noisy
// concentric rings) with plain SGD, check its gradients in float64, and show the memory counters.
// Run: npm run demo

import * as mt from '../src/index.js';

mt.manualSeed(0);

// 512 points on two rings (radius 0.5 and 1, with seeded noise), labels 0/1.
const n = 512;
const noise = mt.randn([n, 2]).mul(0.08).dataSync();
const xs: number[] = [], ys: number[] = [];
for (let i = 0; i < n; i++) {
  const label = i % 2, r = label ? 1 : 0.5, angle = (i / n) * 2 * Math.PI * 7;
  xs.push(r * Math.cos(angle) + noise[2 * i]!, r * Math.sin(angle) + noise[2 * i + 1]!);
  ys.push(label);
}
const x = mt.tensor(xs, [n, 2]);
const target = mt.tensor(ys, [n], { dtype: 'int32' });
const targetOneHot = target.oneHot(2, { dtype: 'float32' });

// Parameters of x → tanh(x·W1 + b1) → ·W2 + b2 → logits, initialized like PyTorch's Linear.
const hidden = 64;
const init = (shape: number[], fanIn: number) => mt.rand(shape).sub(0.5).mul(2 / Math.sqrt(fanIn)).requiresGrad_();
const params = { w1: init([2, hidden], 2), b1: init([hidden], 2), w2: init([hidden, 2], hidden), b2: init([2], hidden) };

function forward(input: mt.Tensor, p: typeof params): mt.Tensor {
  return input.matmul(p.w1).add(p.b1).tanh().matmul(p.w2).add(p.b2);
}

function loss(logits: mt.Tensor, oneHot: mt.Tensor): mt.Tensor {
  return logits.logSoftmax(-1).mul(oneHot).sum(-1).mean().neg(); // cross-entropy
}

const lr = 0.5;
const started = Date.now();
for (let step = 0; step <= 600; step++) {
  const value = mt.tidy(() => {
    const l = loss(forward(x, params), targetOneHot);
    l.backward();
    return l.item();
  });
  mt.noGrad(() => {
    for (const [name, p] of Object.entries(params) as [keyof typeof params, mt.Tensor][]) {
      const updated = mt.tidy(() => p.sub(p.grad!.mul(lr)));
      p.dispose();
      params[name] = updated.requiresGrad_();
    }
  });
  if (step % 100 === 0) {
    const accuracy = mt.tidy(() => forward(x, params).argmax(-1).equal(target).cast('float32').mean().item());
    console.log(`step ${String(step).padStart(3)}  loss ${value.toFixed(4)}  accuracy ${(accuracy * 100).toFixed(1)}%`);
  }
}
console.log(`trained in ${((Date.now() - started) / 1000).toFixed(1)} s`);

// The same network in float64 passes PyTorch-style gradcheck.
const small = mt.tidy(() => mt.randn([5, 2], { dtype: 'float64' }));
const p64 = Object.fromEntries(Object.entries(params).map(([k, v]) => [k, v.double().detach().requiresGrad_()])) as typeof params;
const ok = mt.gradcheck((w1, b1, w2, b2) => loss(forward(small, { w1: w1!, b1: b1!, w2: w2!, b2: b2! }), mt.tensor([0, 1, 1, 0, 1], { dtype: 'int32' }).oneHot(2, { dtype: 'float64' })),
  [p64.w1, p64.b1, p64.w2, p64.b2]);
console.log(`gradcheck (float64, eps 1e-6, atol 1e-5, rtol 1e-3): ${ok ? 'passed' : 'failed'}`);
console.log('memory:', mt.memory());
