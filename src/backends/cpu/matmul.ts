// Batched matmul with broadcast batch dimensions; transposed operands are never copied
// into a transposed tensor, only read through strides.
//
// Larger products follow the classic GotoBLAS/BLIS scheme, scaled down to what plain JS
// can exploit (no SIMD, no threads, 16 float registers):
//
//   for each block of KC steps of the inner dimension k:
//     pack that block of B into panels of NR = 4 columns, p-major   (Bp)
//     for each panel of MR = 3 rows of A:
//       pack it p-major                                             (Ap, 6 KiB: stays in L1)
//       for each B panel: the 3×4 micro-kernel adds Ap·Bp into C
//
// Why each piece:
// - The micro-kernel keeps a 3×4 tile of C in registers: 12 multiply-adds per 7 loads,
//   where the previous row-axpy kernel loaded and stored C once per 4 multiply-adds.
//   3×4 (or 4×3) is the largest tile whose sums and operands about fit the 16 x64 float
//   registers; 4×4 spills and measured 8% slower, 4×8, 2×4 and 4×2 slower still.
// - Packing makes the micro-kernel read both operands contiguously whatever the layout, so
//   A·B, A·Bᵀ, Aᵀ·B and Aᵀ·Bᵀ all run the same kernel; the strides live only in packing,
//   which is O(mk + kn) against the O(mnk) of the product.
// - Packed operands and the accumulator are Float64Array whatever the input dtype, so the
//   hot loop sees one array type only (monomorphic), and float32 results are rounded once,
//   from float64 sums.
// - Blocking k by KC bounds the packed B block (KC·n doubles) that every A panel sweeps,
//   so it is read from cache, not memory. KC = 128, 256 and 512 measured alike for
//   n = 512 and 1024 on a 1 MiB-L2 core; 256 it is.
// - Panels are zero-padded to whole tiles and C is computed into a padded accumulator, so
//   edge tiles need no special code; the padding is dropped when C is copied out. A
//   float64 output with no padding is accumulated in place, without the extra array.
//
// Thin products (a dimension below about 8–16) skip packing: see usePacked below.

import type { TypedArray } from '../../core/dtype.js';
import { broadcastStrides, sizeOf, type Shape } from '../../core/shape.js';
import { cpuPool } from './pool.js';

const MR = 3;   // rows of a micro-tile (the micro-kernel is written out for 3×4)
const NR = 4;   // columns of a micro-tile
const KC = 256; // inner-dimension block (see above)
// Below this many rows (or inner steps, for Aᵀ·B), gemmInPlace is at or above the packed
// kernel: 6.6–6.8 against 6.1–6.6 GFLOP/s at 48 and 63 rows, about equal at 96.
const IN_PLACE_ROWS = 96;

/** Operand element (r, c) sits at off + r·sR + c·sC: transposition is only a swap of strides. */
interface Strided { data: TypedArray; off: number; sR: number; sC: number }

/**
 * Packs rows i0..i0+MR-1, columns p0..p0+kc-1 of A into Ap[p·MR + ii], zero-padding the
 * rows past m (they only feed padded rows of C, which are dropped, but zeros keep the
 * padding deterministic). The micro-kernel then reads its MR values per step contiguously.
 */
function packA(A: Strided, i0: number, m: number, p0: number, kc: number, Ap: Float64Array): void {
  const rows = Math.min(MR, m - i0);
  const { data, sR, sC } = A;
  for (let ii = 0; ii < MR; ii++) {
    if (ii >= rows) { for (let p = 0; p < kc; p++) Ap[p * MR + ii] = 0; continue; }
    let src = A.off + (i0 + ii) * sR + p0 * sC;
    for (let p = 0; p < kc; p++, src += sC) Ap[p * MR + ii] = data[src]!;
  }
}

