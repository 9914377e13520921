// DeviceDispatcher: the dispatcher of backends whose data lives on a device (the GPU
// backend). It never reads the routing back to the host, and every shape it makes is fixed.

import { noGrad, tidy } from '../tensor/engine.js';
import { arange, zeros } from '../tensor/ops/creation.js';
import { cast, greater, less, maximum, minimum, where } from '../tensor/ops/elementwise.js';
import { gather, indexAdd, indexSelect, oneHot } from '../tensor/ops/indexing.js';
import { matmul } from '../tensor/ops/linalg.js';
import { chunk, concat, slice } from '../tensor/ops/movement.js';
import { sum } from '../tensor/ops/reduction.js';
import { shapeToString } from '../core/shape.js';
import { Tensor } from '../tensor/tensor.js';
import type { Dispatcher } from './dispatcher.js';

/**
 * A dispatcher that never reads the routing back to the host, for backends whose data
 * lives on a device (the GPU backend): a training step stays at one readback, and every
 * shape is fixed, so no kernel is compiled again after the first step.
 *
 * Each expert gets a fixed buffer of `capacity` rows (default: all N examples, so nothing is
 * ever dropped and the result equals SparseDispatcher's). Its routed examples fill the first
 * rows in increasing example order (their slot is a running count, computed as a matmul
 * with a strictly lower-triangular matrix of ones); the other rows hold a copy of example 0,
 * whose output is never combined and whose gradient is therefore exactly zero. Routes past
 * the capacity (only when a smaller capacity is given) are dropped, as in Switch Transformer.
 *
 *   slot(n, r)  = expert(n, r)·C + #{n' < n routed to expert(n, r)}   (or the dump slot E·C)
 *   dispatch(x) = x[source(slot)] split into E blocks of C rows
 *   combine(y)  = Σ_r gate(n, expert(n, r)) · [y; 0][slot(n, r)]
 */
export class DeviceDispatcher implements Dispatcher {
  readonly numExamples: number;
  readonly capacity: number;
  /** The counts stay on the device: partSizes() is a readback. */
  readonly partSizesOnHost = false;
  /** [N, R] int32: each route's row in the stacked expert buffers (E·C for dropped routes). */
  private readonly slots: Tensor;
  /** [E·C] int32: the example each buffer row holds (0 for padding rows). */
  private readonly sources: Tensor;
  /** [N, R]: the gate of each kept route (0 for dropped ones), differentiable w.r.t. the gates. */
  private readonly routeGates: Tensor;
  /** [E] float: examples routed to each expert, dropped ones included (reading it is a readback). */
  readonly counts: Tensor;

  /**
   * `gates` [N, E]; `indices` [N, k] int32 names each example's experts (without it, the
   * nonzero gates are the routes, as batchwise gating produces); `capacity` rows per expert.
   */
  constructor(readonly numExperts: number, gates: Tensor, indices?: Tensor, capacity?: number) {
    const [N, E] = gates.shape as [number, number];
    if (gates.rank !== 2 || E !== numExperts) {
      throw new Error(`DeviceDispatcher: gates must be [N, ${numExperts}], got ${shapeToString(gates.shape)}`);
    }
    if (indices !== undefined && (indices.dtype !== 'int32' || indices.rank !== 2 || indices.shape[0] !== N)) {
      throw new Error(`DeviceDispatcher: indices must be int32 [${N}, k], got ${indices.dtype} ${shapeToString(indices.shape)}`);
    }
    const C = capacity ?? N;
    if (!Number.isInteger(C) || C < 1) throw new Error(`DeviceDispatcher: capacity must be a positive integer, got ${C}`);
    this.numExamples = N;
    this.capacity = C;
    const dtype = gates.dtype;
    const routing = noGrad(() => tidy(() => {
      // The routes: (example, expert) pairs, R per example, with a 0/1 validity.
      const experts = indices ?? arange(E).reshape([1, E]).broadcastTo([N, E]);
      const valid = indices ? null : cast(greater(gates, 0), dtype);
      const R = experts.shape[1]!;
      const hot = cast(oneHot(experts, E), dtype);                                  // [N, R, E]
      const routed = sum(valid ? hot.mul(valid.reshape([N, R, 1])) : hot, 1);     // [N, E] 0/1
      const rows = arange(N).reshape([N, 1]), cols = arange(N).reshape([1, N]);
      const before = cast(less(cols, rows), dtype);                              // [N, N]: n' < n
      const position = gather(matmul(before, routed), 1, experts);              // [N, R]
      let keep = cast(less(position, C), dtype);
      if (valid) keep = keep.mul(valid);
      const slotF = where(keep, cast(experts, dtype).mul(C).add(position), E * C);
      const slots = toIndex(slotF, E * C);
      const example = cast(arange(N).reshape([N, 1]).broadcastTo([N, R]), dtype);
      const sourceF = indexAdd(zeros([E * C + 1], { dtype }), 0, slots.reshape([N * R]), example.reshape([N * R]));
      const sources = toIndex(slice(sourceF, [0], [E * C]), N - 1);
      return { slots, sources, keep, counts: sum(routed, 0) };
    }));
    this.slots = routing.slots;
    this.sources = routing.sources;
    this.counts = routing.counts;
    const experts = indices ?? noGrad(() => arange(E).reshape([1, E]).broadcastTo([N, E]));
    this.routeGates = tidy(() => gather(gates, 1, experts).mul(routing.keep));
    if (!indices) experts.dispose();
    routing.keep.dispose();
  }

