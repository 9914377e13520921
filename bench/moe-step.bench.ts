// The MoE step targets of the SIMD/threads issue, contenders alternating in one process
// (`npm run bench -- moestep`): the MoE layer's forward + backward (T = 1024 tokens,
// d = 256, expert hidden 512, k = 2) for E ∈ {4, 16, 64, 256} against the compute-matched
// dense block (hidden k × 512), round-robin, medians. The dense block is an Expert, which runs
// the experts' kernels (each Linear one grouped product with its bias, and relu, applied in
// it), so the ratios measure routing and grouping; "dense, as ops" (matmul, bias add, relu,
// as before Expert ran fused) is timed in the same rounds for reference. "Without its gating products" takes
// the gating's four products (x·w_gate, x·w_noise and their weight gradients, [T, d] × [d, E],
// which grow with E by design) off each E's median, timed in the same rounds. "Weight traffic"
// times the least memory traffic a step must make over the experts' weights, moved by the
// fastest pass we have (SIMD, over the threads), in the same rounds: added to the dense step
// (to E = 4's for E = 256 / E = 4), the floor of kernels that do not overlap that traffic with
// the products (ours hide about 70% of it at E = 256, and bench/memory-overlap.ts shows a loop
// of their arithmetic density hiding 80–96% on this machine: not a physical floor);
// each MoE/dense floor is also given with the gate's four products added as they were timed
// alone in the same rounds (split over the threads from 2^24 multiply-adds, E ≥ 64 here, as
// the step runs them).
// "Routed" times the step with the routing fixed (dispatch, experts, combine; no gate), in the
// same rounds, which splits each MoE/dense into its routed experts and its gate. "Gate
// kernels" times the gate's kernels over [T, E] alone (noise draws, softplus and σ, top k + 1,
// P(x, i) and its gradients, the z statistic's logsumexp), in the same rounds: with the four
// products, what the gate must compute beyond the experts; and E256/E4 is also given without
// them, which leaves what the experts, the dispatch and the combine add.
// Every case first runs MIXTAPE_BENCH_WARMUP rounds (default 40) that are not timed: the rounds
// measure the steady state, not V8's tier-up (BENCHMARKS.md, 2026-12-07).
// On more than one thread, "where the time goes" splits each step into its jobs split over the
// threads (products, elementwise kernels' pieces) and the rest, which runs on the calling
// thread alone (backendInfo's threadedJobMs).

import { loadavg } from 'node:os';
import * as mt from '../src/index.js';
import { groupedExperts } from '../src/moe/grouped-experts.js';
import { probInTopKAt, probInTopKAtGrads, topkIndices } from '../src/tensor/ops/fused.js';
import { median } from './stats.js';

const T = 1024, d = 256, h = 512, k = 2;
const EXPERTS = [4, 16, 64, 256];

