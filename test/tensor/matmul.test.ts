// matmul (2-D, batched with broadcast batch dimensions, 1-D operands as torch.matmul,
// transposeA/transposeB), against a plain-loop reference.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { broadcast, broadcastIndex, mt, numRuns, shapeArb, size, valuesArb } from '../helpers.js';
import { assertNear, broadcastShapesArb, EPS32, EPS64, FLOATS, forEachIndex, round, type FloatDType } from './ref.js';

const values = (t: mt.Tensor) => Array.from(t.dataSync());

/**
 * The batched product of a [...batchA, m, k] (or [..., k, m] when transposeA) and
 * b [...batchB, k, n] (or [..., n, k]): the exact value (float64 of exactly representable
 * products) and Σ|a·b| per element for the rounding bound.
 */
function matmulRef(a: readonly number[], aShape: readonly number[], b: readonly number[], bShape: readonly number[], tA: boolean, tB: boolean) {
  const ab = aShape.slice(0, -2), bb = bShape.slice(0, -2);
  const batch = broadcast(ab, bb)!;
  const [r0, r1] = aShape.slice(-2) as [number, number];
  const [c0, c1] = bShape.slice(-2) as [number, number];
  const m = tA ? r1 : r0, k = tA ? r0 : r1, n = tB ? c0 : c1;
  const out: number[] = [], scale: number[] = [];
  forEachIndex(batch, (bi) => {
    const aOff = broadcastIndex(bi, ab, batch) * r0 * r1, bOff = broadcastIndex(bi, bb, batch) * c0 * c1;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0, abs = 0;
        for (let p = 0; p < k; p++) {
          const x = tA ? a[aOff + p * m + i]! : a[aOff + i * k + p]!;
          const y = tB ? b[bOff + j * k + p]! : b[bOff + p * n + j]!;
          s += x * y; abs += Math.abs(x * y);
        }
        out.push(s); scale.push(abs);
      }
    }
  });
  return { values: out, scale, shape: [...batch, m, n], k };
}

function checkMatmul(y: mt.Tensor, ref: ReturnType<typeof matmulRef>, shape: readonly number[], dtype: FloatDType, what: string) {
  assert.equal(y.dtype, dtype, what);
  assert.deepEqual([...y.shape], shape, `${what} shape`);
  const eps = dtype === 'float64' ? EPS64 : EPS32;
  assertNear(y.dataSync(), ref.values.map((v) => round(dtype, v)), { atol: ref.scale.map((s) => ref.k * eps * s), what });
}

/** Deterministic values from a small LCG (independent of mixtape's generator). */
function lcgValues(n: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s >>> 8) / 2 ** 24 * 4 - 2;
  });
}