  /** dispatch(x): one [capacity, d] tensor per expert; its routed examples come first. */
  dispatch(x: Tensor): Tensor[] {
    if (!(x instanceof Tensor) || x.rank !== 2 || x.shape[0] !== this.numExamples) {
      throw new Error(`DeviceDispatcher.dispatch: expected [${this.numExamples}, d], got ${x instanceof Tensor ? shapeToString(x.shape) : typeof x}`);
    }
    const stacked = indexSelect(x, 0, this.sources);
    const parts = chunk(stacked, this.numExperts, 0);
    stacked.dispose();
    return parts;
  }

  /**
   * combine(expertOutputs): y[n] = Σ over n's routes of gate · output row (without
   * multiplyByGates, the plain sum of its kept routes' rows).
   */
  combine(expertOutputs: readonly Tensor[], multiplyByGates = true): Tensor {
    if (expertOutputs.length !== this.numExperts) {
      throw new Error(`DeviceDispatcher.combine: expected ${this.numExperts} expert outputs, got ${expertOutputs.length}`);
    }
    expertOutputs.forEach((o, e) => {
      if (o.rank !== 2 || o.shape[0] !== this.capacity) {
        throw new Error(`DeviceDispatcher.combine: expert ${e} returned ${shapeToString(o.shape)}, expected [${this.capacity}, d]`);
      }
    });
    return tidy(() => {
      const d = expertOutputs[0]!.shape[1]!;
      const [N, R] = this.slots.shape as [number, number];
      // One zero row after the experts' rows: dropped routes read it.
      const padded = concat([...expertOutputs, zeros([1, d], { dtype: expertOutputs[0]!.dtype })], 0);
      const picked = indexSelect(padded, 0, this.slots.reshape([N * R])).reshape([N, R, d]);
      return sum(multiplyByGates ? picked.mul(this.routeGates.reshape([N, R, 1])) : picked, 1);
    });
  }

  /**
   * expert_to_gates: per expert, [capacity] gates of its buffer rows (its examples' gates
   * first, then 0 on padding rows), differentiable w.r.t. the gates.
   */
  expertToGates(): Tensor[] {
    return tidy(() => {
      const [N, R] = this.slots.shape as [number, number];
      const EC = this.numExperts * this.capacity;
      // Kept routes have distinct slots; dropped ones all land in the dump slot E·C, cut off.
      const byRow = indexAdd(zeros([EC + 1], { dtype: this.routeGates.dtype }), 0, this.slots.reshape([N * R]), this.routeGates.reshape([N * R]));
      return chunk(slice(byRow, [0], [EC]), this.numExperts, 0);
    });
  }

  /** part_sizes: per expert, how many examples it processed (at most the capacity): a readback of `counts`. */
  partSizes(): number[] { return Array.from(this.counts.dataSync(), (c) => Math.min(Math.round(c), this.capacity)); }

  dispose(): void {
    for (const t of [this.slots, this.sources, this.routeGates, this.counts]) t.dispose();
  }
}

/** Float values known to lie in [0, hi] as an int32 index tensor whose bounds the backend can see. */
function toIndex(values: Tensor, hi: number): Tensor {
  return minimum(maximum(cast(values, 'int32'), 0), hi);
}
