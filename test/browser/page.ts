// The in-page half of the browser GPU test (gpu-browser.test.ts builds and serves it).
// It runs inside headless Chromium as an ES module next to mixtape's browser bundle: the
// import of src/index.js below is rewritten to './mixtape.browser.js' when this file is
// bundled, so the page uses exactly the bundle a user would (gpu.js comes from the page's
// global GPU, loaded by a classic <script> before this module).
//
// Every case runs twice in the page: on the CPU backend in float64 (the reference) and on
// the GPU backend in float32, from the same float32-representable inputs and weights; the
// page returns the raw numbers and the Node side compares them (the tolerance of
// test/gpu/gpu-env.ts). Reads are `await t.data()` only: browser WebGPU has no synchronous
// readback.

import * as mt from '../../src/index.js';
import { probeGpu } from '../gpu/probe.js';

type Mode = 'webgl2' | 'webgpu';

interface Input { values: number[]; shape: number[]; int?: boolean; grad?: boolean }

/** One comparison: outputs (and the loss-weighted gradients of inputs and parameters). */
interface Case {
  name: string;
  /** The longest float32 sum behind one output or gradient element (scales the tolerance). */
  K: number;
  inputs: Input[];
  /** Makes the module (on the CPU, once; its float32 weights are copied to both runs). */
  module?: () => mt.Module;
  /** On the CPU prototype: set weights that the case needs (e.g. gating with route margins). */
  setup?: (m: mt.Module) => void;
  run: (m: mt.Module | null, xs: mt.Tensor[]) => mt.Tensor[];
}

export interface Evaluation { outs: { values: number[]; int: boolean }[]; grads: Record<string, number[]> }
export interface CaseResult { name: string; K: number; cpu: Evaluation; gpu: Evaluation; leakedHandles: number }

// ---- deterministic inputs -------------------------------------------------------------------

/** n values in [-scale, scale) from a seed (a tiny LCG), rounded to float32. */
function values(n: number, seed: number, scale = 1): number[] {
  let s = (seed * 2654435761 + 12345) >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return Math.fround(((s / 4294967296) * 2 - 1) * scale);
  });
}

/** n distinct values ±(0.25 + m/16) in a seeded order: no ties for max, away from 0. */
function distinct(n: number, seed: number): number[] {
  const keys = values(n, seed);
  const order = keys.map((_, i) => i).sort((a, b) => keys[a]! - keys[b]!);
  return order.map((r) => (r - n / 2) / 4 + (r >= n / 2 ? 0.25 : -0.25));
}

const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
const x = (shape: number[], seed: number, scale = 1): Input => ({ shape, values: values(size(shape), seed, scale), grad: true });
const ints = (shape: number[], vals: number[]): Input => ({ shape, values: vals, int: true });

// ---- the cases ------------------------------------------------------------------------------

const opCases: Case[] = [
  { name: 'matmul [7,13]·[13,5]', K: 13, inputs: [x([7, 13], 1), x([13, 5], 2)], run: (_, [a, b]) => [mt.matmul(a!, b!)] },
  { name: 'matmul Aᵀ·B [13,7]ᵀ·[13,5]', K: 13, inputs: [x([13, 7], 3), x([13, 5], 4)], run: (_, [a, b]) => [mt.matmul(a!, b!, { transposeA: true })] },
  { name: 'matmul A·Bᵀ [7,13]·[5,13]ᵀ', K: 13, inputs: [x([7, 13], 5), x([5, 13], 6)], run: (_, [a, b]) => [mt.matmul(a!, b!, { transposeB: true })] },
  { name: 'batched matmul [2,3,9]·[9,5]', K: 9, inputs: [x([2, 3, 9], 7), x([9, 5], 8)], run: (_, [a, b]) => [mt.matmul(a!, b!)] },
  { name: 'add broadcast [3,1,5]+[4,1]', K: 15, inputs: [x([3, 1, 5], 9), x([4, 1], 10)], run: (_, [a, b]) => [mt.add(a!, b!)] },
  { name: 'mul broadcast [2,3,4]·[4] and a scalar', K: 6, inputs: [x([2, 3, 4], 11), x([4], 12)], run: (_, [a, b]) => [mt.mul(a!, b!).mul(1.5)] },
  { name: 'softmax [4,9] axis -1', K: 9, inputs: [x([4, 9], 13, 3)], run: (_, [a]) => [mt.softmax(a!)] },
  { name: 'softmax [6,5] axis 0', K: 6, inputs: [x([6, 5], 14, 3)], run: (_, [a]) => [mt.softmax(a!, 0)] },
  { name: 'logSoftmax [3,11]', K: 11, inputs: [x([3, 11], 15, 3)], run: (_, [a]) => [mt.logSoftmax(a!)] },
  { name: 'sum [3,4,5] axes [0,2]', K: 15, inputs: [x([3, 4, 5], 16)], run: (_, [a]) => [mt.sum(a!, [0, 2])] },
  { name: 'mean [3,4,5] axis 1 keepdims', K: 4, inputs: [x([3, 4, 5], 17)], run: (_, [a]) => [mt.mean(a!, 1, true)] },
  { name: 'max [4,6] axis -1 (distinct values)', K: 1, inputs: [{ shape: [4, 6], values: distinct(24, 18), grad: true }], run: (_, [a]) => [mt.max(a!, -1)] },
  { name: 'logsumexp [3,7] axis -1', K: 7, inputs: [x([3, 7], 19, 3)], run: (_, [a]) => [mt.logsumexp(a!, -1)] },
  { name: 'exp tanh sigmoid [5,7]', K: 1, inputs: [x([5, 7], 20, 3)], run: (_, [a]) => [mt.exp(a!), mt.tanh(a!), mt.sigmoid(a!)] },
  {
    name: 'gather [4,6] axis 1 (repeated indices)', K: 3,
    inputs: [x([4, 6], 21), ints([4, 3], [0, 5, 0, 2, 2, 1, 3, 4, 5, 1, 1, 1])],
    run: (_, [a, i]) => [mt.gather(a!, 1, i!)],
  },
  {
    name: 'indexSelect [5,4] axis 0 (repeated indices)', K: 6,
    inputs: [x([5, 4], 22), ints([6], [4, 0, 2, 4, 1, 4])],
    run: (_, [a, i]) => [mt.indexSelect(a!, 0, i!)],
  },
];

