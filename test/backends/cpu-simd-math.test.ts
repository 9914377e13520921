// float32 σ, tanh and the LSTM cell: the scalar float32 algorithms (core/special.ts, Cephes'
// expf and tanhf) against float64 Math.* (accuracy in float32 ulps), and the WebAssembly SIMD
// kernels (src/backends/cpu/wasm/math-module.ts) against the scalar ones, bit for bit.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { expF32, expF64, normalCdf, normalCdfFloat32, sigmoidF32, softplusF32, tanhF32 } from '../../src/core/special.js';
import { probInTopK, probInTopKBackward, type ProbInTopKPlanes } from '../../src/backends/cpu/gating.js';
import { probInTopKAt } from '../../src/tensor/ops/fused.js';
import { WasmMath, MIN_ELEMENTS, MIN_TOPK } from '../../src/backends/cpu/wasm/wasm-math.js';
import { topkIndices } from '../../src/backends/cpu/indexing.js';
import { adamStep, lstmCellForward } from '../../src/backends/cpu/fused.js';
import { lstmCell } from '../../src/tensor/ops/fused.js';
import { mt, numRuns } from '../helpers.js';
import { boxMuller, fillRandom, philoxBlocks as jsPhiloxBlocks } from '../../src/core/philox.js';
import { getBackend } from '../../src/tensor/engine.js';

const math = WasmMath.create();
if (typeof math === 'string') throw new Error(`these tests need WebAssembly SIMD (Node 20 has it): ${math}`);
const simd = math;

const f32 = Math.fround;
/** float32's ulp at |v| (subnormal spacing below the normal range). */
function ulp(v: number): number {
  const a = Math.abs(f32(v));
  if (a === 0) return 2 ** -149;
  return 2 ** Math.max(Math.floor(Math.log2(a)) - 23, -149);
}
const sigmoid64 = (x: number) => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x)));

/** Deterministic float32 values spread over magnitudes 2^-8 … 2^7 and both signs (a 32-bit LCG). */
function values(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const next = () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 2 ** 32; };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (next() < 0.5 ? -1 : 1) * 2 ** (next() * 15 - 8);
  return out;
}

/** Inputs at the algorithms' edges: zeros, infinities, NaN, the clamps, the tanh switch, subnormal e^x, halves of x·log2 e. */
const SPECIALS = [0, -0, NaN, Infinity, -Infinity, 1e-45, -1e-45, 1e-30, -1e-30, 88.72, 88.73, 89, 89.5, -87.3, -103.2, -103.3, -104, -104.5,
  0.625, -0.625, f32(0.625 - 2 ** -24), 9, -9, 44.4, -44.4, 0.5 / Math.LOG2E, 1.5 / Math.LOG2E, -2.5 / Math.LOG2E].map(f32);

const bitsEqual = (a: number, b: number) => Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b));

const softplus64 = (x: number) => (x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x)));

test('float32 e^x, σ, tanh and softplus are within 1, 2.5, 1.5 and 2 float32 ulps of float64 Math (measured: 0.97, 2.34, 1.31, 1.95)', () => {
  const cases = [
    { name: 'exp', f: expF32, ref: Math.exp, tol: 1, range: 88 },
    { name: 'sigmoid', f: sigmoidF32, ref: sigmoid64, tol: 2.5, range: 40 },
    { name: 'tanh', f: tanhF32, ref: Math.tanh, tol: 1.5, range: 12 },
    { name: 'softplus', f: softplusF32, ref: softplus64, tol: 2, range: 100 },
  ];
  for (const { name, f, ref, tol, range } of cases) {
    let worst = 0, at = 0;
    for (const scale of [range, 4, 1, 1e-3]) {
      const xs = values(200_000, 17 + scale);
      for (const v of xs) {
        const x = f32((v / 128) * scale);
        const r = ref(x);
        if (Math.abs(r) > 3.4028234663852886e38 || (name !== 'tanh' && x < -87 && r < 2 ** -126)) continue; // beyond float32's range
        const err = Math.abs(f(x) - r) / ulp(r);
        if (err > worst) { worst = err; at = x; }
      }
    }
    assert.ok(worst <= tol, `${name}: ${worst.toFixed(3)} ulps at x = ${at}`);
  }
});

test('float32 σ, tanh and e^x at their edges: NaN, ±∞, ±0, saturation, subnormal results', () => {
  assert.ok(Number.isNaN(expF32(NaN)) && Number.isNaN(sigmoidF32(NaN)) && Number.isNaN(tanhF32(NaN)));
  assert.equal(expF32(Infinity), Infinity);
  assert.equal(expF32(89), Infinity); // e^89 > float32's largest
  assert.equal(expF32(-Infinity), 0);
  assert.equal(expF32(-104), 0);
  assert.equal(expF32(0), 1);
  // A subnormal result, rounded once: e^-100 = 3.72e-44 lies between the subnormals 3.64e-44 and 3.78e-44.
  assert.ok(Math.abs(expF32(-100) - Math.exp(-100)) <= 2 ** -149);
  assert.ok(expF32(-100) > 0);
  assert.equal(sigmoidF32(Infinity), 1);
  assert.equal(sigmoidF32(-Infinity), 0);
  assert.equal(sigmoidF32(0), 0.5);
  assert.equal(sigmoidF32(-0), 0.5);
  assert.equal(tanhF32(Infinity), 1);
  assert.equal(tanhF32(-Infinity), -1);
  assert.ok(Object.is(tanhF32(-0), -0) && Object.is(tanhF32(0), 0));
  assert.equal(tanhF32(1e-30), f32(1e-30));
  for (const x of [0.3, 0.7, 2, 5]) assert.equal(tanhF32(f32(-x)), -tanhF32(f32(x)), 'tanh is odd');
  assert.ok(Number.isNaN(softplusF32(NaN)));
  assert.equal(softplusF32(Infinity), Infinity);
  assert.equal(softplusF32(-Infinity), 0);
  assert.equal(softplusF32(0), f32(Math.LN2));
  assert.equal(softplusF32(-0), f32(Math.LN2));
  assert.equal(softplusF32(1000), 1000);
  // log1p's correction keeps e^x for very negative x (1 + e^x rounds to 1 there), subnormals included.
  assert.equal(softplusF32(-40), expF32(-40));
  assert.equal(softplusF32(-100), expF32(-100));
  assert.ok(softplusF32(-100) > 0);
  assert.equal(softplusF32(-110), 0);
  // softplus(x) − softplus(−x) = x.
  for (const x of [0.3, 1.7, 5, 20]) assert.ok(Math.abs(softplusF32(f32(x)) - softplusF32(f32(-x)) - f32(x)) <= 2 * ulp(x), `softplus(${x}) − softplus(−${x})`);
});

