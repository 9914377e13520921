// The WebAssembly SIMD matmul (src/backends/cpu/wasm/) against the references: a float64
// triple loop, the scalar CPU kernels, and — for float64 — a sequential dot product, which
// it must equal bit for bit (it sums p = 0 … k-1 in order, one multiply and one add each).
// Also what backendInfo() reports and the scalar fallback where SIMD is missing.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { WasmMatmul, MIN_MACS, THREAD_MACS } from '../../src/backends/cpu/wasm/wasm-matmul.js';
import { CTRL, gemmModuleBytes } from '../../src/backends/cpu/wasm/gemm-module.js';
import { sleb, uleb } from '../../src/backends/cpu/wasm/wasm-emitter.js';
import { wasmApi, type WasmApi } from '../../src/backends/cpu/wasm/wasm-api.js';
import { cpuKernels } from '../../src/backends/cpu/cpu-backend.js';
import { createCpuBackend } from '../../src/backends/cpu/register.js';
import { assertClose, lcgValues, mt, numRuns } from '../helpers.js';

type Float = 'float32' | 'float64';

const engine = WasmMatmul.create();
if (typeof engine === 'string') throw new Error(`these tests need WebAssembly SIMD (Node 20 has it): ${engine}`);
const simd = engine;
simd.pool?.resize(1);

/** Deterministic values in [-2, 2) (a 32-bit LCG), rounded to the dtype. */
const values = lcgValues;

interface Case { m: number; n: number; k: number; transposeA: boolean; transposeB: boolean; dtype: Float; batchA?: number[]; batchB?: number[] }

/** The operands of a case, and the shapes the matmul kernel sees. */
function operands(c: Case, seed: number) {
  const { m, n, k, transposeA, transposeB, dtype } = c;
  const batchA = c.batchA ?? [], batchB = c.batchB ?? [];
  const aShape = [...batchA, ...(transposeA ? [k, m] : [m, k])];
  const bShape = [...batchB, ...(transposeB ? [n, k] : [k, n])];
  const batch = batchA.length >= batchB.length ? batchA.map((d, i) => Math.max(d, batchB[i - batchA.length + batchB.length] ?? 1)) : batchB.map((d, i) => Math.max(d, batchA[i - batchB.length + batchA.length] ?? 1));
  const size = (s: number[]) => s.reduce((x, y) => x * y, 1);
  return { a: values(size(aShape), seed, dtype), b: values(size(bShape), seed ^ 0x9e3779b9, dtype), aShape, bShape, outShape: [...batch, m, n] };
}

/**
 * C by the definition for one unbatched case: Σ_p A(i,p)·B(p,j), summed p = 0 … k-1 in order in
 * float64, or with `float32` as the kernels sum a float32 result: each product and each sum
 * rounded to float32.
 */
function sequential(c: Case, a: ArrayLike<number>, b: ArrayLike<number>, float32 = false): Float64Array | Float32Array {
  const { m, n, k, transposeA, transposeB } = c;
  const round = float32 ? Math.fround : (x: number) => x;
  const out = float32 ? new Float32Array(m * n) : new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s = round(s + round(a[transposeA ? p * m + i : i * k + p]! * b[transposeB ? j * k + p : p * n + j]!));
      out[i * n + j] = s;
    }
  }
  return out;
}

function runSimd(c: Case, seed: number) {
  const o = operands(c, seed);
  const out = c.dtype === 'float32' ? new Float32Array(o.outShape.reduce((x, y) => x * y, 1)) : new Float64Array(o.outShape.reduce((x, y) => x * y, 1));
  const before = simd.products;
  const took = simd.matmul(o.a, o.aShape, o.b, o.bShape, out, o.outShape, c.transposeA, c.transposeB);
  assert.equal(took, true, `the SIMD path takes ${JSON.stringify(c)}`);
  assert.equal(simd.products, before + 1);
  return { ...o, out };
}

const shapes = [
  [16, 16, 16], [37, 53, 29], [130, 7, 66], [5, 300, 17], [1, 512, 8], [3, 64, 33], [64, 64, 64], [9, 33, 260], [8, 512, 256], [33, 8, 100],
] as const;