const [B, T, I, H] = [2, 4, 3, 5];
const lstmCase: Case = {
  name: `LSTM (2 layers, batchFirst) B=${B} T=${T} I=${I} H=${H}`,
  K: 4 * H * T,
  inputs: [x([B, T, I], 23)],
  module: () => new mt.LSTM({ inputSize: I, hiddenSize: H, numLayers: 2, batchFirst: true, generator: new mt.Generator(11) }),
  run: (m, [xs]) => { const r = (m as mt.LSTM).forward(xs!); return [r.output, r.h, r.c]; },
};

// MoE: noisy top-k gating with the noise ε given, solved from planned noisy logits spaced
// 0.3 apart in every row (as test/moe/moe-helpers.ts's gatingCase), so float32 never flips a route.
const [N, d, E, k] = [12, 6, 4, 2];
const moeX = values(N * d, 31), wGate = values(d * E, 32, 0.8), wNoise = values(d * E, 33, 0.8);
const moeNoise = (() => {
  const noise: number[] = [];
  for (let n = 0; n < N; n++) {
    const keys = values(E, 34 * 31 + n);
    const order = keys.map((_, i) => i).sort((a, b) => keys[a]! - keys[b]!);
    for (let e = 0; e < E; e++) {
      let clean = 0, raw = 0;
      for (let j = 0; j < d; j++) { clean += moeX[n * d + j]! * wGate[j * E + e]!; raw += moeX[n * d + j]! * wNoise[j * E + e]!; }
      const std = Math.log1p(Math.exp(raw)) + 1e-2;
      const target = -1 + 0.3 * order[e]! + 0.01 * ((n * 7 + e) % 3);
      noise.push(Math.fround((target - clean) / std));
    }
  }
  return noise;
})();
const moeCase: Case = {
  name: `MoE layer (noisy top-k with given noise, device dispatch) N=${N} d=${d} E=${E} k=${k}`,
  K: N * 4,
  inputs: [{ shape: [N, d], values: moeX, grad: true }, { shape: [N, E], values: moeNoise }],
  module: () => new mt.MoE({ inputSize: d, outputSize: 3, hiddenSize: 5, numExperts: E, k, dispatch: 'device', generator: new mt.Generator(5) }),
  setup: (m) => {
    const w = { 'gate.w_gate': mt.tensor(wGate, [d, E]), 'gate.w_noise': mt.tensor(wNoise, [d, E]) };
    m.loadStateDict(w, { strict: false });
    mt.dispose(w);
  },
  run: (m, [xs, noise]) => {
    const r = (m as mt.MoE).forward(xs!, { noise: noise! });
    return [r.output, r.auxLoss, r.stats.gates, r.stats.load, r.stats.indices];
  },
};