test(`SIMD σ, tanh and softplus give the scalar float32 kernels' bits, any length (padding lanes), specials included`, () => {
  fc.assert(fc.property(fc.integer({ min: MIN_ELEMENTS, max: 300 }), fc.integer(), (n, seed) => {
    const x = values(n, seed);
    x.set(SPECIALS.slice(0, Math.min(SPECIALS.length, n)), 0);
    for (const [op, ref] of [['sigmoid', sigmoidF32], ['tanh', tanhF32], ['softplus', softplusF32]] as const) {
      const y = new Float32Array(n);
      assert.ok(simd.unary(op, x, y));
      for (let i = 0; i < n; i++) if (!bitsEqual(y[i]!, f32(ref(x[i]!)))) assert.fail(`${op}(${x[i]}): SIMD ${y[i]}, scalar ${f32(ref(x[i]!))}`);
    }
  }), numRuns(60));
  // Many magnitudes at once.
  const x = values(100_003, 5), y = new Float32Array(x.length);
  for (const [op, ref] of [['sigmoid', sigmoidF32], ['tanh', tanhF32], ['softplus', softplusF32]] as const) {
    simd.unary(op, x, y);
    let differ = 0;
    for (let i = 0; i < x.length; i++) if (!bitsEqual(y[i]!, f32(ref(x[i]!)))) differ++;
    assert.equal(differ, 0, `${op}: ${differ} of ${x.length} differ`);
  }
  assert.equal(simd.unary('tanh', new Float32Array(MIN_ELEMENTS - 1), new Float32Array(MIN_ELEMENTS - 1)), false, 'below MIN_ELEMENTS it declines');
});

test(`the SIMD LSTM cell gives the scalar fused kernel's bits (B·H not a multiple of 4 included)`, () => {
  for (const [B, H] of [[32, 256], [3, 7], [5, 4], [1, 33]] as const) {
    const z = values(B * 4 * H, B * 131 + H).map((v) => v / 16), c = values(B * H, H).map((v) => v / 32);
    z.set(SPECIALS.slice(0, Math.min(SPECIALS.length, z.length)), 0);
    const simdActs = new Float32Array(7 * B * H), scalarActs = new Float32Array(7 * B * H);
    assert.ok(simd.lstmCell(z, c, B, H, simdActs));
    lstmCellForward(z, c, B, H, scalarActs, true);
    for (let i = 0; i < simdActs.length; i++) if (!bitsEqual(simdActs[i]!, scalarActs[i]!)) assert.fail(`B ${B} H ${H}: element ${i}: SIMD ${simdActs[i]}, scalar ${scalarActs[i]}`);
  }
});

test('the backend runs float32 σ, tanh, softplus and the LSTM cell on SIMD (backendInfo counts the calls) with the scalar kernels\' results', () => {
  const x = mt.tensor(Array.from(values(257, 3)), [257]);
  const z = mt.tensor(Array.from(values(6 * 4 * 9, 4)).map((v) => v / 16), [6, 36]), c = mt.tensor(Array.from(values(54, 6)).map((v) => v / 16), [6, 9]);
  const run = () => [mt.sigmoid(x), mt.tanh(x), mt.softplus(x), lstmCell(z, c).h, lstmCell(z, c).c].map((t) => Array.from(t.dataSync()));
  try {
    mt.setBackend('cpu', { simd: true });
    const before = mt.backendInfo().simdMathCalls as number;
    const onSimd = run();
    assert.equal(mt.backendInfo().simdMathCalls, before + 5, 'σ, tanh, softplus and both cells ran on the SIMD kernels');
    mt.setBackend('cpu', { simd: false });
    const scalar = run();
    onSimd.forEach((v, i) => assert.deepEqual(v, scalar[i]));
  } finally {
    mt.setBackend('cpu', { simd: true });
  }
});

test('SIMD top-k (one row per lane) gives topkIndices\' indices, largest first, ties to the lower index; rows with a NaN or too few values above −∞ are flagged for the loop, and only those', () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 16 }), fc.integer({ min: 1, max: 23 }), fc.integer(), (n, kWanted, extraRows, seed) => {
    const k = Math.min(kWanted, n), rows = Math.ceil(MIN_TOPK / n) + extraRows;
    let s = seed >>> 0;
    const next = () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 2 ** 32; };
    // Many ties (small integers, ±0) and the specials, among uniform values.
    const specials = [0, -0, 1, -1, 2.5, Infinity, -Infinity, NaN, 1e-30, -1e-45];
    const x = Float32Array.from({ length: rows * n }, () => { const u = next(); return u < 0.08 ? specials[Math.floor(next() * specials.length)]! : u < 0.4 ? Math.floor(next() * 4) : next() * 2 - 1; });
    const want = new Int32Array(rows * k), got = new Int32Array(rows * k), flags = new Int32Array(rows);
    topkIndices(x, [rows, n], k, want, true);
    assert.ok(simd.topk(x, rows, n, k, got, flags));
    for (let r = 0; r < rows; r++) {
      const row = x.subarray(r * n, (r + 1) * n);
      const needsLoop = row.some((v) => Number.isNaN(v)) || row.filter((v) => v > -Infinity).length < k;
      assert.equal(flags[r], needsLoop ? 1 : 0, `row ${r} flag: ${Array.from(row)}`);
      if (!needsLoop) assert.deepEqual(Array.from(got.subarray(r * k, (r + 1) * k)), Array.from(want.subarray(r * k, (r + 1) * k)), `row ${r} (n ${n}, k ${k}): ${Array.from(row)}`);
    }
  }), numRuns(200));
  assert.equal(simd.topk(new Float32Array(MIN_TOPK - 1), 1, MIN_TOPK - 1, 2, new Int32Array(2), new Int32Array(1)), false, 'below MIN_TOPK it declines');
  assert.equal(simd.topk(new Float32Array(1024), 32, 32, 17, new Int32Array(32 * 17), new Int32Array(32)), false, 'k above 16 stays in the loop');
});

test('the backend\'s float32 top-k runs on SIMD with the scalar kernel\'s indices and values (NaN and −∞ rows included); smallest-first and float64 stay in the loop', () => {
  const rows = 300, n = 16;
  const raw = Array.from(values(rows * n, 21)).map((v, i) => (i % 97 === 0 ? NaN : i % 89 === 0 ? -Infinity : i % 7 === 0 ? 1 : v));
  const x = mt.tensor(raw, [rows, n]);
  const run = () => [3, 16].flatMap((k) => { const t = mt.topk(x, k); return [Array.from(t.indices.dataSync()), Array.from(t.values.dataSync())]; });
  try {
    mt.setBackend('cpu', { simd: true });
    const before = mt.backendInfo().simdMathCalls as number;
    const onSimd = run();
    assert.equal(mt.backendInfo().simdMathCalls, before + 2, 'both top-k calls ran on the SIMD kernel');
    const beforeOthers = mt.backendInfo().simdMathCalls as number;
    mt.topk(x, 3, { largest: false });
    mt.topk(mt.tensor(raw, [rows, n], { dtype: 'float64' }), 3);
    assert.equal(mt.backendInfo().simdMathCalls, beforeOthers, 'smallest-first and float64 top-k stay in the loop');
    mt.setBackend('cpu', { simd: false });
    const scalar = run();
    onSimd.forEach((v, i) => assert.deepEqual(v, scalar[i]));
  } finally {
    mt.setBackend('cpu', { simd: true });
  }
});

