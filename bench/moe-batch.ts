// The MoE step of bench/moe.bench.ts at a chosen batch size, round-robin over the dense block
// and E = 4, 64, 256 (so that drift hits every case alike), medians of 5 rounds. Shows how the
// ratios move when each expert sees more rows (T·k/E). Run from a bundle under plain node:
//   npx esbuild bench/moe-batch.ts --bundle --platform=node --format=esm --packages=external \
//     --outfile=dist/bench/moe-batch.mjs && node dist/bench/moe-batch.mjs 4096

import * as mt from '../src/index.js';

const T = Number(process.argv[2] ?? 4096), d = 256, h = 512, k = 2;
if (!Number.isInteger(T) || T < 1) throw new Error(`moe-batch: T must be a positive integer, got ${process.argv[2]}`);
mt.manualSeed(0);
const x = mt.randn([T, d]);
const dense = new mt.Expert(d, k * h, d);
const models = [4, 64, 256].map((E) => new mt.MoE({ inputSize: d, outputSize: d, hiddenSize: h, numExperts: E, k }));
const cases: [string, () => void][] = [['dense', () => mt.tidy(() => { dense.forward(x).sum().backward(); dense.zeroGrad(); })]];
for (const m of models) {
  cases.push([`E${m.numExperts}`, () => mt.tidy(() => { const o = m.forward(x); o.output.sum().add(o.auxLoss).backward(); m.zeroGrad(); })]);
}
for (const [, f] of cases) for (let i = 0; i < 2; i++) f();
const times = cases.map(() => [] as number[]);
for (let r = 0; r < 5; r++) cases.forEach(([, f], i) => { const t = performance.now(); f(); times[i]!.push(performance.now() - t); });
const med = times.map((t) => t.sort((a, b) => a - b)[2]!);
console.log(`T = ${T} (${(T * k / 256).toFixed(0)} rows per expert at E = 256): ` + cases.map(([n], i) => `${n} ${med[i]!.toFixed(0)} ms`).join(', '));
console.log(`MoE/dense: E4 ${(med[1]! / med[0]!).toFixed(3)}, E64 ${(med[2]! / med[0]!).toFixed(3)}; E256/E4 ${(med[3]! / med[1]!).toFixed(3)}`);
