// The SIMD matmul against its peers, contenders alternating round by round in one process
// (A, B, C, D, A, B, …) and medians taken — the only figures that mean anything while the
// machine is shared (the same process has measured 3.0 and 4.9 GFLOP/s ten minutes apart):
//
//   mixtape scalar (setBackend('cpu', { simd: false }), the 0.1.0 kernels)
//   mixtape SIMD on 1 thread, and on all threads
//   tfjs-backend-wasm (XNNPACK, SIMD; its multithreaded build does not run in Node: 1 thread)
//
// Every call forces its result to a typed array (dataSync) and frees it, in both libraries.
// Ratios are medians of the per-round ratios, so a slow moment of the machine hits both
// sides of a ratio alike.

import { loadavg } from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import * as mt from '../src/index.js';
import { median } from './stats.js';

interface Contender { name: string; run: () => void }
interface Row { name: string; flops: number; medians: Map<string, number>; ratios: (a: string, b: string) => number }

/** Times each contender `rounds` times, alternating; ms per call per round. */
function alternate(contenders: Contender[], rounds: number, reps: number): Map<string, number[]> {
  for (const c of contenders) for (let i = 0; i < 3; i++) c.run(); // JIT and wasm tier-up
  const times = new Map(contenders.map((c) => [c.name, [] as number[]]));
  for (let r = 0; r < rounds; r++) {
    for (const c of contenders) {
      const t0 = performance.now();
      for (let i = 0; i < reps; i++) c.run();
      times.get(c.name)!.push((performance.now() - t0) / reps);
    }
  }
  return times;
}