/**
 * Packs rows p0..p0+kc-1 of B (all n columns) into panels of NR columns: panel jp holds
 * B(p0 + p, jp·NR + jj) at Bp[jp·kc·NR + p·NR + jj], zero-padded past column n.
 */
function packB(B: Strided, p0: number, kc: number, n: number, Bp: Float64Array): void {
  const { data, sR, sC } = B;
  for (let j0 = 0, dst = 0; j0 < n; j0 += NR, dst += kc * NR) {
    const cols = Math.min(NR, n - j0);
    for (let jj = 0; jj < NR; jj++) {
      if (jj >= cols) { for (let p = 0; p < kc; p++) Bp[dst + p * NR + jj] = 0; continue; }
      let src = B.off + p0 * sR + (j0 + jj) * sC;
      for (let p = 0; p < kc; p++, src += sR) Bp[dst + p * NR + jj] = data[src]!;
    }
  }
}

/**
 * C[3×4 tile at cOff, row stride ldc] += Ap (kc×3, p-major) · Bp panel (kc×4 at bOff).
 * The 12 sums stay in locals; with the 3 values of A and one B value at a time that is 16
 * live doubles, about what V8 can keep in the x64 float registers (4×4 needs 21).
 */
function micro(
  Ap: Float64Array, Bp: Float64Array, bOff: number, kc: number, C: Float64Array, cOff: number, ldc: number,
): void {
  let c00 = 0, c01 = 0, c02 = 0, c03 = 0, c10 = 0, c11 = 0, c12 = 0, c13 = 0;
  let c20 = 0, c21 = 0, c22 = 0, c23 = 0;
  for (let p = 0, a = 0, b = bOff; p < kc; p++, a += MR, b += NR) {
    const a0 = Ap[a]!, a1 = Ap[a + 1]!, a2 = Ap[a + 2]!;
    let bv = Bp[b]!;
    c00 += a0 * bv; c10 += a1 * bv; c20 += a2 * bv;
    bv = Bp[b + 1]!;
    c01 += a0 * bv; c11 += a1 * bv; c21 += a2 * bv;
    bv = Bp[b + 2]!;
    c02 += a0 * bv; c12 += a1 * bv; c22 += a2 * bv;
    bv = Bp[b + 3]!;
    c03 += a0 * bv; c13 += a1 * bv; c23 += a2 * bv;
  }
  let c = cOff;
  C[c] = C[c]! + c00; C[c + 1] = C[c + 1]! + c01; C[c + 2] = C[c + 2]! + c02; C[c + 3] = C[c + 3]! + c03;
  c += ldc;
  C[c] = C[c]! + c10; C[c + 1] = C[c + 1]! + c11; C[c + 2] = C[c + 2]! + c12; C[c + 3] = C[c + 3]! + c13;
  c += ldc;
  C[c] = C[c]! + c20; C[c + 1] = C[c + 1]! + c21; C[c + 2] = C[c + 2]! + c22; C[c + 3] = C[c + 3]! + c23;
}

/** Reused packing buffers; ones bigger than this many doubles are not kept between calls. */
const KEEP_SCRATCH = 1 << 18; // 2 MiB
const apScratch = new Float64Array(MR * KC);
let bpScratch = new Float64Array(0);
function scratchB(size: number): Float64Array {
  if (size <= bpScratch.length) return bpScratch;
  const buf = new Float64Array(size);
  if (size <= KEEP_SCRATCH) bpScratch = buf;
  return buf;
}

/**
 * One matrix product C (m×n, row stride ldc, at cOff) += A(m×k) · B(k×n). C must have
 * room for the padded tile grid (m and n rounded up to multiples of MR and NR).
 */
