// Can a WebAssembly loop compute while cold memory streams in, on this machine, and how much of
// that do the experts' grouped products get? The MoE step's weight traffic (bench/moe-step's
// "weight traffic") is a floor only for kernels that do not overlap it with their arithmetic.
//
// Synthetic part: a loop emitted here (the same emitter as the kernels) reads 128 MiB of
// 512 KiB regions (256 experts' weights, d 256 × hidden 512, float32), regions every 1 MiB
// (an expert's first-layer weights lie between its second-layer ones), and per 64-byte line
// does `work` blocks of 8 f32x4 multiply-adds that consume the loaded vectors (as a product's
// tiles consume the weight). One sequential stream per thread, or four streams a quarter of a
// region apart (the swapped forward's quartered tiles, gemm-module.ts). Warm: the same loop on
// addresses folded into 256 KiB (in L2). Cold − warm, over the time the bare stream takes, is
// the share of the stream the loop did not hide. On two threads each takes half the regions.
//
// Product part: the experts' x[seg]·W_eᵀ (+ bias, relu) as the MoE step runs it (groupedMatmul,
// 256 segments of 8 rows, d 256 → 512), each expert its own weight (cold: 128 MiB) against every
// expert sharing one (warm), on the same threads; its share not hidden likewise.
//
// Everything alternates round by round in one process; medians. Run from a bundle:
//   npx esbuild bench/memory-overlap.ts --bundle --platform=node --format=esm --packages=external \
//     --outfile=dist/bench/memory-overlap.mjs && node dist/bench/memory-overlap.mjs

import { Worker, isMainThread, workerData } from 'node:worker_threads';
import * as mt from '../src/index.js';
import { ModuleBuilder } from '../src/backends/cpu/wasm/wasm-emitter.js';
import { wasmApi, type WasmMemory } from '../src/backends/cpu/wasm/wasm-api.js';
import { groupedMatmul } from '../src/tensor/ops/fused.js';
import { median } from './stats.js';

const KIB = 1024, MIB = 1024 * KIB;
const REGION = 512 * KIB, GAP = MIB, REGIONS = 256, WARM_MASK = 256 * KIB - 1, COLD_MASK = 0x7fffffff;
const BASE = 64 * KIB, PAGES = (BASE + REGIONS * GAP) / (64 * KIB) + 16;
const WORKS = [4, 6];

type Loop = (base: number, regions: number, mask: number, work: number) => void;

if (wasmApi === undefined) throw new Error('memory-overlap: this JavaScript engine has no WebAssembly');
const api = wasmApi;

/** mix1 / mix4(base, regions, mask, work): the loop above over one or four streams, by stream count. */
function loops(memory: WasmMemory): (streams: number) => Loop {
  const mb = new ModuleBuilder({ shared: true, initialPages: PAGES, maximumPages: PAGES });
  for (const streams of [1, 4]) {
    mb.func(`mix${streams}`, ['i32', 'i32', 'i32', 'i32'], [], (c, base, regions, mask, work) => {
      const r = c.local('i32'), l = c.local('i32'), j = c.local('i32'), at = c.local('i32'), off = c.local('i32');
      const lines = c.local('i32'), blocks = c.local('i32');
      const loaded = [0, 1, 2, 3].map(() => c.local('v128')), acc = [...Array(8)].map(() => c.local('v128')), y = c.local('v128');
      c.f32x4Const(0.5).set(y);
      c.i32(REGION / 64 / streams).set(lines);
      c.get(work).i32(streams).i32Mul().set(blocks);
      c.forRange(r, 0, regions, 1, () => {
        c.get(r).i32(GAP).i32Mul().set(at);
        c.forRange(l, 0, lines, 1, () => {
          for (let s = 0; s < streams; s++) {
            c.get(base).get(at).i32(s * (REGION / streams)).i32Add().get(l).i32(6).i32Shl().i32Add().get(mask).i32And().i32Add().set(off);
            for (let q = 0; q < 4; q++) c.get(off).v128Load(q * 16).set(loaded[q]!);
          }
          c.forRange(j, 0, blocks, 1, () => acc.forEach((a, i) => c.get(a).get(loaded[i % 4]!).get(y).f32x4Mul().f32x4Add().set(a)));
        });
      });
      // Stored, so that no part of the loop is dead.
      acc.forEach((a, i) => c.i32(16 * i).get(a).v128Store());
    });
  }
  const x = new api.Instance(new api.Module(mb.bytes()), { env: { memory } }).exports as Record<string, Loop>;
  return (streams) => (streams === 1 ? x.mix1! : x.mix4!);
}

