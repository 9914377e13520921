// The MoE layer runs its experts as grouped products on the CPU (src/moe/grouped-experts.ts):
// the same outputs and gradients as running each expert on its rows, to rounding (these
// experts are small: one product per expert runs on the scalar kernels, which round a
// float32 sum differently from the SIMD kernel; test/tensor/grouped.test.ts shows the
// products bit-equal where both run on SIMD), for both expert kinds; the parameters stay
// each expert's own. A dense Expert runs the same kernels on one segment, with Linear → relu →
// Linear's bits.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { getBackend } from '../../src/tensor/engine.js';
import { assertClose, mt, numRuns, withKernel } from '../helpers.js';

const bits = (t: mt.Tensor) => Array.from(t.dataSync());

/** Runs `fn` with the backend's groupedMatmul switched on or off (off: one product per expert). */
function withGrouping<T>(on: boolean, fn: () => T): T {
  return withKernel(['groupedMatmul', 'groupedWeightGrads'], on, fn);
}

function step(expert: 'mlp' | 'swiglu', E: number, k: number, N: number, seed: number, grouped: boolean, dtype: 'float32' | 'float64') {
  mt.manualSeed(seed);
  const moe = new mt.MoE({ inputSize: 6, outputSize: 5, hiddenSize: 7, numExperts: E, k, expert, dtype });
  const x = mt.randn([N, 6], { dtype });
  const r = mt.randn([N, 5], { dtype });
  return withGrouping(grouped, () => {
    const out = moe.forward(x, { noise: mt.randn([N, E], { dtype }) });
    out.output.mul(r).sum().add(out.auxLoss).backward();
    return { y: bits(out.output), grads: moe.namedParameters().map(([name, p]) => [name, p.grad ? bits(p.grad) : null] as const) };
  });
}

for (const expert of ['mlp', 'swiglu'] as const) {
  test(`MoE (${expert} experts): grouped expert products give each expert's outputs and gradients, to rounding`, () => {
    fc.assert(fc.property(fc.record({ E: fc.integer({ min: 2, max: 9 }), N: fc.integer({ min: 1, max: 30 }), seed: fc.integer({ min: 0, max: 1e6 }) }), ({ E, N, seed }) => {
      const k = Math.min(2, E);
      for (const dtype of ['float32', 'float64'] as const) {
        const grouped = step(expert, E, k, N, seed, true, dtype), apart = step(expert, E, k, N, seed, false, dtype);
        const tol = dtype === 'float64' ? { rtol: 1e-12, atol: 1e-13 } : { rtol: 1e-5, atol: 1e-6 };
        assertClose(grouped.y, apart.y, { ...tol, what: 'output' });
        assert.deepEqual(grouped.grads.map(([n]) => n), apart.grads.map(([n]) => n));
        grouped.grads.forEach(([name, g], i) => {
          const want = apart.grads[i]![1];
          assert.equal(g === null, want === null, `${name}: gradient present in one path only`);
          if (g && want) assertClose(g, want, { ...tol, what: name });
        });
      }
    }), numRuns(12));
  });
}

test('MoE on the CPU runs grouped products (2 forward, 2 + 2 backward, whatever E; the bias gradients from the weight-gradient kernel), and the state dict keeps experts.{i}.fc1.weight', () => {
  mt.manualSeed(1);
  const moe = new mt.MoE({ inputSize: 4, outputSize: 4, hiddenSize: 8, numExperts: 6, k: 2 });
  const be = getBackend() as { run: (kernel: string, ...rest: unknown[]) => unknown; runMany: (kernel: string, ...rest: unknown[]) => unknown };
  const calls: string[] = [];
  const [run, runMany] = [be.run, be.runMany];
  be.run = function (kernel: string, ...rest: unknown[]) { if (kernel === 'groupedMatmul' || kernel === 'matmul') calls.push(kernel); return run.call(this, kernel, ...rest); };
  const sums: unknown[] = [];
  be.runMany = function (kernel: string, ...rest: unknown[]) {
    calls.push(kernel);
    if (kernel === 'groupedWeightGrads') sums.push((rest[1] as { sums?: unknown }).sums);
    return runMany.call(this, kernel, ...rest);
  };
  try {
    const out = moe.forward(mt.randn([10, 4]).requiresGrad_());
    out.output.sum().backward();
  } finally {
    delete (be as { run?: unknown }).run;
    delete (be as { runMany?: unknown }).runMany;
  }
  const count = (k: string) => calls.filter((c) => c === k).length;
  // Forward: fc1 and fc2; backward: ∂x of each (the first layer's ∂x feeds dispatch) and the weight gradients.
  assert.equal(count('groupedMatmul'), 4);
  assert.equal(count('groupedWeightGrads'), 2);
  // The biases are the grouped kernel's: their gradients (dy's segment sums) come with the weights'.
  assert.deepEqual(sums, ['a', 'a']); // Linear weights [out, in]: ∂W = dyᵀ·x, dy is operand a
  assert.equal(count('segmentSums'), 0);
  const names = Object.keys(moe.stateDict());
  for (let i = 0; i < 6; i++) for (const p of ['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias']) assert.ok(names.includes(`experts.${i}.${p}`), `experts.${i}.${p}`);
  for (const e of moe.experts) assert.ok(e.fc1.weight.grad && e.fc2.bias!.grad, 'every expert got gradients');
});

