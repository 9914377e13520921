// Where the worker waits in one MoE step (T = 1024, d = 256, hidden 512, k = 2, two threads):
// the calling thread's kernels and the gaps between them, in order, each marked by whether a
// job was running on the worker meanwhile (a job left running, or the kernel's own threaded
// job). What runs with no job beside it is time the worker waits: the MoE/dense ratio moves
// only when that time, or the work beside a job, shrinks. "Beside a job" means posted and not
// yet joined: a job left running may have ended before the work beside it (where the gate
// composes its ops, its x·W_gate ends about 0.2 ms after its post, well before x·W_noise, the
// softplus and the draws do). Medians over 31 steps of each event
// (a step runs the same kernels in the same order every time), and beside each the chunks the
// worker took during it (its chunk counter): that, not "beside a job", says whether it was
// busy (during the gate's balancing half it takes 3–4 of the experts' chunks, each tens of µs
// long, while topkGates and the dispatch run it takes none). With `dense` it times the
// compute-matched dense block instead. On Linux it also reads each thread's CPU time
// (/proc/self/task) over 60 steps: the worker's busy time against the wall time. It first
// runs MIXTAPE_BENCH_WARMUP steps (default 300) untimed, for V8's steady state.
// MIXTAPE_TIMELINE_MIN sets the shortest event listed (ms; 0: all), MIXTAPE_TIMELINE_BY_KERNEL=1
// adds each kernel's count and total time.
// Run from a bundle under plain node:
//   npx esbuild bench/moe-timeline.ts --bundle --platform=node --format=esm --packages=external \
//     --outfile=dist/bench/moe-timeline.mjs && node dist/bench/moe-timeline.mjs 16

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import * as mt from '../src/index.js';
import { CpuBackend } from '../src/backends/cpu/cpu-backend.js';
import { cpuPool } from '../src/backends/cpu/pool.js';
import { CTRL } from '../src/backends/cpu/wasm/gemm-module.js';
import { getBackend } from '../src/tensor/engine.js';
import { median } from './stats.js';

const arg = process.argv[2] ?? '16';
const T = 1024, d = 256, h = 512, k = 2, E = arg === 'dense' ? 0 : Number(arg);
if (!(E === 0 || (Number.isInteger(E) && E >= k))) throw new Error(`moe-timeline: the argument must be 'dense' or a number of experts ≥ ${k}, got ${arg}`);
mt.setBackend('cpu', { threads: 2 });
mt.manualSeed(0);
const x = mt.randn([T, d]);
const dense = new mt.Expert(d, k * h, d);
const moe = E === 0 ? null : new mt.MoE({ inputSize: d, outputSize: d, hiddenSize: h, numExperts: E, k });
const step = moe === null
  ? () => mt.tidy(() => { dense.forward(x).sum().backward(); dense.zeroGrad(); })
  : () => mt.tidy(() => { const o = moe.forward(x); o.output.sum().add(o.auxLoss).backward(); moe.zeroGrad(); });

// Kernels that post a job of their own (split over the threads, or left running).
const THREADED = /^(groupedMatmul|groupedWeightGrads|weightedIndexAddBackward|noisyTopKLogits)$/;
// The worker's chunk count (the control block's per-thread counters): how many chunks it took
// during an event. A job left running may have ended before the event, so "beside a job" does
// not mean the worker was busy; an event during which it took no chunk, longer than a chunk
// (tens of µs), is time it waited.
const engine = (getBackend() as unknown as { simd: { engine(): { heap: { buffer(): ArrayBufferLike } } | string } }).simd.engine();
const workerChunks = typeof engine === 'string' ? () => 0 : () => Atomics.load(new Int32Array(engine.heap.buffer(), 0, CTRL.chunksBy + 2), CTRL.chunksBy + 1);
type Event = { ms: number; label: string; beside: boolean; chunks: number };
let log: Event[] | null = null, depth = 0, lastEnd = 0, lastPending = false, lastChunks = 0;
for (const name of ['run', 'runMany'] as const) {
  const proto = CpuBackend.prototype as unknown as Record<string, (this: unknown, kernel: string, ...rest: unknown[]) => unknown>;
  const original = proto[name]!;
  proto[name] = function (this: unknown, kernel: string, ...rest: unknown[]) {
    if (depth > 0 || log === null) return original.call(this, kernel, ...rest);
    const start = performance.now(), pending = cpuPool.pending !== null, chunks = workerChunks();
    if (lastEnd > 0) log.push({ ms: start - lastEnd, label: `(JavaScript before ${kernel})`, beside: lastPending, chunks: chunks - lastChunks });
    depth++;
    try {
      return original.call(this, kernel, ...rest);
    } finally {
      depth--;
      lastEnd = performance.now();
      lastPending = cpuPool.pending !== null;
      lastChunks = workerChunks();
      log.push({ ms: lastEnd - start, label: kernel, beside: pending || THREADED.test(kernel), chunks: lastChunks - chunks });
    }
  };
}

