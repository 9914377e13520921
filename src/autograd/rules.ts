// The gradient rules: one per differentiable op, written with tensor ops so that
// gradients of gradients work (createGraph, gradgradcheck) and every backend shares them.
// A rule returns, per input, dL/dinput in the op's output (broadcast) shape or the
// input's own shape; backward reduces broadcast gradients in one place (sumToShape).
//
// Every op the tensor layer records (RecordedOp) has its rule here: the table is mapped over
// that type, so a recorded op without a rule does not compile. Most rules map one node's dy
// to its inputs' gradients; `slice` is an assembling rule (see AssemblingRule): backward
// collects the pieces of every slice of one tensor and assembles them in one op.
//
// Conventions at non-smooth points, tested in test/autograd/conventions.test.ts:
//   relu'(0) = 0 and abs'(0) = 0 (the minimum-norm subgradient, as in PyTorch);
//   maximum/minimum split the gradient ½/½ on ties (PyTorch);
//   max/min reductions and topk send the gradient to the first (lowest-index) extreme;
//   floor, ceil and round have gradient 0 everywhere, their jumps included (PyTorch);
//   sort sends each value's gradient to the position it came from; equal values keep their
//   order (a stable sort), so on ties the first of them in x gets the first sorted slot's;
//   prod's gradient is the product of the other entries, also where x has zeros;
//   norm's gradient is 0 where the norm is 0 (every p), p = 1 uses sign(0) = 0, and
//   p = ±∞ shares the gradient equally among the entries tied at the extreme (PyTorch);
//   std's gradient is 0 where the deviation is 0 (a constant slice; PyTorch).

import type { KernelAttrs } from '../core/backend.js';
import * as ops from '../tensor/ops/index.js';
import { cvSquaredGrad, groupedMatmulGrads, lstmCellBackward, lstmSequenceGrads, probInTopKAtGrads, reluGrad, topkGatesGrad, weightedIndexAddGrads } from '../tensor/ops/fused.js';
import { isGradEnabled } from '../tensor/engine.js';
import type { CompositeAttrs, RecordedOp } from '../tensor/recorded-ops.js';
import type { Tensor } from '../tensor/tensor.js';

/** The differentiable ops: every op the tensor layer records. */
export type DiffOp = RecordedOp;

/** A checkpoint node carries its own backward: recompute the function, then differentiate it (checkpoint.ts). */
export interface CheckpointAttrs { readonly backward: GradRule<'checkpoint'> }

type AttrsOf<K extends DiffOp> = K extends keyof KernelAttrs ? KernelAttrs[K]
  : K extends keyof CompositeAttrs ? CompositeAttrs[K]
  : K extends 'checkpoint' ? CheckpointAttrs : Record<string, never>;

export interface RuleContext<K extends DiffOp> {
  readonly inputs: readonly Tensor[];
  readonly output: Tensor;
  readonly attrs: AttrsOf<K>;
  /** needs[i]: whether input i wants a gradient; a rule may skip the others (return null). */
  readonly needs: readonly boolean[];
  /**
   * Removes and returns what this backward pass has summed so far for input i's gradient.
   * A rule that returns that sum plus its own contribution keeps the order of the additions
   * of an un-checkpointed graph (floating-point addition is not associative); only
   * checkpoint does, so that its gradients are bit-equal.
   */
  readonly takeSum: (i: number) => Tensor | undefined;
}

export type GradRule<K extends DiffOp> = (dy: Tensor, ctx: RuleContext<K>) => (Tensor | null)[];

/**
 * A rule for an op whose input receives many small gradients (the slices of one tensor, as
 * an unrolled LSTM takes its steps apart): `piece` says where each node's dy goes in its
 * input, and backward calls `assemble` once with every piece when that input's own turn
 * comes, instead of a pad + add per node (O(pieces × size)). Only input 0 gets a gradient.
 */
export interface AssemblingRule<K extends DiffOp> {
  readonly piece: (dy: Tensor, ctx: RuleContext<K>) => { piece: Tensor; begin: readonly number[] };
  readonly assemble: (pieces: readonly Tensor[], begins: readonly (readonly number[])[], shape: readonly number[]) => Tensor;
}