test(`SIMD Adam gives the scalar fused kernel's float32 bits (L2, AdamW, no decay; lengths with padding)`, () => {
  const options = [{ weightDecay: 0, decoupled: false }, { weightDecay: 0.1, decoupled: false }, { weightDecay: 0.01, decoupled: true }];
  for (const n of [16, 37, 1000]) {
    for (const [j, o] of options.entries()) {
      const p = values(n, 1 + j), g = values(n, 2 + j), m = values(n, 3 + j).map((x) => x / 10), v = values(n, 4 + j).map((x) => x * x / 100);
      const a = { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, step: 7, ...o };
      const simdOut = [new Float32Array(n), new Float32Array(n), new Float32Array(n)], scalarOut = [new Float32Array(n), new Float32Array(n), new Float32Array(n)];
      assert.ok(simd.adam(p, g, m, v, a, simdOut[0]!, simdOut[1]!, simdOut[2]!));
      adamStep(p, g, m, v, a, scalarOut[0]!, scalarOut[1]!, scalarOut[2]!, true);
      simdOut.forEach((o2, k) => o2.forEach((x, i) => { if (!bitsEqual(x, scalarOut[k]![i]!)) assert.fail(`n ${n} ${JSON.stringify(o)} output ${k} element ${i}: SIMD ${x}, scalar ${scalarOut[k]![i]}`); }));
    }
  }
});