test('SIMD matmul: float64 equals the sequential float64 dot product bit for bit, every layout', () => {
  for (const [m, n, k] of shapes) {
    for (const transposeA of [false, true]) {
      for (const transposeB of [false, true]) {
        const c: Case = { m, n, k, transposeA, transposeB, dtype: 'float64' };
        const r = runSimd(c, m * 1000 + n + k);
        assert.deepEqual(Array.from(r.out), Array.from(sequential(c, r.a, r.b)), `float64 ${m}×${k}·${k}×${n} tA=${transposeA} tB=${transposeB}`);
      }
    }
  }
});

test('SIMD matmul: float32 equals the float32 sum in order (a multiply, then an add) bit for bit, whole panels and panels of 1–4 columns (the half-width tiles), every row remainder and layout', () => {
  // n = 1 … 4 and 8q + 1 … 8q + 4 end in a narrow panel; 5 … 8 and 13 in a whole one; m covers the 1-, 2- and 3-row tiles.
  for (const n of [1, 2, 3, 4, 5, 8, 9, 12, 13, 20]) {
    for (const m of [1, 2, 3, 4, 7, 34]) {
      for (const transposeA of [false, true]) {
        for (const transposeB of [false, true]) {
          const c: Case = { m, n, k: 4096 / 16, transposeA, transposeB, dtype: 'float32' };
          if (m * n * c.k < 4096) c.k = Math.ceil(4096 / (m * n));
          const r = runSimd(c, 31 * m + n);
          assert.deepEqual(Array.from(r.out), Array.from(sequential(c, r.a, r.b, true)), `float32 ${m}×${c.k}·${c.k}×${n} tA=${transposeA} tB=${transposeB}`);
        }
      }
    }
  }
});

test('SIMD matmul: float32 within the rounding bound of a k-term float32 sum, every layout', () => {
  for (const [m, n, k] of shapes) {
    for (const transposeA of [false, true]) {
      for (const transposeB of [false, true]) {
        const c: Case = { m, n, k, transposeA, transposeB, dtype: 'float32' };
        const r = runSimd(c, 7 * m + n + 13 * k);
        // |Σ fl − Σ| ≤ k·u·Σ|a||b| ≤ k·2⁻²⁴·4·k·... : with |a|,|b| < 2, a bound of k·2⁻²³·4 per term, ×4 for safety.
        assertClose(r.out, sequential(c, r.a, r.b), { rtol: 0, atol: k * 2 ** -23 * 4 * 4, what: `float32 ${m}×${k}·${k}×${n} tA=${transposeA} tB=${transposeB}` });
      }
    }
  }
});

test('SIMD matmul agrees with the scalar CPU kernels over random shapes, layouts, dtypes and broadcast batches', () => {
  const be = createCpuBackend({ simd: false });
  const arb = fc.record({
    m: fc.integer({ min: 1, max: 70 }), n: fc.integer({ min: 1, max: 70 }), k: fc.integer({ min: 1, max: 90 }),
    transposeA: fc.boolean(), transposeB: fc.boolean(), dtype: fc.constantFrom<Float>('float32', 'float64'),
    batch: fc.constantFrom<[number[], number[]]>([[], []], [[3], [3]], [[2, 1], [3]], [[], [2]], [[4], []]),
    seed: fc.integer(),
  }).filter((c) => c.m * c.n * c.k >= MIN_MACS);
  fc.assert(fc.property(arb, ({ batch, seed, ...rest }) => {
    const c: Case = { ...rest, batchA: batch[0], batchB: batch[1] };
    const r = runSimd(c, seed);
    const ha = be.upload(r.a), hb = be.upload(r.b);
    const info = (h: typeof ha, shape: number[]) => ({ handle: h, shape, dtype: c.dtype });
    const hc = cpuKernels.matmul([info(ha, r.aShape), info(hb, r.bShape)] as never, { transposeA: c.transposeA, transposeB: c.transposeB }, { shape: r.outShape, dtype: c.dtype }, be);
    const scalar = be.readSync(hc, c.dtype);
    const eps = c.dtype === 'float32' ? 2 ** -23 : 2 ** -52;
    assertClose(r.out, scalar, { rtol: 0, atol: c.k * eps * 4 * 8, what: JSON.stringify(c) });
    for (const h of [ha, hb, hc]) be.decRef(h);
  }), numRuns(120));
});

