// The CPU matmul's kernel choice (src/backends/cpu/matmul/choose-kernel.ts) and the
// precision its table documents: which scalar kernels sum a float32 result in float64 and
// round it once, which one (rows-b) accumulates in float32, and that the SIMD kernels
// (the default for products of at least 4096 multiply-adds) accumulate in float32.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { chooseMatmulKernel, type MatmulKernel } from '../../src/backends/cpu/matmul/matmul.js';
import { mt } from '../helpers.js';

interface Product { what: string; m: number; n: number; k: number; tA?: boolean; tB?: boolean }

test('chooseMatmulKernel: the kernel for each representative shape, as the table says', () => {
  const table: [Product, MatmulKernel][] = [
    [{ what: 'gate logits x·W_g at E = 4, [200×300]·[300×4]', m: 200, n: 4, k: 300 }, 'rows-b'],
    [{ what: 'their weight gradient xᵀ·dy', m: 300, n: 4, k: 200, tA: true }, 'rows-b'],
    [{ what: 'their input gradient dy·W_gᵀ', m: 200, n: 300, k: 4, tB: true }, 'dot-bt'],
    [{ what: 'gate logits at E = 8', m: 200, n: 8, k: 300 }, 'packed'],
    [{ what: 'matrix·vector', m: 64, n: 1, k: 256 }, 'rows-b'],
    [{ what: 'vector·matrix', m: 1, n: 64, k: 256 }, 'in-place'],
    [{ what: 'an expert x·Wᵀ over 8 rows', m: 8, n: 512, k: 256, tB: true }, 'in-place'],
    [{ what: 'an expert dy·W over 8 rows', m: 8, n: 256, k: 512 }, 'in-place'],
    [{ what: "an expert's weight gradient dyᵀ·x over 8 examples", m: 512, n: 256, k: 8, tA: true }, 'in-place'],
    [{ what: 'an expert-sized 32×256·256×512', m: 32, n: 512, k: 256 }, 'in-place'],
    [{ what: 'square 512 A·B', m: 512, n: 512, k: 512 }, 'packed'],
    [{ what: 'square 512 A·Bᵀ', m: 512, n: 512, k: 512, tB: true }, 'packed'],
    [{ what: 'square 512 Aᵀ·B', m: 512, n: 512, k: 512, tA: true }, 'packed'],
    [{ what: 'a short inner dimension', m: 100, n: 50, k: 4 }, 'small-k'],
    [{ what: 'a thin A·Bᵀ', m: 200, n: 4, k: 300, tB: true }, 'dot-bt'],
    [{ what: 'the in-place row limit: 95 rows', m: 95, n: 64, k: 64 }, 'in-place'],
    [{ what: 'the in-place row limit: 96 rows', m: 96, n: 64, k: 64 }, 'packed'],
    [{ what: 'Aᵀ·B at k = 95 (in place) ...', m: 200, n: 64, k: 95, tA: true }, 'in-place'],
    [{ what: '... and at k = 96 (packed)', m: 200, n: 64, k: 96, tA: true }, 'packed'],
    [{ what: 'the corner m ≥ 96, n ≥ 8, m·n·k < 24³', m: 96, n: 8, k: 16 }, 'rows-b'],
  ];
  for (const [{ what, m, n, k, tA = false, tB = false }, kernel] of table) {
    assert.equal(chooseMatmulKernel(m, n, k, tA, tB), kernel, what);
  }
});

/** float32(Σ a·b) from one float64 sum, and the sum with a float32 round after every step. */
function references(a: readonly number[], b: readonly number[]): { once: number; stepwise: number } {
  let s64 = 0, s32 = 0;
  for (let p = 0; p < a.length; p++) {
    s64 += a[p]! * b[p]!;
    s32 = Math.fround(s32 + a[p]! * b[p]!);
  }
  return { once: Math.fround(s64), stepwise: s32 };
}

/**
 * C = op(A)·op(B) in float32 with every row of A given by `row` (length k) and every
 * column of B by `col`, laid out as the transposes say; returns C's values.
 */
function product({ m, n, k, tA = false, tB = false }: Product, row: (p: number) => number, col: (p: number, j: number) => number): Float32Array {
  const a = new Float32Array(m * k), b = new Float32Array(k * n);
  for (let i = 0; i < m; i++) for (let p = 0; p < k; p++) a[tA ? p * m + i : i * k + p] = row(p);
  for (let p = 0; p < k; p++) for (let j = 0; j < n; j++) b[tB ? j * k + p : p * n + j] = col(p, j);
  return mt.tidy(() => {
    const A = mt.tensor(a, tA ? [k, m] : [m, k]), B = mt.tensor(b, tB ? [n, k] : [k, n]);
    return A.matmul(B, { transposeA: tA, transposeB: tB }).dataSync() as Float32Array;
  });
}