function gemm(A: Strided, B: Strided, C: Float64Array, cOff: number, ldc: number, m: number, n: number, k: number): void {
  const nPanels = Math.ceil(n / NR);
  for (let p0 = 0; p0 < k; p0 += KC) {
    const kc = Math.min(KC, k - p0);
    const Bp = scratchB(nPanels * kc * NR);
    packB(B, p0, kc, n, Bp);
    for (let i0 = 0; i0 < m; i0 += MR) {
      packA(A, i0, m, p0, kc, apScratch);
      const cRow = cOff + i0 * ldc;
      for (let jp = 0; jp < nPanels; jp++) micro(apScratch, Bp, jp * kc * NR, kc, C, cRow + jp * NR, ldc);
    }
  }
}

// ---- thin problems ----------------------------------------------------------------------
// When a dimension is small, packing costs about as much as the product and the padding to
// whole tiles wastes work (a vector-matrix product would do 3× the multiplies). These kernels
// read the operands in place instead; they are blocked over 4 rows of C (A·B, Aᵀ·B) or 4
// columns (A·Bᵀ). C must be zeroed (gemmRowsB adds into it).

/**
 * C[i, :] += Σ_p A(i, p) · B[p, :] for B not transposed, A(i, p) = A[aOff + i·sAi + p·sAp].
 * Four rows of C share each row of B read from memory.
 */
function gemmRowsB(
  A: TypedArray, aOff: number, sAi: number, sAp: number,
  B: TypedArray, bOff: number, C: TypedArray, cOff: number, m: number, n: number, k: number,
): void {
  let i = 0;
  for (; i + 3 < m; i += 4) {
    const c0 = cOff + i * n, c1 = c0 + n, c2 = c1 + n, c3 = c2 + n;
    for (let p = 0; p < k; p++) {
      const ap = aOff + i * sAi + p * sAp;
      const a0 = A[ap]!, a1 = A[ap + sAi]!, a2 = A[ap + 2 * sAi]!, a3 = A[ap + 3 * sAi]!;
      const bRow = bOff + p * n;
      for (let j = 0; j < n; j++) {
        const b = B[bRow + j]!;
        C[c0 + j] = C[c0 + j]! + a0 * b;
        C[c1 + j] = C[c1 + j]! + a1 * b;
        C[c2 + j] = C[c2 + j]! + a2 * b;
        C[c3 + j] = C[c3 + j]! + a3 * b;
      }
    }
  }
  for (; i < m; i++) {
    const c0 = cOff + i * n;
    for (let p = 0; p < k; p++) {
      const a0 = A[aOff + i * sAi + p * sAp]!;
      const bRow = bOff + p * n;
      for (let j = 0; j < n; j++) C[c0 + j] = C[c0 + j]! + a0 * B[bRow + j]!;
    }
  }
}

/** C[i, j] = Σ_p A(i, p) · B[j, p] for B transposed: four dot products share each read of A. */
function gemmDotBt(
  A: TypedArray, aOff: number, sAi: number, sAp: number,
  B: TypedArray, bOff: number, C: TypedArray, cOff: number, m: number, n: number, k: number,
): void {
  for (let i = 0; i < m; i++) {
    const aRow = aOff + i * sAi, cRow = cOff + i * n;
    let j = 0;
    for (; j + 3 < n; j += 4) {
      const b0 = bOff + j * k, b1 = b0 + k, b2 = b1 + k, b3 = b2 + k;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (let p = 0; p < k; p++) {
        const a = A[aRow + p * sAp]!;
        s0 += a * B[b0 + p]!;
        s1 += a * B[b1 + p]!;
        s2 += a * B[b2 + p]!;
        s3 += a * B[b3 + p]!;
      }
      C[cRow + j] = s0; C[cRow + j + 1] = s1; C[cRow + j + 2] = s2; C[cRow + j + 3] = s3;
    }
    for (; j < n; j++) {
      const b0 = bOff + j * k;
      let s = 0;
      for (let p = 0; p < k; p++) s += A[aRow + p * sAp]! * B[b0 + p]!;
      C[cRow + j] = s;
    }
  }
}