test('SIMD matmul: NaN and ±Inf propagate like the definition (no zero padding reaches a real element)', () => {
  const c: Case = { m: 13, n: 21, k: 40, transposeA: true, transposeB: true, dtype: 'float64' };
  const o = operands(c, 5);
  o.a[3] = Number.POSITIVE_INFINITY; o.b[7] = Number.NaN;
  const out = new Float64Array(c.m * c.n);
  assert.ok(simd.matmul(o.a, o.aShape, o.b, o.bShape, out, o.outShape, true, true));
  assert.deepEqual(Array.from(out), Array.from(sequential(c, o.a, o.b)));
});

test('a stable A operand left in the wasm memory by the product before is reused, only when nothing can have changed it', () => {
  for (const dtype of ['float32', 'float64'] as const) {
    for (const transposeA of [false, true]) {
      const [m, k, n] = [70, 48, 12];
      const aShape = transposeA ? [k, m] : [m, k];
      const a = values(m * k, 11, dtype), b1 = values(k * n, 12, dtype), b2 = values(k * n, 13, dtype), other = values(m * k, 14, dtype);
      const fresh = (av: Float32Array | Float64Array, bv: Float32Array | Float64Array) => {
        const out = dtype === 'float32' ? new Float32Array(m * n) : new Float64Array(m * n);
        assert.equal(simd.matmul(other, aShape, bv, [k, n], out, [m, n], transposeA, false, false), true); // clears the memo
        assert.equal(simd.matmul(av.slice(), aShape, bv, [k, n], out, [m, n], transposeA, false, true), true); // a new array: copied
        return out;
      };
      const run = (av: Float32Array | Float64Array, bv: Float32Array | Float64Array, stable: boolean) => {
        const out = dtype === 'float32' ? new Float32Array(m * n) : new Float64Array(m * n);
        assert.equal(simd.matmul(av, aShape, bv, [k, n], out, [m, n], transposeA, false, stable), true);
        return out;
      };
      const what = `${dtype}${transposeA ? ' Aᵀ·B' : ' A·B'}`;
      const ref1 = fresh(a, b1), ref2 = fresh(a, b2);
      const r0 = simd.aReused;
      run(a, b1, true);
      assert.deepEqual(run(a, b2, true), ref2, `${what}: same A, another B`);
      assert.equal(simd.aReused, r0 + 1, `${what}: the second product reused A`);
      // A caller that may have changed its array says so (stable false): copied again.
      a[0] = 1.5;
      const changed = run(a, b1, false);
      assert.notDeepEqual(changed, ref1, `${what}: the changed value is used`);
      assert.equal(simd.aReused, r0 + 1);
      // Another A in between, or a grouped product, drops the memo.
      run(a, b1, true);
      run(other, b1, true);
      run(a, b1, true);
      simd.grouped('rows', values(8 * k, 15, dtype), [b1.slice(0, k * n)], [8], k, n, false, dtype === 'float32' ? new Float32Array(8 * n) : new Float64Array(8 * n));
      run(a, b1, true);
      assert.equal(simd.aReused, r0 + 1, `${what}: nothing reused after another operand or a grouped product`);
      // Another shape of the same array (a different layout) is not a reuse either.
      if (!transposeA) {
        const out = dtype === 'float32' ? new Float32Array(35 * n) : new Float64Array(35 * n);
        simd.matmul(a, [35, 2 * k], values(2 * k * n, 16, dtype), [2 * k, n], out, [35, n], false, false, true);
        assert.equal(simd.aReused, r0 + 1, `${what}: another layout is copied`);
      }
    }
  }
});

