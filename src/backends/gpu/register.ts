// How setBackend('gpu', { mode }) starts this backend: one instance per gpu.js mode.

import type { BackendRegistration } from '../../core/registry.js';
import type { GpuMode } from './device.js';
import { GpuBackend } from './gpu-backend.js';

export interface GpuBackendOptions {
  /** The gpu.js mode; default headless-gl in Node, WebGPU (else WebGL2) in a browser. */
  mode?: GpuMode;
}

/** gpu.js mode used when none is given: headless-gl in Node, WebGPU (else WebGL2) in a browser. */
function defaultGpuMode(): GpuMode {
  if (typeof (globalThis as { document?: unknown }).document === 'undefined') return 'headlessgl';
  return (globalThis as { navigator?: { gpu?: unknown } }).navigator?.gpu ? 'webgpu' : 'webgl2';
}

export const gpuRegistration: BackendRegistration<GpuBackendOptions> = {
  create: (options) => new GpuBackend(options.mode ?? defaultGpuMode()),
  instanceKey: (options) => String(options.mode ?? defaultGpuMode()),
  options: ['mode'],
};
