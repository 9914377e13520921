// The packed kernel: the classic GotoBLAS/BLIS scheme, scaled down to what plain JS can
// exploit (no SIMD, no threads, 16 float registers). choose-kernel.ts says when it runs.
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
// - Packed operands and the accumulator C are Float64Array whatever the input dtype, so the
//   hot loop sees one array type only (monomorphic), and the sums are float64 across every
//   k block: matmul.ts rounds a float32 result once, when it copies C out.
// - Blocking k by KC bounds the packed B block (KC·n doubles) that every A panel sweeps,
//   so it is read from cache, not memory. KC = 128, 256 and 512 measured alike for
//   n = 512 and 1024 on a 1 MiB-L2 core; 256 it is.
// - Panels are zero-padded to whole tiles and C is computed into a padded accumulator, so
//   edge tiles need no special code; the padding is dropped when C is copied out. A
//   float64 output with no padding is accumulated in place, without the extra array.

import type { TypedArray } from '../../../core/dtype.js';

export const MR = 3;   // rows of a micro-tile (the micro-kernel is written out for 3×4)
export const NR = 4;   // columns of a micro-tile
const KC = 256;        // inner-dimension block (see above)

/** Operand element (r, c) sits at off + r·sR + c·sC: transposition is only a swap of strides. */
export interface Strided { data: TypedArray; off: number; sR: number; sC: number }

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
export const KEEP_SCRATCH = 1 << 18; // 2 MiB
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
export function gemm(A: Strided, B: Strided, C: Float64Array, cOff: number, ldc: number, m: number, n: number, k: number): void {
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
