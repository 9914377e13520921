// How much memory a configuration needs, estimated before anything is allocated: a run that
// cannot fit must be refused in one line that names the flag, not die a minute later in a
// native std::bad_alloc abort or "Array buffer allocation failed".
//
// The estimate is deliberately simple (float32, 4 bytes a number):
//   parameters × 7 numbers: the weight, its gradient, Adam's two moments, and the
//                           checkpoint's copy of weight and moments while it is written;
//   activations × 2:        what one training step keeps for backward, and its gradients.

import { totalmem } from 'node:os';
import type { RunConfig } from '../report/schema.js';
import { UsageError } from './errors.js';

const BYTES = 4;

export interface MemoryEstimate {
  bytes: number;
  parameters: number;
  parameterBytes: number;
  activationBytes: number;
  /** The flag whose value dominates the estimate, and its value. */
  flag: string;
  value: number;
}

export function estimateMemory(c: RunConfig): MemoryEstimate {
  const d = c.modelSize, V = c.vocabSize, E = c.experts, h = c.expertHidden, k = c.k;
  const tokens = c.batch * c.seqLen;
  // Embedding, softmax layer, two LSTMs (4 gates of [d, 2d] plus two biases each).
  const base = V * d + d * V + V + 2 * (4 * d * 2 * d + 8 * d);
  let block: number, blockActivations: number;
  if (c.model === 'dense') {
    block = 2 * d * k * h + k * h + d;
    blockActivations = tokens * 3 * k * h;
  } else {
    // The gate's two [d, E] weights and E experts of d → h → d (hmoe adds a small primary gate).
    block = 2 * d * E + E * (2 * d * h + h + d) + (c.groups ? 2 * d * c.groups : 0);
    // [N, E] gating tensors (clean, noisy, stddev, gates, P(x, i), ...) and the k experts' work per token.
    blockActivations = tokens * (8 * E + k * (3 * h + 2 * d));
  }
  const parameters = base + block;
  const activations = tokens * (12 * 2 * d + 3 * V + 4 * d) + blockActivations;
  const parameterBytes = parameters * 7 * BYTES, activationBytes = activations * 2 * BYTES;
  // Name what dominates: the experts, the model size or the tokens of a batch.
  const terms: [number, string, number][] = [
    [c.model === 'dense' ? 0 : E * (2 * d * h + h + d + 2 * d) * 7 * BYTES, 'experts', E],
    [c.model === 'dense' ? block * 7 * BYTES : 0, 'expert-hidden', h],
    [(2 * (8 * d * d + 8 * d) + 2 * V * d) * 7 * BYTES, 'd', d],
    [activationBytes, 'batch', c.batch],
  ];
  const [, flag, value] = terms.reduce((a, b) => (b[0] > a[0] ? b : a));
  return { bytes: parameterBytes + activationBytes, parameters, parameterBytes, activationBytes, flag, value };
}

/** The memory this process may use: the machine's, or its container's limit when lower. */
export function availableMemory(): number {
  const limit = (process as { constrainedMemory?: () => number | undefined }).constrainedMemory?.() ?? 0;
  const total = totalmem();
  return limit > 0 && limit < total ? limit : total;
}

export function formatBytes(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let v = bytes, u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return u === 0 ? `${bytes} bytes` : `${v.toFixed(1)} ${units[u]}`;
}

/** Refuses a configuration whose estimate exceeds the memory this process may use. `whose` words the source ("" for flags, "the checkpoint's " for a stored config). */
export function checkMemory(c: RunConfig, whose = '', available = availableMemory()): void {
  const e = estimateMemory(c);
  if (e.bytes <= available) return;
  throw new UsageError(
    `${whose}--${e.flag} ${e.value} needs about ${formatBytes(e.bytes)} of memory (${e.parameters.toExponential(2)} parameters: ${formatBytes(e.parameterBytes)} with gradients, Adam state and the checkpoint; `
    + `activations of ${c.batch}×${c.seqLen} tokens: ${formatBytes(e.activationBytes)}), more than the ${formatBytes(available)} this machine has; use a smaller --${e.flag}`,
  );
}
