export { Module, parameter, isParameter, type ModuleOptions } from './module.js';
export { uniform, normalInit, linearBound, type InitOptions } from './init.js';
export { Linear, Embedding, Dropout, Sequential, ReLU, Tanh, GELU, SiLU } from './linear.js';
export { LayerNorm, RMSNorm, layerNorm, rmsNorm, type LayerNormOptions, type RMSNormOptions } from './normalization.js';
export { LSTM, LSTMCell, type LSTMOptions, type LSTMState } from './lstm.js';
export { crossEntropy, mse, perplexity, type CrossEntropyOptions, type Reduction } from './losses.js';
export { Optimizer, SGD, Adam, AdamW, clipGradNorm, clipGradNormTensor, type SGDOptions, type AdamOptions, type OptimizerState } from './optim.js';
export { LRScheduler, StepLR, CosineAnnealingLR, LinearLR, WarmupCosineLR, InverseSqrtLR } from './schedule.js';
