// groupedMatmul (src/tensor/ops/fused.ts): an MoE layer's expert products as one op over row
// segments. Each segment equals its own matmul, forward and backward; the CPU's one kernel
// (SIMD, over its threads) gives the same bits for any thread count; a backend without the
// kernel composes split → matmul → concat; float64 gradients pass gradcheck and gradgradcheck.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { groupedMatmul, groupedWeightGrads, segmentSums } from '../../src/tensor/ops/fused.js';
import { getBackend } from '../../src/tensor/engine.js';
import { assertClose, mt, numRuns } from '../helpers.js';
import { useUnfusedCpu } from './unfused-cpu.js';

const bits = (t: mt.Tensor) => Array.from(t.dataSync());

interface Case { sizes: number[]; k: number; n: number; transposeB: boolean; seed: number; bias?: boolean; relu?: boolean }

/** y = groupedMatmul(x, w, sizes) (or the per-segment matmuls), loss Σ y·r; values and gradients. */
function run(c: Case, dtype: 'float32' | 'float64', grouped: boolean) {
  mt.manualSeed(c.seed);
  const M = c.sizes.reduce((a, b) => a + b, 0);
  const x = mt.randn([M, c.k], { dtype }).requiresGrad_();
  const ws = c.sizes.map(() => mt.randn(c.transposeB ? [c.n, c.k] : [c.k, c.n], { dtype }).requiresGrad_());
  const bs = c.bias ? c.sizes.map(() => mt.randn([c.n], { dtype }).requiresGrad_()) : null;
  const r = mt.randn([M, c.n], { dtype });
  let y: mt.Tensor;
  if (grouped) y = groupedMatmul(x, ws, c.sizes, { transposeB: c.transposeB, ...(bs ? { biases: bs } : {}), relu: c.relu === true });
  else {
    const parts = mt.split(x, c.sizes, 0);
    y = mt.concat(parts.map((p, e) => { const z = mt.matmul(p, ws[e]!, { transposeB: c.transposeB }); return bs ? z.add(bs[e]!) : z; }), 0);
    if (c.relu) y = mt.relu(y);
  }
  y.mul(r).sum().backward();
  return { y: bits(y), dx: bits(x.grad!), dws: ws.map((w) => bits(w.grad!)), dbs: bs ? bs.map((b) => bits(b.grad!)) : [] };
}

const caseArb = (maxRows: number, maxDim: number) => fc.record({
  sizes: fc.array(fc.integer({ min: 0, max: maxRows }), { minLength: 1, maxLength: 6 }).filter((s) => s.some((m) => m > 0)),
  k: fc.integer({ min: 1, max: maxDim }), n: fc.integer({ min: 1, max: maxDim }),
  transposeB: fc.boolean(), seed: fc.integer({ min: 0, max: 1e6 }), bias: fc.boolean(), relu: fc.boolean(),
});

for (const dtype of ['float32', 'float64'] as const) {
  test(`groupedMatmul (${dtype}): each segment is its own matmul, forward and backward (empty segments included)`, () => {
    fc.assert(fc.property(caseArb(13, 21), (c) => {
      const got = run(c, dtype, true), want = run(c, dtype, false);
      const tol = dtype === 'float64' ? { rtol: 1e-12, atol: 1e-12 } : { rtol: 2e-5, atol: 2e-5 };
      assertClose(got.y, want.y, { ...tol, what: 'y' });
      assertClose(got.dx, want.dx, { ...tol, what: 'dx' });
      got.dws.forEach((d, e) => assertClose(d, want.dws[e]!, { ...tol, what: `dw[${e}]` }));
      // A segment's bias gradient is its rows of dy summed as sum(·, 0) sums them: the same bits.
      assert.deepEqual(got.dbs, want.dbs);
    }), numRuns(25));
  });
}

