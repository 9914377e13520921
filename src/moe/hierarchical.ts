// Hierarchical MoE (Shazeer et al. 2017, App. B): a primary gate picks groups, a secondary
// gate inside each group picks experts:
//   y_H = Σᵢ Σⱼ G_primary(x)ᵢ · Gᵢ(x)ⱼ · Eᵢⱼ(x)                         (eq. 12)
//   Importance_H(X)ᵢⱼ = Σ_x G_primary(x)ᵢ · Gᵢ(x)ⱼ                       (eq. 13)
//   Load_H(X)ᵢⱼ = Load_primary(X)ᵢ · Loadᵢ(X⁽ⁱ⁾)ⱼ / |X⁽ⁱ⁾|              (eq. 14)
// where X⁽ⁱ⁾ are the examples routed to group i; Loadᵢ is computed over X⁽ⁱ⁾ only. The
// primary factor keeps a gradient path to the primary gate (the paper's reason for eq. 14).
//
// Both routing levels use SparseDispatcher (exact rows, grouped on the host) or
// DeviceDispatcher (fixed-size buffers on the device: no readback, fixed shapes), as MoE's
// `dispatch` option says (by makeDispatcher's rule, dispatchesOnDevice). Each path builds
// its own kind, as it uses more than the Dispatcher interface: the sparse path the example
// indices of each group, the device path the counts that mask the padding. With device
// dispatch, group i's buffer holds its examples first and padding rows after them; a 0/1 row
// mask keeps the padding out of Importance_H and Load_H, and the padding's outputs are never
// combined, so the results equal the sparse path's.

import { noGrad, tidy } from '../tensor/engine.js';
import { arange, tensor, zeros } from '../tensor/ops/creation.js';
import { cast, less, maximum, minimum } from '../tensor/ops/elementwise.js';
import { indexAdd, indexSelect, topk } from '../tensor/ops/indexing.js';
import { concat, pad, reshape, slice, stack } from '../tensor/ops/movement.js';
import { shapeToString } from '../core/shape.js';
import { Tensor } from '../tensor/tensor.js';
import type { DType } from '../core/dtype.js';
import type { Generator } from '../tensor/ops/creation.js';
import { checkDType, checkPositiveInt, Module } from '../nn/module.js';
import { cvSquared, gateEntropy } from './balancing.js';
import { GroupAndExpertCountsOnRead } from './counts-on-read.js';
import { DeviceDispatcher } from './device-dispatcher.js';
import { dispatchesOnDevice, type DispatchMode } from './dispatcher.js';
import { Expert } from './expert.js';
import { checkLayerDType, NoisyTopKGating, type GatingOutput } from './gating.js';
import type { MoEOutput, MoEStats } from './moe.js';
import { SparseDispatcher } from './sparse-dispatcher.js';

export interface HierarchicalMoEOptions {
  inputSize: number;
  outputSize: number;
  hiddenSize: number;
  /** a: the number of groups (the primary gate's experts). */
  numGroups: number;
  /** b: experts per group. */
  expertsPerGroup: number;
  /** Groups per example (the paper's LM uses 2). */
  kPrimary?: number;
  /** Experts per example inside each chosen group (the paper's LM uses 2). */
  kSecondary?: number;
  noisyGating?: boolean;
  noiseEpsilon?: number;
  wImportance?: number;
  wLoad?: number;
  dtype?: DType;
  generator?: Generator;
  /**
   * How examples reach their groups and experts, at both levels (as MoE's option):
   * 'sparse' (SparseDispatcher, the routing is read back to the host and shapes change every
   * batch), 'device' (DeviceDispatcher: fixed-size buffers, no readback, no recompilation;
   * equal results), or 'auto' (default): 'sparse' on the CPU backend, 'device' on the others.
   */
  dispatch?: DispatchMode;
  /** Rows per group buffer with 'device' dispatch (default: all N, so nothing is dropped). */
  capacity?: number;
  /** Rows per expert buffer inside a group with 'device' dispatch (default: the group capacity). */
  expertCapacity?: number;
}

