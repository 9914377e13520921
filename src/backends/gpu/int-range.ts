// Bounds of int32 values on the GPU backend, known without reading them back. int32 is
// stored as float32 there, exact only up to 2^24: an op whose result may go beyond is an
// error before it runs, and index ops check their indices against these bounds (see
// GpuBackend.checkIndex). Bounds come from uploads (exact) and are carried through every
// op by interval arithmetic; a cast from float gives unknown bounds (±Infinity), which a
// clamp (maximum/minimum with known values) makes known again.

import { sizeOf } from '../../core/shape.js';
import type { KernelAttrs, KernelName, TensorInfo } from '../../core/backend.js';

/** lo..hi bounds every value; exact: lo and hi both occur (uploads, fills, pure moves). */
export interface IntRange { lo: number; hi: number; exact: boolean }

const LIMIT = 2 ** 24;

const of = (lo: number, hi: number, exact = false): IntRange =>
  ({ lo: Number.isNaN(lo) ? -Infinity : lo, hi: Number.isNaN(hi) ? Infinity : hi, exact });
const UNKNOWN = of(-Infinity, Infinity);
const hull = (rs: readonly IntRange[]): IntRange => of(Math.min(...rs.map((r) => r.lo)), Math.max(...rs.map((r) => r.hi)));
const scaled = (r: IntRange, n: number): IntRange => of(Math.min(r.lo * n, r.lo, 0), Math.max(r.hi * n, r.hi, 0));
const plus = (a: IntRange, b: IntRange): IntRange => of(a.lo + b.lo, a.hi + b.hi);

type Info = TensorInfo & { handle: { range: IntRange | null } };

function compute<K extends KernelName>(kernel: K, inputs: readonly Info[], attrs: KernelAttrs[K]): IntRange {
  // A float operand's values are not tracked: unknown.
  const r = (i: number) => (inputs[i]!.dtype === 'int32' ? inputs[i]!.handle.range : null) ?? UNKNOWN;
  const a = attrs as Record<string, unknown>;
  switch (kernel) {
    case 'equal': case 'notEqual': case 'less': case 'lessEqual': case 'greater': case 'greaterEqual': case 'oneHot':
      return of(0, 1);
    case 'argmax': case 'argmin': return of(0, Math.max(0, (inputs[0]!.shape[a.axis as number] ?? 1) - 1));
    case 'topkIndices': case 'argsort': return of(0, Math.max(0, (inputs[0]!.shape[inputs[0]!.shape.length - 1] ?? 1) - 1));
    case 'fill': return of(a.value as number, a.value as number, true);
    case 'cast': return r(0);
  }
  const rs = inputs.map((_, i) => r(i));
  const [x, y] = rs as [IntRange, IntRange];
  switch (kernel) {
    case 'neg': return of(-x.hi, -x.lo);
    case 'abs': return of(x.lo <= 0 && x.hi >= 0 ? 0 : Math.min(Math.abs(x.lo), Math.abs(x.hi)), Math.max(Math.abs(x.lo), Math.abs(x.hi)));
    case 'sign': return of(x.lo < 0 ? -1 : Math.sign(x.lo), x.hi > 0 ? 1 : Math.sign(x.hi));
    case 'relu': return of(Math.max(0, x.lo), Math.max(0, x.hi));
    case 'add': return plus(x, y);
    case 'sub': return of(x.lo - y.hi, x.hi - y.lo);
    case 'mul': {
      const p = [x.lo * y.lo, x.lo * y.hi, x.hi * y.lo, x.hi * y.hi];
      return of(Math.min(...p), Math.max(...p));
    }
    case 'maximum': return of(Math.max(x.lo, y.lo), Math.max(x.hi, y.hi));
    case 'minimum': return of(Math.min(x.lo, y.lo), Math.min(x.hi, y.hi));
    case 'where': return hull([rs[1]!, rs[2]!]);
    case 'sum': return scaled(x, sizeOf((a.axes as number[]).map((d) => inputs[0]!.shape[d]!)));
    case 'max': case 'min': case 'slice': case 'gather': case 'indexSelect': return of(x.lo, x.hi);
    case 'permute': case 'broadcastTo': case 'flip': case 'floor': case 'ceil': case 'round': return x;
    case 'cumsum': return scaled(x, inputs[0]!.shape[a.axis as number] ?? 1);
    case 'prod': {
      const n = sizeOf((a.axes as number[]).map((d) => inputs[0]!.shape[d]!));
      const m = Math.max(Math.abs(x.lo), Math.abs(x.hi), 1) ** n;
      return x.lo >= 0 ? of(0, m) : of(-m, m);
    }
    case 'pad': return hull([x, of(0, 0)]);
    case 'concat': return hull(rs as IntRange[]);
    case 'assembleSlices': return (rs as IntRange[]).reduce((acc, p) => plus(acc, hull([p, of(0, 0)])), of(0, 0));
    case 'scatterAdd': return plus(x, scaled(rs[2]!, inputs[1]!.shape[a.axis as number] ?? 1));
    case 'indexAdd': return plus(x, scaled(rs[2]!, inputs[1]!.shape[0] ?? 1));
    case 'matmul': {
      const k = (a.transposeA ? inputs[0]!.shape.at(-2) : inputs[0]!.shape.at(-1)) ?? 1;
      const m = Math.max(Math.abs(x.lo), Math.abs(x.hi)) * Math.max(Math.abs(y.lo), Math.abs(y.hi)) * k;
      return of(-m, m);
    }
    default: return UNKNOWN; // pow, and the float-only maps
  }
}

/**
 * The bounds of an int32 result; an error when a known bound passes 2^24 (float32 would not
 * hold it exactly). Unknown bounds (a cast from float, pow) are not checked.
 */
export function intRange<K extends KernelName>(kernel: K, inputs: readonly Info[], attrs: KernelAttrs[K]): IntRange {
  const range = compute(kernel, inputs, attrs);
  const beyond = (v: number) => Number.isFinite(v) && Math.abs(v) > LIMIT;
  if (beyond(range.hi) || beyond(range.lo)) {
    throw new Error(`${kernel}: the int32 result may reach ${beyond(range.hi) ? range.hi : range.lo}, beyond ±2^24 = ±16777216, ` +
      'which the gpu backend (int32 stored as float32) cannot hold exactly; compute it on the CPU backend');
  }
  return range;
}
