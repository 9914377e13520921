// The built-in backends, registered by name. A new backend is a folder under src/backends
// and one line here (or a registerBackend call of its own, from outside the library).

import { registerBackend } from '../core/registry.js';
import { cpuRegistration, type CpuOptions } from './cpu/register.js';
import { gpuRegistration, type GpuBackendOptions } from './gpu/register.js';

declare module '../core/registry.js' {
  interface BackendOptionsByName {
    cpu: CpuOptions;
    gpu: GpuBackendOptions;
  }
}

export function registerBuiltinBackends(): void {
  registerBackend('cpu', cpuRegistration);
  registerBackend('gpu', gpuRegistration);
}