test('groupedMatmul on the SIMD path: bit-equal to matmul where matmul takes the SIMD path too (every segment ≥ 4096 multiply-adds)', () => {
  fc.assert(fc.property(fc.record({
    sizes: fc.array(fc.integer({ min: 8, max: 40 }), { minLength: 1, maxLength: 5 }),
    k: fc.integer({ min: 24, max: 64 }), n: fc.integer({ min: 24, max: 70 }), transposeB: fc.boolean(), seed: fc.integer({ min: 0, max: 1e6 }), bias: fc.boolean(), relu: fc.boolean(),
  }), (c) => {
    for (const dtype of ['float32', 'float64'] as const) {
      const got = run(c, dtype, true), want = run(c, dtype, false);
      assert.deepEqual(got.y, want.y);
      assert.deepEqual(got.dx, want.dx);
      assert.deepEqual(got.dws, want.dws);
      assert.deepEqual(got.dbs, want.dbs);
    }
  }), numRuns(10));
});

test('groupedMatmul with relu: relu(·)\'s bits (NaN kept, -0 and negatives to +0, infinities) on the SIMD path, the scalar one and the composition, with and without biases; its gradient masks where the output is > 0', () => {
  const M = 24, k = 32, n = 36, sizes = [10, 0, 14];
  for (const simd of [true, false]) {
    mt.setBackend('cpu', { simd });
    for (const dtype of ['float32', 'float64'] as const) {
      mt.manualSeed(3);
      // Rows of zeros (products ±0), a NaN, infinities and large values among random ones.
      const xv = Array.from(mt.randn([M, k], { dtype }).dataSync());
      for (let j = 0; j < k; j++) { xv[2 * k + j] = 0; xv[15 * k + j] = 0; }
      xv[5 * k + 3] = NaN; xv[7 * k + 1] = Infinity; xv[20 * k + 4] = -Infinity; xv[9 * k] = 1e30;
      const x = mt.tensor(xv, [M, k], { dtype }).requiresGrad_();
      const ws = sizes.map(() => mt.randn([n, k], { dtype }).requiresGrad_());
      const bv = sizes.map(() => Array.from(mt.randn([n], { dtype }).dataSync()).map((v, j) => (j % 5 === 0 ? -0 : j % 5 === 1 ? 0 : v)));
      for (const withBias of [true, false]) {
        const biases = withBias ? bv.map((b) => mt.tensor(b, [n], { dtype }).requiresGrad_()) : undefined;
        const y = groupedMatmul(x, ws, sizes, { transposeB: true, ...(biases ? { biases } : {}), relu: true });
        const z = mt.noGrad(() => groupedMatmul(x, ws, sizes, { transposeB: true, ...(biases ? { biases } : {}) }));
        const want = mt.relu(z);
        const same = Array.from(y.dataSync()).every((v, i) => Object.is(v, want.dataSync()[i]));
        assert.ok(same, `${dtype} simd=${simd} bias=${withBias}: relu's bits`);
        assert.ok(Array.from(y.dataSync()).some((v) => Number.isNaN(v)) && Array.from(y.dataSync()).some((v) => v === Infinity), 'the case holds a NaN and an infinity');
        // The gradient: groupedMatmul's of dy · (output > 0).
        const r = mt.randn([M, n], { dtype });
        for (const w of ws) w.grad = null;
        y.mul(r).sum().backward();
        const dws = ws.map((w) => bits(w.grad!));
        const mask = mt.greater(z, 0).cast(dtype);
        for (const w of ws) w.grad = null;
        const y2 = groupedMatmul(x, ws, sizes, { transposeB: true, ...(biases ? { biases } : {}) });
        y2.mul(r.mul(mask)).sum().backward();
        assert.deepEqual(dws, ws.map((w) => bits(w.grad!)), `${dtype} simd=${simd} bias=${withBias}: gradients`);
        x.grad = null;
      }
    }
  }
  mt.setBackend('cpu', { simd: true });
});