/** A group: its secondary gate and its experts (names groups.{i}.gate.*, groups.{i}.experts.{j}.*). */
export class ExpertGroup extends Module {
  constructor(public gate: NoisyTopKGating, public experts: Expert[]) { super(); }
}

export interface HierarchicalNoise {
  /** [N, numGroups] for the primary gate. */
  primary?: Tensor;
  /** Per group, [N, expertsPerGroup] over all N rows; each group uses the rows routed to it. */
  secondary?: readonly Tensor[];
}

export interface HierarchicalStats extends MoEStats {
  /** [N, numGroups]: the primary gates. */
  primaryGates: Tensor;
  /** [numGroups]: the primary load (smooth when noisy and training). */
  primaryLoad: Tensor;
  /**
   * Per group: how many examples it received, |X⁽ⁱ⁾| (known on the host with sparse dispatch;
   * with device dispatch it is counted from `primaryGates` when first read: a readback).
   */
  groupCounts: number[];
  /** [numGroups, expertsPerGroup]: each secondary gate's load over its own examples, Loadᵢ(X⁽ⁱ⁾). */
  secondaryLoad: Tensor;
}

/** What one routing path (sparse or device) hands to forward's shared tail. */
type Routed = {
  combined: Tensor;
  importanceRows: Tensor[];
  loadRows: Tensor[];
  secondaryLoads: Tensor[];
  jointGates: Tensor;
} & (
  /** Sparse dispatch: the counts are known on the host. */
  | { counts: { groups: number[]; experts: number[] }; capacities?: undefined }
  /** Device dispatch: [group capacity, expert capacity]; the counts are read when asked for. */
  | { counts?: undefined; capacities: [number, number] }
);

/** Per column of [N, M], how many rows are nonzero (a readback). */
function nonzeroPerColumn(t: Tensor): number[] {
  const M = t.shape[1]!, v = t.dataSync();
  const counts = new Array<number>(M).fill(0);
  for (let i = 0; i < v.length; i++) if (v[i]! > 0) counts[i % M]!++;
  return counts;
}

export class HierarchicalMoE extends Module {
  primary: NoisyTopKGating;
  groups: ExpertGroup[];
  readonly inputSize: number;
  readonly outputSize: number;
  readonly hiddenSize: number;
  readonly numGroups: number;
  readonly expertsPerGroup: number;
  readonly kPrimary: number;
  readonly kSecondary: number;
  wImportance: number;
  wLoad: number;
  dispatch: DispatchMode;
  capacity: number | undefined;
  expertCapacity: number | undefined;

  constructor(options: HierarchicalMoEOptions) {
    super();
    const check = (name: string, v: unknown) => checkPositiveInt('HierarchicalMoE', name, v);
    this.inputSize = check('inputSize', options.inputSize);
    this.outputSize = check('outputSize', options.outputSize);
    this.hiddenSize = check('hiddenSize', options.hiddenSize);
    this.numGroups = check('numGroups', options.numGroups);
    this.expertsPerGroup = check('expertsPerGroup', options.expertsPerGroup);
    this.kPrimary = check('kPrimary', options.kPrimary ?? Math.min(2, this.numGroups));
    this.kSecondary = check('kSecondary', options.kSecondary ?? Math.min(2, this.expertsPerGroup));
    if (this.kPrimary > this.numGroups) throw new Error(`HierarchicalMoE: kPrimary (${this.kPrimary}) cannot exceed numGroups (${this.numGroups})`);
    if (this.kSecondary > this.expertsPerGroup) throw new Error(`HierarchicalMoE: kSecondary (${this.kSecondary}) cannot exceed expertsPerGroup (${this.expertsPerGroup})`);
    this.wImportance = options.wImportance ?? 0.1;
    this.wLoad = options.wLoad ?? 0.1;
    this.dispatch = options.dispatch ?? 'auto';
    if (!['auto', 'sparse', 'device'].includes(this.dispatch)) throw new Error(`HierarchicalMoE: dispatch must be 'auto', 'sparse' or 'device', got '${String(this.dispatch)}'`);
    this.capacity = options.capacity === undefined ? undefined : check('capacity', options.capacity);
    this.expertCapacity = options.expertCapacity === undefined ? undefined : check('expertCapacity', options.expertCapacity);
    const dtype = checkDType('HierarchicalMoE', options.dtype);
    const gen = options.generator ? { generator: options.generator } : {};
    const gateOptions = { inputSize: this.inputSize, noisy: options.noisyGating ?? true, noiseEpsilon: options.noiseEpsilon ?? 1e-2, dtype, ...gen };
    this.primary = new NoisyTopKGating({ ...gateOptions, numExperts: this.numGroups, k: this.kPrimary });
    this.groups = Array.from({ length: this.numGroups }, () => new ExpertGroup(
      new NoisyTopKGating({ ...gateOptions, numExperts: this.expertsPerGroup, k: this.kSecondary }),
      Array.from({ length: this.expertsPerGroup }, () => new Expert(this.inputSize, this.hiddenSize, this.outputSize, { dtype, ...gen })),
    ));
  }

