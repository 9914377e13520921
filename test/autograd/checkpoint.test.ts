// checkpoint(fn, ...inputs): recomputed activations give the un-checkpointed gradients bit
// for bit (random numbers replayed), with createGraph, nested checkpoints, closed-over
// parameters, and less memory held between forward and backward.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { mt } from '../helpers.js';
import type { DType } from '../../src/core/dtype.js';

const bits = (t: mt.Tensor | null) => (t === null ? null : Array.from(t.dataSync()));

/**
 * An LSTM cell over T steps with dropout on its input and gaussian noise on its state (both
 * drawn from the default generator), cut into segments of `every` steps, each run through
 * `wrap` (checkpoint or a plain call). Returns every gradient.
 */
function lstmGrads(dtype: DType, every: number, wrap: (fn: (...xs: mt.Tensor[]) => mt.Tensor[], ...xs: mt.Tensor[]) => mt.Tensor[]) {
  mt.manualSeed(3);
  const T = 12, B = 3, I = 4, H = 5;
  const cell = new mt.LSTMCell(I, H, { dtype });
  const x = mt.randn([T, B, I], { dtype }).requiresGrad_();
  const readout = mt.randn([H], { dtype });
  mt.manualSeed(11); // the same random numbers for dropout and noise in both runs
  mt.tidy(() => {
    let h = mt.zeros([B, H], { dtype }), c = mt.zeros([B, H], { dtype });
    const losses: mt.Tensor[] = [];
    for (let start = 0; start < T; start += every) {
      const segment = (h0: mt.Tensor, c0: mt.Tensor, xs: mt.Tensor) => {
        let state = { h: h0, c: c0 };
        const outs: mt.Tensor[] = [];
        for (let t = 0; t < xs.shape[0]!; t++) {
          const xt = mt.dropout(xs.slice([t, 0, 0], [1, B, I]).reshape([B, I]), 0.25);
          state = cell.forward(xt, state);
          state = { h: state.h.add(mt.randn([B, H], { dtype }).mul(0.01)), c: state.c };
          outs.push(state.h);
        }
        return [state.h, state.c, mt.stack(outs, 0)];
      };
      const xs = x.slice([start, 0, 0], [Math.min(every, T - start), B, I]);
      const [hn, cn, out] = wrap(segment, h, c, xs) as [mt.Tensor, mt.Tensor, mt.Tensor];
      losses.push(out.mul(readout).sum());
      h = hn; c = cn;
    }
    losses.reduce((a, b) => a.add(b)).add(h.sum()).backward();
  });
  const grads = { x: bits(x.grad), ...Object.fromEntries(cell.namedParameters().map(([n, p]) => [n, bits(p.grad)])) };
  return grads;
}

const plain = (fn: (...xs: mt.Tensor[]) => mt.Tensor[], ...xs: mt.Tensor[]) => fn(...xs);

