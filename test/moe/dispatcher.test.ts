// One Dispatcher interface: SparseDispatcher and DeviceDispatcher (forced on the CPU, float64)
// both implement it, give the same combine for the same gates (value and gradient, with and
// without gate weighting) and agree on expert_to_gates and part_sizes; makeDispatcher picks
// the sparse one where data is host resident and the device one elsewhere.

import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import fc from 'fast-check';
import { CpuBackend } from '../../src/backends/cpu/cpu-backend.js';
import type { Backend } from '../../src/core/backend.js';
import { registerBackend, unregisterBackend } from '../../src/core/registry.js';
import { assertClose, mt, numRuns } from '../helpers.js';
import { gateWith, gatingCase, values } from './moe-helpers.js';

/** Row-wise experts that differ per expert and are not linear: expertₑ(x) = tanh(x·Wₑ) + e. */
function experts(E: number, d: number, dOut: number, seed: number): ((x: mt.Tensor) => mt.Tensor)[] {
  return Array.from({ length: E }, (_, e) => {
    const w = mt.tensor(values(d * dOut, seed + e), [d, dOut], { dtype: 'float64' });
    return (x: mt.Tensor) => x.matmul(w).tanh().add(e);
  });
}

/** combine(expert(dispatch(x))) with and without gates, expert_to_gates, part_sizes, and the gradients of the gated result. */
function roundTrip(dispatch: 'sparse' | 'device', E: number, gates: mt.Tensor, x: mt.Tensor, indices: mt.Tensor | undefined, seed: number) {
  return mt.tidy(() => {
    const g = gates.detach().requiresGrad_(), xs = x.detach().requiresGrad_();
    const dispatcher: mt.Dispatcher = mt.makeDispatcher(E, g, { indices, dispatch });
    const fns = experts(E, xs.shape[1]!, 3, seed);
    const outputs = dispatcher.dispatch(xs).map((rows, e) => fns[e]!(rows));
    const y = dispatcher.combine(outputs), plain = dispatcher.combine(outputs, false);
    const w = mt.tensor(values(y.size, seed + 99), y.shape, { dtype: 'float64' });
    y.mul(w).sum().backward();
    const result = {
      kind: dispatcher.constructor.name, y: Array.from(y.dataSync()), plain: Array.from(plain.dataSync()),
      expertToGates: dispatcher.expertToGates().map((t) => Array.from(t.dataSync())),
      partSizes: dispatcher.partSizes(), partSizesOnHost: dispatcher.partSizesOnHost, capacity: dispatcher.capacity,
      gradGates: Array.from(g.grad!.dataSync()), gradX: Array.from(xs.grad!.dataSync()),
    };
    dispatcher.dispose();
    return result;
  });
}

/** Checks that the device dispatcher's results equal the sparse one's. */
function assertSame(E: number, gates: mt.Tensor, x: mt.Tensor, indices: mt.Tensor | undefined, seed: number): void {
  const sparse = roundTrip('sparse', E, gates, x, indices, seed), device = roundTrip('device', E, gates, x, indices, seed);
  assert.equal(sparse.kind, 'SparseDispatcher');
  assert.equal(device.kind, 'DeviceDispatcher');
  const tol = { rtol: 1e-12, atol: 1e-14 };
  assertClose(device.y, sparse.y, { ...tol, what: 'combine' });
  assertClose(device.plain, sparse.plain, { ...tol, what: 'combine without gates' });
  assertClose(device.gradGates, sparse.gradGates, { ...tol, what: 'gradient w.r.t. the gates' });
  assertClose(device.gradX, sparse.gradX, { ...tol, what: 'gradient w.r.t. x' });
  assert.deepEqual(device.partSizes, sparse.partSizes);
  assert.deepEqual([sparse.partSizesOnHost, device.partSizesOnHost], [true, false]);
  const N = x.shape[0]!;
  assert.deepEqual([sparse.capacity, device.capacity], [N, N]);
  // The device buffers hold the same gates first, then 0 on their padding rows.
  device.expertToGates.forEach((rowGates, e) => {
    const part = sparse.partSizes[e]!;
    assert.equal(rowGates.length, N);
    assert.deepEqual(rowGates.slice(0, part), sparse.expertToGates[e]);
    assert.ok(rowGates.slice(part).every((v) => v === 0), `expert ${e}: padding rows have gate 0`);
  });
}

