// mixtape: tensors, reverse-mode autograd and a CPU backend (src/tensor, src/autograd,
// src/backends). Importing this module wires autograd into the tensor layer.

import './autograd/node.js';
import './autograd/backward.js';

export { Tensor, type BackwardOptions } from './tensor/tensor.js';
export type { DType, TypedArray } from './tensor/dtype.js';
export type { Shape } from './tensor/shape.js';
export * from './tensor/ops/index.js';
export {
  setBackend, backendInfo, ready, shutdownGpu, memory, noGrad, enableGrad, isGradEnabled, tidy, keep, dispose,
  type BackendName, type BackendOptions,
} from './tensor/engine.js';
export type { Backend, MemoryInfo, KernelName } from './backends/backend.js';
export { autograd, autogradGrad, grad, valueAndGrad, type AutogradGradOptions, type GradOptions } from './autograd/grad.js';
export { gradcheck, gradgradcheck, GradcheckError, type GradcheckOptions, type GradgradcheckOptions } from './autograd/gradcheck.js';
export { gradRules, type DiffOp } from './autograd/rules.js';
export * from './nn/index.js';
export * as nn from './nn/index.js';
export { saveSafetensors, saveSafetensorsAsync, loadSafetensors, serializeSafetensors, serializeSafetensorsAsync, parseSafetensors, type SafetensorsContents } from './nn/safetensors.js';
export * from './moe/index.js';
export * as moe from './moe/index.js';