if (!isMainThread) {
  // A second thread: runs the loop named in the control words on its half of the regions, forever.
  const { memory } = workerData as { memory: WasmMemory };
  const f = loops(memory), ctrl = new Int32Array(memory.buffer, 1024, 8);
  for (let seen = 0; ;) {
    Atomics.wait(ctrl, 0, seen);
    seen = Atomics.load(ctrl, 0);
    const half = REGIONS / 2;
    f(ctrl[1]!)(BASE + half * GAP, half, ctrl[2]!, ctrl[3]!);
    Atomics.add(ctrl, 4, 1);
    Atomics.notify(ctrl, 4);
  }
}

async function main(): Promise<void> {
  const rounds = Number(process.env.MIXTAPE_BENCH_ROUNDS ?? 41);
  const memory = new api.Memory({ initial: PAGES, maximum: PAGES, shared: true });
  new Uint8Array(memory.buffer).fill(1, BASE);
  const f = loops(memory), ctrl = new Int32Array(memory.buffer, 1024, 8);
  const worker = new Worker(new URL(import.meta.url), { workerData: { memory } });
  await new Promise((resolve) => setTimeout(resolve, 300));
  /** The loop on `threads` threads; the milliseconds until both halves are done. */
  const loop = (threads: number, streams: number, mask: number, work: number): number => {
    const t0 = performance.now();
    if (threads === 1) { f(streams)(BASE, REGIONS, mask, work); return performance.now() - t0; }
    ctrl[1] = streams; ctrl[2] = mask; ctrl[3] = work; Atomics.store(ctrl, 4, 0);
    Atomics.add(ctrl, 0, 1); Atomics.notify(ctrl, 0);
    f(streams)(BASE, REGIONS / 2, mask, work);
    while (Atomics.load(ctrl, 4) < 1) Atomics.wait(ctrl, 4, 0, 1);
    return performance.now() - t0;
  };

  const T = 1024, d = 256, h = 512, E = 256;
  mt.manualSeed(0);
  const x = mt.randn([2 * T, d]), shared = mt.randn([h, d]);
  const own = Array.from({ length: E }, () => mt.randn([h, d])), biases = Array.from({ length: E }, () => mt.randn([h]));
  const sizes = new Array<number>(E).fill((2 * T) / E);
  const product = (weights: readonly mt.Tensor[]) => (): number => {
    const t0 = performance.now();
    mt.noGrad(() => mt.tidy(() => { groupedMatmul(x, weights, sizes, { transposeB: true, biases, relu: true }); }));
    return performance.now() - t0;
  };

  console.log(`Memory overlap: 128 MiB of 512 KiB regions, ${rounds} alternating rounds, medians (ms); "not hidden" = (cold − warm) / the bare stream`);
  for (const threads of [1, 2]) {
    mt.setBackend('cpu', { threads });
    const cases: [string, () => number][] = [
      ['stream, 1 a thread', () => loop(threads, 1, COLD_MASK, 0)], ['stream, 4 a thread', () => loop(threads, 4, COLD_MASK, 0)],
    ];
    for (const work of WORKS) for (const streams of [1, 4]) {
      cases.push([`${streams} stream(s) work ${work} warm`, () => loop(threads, streams, WARM_MASK, work)]);
      cases.push([`${streams} stream(s) work ${work} cold`, () => loop(threads, streams, COLD_MASK, work)]);
    }
    cases.push(['x·W_eᵀ warm', product(own.map(() => shared))], ['x·W_eᵀ cold', product(own)]);
    for (let r = 0; r < 3; r++) for (const [, run] of cases) run();
    const times = cases.map(() => [] as number[]);
    for (let r = 0; r < rounds; r++) cases.forEach(([, run], i) => times[i]!.push(run()));
    const med = new Map(cases.map(([n], i) => [n, median(times[i]!)]));
    const bare1 = med.get('stream, 1 a thread')!, bare4 = med.get('stream, 4 a thread')!;
    console.log(`\n${threads} thread(s): the bare stream ${bare1.toFixed(2)} ms (${(128 / 1024 / (bare1 / 1000)).toFixed(1)} GiB/s), four streams a thread ${bare4.toFixed(2)}`);
    const row = (label: string, warm: number, cold: number, bare: number) =>
      console.log(`  ${label.padEnd(34)} warm ${warm.toFixed(2)}, cold ${cold.toFixed(2)}: ${(100 * (cold - warm) / bare).toFixed(0)}% of the stream not hidden`);
    for (const work of WORKS) for (const streams of [1, 4]) {
      row(`${streams} stream(s) a thread, work ${work}`, med.get(`${streams} stream(s) work ${work} warm`)!, med.get(`${streams} stream(s) work ${work} cold`)!, streams === 1 ? bare1 : bare4);
    }
    row('experts\' x·W_eᵀ (256 × 8 rows)', med.get('x·W_eᵀ warm')!, med.get('x·W_eᵀ cold')!, bare1);
  }
  await worker.terminate();
  process.exit(0);
}

void main();