test('the math module validates; without WebAssembly SIMD, create() returns the reason (the scalar float32 kernels run, with the same bits)', async () => {
  const { mathModuleBytes } = await import('../../src/backends/cpu/wasm/math-module.js');
  const { wasmApi } = await import('../../src/backends/cpu/wasm/wasm-api.js');
  assert.ok(wasmApi!.validate(mathModuleBytes()));
  const noSimd = {
    ...wasmApi!,
    Module: class { constructor() { throw new Error('Compiling function #0 failed: invalid simd opcode'); } },
    Memory: wasmApi!.Memory, Instance: wasmApi!.Instance, validate: () => false,
  } as unknown as NonNullable<typeof wasmApi>;
  assert.match(String(WasmMath.create(noSimd)), /WebAssembly SIMD128 is not available here \(Compiling function #0 failed: invalid simd opcode\)/);
  assert.equal(WasmMath.create(null), 'no WebAssembly in this JavaScript engine');
});

test('Philox rounds on WebAssembly: the words of the JavaScript rounds (counters across 2³², any key); normal draws (rounds and Box–Muller in SIMD lanes) the JavaScript draws\' bits; randn/rand give the same bits with and without SIMD', () => {
  const { philoxBlocks } = simd;
  fc.assert(fc.property(
    fc.oneof(fc.integer({ min: 0, max: 2 ** 32 + 10 }), fc.constant(2 ** 32 - 3), fc.integer({ min: 2 ** 40, max: 2 ** 40 + 100 })),
    fc.integer({ min: 1, max: 300 }), fc.nat(2 ** 32 - 1), fc.nat(2 ** 32 - 1),
    (b0, count, k0, k1) => {
      const want = new Uint32Array(4 * count), got = new Uint32Array(4 * count);
      jsPhiloxBlocks(b0, count, k0, k1, want);
      philoxBlocks(b0, count, k0, k1, got);
      assert.deepEqual(got, want);
    }), numRuns(60));
  // Whole draws, odd counters and lengths across batches of 4096 blocks (the JavaScript rounds'
  // words) and of 65536 (the SIMD normal pairs'), float32 and float64.
  for (const dtype of ['float32', 'float64'] as const) {
    // 2·(2³² − 3): the SIMD normal kernel's four blocks cross a carry into the counter's high word.
    for (const counter of [0, 1, 8191, 2 ** 33 + 1, 2 * (2 ** 32 - 3), 2 * (2 ** 32 - 3) + 1]) {
      for (const n of [1, 2, 7, 8193, 20001, 2 * 65536 + 3]) {
        for (const dist of ['normal', 'uniform'] as const) {
          const a = dtype === 'float32' ? new Float32Array(n) : new Float64Array(n), b = a.slice(), c = a.slice();
          fillRandom(a, dist, [7, 9], counter);
          fillRandom(b, dist, [7, 9], counter, philoxBlocks);
          fillRandom(c, dist, [3000000000, 9], counter, philoxBlocks, simd.normalPairs);
          assert.deepEqual(b, a, `${dist} ${dtype} counter ${counter} n ${n}`);
          if (dist === 'normal') {
            fillRandom(a, dist, [3000000000, 9], counter);
            assert.deepEqual(c, a, `SIMD normal pairs, ${dtype} counter ${counter} n ${n}`);
          }
        }
      }
    }
  }
  const draw = () => { mt.manualSeed(3); return [mt.randn([70, 33]).dataSync(), mt.rand([5, 1001], { dtype: 'float64' }).dataSync()]; };
  const calls = mt.backendInfo().simdMathCalls as number;
  const withSimd = draw();
  assert.ok((mt.backendInfo().simdMathCalls as number) > calls, 'the draws ran on the WebAssembly rounds');
  mt.setBackend('cpu', { simd: false });
  const scalar = draw();
  mt.setBackend('cpu', { simd: true });
  assert.deepEqual(withSimd, scalar);
});

/** float32 values with the specials mixed in: NaN, ±0, ±∞, subnormals, huge and tiny. */
function mixed(n: number, seed: number): number[] {
  const v = Array.from(values(n, seed));
  const specials = [NaN, 0, -0, Infinity, -Infinity, 1e-40, -3e-39, 3e38, -1e-30];
  for (let i = seed % 7; i < n; i += 11) v[i] = specials[(i + seed) % specials.length]!;
  return v;
}

test('ln in float64 lanes (fdlibm\'s log, the Box–Muller radius) is Math.log bit for bit: any bit pattern, around 1 (its |f| < 2⁻²⁰ branch), subnormals and the specials', () => {
  const n = 1 << 16, x = new Float64Array(n), got = new Float64Array(n), words = new Uint32Array(x.buffer);
  let seed = 12345;
  const next = () => { seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0; return seed; };
  for (let i = 0; i < words.length; i++) words[i] = next();
  const specials = [0, -0, 1, -1, Infinity, -Infinity, NaN, 5e-324, 2 ** -1022, 2 ** -1023, 2 ** -53, 1 - 2 ** -53, 1 + 2 ** -52, Math.SQRT1_2, Math.SQRT2, 0.5, 2, Number.MAX_VALUE];
  x.set(specials);
  for (let i = 100; i < 20000; i++) x[i] = 1 + ((next() / 2 ** 32) - 0.5) * 2 ** -18;
  for (let i = 20000; i < 40000; i++) x[i] = 1 - (next() * 2 ** 21 + (next() >>> 11)) / 2 ** 53; // 1 − u, the radius' argument
  for (let i = 40000; i < 41000; i++) x[i] = next() * 2 ** -1074; // subnormals
  assert.ok(simd.f64Unary('log', x, got));
  for (let i = 0; i < n; i++) assert.ok(Object.is(got[i], Math.log(x[i]!)), `ln(${x[i]}): ${got[i]} against Math.log ${Math.log(x[i]!)}`);
});

test('boxMuller: cos and sin of 2πu2 within 2 ulp of Math.cos and Math.sin of the exactly reduced angle, each quadrant (measured: 2.0); pairs standard normal', () => {
  const pair = new Float64Array(2), ulp64 = (v: number) => 2 ** (Math.max(Math.floor(Math.log2(Math.abs(v))), -1022) - 52);
  const quarter = [0, 0, 0, 0];
  let worst = 0, seed = 7;
  const next = () => { seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0; return seed; };
  for (let t = 0; t < 200000; t++) {
    // u1 = 1 − e^−½ gives r = 1, so the pair is (cos, sin) itself.
    const u2 = ((next() >>> 5) * 2 ** 26 + (next() >>> 6)) / 2 ** 53, u1 = 1 - Math.exp(-0.5);
    boxMuller(u1, u2, pair);
    const r = Math.sqrt(-2 * Math.log(1 - u1)), q = Math.round(u2 * 4), f = u2 - q / 4, a = 2 * Math.PI * f;
    const [c, s] = [[Math.cos(a), Math.sin(a)], [-Math.sin(a), Math.cos(a)], [-Math.cos(a), -Math.sin(a)], [Math.sin(a), -Math.cos(a)]][q & 3]!;
    quarter[q & 3]!++;
    for (const [got, want] of [[pair[0]! / r, c!], [pair[1]! / r, s!]] as const) {
      if (want !== 0) worst = Math.max(worst, Math.abs(got - want) / ulp64(want));
    }
  }
  assert.ok(quarter.every((k) => k > 40000), `every quadrant drawn: ${quarter}`);
  assert.ok(worst <= 2, `worst error ${worst} ulp`);
  // Moments of 10⁶ draws: mean 0 ± 0.005, variance 1 ± 0.005, and the pair's correlation 0 ± 0.005.
  const n = 1_000_000, z = new Float64Array(n);
  fillRandom(z, 'normal', [11, 13], 0, simd.philoxBlocks, simd.normalPairs);
  let m = 0, v = 0, cov = 0;
  for (let i = 0; i < n; i++) m += z[i]!;
  m /= n;
  for (let i = 0; i < n; i++) v += (z[i]! - m) ** 2;
  for (let i = 0; i < n; i += 2) cov += z[i]! * z[i + 1]!;
  v /= n; cov /= n / 2;
  assert.ok(Math.abs(m) < 0.005 && Math.abs(v - 1) < 0.005 && Math.abs(cov) < 0.005, `mean ${m}, variance ${v}, pair covariance ${cov}`);
});

test('float32 add, sub, mul, div on the math module give the scalar kernels\' bits for every layout it takes (one shape, scalars, rows, columns), specials included; other layouts stay scalar', () => {
  const sameBits = (x: number[], y: number[]) => x.length === y.length && x.every((v, i) => Object.is(v, y[i]) || (Number.isNaN(v) && Number.isNaN(y[i]!)));
  // Each layout, and whether its rows are a pattern the module takes (a row [C] or a column [.., 1] of out's leading dims).
  const layouts = (R: number, C: number): [number[], number[], boolean][] => [
    [[R, C], [R, C], false], [[R, C], [], false], [[], [R, C], false], [[R, C], [R, 1], true], [[R, 1], [R, C], true], [[R, C], [C], true],
    [[C], [R, C], true], [[R, C], [1, C], true], [[2, R, C], [R, 1], false], [[2, R, C], [2, R, 1], true], [[R, 1], [1, C], false],
  ];
  fc.assert(fc.property(fc.integer({ min: 1, max: 90 }), fc.integer({ min: 1, max: 40 }), fc.integer({ min: 0, max: 1e6 }), (R, C, seed) => {
    for (const [aShape, bShape, rowPattern] of layouts(R, C)) {
      const size = (s: number[]) => s.reduce((p, q) => p * q, 1);
      const av = mixed(size(aShape), seed), bv = mixed(size(bShape), seed + 1);
      for (const op of ['add', 'sub', 'mul', 'div'] as const) {
        const run = (on: boolean) => {
          mt.setBackend('cpu', { simd: on });
          const before = mt.backendInfo().simdMathCalls as number;
          const y = mt[op](mt.tensor(av, aShape), mt.tensor(bv, bShape));
          return { y: Array.from(y.dataSync()), calls: (mt.backendInfo().simdMathCalls as number) - before, shape: [...y.shape] };
        };
        const on = run(true), off = run(false);
        assert.ok(sameBits(on.y, off.y), `${op} [${aShape}] ⊕ [${bShape}]`);
        // Taken from 1024 elements when each operand is whole or a scalar, or its rows are a pattern and whole vectors.
        const n = size(on.shape), cols = on.shape[on.shape.length - 1] ?? 1;
        const wholeOrScalar = (s: number[]) => size(s) === n || size(s) === 1;
        const eligible = n >= 1024 && ((wholeOrScalar(aShape) && wholeOrScalar(bShape)) || (rowPattern && cols % 4 === 0));
        assert.equal(on.calls, eligible ? 1 : 0, `${op} [${aShape}] ⊕ [${bShape}] on the module: ${on.calls}`);
      }
    }
    mt.setBackend('cpu', { simd: true });
  }), numRuns(12));
});

test('relu\'s gradient on the math module gives the scalar kernel\'s bits (NaN, ±0, ±∞ in dy and x; lengths with padding)', () => {
  for (const n of [1024, 1027, 5000]) {
    const dy = mixed(n, 3), x = mixed(n, 8);
    const run = (on: boolean) => {
      mt.setBackend('cpu', { simd: on });
      const before = mt.backendInfo().simdMathCalls as number;
      const xt = mt.tensor(x).requiresGrad_();
      xt.relu().backward(mt.tensor(dy));
      return { g: Array.from(xt.grad!.dataSync()), calls: (mt.backendInfo().simdMathCalls as number) - before };
    };
    const on = run(true), off = run(false);
    assert.equal(on.calls, 1, 'reluGrad ran on the module');
    assert.ok(on.g.every((v, i) => Object.is(v, off.g[i]) || (Number.isNaN(v) && Number.isNaN(off.g[i]!))), `n = ${n}`);
  }
  mt.setBackend('cpu', { simd: true });
});

/** Doubles over the whole line: random bit patterns (NaN, ±∞, subnormals, huge and tiny), the ranges e^x uses, and fdlibm's branch edges. */
function doubles(n: number, seed: number): Float64Array {
  let s = seed >>> 0;
  const next = () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 2 ** 32; };
  const out = new Float64Array(n), words = new Uint32Array(out.buffer);
  for (let i = 0; i < n; i++) {
    const kind = i % 4;
    if (kind === 0) { words[2 * i] = next() * 2 ** 32; words[2 * i + 1] = next() * 2 ** 32; }
    else if (kind === 1) out[i] = (next() * 2 - 1) * 760;
    else if (kind === 2) out[i] = (next() * 2 - 1) * 2;
    else out[i] = (next() * 2 - 1) * 2 ** (next() * 80 - 70);
  }
  const edges = [0, -0, 1, -1, NaN, Infinity, -Infinity, 0.5 * Math.LN2, 1.5 * Math.LN2, -0.5 * Math.LN2, -1.5 * Math.LN2, 2 ** -28, -(2 ** -28),
    709.782712893384, 709.7827128933841, 709.79, -708.39, -708.4, -709.1, -744.4, -745.1332191019411, -745.14, 5e-324, Number.MAX_VALUE, -Number.MAX_VALUE];
  out.set(edges.slice(0, Math.min(edges.length, n)));
  return out;
}

test('expF64 (fdlibm, the SIMD kernels\' reference) is Math.exp bit for bit: random bit patterns, e^x\'s working ranges, the branch edges', () => {
  const x = doubles(400_000, 11);
  let differ = 0, first = '';
  for (let i = 0; i < x.length; i++) {
    const a = expF64(x[i]!), b = Math.exp(x[i]!);
    if (!bitsEqual(a, b)) { if (differ++ === 0) first = `e^${x[i]}: ${a} against ${b}`; }
  }
  assert.equal(differ, 0, `${differ} of ${x.length} differ; first ${first}`);
  // Φ's float32 form stays within float32's resolution of the float64 Φ (Numerical Recipes: < 1.2e-7 relative).
  for (const v of [-12, -5, -2, -0.5, 0, 0.3, 1, 4, 8]) {
    const rel = Math.abs(normalCdfFloat32(v) - normalCdf(v)) / normalCdf(v);
    assert.ok(rel < 2e-7, `Φ(${v}): relative error ${rel}`);
  }
});

/** Rows of E noisy logits with each row's top m indices (ties to the lower index), and the other operands, at one scale. */
function gatingCase(N: number, E: number, m: number, seed: number, scale: number, tinyStddev: boolean) {
  let s = seed >>> 0;
  const next = () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 2 ** 32; };
  const clean = Float32Array.from({ length: N * E }, () => (next() * 2 - 1) * scale);
  const noisy = Float32Array.from(clean, (v) => v + (next() * 2 - 1) * scale);
  const stddev = Float32Array.from({ length: N * E }, () => (tinyStddev ? next() * 1e-30 : next() * scale + 1e-6));
  const dP = Float32Array.from({ length: N * E }, () => next() * 2 - 1);
  if (N * E > 64) { clean[3] = NaN; stddev[7] = 0; clean[11] = Infinity; stddev[19] = Infinity; dP[23] = -0; }
  if (N >= 8) {
    // A row of ties (every noisy logit equal to its thresholds), a NaN logit, an infinite dP (∞ and NaN threshold sums), a row of zeros (−0 among them).
    noisy.fill(0.25, 2 * E, 3 * E); noisy[3 * E + 1] = NaN; dP[4 * E] = Infinity; dP[5 * E + E - 1] = -Infinity; dP[5 * E] = Infinity;
    for (let j = 0; j < E; j++) { noisy[6 * E + j] = j % 2 === 0 ? -0 : 0; clean[6 * E + j] = 0; }
  }
  const indices = new Int32Array(N * m);
  for (let n = 0; n < N; n++) {
    const order = Array.from({ length: E }, (_, i) => i).sort((a, b) => noisy[n * E + b]! - noisy[n * E + a]! || a - b);
    for (let j = 0; j < m; j++) indices[n * m + j] = order[j]!;
  }
  return { clean, noisy, stddev, dP, indices };
}

