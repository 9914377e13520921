// A Dispatcher sends each example to the experts its gates chose and brings their outputs
// back, in tensor2tensor's SparseDispatcher words (dispatch, combine, expert_to_gates,
// part_sizes). For gates [N, E] with a few nonzero entries per row it computes
//
//   output[b] = Σᵢ gates[b, i] · expertᵢ(inputs[b])
//
// running expertᵢ only on the examples whose gate i is nonzero:
//
//   const dispatcher = makeDispatcher(E, gates, { indices });   // indices [N, k]: the chosen experts
//   const expertInputs = dispatcher.dispatch(inputs);           // E tensors of rows
//   const expertOutputs = expertInputs.map((rows, i) => experts[i].forward(rows));
//   const outputs = dispatcher.combine(expertOutputs);          // [N, d_out]
//   dispatcher.dispose();
//
// Two implementations, equal in value and gradient at the default capacity:
// SparseDispatcher reads the routing to the host and hands expert i exactly its
// partSizes()[i] rows; DeviceDispatcher keeps the routing on the device and hands every
// expert a fixed buffer of `capacity` rows, so a GPU step reads nothing back and compiles no
// new kernel. makeDispatcher chooses between them.

import { getBackend } from '../tensor/engine.js';
import type { Tensor } from '../tensor/tensor.js';
import { DeviceDispatcher } from './device-dispatcher.js';
import { SparseDispatcher } from './sparse-dispatcher.js';

/** 'sparse', 'device', or 'auto': sparse where data is host resident (CPU), device elsewhere. */
export type DispatchMode = 'auto' | 'sparse' | 'device';

export interface Dispatcher {
  readonly numExperts: number;
  /** N: the rows of `gates`, and of every tensor dispatch takes. */
  readonly numExamples: number;
  /** The most examples one expert processes; later routes are dropped (SparseDispatcher: N, none is). */
  readonly capacity: number;
  /** Whether partSizes() is known on the host (SparseDispatcher) or is a readback (DeviceDispatcher). */
  readonly partSizesOnHost: boolean;
  /** dispatch(x [N, d]): one tensor of rows per expert, its examples first in increasing order. */
  dispatch(x: Tensor): Tensor[];
  /** combine(expertOutputs): y[n] = Σ over n's experts of gate · output (the plain sum without multiplyByGates). */
  combine(expertOutputs: readonly Tensor[], multiplyByGates?: boolean): Tensor;
  /** expert_to_gates: per expert, the gate of each row dispatch gave it (0 on padding rows). */
  expertToGates(): Tensor[];
  /** part_sizes: per expert, how many examples it processed. */
  partSizes(): number[];
  /** Frees the dispatcher's own tensors (not those it returned). */
  dispose(): void;
}

export interface MakeDispatcherOptions {
  /** [N, k] int32: the experts of each example. Without it, every nonzero gate is a route (batchwise gating). */
  indices?: Tensor | undefined;
  dispatch?: DispatchMode;
  /** Rows per expert buffer with device dispatch (default: all N, so nothing is dropped). */
  capacity?: number | undefined;
}

/**
 * Whether `mode` dispatches on the device. Reading the routing costs nothing where data is
 * host resident; elsewhere it is a readback per step, and the sparse parts' changing shapes
 * would compile new kernels.
 */
export function dispatchesOnDevice(mode: DispatchMode): boolean {
  if (!['auto', 'sparse', 'device'].includes(mode)) throw new Error(`makeDispatcher: dispatch must be 'auto', 'sparse' or 'device', got '${String(mode)}'`);
  return mode === 'device' || (mode === 'auto' && !getBackend().capabilities.hostResident);
}

/** The dispatcher for gates [N, numExperts]: a SparseDispatcher or a DeviceDispatcher, as dispatchesOnDevice says. */
export function makeDispatcher(numExperts: number, gates: Tensor, options: MakeDispatcherOptions = {}): Dispatcher {
  return dispatchesOnDevice(options.dispatch ?? 'auto')
    ? new DeviceDispatcher(numExperts, gates, options.indices, options.capacity)
    : new SparseDispatcher(numExperts, gates, options.indices);
}
