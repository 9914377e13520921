// The noisy top-k gate's logits in one kernel (src/tensor/ops/fused.ts noisyTopKLogits; on the
// SIMD CPU one job of row blocks over the threads, WasmMatmul.noisyTopK): the gate gives the
// bits, the graph and the generator state of its composition (matmul, softplus, add, randn,
// mul, add, topkIndices) for 1, 2 and 3 threads, float32 on the job, float64 and E that is not
// a multiple of 8 on the composed fallback; NaN rows go to topk's JavaScript path as the
// topkIndices kernel sends them; an MoE step is unchanged; bad input is named.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { noisyTopKLogits } from '../../src/tensor/ops/fused.js';
import { mt, numRuns, withKernel } from '../helpers.js';

const bits = (t: mt.Tensor | null | undefined) => (t ? Array.from(t.dataSync()) : null);

/** Runs `fn` with the backend's noisyTopKLogits kernel switched on or off (off: the gate composes the ops). */
const withFusedGate = <T>(on: boolean, fn: () => T): T => withKernel('noisyTopKLogits', on, fn);

const gateJobs = () => Number(mt.backendInfo().noisyGateJobs ?? 0);

interface Case { N: number; E: number; k: number; d: number; seed: number; nanRows?: number[] }

/** One gate forward and backward: every output, the gradients of x and both weights, the nodes' ops, and the next draws. */
function gateStep(c: Case, dtype: 'float32' | 'float64', fused: boolean) {
  return withFusedGate(fused, () => mt.tidy(() => {
    mt.manualSeed(c.seed);
    const generator = new mt.Generator(c.seed + 1);
    const gate = new mt.NoisyTopKGating({ inputSize: c.d, numExperts: c.E, k: c.k, dtype, generator });
    gate.w_gate = mt.randn([c.d, c.E], { dtype }).mul(0.3).requiresGrad_();
    gate.w_noise = mt.randn([c.d, c.E], { dtype }).mul(0.3).requiresGrad_();
    const values = Array.from(mt.randn([c.N, c.d], { dtype: 'float64' }).dataSync());
    for (const r of c.nanRows ?? []) values[r * c.d] = NaN;
    const x = mt.tensor(values, [c.N, c.d], { dtype }).requiresGrad_();
    const r = mt.randn([c.N, c.E], { dtype }), q = mt.randn([c.E], { dtype });
    const before = gateJobs();
    const out = gate.forward(x);
    const jobs = gateJobs() - before;
    out.gates.mul(r).sum().add(out.load.mul(q).sum()).add(out.importance.mul(q).sum()).backward();
    return {
      jobs,
      values: [out.gates, out.indices, out.cleanLogits, out.noisyLogits, out.noiseStddev, out.load, out.importance].map(bits),
      grads: [x, gate.w_gate, gate.w_noise].map((t) => bits(t.grad)),
      ops: [out.cleanLogits, out.noisyLogits, out.noiseStddev!].map((t) => t.gradFn),
      next: bits(mt.randn([4], { generator })),
    };
  }));
}

function assertSame(c: Case, dtype: 'float32' | 'float64', expectJob: boolean) {
  const fused = gateStep(c, dtype, true), composed = gateStep(c, dtype, false);
  const label = `${dtype} N=${c.N} E=${c.E} k=${c.k} d=${c.d} seed=${c.seed}`;
  assert.equal(composed.jobs, 0, `${label}: the composed gate ran the kernel`);
  assert.equal(fused.jobs, expectJob ? 1 : 0, `${label}: the gate's job ran ${fused.jobs} times`);
  assert.deepEqual(fused.ops, composed.ops, `${label}: nodes`);
  fused.values.forEach((v, i) => assert.ok(Object.is(String(v), String(composed.values[i])) && v!.every((x, j) => Object.is(x, composed.values[i]![j])), `${label}: output ${i} differs`));
  fused.grads.forEach((g, i) => assert.ok(g !== null && g.every((x, j) => Object.is(x, composed.grads[i]![j])), `${label}: gradient ${i} differs`));
  assert.deepEqual(fused.next, composed.next, `${label}: the generator moved differently`);
}