test('groupedWeightGrads on the SIMD path: segments read in place (≤ 512 rows, rows of MR elements included) and packed (more rows) give matmul(aᵀ, b)\'s bits (every segment ≥ 4096 multiply-adds, where matmul runs SIMD too)', () => {
  for (const dtype of ['float32', 'float64'] as const) {
    const mr = dtype === 'float32' ? 4 : 2;
    for (const [sizes, p, q] of [[[600, 130, 0, 512, 513], 24, 20], [[130, 40], mr, 40], [[77], mr + 1, 33]] as [number[], number, number][]) {
      mt.manualSeed(sizes.length + p);
      const M = sizes.reduce((x, y) => x + y, 0);
      const a = mt.randn([M, p], { dtype }).mul(mt.randn([M, 1], { dtype }).exp().mul(30)), b = mt.randn([M, q], { dtype });
      const got = groupedWeightGrads(a, b, sizes).map(bits);
      const as = mt.split(a, sizes, 0), bs = mt.split(b, sizes, 0);
      const want = as.map((s, e) => bits(mt.matmul(s, bs[e]!, { transposeA: true })));
      assert.deepEqual(got, want, `${dtype} sizes ${sizes} a [${M}, ${p}] b [${M}, ${q}]`);
    }
  }
});

test('groupedWeightGrads with sums: the weight gradients unchanged, and the sums of a or b are segmentSums\' bits (float64 sums in row order), on the SIMD path and the scalar one, empty segments and odd widths included', () => {
  fc.assert(fc.property(fc.record({
    sizes: fc.array(fc.integer({ min: 0, max: 40 }), { minLength: 1, maxLength: 5 }).filter((s) => s.some((m) => m >= 8)),
    p: fc.integer({ min: 20, max: 70 }), q: fc.integer({ min: 20, max: 70 }), seed: fc.integer({ min: 0, max: 1e6 }),
  }), (c) => {
    for (const simd of [true, false]) {
      mt.setBackend('cpu', { simd });
      for (const dtype of ['float32', 'float64'] as const) {
        mt.manualSeed(c.seed);
        const M = c.sizes.reduce((x, y) => x + y, 0);
        // Values of mixed magnitudes, so that a float32 running sum would round differently.
        const a = mt.randn([M, c.p], { dtype }).mul(mt.randn([M, 1], { dtype }).exp().mul(30));
        const b = mt.randn([M, c.q], { dtype }).mul(mt.randn([1, c.q], { dtype }).exp().mul(30));
        const plain = groupedWeightGrads(a, b, c.sizes).map(bits);
        for (const of of ['a', 'b'] as const) {
          const got = groupedWeightGrads(a, b, c.sizes, { sums: of });
          assert.equal(got.length, 2 * c.sizes.length);
          assert.deepEqual(got.slice(0, c.sizes.length).map(bits), plain, `${dtype} simd=${simd} sums of ${of}: weight gradients`);
          assert.deepEqual(got.slice(c.sizes.length).map(bits), segmentSums(of === 'a' ? a : b, c.sizes).map(bits), `${dtype} simd=${simd} sums of ${of}`);
        }
      }
    }
    mt.setBackend('cpu', { simd: true });
  }), numRuns(10));
  assert.throws(() => groupedWeightGrads(mt.zeros([4, 2]), mt.zeros([4, 3]), [4], { sums: 'c' as 'a' }), /groupedWeightGrads: sums must be 'a' or 'b', got c/);
});

test('groupedMatmul: bit-identical results on 1 and 2 threads (a job big enough to be split; with biases and relu, written in place or copied out of padded panels), and the worker took chunks of it', { timeout: 120_000 }, async () => {
  for (const c of [
    { sizes: [300, 0, 260, 200, 264], k: 256, n: 512, transposeB: true, seed: 7, bias: true },
    { sizes: [300, 0, 260, 200, 264], k: 256, n: 512, transposeB: true, seed: 9, bias: true, relu: true },
    { sizes: [301, 0, 259, 203, 264], k: 256, n: 500, transposeB: false, seed: 8, relu: true },
  ] satisfies Case[]) await oneAndTwoThreads(c);
});