export async function runSimdMatmulBench(filter?: string): Promise<string[]> {
  await tf.setBackend('wasm');
  mt.setBackend('cpu', { simd: true });
  const threads = mt.backendInfo().threads as number; // the default: one per core
  const mode = (simd: boolean, t: number) => () => mt.setBackend('cpu', { simd, threads: t });
  console.log(`\n## SIMD matmul, alternating in one process (tfjs-wasm SIMD ${tf.env().getBool('WASM_HAS_SIMD_SUPPORT')}, threads ${tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT')}; mixtape all threads = ${threads})\n`);
  console.log(`(1-minute load average at start: ${loadavg()[0]!.toFixed(2)})\n`);
  const rows: Row[] = [];
  const cases = [
    { name: 'float32 512 A·B', m: 512, k: 512, n: 512, tA: false, tB: false, dtype: 'float32' as const },
    { name: 'float32 512 Aᵀ·B', m: 512, k: 512, n: 512, tA: true, tB: false, dtype: 'float32' as const },
    { name: 'float32 512 A·Bᵀ', m: 512, k: 512, n: 512, tA: false, tB: true, dtype: 'float32' as const },
    { name: 'float64 512 A·B', m: 512, k: 512, n: 512, tA: false, tB: false, dtype: 'float64' as const },
    { name: 'expert 16×256·(512×256)ᵀ float32', m: 16, k: 256, n: 512, tA: false, tB: true, dtype: 'float32' as const },
    { name: 'expert 32×512·512×256 float32', m: 32, k: 512, n: 256, tA: false, tB: false, dtype: 'float32' as const },
    { name: 'LSTM gates 32×256·(1024×256)ᵀ float32', m: 32, k: 256, n: 1024, tA: false, tB: true, dtype: 'float32' as const },
  ].filter((c) => filter === undefined || c.name.includes(filter));
  for (const c of cases) {
    const aShape = c.tA ? [c.k, c.m] : [c.m, c.k], bShape = c.tB ? [c.n, c.k] : [c.k, c.n];
    const a = mt.randn(aShape, { dtype: c.dtype, generator: new mt.Generator(1) });
    const b = mt.randn(bShape, { dtype: c.dtype, generator: new mt.Generator(2) });
    const product = (set: () => void) => () => { set(); mt.tidy(() => { a.matmul(b, { transposeA: c.tA, transposeB: c.tB }).dataSync(); }); };
    const contenders: Contender[] = [
      { name: 'scalar', run: product(mode(false, 1)) },
      { name: 'SIMD 1T', run: product(mode(true, 1)) },
      { name: `SIMD ${threads}T`, run: product(mode(true, threads)) },
    ];
    let ta: tf.Tensor | null = null, tb: tf.Tensor | null = null;
    if (c.dtype === 'float32') {
      ta = tf.tensor(a.dataSync() as Float32Array, aShape);
      tb = tf.tensor(b.dataSync() as Float32Array, bShape);
      // A block body: a tidy that returns the typed array walks all its elements.
      contenders.push({ name: 'tfjs-wasm', run: () => tf.tidy(() => { tf.matMul(ta!, tb!, c.tA, c.tB).dataSync(); }) });
    }
    const flops = 2 * c.m * c.n * c.k;
    const reps = Math.max(1, Math.round(2e7 / flops));
    const times = alternate(contenders, Number(process.env.MIXTAPE_ROUNDS ?? 15), reps);
    const medians = new Map([...times].map(([k, v]) => [k, median(v)]));
    const ratios = (x: string, y: string) => median(times.get(x)!.map((t, i) => times.get(y)![i]! / t));
    rows.push({ name: c.name, flops, medians, ratios });
    const cells = [...medians].map(([k, t]) => `${k} ${(t * 1e3).toFixed(0)} µs = ${(flops / t / 1e6).toFixed(1)} GFLOP/s`);
    console.log(`${c.name}: ${cells.join('; ')}`);
    a.dispose(); b.dispose(); ta?.dispose(); tb?.dispose();
  }

  // The layout and float64 targets compare products with each other: they alternate in a
  // round of their own (comparing rows measured minutes apart would compare the machine's moods).
  let layouts: ((x: string, y: string) => number) | null = null;
  if (filter === undefined || filter.includes('layout')) {
    mt.setBackend('cpu', { simd: true, threads: 1 });
    const n = 512;
    const make = (dtype: 'float32' | 'float64', seed: number) => mt.randn([n, n], { dtype, generator: new mt.Generator(seed) });
    const [a, b, a64, b64] = [make('float32', 1), make('float32', 2), make('float64', 1), make('float64', 2)];
    const one = (x: mt.Tensor, y: mt.Tensor, transposeA: boolean, transposeB: boolean) => () => mt.tidy(() => { x.matmul(y, { transposeA, transposeB }).dataSync(); });
    const times = alternate([
      { name: 'A·B', run: one(a, b, false, false) }, { name: 'Aᵀ·B', run: one(a, b, true, false) },
      { name: 'A·Bᵀ', run: one(a, b, false, true) }, { name: 'float64 A·B', run: one(a64, b64, false, false) },
    ], Number(process.env.MIXTAPE_ROUNDS ?? 15), 1);
    layouts = (x, y) => median(times.get(x)!.map((t, i) => times.get(y)![i]! / t));
    console.log(`layouts, 512², SIMD 1 thread, alternating: ${[...times].map(([k, v]) => `${k} ${(median(v) * 1e3).toFixed(0)} µs`).join('; ')}`);
    for (const t of [a, b, a64, b64]) t.dispose();
  }
  mt.setBackend('cpu', { simd: true, threads });
  await tf.setBackend('cpu');

  // The issue's targets, from the rows above (ratios > 1: the first contender is faster).
  const T = `SIMD ${threads}T`;
  const row = (name: string) => rows.find((r) => r.name === name);
  const lines: string[] = [];
  const ab = row('float32 512 A·B');
  if (ab?.medians.has('tfjs-wasm')) {
    const all = ab.ratios(T, 'tfjs-wasm'), one = ab.ratios('SIMD 1T', 'tfjs-wasm');
    lines.push(`- matmul 512² float32, all threads (${threads}) ≥ 1.15× tfjs-wasm: ${all.toFixed(2)}× — ${all >= 1.15 ? 'met' : 'NOT met'}`);
    lines.push(`- matmul 512² float32, one thread ≥ 0.75× tfjs-wasm: ${one.toFixed(2)}× — ${one >= 0.75 ? 'met' : 'NOT met'}`);
  }
  if (layouts !== null) {
    for (const layout of ['Aᵀ·B', 'A·Bᵀ']) {
      const q = layouts('A·B', layout); // time(layout) / time(A·B), median over rounds
      const r = row(`float32 512 ${layout}`);
      lines.push(`- ${layout} within 15% of A·B (1 thread, time ratio): ${q.toFixed(2)} — ${q <= 1.15 ? 'met' : 'NOT met'}` +
        (ab && r?.medians.has('tfjs-wasm') ? `; tfjs-wasm's ${layout} runs at ${(ab.medians.get('tfjs-wasm')! / r.medians.get('tfjs-wasm')! * 100).toFixed(0)}% of its A·B` : ''));
    }
    const q = layouts('float64 A·B', 'A·B');
    lines.push(`- float64 one thread ≥ 0.4× float32 one thread: ${q.toFixed(2)}× — ${q >= 0.4 ? 'met' : 'NOT met'}`);
  }
  for (const r of rows.filter((x) => x.name.startsWith('expert'))) {
    const q = r.ratios('SIMD 1T', 'scalar');
    lines.push(`- ${r.name}: SIMD 1 thread / scalar speed ${q.toFixed(2)}× (not slower: ${q >= 1 ? 'met' : 'NOT met'})` +
      (r.medians.has('tfjs-wasm') ? `; ${r.ratios('SIMD 1T', 'tfjs-wasm').toFixed(2)}× tfjs-wasm` : ''));
  }
  for (const r of rows) lines.push(`  ${r.name}: ${threads} threads / 1 thread speed ${r.ratios(T, 'SIMD 1T').toFixed(2)}×, SIMD 1T / scalar ${r.ratios('SIMD 1T', 'scalar').toFixed(2)}×`);
  console.log(`\nTargets (SIMD matmul):\n${lines.join('\n')}`);
  return lines;
}
