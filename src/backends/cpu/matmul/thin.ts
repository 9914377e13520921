// The thin kernels: when a dimension is small, packing costs about as much as the product
// and the padding to whole tiles wastes work (a vector-matrix product would do 3× the
// multiplies). These kernels read the operands in place instead; they are blocked over 4
// rows of C (A·B, Aᵀ·B) or 4 columns (A·Bᵀ). C must be zeroed (gemmRowsB adds into it).
//
// Precision: gemmDotBt and gemmSmallK sum each entry in float64 locals over the whole of k
// and store it once (a float32 result is rounded once). gemmRowsB instead adds every
// product into C itself, so a float32 C is rounded after every step of k: it accumulates
// in float32. choose-kernel.ts lists the shapes that take it.

import type { TypedArray } from '../../../core/dtype.js';

/**
 * C[i, :] += Σ_p A(i, p) · B[p, :] for B not transposed, A(i, p) = A[aOff + i·sAi + p·sAp].
 * Four rows of C share each row of B read from memory.
 */
export function gemmRowsB(
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
export function gemmDotBt(
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
export function gemmSmallK(
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
