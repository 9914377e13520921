// SparseDispatcher (tensor2tensor's expert_utils): routes each example to exactly the
// experts whose gate is nonzero, and combines their outputs as a gate-weighted
// scatter-add. Rows are grouped by expert, then by example index. No example is dropped.
// Grouping needs the routing on the host: the one readback of dispatch (free on the CPU).

import { noGrad } from '../tensor/engine.js';
import { tensor, zeros } from '../tensor/ops/creation.js';
import { indexAdd, indexSelect } from '../tensor/ops/indexing.js';
import { weightedIndexAdd } from '../tensor/ops/fused.js';
import { concat, reshape, split } from '../tensor/ops/movement.js';
import { shapeToString } from '../core/shape.js';
import { Tensor } from '../tensor/tensor.js';
import type { Dispatcher } from './dispatcher.js';

let flatIndexScratch = new Int32Array(0);

export class SparseDispatcher implements Dispatcher {
  /** For each routed (expert, example) pair, in expert-major order: the example index. */
  readonly batchIndex: Int32Array;
  private readonly batchIndexTensor: Tensor;
  /** The nonzero gate values in the same order (differentiable w.r.t. the gates). */
  readonly nonzeroGates: Tensor;
  readonly numExamples: number;
  /** Every example fits: an expert receives at most all N of them. */
  readonly capacity: number;
  readonly partSizesOnHost = true;
  /** part_sizes: how many examples each expert receives. */
  private readonly sizes: number[];

  /**
   * `gates` [N, E] (gradients flow through nonzeroGates). `indices` [N, k] int32 says which
   * experts each example uses; without it, every nonzero gate is a route (a variable
   * number per example, as batchwise gating produces). Reading the routing is the one host
   * readback of dispatch.
   */
  constructor(readonly numExperts: number, gates: Tensor, indices?: Tensor) {
    const [N, E] = gates.shape as [number, number];
    if (gates.rank !== 2 || E !== numExperts) {
      throw new Error(`SparseDispatcher: gates must be [N, ${numExperts}], got ${shapeToString(gates.shape)}`);
    }
    this.numExamples = N;
    this.capacity = N;
    // The routes as (example, expert) pairs in example order: indices row by row (route r is
    // example ⌊r / k⌋'s), else every nonzero gate. Typed arrays: 1024 small arrays per step
    // cost 0.7 ms at E = 16.
    let routeExample: Int32Array | null, routeExpert: Int32Array, perExample = 1;
    if (indices !== undefined) {
      if (indices.dtype !== 'int32' || indices.rank !== 2 || indices.shape[0] !== N) {
        throw new Error(`SparseDispatcher: indices must be int32 [${N}, k], got ${indices.dtype} ${shapeToString(indices.shape)}`);
      }
      perExample = indices.shape[1]!;
      routeExpert = indices.dataSync() as Int32Array;
      routeExample = null;
    } else {
      const g = gates.dataSync();
      let count = 0;
      for (let i = 0; i < N * E; i++) if (g[i]! > 0) count++;
      routeExample = new Int32Array(count);
      routeExpert = new Int32Array(count);
      for (let i = 0, r = 0; i < N * E; i++) if (g[i]! > 0) { routeExample[r] = (i / E) | 0; routeExpert[r++] = i % E; }
    }
    // Counting sort by expert keeps examples in increasing order within each expert.
    const total = routeExpert.length;
    this.sizes = new Array<number>(E).fill(0);
    for (let r = 0; r < total; r++) {
      const e = routeExpert[r]!;
      if (!(e >= 0 && e < E)) throw new Error(`SparseDispatcher: expert index ${e} is out of range for ${E} experts`);
      this.sizes[e]!++;
    }
    const starts = new Int32Array(E);
    for (let e = 1; e < E; e++) starts[e] = starts[e - 1]! + this.sizes[e - 1]!;
    this.batchIndex = new Int32Array(total);
    // Read only by tensor() below, which copies it: one scratch array serves every dispatcher
    // (a fresh 8 KB Int32Array costs about as much as the whole counting sort).
    if (flatIndexScratch.length < total) flatIndexScratch = new Int32Array(total);
    const flatGateIndex = flatIndexScratch.subarray(0, total);
    for (let r = 0; r < total; r++) {
      const n = routeExample === null ? (r / perExample) | 0 : routeExample[r]!, e = routeExpert[r]!, slot = starts[e]!++;
      this.batchIndex[slot] = n;
      flatGateIndex[slot] = n * E + e;
    }
    this.batchIndexTensor = noGrad(() => tensor(this.batchIndex, [this.batchIndex.length], { dtype: 'int32' }));
    const flatIndex = noGrad(() => tensor(flatGateIndex, [flatGateIndex.length], { dtype: 'int32' }));
    const flatGates = reshape(gates, [N * E]);
    this.nonzeroGates = indexSelect(flatGates, 0, flatIndex);
    flatIndex.dispose();
    flatGates.dispose();
  }