const dims = fc.record({
  N: fc.integer({ min: 1, max: 8 }), d: fc.integer({ min: 1, max: 4 }), E: fc.integer({ min: 1, max: 5 }),
  kRaw: fc.integer({ min: 1, max: 5 }), seed: fc.integer({ min: 0, max: 1e6 }),
});

afterEach(() => {
  mt.setBackend('cpu');
  unregisterBackend('cpu-not-host-resident');
});

describe('Dispatcher', () => {
  test('SparseDispatcher and DeviceDispatcher implement one interface', () => {
    const gates = mt.tensor([[0.75, 0.25], [0, 1]], { dtype: 'float64' });
    const dispatchers: mt.Dispatcher[] = [new mt.SparseDispatcher(2, gates), new mt.DeviceDispatcher(2, gates)];
    for (const d of dispatchers) {
      for (const method of ['dispatch', 'combine', 'expertToGates', 'partSizes', 'dispose'] as const) {
        assert.equal(typeof d[method], 'function', `${d.constructor.name}.${method}`);
      }
      assert.deepEqual([d.numExperts, d.numExamples, d.capacity], [2, 2, 2]);
      assert.deepEqual(d.partSizes(), [1, 2]);
      d.dispose();
    }
  });

  test('the same combine for the same top-k gates: value, gradient, expert_to_gates, part_sizes (float64)', () => {
    fc.assert(fc.property(dims, ({ N, d, E, kRaw, seed }) => {
      const k = Math.min(kRaw, E);
      const c = gatingCase(N, d, E, seed);
      const out = gateWith(c, k).forward(c.x, { noise: c.noise });
      assertSame(E, out.gates, c.x, out.indices, seed);
    }), numRuns(25));
  });

  test('the same combine when every nonzero gate is a route (no indices, as batchwise gating)', () => {
    for (const seed of [1, 2, 3]) {
      const N = 7, d = 3, E = 4;
      // Some rows route nowhere, some to one expert, some to several.
      const raw = values(N * E, seed).map((v) => (v > 0.2 ? v : 0));
      assertSame(E, mt.tensor(raw, [N, E], { dtype: 'float64' }), mt.tensor(values(N * d, seed + 5), [N, d], { dtype: 'float64' }), undefined, seed);
    }
  });

  test('makeDispatcher: auto is sparse where data is host resident and device elsewhere; an unknown mode is an error', () => {
    const gates = mt.tensor([[1, 0], [0, 1]], { dtype: 'float64' });
    assert.ok(mt.makeDispatcher(2, gates) instanceof mt.SparseDispatcher);
    assert.ok(mt.makeDispatcher(2, gates, { dispatch: 'sparse' }) instanceof mt.SparseDispatcher);
    assert.ok(mt.makeDispatcher(2, gates, { dispatch: 'device' }) instanceof mt.DeviceDispatcher);
    assert.equal(mt.makeDispatcher(2, gates, { dispatch: 'device', capacity: 1 }).capacity, 1);
    assert.throws(() => mt.makeDispatcher(2, gates, { dispatch: 'magic' as 'auto' }), /makeDispatcher: dispatch must be 'auto', 'sparse' or 'device', got 'magic'/);
    // A backend whose data is not host resident: the CPU backend under another capability.
    registerBackend('cpu-not-host-resident', {
      create: (): Backend => {
        const cpu = new CpuBackend({ name: 'cpu-not-host-resident' });
        return Object.assign(Object.create(cpu) as CpuBackend, { capabilities: { hostResident: false, dtypes: cpu.capabilities.dtypes } });
      },
    });
    mt.setBackend('cpu-not-host-resident');
    const onDevice = mt.tensor([[1, 0], [0, 1]], { dtype: 'float64' });
    assert.equal(mt.dispatchesOnDevice('auto'), true);
    assert.ok(mt.makeDispatcher(2, onDevice) instanceof mt.DeviceDispatcher);
    assert.ok(mt.makeDispatcher(2, onDevice, { dispatch: 'sparse' }) instanceof mt.SparseDispatcher);
  });
});