const info = () => mt.backendInfo() as { simd?: boolean; threadsReason?: string };
const pooled = () => info().simd === true && /worker threads/.test(String(info().threadsReason));

test('the gate gives its composition\'s bits, graph and generator state on 1, 2 and 3 threads (float32: one job)', { timeout: 120_000 }, () => {
  for (const threads of [1, 2, 3]) {
    mt.setBackend('cpu', { threads });
    const job = pooled();
    if (!job) console.log(`# no pool here (${info().threadsReason}): the composed path is checked alone`);
    assertSame({ N: 1024, E: 16, k: 2, d: 256, seed: 1 }, 'float32', job);
    fc.assert(fc.property(
      fc.record({ N: fc.integer({ min: 1, max: 300 }), e: fc.integer({ min: 1, max: 8 }), k: fc.integer({ min: 1, max: 4 }), d: fc.integer({ min: 16, max: 96 }), seed: fc.nat(1000) }),
      ({ N, e, k, d, seed }) => {
        const E = 8 * e, c = { N, E, k: Math.min(k, E - 1), d, seed };
        assertSame(c, 'float32', job && N * d * E >= 4096);
      },
    ), numRuns(12));
  }
  mt.setBackend('cpu');
});

test('float64, E not a multiple of 8, k = E, and a tiny product compose the ops inside the kernel: the same bits', () => {
  mt.setBackend('cpu', { threads: 2 });
  assertSame({ N: 64, E: 16, k: 2, d: 32, seed: 3 }, 'float64', false);
  assertSame({ N: 200, E: 12, k: 3, d: 64, seed: 4 }, 'float32', false);
  assertSame({ N: 100, E: 8, k: 8, d: 64, seed: 5 }, 'float32', pooled());
  assertSame({ N: 3, E: 8, k: 2, d: 16, seed: 6 }, 'float32', false);
  mt.setBackend('cpu');
});

test('rows with a NaN go to topk\'s JavaScript path, as the topkIndices kernel sends them', () => {
  mt.setBackend('cpu', { threads: 2 });
  assertSame({ N: 256, E: 16, k: 2, d: 64, seed: 7, nanRows: [0, 5, 130, 255] }, 'float32', pooled());
  mt.setBackend('cpu');
});

test('an MoE step gives the same output, losses and gradients with the gate\'s job and without', () => {
  mt.setBackend('cpu', { threads: 2 });
  const step = (fused: boolean) => withFusedGate(fused, () => mt.tidy(() => {
    mt.manualSeed(11);
    const moe = new mt.MoE({ inputSize: 64, outputSize: 64, hiddenSize: 96, numExperts: 16, k: 2 });
    const x = mt.randn([512, 64]);
    const before = gateJobs();
    const o = moe.forward(x);
    o.output.sum().add(o.auxLoss).backward();
    return { jobs: gateJobs() - before, values: [o.output, o.auxLoss].map(bits), grads: moe.parameters().map((p) => bits(p.grad)) };
  }));
  const a = step(true), b = step(false);
  assert.equal(a.jobs, pooled() ? 1 : 0);
  assert.equal(b.jobs, 0);
  assert.deepEqual(a.values, b.values);
  assert.deepEqual(a.grads, b.grads);
  mt.setBackend('cpu');
});

test('noisyTopKLogits names its op and arguments on bad input', () => {
  const x = mt.randn([4, 8]), w = mt.randn([8, 16]);
  assert.throws(() => noisyTopKLogits(x, mt.randn([7, 16]), w, 0.01, 3), /noisyTopKLogits: expected x \[N, d\] and wGate, wNoise \[d, E\].*wGate float32 \[7, 16\]/);
  assert.throws(() => noisyTopKLogits(x, w, mt.randn([8, 15]), 0.01, 3), /noisyTopKLogits: .*wNoise float32 \[8, 15\]/);
  assert.throws(() => noisyTopKLogits(x, w, w, 0.01, 17), /noisyTopKLogits: m must be an integer from 1 to 16, got 17/);
  assert.throws(() => noisyTopKLogits(mt.zeros([4, 8], { dtype: 'int32' }), w, w, 0.01, 3), /noisyTopKLogits/);
});
