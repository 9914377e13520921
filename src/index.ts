// mixtape: tensors, reverse-mode autograd, the cpu and gpu backends, nn and the MoE.
// Importing this module connects the layers that do not import each other (see
// docs/ARCHITECTURE.md): autograd into the tensor layer, the backends into the registry.

import { autogradHooks } from './autograd/hooks.js';
import { registerBuiltinBackends } from './backends/index.js';
import { installAutograd } from './tensor/autograd-hooks.js';

installAutograd(autogradHooks);
registerBuiltinBackends();

export { Tensor, type BackwardOptions } from './tensor/tensor.js';
export type { DType, TypedArray } from './core/dtype.js';
export type { Shape } from './core/shape.js';
export * from './tensor/ops/index.js';
export {
  setBackend, backendInfo, ready, shutdownGpu, memory, emptyCache, OutOfMemoryError, noGrad, enableGrad, isGradEnabled, tidy, keep, dispose,
  type BackendName, type BackendOptions,
} from './tensor/engine.js';
export type { Backend, BackendCapabilities, BackendInfo, MemoryInfo, KernelName, KernelAttrs, KernelTable, Handle, TensorInfo, OutInfo } from './core/backend.js';
export { registerBackend, registeredBackends, unregisterBackend, type BackendRegistration, type BackendOptionsByName } from './core/registry.js';
export { CpuBackend, cpuKernels, type CpuBackendOptions, type CpuKernel, type CpuKernelTable } from './backends/cpu/cpu-backend.js';
export { autograd, autogradGrad, grad, valueAndGrad, type AutogradGradOptions, type GradOptions } from './autograd/grad.js';
export { checkpoint } from './autograd/checkpoint.js';
export { gradcheck, gradgradcheck, GradcheckError, type GradcheckOptions, type GradgradcheckOptions } from './autograd/gradcheck.js';
export { gradRules, withGradRuleOverride, type DiffOp, type GradRule, type AssemblingRule } from './autograd/rules.js';
export * from './nn/index.js';
export * as nn from './nn/index.js';
export { saveSafetensors, saveSafetensorsAsync, loadSafetensors, serializeSafetensors, serializeSafetensorsAsync, parseSafetensors, type SafetensorsContents } from './nn/safetensors.js';
export * from './moe/index.js';
export * as moe from './moe/index.js';