/**
 * C = A·B for a short inner dimension (k below the packed kernel's threshold, e.g. an
 * MoE expert's weight gradient dyᵀ·x over its few examples): a 2×4 tile of C stays in
 * registers for the whole (short) sum and is stored once, instead of once per step of k.
 */
function gemmSmallK(
  A: TypedArray, aOff: number, sAi: number, sAp: number,
  B: TypedArray, bOff: number, C: TypedArray, cOff: number, m: number, n: number, k: number,
): void {
  let i = 0;
  for (; i + 1 < m; i += 2) {
    const a0Row = aOff + i * sAi, a1Row = a0Row + sAi, c0 = cOff + i * n, c1 = c0 + n;
    let j = 0;
    for (; j + 3 < n; j += 4) {
      let s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
      for (let p = 0; p < k; p++) {
        const a0 = A[a0Row + p * sAp]!, a1 = A[a1Row + p * sAp]!;
        const b = bOff + p * n + j;
        const b0 = B[b]!, b1 = B[b + 1]!, b2 = B[b + 2]!, b3 = B[b + 3]!;
        s00 += a0 * b0; s01 += a0 * b1; s02 += a0 * b2; s03 += a0 * b3;
        s10 += a1 * b0; s11 += a1 * b1; s12 += a1 * b2; s13 += a1 * b3;
      }
      C[c0 + j] = s00; C[c0 + j + 1] = s01; C[c0 + j + 2] = s02; C[c0 + j + 3] = s03;
      C[c1 + j] = s10; C[c1 + j + 1] = s11; C[c1 + j + 2] = s12; C[c1 + j + 3] = s13;
    }
    for (; j < n; j++) {
      let s0 = 0, s1 = 0;
      for (let p = 0; p < k; p++) {
        const b = B[bOff + p * n + j]!;
        s0 += A[a0Row + p * sAp]! * b; s1 += A[a1Row + p * sAp]! * b;
      }
      C[c0 + j] = s0; C[c1 + j] = s1;
    }
  }
  for (; i < m; i++) {
    const aRow = aOff + i * sAi, c0 = cOff + i * n;
    for (let j = 0; j < n; j++) {
      let s0 = 0;
      for (let p = 0; p < k; p++) s0 += A[aRow + p * sAp]! * B[bOff + p * n + j]!;
      C[c0 + j] = s0;
    }
  }
}