  get numExperts(): number { return this.numGroups * this.expertsPerGroup; }

  forward(x: Tensor, options: { noise?: HierarchicalNoise } = {}): MoEOutput & { stats: HierarchicalStats } {
    if (!(x instanceof Tensor) || x.rank < 1 || x.shape[x.rank - 1] !== this.inputSize) {
      throw new Error(`HierarchicalMoE: expected input [..., ${this.inputSize}], got ${x instanceof Tensor ? shapeToString(x.shape) : typeof x}`);
    }
    checkLayerDType('HierarchicalMoE', x, this.primary.w_gate.dtype);
    const noise = options.noise ?? {};
    if (noise.secondary && noise.secondary.length !== this.numGroups) {
      throw new Error(`HierarchicalMoE: noise.secondary needs ${this.numGroups} tensors, got ${noise.secondary.length}`);
    }
    return tidy(() => {
      const N = x.size / this.inputSize;
      const rows = reshape(x, [N, this.inputSize]);
      for (const [i, t] of (noise.secondary ?? []).entries()) {
        if (this.groups[i]!.gate.addsNoise && (!(t instanceof Tensor) || t.rank !== 2 || t.shape[0] !== N || t.shape[1] !== this.expertsPerGroup)) {
          throw new Error(`HierarchicalMoE: noise.secondary[${i}] must have shape [${N}, ${this.expertsPerGroup}], got ${t instanceof Tensor ? shapeToString(t.shape) : typeof t}`);
        }
      }
      const gp = this.primary.forward(rows, noise.primary ? { noise: noise.primary } : {});
      // An empty batch has no routing to read back; the sparse path handles it without buffers.
      const onDevice = N > 0 && dispatchesOnDevice(this.dispatch);
      const r = onDevice ? this.routeOnDevice(rows, gp, noise.secondary) : this.routeSparse(rows, gp, noise.secondary);
      const importanceH = stack(r.importanceRows, 0), loadH = stack(r.loadRows, 0);
      const cvImp = cvSquared(importanceH), cvLoad = cvSquared(loadH);
      const auxLoss = cvImp.mul(this.wImportance).add(cvLoad.mul(this.wLoad));
      const jointGates = r.jointGates;
      const fields = {
        gates: jointGates,
        indices: topk(jointGates, this.kPrimary * this.kSecondary).indices,
        importance: reshape(importanceH, [this.numExperts]).detach(),
        load: reshape(loadH, [this.numExperts]).detach(),
        cvImportance: cvImp.detach().sqrt(), cvLoad: cvLoad.detach().sqrt(), gateEntropy: gateEntropy(jointGates),
        primaryGates: gp.gates.detach(), primaryLoad: gp.load.detach(), secondaryLoad: stack(r.secondaryLoads, 0),
      };
      let stats: HierarchicalStats;
      if (r.counts) {
        stats = { ...fields, expertCounts: r.counts.experts, groupCounts: r.counts.groups };
      } else {
        // With the routing on the device, counted from the nonzero gates of tensors the caller
        // owns when first read (a readback), capped at the buffers' capacities.
        const [groupCapacity, expertCapacity] = r.capacities;
        stats = Object.assign(new GroupAndExpertCountsOnRead(
          () => nonzeroPerColumn(fields.primaryGates).map((c) => Math.min(c, groupCapacity)),
          () => nonzeroPerColumn(fields.gates).map((c) => Math.min(c, expertCapacity)),
        ), fields);
      }
      return { output: reshape(r.combined, [...x.shape.slice(0, -1), this.outputSize]), auxLoss, stats };
    });
  }