async function oneAndTwoThreads(c: Case): Promise<void> {
  mt.setBackend('cpu', { threads: 1 });
  const one = run(c, 'float32', true);
  mt.setBackend('cpu', { threads: 2 });
  const info = mt.backendInfo();
  if (info.threads !== 2) {
    console.log(`# skipped the 2-thread half: ${String(info.threadsReason)}`);
  } else {
    // Workers boot in ~100 ms (longer on a busy machine): until one has taken chunks of a
    // grouped job, the main thread takes them all.
    const workerChunks = () => (mt.backendInfo().chunksByThread as number[])[1] ?? 0;
    const start = Date.now();
    for (;;) {
      const before = workerChunks();
      const two = run(c, 'float32', true);
      assert.deepEqual(two.y, one.y);
      assert.deepEqual(two.dx, one.dx);
      assert.deepEqual(two.dws, one.dws);
      assert.deepEqual(two.dbs, one.dbs);
      if (workerChunks() > before) break;
      if (Date.now() - start > 60_000) assert.fail('the worker took no chunk of a grouped job within 60 s');
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  mt.setBackend('cpu', { threads: 1, simd: false });
  const scalar = run(c, 'float32', true);
  mt.setBackend('cpu', { simd: true });
  assertClose(scalar.y, one.y, { rtol: 1e-4, atol: 1e-4, what: 'scalar vs SIMD' });
}

test('groupedMatmul records one node on the CPU, composes split → matmul → concat where the backend has no kernel; float64 gradcheck and gradgradcheck', () => {
  const sizes = [2, 0, 3, 1];
  const x = mt.randn([6, 3], { dtype: 'float64' }).requiresGrad_();
  const ws = sizes.map(() => mt.randn([4, 3], { dtype: 'float64' }).requiresGrad_());
  assert.equal(getBackend().supports?.('groupedMatmul'), true);
  const y = groupedMatmul(x, ws, sizes, { transposeB: true });
  assert.equal(y.gradFn, 'groupedMatmul');
  const f = (...t: mt.Tensor[]) => groupedMatmul(t[0]!, t.slice(1), sizes, { transposeB: true });
  assert.ok(mt.gradcheck(f, [x, ...ws]));
  assert.ok(mt.gradgradcheck(f, [x, ...ws]));
  const g = (...t: mt.Tensor[]) => groupedMatmul(t[0]!, t.slice(1).map((w) => w.transpose(0, 1)), sizes);
  assert.ok(mt.gradcheck(g, [x, ...ws]));
  // With biases: one node; gradients of the biases too, and of gradients.
  const bs = sizes.map(() => mt.randn([4], { dtype: 'float64' }).requiresGrad_());
  const fb = (...t: mt.Tensor[]) => groupedMatmul(t[0]!, t.slice(1, 5), sizes, { transposeB: true, biases: t.slice(5) });
  assert.equal(fb(x, ...ws, ...bs).gradFn, 'groupedMatmul');
  assert.ok(mt.gradcheck(fb, [x, ...ws, ...bs]));
  assert.ok(mt.gradgradcheck(fb, [x, ...ws, ...bs]));
  const expected = bits(y);
  useUnfusedCpu();
  const x2 = mt.tensor(bits(x), [6, 3], { dtype: 'float64', requiresGrad: true });
  const ws2 = ws.map((w) => mt.tensor(bits(w), [4, 3], { dtype: 'float64', requiresGrad: true }));
  const composed = groupedMatmul(x2, ws2, sizes, { transposeB: true });
  assert.equal(composed.gradFn, 'concat');
  assertClose(bits(composed), expected, { what: 'composed vs kernel' });
  assert.ok(mt.gradcheck(f, [x2, ...ws2]));
});

test('groupedMatmul: bad input names the op, the argument and the shapes', () => {
  const x = mt.zeros([5, 3]), w = mt.zeros([4, 3]);
  assert.throws(() => groupedMatmul(x, [w, w], [2, 2], { transposeB: true }), /groupedMatmul: sizes sum to 4, but x has 5 rows/);
  assert.throws(() => groupedMatmul(x, [w], [2, 3], { transposeB: true }), /groupedMatmul: expected 2 weights \(one per segment\), got 1/);
  assert.throws(() => groupedMatmul(x, [w, mt.zeros([4, 2])], [2, 3], { transposeB: true }), /groupedMatmul: weights\[1\] must be float32 \[4, 3\] \(x is \[5, 3\], transposeB\), got float32 \[4, 2\]/);
  assert.throws(() => groupedMatmul(x, [w, w], [2, -1, 4] as number[], { transposeB: true }), /groupedMatmul: sizes must be a non-empty array of non-negative integers/);
  assert.throws(() => groupedMatmul(mt.zeros([5]), [w], [5]), /groupedMatmul: x must be \[M, k\], got \[5\]/);
  assert.throws(() => groupedMatmul(x, [w, w], [2, 3]), /groupedMatmul: weights\[0\] must be float32 \[3, 3\] \(x is \[5, 3\]\), got float32 \[4, 3\]/);
  assert.throws(() => groupedMatmul(x, [w, w], [2, 3], { transposeB: true, biases: [mt.zeros([4])] }), /groupedMatmul: expected 2 biases \(one per segment\), got 1/);
  assert.throws(() => groupedMatmul(x, [w, w], [2, 3], { transposeB: true, biases: [mt.zeros([4]), mt.zeros([3])] }), /groupedMatmul: biases\[1\] must be float32 \[4\], got float32 \[3\]/);
});

test('groupedMatmul with tensors in the wasm memory (read and written in place) gives the bits of ordinary arrays (copied in and out), forward and backward', async () => {
  if (mt.backendInfo().simd !== true) { console.log(`# skipped: no SIMD engine here (${String(mt.backendInfo().simdReason)})`); return; }
  if (mt.backendInfo().tensorsInWasmMemory !== true) { console.log('# skipped: tensors are not placed in the wasm memory here (it is not shared)'); return; }
  const { cpuPool } = await import('../../src/backends/cpu/pool.js');
  const saved = cpuPool.heapMinBytes;
  const info = () => mt.backendInfo() as unknown as { inPlaceOperands: number };
  try {
    fc.assert(fc.property(caseArb(40, 48), fc.constantFrom<'float32' | 'float64'>('float32', 'float64'), (c, dtype) => {
      cpuPool.heapMinBytes = Number.POSITIVE_INFINITY;
      const copied = run(c, dtype, true);
      cpuPool.heapMinBytes = 64;
      const before = info().inPlaceOperands;
      const inPlace = run(c, dtype, true);
      assert.deepEqual(inPlace, copied, JSON.stringify({ ...c, dtype }));
      const M = c.sizes.reduce((a, b) => a + b, 0);
      if (M * c.k * c.n >= 4096) assert.ok(info().inPlaceOperands > before, 'the products read operands in place');
    }), numRuns(60));
  } finally {
    cpuPool.heapMinBytes = saved;
  }
});

test('groupedMatmul keeps weights resident in the wasm memory: the backward finds the forward\'s copies, and a new tensor on a reused buffer is never served stale values', async () => {
  if (mt.backendInfo().simd !== true) { console.log(`# skipped: no SIMD engine here (${String(mt.backendInfo().simdReason)})`); return; }
  // Weights that are ordinary arrays (not tensors in the wasm memory, which are read in place).
  const { cpuPool } = await import('../../src/backends/cpu/pool.js');
  const saved = cpuPool.heapMinBytes;
  cpuPool.heapMinBytes = Number.POSITIVE_INFINITY;
  try {
    const sizes = [40, 0, 33, 51], M = 124, k = 64, n = 96;
    const x = mt.randn([M, k]);
    const fresh = () => sizes.map(() => mt.randn([n, k]));
    const perSegment = (ws: mt.Tensor[]) => bits(mt.concat(mt.split(x, sizes, 0).map((p, e) => mt.matmul(p, ws[e]!, { transposeB: true })), 0));
    const info = () => mt.backendInfo() as unknown as { residentHits: number; residentCopies: number };
    const ws = fresh();
    const before = info();
    assert.deepEqual(bits(groupedMatmul(x, ws, sizes, { transposeB: true })), perSegment(ws));
    // The same weights again (as the backward multiplies by them): found, not copied.
    const mid = info();
    assert.deepEqual(bits(groupedMatmul(x, ws, sizes, { transposeB: true })), perSegment(ws));
    const after = info();
    assert.equal(mid.residentCopies - before.residentCopies, 3, 'the three experts with rows were copied in once');
    assert.equal(after.residentHits - mid.residentHits, 3, 'and found resident the second time');
    assert.equal(after.residentCopies, mid.residentCopies);
    // Freed weights' buffers go back to the pool and come out again under new tensors with other
    // values: those must be copied in, not taken for the old ones.
    for (let round = 0; round < 3; round++) {
      mt.dispose(ws.splice(0));
      ws.push(...fresh());
      assert.deepEqual(bits(groupedMatmul(x, ws, sizes, { transposeB: true })), perSegment(ws));
    }
  } finally {
    cpuPool.heapMinBytes = saved;
  }
});

test('grouped weight gradients left running (overlapJobs, 2 threads): reads wait for them, and their operands\' blocks are not reused before they are done', { timeout: 120_000 }, async () => {
  mt.setBackend('cpu', { threads: 2 });
  const info = () => mt.backendInfo() as { threads?: number; threadsReason?: string; jobsLeftRunning?: number; chunksByThread?: number[] };
  if (info().threads !== 2) { console.log(`# skipped: no second thread here (${String(info().threadsReason)})`); return; }
  const be = getBackend();
  const sizes = [300, 0, 260, 200, 264], M = 1024, p = 512, q = 256;
  mt.manualSeed(11);
  const make = () => [mt.randn([M, p]), mt.randn([M, q])] as const;
  const [a0, b0] = make();
  const want = groupedWeightGrads(a0, b0, sizes, { sums: 'a' }).map(bits);
  const start = Date.now();
  for (;;) {
    const worker = () => info().chunksByThread?.[1] ?? 0;
    const [left, took] = [info().jobsLeftRunning ?? 0, worker()];
    // Both ways to read a result wait for the job: a kernel's operand (cpu-backend.ts data) and readSync.
    for (const read of [(t: mt.Tensor) => bits(t.mul(1)), bits]) {
      // Operands of their own storage (x·1 is x exactly), freed while the job runs.
      const [a, b] = [a0.mul(1), b0.mul(1)];
      const got = be.overlapJobs!(() => {
        const grads = groupedWeightGrads(a, b, sizes, { sums: 'a' });
        // The operands freed and blocks of their size taken and overwritten at once: were the
        // blocks handed out again while the job runs, the job would read these values.
        a.dispose(); b.dispose();
        const [c, d] = [mt.full([M, p], 7), mt.full([M, q], -3)];
        const values = grads.map(read);
        c.dispose(); d.dispose();
        return values;
      });
      assert.deepEqual(got, want);
    }
    assert.equal(info().jobsLeftRunning, left + 2, 'the jobs were left running');
    if (worker() > took) break;
    if (Date.now() - start > 60_000) assert.fail('the worker took no chunk of a job left running within 60 s');
    await new Promise((r) => setTimeout(r, 20));
  }
  // Outside overlapJobs nothing is left running.
  const left = info().jobsLeftRunning;
  groupedWeightGrads(a0, b0, sizes);
  assert.equal(info().jobsLeftRunning, left);
  mt.setBackend('cpu', { threads: 1 });
});

test('a product too small to split, left running inside overlapJobs (2 threads, nothing else running): reads wait for it, its operands\' blocks are not reused before it is done, every layout gives the bits of the product run at once, and one job at a time', { timeout: 120_000 }, async () => {
  mt.setBackend('cpu', { threads: 2 });
  const info = () => mt.backendInfo() as { threads?: number; threadsReason?: string; productsLeftRunning?: number; chunksByThread?: number[] };
  if (info().threads !== 2) { console.log(`# skipped: no second thread here (${String(info().threadsReason)})`); return; }
  const be = getBackend();
  mt.manualSeed(12);
  // 2.3M–3.7M multiply-adds: at least ASYNC_MACS, below THREAD_MACS. 10 and 13 columns are not
  // whole 8-column panels, so the result is copied out when the job is joined.
  const cases = [
    { a: mt.randn([900, 256]), b: mt.randn([256, 10]), options: {} },
    { a: mt.randn([256, 900]), b: mt.randn([256, 13]), options: { transposeA: true } },
    { a: mt.randn([900, 256]), b: mt.randn([16, 256]), options: { transposeB: true } },
  ];
  const want = cases.map(({ a, b, options }) => bits(mt.matmul(a, b, options)));
  const start = Date.now();
  for (;;) {
    const worker = () => info().chunksByThread?.[1] ?? 0;
    const [left, took] = [info().productsLeftRunning ?? 0, worker()];
    for (const read of [(t: mt.Tensor) => bits(t.mul(1)), bits]) {
      const got = cases.map(({ a: a0, b: b0, options }) => {
        const [a, b] = [a0.mul(1), b0.mul(1)];
        return be.overlapJobs!(() => {
          const y = mt.matmul(a, b, options);
          // A second product while the first runs is computed here at once, not left running.
          const z = mt.matmul(a0, b0, options);
          a.dispose(); b.dispose();
          const filler = [mt.full(a0.shape, 7), mt.full(b0.shape, -3)];
          const values = [read(y), bits(z)];
          mt.dispose([y, z, ...filler]);
          return values;
        });
      });
      assert.deepEqual(got, want.map((w) => [w, w]));
    }
    assert.equal(info().productsLeftRunning, left + 2 * cases.length, 'the first product of each was left running, the second not');
    if (worker() > took) break;
    if (Date.now() - start > 60_000) assert.fail('the worker took no chunk of a product left running within 60 s');
    await new Promise((r) => setTimeout(r, 20));
  }
  const left = info().productsLeftRunning;
  mt.matmul(cases[0]!.a, cases[0]!.b);
  assert.equal(info().productsLeftRunning, left, 'outside overlapJobs nothing is left running');
  mt.dispose(cases.flatMap(({ a, b }) => [a, b]));
  mt.setBackend('cpu', { threads: 1 });
});

test('a product left running whose result is disposed before it is joined: its array is not handed out again (and written by the join) while the job runs', { timeout: 120_000 }, async () => {
  mt.setBackend('cpu', { threads: 2 });
  const info = () => mt.backendInfo() as { threads?: number; threadsReason?: string; productsLeftRunning?: number };
  if (info().threads !== 2) { console.log(`# skipped: no second thread here (${String(info().threadsReason)})`); return; }
  const be = getBackend();
  mt.manualSeed(13);
  // xᵀ·∂ as the gate's weight gradient: [256, 8], 8 KB, an ordinary array (not the wasm
  // memory), which the job writes when it is joined (2.1M multiply-adds: left running).
  const a = mt.randn([1024, 256]), b = mt.randn([1024, 8]);
  for (let round = 0; round < 20; round++) {
    const left = info().productsLeftRunning ?? 0;
    const kept = be.overlapJobs!(() => {
      mt.matmul(a, b, { transposeA: true }).dispose();
      return mt.full([256, 8], 5);
    });
    assert.equal(info().productsLeftRunning, left + 1, 'the product was left running');
    assert.ok((kept.dataSync() as Float32Array).every((v) => v === 5), `round ${round}: a tensor made after the dispose kept its values`);
    kept.dispose();
  }
  mt.dispose([a, b]);
  mt.setBackend('cpu', { threads: 1 });
});
