// The in-place kernel. An MoE expert sees a handful of rows (≈ 8 per expert at 256 experts,
// k = 2 of 1024 tokens), against a weight of hundreds × hundreds. Packing the weight costs
// about a multiply-add per element, and each weight element is used only m times, so for
// few rows packing is a large share of the product (the packed kernel ran 3.8–4.2 GFLOP/s
// at m = 8). Here only the small operand A is packed (float64, 3-row panels, O(mk)) and the
// weight is read in place, four columns at a time, by the same 3×4 register tile: 6.6–7.0
// GFLOP/s from m = 9 to 95, at or above the packed kernel there (6.1–6.7). Each of the
// three layouts an MoE step uses (x·Wᵀ, dy·W, dyᵀ·x) reads B either along its rows or
// along its columns, one index into B each. Rows past the last whole panel use a 2×4 or
// 1×4 tile reading A in place.
//
// Precision: every tile sums in float64 locals over the whole of k and stores each entry
// of C once, so a float32 result is rounded once from its float64 sum.

import type { TypedArray } from '../../../core/dtype.js';
import { KEEP_SCRATCH } from './packed.js';

type Arr = TypedArray;

/**
 * C[3×4 at c, row stride ldc] = Ap-panel (k×3, p-major, float64 at ap) · B(p, j) for four
 * columns, B read in place: its rows hold the columns here (x·Wᵀ: B(p, j) = B[b0 + j·ldb + p]).
 */
function panelBRows(Ap: Float64Array, ap: number, B: Arr, b0: number, ldb: number, C: Arr, c: number, ldc: number, k: number): void {
  const b1 = b0 + ldb, b2 = b1 + ldb, b3 = b2 + ldb;
  let c00 = 0, c01 = 0, c02 = 0, c03 = 0, c10 = 0, c11 = 0, c12 = 0, c13 = 0, c20 = 0, c21 = 0, c22 = 0, c23 = 0;
  for (let p = 0, a = ap; p < k; p++, a += 3) {
    const x0 = Ap[a]!, x1 = Ap[a + 1]!, x2 = Ap[a + 2]!;
    let w = B[b0 + p]!;
    c00 += x0 * w; c10 += x1 * w; c20 += x2 * w;
    w = B[b1 + p]!;
    c01 += x0 * w; c11 += x1 * w; c21 += x2 * w;
    w = B[b2 + p]!;
    c02 += x0 * w; c12 += x1 * w; c22 += x2 * w;
    w = B[b3 + p]!;
    c03 += x0 * w; c13 += x1 * w; c23 += x2 * w;
  }
  C[c] = c00; C[c + 1] = c01; C[c + 2] = c02; C[c + 3] = c03;
  c += ldc;
  C[c] = c10; C[c + 1] = c11; C[c + 2] = c12; C[c + 3] = c13;
  c += ldc;
  C[c] = c20; C[c + 1] = c21; C[c + 2] = c22; C[c + 3] = c23;
}

/** panelBRows for B row-major (dy·W, dyᵀ·x): B(p, j) = B[b0 + p·ldb + j]. */
function panelBCols(Ap: Float64Array, ap: number, B: Arr, b0: number, ldb: number, C: Arr, c: number, ldc: number, k: number): void {
  let c00 = 0, c01 = 0, c02 = 0, c03 = 0, c10 = 0, c11 = 0, c12 = 0, c13 = 0, c20 = 0, c21 = 0, c22 = 0, c23 = 0;
  for (let p = 0, a = ap, b = b0; p < k; p++, a += 3, b += ldb) {
    const x0 = Ap[a]!, x1 = Ap[a + 1]!, x2 = Ap[a + 2]!;
    let w = B[b]!;
    c00 += x0 * w; c10 += x1 * w; c20 += x2 * w;
    w = B[b + 1]!;
    c01 += x0 * w; c11 += x1 * w; c21 += x2 * w;
    w = B[b + 2]!;
    c02 += x0 * w; c12 += x1 * w; c22 += x2 * w;
    w = B[b + 3]!;
    c03 += x0 * w; c13 += x1 * w; c23 += x2 * w;
  }
  C[c] = c00; C[c + 1] = c01; C[c + 2] = c02; C[c + 3] = c03;
  c += ldc;
  C[c] = c10; C[c + 1] = c11; C[c + 2] = c12; C[c + 3] = c13;
  c += ldc;
  C[c] = c20; C[c + 1] = c21; C[c + 2] = c22; C[c + 3] = c23;
}