test('the load estimator P(x, i) with Φ and e^x on SIMD (float64 lanes) gives the loops\' float32 bits, forward and backward, with its thresholds and their gradients\' row sums in JavaScript or on the module', () => {
  let rowCalls = 0;
  const plain: ProbInTopKPlanes = {
    forward: (c, t, sd, o) => simd.probInTopK(c, t, sd, o),
    backward: (dP, c, t, sd, dc, dsd) => simd.probInTopKBackward(dP, c, t, sd, dc, dsd),
  };
  const rows: ProbInTopKPlanes = {
    ...plain,
    thresholds: (noisy, tRows, thr, E) => { const done = simd.thresholds(noisy, tRows, thr, E); if (done) rowCalls++; return done; },
    thresholdSums: (noisy, dc, tRows, sums, E) => { const done = simd.thresholdSums(noisy, dc, tRows, sums, E); if (done) rowCalls++; return done; },
  };
  for (const planes of [plain, rows]) {
  const same = (a: Float32Array, b: Float32Array, what: string) => {
    for (let i = 0; i < a.length; i++) if (!bitsEqual(a[i]!, b[i]!)) assert.fail(`${what}[${i}]: SIMD ${b[i]}, loop ${a[i]}`);
  };
  for (const [N, E, k] of [[300, 16, 2], [257, 4, 1], [33, 7, 3], [64, 64, 4], [3, 6, 2]] as const) {
    for (const [scale, tiny] of [[1e-3, false], [1, false], [30, false], [1e4, false], [1, true]] as const) {
      const m = k + 1, { clean, noisy, stddev, dP, indices } = gatingCase(N, E, m, N * E + k, scale, tiny);
      const what = `N ${N} E ${E} k ${k} scale ${scale}${tiny ? ' tiny σ' : ''}`;
      const loop = new Float32Array(N * E), vec = new Float32Array(N * E);
      probInTopK(clean, noisy, stddev, indices, E, m, k, true, loop, null);
      probInTopK(clean, noisy, stddev, indices, E, m, k, true, vec, planes);
      same(loop, vec, `${what}: P`);
      const grads = () => [new Float32Array(N * E), new Float32Array(N * E), new Float32Array(N * E)] as const;
      const [c1, n1, s1] = grads(), [c2, n2, s2] = grads();
      probInTopKBackward(dP, clean, noisy, stddev, indices, E, m, k, true, c1, n1, s1, null);
      probInTopKBackward(dP, clean, noisy, stddev, indices, E, m, k, true, c2, n2, s2, planes);
      same(c1, c2, `${what}: ∂clean`);
      same(n1, n2, `${what}: ∂noisy`);
      same(s1, s2, `${what}: ∂stddev`);
    }
  }
  }
  assert.equal(rowCalls, 3 * 5 * 3, 'E = 16, 4 and 64 at five scales took the module\'s thresholds (forward and backward) and sums; E = 7 and 6 declined');
  // Through the backend: the fused op runs P and its gradient on the module, with the loops' bits.
  const { clean, noisy, stddev, dP, indices } = gatingCase(200, 16, 3, 99, 2, false);
  const run = (on: boolean) => {
    mt.setBackend('cpu', { simd: on });
    const before = (mt.backendInfo().simdMathCalls as number | undefined) ?? 0;
    const [c, n, sd] = [clean, noisy, stddev].map((a) => mt.tensor(a, [200, 16]).requiresGrad_());
    const p = probInTopKAt(c!, n!, sd!, mt.tensor(indices, [200, 3]), 2);
    p.backward(mt.tensor(dP, [200, 16]));
    const calls = ((mt.backendInfo().simdMathCalls as number | undefined) ?? 0) - before;
    return { values: [p, c!.grad!, n!.grad!, sd!.grad!].map((t) => Array.from(t.dataSync())), calls };
  };
  const on = run(true), off = run(false);
  mt.setBackend('cpu', { simd: true });
  assert.equal(on.calls, 5, 'P and its gradient ran on the module, their thresholds (twice) and sums too');
  on.values.forEach((v, j) => assert.ok(v.every((x, i) => bitsEqual(x, off.values[j]![i]!)), `output ${j}: the same bits with SIMD off`));
});