// The ops and layers added for PyTorch parity (issue 17): each new kernel and each composition.
const parityCases: Case[] = [
  {
    name: 'log1p expm1 sin cos erf gelu silu [5,7]', K: 1, inputs: [x([5, 7], 41, 2)],
    run: (_, [a]) => [mt.log1p(a!.abs()), mt.expm1(a!), mt.sin(a!), mt.cos(a!), mt.erf(a!), mt.gelu(a!), mt.gelu(a!, { approximate: 'tanh' }), mt.silu(a!)],
  },
  { name: 'floor ceil round [4,6] (zero gradient)', K: 1, inputs: [x([4, 6], 42, 3)], run: (_, [a]) => [mt.floor(a!), mt.ceil(a!), mt.round(a!.mul(2)).mul(a!)] },
  { name: 'prod [3,5] axis 1, cumsum [3,5] axes 0 and 1', K: 5, inputs: [x([3, 5], 43, 1.5)], run: (_, [a]) => [mt.prod(a!, 1), mt.cumsum(a!, 0), a!.cumsum(1)] },
  { name: 'flip [3,4,2] axes [0,2], repeat(2,1,3)', K: 6, inputs: [x([3, 4, 2], 44)], run: (_, [a]) => [mt.flip(a!, [0, 2]).mul(a!), a!.repeat(2, 1, 3).square()] },
  {
    name: 'sort and argsort [4,6] both directions (distinct values)', K: 1, inputs: [{ shape: [4, 6], values: distinct(24, 45), grad: true }],
    run: (_, [a]) => { const s = mt.sort(a!, 1, true); return [s.values, s.indices, mt.argsort(a!, 0), mt.sort(a!, 0).values]; },
  },
  {
    name: 'var std norm (p = 2, 3, ∞) [4,6]', K: 24, inputs: [{ shape: [4, 6], values: distinct(24, 46), grad: true }],
    run: (_, [a]) => [mt.var(a!, 1), a!.std(0, { correction: 0 }), mt.norm(a!, 2, 1), a!.norm(3), a!.norm(Infinity, 0)],
  },
  {
    name: 'tril triu maskedFill any all eye linspace chunk cat [4,5]', K: 2, inputs: [x([4, 5], 47)],
    run: (_, [a]) => {
      const hot = a!.greater(0.2);
      const [p, q] = mt.chunk(a!, 2, 1) as [mt.Tensor, mt.Tensor];
      return [
        mt.tril(a!, 1).add(a!.triu(-1).mul(0.5)), a!.maskedFill(hot, -3).mul(a!), hot.any(1), mt.all(hot, 0),
        mt.eye(4, 5).mul(mt.linspace(-1, 1, 5)).add(a!), mt.cat([q, p.mul(2)], 1),
      ];
    },
  },
  {
    name: 'LayerNorm → GELU tanh → RMSNorm → SiLU [4,6]', K: 6, inputs: [x([4, 6], 48, 2)],
    module: () => new mt.Sequential(new mt.LayerNorm(6), new mt.GELU({ approximate: 'tanh' }), new mt.RMSNorm(6, { eps: 1e-6 }), new mt.SiLU()),
    run: (m, [a]) => [(m as mt.Sequential).forward(a!)],
  },
  {
    ...moeCase,
    name: `MoE layer with SwiGLU experts (device dispatch) N=${N} d=${d} E=${E} k=${k}`,
    module: () => new mt.MoE({ inputSize: d, outputSize: 3, hiddenSize: 5, numExperts: E, k, dispatch: 'device', expert: 'swiglu', generator: new mt.Generator(6) }),
  },
];

const GROUPS: Record<string, Case[]> = { ops: opCases, lstm: [lstmCase], moe: [moeCase], parity: parityCases };

// ---- running a case on both backends ------------------------------------------------------

async function evaluate(c: Case, weights: Map<string, { values: number[]; shape: readonly number[] }>, dtype: 'float32' | 'float64'): Promise<Evaluation> {
  const module = c.module?.() ?? null;
  const made = mt.tidy(() => {
    if (module) {
      if (dtype === 'float64') module.to('float64');
      for (const [name, p] of module.namedParameters()) {
        const w = weights.get(name)!;
        p.assign(mt.tensor(w.values, w.shape, { dtype }));
      }
    }
    const xs = c.inputs.map((i) => mt.tensor(i.values, i.shape, { dtype: i.int ? 'int32' : dtype, requiresGrad: !!i.grad }));
    const outs = c.run(module, xs);
    // Σ_j Σ_i w_i·out_j[i] with fixed, varied weights (test/gpu/gpu-env.ts's upstream
    // gradient): no gradient is an exact cancellation whose float32 rounding the relative
    // tolerance could not cover.
    const terms = outs.filter((o) => o.requiresGrad)
      .map((o) => o.mul(mt.tensor(Array.from({ length: o.size }, (_, i) => (((i * 7 + 3) % 11) - 5) / 4), o.shape, { dtype })).sum());
    if (terms.length > 0) terms.reduce((a, b) => a.add(b)).backward();
    return { outs, xs };
  });
  const result: Evaluation = { outs: [], grads: {} };
  for (const o of made.outs) result.outs.push({ values: Array.from(await o.data()), int: o.dtype === 'int32' });
  for (const [i, t] of made.xs.entries()) if (t.grad) result.grads[`input ${i}`] = Array.from(await t.grad.data());
  if (module) for (const [name, p] of module.namedParameters()) if (p.grad) result.grads[name] = Array.from(await p.grad.data());
  mt.dispose([made, module?.parameters() ?? []]);
  return result;
}