  /** Both levels through SparseDispatcher: exactly the routed rows (host readback of the routing). */
  private routeSparse(rows: Tensor, gp: GatingOutput, secondaryNoise: readonly Tensor[] | undefined): Routed {
    const N = rows.shape[0]!, b = this.expertsPerGroup, dtype = rows.dtype;
    const primaryDispatch = new SparseDispatcher(this.numGroups, gp.gates, gp.indices);
    const groupInputs = primaryDispatch.dispatch(rows);
    const groupPrimaryGates = primaryDispatch.expertToGates();
    const groupRows = primaryDispatch.expertToBatchIndices();
    const groupOutputs: Tensor[] = [], importanceRows: Tensor[] = [], loadRows: Tensor[] = [], jointColumns: Tensor[] = [], secondaryLoads: Tensor[] = [];
    const expertCounts: number[] = [];
    this.groups.forEach((group, i) => {
      const rowsOfGroup = tensor(groupRows[i]!, [groupRows[i]!.length], { dtype: 'int32' });
      const n = groupRows[i]!.length;
      const groupNoise = secondaryNoise && group.gate.addsNoise ? indexSelect(secondaryNoise[i]!, 0, rowsOfGroup) : undefined;
      const gi = group.gate.forward(groupInputs[i]!, groupNoise ? { noise: groupNoise } : {});
      const dispatch = new SparseDispatcher(b, gi.gates, gi.indices);
      const outs = dispatch.dispatch(groupInputs[i]!).map((input, j) => group.experts[j]!.forward(input));
      groupOutputs.push(dispatch.combine(outs));
      expertCounts.push(...dispatch.partSizes());
      dispatch.dispose();
      // G_primary(x)ᵢ·Gᵢ(x)ⱼ for the examples of group i.
      const joint = gi.gates.mul(reshape(groupPrimaryGates[i]!, [n, 1]));
      importanceRows.push(joint.sum(0));
      secondaryLoads.push(gi.load.detach());
      loadRows.push(n > 0 ? gi.load.mul(gp.load.slice([i], [1])).div(n) : zeros([b], { dtype }));
      jointColumns.push(indexAdd(zeros([N, b], { dtype }), 0, rowsOfGroup, joint));
    });
    // The secondary outputs already include Gᵢ; the primary combine multiplies by G_primary once.
    const combined = primaryDispatch.combine(groupOutputs);
    const groupCounts = primaryDispatch.partSizes();
    primaryDispatch.dispose();
    return { combined, importanceRows, loadRows, secondaryLoads, jointGates: concat(jointColumns, 1).detach(), counts: { groups: groupCounts, experts: expertCounts } };
  }