/** The last two rows of gemmInPlace, A and B read in place through their strides. */
function tile2x4(A: Arr, a0: number, sAi: number, sAp: number, B: Arr, b0: number, sBp: number, sBj: number, C: Arr, c: number, ldc: number, k: number): void {
  const a1 = a0 + sAi, b1 = b0 + sBj, b2 = b1 + sBj, b3 = b2 + sBj;
  let c00 = 0, c01 = 0, c02 = 0, c03 = 0, c10 = 0, c11 = 0, c12 = 0, c13 = 0;
  for (let p = 0, a = 0, b = 0; p < k; p++, a += sAp, b += sBp) {
    const x0 = A[a0 + a]!, x1 = A[a1 + a]!;
    let w = B[b0 + b]!;
    c00 += x0 * w; c10 += x1 * w;
    w = B[b1 + b]!;
    c01 += x0 * w; c11 += x1 * w;
    w = B[b2 + b]!;
    c02 += x0 * w; c12 += x1 * w;
    w = B[b3 + b]!;
    c03 += x0 * w; c13 += x1 * w;
  }
  C[c] = c00; C[c + 1] = c01; C[c + 2] = c02; C[c + 3] = c03;
  c += ldc;
  C[c] = c10; C[c + 1] = c11; C[c + 2] = c12; C[c + 3] = c13;
}

/** The last row of gemmInPlace. */
function tile1x4(A: Arr, a0: number, sAp: number, B: Arr, b0: number, sBp: number, sBj: number, C: Arr, c: number, k: number): void {
  const b1 = b0 + sBj, b2 = b1 + sBj, b3 = b2 + sBj;
  let c00 = 0, c01 = 0, c02 = 0, c03 = 0;
  for (let p = 0, a = 0, b = 0; p < k; p++, a += sAp, b += sBp) {
    const x = A[a0 + a]!;
    c00 += x * B[b0 + b]!; c01 += x * B[b1 + b]!; c02 += x * B[b2 + b]!; c03 += x * B[b3 + b]!;
  }
  C[c] = c00; C[c + 1] = c01; C[c + 2] = c02; C[c + 3] = c03;
}

// One sweep per B layout, each calling one panel kernel, so that V8 inlines each alone.
function sweepBRows(Ap: Float64Array, panels: number, B: Arr, bOff: number, ldb: number, C: Arr, cOff: number, n: number, k: number): void {
  const n4 = n - (n % 4);
  for (let j = 0; j < n4; j += 4) for (let t = 0; t < panels; t++) panelBRows(Ap, t * 3 * k, B, bOff + j * ldb, ldb, C, cOff + t * 3 * n + j, n, k);
}
function sweepBCols(Ap: Float64Array, panels: number, B: Arr, bOff: number, ldb: number, C: Arr, cOff: number, n: number, k: number): void {
  const n4 = n - (n % 4);
  for (let j = 0; j < n4; j += 4) for (let t = 0; t < panels; t++) panelBCols(Ap, t * 3 * k, B, bOff + j, ldb, C, cOff + t * 3 * n + j, n, k);
}

/** Scratch for gemmInPlace's packed rows of A. */
let apFew = new Float64Array(0);

/**
 * C (m×n at cOff, row-major) = A·B with A(i, p) at aOff + i·sAi + p·sAp and B(p, j) at
 * bOff + p·sBp + j·sBj. Whole groups of 3 rows of A are packed (p-major float64, as the
 * packed kernel's Ap: O(mk), small here); B, the large operand, is read in place. Column
 * blocks outside, row panels inside: the four columns of B a block reads stay in L1 while
 * every panel uses them. The last 1–2 rows use in-place tiles.
 */
export function gemmInPlace(
  A: Arr, aOff: number, sAi: number, sAp: number,
  B: Arr, bOff: number, sBp: number, sBj: number, C: Arr, cOff: number, m: number, n: number, k: number,
): void {
  const panels = Math.floor(m / 3), m3 = panels * 3, n4 = n - (n % 4);
  let Ap = apFew;
  if (Ap.length < m3 * k) {
    Ap = new Float64Array(m3 * k);
    if (Ap.length <= KEEP_SCRATCH) apFew = Ap;
  }
  for (let t = 0; t < panels; t++) {
    for (let ii = 0; ii < 3; ii++) {
      let src = aOff + (t * 3 + ii) * sAi;
      for (let p = 0, dst = t * 3 * k + ii; p < k; p++, dst += 3, src += sAp) Ap[dst] = A[src]!;
    }
  }
  // matmul's B is row-major, read directly (sBj = 1) or transposed (sBp = 1).
  if (sBp === 1) sweepBRows(Ap, panels, B, bOff, sBj, C, cOff, n, k);
  else sweepBCols(Ap, panels, B, bOff, sBp, C, cOff, n, k);
  if (m > m3) {
    for (let j = 0; j < n4; j += 4) {
      const b0 = bOff + j * sBj, c0 = cOff + m3 * n + j;
      if (m - m3 === 2) tile2x4(A, aOff + m3 * sAi, sAi, sAp, B, b0, sBp, sBj, C, c0, n, k);
      else tile1x4(A, aOff + m3 * sAi, sAp, B, b0, sBp, sBj, C, c0, k);
    }
  }
  for (let i = 0; i < m; i++) {
    for (let j = n4; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += A[aOff + i * sAi + p * sAp]! * B[bOff + p * sBp + j * sBj]!;
      C[cOff + i * n + j] = s;
    }
  }
}