test('the MoE gate reuses x across its two products, forward and backward, with the same numbers', () => {
  mt.setBackend('cpu', { simd: true });
  mt.manualSeed(3);
  const x = mt.randn([64, 32]);
  const moe = new mt.MoE({ inputSize: 32, outputSize: 32, hiddenSize: 16, numExperts: 4, k: 2 });
  const info = () => mt.backendInfo() as unknown as { operandReuses: number };
  const before = info().operandReuses;
  mt.tidy(() => { const o = moe.forward(x); o.output.sum().add(o.auxLoss).backward(); });
  assert.equal(info().operandReuses - before, 2, 'x·W_noise after x·W_gate, and xᵀ·∂ for the second weight');
});

test('small, int32 and mixed-dtype products are left to the scalar kernels', () => {
  const small = new Float32Array(8 * 8);
  assert.equal(simd.matmul(small, [8, 8], small, [8, 8], new Float32Array(64), [8, 8], false, false), false);
  const big = new Int32Array(64 * 64);
  assert.equal(simd.matmul(big, [64, 64], big, [64, 64], new Int32Array(64 * 64), [64, 64], false, false), false);
});

test('through the engine: simd on and off give the same float64 numbers (1e-12) and int32 stays exact', () => {
  mt.setBackend('cpu', { simd: true });
  const x = mt.randn([24, 96], { dtype: 'float64' }), w = mt.randn([80, 96], { dtype: 'float64' });
  const before = mt.backendInfo().simdProducts as number;
  const withSimd = x.matmul(w, { transposeB: true }).toArray() as number[][];
  assert.equal(mt.backendInfo().simdProducts, before + 1, 'the product ran on the SIMD kernels');
  mt.setBackend('cpu', { simd: false });
  assert.equal(mt.backendInfo().simd, false);
  const scalar = x.matmul(w, { transposeB: true }).toArray() as number[][];
  mt.setBackend('cpu', { simd: true });
  assertClose(withSimd.flat(), scalar.flat(), { rtol: 1e-12, atol: 1e-12, what: 'x·Wᵀ' });
  const i = mt.arange(0, 40 * 50, 1, { dtype: 'int32' }).reshape([40, 50]).sub(1000);
  const j = mt.arange(0, 50 * 30, 1, { dtype: 'int32' }).reshape([50, 30]).sub(700);
  const ij = i.matmul(j).toArray() as number[][];
  assert.equal(ij[3]![4], Array.from({ length: 50 }, (_, p) => (3 * 50 + p - 1000) * (p * 30 + 4 - 700)).reduce((s, v) => s + v, 0));
});

test('backendInfo reports SIMD and threads; bad options are errors naming the option', () => {
  const info = mt.backendInfo();
  assert.equal(info.kernelClass, 'typed-array');
  assert.equal(info.simd, true);
  assert.match(String(info.simdReason), /SIMD128/);
  assert.equal(typeof info.threads, 'number');
  assert.match(String(info.threadsReason), /shared/);
  assert.throws(() => mt.setBackend('cpu', { threads: 0 }), /setBackend\('cpu', \{ threads \}\): threads must be an integer from 1 to 64, got 0/);
  assert.throws(() => mt.setBackend('cpu', { threads: 2.5 }), /threads must be an integer/);
  assert.throws(() => mt.setBackend('cpu', { simd: 'yes' as unknown as boolean }), /simd must be true or false/);
});