test('a dense Expert runs the grouped kernels on one segment: the bits of Linear → relu → Linear, outputs and gradients, small (scalar) and large (SIMD) layers, float32 and float64, SIMD on and off', () => {
  const cases = [{ N: 3, d: 4, h: 8 }, { N: 40, d: 24, h: 36 }, { N: 130, d: 64, h: 96 }];
  const calls: string[] = [];
  const be = getBackend() as { run: (kernel: string, ...rest: unknown[]) => unknown };
  for (const simd of [true, false]) {
    mt.setBackend('cpu', { simd });
    for (const dtype of ['float32', 'float64'] as const) {
      for (const { N, d, h } of cases) {
        mt.manualSeed(N + d);
        const expert = new mt.Expert(d, h, d, { dtype });
        const x = mt.randn([N, d], { dtype }).requiresGrad_();
        const r = mt.randn([N, d], { dtype });
        const run = (fused: boolean) => {
          for (const p of [...expert.parameters(), x]) p.grad = null;
          const run0 = be.run;
          be.run = function (kernel: string, ...rest: unknown[]) { calls.push(kernel); return run0.call(this, kernel, ...rest); };
          let y: mt.Tensor;
          try {
            y = fused ? expert.forward(x) : expert.fc2.forward(expert.fc1.forward(x).relu());
          } finally {
            delete (be as { run?: unknown }).run;
          }
          y.mul(r).sum().backward();
          return [y, x.grad!, ...expert.parameters().map((p) => p.grad!)].map(bits);
        };
        calls.length = 0;
        const got = run(true);
        assert.ok(calls.includes('groupedMatmul') && !calls.includes('relu'), `${dtype} ${N}×${d}: the grouped kernels ran (${calls.join(' ')})`);
        assert.deepEqual(got, run(false), `${dtype} simd=${simd} ${N}×${d}→${h}`);
      }
    }
  }
  mt.setBackend('cpu', { simd: true });
  // Not a matrix of the layer's width and dtype: the Linear path, and its errors.
  const expert = new mt.Expert(4, 8, 4);
  assert.deepEqual([...expert.forward(mt.randn([2, 3, 4])).shape], [2, 3, 4]);
  assert.throws(() => expert.forward(mt.randn([2, 5])), /Linear: expected input with last dimension 4/);
});

