// Which matrices a batched matmul multiplies: for every matrix of the (broadcast) output
// batch, in row-major order, the index of the matrix of A and of B it reads. Shared by the
// scalar kernels (matmul.ts) and the SIMD path (../wasm/wasm-matmul.ts).

import { broadcastStrides, sizeOf, type Shape } from '../../../core/shape.js';

export function batchMatrices(aShape: Shape, bShape: Shape, outShape: Shape): { a: Int32Array; b: Int32Array } {
  const batchShape = outShape.slice(0, -2);
  // Broadcast batch strides, in units of whole matrices.
  const aBatch = broadcastStrides(aShape.slice(0, -2), batchShape);
  const bBatch = broadcastStrides(bShape.slice(0, -2), batchShape);
  const batches = sizeOf(batchShape);
  const a = new Int32Array(batches), b = new Int32Array(batches);
  const counter = new Array<number>(batchShape.length).fill(0);
  let aIdx = 0, bIdx = 0;
  for (let batch = 0; batch < batches; batch++) {
    a[batch] = aIdx; b[batch] = bIdx;
    // An odometer over the batch dimensions, last one fastest.
    for (let d = batchShape.length - 1; d >= 0; d--) {
      counter[d]!++;
      aIdx += aBatch[d]!; bIdx += bBatch[d]!;
      if (counter[d]! < batchShape[d]!) break;
      aIdx -= aBatch[d]! * batchShape[d]!; bIdx -= bBatch[d]! * batchShape[d]!;
      counter[d] = 0;
    }
  }
  return { a, b };
}
