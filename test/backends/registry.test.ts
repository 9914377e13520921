// The backend registry: a backend registered from outside src/tensor, built on the CPU
// kernel table with one kernel replaced, runs ops (and their gradients) like any other.

import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { CpuBackend, cpuKernels, data, type CpuKernel } from '../../src/backends/cpu/cpu-backend.js';
import { cpuPool } from '../../src/backends/cpu/pool.js';
import { registerBackend, registeredBackends, unregisterBackend } from '../../src/core/registry.js';
import { mt } from '../helpers.js';

afterEach(() => {
  mt.setBackend('cpu');
  unregisterBackend('cpu-doubling-exp');
});

/** exp that returns 2·eˣ: wrong on purpose, so that its result shows it ran. */
let calls = 0;
const doublingExp: CpuKernel<'exp'> = (inputs, _attrs, out, be) => {
  calls++;
  const x = data(inputs[0]!);
  const y = cpuPool.take(out.dtype, x.length, false);
  for (let i = 0; i < x.length; i++) y[i] = 2 * Math.exp(x[i]!);
  return be.wrap(y);
};

test('cpu and gpu are registered by src/backends/index.ts', () => {
  assert.deepEqual(registeredBackends().slice(0, 2), ['cpu', 'gpu']);
});

test('a throwaway backend reuses the CPU kernels, overrides one, and runs ops through setBackend', () => {
  registerBackend('cpu-doubling-exp', { create: () => new CpuBackend({ name: 'cpu-doubling-exp', kernels: { exp: doublingExp }, kernelClass: 'test' }) });
  mt.setBackend('cpu-doubling-exp');
  const info = mt.backendInfo();
  assert.equal(info.name, 'cpu-doubling-exp');
  assert.equal(info.kernelClass, 'test');
  calls = 0;
  const x = mt.tensor([0, 1], { dtype: 'float64', requiresGrad: true });
  const y = x.exp();                                  // the override
  assert.equal(calls, 1);
  assert.deepEqual(y.toArray(), [2, 2 * Math.E]);
  assert.deepEqual(x.add(1).mul(3).toArray(), [3, 6]); // the reused CPU kernels
  // The gradient rule of exp uses the op's output, so it sees the override too.
  y.sum().backward();
  assert.deepEqual(x.grad!.toArray(), [2, 2 * Math.E]);
  // Tensors stay on their backend.
  mt.setBackend('cpu');
  assert.throws(() => x.add(1), /lives on the cpu-doubling-exp backend but the active backend is cpu/);
});

test('the exported CPU kernel table is frozen and complete', () => {
  assert.equal(Object.isFrozen(cpuKernels), true);
  assert.equal(typeof cpuKernels.matmul, 'function');
});

test('setBackend with an unregistered name lists the registered ones', () => {
  assert.throws(() => mt.setBackend('tpu'), /setBackend: unknown backend 'tpu' \(registered: 'cpu', 'gpu'/);
});