test('e^x\'s shortcut (both lanes 2⁻²⁸ ≤ |x| < 708, neither 1: one multiply by 2^k, no selects) keeps Math.exp\'s bits at its bounds and beside lanes that take the full steps', () => {
  const up = (v: number) => { const b = new Float64Array([v]), w = new BigInt64Array(b.buffer); w[0]! += v >= 0 ? 1n : -1n; return b[0]!; };
  const down = (v: number) => { const b = new Float64Array([v]), w = new BigInt64Array(b.buffer); w[0]! -= v > 0 ? 1n : -1n; return b[0]!; };
  const bounds = [2 ** -28, -(2 ** -28), down(2 ** -28), -down(2 ** -28), 708, -708, down(708), -down(708), 1, down(1), up(1), -1,
    707.5, -707.5, 708.4, -708.4, 709.5, -708.9, -745, 709.78, 0.5 * Math.LN2, 1.5 * Math.LN2, -0.5 * Math.LN2, 3, -3, 0.125, NaN, Infinity, -Infinity, 0, -0];
  // Every ordered pair of them in one vector, both dtypes' paths (float32 through float64 lanes).
  const pairs = bounds.flatMap((a) => bounds.flatMap((b) => [a, b]));
  const y = new Float64Array(pairs.length);
  assert.ok(simd.f64Unary('exp', Float64Array.from(pairs), y));
  pairs.forEach((v, i) => assert.ok(bitsEqual(y[i]!, Math.exp(v)), `float64 e^${v} beside e^${pairs[i ^ 1]}: SIMD ${y[i]}, Math.exp ${Math.exp(v)}`));
  const x32 = Float32Array.from(pairs), y32 = new Float32Array(pairs.length);
  assert.ok(simd.f64Unary('exp', x32, y32));
  x32.forEach((v, i) => assert.ok(bitsEqual(y32[i]!, f32(Math.exp(v))), `float32 e^${v}: SIMD ${y32[i]}, Math.exp rounded ${f32(Math.exp(v))}`));
});

test('e^x in float64 lanes on the module is Math.exp bit for bit (float64: any bit pattern; float32: rounded once), and float32 Φ the scalar\'s; the backend\'s exp and normalCdf run there', () => {
  for (const n of [16, 17, 1001, 200_003]) {
    const x = doubles(n, n), y = new Float64Array(n);
    assert.ok(simd.f64Unary('exp', x, y));
    for (let i = 0; i < n; i++) if (!bitsEqual(y[i]!, Math.exp(x[i]!))) assert.fail(`float64 e^${x[i]}: SIMD ${y[i]}, Math.exp ${Math.exp(x[i]!)}`);
    const x32 = Float32Array.from(x), y32 = new Float32Array(n), p32 = new Float32Array(n);
    assert.ok(simd.f64Unary('exp', x32, y32));
    assert.ok(simd.f64Unary('normalCdf', x32, p32));
    for (let i = 0; i < n; i++) {
      if (!bitsEqual(y32[i]!, f32(Math.exp(x32[i]!)))) assert.fail(`float32 e^${x32[i]}: SIMD ${y32[i]}`);
      if (!bitsEqual(p32[i]!, f32(normalCdfFloat32(x32[i]!)))) assert.fail(`float32 Φ(${x32[i]}): SIMD ${p32[i]}, scalar ${f32(normalCdfFloat32(x32[i]!))}`);
    }
  }
  assert.equal(simd.f64Unary('normalCdf', new Float64Array(64), new Float64Array(64)), false, 'float64 Φ stays on its series');
  assert.equal(simd.f64Unary('exp', new Float32Array(MIN_ELEMENTS - 1), new Float32Array(MIN_ELEMENTS - 1)), false, 'below MIN_ELEMENTS it declines');
  for (const dtype of ['float32', 'float64'] as const) {
    const x = doubles(999, 3);
    const run = (on: boolean) => {
      mt.setBackend('cpu', { simd: on });
      const before = (mt.backendInfo().simdMathCalls as number | undefined) ?? 0;
      const t = mt.tensor(x, { dtype });
      const out = [t.exp(), ...(dtype === 'float32' ? [mt.normalCdf(t)] : [])].map((r) => Array.from(r.dataSync()));
      return { out, calls: ((mt.backendInfo().simdMathCalls as number | undefined) ?? 0) - before };
    };
    const on = run(true), off = run(false);
    mt.setBackend('cpu', { simd: true });
    assert.equal(on.calls, dtype === 'float32' ? 2 : 1, `${dtype}: ran on the module`);
    on.out.forEach((v, j) => assert.ok(v.every((a, i) => bitsEqual(a, off.out[j]![i]!)), `${dtype} op ${j}: the scalar kernel's bits`));
  }
});

test('logsumexp over rows takes its e^x from the module in one call, with the loops\' bits: both dtypes, rows with NaN, ±∞, all −∞ and one element, wide and narrow rows', () => {
  for (const dtype of ['float32', 'float64'] as const) {
    for (const [rows, n] of [[64, 300], [1024, 16], [7, 1], [3, 40]] as const) {
      const v = Array.from(doubles(rows * n, rows + n), (z, i) => (Number.isFinite(z) ? z : 0) * (i % 5 === 0 ? 1e-3 : 1));
      v[0] = NaN; v[n + 1] = Infinity; v[2 * n + 2] = -Infinity; // a NaN row, a +∞ row, a −∞ among finite values
      if (rows > 4) for (let j = 0; j < n; j++) v[4 * n + j] = -Infinity; // a row of −∞ only
      const run = (on: boolean) => {
        mt.setBackend('cpu', { simd: on });
        const before = (mt.backendInfo().simdMathCalls as number | undefined) ?? 0;
        const lse = mt.noGrad(() => mt.logsumexp(mt.tensor(v, [rows, n], { dtype }), -1));
        return { out: Array.from(lse.dataSync()), calls: ((mt.backendInfo().simdMathCalls as number | undefined) ?? 0) - before };
      };
      const on = run(true), off = run(false);
      mt.setBackend('cpu', { simd: true });
      assert.equal(on.calls, rows * n >= MIN_ELEMENTS ? 1 : 0, `${dtype} [${rows}, ${n}]: e^x on the module`);
      assert.ok(on.out.every((a, i) => bitsEqual(a, off.out[i]!)), `${dtype} [${rows}, ${n}]: the loops' bits`);
    }
  }
});

