// Batched matmul with broadcast batch dimensions and transposed operands read in place.
// The hot loops are register-blocked over 4 rows of C (A·B, Aᵀ·B) or 4 columns (A·Bᵀ).

import type { TypedArray } from '../../tensor/dtype.js';
import { broadcastStrides, sizeOf, type Shape } from '../../tensor/shape.js';

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
  const sAi = transposeA ? 1 : k, sAp = transposeA ? m : 1;
  const counter = new Array<number>(batchShape.length).fill(0);
  let aIdx = 0, bIdx = 0;
  for (let batch = 0; batch < batches; batch++) {
    const aOff = aIdx * aMat, bOff = bIdx * bMat, cOff = batch * cMat;
    if (transposeB) gemmDotBt(a, aOff, sAi, sAp, b, bOff, out, cOff, m, n, k);
    else gemmRowsB(a, aOff, sAi, sAp, b, bOff, out, cOff, m, n, k);
    for (let d = batchShape.length - 1; d >= 0; d--) {
      counter[d]!++;
      aIdx += aBatch[d]!; bIdx += bBatch[d]!;
      if (counter[d]! < batchShape[d]!) break;
      aIdx -= aBatch[d]! * batchShape[d]!; bIdx -= bBatch[d]! * batchShape[d]!;
      counter[d] = 0;
    }
  }
}