export type RuleOf<K extends DiffOp> = GradRule<K> | AssemblingRule<K>;

export function isAssemblingRule<K extends DiffOp>(rule: RuleOf<K>): rule is AssemblingRule<K> {
  return typeof rule === 'object';
}

const x0 = (c: { inputs: readonly Tensor[] }) => c.inputs[0]!;
const x1 = (c: { inputs: readonly Tensor[] }) => c.inputs[1]!;
const mask = (m: Tensor, like: Tensor) => ops.cast(m, like.dtype);

/** 1 at the first extreme of each slice over `axes`, 0 elsewhere (the tie rule of max/min). */
function firstExtremeMask(x: Tensor, axes: readonly number[], kind: 'max' | 'min'): Tensor {
  const kept = x.shape.map((_, i) => i).filter((i) => !axes.includes(i));
  const perm = [...kept, ...axes];
  const keptShape = kept.map((i) => x.shape[i]!);
  const reducedDims = axes.map((i) => x.shape[i]!);
  const r = reducedDims.reduce((a, b) => a * b, 1);
  const moved = ops.reshape(ops.permute(x.detach(), perm), [...keptShape, r]);
  const index = kind === 'max' ? ops.argmax(moved, -1) : ops.argmin(moved, -1);
  const hot = ops.oneHot(index, r, { dtype: x.dtype });
  const inverse = perm.map((_, i) => perm.indexOf(i));
  return ops.permute(ops.reshape(hot, [...keptShape, ...reducedDims]), inverse);
}

function keepdimsShape(x: Tensor, axes: readonly number[]): number[] {
  return x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
}

/** dy and the op's output reshaped to keep the reduced axes (size 1), to broadcast against x. */
function keptDims(dy: Tensor, c: RuleContext<'prod' | 'norm' | 'std'>): [Tensor, Tensor] {
  const shape = keepdimsShape(x0(c), c.attrs.axes);
  return [ops.reshape(dy, shape), ops.reshape(c.output, shape)];
}

/** Zero gradient (floor, ceil, round): PyTorch's convention, the derivative almost everywhere. */
const zeroRule = (dy: Tensor, c: { inputs: readonly Tensor[] }) => [ops.zerosLike(x0(c), { dtype: dy.dtype })];

/** ∂‖x‖ₚ/∂x times dy (torch's norm_backward), 0 where the norm is 0. */
function normRule(dy: Tensor, c: RuleContext<'norm'>): Tensor {
  const x = x0(c), p = c.attrs.p;
  const [g, n] = keptDims(dy, c);
  if (p === 0) return ops.zerosLike(x);
  if (p === 1) return ops.mul(ops.sign(x), g);
  const zeroNorm = ops.equal(n, 0);
  // The norm where it is nonzero, 1 elsewhere, so that no 0/0 enters even the unused branch.
  const safe = ops.where(zeroNorm, 1, n);
  if (p === Infinity || p === -Infinity) {
    const ax = ops.abs(x);
    const tied = mask(ops.equal(ax, n), x);
    const count = ops.sum(tied, c.attrs.axes, true);
    return ops.mul(ops.sign(x), ops.mul(ops.div(g, count), tied));
  }
  const scale = ops.where(zeroNorm, 0, ops.div(g, p === 2 ? safe : ops.pow(safe, p - 1)));
  if (p === 2) return ops.mul(x, scale);
  const ax = ops.abs(x);
  // p < 2: sign(x)·|x|^{p−1} (0 at x = 0 for p < 1, where the power is infinite); p > 2: x·|x|^{p−2}.
  if (p < 2) {
    const zeroX = ops.equal(x, 0);
    const powered = ops.where(zeroX, 0, ops.pow(ops.where(zeroX, 1, ax), p - 1));
    return ops.mul(ops.mul(ops.sign(x), powered), scale);
  }
  return ops.mul(ops.mul(x, ops.pow(ax, p - 2)), scale);
}

export type GradRules = { readonly [K in DiffOp]: RuleOf<K> };