test('float32 logsumexp over rows of a multiple of 4 runs its row passes in the module (logsumexpRows_f32) with the bits of the JavaScript rows around e^x and of the scalar loops: rows with NaN, ±∞, all −∞, ±0 only, subnormals, one and two threads', () => {
  for (const threads of [1, 2]) {
    for (const [rows, n, seed] of [[64, 300, 1], [1024, 16, 2], [257, 12, 3], [33, 1000, 4], [1024, 256, 5]] as const) {
      const v = Array.from(values(rows * n, seed), (z, i) => z * (i % 7 === 0 ? 1e-3 : 1));
      v[0] = NaN; v[n + 1] = Infinity; v[2 * n + 2] = -Infinity; v[3 * n + n - 1] = NaN;
      for (let j = 0; j < n; j++) { v[4 * n + j] = -Infinity; v[5 * n + j] = j % 2 === 0 ? -0 : 0; v[6 * n + j] = j % 3 === 0 ? -0 : -Infinity; v[7 * n + j] = (j % 5) * 1e-45; }
      v[8 * n + n - 1] = 88.7; v[9 * n + 3] = -103.5;
      const run = (simd: boolean, rowsOn: boolean) => {
        mt.setBackend('cpu', { simd, threads });
        const st = (getBackend() as unknown as { simd: { rowsLogsumexp: boolean; math(): WasmMath | null } }).simd;
        st.rowsLogsumexp = rowsOn;
        const engineMath = simd ? st.math() : null;
        let rowCalls = 0;
        if (engineMath !== null) {
          const original = engineMath.logsumexpRows;
          engineMath.logsumexpRows = function (...args) { const done = original.apply(this, args); if (done) rowCalls++; return done; };
          try { return { out: Array.from(mt.noGrad(() => mt.logsumexp(mt.tensor(v, [rows, n]), -1)).dataSync()), rowCalls }; } finally { engineMath.logsumexpRows = original; st.rowsLogsumexp = true; }
        }
        return { out: Array.from(mt.noGrad(() => mt.logsumexp(mt.tensor(v, [rows, n]), -1)).dataSync()), rowCalls };
      };
      const on = run(true, true), js = run(true, false), scalar = run(false, true);
      mt.setBackend('cpu', { simd: true });
      assert.equal(on.rowCalls, 1, `[${rows}, ${n}]: the row passes ran in the module`);
      assert.equal(js.rowCalls, 0);
      assert.ok(on.out.every((a, i) => bitsEqual(a, js.out[i]!)), `[${rows}, ${n}] ${threads} thread(s): the bits of the JavaScript rows`);
      assert.ok(on.out.every((a, i) => bitsEqual(a, scalar.out[i]!)), `[${rows}, ${n}] ${threads} thread(s): the bits of the scalar loops`);
      assert.ok(Number.isNaN(on.out[0]!) && Number.isNaN(on.out[3]!) && on.out[1] === Infinity && on.out[4] === -Infinity && Math.abs(on.out[5]! - Math.log(n)) < 1e-6);
    }
  }
});

test('on the SIMD matmul\'s shared memory, the math kernels read tensors there and write results there in place (staging the rest, and results whose padded span would leave their block), with the bits of the module on its own memory', async (t) => {
  const { WasmMatmul } = await import('../../src/backends/cpu/wasm/wasm-matmul.js');
  const engine = WasmMatmul.create();
  if (typeof engine === 'string' || !engine.heap.shared) { t.skip(`no shared memory here (${typeof engine === 'string' ? engine : engine.status.threadsReason})`); return; }
  engine.pool?.stop();
  const heap = engine.heap;
  const shared = WasmMath.create(undefined, heap) as WasmMath;
  assert.equal(shared.shared, true);
  // Where an array lives: 0 ordinary, 1 a whole block of the memory, 2 a view inside a block at an odd offset (its padding would spill).
  // Views inside a block have sentinels around them: a write past the view's end would show.
  const sentinels: (Float32Array | Float64Array)[] = [];
  const put = <A extends Float32Array | Float64Array>(x: A, where: number): A => {
    if (where === 0) return x;
    const dtype = x instanceof Float64Array ? 'float64' : 'float32';
    if (where === 1) { const whole = heap.place(dtype, x.length, 2 ** 30)! as A; whole.set(x); return whole; }
    const block = heap.place(dtype, x.length + 8, 2 ** 30)! as A;
    block.fill(12345);
    sentinels.push(block.subarray(0, 1), block.subarray(1 + x.length));
    const v = block.subarray(1, 1 + x.length) as A;
    v.set(x);
    return v;
  };
  const bitsOf = (a: Float32Array | Float64Array) => Array.from(a, (v) => (Number.isNaN(v) ? 'NaN' : Object.is(v, -0) ? '-0' : v));
  fc.assert(fc.property(fc.integer({ min: 1, max: 700 }), fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 8, maxLength: 8 }), fc.integer(), (n4, where, seed) => {
    const n = Math.max(MIN_ELEMENTS, n4), d = 8, m = Math.max(2, Math.ceil(n / d)), rows = 5;
    const x = values(n, seed), y = values(n, seed ^ 0x55), z = values(n, seed ^ 0x77);
    const out = () => new Float32Array(n).fill(NaN);
    const check = (what: string, run: (m: WasmMath, place: boolean) => (Float32Array | Float64Array)[]) => {
      const ref = run(simd, false).map(bitsOf), got = run(shared, true).map(bitsOf);
      assert.deepEqual(got, ref, `${what} n=${n} where=${where}`);
      for (const s of sentinels.splice(0)) assert.ok(s.every((v) => v === 12345), `${what}: nothing written past a view`);
    };
    const before = shared.inPlace;
    check('sigmoid', (mm, p) => { const o = p ? put(out(), where[1]!) : out(); mm.unary('sigmoid', p ? put(x, where[0]!) : x, o); return [o]; });
    check('exp f64', (mm, p) => { const x64 = Float64Array.from(x, (v) => v * 3); const o = new Float64Array(n); const oo = p ? put(o, where[2]!) : o; mm.f64Unary('exp', p ? put(x64, where[3]!) : x64, oo); return [oo]; });
    check('Φ f32', (mm, p) => { const o = p ? put(out(), where[4]!) : out(); mm.f64Unary('normalCdf', p ? put(x, where[5]!) : x, o); return [o]; });
    check('add', (mm, p) => { const o = p ? put(out(), where[0]!) : out(); mm.arithmetic('add', 'vv', p ? put(x, where[6]!) : x, 0, p ? put(y, where[7]!) : y, 0, 1, n, o); return [o]; });
    check('reluGrad', (mm, p) => { const nn = Math.max(n, 1024); const a = values(nn, seed), b = values(nn, seed + 1), o = new Float32Array(nn); const oo = p ? put(o, where[1]!) : o; mm.reluGrad(p ? put(a, where[2]!) : a, p ? put(b, where[3]!) : b, oo); return [oo]; });
    check('probInTopK', (mm, p) => { const sd = Float32Array.from(z, Math.abs); const o = p ? put(out(), where[4]!) : out(); mm.probInTopK(p ? put(x, where[5]!) : x, p ? put(y, where[6]!) : y, p ? put(sd, where[7]!) : sd, o); return [o]; });
    check('probInTopK backward', (mm, p) => { const sd = Float32Array.from(z, Math.abs); const a = p ? put(out(), where[0]!) : out(), b = p ? put(out(), where[1]!) : out(); mm.probInTopKBackward(p ? put(y, where[2]!) : y, x, z, sd, a, b); return [a, b]; });
    const index = Int32Array.from({ length: m }, (_, i) => (i * 7 + seed) % rows < 0 ? 0 : (i * 7 + seed) % rows);
    const ym = values(m * d, seed ^ 0x99), w = values(m, seed ^ 0x11), dOut = values(rows * d, seed ^ 0x22);
    check('combine', (mm, p) => { const o = new Float32Array(rows * d); const oo = p ? put(o, where[3]!) : o; mm.combine(p ? put(ym, where[4]!) : ym, p ? put(w, where[5]!) : w, index, d, rows, oo); return [oo]; });
    check('combine backward', (mm, p) => { const dy = new Float32Array(m * d), dw = new Float32Array(m); const a = p ? put(dy, where[6]!) : dy, b = p ? put(dw, where[7]!) : dw; mm.combineBackward(p ? put(dOut, where[0]!) : dOut, p ? put(ym, where[1]!) : ym, w, index, d, rows, a, b); return [a, b]; });
    check('adam', (mm, p) => {
      const o = [new Float32Array(n), new Float32Array(n), new Float32Array(n)].map((a, i) => (p ? put(a, where[i]!) : a)) as [Float32Array, Float32Array, Float32Array];
      mm.adam(p ? put(x, where[3]!) : x, y, Float32Array.from(z, (v) => v / 10), Float32Array.from(z, (v) => v * v), { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, decoupled: true, step: 3 }, ...o);
      return o;
    });
    if (where.some((w8) => w8 > 0)) assert.ok(shared.inPlace > before, 'some operands ran in place');
  }), numRuns(60));
  // Philox words land in the staging block, not at address 0 (the matmul threads' control block).
  const words = new Uint32Array(64), ref = new Uint32Array(64);
  const ctrl = new Int32Array(heap.memory.buffer, 0, 16).slice();
  shared.philoxBlocks(5, 16, 1, 2, words);
  simd.philoxBlocks(5, 16, 1, 2, ref);
  assert.deepEqual(words, ref);
  assert.deepEqual(new Int32Array(heap.memory.buffer, 0, 16), ctrl, 'the control block is untouched');
});

