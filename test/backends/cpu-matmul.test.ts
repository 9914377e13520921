// The CPU matmul kernel against a naive float64 triple loop: every transpose combination,
// odd sizes (padding of the 4×4 tiles), both kernels (thin problems read operands in place,
// larger ones are packed), several k blocks, and broadcast batch dimensions.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { assertClose, broadcast, mt, numRuns, ravel, unravel } from '../helpers.js';

type Float = 'float32' | 'float64';

/** Deterministic values in [-2, 2) from a seed (a 32-bit LCG), rounded to the dtype. */
function values(n: number, seed: number, dtype: Float): number[] {
  let s = seed >>> 0;
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32) * 4 - 2;
  }
  return dtype === 'float32' ? Array.from(Float32Array.from(out)) : out;
}

interface Case {
  batchA: number[]; batchB: number[]; m: number; n: number; k: number;
  transposeA: boolean; transposeB: boolean; dtype: Float; seed: number;
}

/** C = op(A)·op(B) in float64 by the definition, with NumPy broadcasting of the batch dims. */
function naive(c: Case, a: number[], b: number[]): { shape: number[]; data: number[] } {
  const { m, n, k, transposeA, transposeB } = c;
  const batch = broadcast(c.batchA, c.batchB)!;
  const batchSize = batch.reduce((x, y) => x * y, 1);
  const data = new Array<number>(batchSize * m * n).fill(0);
  const matIndex = (index: number[], shape: number[]) =>
    ravel(shape.map((d, i) => (d === 1 ? 0 : index[i + batch.length - shape.length]!)), shape);
  for (let t = 0; t < batchSize; t++) {
    const index = unravel(t, batch);
    const aOff = matIndex(index, c.batchA) * m * k, bOff = matIndex(index, c.batchB) * k * n;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) {
          const av = a[aOff + (transposeA ? p * m + i : i * k + p)]!;
          const bv = b[bOff + (transposeB ? j * k + p : p * n + j)]!;
          s += av * bv;
        }
        data[t * m * n + i * n + j] = s;
      }
    }
  }
  return { shape: [...batch, m, n], data };
}

function check(c: Case): void {
  const { m, n, k, transposeA, transposeB, dtype } = c;
  const aShape = [...c.batchA, ...(transposeA ? [k, m] : [m, k])];
  const bShape = [...c.batchB, ...(transposeB ? [n, k] : [k, n])];
  const av = values(aShape.reduce((x, y) => x * y, 1), c.seed, dtype);
  const bv = values(bShape.reduce((x, y) => x * y, 1), c.seed ^ 0x9e3779b9, dtype);
  const expected = naive(c, av, bv);
  mt.tidy(() => {
    const a = mt.tensor(av, aShape, { dtype }), b = mt.tensor(bv, bShape, { dtype });
    const y = a.matmul(b, { transposeA, transposeB });
    const what = `${dtype} [${aShape}]${transposeA ? 'ᵀ' : ''}·[${bShape}]${transposeB ? 'ᵀ' : ''}`;
    assert.deepEqual(y.shape, expected.shape, what);
    assert.equal(y.dtype, dtype);
    // Rounding error bound of a k-term dot product, with a safety factor of 4.
    const maxA = Math.max(0, ...av.map(Math.abs)), maxB = Math.max(0, ...bv.map(Math.abs));
    const eps = dtype === 'float32' ? 2 ** -23 : 2 ** -52;
    assertClose(y.dataSync(), expected.data, { rtol: 0, atol: k * eps * maxA * maxB * 4 + 1e-300, what });
  });
}

const odd = fc.constantFrom(1, 3, 5, 7, 33);
/** Batch shapes of rank 0–2 that broadcast together (each dim 1 on one side or equal). */
const batchPair = fc.array(fc.tuple(fc.integer({ min: 1, max: 3 }), fc.constantFrom('both', 'a1', 'b1')), { maxLength: 2 })
  .chain((dims) => fc.tuple(fc.constant(dims), fc.nat(dims.length), fc.nat(dims.length)))
  .map(([dims, dropA, dropB]) => {
    const a = dims.map(([d, w]) => (w === 'a1' ? 1 : d)), b = dims.map(([d, w]) => (w === 'b1' ? 1 : d));
    // Leading dims may be absent on either side (rank broadcasting).
    return [a.slice(Math.min(dropA, a.length)), b.slice(Math.min(dropB, b.length))] as [number[], number[]];
  });