  /**
   * Both levels through DeviceDispatcher: group i gets a [C, d] buffer (its examples first, in
   * increasing order, then padding rows); its secondary gate and experts run on the whole
   * buffer, with the padding masked out of importance and load and never combined.
   */
  private routeOnDevice(rows: Tensor, gp: GatingOutput, secondaryNoise: readonly Tensor[] | undefined): Routed {
    const N = rows.shape[0]!, a = this.numGroups, b = this.expertsPerGroup, dtype = rows.dtype;
    const C = Math.min(this.capacity ?? N, N), Ce = Math.min(this.expertCapacity ?? C, C);
    const primaryDispatch = new DeviceDispatcher(a, gp.gates, gp.indices, C);
    const groupInputs = primaryDispatch.dispatch(rows);
    // Per buffer row, the primary gates of the example it holds (differentiable), [C, a] per group.
    const bufferGates = primaryDispatch.dispatch(gp.gates);
    // mask[i][r] = 1 when row r of group i's buffer holds a routed example: r < min(count_i, C).
    const { masks, sizes } = noGrad(() => tidy(() => {
      const sizes = minimum(primaryDispatch.counts, C);                                     // [a]
      const all = cast(less(arange(C, undefined, 1, { dtype }).reshape([1, C]), sizes.reshape([a, 1])), dtype);
      return { masks: Array.from({ length: a }, (_, i) => reshape(slice(all, [i, 0], [1, C]), [C])), sizes };
    }));
    const needNoise = secondaryNoise && this.groups.some((g) => g.gate.addsNoise);
    const noiseParts = needNoise ? primaryDispatch.dispatch(concat(secondaryNoise, 1)) : null;
    const groupOutputs: Tensor[] = [], importanceRows: Tensor[] = [], loadRows: Tensor[] = [], gateBlocks: Tensor[] = [], secondaryLoads: Tensor[] = [];
    this.groups.forEach((group, i) => {
      const mask = masks[i]!;
      const groupNoise = noiseParts && group.gate.addsNoise ? slice(noiseParts[i]!, [0, i * b], [C, b]) : undefined;
      const gi = group.gate.forward(groupInputs[i]!, { mask, ...(groupNoise ? { noise: groupNoise } : {}) });
      const dispatch = new DeviceDispatcher(b, gi.gates, gi.indices, Ce);
      const outs = dispatch.dispatch(groupInputs[i]!).map((input, j) => group.experts[j]!.forward(input));
      groupOutputs.push(dispatch.combine(outs));
      dispatch.dispose();
      // G_primary(x)ᵢ·Gᵢ(x)ⱼ for the examples of group i, 0 on padding rows.
      const primaryGate = slice(bufferGates[i]!, [0, i], [C, 1]).mul(mask.reshape([C, 1]));
      const joint = gi.gates.mul(primaryGate);
      importanceRows.push(joint.sum(0));
      secondaryLoads.push(gi.load.detach());
      // Loadᵢ is 0 when the group got no example, so dividing by max(|X⁽ⁱ⁾|, 1) gives the sparse path's 0.
      const n = maximum(slice(sizes, [i], [1]), 1);
      loadRows.push(gi.load.mul(gp.load.slice([i], [1])).div(n));
      // Group i's secondary gates in its own columns of [C, a·b]; the primary combine below
      // weights them by G_primary and scatters them to their examples: the joint gates.
      gateBlocks.push(noGrad(() => pad(gi.gates.detach(), [0, i * b], [0, (a - 1 - i) * b])));
    });
    const combined = primaryDispatch.combine(groupOutputs);
    const jointGates = noGrad(() => primaryDispatch.combine(gateBlocks));
    primaryDispatch.dispose();
    return { combined, importanceRows, loadRows, secondaryLoads, jointGates, capacities: [C, Ce] };
  }

  /** Forward multiply-adds per example: both gating levels plus kPrimary·kSecondary experts. */
  multiplyAddsPerExample(): number {
    const perGate = (this.primary.noisy ? 2 : 1) * this.inputSize;
    const gating = perGate * this.numGroups + this.kPrimary * perGate * this.expertsPerGroup;
    const experts = this.kPrimary * this.kSecondary * (this.inputSize * this.hiddenSize + this.hiddenSize * this.outputSize);
    return gating + experts;
  }
}