test('split over the SIMD matmul\'s threads (pieces of a pool job), every split kernel gives the bits of one call, and the workers ran pieces', { timeout: 120_000 }, async (t) => {
  const { WasmMatmul } = await import('../../src/backends/cpu/wasm/wasm-matmul.js');
  const engine = WasmMatmul.create();
  if (typeof engine === 'string' || engine.pool === null) { t.skip(`no thread pool here (${typeof engine === 'string' ? engine : engine.status.threadsReason})`); return; }
  const pool = engine.pool;
  pool.resize(3);
  const split = WasmMath.create(undefined, engine.heap, engine) as WasmMath;
  // A small call stays on the calling thread; from here on every call is split (when a split
  // pays is a matter of speed, SPLIT_NS; the bits must not depend on it).
  const small = values(1024, 9), calls = split.splitCalls;
  split.unary('sigmoid', small, new Float32Array(1024));
  assert.equal(split.splitCalls, calls, 'a 1024-element σ is not split');
  split.splitNs = 0;
  const bitsOf = (a: Float32Array | Float64Array) => Array.from(a, (v) => (Number.isNaN(v) ? 'NaN' : Object.is(v, -0) ? '-0' : v));
  // Sizes above the split threshold, none a multiple of the piece count or of 4.
  const n = 200_003, x = values(n, 1), y = values(n, 2), z = values(n, 3), sd = Float32Array.from(z, Math.abs);
  const workersBefore = pool.chunksByThread().slice(1).reduce((a, b) => a + b, 0);
  // Workers boot in ~100 ms (longer on a busy machine): until then the calling thread takes every piece.
  for (const start = Date.now(); pool.chunksByThread().slice(1).reduce((a, b) => a + b, 0) === workersBefore;) {
    split.unary('sigmoid', x, new Float32Array(n));
    if (Date.now() - start > 60_000) assert.fail(`workers took no piece within 60 s: ${pool.chunksByThread()}`);
    await new Promise((r) => setTimeout(r, 5));
  }
  const check = (what: string, run: (m: WasmMath) => (Float32Array | Float64Array)[]) => {
    const before = split.splitCalls;
    const got = run(split).map(bitsOf);
    assert.equal(split.splitCalls, before + 1, `${what} was split`);
    assert.deepEqual(got, run(simd).map(bitsOf), what);
  };
  check('sigmoid', (m) => { const o = new Float32Array(n); m.unary('sigmoid', x, o); return [o]; });
  check('tanh', (m) => { const o = new Float32Array(n); m.unary('tanh', x, o); return [o]; });
  check('softplus', (m) => { const o = new Float32Array(n); m.unary('softplus', x, o); return [o]; });
  check('exp f32', (m) => { const o = new Float32Array(n); m.f64Unary('exp', x, o); return [o]; });
  check('exp f64', (m) => { const x64 = Float64Array.from(x, (v) => v * 3), o = new Float64Array(n); m.f64Unary('exp', x64, o); return [o]; });
  check('Φ f32', (m) => { const o = new Float32Array(n); m.f64Unary('normalCdf', x, o); return [o]; });
  check('reluGrad', (m) => { const o = new Float32Array(n); m.reluGrad(x, y, o); return [o]; });
  check('probInTopK', (m) => { const o = new Float32Array(n); m.probInTopK(x, y, sd, o); return [o]; });
  check('probInTopK backward', (m) => { const a = new Float32Array(n), b = new Float32Array(n); m.probInTopKBackward(z, x, y, sd, a, b); return [a, b]; });
  // Arithmetic by rows (vectors, and one float per row splat), and one long row by vectors.
  const rows = 2000, cols = 100; // rows · cols ≤ n: the operands hold every row
  check('mul by rows', (m) => { const o = new Float32Array(rows * cols); m.arithmetic('mul', 'vv', x, cols, y, cols, rows, cols, o); return [o]; });
  check('sub, a column splat', (m) => { const o = new Float32Array(rows * cols); m.arithmetic('sub', 'vs', x, cols, y, 1, rows, cols, o); return [o]; });
  check('div, one row', (m) => { const o = new Float32Array(n); m.arithmetic('div', 'vv', x, 0, y, 0, 1, n, o); return [o]; });
  check('add, one row and a scalar', (m) => { const o = new Float32Array(n); m.arithmetic('add', 'sv', y, 0, x, 0, 1, n, o); return [o]; });
  // The combine's backward by rows: each row reads dOut where its index points (repeats too).
  const d = 256, mRows = 2003, outRows = 1100;
  const index = Int32Array.from({ length: mRows }, (_, i) => (i * 7919) % outRows);
  const dOut = values(outRows * d, 4), ym = values(mRows * d, 5), w = values(mRows, 6);
  check('combine backward', (m) => { const dy = new Float32Array(mRows * d), dw = new Float32Array(mRows); m.combineBackward(dOut, ym, w, index, d, outRows, dy, dw); return [dy, dw]; });
  // Normal draws: pieces of whole groups of four blocks, each from its own counters (a block number past 2³² too).
  for (const [b0, single] of [[7, true], [2 ** 32 - 4001, false]] as const) {
    check(`normal draws ${single ? 'f32' : 'f64'} from block ${b0}`, (m) => [m.normalPairs(b0, 20_001, 0x1234, 0x5678, single).slice()]);
  }
  assert.ok(pool.chunksByThread().slice(1).reduce((a, b) => a + b, 0) > workersBefore, 'the workers computed pieces');
  pool.stop();
});
