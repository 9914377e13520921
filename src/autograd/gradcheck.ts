// gradcheck / gradgradcheck with torch.autograd.gradcheck's semantics: float64 inputs,
// central differences with eps = 1e-6, allclose with atol = 1e-5 and rtol = 1e-3; a slow
// mode comparing full Jacobians and a fast mode comparing vᵀ·J·u. A failure names the
// output and input, the multi-index of the worst entry and both values.

import { Generator, rand, randn, tensor } from '../tensor/ops/creation.js';
import { noGrad, tidy } from '../tensor/engine.js';
import { shapeToString, stridesOf, type Shape } from '../core/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { autogradGrad } from './grad.js';
import { targetOf } from './node.js';

export interface GradcheckOptions {
  eps?: number;
  atol?: number;
  rtol?: number;
  /** Compare vᵀ·J·u for random u, v instead of whole Jacobians (PyTorch's fast_mode). */
  fast?: boolean;
  /** Throw a GradcheckError on failure (default), or return false. */
  raiseException?: boolean;
  /** Seed of the random u, v (fast mode) and gradient outputs (gradgradcheck). */
  seed?: number;
}

export class GradcheckError extends Error {
  override name = 'GradcheckError';
}

type Fn = (...inputs: Tensor[]) => Tensor | readonly Tensor[];

function multiIndex(flat: number, shape: Shape): string {
  if (shape.length === 0) return '[]';
  const strides = stridesOf(shape);
  return `[${strides.map((s, d) => Math.floor(flat / s) % shape[d]!).join(', ')}]`;
}

function asList(value: Tensor | readonly Tensor[]): Tensor[] {
  return value instanceof Tensor ? [value] : [...value];
}

interface Prepared {
  values: Float64Array[];
  shapes: Shape[];
  diff: boolean[];
  /** Evaluates fn on the given input values (no graph); returns each float output's values. */
  evaluate(values: readonly Float64Array[]): Float64Array[];
  outputShapes: Shape[];
}

function prepare(fn: Fn, inputs: readonly Tensor[], op: string): Prepared {
  if (!Array.isArray(inputs)) throw new Error(`${op}: inputs must be an array of tensors`);
  inputs.forEach((t, i) => {
    if (!(t instanceof Tensor)) throw new Error(`${op}: inputs[${i}] is not a Tensor`);
    if (t.requiresGrad && t.dtype !== 'float64') {
      throw new Error(`${op}: inputs[${i}] requires grad but is ${t.dtype}; gradcheck's tolerances are designed for float64 inputs (use .double())`);
    }
  });
  const diff = inputs.map((t) => t.requiresGrad);
  if (!diff.some(Boolean)) throw new Error(`${op}: at least one input must require grad`);
  const values = inputs.map((t) => Float64Array.from(t.dataSync()));
  const shapes = inputs.map((t) => t.shape);
  // Perturbed inputs keep requiresGrad: fn may itself differentiate (gradgradcheck does).
  const evaluate = (vals: readonly Float64Array[]): Float64Array[] => tidy(() => {
    const args = inputs.map((t, i) => (diff[i] ? tensor(vals[i]!, shapes[i]!, { dtype: 'float64', requiresGrad: true }) : t));
    return asList(fn(...args)).filter((o) => o.dtype !== 'int32').map((o) => Float64Array.from(o.dataSync()));
  });
  const outputShapes = tidy(() => noGrad(() => asList(fn(...inputs)).filter((o) => o.dtype !== 'int32').map((o) => o.shape)));
  return { values, shapes, diff, evaluate, outputShapes };
}

/** Runs fn with grad on fresh leaves; returns, per output, vᵀJ for each differentiable input. */
function vjp(fn: Fn, p: Prepared, inputs: readonly Tensor[], v: (o: number) => Float64Array | null): (Float64Array | null)[][] {
  return tidy(() => {
    const leaves = inputs.map((t, i) =>
      p.diff[i] ? tensor(p.values[i]!, p.shapes[i]!, { dtype: 'float64', requiresGrad: true }) : t);
    const outs = asList(fn(...leaves)).filter((o) => o.dtype !== 'int32');
    const diffLeaves = leaves.filter((_, i) => p.diff[i]);
    return outs.map((out, o) => {
      const vo = v(o);
      if (vo === null) return [];
      if (targetOf(out) === null) return diffLeaves.map((l) => new Float64Array(l.size)); // constant output
      const gradOut = tensor(vo, out.shape, { dtype: out.dtype });
      const grads = autogradGrad(out, diffLeaves, { gradOutputs: [gradOut], retainGraph: true, allowUnused: true });
      return grads.map((g) => Float64Array.from(g.dataSync()));
    });
  });
}