  /** dispatch(x): one [partSizes()[e], d] tensor per expert, holding exactly its examples. */
  dispatch(x: Tensor): Tensor[] {
    const routed = this.dispatchRows(x, 'dispatch');
    const parts = split(routed, this.sizes, 0);
    routed.dispose();
    return parts;
  }

  /**
   * The routed rows in one tensor [Σ partSizes(), d], expert by expert (segment e holds
   * expert e's examples): what grouped expert products take (groupedExperts, experts.ts).
   */
  dispatchRows(x: Tensor, op = 'dispatchRows'): Tensor {
    if (!(x instanceof Tensor) || x.rank !== 2 || x.shape[0] !== this.numExamples) {
      throw new Error(`SparseDispatcher.${op}: expected [${this.numExamples}, d], got ${x instanceof Tensor ? shapeToString(x.shape) : typeof x}`);
    }
    return indexSelect(x, 0, this.batchIndexTensor);
  }

  /** combine for outputs in one tensor [Σ partSizes(), d_out], in dispatchRows' order. */
  combineRows(stitched: Tensor, multiplyByGates = true): Tensor {
    if (!(stitched instanceof Tensor) || stitched.rank !== 2 || stitched.shape[0] !== this.batchIndex.length) {
      throw new Error(`SparseDispatcher.combineRows: expected [${this.batchIndex.length}, d], got ${stitched instanceof Tensor ? shapeToString(stitched.shape) : typeof stitched}`);
    }
    // Gated: one op (one kernel each way on the CPU), the numbers of a multiply then indexAdd.
    if (multiplyByGates) return weightedIndexAdd(stitched, this.nonzeroGates, this.batchIndexTensor, this.numExamples);
    return indexAdd(zeros([this.numExamples, stitched.shape[1]!], { dtype: stitched.dtype }), 0, this.batchIndexTensor, stitched);
  }

  /**
   * combine(expertOutputs): y[n] = Σ over n's experts of gate · output, a scatter-add by
   * example index (unsorted_segment_sum). Examples routed nowhere get zeros.
   */
  combine(expertOutputs: readonly Tensor[], multiplyByGates = true): Tensor {
    if (expertOutputs.length !== this.numExperts) {
      throw new Error(`SparseDispatcher.combine: expected ${this.numExperts} expert outputs, got ${expertOutputs.length}`);
    }
    expertOutputs.forEach((o, e) => {
      if (o.rank !== 2 || o.shape[0] !== this.sizes[e]) {
        throw new Error(`SparseDispatcher.combine: expert ${e} returned ${shapeToString(o.shape)}, expected [${this.sizes[e]}, d]`);
      }
    });
    const stitched = concat(expertOutputs, 0);
    const out = this.combineRows(stitched, multiplyByGates);
    stitched.dispose();
    return out;
  }

  /** expert_to_gates: per expert, the gate values of its examples. */
  expertToGates(): Tensor[] { return split(this.nonzeroGates, this.sizes, 0); }

  /** expert_to_batch_indices: per expert, the indices of its examples. */
  expertToBatchIndices(): Int32Array[] {
    const out: Int32Array[] = [];
    let start = 0;
    for (const size of this.sizes) { out.push(this.batchIndex.slice(start, start + size)); start += size; }
    return out;
  }

  /** part_sizes: how many examples each expert receives (known on the host: no readback). */
  partSizes(): number[] { return [...this.sizes]; }

  /** Frees the dispatcher's own tensors. */
  dispose(): void {
    this.batchIndexTensor.dispose();
    this.nonzeroGates.dispose();
  }
}
