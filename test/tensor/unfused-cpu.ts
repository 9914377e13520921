// The CPU backend without fused kernels, for tests that compare a fused op with its
// composition from core ops: `useUnfusedCpu()` registers it and switches to it; afterEach
// puts the default CPU backend back and unregisters it.

import { afterEach } from 'node:test';
import { CpuBackend } from '../../src/backends/cpu/cpu-backend.js';
import { registerBackend, unregisterBackend } from '../../src/core/registry.js';
import { mt } from '../helpers.js';

class UnfusedCpu extends CpuBackend {
  override supports(): boolean { return false; }
}

afterEach(() => {
  mt.setBackend('cpu');
  unregisterBackend('cpu-unfused');
});

/** Registers 'cpu-unfused', a CPU backend whose supports() is false: every fused op composes itself. */
export function registerUnfusedCpu(): void {
  registerBackend('cpu-unfused', { create: () => new UnfusedCpu({ name: 'cpu-unfused' }) });
}

/** Registers 'cpu-unfused' and switches to it. */
export function useUnfusedCpu(): void {
  registerUnfusedCpu();
  mt.setBackend('cpu-unfused');
}