// One shape per kernel (odd sizes, so edge tiles and tails are covered), and what the
// choose-kernel.ts table says about its float32 accumulation.
const PER_KERNEL: [Product, MatmulKernel, 'float64' | 'float32'][] = [
  [{ what: 'packed, two k blocks, padded edges', m: 100, n: 21, k: 300 }, 'packed', 'float64'],
  [{ what: 'packed Aᵀ·Bᵀ', m: 100, n: 21, k: 300, tA: true, tB: true }, 'packed', 'float64'],
  [{ what: 'in-place A·B, 2 tail rows, 2 tail columns', m: 8, n: 66, k: 300 }, 'in-place', 'float64'],
  [{ what: 'in-place A·Bᵀ, 1 tail row', m: 7, n: 64, k: 300, tB: true }, 'in-place', 'float64'],
  [{ what: 'in-place Aᵀ·B', m: 64, n: 16, k: 90, tA: true }, 'in-place', 'float64'],
  [{ what: 'dot-bt', m: 200, n: 5, k: 300, tB: true }, 'dot-bt', 'float64'],
  [{ what: 'small-k', m: 101, n: 50, k: 15 }, 'small-k', 'float64'],
  [{ what: 'rows-b: gate logits at E = 4', m: 200, n: 4, k: 300 }, 'rows-b', 'float32'],
  [{ what: 'rows-b: Aᵀ·B, 3 columns', m: 201, n: 3, k: 300, tA: true }, 'rows-b', 'float32'],
];

// The scalar kernels' claims are checked with SIMD off; the SIMD path's at the end.
const simdBefore = mt.backendInfo().simd === true;
before(() => mt.setBackend('cpu', { simd: false }));
after(() => mt.setBackend('cpu', { simd: simdBefore }));

test('float32 matmul: every kernel but rows-b sums in float64 and rounds once; rows-b accumulates in float32', () => {
  // A row [1, 2⁻²⁴, 2⁻²⁴, ...] against a column of ones: in float64 every partial sum is
  // exact (whatever the order or blocking), so rounding once gives 1 + (k-1)·2⁻²⁴ to the
  // nearest float32; in float32, 1 + 2⁻²⁴ rounds back to 1 at every step and the sum stays 1.
  for (const [shape, kernel, accumulation] of PER_KERNEL) {
    const { m, n, k, tA = false, tB = false, what } = shape;
    assert.equal(chooseMatmulKernel(m, n, k, tA, tB), kernel, what);
    const row = (p: number) => (p === 0 ? 1 : 2 ** -24);
    const { once, stepwise } = references(Array.from({ length: k }, (_, p) => row(p)), new Array<number>(k).fill(1));
    assert.notEqual(once, stepwise, `${what}: the two accumulations must differ for the test to mean anything`);
    const expected = accumulation === 'float64' ? once : stepwise;
    const c = product(shape, row, () => 1);
    const wrong = c.findIndex((v) => v !== expected);
    assert.equal(wrong, -1, `${what} (${kernel}): entry ${wrong} is ${c[wrong]}, expected ${expected} (${accumulation} accumulation)`);
  }
});

test('float32 gate logits [200×300]·[300×4] (rows-b) equal float32 step-by-step sums exactly, not float64 ones', () => {
  assert.equal(chooseMatmulKernel(200, 4, 300, false, false), 'rows-b');
  const x = mt.randn([200, 300], { generator: new mt.Generator(1) }), w = mt.randn([300, 4], { generator: new mt.Generator(2) });
  const xv = x.dataSync(), wv = w.dataSync();
  const c = mt.tidy(() => x.matmul(w).dataSync());
  let differFromOnce = 0;
  for (let i = 0; i < 200; i++) {
    for (let j = 0; j < 4; j++) {
      const a = Array.from(xv.subarray(i * 300, (i + 1) * 300)), b = Array.from({ length: 300 }, (_, p) => wv[p * 4 + j]!);
      const { once, stepwise } = references(a, b);
      assert.equal(c[i * 4 + j], stepwise, `C[${i}, ${j}]`);
      if (stepwise !== once) differFromOnce++;
    }
  }
  console.log(`# gate logits: ${differFromOnce} of 800 entries differ from float32(float64 sum)`);
  assert.ok(differFromOnce > 400, `float32 accumulation shows in most entries (${differFromOnce} of 800)`);
  mt.dispose([x, w]);
});

test('with SIMD (the default), float32 products of at least 4096 multiply-adds accumulate in float32, in k order', (t) => {
  if (!simdBefore) { t.skip(`WebAssembly SIMD is not available here: ${String(mt.backendInfo().simdReason)}`); return; }
  mt.setBackend('cpu', { simd: true });
  try {
    for (const [shape] of PER_KERNEL) {
      const { m, n, k, what } = shape;
      if (m * n * k < 4096) continue;
      const row = (p: number) => (p === 0 ? 1 : 2 ** -24);
      const { stepwise } = references(Array.from({ length: k }, (_, p) => row(p)), new Array<number>(k).fill(1));
      const c = product(shape, row, () => 1);
      const wrong = c.findIndex((v) => v !== stepwise);
      assert.equal(wrong, -1, `${what} on SIMD: entry ${wrong} is ${c[wrong]}, expected the float32 step-by-step sum ${stepwise}`);
    }
  } finally {
    mt.setBackend('cpu', { simd: false });
  }
});
