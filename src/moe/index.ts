export { cvSquared, importance, gatesToLoad, probInTopK, gateEntropy } from './balancing.js';
export { NoisyTopKGating, SoftmaxGating, type GatingOutput, type GateForwardOptions, type NoisyTopKGatingOptions, type SoftmaxGatingOptions } from './gating.js';
export { BatchwiseGating, batchwiseMask, thresholdMask, batchwiseThresholdLoss, type BatchwiseGatingOptions } from './batchwise.js';
export { SparseDispatcher } from './dispatcher.js';
export { MoE, Expert, type MoEOptions, type MoEOutput, type MoEStats, type MoEForwardOptions, type GatingKind } from './moe.js';