export async function runMoeStepBench(filter?: string): Promise<string[]> {
  const rounds = Number(process.env.MIXTAPE_BENCH_ROUNDS ?? 7);
  const threads = filter && /^\d+$/.test(filter) ? Number(filter) : undefined;
  mt.setBackend('cpu', threads ? { threads } : {});
  const info = mt.backendInfo();
  console.log(`\nMoE step, T ${T}, d ${d}, hidden ${h}, k ${k}: ${info.threads ?? 1} thread(s), simd ${info.simd ?? false}; ${rounds} alternating rounds, medians (load ${loadavg()[0]!.toFixed(2)})`);
  mt.manualSeed(0);
  const x = mt.randn([T, d]);
  const dense = new mt.Expert(d, k * h, d);
  const cases: [string, () => void][] = [['dense', () => mt.tidy(() => { dense.forward(x).sum().backward(); dense.zeroGrad(); })]];
  cases.push(['dense, as ops', () => mt.tidy(() => { dense.fc2.forward(dense.fc1.forward(x).relu()).sum().backward(); dense.zeroGrad(); })]);
  const owned: mt.Tensor[] = [x, ...dense.parameters()];
  // The memory floor of a step's weights: each weight read once by the forward product and
  // once more by ∂x in backward where ∂x is taken (the second layer's; x needs no gradient
  // here, so the first layer's weight is read once), and every weight gradient written once;
  // here that traffic alone, moved by the fastest passes we have: per second-layer weight one
  // elementwise add of it and a copy of it in its own buffer (two reads and a write an
  // element, on the SIMD kernels split over the threads), per first-layer weight one copy
  // (TypedArray.set). A plain JavaScript pass on one thread reading every weight twice (a
  // 4-way sum and a copy, this bench's floor until 2026-12-07) took 35.9 ms at E = 256
  // against 21.5 for the adds, and the E = 256 step then ran under that "floor".
  const traffic = (first: mt.Tensor[], second: mt.Tensor[]): (() => void) => {
    const copies = second.map((w) => mt.tensor((w.dataSync() as Float32Array).slice(), w.shape));
    owned.push(...copies);
    const read = first.map((w) => w.dataSync() as Float32Array), written = read.map((w) => new Float32Array(w.length));
    return () => mt.noGrad(() => {
      read.forEach((w, i) => written[i]!.set(w));
      second.forEach((w, i) => mt.add(w, copies[i]!).dispose());
    });
  };
  cases.push(['weight traffic dense', traffic([dense.fc1.weight], [dense.fc2.weight])]);
  for (const E of EXPERTS) {
    const moe = new mt.MoE({ inputSize: d, outputSize: d, hiddenSize: h, numExperts: E, k });
    const gate = moe.gate as mt.NoisyTopKGating;
    const dLogits = mt.randn([T, E]);
    owned.push(...moe.parameters(), dLogits);
    cases.push([`MoE E=${E}`, () => mt.tidy(() => { const o = moe.forward(x); o.output.sum().add(o.auxLoss).backward(); moe.zeroGrad(); })]);
    // The same step with the routing fixed (one forward's indices; its gates a leaf that takes
    // their gradient): dispatch, the experts' grouped products and the combine, forward and
    // backward, without the gate (its products, noise, top-k, P(x, i)), the balancing losses
    // and the stats. MoE − this is what the gate, its losses and its stats cost.
    if (E <= 64) {
      const routing = mt.noGrad(() => mt.tidy(() => { const o = moe.forward(x); return { indices: o.stats.indices.clone(), gates: o.stats.gates.clone() }; }));
      const fixedGates = mt.parameter(routing.gates);
      owned.push(routing.indices, fixedGates);
      cases.push([`routed E=${E}`, () => mt.tidy(() => {
        const dispatcher = new mt.SparseDispatcher(E, fixedGates, routing.indices);
        const y = dispatcher.combineRows(groupedExperts(moe.experts, dispatcher.dispatchRows(x), dispatcher.partSizes()));
        dispatcher.dispose();
        y.sum().backward(); moe.zeroGrad(); fixedGates.zeroGrad();
      })]);
    }
    cases.push([`weight traffic E=${E}`, traffic(moe.experts.map((ex) => ex.fc1.weight), moe.experts.map((ex) => ex.fc2.weight))]);
    cases.push([`gating products E=${E}`, () => mt.noGrad(() => mt.tidy(() => {
      mt.matmul(x, gate.w_gate); mt.matmul(x, gate.w_noise);
      mt.matmul(x, dLogits, { transposeA: true }); mt.matmul(x, dLogits, { transposeA: true });
    }))]);
    // The gate's kernels over [T, E] beside its products, each alone as the step runs it on
    // these threads: the noise draws, softplus (and σ, its gradient), the top k + 1, P(x, i)
    // and its gradients, and the z statistic's logsumexp. They grow with E by design too, and
    // their float32 results are the scalar kernels' bits (float64 lanes for e^x, ln and Φ).
    const [clean, raw, std, noisy, top] = mt.tidy(() => {
      const c = mt.randn([T, E]), sd = mt.rand([T, E]).add(0.1), n = c.add(mt.randn([T, E]).mul(sd));
      return [c, mt.randn([T, E]), sd, n, topkIndices(n, k + 1)] as const;
    });
    const noise = new mt.Generator(1);
    owned.push(clean, raw, std, noisy, top);
    cases.push([`gate kernels E=${E}`, () => mt.noGrad(() => mt.tidy(() => {
      mt.randn([T, E], { generator: noise }); mt.softplus(raw); mt.sigmoid(raw); topkIndices(noisy, k + 1);
      probInTopKAt(clean, noisy, std, top, k); probInTopKAtGrads(dLogits, clean, noisy, std, top, k, [true, true, true], false);
      mt.logsumexp(clean, -1);
    }))]);
  }
  // Steady state, as a training run sees it after its first few hundred steps: V8 optimizes a
  // function once it has been called often enough, and a step calls most of its functions a
  // few times only. After 30 steps an E = 16 step still spent 1.8–2.2 ms of CPU a step on
  // V8's compiler threads (the dense block 0.2), beside the two threads that do the work.
  const warmup = Number(process.env.MIXTAPE_BENCH_WARMUP ?? 40);
  for (let r = 0; r < warmup; r++) for (const [, f] of cases) f();
  const times = cases.map(() => [] as number[]);
  // The time of each step spent in jobs split over the threads (backendInfo's threadedJobMs:
  // products and pieces of elementwise kernels); the rest runs on the calling thread alone.
  const jobMs = () => (mt.backendInfo() as { threadedJobMs?: number }).threadedJobMs ?? 0;
  const inJobs = cases.map(() => [] as number[]);
  for (let r = 0; r < rounds; r++) {
    cases.forEach(([, f], i) => {
      const j = jobMs(), t = performance.now();
      f();
      times[i]!.push(performance.now() - t);
      inJobs[i]!.push(jobMs() - j);
    });
  }
  const med = new Map(cases.map(([n], i) => [n, median(times[i]!)]));
  for (const [n, m] of med) console.log(`  ${n.padEnd(22)} ${m.toFixed(1)} ms`);
  const lines: string[] = [];
  const dn = med.get('dense')!, threadCount = Number(info.threads ?? 1);
  lines.push(`- dense block ${dn.toFixed(1)} ms; as separate ops (matmul, bias add, relu) ${med.get('dense, as ops')!.toFixed(1)} ms`);
  for (const E of EXPERTS.filter((e) => e <= 64)) {
    const q = med.get(`MoE E=${E}`)! / dn;
    // The floor: the dense step plus the weight traffic the experts add over the dense block's.
    const floor = (dn + med.get(`weight traffic E=${E}`)! - med.get('weight traffic dense')!) / dn;
    // With the gate's four products too, as they ran alone (on the threads where they are
    // large enough): work the MoE must do beyond the experts' (H(x) = x·W_g +
    // ε·softplus(x·W_noise) and its gradients).
    const withGate = floor + med.get(`gating products E=${E}`)! / dn;
    // Not a physical floor: the traffic can run under the products (the hardware prefetching
    // the next lines while the tiles compute; ours hide part of it, BENCHMARKS.md); it is the
    // floor of kernels that overlap none of it.
    const floors = `the dense step plus the weights' memory traffic, not overlapped with the products: ${floor.toFixed(3)}; with the gate's four products as timed alone: ${withGate.toFixed(3)}`;
    lines.push(`- MoE E=${E} / dense ≤ 1.10: ${q.toFixed(3)} — ${q <= 1.10 ? 'met' : `NOT met (${floors})`}`);
  }
  // Where each MoE/dense comes from: the routed experts (dispatch, grouped products, combine)
  // and the rest (the gate, its balancing losses and stats), both over the dense step.
  lines.push(`  of which: ${EXPERTS.filter((e) => e <= 64).map((E) => {
    const routed = med.get(`routed E=${E}`)!, all = med.get(`MoE E=${E}`)!;
    return `E=${E} routed experts (fixed routing: dispatch, experts, combine) ${(routed / dn).toFixed(3)}, the gate with its losses and stats +${((all - routed) / dn).toFixed(3)} (its four products +${(med.get(`gating products E=${E}`)! / dn).toFixed(3)} and its kernels over [T, E] +${(med.get(`gate kernels E=${E}`)! / dn).toFixed(3)}, each timed alone)`;
  }).join('; ')}`);
  if (threadCount > 1) {
    // Medians per round of the time in threaded jobs and of the time outside them.
    const split = (name: string) => {
      const i = cases.findIndex(([n]) => n === name);
      return `${name} ${median(inJobs[i]!).toFixed(1)} ms in threaded jobs, ${median(times[i]!.map((t, r) => t - inJobs[i]![r]!)).toFixed(1)} ms on the calling thread alone`;
    };
    lines.push(`  where the time goes: ${['dense', ...EXPERTS.filter((e) => e <= 64).map((E) => `MoE E=${E}`)].map(split).join('; ')}`);
  }
  const without = (E: number) => med.get(`MoE E=${E}`)! - med.get(`gating products E=${E}`)!;
  const q = without(256) / without(4);
  lines.push(`- without the gating products, time(E=256) / time(E=4) ≤ 1.25: ${q.toFixed(3)} (${without(256).toFixed(1)} / ${without(4).toFixed(1)} ms) — ${q <= 1.25 ? 'met' : 'NOT met'}`);
  // E = 4's step plus the weight traffic E = 256 adds, nothing else growing and the traffic
  // not overlapped with the products (as for the MoE/dense floors above).
  const growth = med.get('weight traffic E=256')! - med.get('weight traffic E=4')!;
  lines.push(`  E=4's step plus the weights' memory traffic, not overlapped with the products (read once or twice, gradient written once: +${growth.toFixed(1)} ms from E=4 to E=256): ${((without(4) + growth) / without(4)).toFixed(3)}`);
  // The same ratio without the gate's [T, E] kernels either (as timed alone): what the experts,
  // the dispatch and the combine add from E = 4 to E = 256.
  const withoutGate = (E: number) => without(E) - med.get(`gate kernels E=${E}`)!;
  lines.push(`  without the gate's kernels over [T, E] either (${med.get('gate kernels E=4')!.toFixed(1)} ms at E=4, ${med.get('gate kernels E=256')!.toFixed(1)} at E=256, timed alone): ${(withoutGate(256) / withoutGate(4)).toFixed(3)}`);
  console.log(`\nTargets (moestep, ${info.threads ?? 1} threads):\n${lines.join('\n')}\n(load after: ${loadavg()[0]!.toFixed(2)})`);
  mt.dispose(owned);
  return lines;
}