test('without WebAssembly SIMD, create() returns the reason (the backend reports it and keeps the scalar kernels)', () => {
  // An engine whose compiler rejects the module, as one without SIMD128 does.
  const noSimd: WasmApi = {
    ...wasmApi!,
    Module: class { constructor() { throw new Error('Compiling function #2 failed: invalid simd opcode'); } } as unknown as WasmApi['Module'],
    Memory: wasmApi!.Memory, Instance: wasmApi!.Instance, validate: () => false,
  };
  const reason = WasmMatmul.create(noSimd);
  assert.equal(typeof reason, 'string');
  assert.match(reason as string, /WebAssembly SIMD128 is not available here \(Compiling function #2 failed: invalid simd opcode\)/);
  assert.equal(WasmMatmul.create(null), 'no WebAssembly in this JavaScript engine');
});

test('the emitter: LEB128 encodings of the binary format, and a module that validates', () => {
  assert.deepEqual(uleb(0), [0]);
  assert.deepEqual(uleb(127), [0x7f]);
  assert.deepEqual(uleb(128), [0x80, 0x01]);
  assert.deepEqual(uleb(0xe4), [0xe4, 0x01]); // f32x4.add after the 0xfd prefix
  assert.deepEqual(sleb(-1), [0x7f]);
  assert.deepEqual(sleb(63), [0x3f]);
  assert.deepEqual(sleb(64), [0xc0, 0x00]);
  assert.deepEqual(sleb(-65), [0xbf, 0x7f]);
  for (const shared of [false, true]) {
    assert.ok(wasmApi!.validate(gemmModuleBytes({ shared, initialPages: 1, maximumPages: 16 }, shared)), `shared=${shared}`);
  }
  // The name section names every function, imported (chunk) and internal ($ names: the
  // micro-kernels, not exported) included, by its index, so that profiles show the names.
  const bytes = gemmModuleBytes({ shared: true, initialPages: 1, maximumPages: 16 }, true);
  const module = new wasmApi!.Module(bytes);
  // The reflection members the project's wasm-api.ts leaves out (no DOM lib here).
  const reflect = (globalThis as unknown as { WebAssembly: { Module: { exports(m: unknown): { name: string }[]; customSections(m: unknown, name: string): ArrayBuffer[] } } }).WebAssembly.Module;
  const exported = reflect.exports(module).map((e) => e.name);
  assert.ok(exported.includes('gemm_f32') && !exported.includes('tile4x8_f32') && !exported.some((n) => n.startsWith('$')), exported.join());
  const [section] = reflect.customSections(module, 'name');
  assert.ok(section, 'a name section');
  const b = new Uint8Array(section!);
  let p = 0;
  const u = () => { let r = 0, s = 0, x = 0; do { x = b[p++]!; r |= (x & 127) << s; s += 7; } while (x & 128); return r; };
  assert.equal(b[p++], 1, 'function names');
  u();
  const names: string[] = [];
  for (let i = 0, n = u(); i < n; i++) { assert.equal(u(), i); const len = u(); names.push(new TextDecoder().decode(b.subarray(p, p + len))); p += len; }
  assert.equal(names[0], 'chunk');
  for (const name of ['tile4x8_f32', 'tile1x8_f64', 'packPanel_f32', 'gemm_f32', 'gemm_f64', 'worker']) assert.ok(names.includes(name), name);
  // An exported function's index is its name's: an instance's export is the function of that name.
  const memory = new wasmApi!.Memory({ initial: 1, maximum: 16, shared: true });
  const instance = new wasmApi!.Instance(module, { env: { memory, chunk: () => {} } });
  for (const name of exported) {
    const f = (instance.exports as Record<string, unknown>)[name];
    if (typeof f === 'function') assert.equal(names[Number((f as { name: string }).name)], name, `${name} is function ${(f as { name: string }).name}`);
  }
});

test('the gemm kernel reads no byte past B: B at the very end of the memory, transposed (contiguous and strided rows) and row-major, whole and partial panels, float32 and float64', () => {
  // The macro-kernel touches the next panel's lines while it computes a panel: those
  // addresses must stay inside B, or a B that ends the memory would trap.
  const PAGE = 65536;
  for (const dtype of ['float32', 'float64'] as const) {
    const bytes = dtype === 'float32' ? 4 : 8;
    for (const layout of ['transposed', 'strided', 'rowMajor'] as const) {
      for (const [m, n, k] of [[6, 13, 37], [9, 24, 16], [5, 8, 70], [3, 17, 1]] as const) {
        const memory = new wasmApi!.Memory({ initial: 1, maximum: 1 });
        const kernels = new wasmApi!.Instance(new wasmApi!.Module(gemmModuleBytes({ shared: false, initialPages: 1, maximumPages: 1 }, false)), { env: { memory } }).exports as unknown as Record<string, (...args: number[]) => void>;
        const a = values(m * k, 7, dtype), b = values(n * k, 11, dtype);
        // B(p, j) at bPtr + p·sBp + j·sBj; the element stores sized so that B's last byte is the memory's last.
        const sBj = layout === 'rowMajor' ? bytes : layout === 'strided' ? (k + 3) * bytes : k * bytes;
        const sBp = layout === 'rowMajor' ? n * bytes : bytes;
        const bSpan = layout === 'rowMajor' ? ((k - 1) * n + n) * bytes : (n - 1) * sBj + k * bytes;
        const bPtr = PAGE - bSpan, aPtr = 1024, panels = Math.ceil(n / 8), ldc = panels * 8 * bytes;
        const cPtr = aPtr + m * k * bytes, scratch = cPtr + m * ldc;
        assert.ok(scratch + k * 8 * bytes <= bPtr, 'the case fits in one page');
        new Int32Array(memory.buffer)[CTRL.touch] = 1;
        const view = dtype === 'float32' ? new Float32Array(memory.buffer) : new Float64Array(memory.buffer);
        view.set(a, aPtr / bytes);
        const B = (p: number, j: number) => b[j * k + p]!;
        for (let p = 0; p < k; p++) for (let j = 0; j < n; j++) view[(bPtr + p * sBp + j * sBj) / bytes] = B(p, j);
        kernels[`gemm_${dtype === 'float32' ? 'f32' : 'f64'}`]!(aPtr, k * bytes, bytes, bPtr, sBp, sBj, cPtr, ldc, n, k, 0, panels, 0, m, scratch);
        const round = dtype === 'float32' ? Math.fround : (v: number) => v;
        for (let i = 0; i < m; i++) {
          for (let j = 0; j < n; j++) {
            let acc = 0;
            for (let p = 0; p < k; p++) acc = round(acc + round(a[i * k + p]! * B(p, j)));
            assert.equal(view[(cPtr + i * ldc) / bytes + j], acc, `${dtype} ${layout} ${m}×${n}×${k} C(${i}, ${j})`);
          }
        }
      }
    }
  }
});

test('the touch word is on only while a one-thread grouped product of several experts\' weights runs, and 0 after every product', () => {
  // The measured policy (BENCHMARKS.md, "Touches of the next panel only for cold expert
  // weights on one thread"): cold expert weights on one thread gain from the touches; warm
  // weights (one segment, plain products, gradients) and threaded jobs lose.
  const word = () => new Int32Array(simd.heap.buffer(), 0, CTRL.touch + 1)[CTRL.touch];
  const proto = Object.getPrototypeOf(simd) as { setTouch(on: boolean): void };
  const original = proto.setTouch, calls: boolean[] = [];
  (simd as unknown as { setTouch(on: boolean): void }).setTouch = function (on: boolean) { calls.push(on); original.call(simd, on); };
  try {
    const k = 64, n = 48, sizes = [40, 0, 24, 33], M = 97;
    const a = values(M * k, 3, 'float32'), bs = sizes.map((_, e) => values(k * n, 20 + e, 'float32'));
    const run = (label: string, want: boolean[], f: () => boolean) => {
      calls.length = 0;
      assert.ok(f(), `${label}: the SIMD path took it`);
      assert.deepEqual(calls, want, `${label}: the touch word's settings`);
      assert.equal(word(), 0, `${label}: the word after it`);
    };
    run('rows, three experts with rows', [true, false], () => simd.grouped('rows', a, bs, sizes, k, n, true, new Float32Array(M * n)));
    run('rows, one segment', [], () => simd.grouped('rows', a, [bs[0]!], [M], k, n, true, new Float32Array(M * n)));
    run('weights', [], () => simd.grouped('weights', a, [values(M * n, 9, 'float32')], sizes, k, n, false, sizes.map(() => new Float32Array(k * n))));
    run('matmul', [], () => simd.matmul(a, [M, k], bs[0]!, [k, n], new Float32Array(M * n), [M, n], false, false));
    simd.touchAhead = false;
    run('rows, three experts, touchAhead off', [], () => simd.grouped('rows', a, bs, sizes, k, n, true, new Float32Array(M * n)));
    simd.touchAhead = true;
    if (simd.pool !== null) {
      // Split over two threads (at least THREAD_MACS multiply-adds): no touches.
      simd.pool.resize(2);
      const big = [300, 212], K = 256, N = 256, rows = 512;
      const x = values(rows * K, 5, 'float32'), ws = big.map((_, e) => values(K * N, 30 + e, 'float32'));
      assert.ok(rows * K * N >= THREAD_MACS);
      run('rows, two experts, two threads', [], () => simd.grouped('rows', x, ws, big, K, N, true, new Float32Array(rows * N)));
    }
  } finally {
    simd.pool?.resize(1);
    simd.touchAhead = true;
    delete (simd as unknown as { setTouch?: unknown }).setTouch;
  }
});

test('operands and results that live in the wasm memory are read and written in place, with the bits of the copying path (aliasing results are copied)', { skip: simd.heap.shared ? false : `the memory is not shared here (${simd.status.threadsReason})` }, () => {
  const heap = simd.heap;
  /** A copy of x on a block of the engine's memory, or x itself. */
  const place = (x: Float32Array | Float64Array, inHeap: boolean) => {
    if (!inHeap) return x;
    const v = heap.place(x instanceof Float32Array ? 'float32' : 'float64', x.length, 2 ** 30)!;
    v.set(x);
    return v as Float32Array | Float64Array;
  };
  const arb = fc.record({
    m: fc.integer({ min: 1, max: 60 }), n: fc.integer({ min: 1, max: 40 }), k: fc.integer({ min: 1, max: 70 }),
    transposeA: fc.boolean(), transposeB: fc.boolean(), dtype: fc.constantFrom<Float>('float32', 'float64'),
    batch: fc.constantFrom<[number[], number[]]>([[], []], [[3], [3]], [[2, 1], [3]], [[4], []]),
    inHeap: fc.tuple(fc.boolean(), fc.boolean(), fc.boolean()), seed: fc.integer(),
  }).filter((c) => c.m * c.n * c.k >= MIN_MACS);
  fc.assert(fc.property(arb, ({ batch, seed, inHeap, ...rest }) => {
    const c: Case = { ...rest, batchA: batch[0], batchB: batch[1] };
    const o = operands(c, seed);
    const size = o.outShape.reduce((x, y) => x * y, 1);
    const reference = c.dtype === 'float32' ? new Float32Array(size) : new Float64Array(size);
    assert.ok(simd.matmul(o.a, o.aShape, o.b, o.bShape, reference, o.outShape, c.transposeA, c.transposeB));
    const [a, b] = [place(o.a, inHeap[0]), place(o.b, inHeap[1])];
    const out = place(c.dtype === 'float32' ? new Float32Array(size).fill(NaN) : new Float64Array(size).fill(NaN), inHeap[2]);
    const before = simd.inPlace;
    assert.ok(simd.matmul(a, o.aShape, b, o.bShape, out, o.outShape, c.transposeA, c.transposeB));
    assert.deepEqual(Array.from(out), Array.from(reference), JSON.stringify({ ...c, inHeap }));
    // Whole panels only: a result of another width is computed padded and copied out.
    const expected = Number(inHeap[0]) + Number(inHeap[1]) + Number(inHeap[2] && c.n % 8 === 0);
    assert.equal(simd.inPlace - before, expected, 'operands in place');
    for (const [x, h] of [[a, inHeap[0]], [b, inHeap[1]], [out, inHeap[2]]] as const) if (h) heap.free(x);
  }), numRuns(150));
  // A result that overlaps an operand (a view on the same block) is computed aside and copied.
  const k = 32, m = 32;
  const block = heap.place('float32', 2 * m * k, 2 ** 30) as Float32Array;
  block.set(values(2 * m * k, 3, 'float32'));
  const a = block.subarray(0, m * k), out = block.subarray(m * k / 2, m * k / 2 + m * k);
  const w = values(k * k, 4, 'float32');
  const expected = new Float32Array(m * k);
  simd.matmul(a.slice(), [m, k], w, [k, k], expected, [m, k], false, false);
  const before = simd.inPlace;
  assert.ok(simd.matmul(a, [m, k], w, [k, k], out, [m, k], false, false));
  assert.equal(simd.inPlace - before, 1, 'A in place, the overlapping result not');
  assert.deepEqual(Array.from(out), Array.from(expected));
  heap.free(block);
});

test('indexSelect of rows between tensors of the wasm memory copies them there (memory.copy per row): the values of the scalar kernel, repeats and both float dtypes; a bad index is still an error', async () => {
  mt.setBackend('cpu', { simd: true });
  if (mt.backendInfo().tensorsInWasmMemory !== true) { console.log('# skipped: tensors are not placed in the wasm memory here'); return; }
  for (const dtype of ['float32', 'float64'] as const) {
    // At least 16 KiB on both sides (64 rows of 64 floats), so both live in the wasm memory.
    fc.assert(fc.property(fc.integer({ min: 64, max: 300 }), fc.integer({ min: 64, max: 80 }), fc.integer({ min: 64, max: 400 }), fc.integer(), (rows, cols, count, seed) => {
      const x = mt.randn([rows, cols], { dtype });
      const index = mt.tensor(Int32Array.from({ length: count }, (_, j) => ((seed >>> 0) + j * 7919 + (j % 5 === 0 ? 0 : j * j)) % rows), { dtype: 'int32' });
      const xs = x.toArray() as number[][];
      const got = mt.indexSelect(x, 0, index).toArray() as number[][];
      assert.deepEqual(got, Array.from(index.dataSync(), (i) => xs[i]!));
      mt.dispose([x, index]);
    }), numRuns(40));
  }
  const x = mt.randn([100, 64]);
  assert.throws(() => mt.indexSelect(x, 0, mt.tensor([3, 100], { dtype: 'int32' })), /indexSelect: index 100 is out of range for axis 0 of size 100/);
  x.dispose();
});

test('the resident-weights ring, wrapping round a small arena many times with weights of two sizes, never serves a weight whose bytes were overwritten: every product equals the one that copies its weights in', () => {
  const ring = WasmMatmul.create(), copying = WasmMatmul.create();
  if (typeof ring === 'string' || typeof copying === 'string') throw new Error('needs WebAssembly SIMD');
  ring.pool?.resize(1); copying.pool?.resize(1);
  // An arena of 17000 bytes (capacity = the limit when it is under RESIDENT_MIN_BYTES): 4–11 weights of
  // 1536 or 2560 bytes, so that laps end short of the end and placements overlap old entries
  // partly. Residency off on the other engine: it copies every weight in on every call.
  ring.residentLimit = 17000;
  copying.residentLimit = 0;
  const k = 16, widths = [24, 40];
  const pools = widths.map((n, s) => Array.from({ length: 5 }, (_, i) => values(k * n, 100 * s + i + 1, 'float32')));
  const before = { hits: ring.residentHits, copies: ring.residentCopies };
  fc.assert(fc.property(
    fc.array(fc.record({ shape: fc.integer({ min: 0, max: 1 }), picks: fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 1, maxLength: 3 }), seed: fc.integer({ min: 1, max: 1000 }) }), { minLength: 20, maxLength: 60 }),
    (calls) => {
      for (const { shape, picks, seed } of calls) {
        const n = widths[shape]!, bs = picks.map((i) => pools[shape]![i]!);
        const sizes = picks.map((_, e) => 12 + ((seed + 5 * e) % 9));
        const M = sizes.reduce((p, q) => p + q, 0);
        const a = values(M * k, seed, 'float32');
        const got = new Float32Array(M * n), want = new Float32Array(M * n);
        assert.ok(ring.grouped('rows', a, bs, sizes, k, n, true, got));
        assert.ok(copying.grouped('rows', a, bs, sizes, k, n, true, want));
        assert.deepEqual(got, want);
      }
    }), numRuns(30));
  // The ring really was used: weights found resident, and copied in again after laps.
  assert.ok(ring.residentHits - before.hits > 100, `resident hits: ${ring.residentHits - before.hits}`);
  assert.ok(ring.residentCopies - before.copies > 100, `copies: ${ring.residentCopies - before.copies}`);
  assert.ok(ring.residentBytes > 0 && ring.residentBytes <= 17000, `arena ${ring.residentBytes} bytes`);
});