const caseArb = fc.record({
  batch: batchPair, m: odd, n: odd, k: odd,
  transposeA: fc.boolean(), transposeB: fc.boolean(),
  dtype: fc.constantFrom<Float>('float32', 'float64'), seed: fc.integer(),
}).map(({ batch, ...rest }): Case => ({ batchA: batch[0], batchB: batch[1], ...rest }));

test('matmul equals the naive float64 triple loop: all transposes, odd sizes, broadcast batches', () => {
  fc.assert(fc.property(caseArb, check), numRuns(150));
});

/** Sizes for the packed kernel: tiles with padded edges, and k across one to two blocks. */
const packedCaseArb = fc.record({
  batch: batchPair, m: fc.constantFrom(9, 13, 32), n: fc.constantFrom(10, 15, 33), k: fc.constantFrom(17, 33, 260),
  transposeA: fc.boolean(), transposeB: fc.boolean(),
  dtype: fc.constantFrom<Float>('float32', 'float64'), seed: fc.integer(),
}).map(({ batch, ...rest }): Case => ({ batchA: batch[0], batchB: batch[1], ...rest }));

test('matmul equals the naive float64 triple loop at sizes that take the packed kernel', () => {
  fc.assert(fc.property(packedCaseArb, check), numRuns(40));
});

test('matmul: every transpose combination at sizes 1, 3, 5, 7, 33 in both dtypes', () => {
  for (const dtype of ['float32', 'float64'] as const) {
    for (const transposeA of [false, true]) {
      for (const transposeB of [false, true]) {
        for (const s of [1, 3, 5, 7, 33]) {
          check({ batchA: [], batchB: [], m: s, n: s, k: s, transposeA, transposeB, dtype, seed: s });
          // Mixed sizes: a thin side next to a packed-size one.
          check({ batchA: [], batchB: [], m: s, n: 33, k: 37 - s, transposeA, transposeB, dtype, seed: 7 * s });
        }
      }
    }
  }
});

test('matmul: the packed kernel across several k blocks, padded edges and in-place float64 output', () => {
  const cases: Partial<Case>[] = [
    { m: 10, n: 13, k: 300 },                         // two k blocks (256 + 44), padded rows and columns
    { m: 18, n: 24, k: 513 },                         // three k blocks; float64 needs no padding: in place
    { m: 40, n: 36, k: 64, batchA: [2, 1], batchB: [3] },  // broadcast batches, packed
    { m: 33, n: 8, k: 100, batchA: [3], batchB: [] }, // a matrix reused across the batch
    { m: 8, n: 5, k: 1024 },                          // skinny n: the in-place kernels
  ];
  for (const dtype of ['float32', 'float64'] as const) {
    for (const transposeA of [false, true]) {
      for (const transposeB of [false, true]) {
        for (const [i, c] of cases.entries()) {
          check({ batchA: [], batchB: [], m: 1, n: 1, k: 1, transposeA, transposeB, dtype, seed: 100 + i, ...c });
        }
      }
    }
  }
});

test('matmul: int32 products are exact in both kernels', () => {
  for (const [m, n, k] of [[3, 5, 7], [20, 20, 40]] as const) {
    const a = mt.arange(m * k).reshape([m, k]).sub(10), b = mt.arange(k * n).reshape([k, n]).sub(30);
    const av = Array.from(a.dataSync()), bv = Array.from(b.dataSync());
    const y = a.matmul(b);
    assert.equal(y.dtype, 'int32');
    const expected: number[] = [];
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) s += av[i * k + p]! * bv[p * n + j]!;
        expected.push(s);
      }
    }
    assert.deepEqual(Array.from(y.dataSync()), expected);
    mt.dispose([a, b, y]);
  }
});

test('matmul: empty dimensions give empty or zero results', () => {
  mt.tidy(() => {
    const z = mt.zeros([4, 0]).matmul(mt.zeros([0, 20]));
    assert.deepEqual(z.shape, [4, 20]);
    assert.ok(Array.from(z.dataSync()).every((v) => v === 0));
    assert.deepEqual(mt.zeros([0, 30]).matmul(mt.zeros([30, 40])).shape, [0, 40]);
    assert.deepEqual(mt.zeros([2, 0, 30, 30]).matmul(mt.zeros([30, 40])).shape, [2, 0, 30, 40]);
  });
});