describe('matmul', () => {
  test('batched, with broadcast batch dimensions and transposeA/transposeB', () => {
    const arb = fc.tuple(broadcastShapesArb(2, 2, 3), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 5 }),
      fc.boolean(), fc.boolean()).chain(([{ shapes: [ba, bb] }, m, k, n, tA, tB]) => {
      const aShape = [...ba!, ...(tA ? [k, m] : [m, k])], bShape = [...bb!, ...(tB ? [n, k] : [k, n])];
      return fc.tuple(fc.constant({ aShape, bShape, tA, tB }), valuesArb(size(aShape)), valuesArb(size(bShape)));
    });
    fc.assert(fc.property(arb, fc.constantFrom(...FLOATS), ([{ aShape, bShape, tA, tB }, va, vb], dtype) => {
      const a = mt.tensor(va, aShape, { dtype }), b = mt.tensor(vb, bShape, { dtype });
      const ref = matmulRef(va, aShape, vb, bShape, tA, tB);
      const options = { transposeA: tA, transposeB: tB };
      const y = mt.matmul(a, b, options), z = a.matmul(b, options);
      checkMatmul(y, ref, ref.shape, dtype, `matmul [${aShape}]${tA ? 'ᵀ' : ''} [${bShape}]${tB ? 'ᵀ' : ''}`);
      assert.deepEqual(values(z), values(y));
      mt.dispose([a, b, y, z]);
    }), numRuns(50));
  });

  test('1-D operands: vector·vector is 0-d, vector·matrix and matrix·vector drop the added dimension', () => {
    const arb = fc.tuple(shapeArb(2, 3), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 5 }), fc.constantFrom('vv', 'vm', 'mv'), fc.boolean())
      .chain(([batch, k, n, kind, t]) => {
        const aShape = kind === 'vm' || kind === 'vv' ? [k] : [...batch, ...(t ? [k, n] : [n, k])];
        const bShape = kind === 'mv' || kind === 'vv' ? [k] : [...batch, ...(t ? [n, k] : [k, n])];
        return fc.tuple(fc.constant({ aShape, bShape, kind, t, batch, n }), valuesArb(size(aShape)), valuesArb(size(bShape)));
      });
    fc.assert(fc.property(arb, fc.constantFrom(...FLOATS), ([{ aShape, bShape, kind, t, batch, n }, va, vb], dtype) => {
      const a = mt.tensor(va, aShape, { dtype }), b = mt.tensor(vb, bShape, { dtype });
      // The reference promotes the vector to [1, k] / [k, 1] as torch.matmul does.
      const a2 = kind === 'mv' ? aShape : [1, aShape[0]!], b2 = kind === 'vm' ? bShape : [bShape[0]!, 1];
      const tA = kind === 'mv' && t, tB = kind === 'vm' && t;
      const ref = matmulRef(va, kind === 'mv' ? aShape : a2, vb, kind === 'vm' ? bShape : b2, tA, tB);
      const y = mt.matmul(a, b, { transposeA: tA, transposeB: tB });
      const shape = kind === 'vv' ? [] : [...batch, n];
      checkMatmul(y, ref, shape, dtype, `matmul ${kind} [${aShape}] [${bShape}]`);
      mt.dispose([a, b, y]);
    }), numRuns(50));
  });

  test('every kernel path (thin, short inner dimension, few rows, packed) with odd sizes, batches and transposes', () => {
    // Sizes straddle each kernel choice (src/backends/cpu/matmul/choose-kernel.ts):
    // m < 8 / < 96 / ≥ 96, n < 8, k < 16 / < 96 / > 256 (one KC block), and tile remainders
    // of 3 rows and 4 columns.
    const dim = (max: number) => fc.oneof(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 10, max: max }));
    const arb = fc.record({ batch: fc.integer({ min: 1, max: 2 }), m: dim(110), n: dim(40), k: dim(300), tA: fc.boolean(), tB: fc.boolean() })
      .chain((c) => {
        const aShape = [c.batch, ...(c.tA ? [c.k, c.m] : [c.m, c.k])], bShape = c.tB ? [c.n, c.k] : [c.k, c.n];
        return fc.tuple(fc.constant({ ...c, aShape, bShape }), fc.constantFrom(...FLOATS));
      });
    let seed = 10;
    fc.assert(fc.property(arb, ([{ aShape, bShape, tA, tB }, dtype]) => {
      const va = lcgValues(size(aShape), seed++).map((v) => round(dtype, v)), vb = lcgValues(size(bShape), seed++).map((v) => round(dtype, v));
      const a = mt.tensor(va, aShape, { dtype }), b = mt.tensor(vb, bShape, { dtype });
      const ref = matmulRef(va, aShape, vb, bShape, tA, tB);
      const y = mt.matmul(a, b, { transposeA: tA, transposeB: tB });
      checkMatmul(y, ref, ref.shape, dtype, `matmul [${aShape}]${tA ? 'ᵀ' : ''} [${bShape}]${tB ? 'ᵀ' : ''} ${dtype}`);
      mt.dispose([a, b, y]);
    }), numRuns(60));
  });

  test('sizes that cross the kernel blocking (k = 300, odd m and n) in every transpose combination', () => {
    const m = 9, k = 300, n = 7;
    for (const dtype of FLOATS) {
      for (const tA of [false, true]) {
        for (const tB of [false, true]) {
          const aShape = tA ? [k, m] : [m, k], bShape = tB ? [n, k] : [k, n];
          const va = lcgValues(m * k, 1).map((v) => round(dtype, v)), vb = lcgValues(k * n, 2).map((v) => round(dtype, v));
          const y = mt.matmul(mt.tensor(va, aShape, { dtype }), mt.tensor(vb, bShape, { dtype }), { transposeA: tA, transposeB: tB });
          checkMatmul(y, matmulRef(va, aShape, vb, bShape, tA, tB), [m, n], dtype, `[${aShape}]·[${bShape}] ${dtype}`);
        }
      }
    }
    // A batch of 3 against a shared right operand, float64, m and n multiples of 4.
    const va = lcgValues(3 * 8 * 20, 3), vb = lcgValues(20 * 12, 4);
    const y = mt.matmul(mt.tensor(va, [3, 8, 20], { dtype: 'float64' }), mt.tensor(vb, [20, 12], { dtype: 'float64' }));
    checkMatmul(y, matmulRef(va, [3, 8, 20], vb, [20, 12], false, false), [3, 8, 12], 'float64', 'batched 8×20·20×12');
  });

  test('a hand-checked product', () => {
    const a = mt.tensor([[1, 2, 3], [4, 5, 6]], { dtype: 'float64' }), b = mt.tensor([[7, 8], [9, 10], [11, 12]], { dtype: 'float64' });
    assert.deepEqual(a.matmul(b).toArray(), [[58, 64], [139, 154]]);
    assert.deepEqual(b.matmul(a, { transposeA: true, transposeB: true }).toArray(), [[58, 139], [64, 154]]);
    assert.equal(mt.matmul(mt.tensor([1, 2, 3]), mt.tensor([4, 5, 6])).item(), 32);
    const k0 = mt.matmul(mt.zeros([2, 0]), mt.zeros([0, 3]));
    assert.deepEqual(k0.toArray(), [[0, 0, 0], [0, 0, 0]], 'an empty inner dimension gives zeros');
  });
});