test('on 2 threads an MoE leaves the experts\' products running, forward beside the gate\'s balancing half and backward beside the gate\'s backward, and the gate\'s logits run as one job (or, composed, its x·W_gate beside its x·W_noise): the bits of 1 thread and of no overlap', { timeout: 120_000 }, async () => {
  mt.setBackend('cpu', { threads: 2 });
  const info = () => mt.backendInfo() as { threads?: number; threadsReason?: string; jobsLeftRunning?: number; productsLeftRunning?: number; noisyGateJobs?: number; chunksByThread?: number[] };
  if (info().threads !== 2) { console.log(`# skipped: no second thread here (${String(info().threadsReason)})`); return; }
  const state = (getBackend() as unknown as { simd: { overlap: boolean } }).simd;
  // Jobs big enough to be split (1024 rows × 2 routes × 256 × 512); x requires grad, so the
  // dispatch's and the gate's gradients meet in x.grad.
  const left = { forward: 0, backward: 0, gateProducts: 0, gateJobs: 0 };
  // fusedGate off: the gate composes its ops (the backend's noisyTopKLogits switched off).
  const run = (fusedGate = true) => withKernel('noisyTopKLogits', fusedGate, () => mt.tidy(() => {
    mt.manualSeed(5);
    const moe = new mt.MoE({ inputSize: 256, outputSize: 256, hiddenSize: 512, numExperts: 8, k: 2 });
    const x = mt.randn([1024, 256]).requiresGrad_();
    const [before, productsBefore, gateBefore] = [info().jobsLeftRunning ?? 0, info().productsLeftRunning ?? 0, info().noisyGateJobs ?? 0];
    const o = moe.forward(x);
    const between = info().jobsLeftRunning ?? 0;
    o.output.square().sum().add(o.auxLoss).backward();
    Object.assign(left, {
      forward: between - before, backward: (info().jobsLeftRunning ?? 0) - between,
      gateProducts: (info().productsLeftRunning ?? 0) - productsBefore, gateJobs: (info().noisyGateJobs ?? 0) - gateBefore,
    });
    return [bits(o.output), bits(o.auxLoss), bits(x.grad!), ...moe.parameters().map((t) => bits(t.grad!))];
  }));
  const start = Date.now();
  let two: number[][];
  for (;;) {
    const took = info().chunksByThread?.[1] ?? 0;
    two = run();
    // Forward: each layer's grouped product (fc1, fc2), after the gate's job (its logits,
    // noise and top k over both threads); backward: each layer's input gradient and weight
    // gradients (the gate's products there run beside those).
    assert.deepEqual(left, { forward: 2, backward: 4, gateProducts: 0, gateJobs: 1 }, 'the experts\' products were left running, after the gate\'s job');
    if ((info().chunksByThread?.[1] ?? 0) > took) break;
    if (Date.now() - start > 60_000) assert.fail('the worker took no chunk within 60 s');
    await new Promise((r) => setTimeout(r, 20));
  }
  // Composed, the gate's x·W_gate ([1024, 256] · [256, 8]: 2M multiply-adds, too few to split)
  // is left running too, beside its x·W_noise.
  const composed = run(false);
  assert.deepEqual(left, { forward: 3, backward: 4, gateProducts: 1, gateJobs: 0 }, 'composed: the gate\'s first product and the experts\' products were left running');
  state.overlap = false;
  const joined = run();
  assert.deepEqual(left, { forward: 0, backward: 0, gateProducts: 0, gateJobs: 1 }, 'overlap off: nothing left running');
  const joinedComposed = run(false);
  assert.deepEqual(left, { forward: 0, backward: 0, gateProducts: 0, gateJobs: 0 }, 'overlap off, composed: nothing left running');
  state.overlap = true;
  mt.setBackend('cpu', { threads: 1 });
  const one = run();
  assert.deepEqual(two, joined);
  assert.deepEqual(two, one);
  assert.deepEqual(two, composed);
  assert.deepEqual(two, joinedComposed);
});

test('backward takes the nodes on a path to the experts\' grouped products first: the balancing losses\' backward (probInTopKBackward) comes after the first expert job, to run beside it', () => {
  mt.setBackend('cpu');
  type Run = (kernel: string, ...rest: unknown[]) => unknown;
  const backend = getBackend() as unknown as { run: Run; runMany: Run };
  mt.manualSeed(3);
  const moe = new mt.MoE({ inputSize: 8, outputSize: 8, hiddenSize: 16, numExperts: 4, k: 2 });
  const x = mt.randn([32, 8]);
  const kernels: string[] = [];
  const { run, runMany } = backend;
  mt.tidy(() => {
    const o = moe.forward(x);
    const loss = o.output.sum().add(o.auxLoss);
    backend.run = (kernel, ...rest) => { kernels.push(kernel); return run.call(backend, kernel, ...rest); };
    backend.runMany = (kernel, ...rest) => { kernels.push(kernel); return runMany.call(backend, kernel, ...rest); };
    try { loss.backward(); } finally { Object.assign(backend, { run, runMany }); }
  });
  const firstExperts = kernels.indexOf('groupedMatmul'), balancing = kernels.indexOf('probInTopKBackward');
  assert.ok(firstExperts >= 0 && balancing >= 0, `both ran in backward: ${kernels.join(', ')}`);
  assert.ok(firstExperts < balancing, `the experts' product (at ${firstExperts}) before the balancing losses' backward (at ${balancing}): ${kernels.join(', ')}`);
  moe.zeroGrad();
});
