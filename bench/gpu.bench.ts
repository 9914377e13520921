// GPU backend benchmarks: matmul and the MoE layer on the GPU (each gpu.js mode that runs
// here) against the CPU backend, resident (chains of ops, one readback at the end) vs with
// a readback per call, and the per-call overhead of a tiny kernel. Prints a Markdown
// section for BENCHMARKS.md with the mode and device of each run.
//
//   xvfb-run -a npx tsx bench/gpu.bench.ts                 headlessgl and webgpu
//   npx tsx bench/gpu.bench.ts webgpu                      one mode
//
// Timing: median of `reps` timed runs after one warm-up run (which compiles the kernels).
// Not benchmark.js: webgpu reads back asynchronously, which its synchronous loop cannot time.

import { cpus, loadavg } from 'node:os';
import * as mt from '../src/index.js';

type Mode = 'headlessgl' | 'webgpu';
const modes = (process.argv.slice(2).length ? process.argv.slice(2) : ['headlessgl', 'webgpu']) as Mode[];

async function median(reps: number, fn: () => Promise<void>): Promise<number> {
  await fn(); // warm-up: compiles every kernel
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

const read = async (t: mt.Tensor) => { await t.data(); };
const rows: string[] = [];
const row = (cells: (string | number)[]) => rows.push(`| ${cells.join(' | ')} |`);
const ms = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
const gflops = (flops: number, t: number) => (flops / (t * 1e6)).toFixed(2);

/** matmul n×n·n×n: `chain` products with one readback at the end, per product; and one with its readback. */
async function matmul(n: number, chain: number): Promise<{ resident: number; withReadback: number }> {
  const a = mt.randn([n, n]), b = mt.randn([n, n]).div(Math.sqrt(n));
  const resident = await median(3, async () => {
    let c = a;
    for (let i = 0; i < chain; i++) { const next = c.matmul(b); if (c !== a) c.dispose(); c = next; }
    await read(c);
    c.dispose();
  }) / chain;
  const withReadback = await median(3, async () => { const c = a.matmul(b); await read(c); c.dispose(); });
  mt.dispose([a, b]);
  return { resident, withReadback };
}

/** One MoE training step (forward, backward, SGD) with one readback: the loss. */
async function moeStep(): Promise<number> {
  const gen = new mt.Generator(1);
  const moe = new mt.MoE({ inputSize: 64, outputSize: 64, hiddenSize: 128, numExperts: 8, k: 2, generator: gen });
  const opt = new mt.SGD(moe.parameters(), { lr: 0.01 });
  const x = mt.randn([128, 64], { generator: gen }), y = mt.randn([128, 64], { generator: gen });
  const t = await median(3, async () => {
    const loss = mt.tidy(() => {
      const out = moe.forward(x);
      const l = mt.mse(out.output, y).add(out.auxLoss);
      l.backward();
      return l;
    });
    opt.step();
    opt.zeroGrad();
    await read(loss);
    loss.dispose();
  });
  mt.dispose([moe.parameters(), x, y]);
  return t;
}

/** Per call of a tiny op (add of 1024 floats): resident chains, and readback alone. */
async function overhead(): Promise<{ resident: number; readback: number; fullCall: number }> {
  const x = mt.randn([1024]);
  const chain = 200;
  const resident = await median(3, async () => {
    let c = x;
    for (let i = 0; i < chain; i++) { const next = c.add(1); if (c !== x) c.dispose(); c = next; }
    await read(c);
    c.dispose();
  }) / chain;
  const readback = await median(20, async () => { await read(x); });
  const fullCall = await median(20, async () => { const y = mt.tensor(new Float32Array(1024)).add(x); await read(y); y.dispose(); });
  x.dispose();
  return { resident, readback, fullCall };
}

async function suite(label: string, device: string): Promise<void> {
  const compiled0 = mt.memory().kernelsCompiled;
  const t0 = performance.now();
  const probe = mt.randn([96, 96]).matmul(mt.randn([96, 96]));
  await read(probe);
  const compileMs = performance.now() - t0;
  for (const n of [64, 128, 256]) {
    const r = await matmul(n, n >= 256 ? 4 : 10);
    row([label, device, `matmul ${n}³ resident`, ms(r.resident), gflops(2 * n ** 3, r.resident)]);
    row([label, device, `matmul ${n}³ + readback`, ms(r.withReadback), gflops(2 * n ** 3, r.withReadback)]);
  }
  const step = await moeStep();
  row([label, device, 'MoE step N=128 d=64 h=128 E=8 k=2 (fwd+bwd+SGD, 1 readback)', ms(step), '']);
  const o = await overhead();
  row([label, device, 'tiny op (add 1024) resident, per call', ms(o.resident), '']);
  row([label, device, 'tiny op upload + add + readback', ms(o.fullCall), '']);
  row([label, device, 'readback of 1024 floats', ms(o.readback), '']);
  if (label !== 'cpu') row([label, device, `first 96³ matmul incl. compile (${mt.memory().kernelsCompiled - compiled0} kernels in the whole run)`, ms(compileMs), '']);
}

const header = [
  `## GPU backend (gpu.js)`, '',
  `Run: ${new Date().toISOString()}; ${cpus()[0]?.model ?? '?'} × ${cpus().length}; node ${process.version}; load average ${loadavg().map((l) => l.toFixed(2)).join(', ')}.`,
  'Times are medians in ms per call (GFLOP/s for matmul). "resident": a chain of ops on tensors that stay on',
  'the device, one readback at the end, divided by the chain length. No real GPU was available: the GPU rows',
  'are Mesa software rasterizers on the same CPU cores, which measure overheads, not GPU speed.', '',
  '| backend | device | case | ms | GFLOP/s |', '|---|---|---|---:|---:|',
];

mt.setBackend('cpu');
await suite('cpu', 'typed arrays, 1 thread');
for (const mode of modes) {
  try {
    mt.setBackend('gpu', { mode });
    await mt.ready();
    await read(mt.ones([1]));
    const info = mt.backendInfo();
    const d = info.device as Record<string, string>;
    await suite(`gpu ${mode} (${info.kernelClass})`, d.description ?? d.device ?? d.renderer ?? '?');
  } catch (e) {
    row([`gpu ${mode}`, '—', `cannot run: ${(e as Error).message.split('. ')[0]}`, '', '']);
  } finally {
    mt.shutdownGpu();
  }
}
console.log([...header, ...rows].join('\n'));
