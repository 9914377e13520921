// Hierarchical MoE (Shazeer et al. 2017, App. B): a primary gate picks groups, a secondary
// gate inside each group picks experts:
//   y_H = Σᵢ Σⱼ G_primary(x)ᵢ · Gᵢ(x)ⱼ · Eᵢⱼ(x)                         (eq. 12)
//   Importance_H(X)ᵢⱼ = Σ_x G_primary(x)ᵢ · Gᵢ(x)ⱼ                       (eq. 13)
//   Load_H(X)ᵢⱼ = Load_primary(X)ᵢ · Loadᵢ(X⁽ⁱ⁾)ⱼ / |X⁽ⁱ⁾|              (eq. 14)
// where X⁽ⁱ⁾ are the examples routed to group i; Loadᵢ is computed over X⁽ⁱ⁾ only. The
// primary factor keeps a gradient path to the primary gate (the paper's reason for eq. 14).

import { tidy } from '../tensor/engine.js';
import { tensor, zeros } from '../tensor/ops/creation.js';
import { indexAdd, indexSelect, topk } from '../tensor/ops/indexing.js';
import { concat, reshape, stack } from '../tensor/ops/movement.js';
import { shapeToString } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import type { DType } from '../tensor/dtype.js';
import type { Generator } from '../tensor/ops/creation.js';
import { checkDType, checkPositiveInt, Module } from '../nn/module.js';
import { cvSquared, gateEntropy } from './balancing.js';
import { SparseDispatcher } from './dispatcher.js';
import { NoisyTopKGating } from './gating.js';
import { Expert, type MoEOutput, type MoEStats } from './moe.js';

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
  /** Per group: how many examples it received, |X⁽ⁱ⁾|. */
  groupCounts: number[];
  /** [numGroups, expertsPerGroup]: each secondary gate's load over its own examples, Loadᵢ(X⁽ⁱ⁾). */
  secondaryLoad: Tensor;
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
    const noise = options.noise ?? {};
    if (noise.secondary && noise.secondary.length !== this.numGroups) {
      throw new Error(`HierarchicalMoE: noise.secondary needs ${this.numGroups} tensors, got ${noise.secondary.length}`);
    }
    return tidy(() => {
      const N = x.size / this.inputSize, b = this.expertsPerGroup;
      const rows = reshape(x, [N, this.inputSize]);
      const gp = this.primary.forward(rows, noise.primary ? { noise: noise.primary } : {});
      const primaryDispatch = new SparseDispatcher(this.numGroups, gp.gates, gp.indices);
      const groupInputs = primaryDispatch.dispatch(rows);
      const groupPrimaryGates = primaryDispatch.expertToGates();
      const groupRows = primaryDispatch.expertToBatchIndices();
      const groupOutputs: Tensor[] = [], importanceRows: Tensor[] = [], loadRows: Tensor[] = [], jointColumns: Tensor[] = [], secondaryLoads: Tensor[] = [];
      const expertCounts: number[] = [];
      this.groups.forEach((group, i) => {
        const rowsOfGroup = tensor(groupRows[i]!, [groupRows[i]!.length], { dtype: 'int32' });
        const n = groupRows[i]!.length;
        const groupNoise = noise.secondary ? indexSelect(noise.secondary[i]!, 0, rowsOfGroup) : undefined;
        const gi = group.gate.forward(groupInputs[i]!, groupNoise ? { noise: groupNoise } : {});
        const dispatch = new SparseDispatcher(b, gi.gates, gi.indices);
        const outs = dispatch.dispatch(groupInputs[i]!).map((input, j) => group.experts[j]!.forward(input));
        groupOutputs.push(dispatch.combine(outs));
        expertCounts.push(...dispatch.partSizes);
        dispatch.dispose();
        // G_primary(x)ᵢ·Gᵢ(x)ⱼ for the examples of group i.
        const joint = gi.gates.mul(reshape(groupPrimaryGates[i]!, [n, 1]));
        importanceRows.push(joint.sum(0));
        secondaryLoads.push(gi.load.detach());
        loadRows.push(n > 0 ? gi.load.mul(gp.load.slice([i], [1])).div(n) : zeros([b], { dtype: x.dtype }));
        jointColumns.push(indexAdd(zeros([N, b], { dtype: x.dtype }), 0, rowsOfGroup, joint));
      });
      // The secondary outputs already include Gᵢ; the primary combine multiplies by G_primary once.
      const combined = primaryDispatch.combine(groupOutputs);
      const groupCounts = [...primaryDispatch.partSizes];
      primaryDispatch.dispose();
      const importanceH = stack(importanceRows, 0), loadH = stack(loadRows, 0);
      const cvImp = cvSquared(importanceH), cvLoad = cvSquared(loadH);
      const auxLoss = cvImp.mul(this.wImportance).add(cvLoad.mul(this.wLoad));
      const jointGates = concat(jointColumns, 1).detach();
      const stats: HierarchicalStats = {
        gates: jointGates,
        indices: topk(jointGates, this.kPrimary * this.kSecondary).indices,
        importance: reshape(importanceH, [this.numExperts]).detach(),
        load: reshape(loadH, [this.numExperts]).detach(),
        expertCounts,
        cvImportance: cvImp.detach().sqrt(), cvLoad: cvLoad.detach().sqrt(), gateEntropy: gateEntropy(jointGates),
        primaryGates: gp.gates.detach(), primaryLoad: gp.load.detach(), groupCounts, secondaryLoad: stack(secondaryLoads, 0),
      };
      return { output: reshape(combined, [...x.shape.slice(0, -1), this.outputSize]), auxLoss, stats };
    });
  }

  /** Forward multiply-adds per example: both gating levels plus kPrimary·kSecondary experts. */
  multiplyAddsPerExample(): number {
    const perGate = (this.primary.noisy ? 2 : 1) * this.inputSize;
    const gating = perGate * this.numGroups + this.kPrimary * perGate * this.expertsPerGroup;
    const experts = this.kPrimary * this.kSecondary * (this.inputSize * this.hiddenSize + this.hiddenSize * this.outputSize);
    return gating + experts;
  }
}