// Steady state (V8 optimizes most of a step over its first hundreds: see moe-step.bench.ts).
for (let i = 0; i < Number(process.env.MIXTAPE_BENCH_WARMUP ?? 300); i++) step();
const steps: Event[][] = [];
for (let i = 0; i < 31; i++) {
  log = []; lastEnd = 0;
  step();
  steps.push(log);
}
log = null;
const events = steps[0]!.map((e, i) => ({ ...e, ms: median(steps.map((s) => s[i]?.ms ?? 0)), chunks: median(steps.map((s) => s[i]?.chunks ?? 0)) }));
console.log(`${moe === null ? 'dense block' : `MoE E = ${E}`}, 2 threads: the calling thread's kernels and gaps of at least 15 µs, medians of 31 steps (ms); "waits": no job beside it; then the chunks the worker took meanwhile`);
// MIXTAPE_TIMELINE_MIN (ms, default 0.015): the shortest event listed; 0 lists every one.
const shortest = Number(process.env.MIXTAPE_TIMELINE_MIN ?? 0.015);
for (const e of events) if (e.ms >= shortest) console.log(`${e.ms.toFixed(3).padStart(8)} ${e.beside ? '     ' : 'waits'} ${String(e.chunks).padStart(4)} ${e.label}`);
// The events not listed: many short kernels and gaps (small ops, each with its JavaScript).
const unlisted = events.filter((e) => e.ms < shortest);
console.log(`${events.length} events in all; the ${unlisted.length} not listed sum to ${unlisted.reduce((s, e) => s + e.ms, 0).toFixed(2)} ms (${unlisted.filter((e) => e.label.startsWith('(')).length} of them gaps)`);
// MIXTAPE_TIMELINE_BY_KERNEL=1: every kernel's count and total, largest first.
if (process.env.MIXTAPE_TIMELINE_BY_KERNEL) {
  const byLabel = new Map<string, { count: number; ms: number }>();
  for (const e of events) { const t = byLabel.get(e.label) ?? { count: 0, ms: 0 }; t.count++; t.ms += e.ms; byLabel.set(e.label, t); }
  for (const [label, { count, ms }] of [...byLabel].sort((a, b) => b[1].ms - a[1].ms)) console.log(`${ms.toFixed(3).padStart(8)} ${String(count).padStart(4)}× ${label}`);
}
const waits = events.filter((e) => !e.beside).reduce((s, e) => s + e.ms, 0);
console.log(`the worker waits ${waits.toFixed(2)} ms of the step on this thread's work (every event, however short)`);
const idle = events.filter((e) => e.chunks === 0 && e.ms >= 0.1).reduce((s, e) => s + e.ms, 0);
console.log(`events of at least 0.1 ms during which the worker took no chunk: ${idle.toFixed(2)} ms`);

// Each thread's CPU time (utime + stime, clock ticks of 10 ms) over 60 steps, on Linux.
if (existsSync('/proc/self/task')) {
  const ticks = () => new Map(readdirSync('/proc/self/task').map((t) => {
    const s = readFileSync(`/proc/self/task/${t}/stat`, 'utf8'), f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return [t, Number(f[11]) + Number(f[12])] as const;
  }));
  const before = ticks(), start = performance.now();
  for (let i = 0; i < 60; i++) step();
  const wall = (performance.now() - start) / 60, after = ticks();
  const busy = [...after].map(([t, v]) => [t, ((v - (before.get(t) ?? 0)) * 10) / 60] as const).filter(([, v]) => v >= 0.5).sort((a, b) => b[1] - a[1]);
  console.log(`60 steps: ${wall.toFixed(1)} ms a step; CPU ms a step by thread (the calling thread and the worker first): ${busy.map(([t, v]) => `${t} ${v.toFixed(1)}`).join(', ')}`);
}