async function runCase(mode: Mode, c: Case): Promise<CaseResult> {
  mt.setBackend('cpu');
  const weights = new Map<string, { values: number[]; shape: readonly number[] }>();
  if (c.module) {
    const proto = c.module();
    c.setup?.(proto);
    for (const [name, p] of proto.namedParameters()) weights.set(name, { values: Array.from(await p.data()), shape: p.shape });
    mt.dispose(proto.parameters());
  }
  const cpu = await evaluate(c, weights, 'float64');
  mt.setBackend('gpu', { mode });
  const live = mt.memory().liveHandles;
  const gpu = await evaluate(c, weights, 'float32');
  return { name: c.name, K: c.K, cpu, gpu, leakedHandles: mt.memory().liveHandles - live };
}

// ---- what the Node side calls (through Runtime.evaluate) ----------------------------------

/** What the browser itself says about its WebGL2 and WebGPU (independent of gpu.js). */
async function environment(): Promise<Record<string, unknown>> {
  const g = globalThis as any;
  const out: Record<string, unknown> = { userAgent: g.navigator.userAgent, secureContext: g.isSecureContext };
  const gl = g.document.createElement('canvas').getContext('webgl2');
  if (gl) {
    const ext = gl.getExtension('WEBGL_debug_renderer_info');
    out.webgl2 = { renderer: gl.getParameter(ext ? ext.UNMASKED_RENDERER_WEBGL : gl.RENDERER), version: gl.getParameter(gl.VERSION), colorBufferFloat: !!gl.getExtension('EXT_color_buffer_float') };
    gl.getExtension('WEBGL_lose_context')?.loseContext();
  } else out.webgl2 = null;
  if (g.navigator.gpu) {
    const adapter = await g.navigator.gpu.requestAdapter();
    const info = adapter?.info;
    out.webgpu = adapter ? { vendor: info?.vendor, architecture: info?.architecture, device: info?.device, description: info?.description, isFallbackAdapter: info?.isFallbackAdapter } : 'no adapter';
  } else out.webgpu = 'navigator.gpu is missing';
  return out;
}

/** Starts the mode and runs one kernel: the backend's info, or the reason it cannot run. */
async function probe(mode: Mode): Promise<{ info?: Record<string, unknown>; reason?: string }> {
  try {
    return await probeGpu(mt, mode);
  } finally {
    mt.setBackend('cpu');
  }
}

async function run(mode: Mode, group: string): Promise<{ results: CaseResult[]; info: Record<string, unknown> }> {
  const results: CaseResult[] = [];
  for (const c of GROUPS[group]!) results.push(await runCase(mode, c));
  mt.setBackend('gpu', { mode });
  const info = mt.backendInfo();
  mt.setBackend('cpu');
  return { results, info };
}

/** The bundle without a GPU: no node: module is needed until a file function is called. */
async function bundleChecks(): Promise<Record<string, unknown>> {
  mt.setBackend('cpu');
  const t = mt.tensor([1.5, -2, 3], [3]);
  const bytes = mt.serializeSafetensors({ w: t }, { format: 'pt' });
  const back = mt.parseSafetensors(bytes);
  const roundTrip = Array.from(await back.tensors.w!.data());
  let saveError = '', loadError = '';
  try { mt.saveSafetensors('x.safetensors', { w: t }); } catch (e) { saveError = (e as Error).message; }
  try { mt.loadSafetensors('x.safetensors'); } catch (e) { loadError = (e as Error).message; }
  let headlessgl = '';
  try { mt.setBackend('gpu', { mode: 'headlessgl' }); } catch (e) { headlessgl = (e as Error).message; }
  mt.setBackend('cpu');
  const text = String(t);
  mt.dispose([t, back.tensors]);
  return { roundTrip, metadata: back.metadata, saveError, loadError, headlessgl, text };
}

(globalThis as any).mixtapeBrowserTest = { environment, probe, run, bundleChecks };
