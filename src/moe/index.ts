export { cvSquared, importance, gatesToLoad, probInTopK, gateEntropy } from './balancing.js';
export { NoisyTopKGating, SoftmaxGating, type GatingOutput, type GateForwardOptions, type NoisyTopKGatingOptions, type SoftmaxGatingOptions } from './gating.js';
export { BatchwiseGating, batchwiseMask, thresholdMask, batchwiseThresholdLoss, type BatchwiseGatingOptions } from './batchwise.js';
export { DeviceDispatcher, SparseDispatcher } from './dispatcher.js';
export { SwiGLUExpert, swigluHidden, type ExpertKind } from './swiglu-expert.js';
export { MoE, Expert, type ExpertOf, type MoEOptions, type MoEOutput, type MoEStats, type MoEForwardOptions, type GatingKind } from './moe.js';
export { HierarchicalMoE, ExpertGroup, type HierarchicalMoEOptions, type HierarchicalNoise, type HierarchicalStats } from './hierarchical.js';
export { MoELanguageModel, DenseLanguageModel, type LanguageModelOptions, type MoELanguageModelOptions, type LMOutput, type LMState, type OpsPerToken } from './language-model.js';
