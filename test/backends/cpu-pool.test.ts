// The CPU backend's caching allocator (src/backends/cpu/pool.ts): reused buffers come back
// zeroed and sized exactly, the cache stays under its limit, and tensors never share memory.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { BufferPool, sizeClass } from '../../src/backends/cpu/pool.js';
import { mt } from '../helpers.js';

test('size classes: at least the request, at most 25% more, and a class is its own class', () => {
  fc.assert(fc.property(fc.integer({ min: 16384, max: 2 ** 31 }), (bytes) => {
    const c = sizeClass(bytes);
    assert.ok(c >= bytes && c <= bytes * 1.25, `${bytes} → ${c}`);
    assert.equal(sizeClass(c), c);
  }), { numRuns: 2000 });
  // The integer path gives the classes of the float formula it replaced, powers of two and
  // their neighbours included.
  const byLog2 = (b: number) => { const q = 2 ** (Math.floor(Math.log2(b)) - 2); return Math.ceil(b / q) * q; };
  for (let e = 4; e <= 31; e++) for (const b of [2 ** e - 1, 2 ** e, 2 ** e + 1]) assert.equal(sizeClass(b), byLog2(b), `${b}`);
  fc.assert(fc.property(fc.integer({ min: 16, max: 2 ** 31 + 1000 }), (b) => { assert.equal(sizeClass(b), byLog2(b), `${b}`); }), { numRuns: 5000 });
});

test('a freed buffer is handed out again zeroed, with the requested length and dtype', () => {
  const pool = new BufferPool();
  pool.limitBytes = 1 << 30;
  const a = pool.take('float32', 10_000);
  a.fill(7);
  pool.give(a);
  assert.equal(pool.cachedBytes, sizeClass(40_000));
  // 9,000 float64 = 72,000 bytes is another class; 9,500 float32 = 38,000 bytes shares a's.
  const b = pool.take('float64', 9_000);
  assert.equal(pool.hits, 0);
  const c = pool.take('float32', 9_500);
  assert.equal(pool.hits, 1);
  assert.equal(c.buffer, a.buffer);
  assert.ok(c instanceof Float32Array && c.length === 9_500);
  assert.ok(c.every((v) => v === 0), 'reused memory is zeroed');
  assert.equal(pool.cachedBytes, 0);
  const d = pool.take('int32', 9_500);
  assert.notEqual(d.buffer, a.buffer, 'a buffer in use is not handed out twice');
  assert.ok(b.length === 9_000);
});

test('the cache holds at most its limit; small and foreign arrays are not kept', () => {
  const pool = new BufferPool();
  pool.limitBytes = 100_000;
  const big = [pool.take('float32', 10_000), pool.take('float32', 10_000), pool.take('float32', 10_000)];
  for (const t of big) pool.give(t);
  assert.equal(pool.cachedBytes, 2 * sizeClass(40_000), 'the third would exceed the limit');
  pool.give(new Float32Array(100)); // under the minimum
  pool.give(new Float32Array(new ArrayBuffer(50_000), 4, 100)); // a view at an offset: not ours
  pool.give(new Float32Array(12_345)); // not a class size
  assert.equal(pool.cachedBytes, 2 * sizeClass(40_000));
  pool.empty();
  assert.equal(pool.cachedBytes, 0);
});

test('through the engine: results computed on reused buffers are exact, and freed bytes are cached, not live', () => {
  const base = mt.memory();
  const x = mt.tidy(() => mt.arange(50_000).reshape([250, 200]));
  for (let round = 0; round < 3; round++) {
    // Each round frees buffers the next one reuses; the values must not leak across.
    const y = mt.tidy(() => x.mul(2).add(1).sum(1));
    const v = y.dataSync();
    for (let i = 0; i < 250; i++) {
      const first = i * 200;
      assert.equal(v[i], 2 * (200 * first + (199 * 200) / 2) + 200, `row ${i}, round ${round}`);
    }
    y.dispose();
  }
  x.dispose();
  const after = mt.memory();
  assert.equal(after.liveHandles, base.liveHandles);
  assert.equal(after.bytes, base.bytes);
  assert.ok((after.cachedBytes ?? 0) > 0, 'freed results are cached for reuse');
});