describe('checkpoint', () => {
  for (const dtype of ['float32', 'float64'] as const) {
    test(`an LSTM with dropout and noise, checkpointed every 3 or 4 steps: every gradient bit-equal (${dtype})`, () => {
      const reference = lstmGrads(dtype, 3, plain);
      assert.deepEqual(lstmGrads(dtype, 3, mt.checkpoint), reference);
      assert.deepEqual(lstmGrads(dtype, 4, mt.checkpoint), lstmGrads(dtype, 4, plain));
      // The noise really is replayed: other random numbers give other gradients.
      assert.notDeepEqual(lstmGrads(dtype, 3, (fn, ...xs) => { mt.randn([1]); return mt.checkpoint(fn, ...xs); }), reference);
    });
  }

  test('nested checkpoints give the same gradients bit for bit', () => {
    const nested = (fn: (...xs: mt.Tensor[]) => mt.Tensor[], ...xs: mt.Tensor[]) =>
      mt.checkpoint((...ys: mt.Tensor[]) => mt.checkpoint(fn, ...ys), ...xs);
    assert.deepEqual(lstmGrads('float64', 4, nested), lstmGrads('float64', 4, plain));
  });

  test('a noisy top-k MoE inside a checkpoint: gates, gradients and the balancing loss replay exactly', () => {
    const run = (useCheckpoint: boolean) => {
      mt.manualSeed(5);
      const moe = new mt.MoE({ inputSize: 4, outputSize: 4, hiddenSize: 6, numExperts: 4, k: 2, dtype: 'float64' });
      // Non-zero gate weights, so that the noise changes the routing.
      for (const p of [moe.gate.parameters()].flat()) p.assign(mt.randn(p.shape, { dtype: 'float64' }));
      const x = mt.randn([10, 4], { dtype: 'float64' }).requiresGrad_();
      mt.manualSeed(9);
      const f = (input: mt.Tensor) => { const o = moe.forward(input); return { y: o.output, aux: o.auxLoss, indices: o.stats.indices }; };
      const o = useCheckpoint ? mt.checkpoint(f, x) : f(x);
      o.y.square().sum().add(o.aux).backward();
      return { indices: bits(o.indices), x: bits(x.grad), ...Object.fromEntries(moe.namedParameters().map(([n, p]) => [n, bits(p.grad)])) };
    };
    assert.deepEqual(run(true), run(false));
  });

  test('createGraph: gradients of gradients through a checkpoint equal the un-checkpointed ones', () => {
    const run = (useCheckpoint: boolean) => {
      const w = mt.tensor([0.5, -1.25, 2], [3], { dtype: 'float64', requiresGrad: true });
      const x = mt.tensor([1, 2, -0.5], [3], { dtype: 'float64', requiresGrad: true });
      const f = (a: mt.Tensor) => a.mul(w).tanh().mul(a).sum();
      const y = useCheckpoint ? mt.checkpoint(f, x) : f(x);
      const [gx] = mt.autograd.grad(y, [x], { createGraph: true });
      gx!.square().sum().backward();
      return { gx: bits(gx!), x: bits(x.grad), w: bits(w.grad) };
    };
    const got = run(true), want = run(false);
    assert.ok(want.w!.some((v) => v !== 0));
    assert.deepEqual(got, want);
  });

  test('forward keeps less: after an unrolled chain the checkpointed graph holds fewer bytes', () => {
    const held = (useCheckpoint: boolean) => {
      const w = mt.randn([16, 16], { dtype: 'float64' }).requiresGrad_();
      const before = mt.memory().bytes;
      const step = (h: mt.Tensor) => { for (let i = 0; i < 8; i++) h = h.matmul(w).tanh().mul(0.5); return h; };
      let h = mt.randn([8, 16], { dtype: 'float64' });
      mt.tidy(() => { for (let s = 0; s < 8; s++) h = mt.keep(useCheckpoint ? mt.checkpoint(step, h) : step(h)); });
      const bytes = mt.memory().bytes - before;
      h.sum().backward();
      const leftover = mt.memory().bytes - before;
      h.dispose(); w.dispose();
      return { bytes, leftover };
    };
    const with_ = held(true), without = held(false);
    assert.ok(with_.bytes * 4 < without.bytes, `checkpointed ${with_.bytes} B vs ${without.bytes} B`);
  });

  test('without grad mode, or with nothing to differentiate, it is a plain call', () => {
    const x = mt.tensor([1, 2]);
    const y = mt.noGrad(() => mt.checkpoint((a: mt.Tensor) => a.mul(2), x.detach().requiresGrad_()));
    assert.equal(y.gradFn, null);
    assert.equal(mt.checkpoint((a: mt.Tensor) => a.mul(2), x).gradFn, null);
    const w = mt.tensor([3, 4], { requiresGrad: true });
    assert.equal(mt.checkpoint((a: mt.Tensor) => a.mul(w), x).gradFn, 'reshape');
  });

  test('a function that computes something else when recomputed is a clear error', () => {
    let calls = 0;
    const x = mt.tensor([1, 2, 3], { dtype: 'float64', requiresGrad: true });
    const y = mt.checkpoint((a: mt.Tensor) => (calls++ === 0 ? a.mul(2) : a.sum()), x);
    assert.throws(() => y.sum().backward(), /checkpoint: recomputing fn gave 1 differentiable outputs of shapes \[\], but the forward pass gave 1 of shapes \[3\]/);
  });

  test('bad arguments name the argument', () => {
    assert.throws(() => mt.checkpoint(3 as never), /checkpoint: fn must be a function, got number/);
    assert.throws(() => mt.checkpoint((a: mt.Tensor) => a, [1] as never), /checkpoint: inputs\[0\] must be a Tensor, got object/);
    const t = mt.tensor([1]); t.dispose();
    assert.throws(() => mt.checkpoint((a: mt.Tensor) => a, t), /checkpoint: inputs\[0\] \(tensor #\d+, shape \[1\]\) was disposed/);
  });

  test('leaks nothing: forward, backward and disposal return to the starting handle count', () => {
    const start = mt.memory().liveHandles;
    const cell = new mt.LSTMCell(3, 4, { dtype: 'float64' });
    const x = mt.randn([2, 3], { dtype: 'float64' });
    mt.tidy(() => {
      let s = { h: mt.zeros([2, 4], { dtype: 'float64' }), c: mt.zeros([2, 4], { dtype: 'float64' }) };
      for (let i = 0; i < 3; i++) s = mt.checkpoint((h: mt.Tensor, c: mt.Tensor) => cell.forward(x, { h, c }), s.h, s.c);
      s.h.sum().backward();
    });
    x.dispose();
    for (const p of cell.parameters()) p.dispose();
    assert.equal(mt.memory().liveHandles, start);
  });
});