function slowCheck(fn: Fn, inputs: readonly Tensor[], p: Prepared, eps: number, atol: number, rtol: number): string | null {
  const diffIdx = p.diff.map((d, i) => (d ? i : -1)).filter((i) => i >= 0);
  // Numerical Jacobians, column by column: J[o][k] is [outSize × inSize] row-major.
  const numerical = p.outputShapes.map((s) => diffIdx.map((i) => new Float64Array(sizeOfShape(s) * p.values[i]!.length)));
  diffIdx.forEach((i, k) => {
    const n = p.values[i]!.length;
    for (let e = 0; e < n; e++) {
      const plus = p.values.map((v) => v.slice()), minus = p.values.map((v) => v.slice());
      plus[i]![e]! += eps;
      minus[i]![e]! -= eps;
      const fp = p.evaluate(plus), fm = p.evaluate(minus);
      fp.forEach((outPlus, o) => {
        const J = numerical[o]![k]!;
        for (let r = 0; r < outPlus.length; r++) J[r * n + e] = (outPlus[r]! - fm[o]![r]!) / (2 * eps);
      });
    }
  });
  // Analytical Jacobians, row by row (one backward per output element).
  for (let o = 0; o < p.outputShapes.length; o++) {
    const m = sizeOfShape(p.outputShapes[o]!);
    const analytical = diffIdx.map((i) => new Float64Array(m * p.values[i]!.length));
    for (let r = 0; r < m; r++) {
      const rows = vjp(fn, p, inputs, (q) => {
        if (q !== o) return null;
        const v = new Float64Array(m);
        v[r] = 1;
        return v;
      })[o]!;
      rows.forEach((row, k) => analytical[k]!.set(row!, r * row!.length));
    }
    for (let k = 0; k < diffIdx.length; k++) {
      const i = diffIdx[k]!, n = p.values[i]!.length;
      const A = analytical[k]!, N = numerical[o]![k]!;
      let worst = -Infinity, at = -1;
      for (let q = 0; q < A.length; q++) {
        const excess = Math.abs(A[q]! - N[q]!) - (atol + rtol * Math.abs(N[q]!));
        if (excess > worst || Number.isNaN(excess)) { worst = Number.isNaN(excess) ? Infinity : excess; at = q; }
      }
      if (at >= 0 && worst > 0) {
        const r = Math.floor(at / n), e = at % n;
        const lines = [
          `Jacobian mismatch for output ${o} with respect to input ${i}:`,
          `  worst entry d output${multiIndex(r, p.outputShapes[o]!)} / d input${multiIndex(e, p.shapes[i]!)} (row ${r}, column ${e})`,
          `  analytical ${A[at]}, numerical ${N[at]}: |difference| ${Math.abs(A[at]! - N[at]!)} > atol + rtol·|numerical| = ${atol + rtol * Math.abs(N[at]!)}`,
          `  output shape ${shapeToString(p.outputShapes[o]!)}, input shape ${shapeToString(p.shapes[i]!)}`,
        ];
        if (A.length <= 64) {
          lines.push(`  analytical: ${formatMatrix(A, n)}`, `  numerical:  ${formatMatrix(N, n)}`);
        }
        return lines.join('\n');
      }
    }
  }
  return null;
}

function sizeOfShape(s: Shape): number { return s.reduce((a, b) => a * b, 1); }

function formatMatrix(values: Float64Array, cols: number): string {
  const rows: string[] = [];
  for (let r = 0; r < values.length / cols; r++) {
    rows.push(`[${Array.from(values.subarray(r * cols, (r + 1) * cols), (v) => v.toPrecision(6)).join(', ')}]`);
  }
  return `[${rows.join(', ')}]`;
}

function randomUnit(gen: Generator, n: number, normalize: boolean): Float64Array {
  const t = rand([n], { dtype: 'float64', generator: gen });
  const v = Float64Array.from(t.dataSync());
  t.dispose();
  if (normalize) {
    const norm = Math.hypot(...v) || 1;
    for (let i = 0; i < n; i++) v[i]! /= norm;
  }
  return v;
}

function fastCheck(fn: Fn, inputs: readonly Tensor[], p: Prepared, eps: number, atol: number, rtol: number, seed: number): string | null {
  const gen = new Generator(seed);
  const diffIdx = p.diff.map((d, i) => (d ? i : -1)).filter((i) => i >= 0);
  const us = diffIdx.map((i) => randomUnit(gen, p.values[i]!.length, true));
  const vs = p.outputShapes.map((s) => randomUnit(gen, sizeOfShape(s), false));
  const analytical = vjp(fn, p, inputs, (o) => vs[o]!);
  const sum = (a: Float64Array) => a.reduce((s, x) => s + x, 0);
  for (let k = 0; k < diffIdx.length; k++) {
    const i = diffIdx[k]!;
    const plus = p.values.map((v) => v.slice()), minus = p.values.map((v) => v.slice());
    for (let e = 0; e < us[k]!.length; e++) { plus[i]![e]! += eps * us[k]![e]!; minus[i]![e]! -= eps * us[k]![e]!; }
    const fp = p.evaluate(plus), fm = p.evaluate(minus);
    for (let o = 0; o < p.outputShapes.length; o++) {
      let numerical = 0;
      for (let r = 0; r < fp[o]!.length; r++) numerical += vs[o]![r]! * (fp[o]![r]! - fm[o]![r]!) / (2 * eps);
      let a = 0;
      const g = analytical[o]![k]!;
      for (let e = 0; e < g.length; e++) a += g[e]! * us[k]![e]!;
      const tol = atol * sum(us[k]!) * sum(vs[o]!) + rtol * Math.abs(numerical);
      if (!(Math.abs(a - numerical) <= tol)) {
        return `fast-mode mismatch for output ${o} with respect to input ${i}: vᵀJu analytical ${a}, numerical ${numerical} (tolerance ${tol})`;
      }
    }
  }
  return null;
}