test('every kernel writes its whole result: with every size cached and reused buffers poisoned, results are unchanged', async () => {
  const { cpuPool } = await import('../../src/backends/cpu/pool.js');
  // One workload over every kernel family: matmul on each of its paths (thin, short inner
  // dimension, few rows, packed; every transpose), broadcasting arithmetic and comparisons,
  // where, reductions, indexing, movement, cast, and an MoE layer and an LSTM forward and
  // backward, in float64 and float32.
  const workload = (): number[][] => mt.tidy(() => {
    mt.manualSeed(7);
    const outs: mt.Tensor[] = [];
    for (const [m, k, n] of [[5, 20, 9], [9, 8, 40], [40, 300, 13], [100, 40, 30], [3, 3, 3]] as const) {
      for (const [tA, tB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
        const a = mt.randn(tA ? [k, m] : [m, k]), b = mt.randn(tB ? [n, k] : [k, n]);
        outs.push(mt.matmul(a, b, { transposeA: tA, transposeB: tB }));
      }
    }
    const x = mt.randn([30, 40], { dtype: 'float64' }), row = mt.randn([40], { dtype: 'float64' }), col = mt.randn([30, 1], { dtype: 'float64' });
    outs.push(x.add(row), x.mul(col), x.sub(2), mt.greater(x, row), mt.where(mt.greater(x, col), x, row), x.relu(), x.exp(), x.sigmoid());
    outs.push(x.sum(0), x.sum(1), x.max(0), mt.argmax(x, 1), x.softmax(-1), x.permute([1, 0]), x.slice([2, 3], [10, 20]));
    outs.push(mt.pad(x, [1, 2], [3, 0]), mt.concat([x, x.mul(2)], 1), row.broadcastTo([30, 40]), x.cast('float32'), mt.cast(x.mul(10), 'int32'));
    const idx = mt.tensor(Array.from({ length: 50 }, (_, i) => (i * 7) % 30), [50], { dtype: 'int32' });
    outs.push(mt.indexSelect(x, 0, idx), mt.indexAdd(x, 0, idx, mt.randn([50, 40], { dtype: 'float64' })), mt.oneHot(idx, 30));
    const gidx = mt.tensor(Array.from({ length: 30 * 5 }, (_, i) => (i * 11) % 40), [30, 5], { dtype: 'int32' });
    outs.push(mt.gather(x, 1, gidx), mt.scatterAdd(x, 1, gidx, mt.randn([30, 5], { dtype: 'float64' })), mt.topk(x, 3).values, mt.topk(x, 3).indices);
    for (const dtype of ['float64', 'float32'] as const) {
      const moe = new mt.MoE({ inputSize: 12, outputSize: 12, hiddenSize: 24, numExperts: 6, k: 2, dtype });
      const input = mt.randn([50, 12], { dtype }).requiresGrad_();
      const out = moe.forward(input, { noise: mt.randn([50, 6], { dtype }) });
      out.output.square().sum().add(out.auxLoss).backward();
      outs.push(out.output, out.auxLoss, input.grad!, ...moe.parameters().map((p) => p.grad!));
      const lstm = new mt.LSTM({ inputSize: 12, hiddenSize: 16, numLayers: 2, dtype });
      const seq = mt.randn([7, 5, 12], { dtype }).requiresGrad_();
      lstm.forward(seq).output.sum().backward();
      outs.push(seq.grad!, ...lstm.parameters().map((p) => p.grad!));
    }
    return outs.map((t) => Array.from(t.dataSync()));
  });
  const reference = workload();
  const saved = { minBytes: cpuPool.minBytes, poison: cpuPool.poison };
  try {
    cpuPool.minBytes = 0;
    cpuPool.poison = true;
    for (let round = 0; round < 2; round++) {
      const hits = cpuPool.hits;
      const got = workload();
      assert.ok(cpuPool.hits > hits, 'the workload ran on reused buffers');
      got.forEach((v, i) => assert.deepEqual(v, reference[i], `result ${i} (round ${round})`));
    }
  } finally {
    Object.assign(cpuPool, saved);
  }
});

test('mt.emptyCache() releases every cached buffer (torch.cuda.empty_cache); live tensors keep their values', async () => {
  // Ordinary buffers (the wasm memory's blocks cannot be released: the next test).
  const { cpuPool } = await import('../../src/backends/cpu/pool.js');
  const saved = cpuPool.heapMinBytes;
  cpuPool.heapMinBytes = Number.POSITIVE_INFINITY;
  try {
    mt.emptyCache(); // what earlier tests left in the cache
    assert.equal(mt.memory().cachedBytes, 0);
    const kept = mt.arange(0, 10_000, 1, { dtype: 'float32' });
    // 64 MiB freed: the cache keeps it (the peak of live bytes allows it) until emptyCache.
    mt.zeros([16 * 1024 * 1024]).dispose();
    assert.ok((mt.memory().cachedBytes ?? 0) >= 64 * 1024 * 1024, `cached ${mt.memory().cachedBytes}`);
    mt.emptyCache();
    assert.equal(mt.memory().cachedBytes, 0);
    assert.equal(kept.dataSync()[9_999], 9_999);
    // The old peak no longer lets the cache grow back to 64 MiB: a smaller tensor's buffer is
    // cached only up to the new peak of live bytes.
    mt.zeros([1024 * 1024]).dispose();
    assert.ok((mt.memory().cachedBytes ?? 0) <= 8 * 1024 * 1024, `cached ${mt.memory().cachedBytes} after emptyCache`);
    kept.dispose();
  } finally {
    cpuPool.heapMinBytes = saved;
  }
});

test('large float tensors live in the SIMD engine\'s shared wasm memory: a freed block serves the next tensor of its size, the memory stops growing once warm, and a tensor left to the garbage collector returns its block', async (t) => {
  if (mt.backendInfo().tensorsInWasmMemory !== true) { t.skip('tensors are not placed in the wasm memory here (no SIMD engine, or its memory is not shared)'); return; }
  const { cpuPool } = await import('../../src/backends/cpu/pool.js');
  const heap = cpuPool.heap!;
  const placed = heap.liveBytes;
  const x = mt.randn([256, 64]);
  assert.ok(heap.liveBytes >= placed + 256 * 64 * 4, 'x (64 KiB) lives in the wasm memory');
  const step = () => mt.tidy(() => x.matmul(x, { transposeB: true }).relu().sum().dataSync()[0]);
  const first = step();
  for (let i = 0; i < 3; i++) step();
  const grown = heap.memoryBytes, takes = cpuPool.heapTakes, gives = cpuPool.heapGives;
  for (let i = 0; i < 5; i++) assert.equal(step(), first, 'the same numbers on reused blocks');
  assert.equal(heap.memoryBytes, grown, 'no growth once warm');
  assert.equal(cpuPool.heapTakes - takes, cpuPool.heapGives - gives, 'every block taken by a step is given back');
  const info = mt.memory();
  assert.equal(info.wasmMemoryBytes, heap.memoryBytes);
  assert.equal(info.wasmFreeBytes, heap.freeBytes);
  // emptyCache leaves the wasm memory's free blocks (it cannot shrink) and every live tensor intact.
  mt.emptyCache();
  assert.equal(mt.memory().wasmFreeBytes, heap.freeBytes);
  assert.equal(step(), first);
  // A tensor never disposed, once collected, returns its block (FinalizationRegistry).
  const { setFlagsFromString } = await import('node:v8');
  const { runInNewContext } = await import('node:vm');
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  // The draw's staging (the normal pairs' block, sized by the largest draw so far) grown first,
  // so that only the tensor's own block is counted.
  mt.randn([512, 512]).dispose();
  const live = heap.liveBytes;
  (() => { mt.randn([512, 512]); })(); // 1 MiB, dropped without dispose
  assert.ok(heap.liveBytes >= live + 1024 * 1024, 'the dropped tensor holds a block');
  // Collection and the finalizer run when V8 gets to them: up to 2 s on a loaded machine (other
  // test files run beside this one; the same wait as cpu-grouped-rows.test.ts's gc test).
  for (let i = 0; i < 100 && heap.liveBytes > live; i++) { gc(); await new Promise((r) => setTimeout(r, 20)); }
  assert.equal(heap.liveBytes, live, 'its block came back when it was collected');
  x.dispose();
});

test('a repeated MoE training step takes no fresh buffer once warm: the cache holds what the next step needs', async () => {
  const { cpuPool } = await import('../../src/backends/cpu/pool.js');
  mt.manualSeed(1);
  const x = mt.randn([256, 64]);
  const moe = new mt.MoE({ inputSize: 64, outputSize: 64, hiddenSize: 128, numExperts: 4, k: 2 });
  const step = () => mt.tidy(() => { const o = moe.forward(x); o.output.sum().add(o.auxLoss).backward(); moe.zeroGrad(); });
  for (let i = 0; i < 3; i++) step();
  const misses = cpuPool.misses;
  for (let i = 0; i < 3; i++) step();
  assert.equal(cpuPool.misses - misses, 0, 'fresh buffers taken in warm steps');
  mt.dispose([x, ...moe.parameters()]);
});

test('the wasm heap: blocks never overlap, a freed block is handed out again, releasing a block twice is an error, and a memory that cannot hold a tensor leaves it an ordinary array', async (t) => {
  const { WasmMatmul } = await import('../../src/backends/cpu/wasm/wasm-matmul.js');
  const { blockClass } = await import('../../src/backends/cpu/wasm/wasm-heap.js');
  const engine = WasmMatmul.create();
  if (typeof engine === 'string') { t.skip(engine); return; }
  engine.pool?.stop();
  const heap = engine.heap;
  const sizeArb = fc.oneof(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: 200_000 }));
  fc.assert(fc.property(fc.array(sizeArb, { minLength: 1, maxLength: 30 }), (sizes) => {
    const blocks = sizes.map((b) => ({ ptr: heap.alloc(b), bytes: blockClass(b) }));
    for (const [i, a] of blocks.entries()) {
      assert.ok(a.ptr > 0 && a.ptr % 64 === 0, `block ${a.ptr} above the control block, on a cache line`);
      for (const b of blocks.slice(i + 1)) assert.ok(a.ptr + a.bytes <= b.ptr || b.ptr + b.bytes <= a.ptr, 'no overlap');
    }
    const first = blocks[0]!;
    heap.release(first.ptr);
    assert.equal(heap.alloc(sizes[0]!), first.ptr, 'the freed block comes back for its class');
    for (const b of blocks) heap.release(b.ptr);
  }), { numRuns: 30, examples: [[[100, 50, 70, 130, 200]]] });
  // Only a whole placed array counts as its block: a shorter view of its start may not be
  // given back for it, nor written past its end (the math module stages such a result).
  const whole = heap.place('float32', 1000, 2 ** 30)!;
  assert.equal(heap.isBlock(whole), true);
  assert.equal(heap.isBlock(whole.subarray(0, 999)), false);
  assert.equal(heap.isBlock(new Float32Array(1000)), false);
  heap.free(whole);
  assert.equal(heap.isBlock(whole), false, 'a freed block is no longer one');
  const p = heap.alloc(1000);
  heap.release(p);
  assert.throws(() => heap.release(p), /wasm heap: release of \d+, which is not a live block/);
  assert.equal(heap.alloc(1 << 20, heap.memoryBytes), -1, 'nothing past the limit');
  assert.equal(heap.place('float32', 1 << 18, heap.memoryBytes), null);
  // The pool: no room in the memory → an ordinary array, which the kernels copy as before.
  const pool = new BufferPool();
  pool.heapSource = () => ({ shared: true, place: () => null } as never);
  const a = pool.take('float32', 100_000);
  assert.ok(a instanceof Float32Array && a.length === 100_000 && !(a.buffer instanceof SharedArrayBuffer));
});
