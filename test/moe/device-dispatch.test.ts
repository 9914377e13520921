// DeviceDispatcher (the GPU backend's dispatch: fixed-size expert buffers, no readback) on
// the CPU in float64: it equals SparseDispatcher in value and gradient, for top-k and
// batchwise routing; a smaller capacity drops the late routes; gradcheck passes.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { assertClose, mt, numRuns } from '../helpers.js';
import { gatingCase } from './moe-helpers.js';

type Dispatch = 'sparse' | 'device';

/** MoE output, aux loss and every gradient, with the gate weights and noise of a tie-free case. */
function runMoE(dispatch: Dispatch, o: { N: number; d: number; E: number; k: number; seed: number; gating?: 'noisy-topk' | 'batchwise'; capacity?: number }) {
  return mt.tidy(() => {
    const c = gatingCase(o.N, o.d, o.E, o.seed);
    const moe = new mt.MoE({
      inputSize: o.d, outputSize: 3, hiddenSize: 4, numExperts: o.E, k: o.k, dtype: 'float64', dispatch,
      gating: o.gating ?? 'noisy-topk', generator: new mt.Generator(o.seed), ...(o.capacity ? { capacity: o.capacity } : {}),
    });
    moe.loadStateDict(o.gating === 'batchwise' ? { 'gate.w_gate': c.wGate } : { 'gate.w_gate': c.wGate, 'gate.w_noise': c.wNoise }, { strict: false });
    const x = c.x.requiresGrad_();
    const out = moe.forward(x, o.gating === 'batchwise' ? {} : { noise: c.noise });
    const w = mt.tensor(Array.from({ length: out.output.size }, (_, i) => ((i % 7) - 3) / 2), out.output.shape, { dtype: 'float64' });
    out.output.mul(w).sum().add(out.auxLoss).backward();
    return {
      y: Array.from(out.output.dataSync()), aux: out.auxLoss.item(), counts: out.stats.expertCounts,
      grads: [x, ...moe.parameters()].map((p) => Array.from(p.grad?.dataSync() ?? [])),
    };
  });
}

const dims = fc.record({
  N: fc.integer({ min: 1, max: 9 }), d: fc.integer({ min: 1, max: 4 }), E: fc.integer({ min: 1, max: 6 }),
  kRaw: fc.integer({ min: 1, max: 6 }), seed: fc.integer({ min: 0, max: 1e6 }),
});

describe('DeviceDispatcher', () => {
  test('equals SparseDispatcher in output, aux loss, expert counts and every gradient (noisy top-k)', () => {
    fc.assert(fc.property(dims, ({ N, d, E, kRaw, seed }) => {
      const o = { N, d, E, k: Math.min(kRaw, E), seed };
      const sparse = runMoE('sparse', o), device = runMoE('device', o);
      assertClose(device.y, sparse.y, { rtol: 1e-12, atol: 1e-14, what: 'output' });
      assertClose([device.aux], [sparse.aux], { rtol: 1e-12, atol: 1e-14, what: 'aux loss' });
      assert.deepEqual(device.counts, sparse.counts);
      device.grads.forEach((g, i) => assertClose(g, sparse.grads[i]!, { rtol: 1e-12, atol: 1e-14, what: `gradient ${i}` }));
    }), numRuns(25));
  });

  test('equals SparseDispatcher with batchwise gating (routes from the nonzero gates)', () => {
    for (const seed of [1, 2, 3]) {
      const o = { N: 8, d: 3, E: 4, k: 2, seed, gating: 'batchwise' as const };
      const sparse = runMoE('sparse', o), device = runMoE('device', o);
      assertClose(device.y, sparse.y, { rtol: 1e-12, atol: 1e-14, what: 'output' });
      assert.deepEqual(device.counts, sparse.counts);
      device.grads.forEach((g, i) => assertClose(g, sparse.grads[i]!, { rtol: 1e-12, atol: 1e-14, what: `gradient ${i}` }));
    }
  });

  test('a capacity below the load drops the latest routes of an expert (Switch Transformer style)', () => {
    const E = 2, N = 6;
    const x = mt.tensor(Array.from({ length: N * 2 }, (_, i) => i / 4), [N, 2], { dtype: 'float64' });
    // Every example picks expert 0 first, then expert 1.
    const gates = mt.tensor(Array.from({ length: N }, () => [0.75, 0.25]).flat(), [N, E], { dtype: 'float64' });
    const indices = mt.tensor(Array.from({ length: N }, () => [0, 1]).flat(), [N, 2], { dtype: 'int32' });
    const dispatcher = new mt.DeviceDispatcher(E, gates, indices, 4);
    const parts = dispatcher.dispatch(x);
    assert.deepEqual(parts.map((p) => p.shape), [[4, 2], [4, 2]]);
    assert.deepEqual(parts[0]!.toArray(), [[0, 0.25], [0.5, 0.75], [1, 1.25], [1.5, 1.75]]); // examples 0..3; 4 and 5 dropped
    const y = dispatcher.combine(parts); // identity experts
    // Both experts received all six examples, so both dropped examples 4 and 5.
    const expected = Array.from({ length: N }, (_, n) => [0, 1].map((j) => (n < 4 ? (2 * n + j) / 4 : 0)));
    assertClose(y.dataSync(), expected.flat(), { rtol: 1e-15, what: 'combine' });
    assert.deepEqual(dispatcher.partSizes(), [4, 4]);
  });

  test('gradcheck of the MoE layer with device dispatch', () => {
    const c = gatingCase(5, 3, 4, 42);
    const moe = new mt.MoE({ inputSize: 3, outputSize: 2, hiddenSize: 3, numExperts: 4, k: 2, dtype: 'float64', dispatch: 'device', generator: new mt.Generator(1) });
    moe.loadStateDict({ 'gate.w_gate': c.wGate, 'gate.w_noise': c.wNoise }, { strict: false });
    const x = c.x.requiresGrad_();
    assert.ok(mt.gradcheck((xx) => moe.forward(xx, { noise: c.noise }).output, [x]));
  });

  test('an empty capacity is an error; dispatch must be a known name', () => {
    const gates = mt.zeros([2, 2], { dtype: 'float64' });
    assert.throws(() => new mt.DeviceDispatcher(2, gates, undefined, 0), /DeviceDispatcher: capacity must be a positive integer, got 0/);
    assert.throws(() => new mt.MoE({ inputSize: 2, outputSize: 2, hiddenSize: 2, numExperts: 2, k: 1, dispatch: 'magic' as 'sparse' }), /MoE: dispatch must be 'auto', 'sparse' or 'device', got 'magic'/);
  });
});