/**
 * Checks analytical gradients of fn against central finite differences at `inputs`
 * (those with requiresGrad are perturbed). Returns true, or throws a GradcheckError
 * describing the worst mismatch (returns false with raiseException: false).
 */
export function gradcheck(fn: Fn, inputs: readonly Tensor[], options: GradcheckOptions = {}): boolean {
  const eps = options.eps ?? 1e-6, atol = options.atol ?? 1e-5, rtol = options.rtol ?? 1e-3;
  const p = prepare(fn, inputs, 'gradcheck');
  let failure: string | null;
  if (options.fast) {
    failure = fastCheck(fn, inputs, p, eps, atol, rtol, options.seed ?? 0);
    if (failure !== null) {
      // As PyTorch does, recompute the full Jacobians to say which entry is wrong.
      const slow = slowCheck(fn, inputs, p, eps, atol, rtol);
      failure = slow === null ? `${failure}\n  (the slow, full-Jacobian check passes: the fast-mode tolerance may be too tight here)` : `${failure}\n${slow}`;
    }
  } else {
    failure = slowCheck(fn, inputs, p, eps, atol, rtol);
  }
  if (failure === null) failure = reentrancyCheck(fn, inputs, p);
  if (failure === null) return true;
  if (options.raiseException === false) return false;
  throw new GradcheckError(`gradcheck failed: ${failure}`);
}

/** Backward must be deterministic: two runs give identical gradients (nondet_tol = 0). */
function reentrancyCheck(fn: Fn, inputs: readonly Tensor[], p: Prepared): string | null {
  const v = (o: number) => new Float64Array(sizeOfShape(p.outputShapes[o]!)).fill(1);
  const first = vjp(fn, p, inputs, v), second = vjp(fn, p, inputs, v);
  for (let o = 0; o < first.length; o++) {
    for (let k = 0; k < first[o]!.length; k++) {
      const a = first[o]![k]!, b = second[o]![k]!;
      for (let e = 0; e < a.length; e++) {
        if (a[e] !== b[e] && !(Number.isNaN(a[e]) && Number.isNaN(b[e]))) {
          return `backward is not reentrant: two runs gave ${a[e]} and ${b[e]} for output ${o}, input entry ${e}`;
        }
      }
    }
  }
  return null;
}

export interface GradgradcheckOptions extends GradcheckOptions {
  /** The vectors v of vᵀJ; random float64 normals by default. */
  gradOutputs?: readonly Tensor[];
}

/**
 * Checks second derivatives: gradcheck of (inputs, v) ↦ vᵀ·J_fn(inputs), with the
 * backward pass itself recorded (createGraph).
 */
export function gradgradcheck(fn: Fn, inputs: readonly Tensor[], options: GradgradcheckOptions = {}): boolean {
  const diffIdx = inputs.map((t, i) => (t.requiresGrad ? i : -1)).filter((i) => i >= 0);
  if (diffIdx.length === 0) throw new Error('gradgradcheck: at least one input must require grad');
  const outShapes = tidy(() => noGrad(() => asList(fn(...inputs)).filter((o) => o.dtype !== 'int32').map((o) => o.shape)));
  const gen = new Generator((options.seed ?? 0) + 1);
  const gradOutputs = options.gradOutputs
    ? options.gradOutputs.map((g) => g.detach().requiresGrad_())
    : outShapes.map((s) => randn(s, { dtype: 'float64', generator: gen }).requiresGrad_());
  if (gradOutputs.length !== outShapes.length) {
    throw new Error(`gradgradcheck: got ${gradOutputs.length} gradOutputs for ${outShapes.length} float outputs`);
  }
  const n = inputs.length;
  const second: Fn = (...all) => {
    const xs = all.slice(0, n), vs = all.slice(n);
    const outs = asList(fn(...xs)).filter((o) => o.dtype !== 'int32');
    const diffOuts = outs.filter((o) => targetOf(o) !== null);
    const diffVs = vs.filter((_, k) => targetOf(outs[k]!) !== null);
    if (diffOuts.length === 0) return diffIdx.map((i) => xs[i]!.mul(0));
    return autogradGrad(diffOuts, diffIdx.map((i) => xs[i]!), { gradOutputs: diffVs, createGraph: true, allowUnused: true });
  };
  try {
    return gradcheck(second, [...inputs, ...gradOutputs], options);
  } finally {
    for (const g of gradOutputs) g.dispose();
  }
}
