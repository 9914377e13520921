export * from './creation.js';
export * from './elementwise.js';
export * from './reduction.js';
export * from './linalg.js';
export * from './movement.js';
export * from './indexing.js';
export * from './functional.js';
export type { TensorLike } from './util.js';