// ---- in place -----------------------------------------------------------------------------
// An MoE expert sees a handful of rows (≈ 8 per expert at 256 experts, k = 2 of 1024 tokens),
// against a weight of hundreds × hundreds. Packing the weight costs about a multiply-add per
// element, and each weight element is used only m times, so for few rows packing is a large
// share of the product (the packed kernel ran 3.8–4.2 GFLOP/s at m = 8). Here only the small
// operand A is packed (float64, 3-row panels, O(mk)) and the weight is read in place, four
// columns at a time, by the same 3×4 register tile: 6.6–7.0 GFLOP/s from m = 9 to 95, at or
// above the packed kernel there (6.1–6.7). Each of the three layouts an MoE step uses (x·Wᵀ,
// dy·W, dyᵀ·x) reads B either along its rows or along its columns, one index into B each.
// Rows past the last whole panel use a 2×4 or 1×4 tile reading A in place.

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
function gemmInPlace(
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

/**
 * Whether the packed kernel pays off. Measured crossovers (float32, this file's kernels): it
 * wins once every dimension reaches about 8–16 and the product about 24³ multiply-adds.
 */
function usePacked(m: number, n: number, k: number): boolean {
  return m >= 8 && n >= 8 && k >= 16 && m * n * k >= 24 * 24 * 24;
}

export function matmul(
  a: TypedArray, aShape: Shape, b: TypedArray, bShape: Shape,
  out: TypedArray, outShape: Shape, transposeA: boolean, transposeB: boolean,
): void {
  const r = outShape.length;
  const m = outShape[r - 2]!, n = outShape[r - 1]!;
  const k = transposeA ? aShape[aShape.length - 2]! : aShape[aShape.length - 1]!;
  const batchShape = outShape.slice(0, -2);
  const batches = sizeOf(batchShape);
  // Broadcast batch strides, in units of whole matrices.
  const aBatch = broadcastStrides(aShape.slice(0, -2), batchShape);
  const bBatch = broadcastStrides(bShape.slice(0, -2), batchShape);
  const aMat = m * k, bMat = k * n, cMat = m * n;
  // A(i, p) = a[off + i·sAi + p·sAp] and B(p, j) likewise: transposition only swaps strides.
  const sAi = transposeA ? 1 : k, sAp = transposeA ? m : 1;
  // In-place 3×4 tiles where packing does not pay: few rows against a wide operand (with an
  // inner dimension long enough that a tile's 12 stores are noise), or Aᵀ·B over a short
  // inner dimension (a weight gradient over an expert's few examples).
  const inPlace = n >= 8 && ((m < IN_PLACE_ROWS && k >= 16) || (transposeA && !transposeB && m >= 8 && k < IN_PLACE_ROWS));
  const packed = !inPlace && usePacked(m, n, k);
  const A: Strided = { data: a, off: 0, sR: sAi, sC: sAp };
  const B: Strided = { data: b, off: 0, sR: transposeB ? 1 : n, sC: transposeB ? k : 1 };
  const mPad = Math.ceil(m / MR) * MR, nPad = Math.ceil(n / NR) * NR;
  // The packed kernel accumulates a float64 output with no padding in place (out is
  // freshly zeroed); anything else goes through a padded float64 accumulator.
  const direct = out instanceof Float64Array && mPad === m && nPad === n;
  const acc = packed && !direct ? cpuPool.take('float64', mPad * nPad) as Float64Array : null;
  // `out` comes unzeroed; only the kernels that add into C need it zeroed.
  const addsIntoC = (packed && acc === null) || (!inPlace && !packed && !transposeB && k >= 16);
  if (addsIntoC) out.fill(0);
  const counter = new Array<number>(batchShape.length).fill(0);
  let aIdx = 0, bIdx = 0;
  for (let batch = 0; batch < batches; batch++) {
    const aOff = aIdx * aMat, bOff = bIdx * bMat, cOff = batch * cMat;
    if (inPlace) {
      gemmInPlace(a, aOff, sAi, sAp, b, bOff, B.sR, B.sC, out, cOff, m, n, k);
    } else if (!packed) {
      if (transposeB) gemmDotBt(a, aOff, sAi, sAp, b, bOff, out, cOff, m, n, k);
      else if (k < 16) gemmSmallK(a, aOff, sAi, sAp, b, bOff, out, cOff, m, n, k);
      else gemmRowsB(a, aOff, sAi, sAp, b, bOff, out, cOff, m, n, k);
    } else if (acc === null) {
      A.off = aOff; B.off = bOff;
      gemm(A, B, out as Float64Array, cOff, n, m, n, k);
    } else {
      A.off = aOff; B.off = bOff;
      if (batch > 0) acc.fill(0);
      gemm(A, B, acc, 0, nPad, m, n, k);
      // Drop the padding; set() converts (rounds to float32, wraps to int32) natively.
      if (nPad === n) out.set(acc.subarray(0, cMat), cOff);
      else for (let i = 0; i < m; i++) out.set(acc.subarray(i * nPad, i * nPad + n), cOff + i * n);
    }
    for (let d = batchShape.length - 1; d >= 0; d--) {
      counter[d]!++;
      aIdx += aBatch[d]!; bIdx += bBatch[d]!;
      if (counter[d]! < batchShape[d]!) break;
      aIdx -= aBatch[d]! * batchShape[d]!; bIdx -= bBatch[d]! * batchShape[d]!;
      counter[d] = 0;
    }
  }
  if (acc !== null) cpuPool.give(acc);
}