const rules: GradRules = {
  neg: (dy) => [ops.neg(dy)],
  abs: (dy, c) => [ops.mul(dy, ops.sign(x0(c)))],
  exp: (dy, c) => [ops.mul(dy, c.output)],
  log: (dy, c) => [ops.div(dy, x0(c))],
  sqrt: (dy, c) => [ops.div(dy, ops.mul(c.output, 2))],
  tanh: (dy, c) => [ops.mul(dy, ops.sub(1, ops.square(c.output)))],
  sigmoid: (dy, c) => [ops.mul(dy, ops.mul(c.output, ops.sub(1, c.output)))],
  // One reluGrad kernel where the backend has it; the composition for gradients of gradients.
  relu: (dy, c) => [reluGrad(dy, x0(c), isGradEnabled())],
  softplus: (dy, c) => [ops.mul(dy, ops.sigmoid(x0(c)))],
  // dΦ/dx is the standard normal density.
  normalCdf: (dy, c) => [ops.mul(dy, ops.mul(ops.exp(ops.mul(ops.square(x0(c)), -0.5)), 1 / Math.sqrt(2 * Math.PI)))],
  log1p: (dy, c) => [ops.div(dy, ops.add(x0(c), 1))],
  expm1: (dy, c) => [ops.mul(dy, ops.add(c.output, 1))],
  sin: (dy, c) => [ops.mul(dy, ops.cos(x0(c)))],
  cos: (dy, c) => [ops.neg(ops.mul(dy, ops.sin(x0(c))))],
  // d erf/dx = 2/√π · e^{−x²}.
  erf: (dy, c) => [ops.mul(dy, ops.mul(ops.exp(ops.neg(ops.square(x0(c)))), 2 / Math.sqrt(Math.PI)))],
  floor: zeroRule,
  ceil: zeroRule,
  round: zeroRule,

  add: (dy) => [dy, dy],
  sub: (dy, c) => [dy, c.needs[1] ? ops.neg(dy) : null],
  mul: (dy, c) => [c.needs[0] ? ops.mul(dy, x1(c)) : null, c.needs[1] ? ops.mul(dy, x0(c)) : null],
  div: (dy, c) => [
    c.needs[0] ? ops.div(dy, x1(c)) : null,
    c.needs[1] ? ops.neg(ops.mul(dy, ops.div(c.output, x1(c)))) : null,
  ],
  pow: (dy, c) => {
    const [a, b] = [x0(c), x1(c)];
    const da = c.needs[0] ? ops.mul(dy, ops.mul(b, ops.pow(a, ops.sub(b, 1)))) : null;
    // d(aᵇ)/db = aᵇ·log a; PyTorch takes 0 where a = 0.
    const db = c.needs[1] ? ops.mul(dy, ops.where(ops.equal(a, 0), 0, ops.mul(c.output, ops.log(a)))) : null;
    return [da, db];
  },
  maximum: (dy, c) => {
    const share = ops.add(mask(ops.greater(x0(c), x1(c)), dy), ops.mul(mask(ops.equal(x0(c), x1(c)), dy), 0.5));
    return [ops.mul(dy, share), ops.mul(dy, ops.sub(1, share))];
  },
  minimum: (dy, c) => {
    const share = ops.add(mask(ops.less(x0(c), x1(c)), dy), ops.mul(mask(ops.equal(x0(c), x1(c)), dy), 0.5));
    return [ops.mul(dy, share), ops.mul(dy, ops.sub(1, share))];
  },
  where: (dy, c) => [null, c.needs[1] ? ops.where(x0(c), dy, 0) : null, c.needs[2] ? ops.where(x0(c), 0, dy) : null],

  sum: (dy, c) => [ops.broadcastTo(ops.reshape(dy, keepdimsShape(x0(c), c.attrs.axes)), x0(c).shape)],
  max: (dy, c) => [ops.mul(ops.reshape(dy, keepdimsShape(x0(c), c.attrs.axes)), firstExtremeMask(x0(c), c.attrs.axes, 'max'))],
  min: (dy, c) => [ops.mul(ops.reshape(dy, keepdimsShape(x0(c), c.attrs.axes)), firstExtremeMask(x0(c), c.attrs.axes, 'min'))],
  // Π_{j≠i} x_j: out/x_i where x_i ≠ 0 (a safe divisor, so no 0/0 enters the unused branch);
  // at a zero, the product of the nonzero entries when it is the slice's only zero, else 0.
  prod: (dy, c) => {
    const x = x0(c), axes = c.attrs.axes;
    const [g, out] = keptDims(dy, c);
    const isZero = ops.equal(x, 0);
    const others = ops.div(out, ops.where(isZero, 1, x));
    const zeros = ops.sum(isZero, axes, true);
    const nonzeroProd = ops.prod(ops.where(isZero, 1, x), axes, true);
    const atZero = ops.mul(nonzeroProd, mask(ops.equal(zeros, 1), x));
    return [ops.mul(g, ops.where(isZero, atZero, others))];
  },
  // The reversed running sum: x_i feeds every output from i on.
  cumsum: (dy, c) => [ops.flip(ops.cumsum(ops.flip(dy, c.attrs.axis), c.attrs.axis), c.attrs.axis)],
  norm: (dy, c) => [normRule(dy, c)],
  // (x − mean)/((N − correction)·std), 0 where std = 0.
  std: (dy, c) => {
    const x = x0(c), axes = c.attrs.axes;
    const [g, s] = keptDims(dy, c);
    const n = axes.reduce((k, a) => k * x.shape[a]!, 1);
    const zero = ops.equal(s, 0);
    const scale = ops.where(zero, 0, ops.div(g, ops.mul(ops.where(zero, 1, s), n - c.attrs.correction)));
    return [ops.mul(ops.sub(x, ops.mean(x, axes, true)), scale)];
  },

  matmul: (dy, c) => {
    const [a, b] = [x0(c), x1(c)];
    const { transposeA: tA, transposeB: tB } = c.attrs;
    const mm = (p: Tensor, q: Tensor, transposeA: boolean, transposeB: boolean) => ops.matmul(p, q, { transposeA, transposeB });
    // C = op(A)·op(B); each case reads the transposes in place.
    let da: Tensor | null = null, db: Tensor | null = null;
    if (c.needs[0]) {
      if (!tA) da = tB ? mm(dy, b, false, false) : mm(dy, b, false, true);
      else da = tB ? mm(b, dy, true, true) : mm(b, dy, false, true);
    }
    if (c.needs[1]) {
      if (!tB) db = tA ? mm(a, dy, false, false) : mm(a, dy, true, false);
      else db = tA ? mm(dy, a, true, true) : mm(dy, a, true, false);
    }
    return [da, db];
  },

  reshape: (dy, c) => [ops.reshape(dy, x0(c).shape)],
  permute: (dy, c) => [ops.permute(dy, c.attrs.perm.map((_, i) => c.attrs.perm.indexOf(i)))],
  broadcastTo: (dy) => [dy],
  // dx of one slice is dy padded with zeros to x's shape; backward sums all slices of x in one assembleSlices.
  slice: {
    piece: (dy, c) => ({ piece: dy, begin: c.attrs.begin }),
    assemble: (pieces, begins, shape) => ops.assembleSlices(pieces, begins, shape),
  },
  pad: (dy, c) => [ops.slice(dy, c.attrs.before, x0(c).shape)],
  flip: (dy, c) => [ops.flip(dy, c.attrs.axes)],
  assembleSlices: (dy, c) => c.inputs.map((piece, i) => (c.needs[i] ? ops.slice(dy, c.attrs.begins[i]!, piece.shape) : null)),
  concat: (dy, c) => {
    let start = 0;
    return c.inputs.map((x) => {
      const begin = x.shape.map((_, i) => (i === c.attrs.axis ? start : 0));
      start += x.shape[c.attrs.axis]!;
      return ops.slice(dy, begin, x.shape);
    });
  },

  // Also top-k's gradient: topk records gather(x, -1, indices), so dy goes to the chosen positions.
  gather: (dy, c) => [ops.scatterAdd(ops.zeros(x0(c).shape, { dtype: dy.dtype }), c.attrs.axis, x1(c), dy), null],
  scatterAdd: (dy, c) => [dy, null, c.needs[2] ? ops.gather(dy, c.attrs.axis, x1(c)) : null],
  indexSelect: (dy, c) => [ops.indexAdd(ops.zeros(x0(c).shape, { dtype: dy.dtype }), c.attrs.axis, x1(c), dy), null],
  indexAdd: (dy, c) => [dy, null, c.needs[2] ? ops.indexSelect(dy, c.attrs.axis, x1(c)) : null],
  cast: (dy, c) => [ops.cast(dy, x0(c).dtype)],
  // The fused LSTM cell: its backward kernel reads the activations the forward saved; with
  // createGraph (grad mode on) the same formulas are composed from core ops instead.
  lstmCell: (dy, c) => {
    const [cell, z] = c.inputs as [Tensor, Tensor];
    const graph = isGradEnabled();
    return [
      c.needs[0] ? lstmCellBackward(z, cell, c.output, dy, 'c', graph) : null,
      c.needs[1] ? lstmCellBackward(z, cell, c.output, dy, 'z', graph) : null,
    ];
  },

  // An LSTM layer's steps: one backward kernel (∂W_hh one product over the steps); with
  // createGraph the same walk composed from core ops.
  lstmSequence: (dy, c) => lstmSequenceGrads(dy, c.inputs, c.output, c.needs, isGradEnabled()),

  // With relu, first relu's gradient, masked by the output (> 0 exactly where the input is).
  groupedMatmul: (dy, c) => {
    const [x, ...rest] = c.inputs as [Tensor, ...Tensor[]];
    const weights = c.attrs.bias ? rest.slice(0, rest.length / 2) : rest;
    const dz = c.attrs.relu ? reluGrad(dy, c.output, isGradEnabled()) : dy;
    const grads = groupedMatmulGrads(dz, x, weights, c.attrs.sizes, c.attrs.transposeB, c.needs, isGradEnabled(), c.attrs.bias === true);
    if (dz !== dy && !isGradEnabled()) dz.dispose();
    return grads;
  },

  // The MoE combine: one backward kernel; with createGraph, gather → multiplies → row sum.
  weightedIndexAdd: (dy, c) => {
    const [y, weights, index] = c.inputs as [Tensor, Tensor, Tensor];
    return weightedIndexAddGrads(dy, y, weights, index, c.needs, isGradEnabled());
  },

  // Noisy top-k gating's fused nodes: one backward kernel each; with createGraph, the rules of
  // their compositions (the same bits).
  topkGates: (dy, c) => [topkGatesGrad(dy, x0(c), x1(c), c.attrs.k, isGradEnabled()), null],
  probInTopK: (dy, c) => {
    const [clean, noisy, stddev, indices] = c.inputs as [Tensor, Tensor, Tensor, Tensor];
    return probInTopKAtGrads(dy, clean, noisy, stddev, indices, c.attrs.k, c.needs, isGradEnabled());
  },
  // The balancing losses' cv²: one backward kernel; with createGraph, its composition's rules.
  cvSquared: (dy, c) => [cvSquaredGrad(dy, x0(c), isGradEnabled())],

  // Recomputes the checkpointed function with the same random numbers and differentiates it.
  checkpoint: (dy, c) => c.attrs.backward(dy, c),
};

let overrides: Partial<Record<DiffOp, RuleOf<never>>> | null = null;

/**
 * The gradient rule table, frozen: one rule per recorded op. To perturb a rule (tests that
 * check that a broken rule is caught), use withGradRuleOverride.
 */
export const gradRules: GradRules = Object.freeze(rules);

/** The rule backward uses for op: an override installed by withGradRuleOverride, else the table's. */
export function ruleFor<K extends DiffOp>(op: K): RuleOf<K> {
  return ((overrides !== null && overrides[op]) || gradRules[op]) as RuleOf<K>;
}

/**
 * Runs fn with op's gradient rule replaced (for tests: gradcheck must catch a wrong rule).
 * The table itself stays frozen; the override ends when fn returns or throws.
 */
export function withGradRuleOverride<K extends DiffOp, T>(op: K, rule: RuleOf<K>, fn: () => T): T {
  const previous = overrides;
  overrides = { ...overrides, [op]: rule };
  try { return fn(); } finally { overrides = previous; }
}
