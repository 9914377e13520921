// Batched matmul with broadcast batch dimensions; transposed operands are never copied
// into a transposed tensor, only read through strides. This file walks the batch and hands
// each matrix to one of five kernels, chosen in choose-kernel.ts (its table says which
// kernel takes which shapes, and which of them accumulate a float32 result in float64):
//   packed.ts     the GotoBLAS/BLIS-style packed kernel, for everything large;
//   in-place.ts   few rows against a wide weight (an MoE expert), B read in place;
//   thin.ts       dot-bt, small-k and rows-b, for a small dimension.

import type { TypedArray } from '../../../core/dtype.js';
import type { Shape } from '../../../core/shape.js';
import { cpuPool } from '../pool.js';
import { batchMatrices } from './batch.js';
import { chooseMatmulKernel } from './choose-kernel.js';
import { gemmInPlace } from './in-place.js';
import { gemm, MR, NR, type Strided } from './packed.js';
import { gemmDotBt, gemmRowsB, gemmSmallK } from './thin.js';

export { chooseMatmulKernel, type MatmulKernel } from './choose-kernel.js';

/**
 * out = op(a)·op(b) for every matrix of the broadcast batch; `out` (outShape) need not be
 * zeroed. op transposes when transposeA / transposeB is set.
 */
export function matmul(
  a: TypedArray, aShape: Shape, b: TypedArray, bShape: Shape,
  out: TypedArray, outShape: Shape, transposeA: boolean, transposeB: boolean,
): void {
  const r = outShape.length;
  const m = outShape[r - 2]!, n = outShape[r - 1]!;
  const k = transposeA ? aShape[aShape.length - 2]! : aShape[aShape.length - 1]!;
  const matrices = batchMatrices(aShape, bShape, outShape);
  const batches = matrices.a.length;
  const aMat = m * k, bMat = k * n, cMat = m * n;
  // A(i, p) = a[off + i·sAi + p·sAp] and B(p, j) likewise: transposition only swaps strides.
  const sAi = transposeA ? 1 : k, sAp = transposeA ? m : 1;
  const kernel = chooseMatmulKernel(m, n, k, transposeA, transposeB);
  const A: Strided = { data: a, off: 0, sR: sAi, sC: sAp };
  const B: Strided = { data: b, off: 0, sR: transposeB ? 1 : n, sC: transposeB ? k : 1 };
  const mPad = Math.ceil(m / MR) * MR, nPad = Math.ceil(n / NR) * NR;
  // The packed kernel accumulates a float64 output with no padding in place (out is
  // freshly zeroed); anything else goes through a padded float64 accumulator.
  const direct = out instanceof Float64Array && mPad === m && nPad === n;
  const acc = kernel === 'packed' && !direct ? cpuPool.take('float64', mPad * nPad) as Float64Array : null;
  // `out` comes unzeroed; only the kernels that add into C need it zeroed.
  if (kernel === 'rows-b' || (kernel === 'packed' && acc === null)) out.fill(0);
  for (let batch = 0; batch < batches; batch++) {
    const aOff = matrices.a[batch]! * aMat, bOff = matrices.b[batch]! * bMat, cOff = batch * cMat;
    if (kernel === 'in-place') gemmInPlace(a, aOff, sAi, sAp, b, bOff, B.sR, B.sC, out, cOff, m, n, k);
    else if (kernel === 'dot-bt') gemmDotBt(a, aOff, sAi, sAp, b, bOff, out, cOff, m, n, k);
    else if (kernel === 'small-k') gemmSmallK(a, aOff, sAi, sAp, b, bOff, out, cOff, m, n, k);
    else if (kernel === 'rows-b') gemmRowsB(a, aOff, sAi, sAp, b, bOff, out, cOff, m, n, k);
    else if (acc === null) {
      A.off = aOff; B.off = bOff;
      gemm(A, B, out as Float64Array, cOff, n, m, n, k);
    } else {
      A.off = aOff; B.off = bOff;
      if (batch > 0) acc.fill(0);
      gemm(A, B, acc, 0, nPad, m, n, k);
      // Drop the padding; set() converts (rounds to float32, wraps to int32) natively, so a
      // float32 result is rounded once from the float64 sums.
      if (nPad === n) out.set(acc.subarray(0, cMat), cOff);
      else for (let i = 0; i < m; i++) out.set(acc.subarray(i * nPad, i * nPad + n), cOff + i * n);
    }
  }
  if (acc !== null) cpuPool.give(acc);
}

/**
 * The groupedMatmul kernel (src/core/backend.ts) on the scalar kernels: one matmul per
 * segment, so each segment's rows are exactly matmul's. ins: [a, b_0 … b_{E-1}]; k = a's
 * columns, n = the output's.
 */
export function groupedMatmulScalar(ins: readonly TypedArray[], k: number, sizes: readonly number[], transposeB: boolean, out: TypedArray, n: number): void {
  const a = ins[0]!;
  let row0 = 0;
  sizes.forEach((m, e) => {
    matmul(a.subarray(row0 * k, (row0 + m) * k), [m, k], ins[1 + e]!, transposeB ? [n, k] : [k, n], out.subarray(row0 * n, (row0 + m) * n), [m, n], false, transposeB);
    row0 += m;
  });
}

/** The groupedWeightGrads kernel on the scalar kernels: outs[e] = a[seg e]ᵀ · b[seg e] (a [M, p], b [M, q]). */
export function groupedWeightGradsScalar(a: TypedArray, b: TypedArray, p: number, q: number, sizes: readonly number[], outs: readonly TypedArray[]): void {
  let row0 = 0;
  sizes.forEach((m, e) => {
    if (m === 0) outs[e]!.fill(0);
    else matmul(a.subarray(row0 * p, (row0 + m) * p), [m, p], b.subarray(row0 * q, (row0 + m) * q), [m, q], outs[e]!, [p, q], true, false);
    row0 += m;
  });
}
