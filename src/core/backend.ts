// The backend interface. A backend owns device memory behind opaque handles and runs named
// kernels on them; the frontend (src/tensor) owns shapes, dtypes, broadcasting and autograd.
// readSync/read are the only ways back to the host. Concrete backends live in
// src/backends/<name>/ and are registered by name (src/core/registry.ts); nothing below
// src/backends names one.

import type { DType, TypedArray } from './dtype.js';
import type { Shape } from './shape.js';

/** An opaque, reference-counted piece of device memory. */
export interface Handle { readonly id: number }

/** What a kernel sees of each operand and of its output. */
export interface TensorInfo { readonly handle: Handle; readonly shape: Shape; readonly dtype: DType }
export interface OutInfo { readonly shape: Shape; readonly dtype: DType }

export type UnaryKernel =
  | 'neg' | 'abs' | 'sign' | 'exp' | 'log' | 'sqrt' | 'tanh' | 'sigmoid' | 'relu' | 'softplus'
  | 'normalCdf' | 'log1p' | 'expm1' | 'sin' | 'cos' | 'floor' | 'ceil' | 'round' | 'erf';
export type BinaryKernel = 'add' | 'sub' | 'mul' | 'div' | 'pow' | 'maximum' | 'minimum';
export type CompareKernel = 'equal' | 'notEqual' | 'less' | 'lessEqual' | 'greater' | 'greaterEqual';

type NoAttrs = Record<string, never>;

/** The core kernels, which every backend implements, with their attributes. Inputs are listed in comments. */
export interface CoreKernelAttrs extends Record<UnaryKernel | BinaryKernel | CompareKernel, NoAttrs> {
  where: NoAttrs;                                         // (cond, a, b), broadcast to out.shape
  sum: { axes: readonly number[] };                       // (x); out.shape drops or keeps the axes
  max: { axes: readonly number[] };
  min: { axes: readonly number[] };
  prod: { axes: readonly number[] };
  cumsum: { axis: number };                               // (x): inclusive running sum along axis
  argmax: { axis: number };                               // ties and NaN: PyTorch's rule
  argmin: { axis: number };
  matmul: { transposeA: boolean; transposeB: boolean };  // (a [..., m, k], b [..., k, n])
  permute: { perm: readonly number[] };
  broadcastTo: NoAttrs;
  slice: { begin: readonly number[] };                    // out.shape is the slice's size
  pad: { before: readonly number[] };                     // zeros around x
  flip: { axes: readonly number[] };                      // (x) reversed along each of axes
  assembleSlices: { begins: readonly (readonly number[])[] }; // (...pieces): Σ pad(piece, begin), out.shape
  concat: { axis: number };                               // (...xs)
  gather: { axis: number };                               // (x, index): torch.gather
  scatterAdd: { axis: number };                           // (x, index, src): torch.scatter_add
  indexSelect: { axis: number };                          // (x, index 1-D)
  indexAdd: { axis: number };                             // (x, index 1-D, src)
  oneHot: { depth: number };                              // (index)
  topkIndices: { k: number; largest: boolean };           // (x): int32 indices on the last axis
  argsort: { descending: boolean };                       // (x): int32, last axis; stable, NaN largest
  cast: NoAttrs;                                          // (x) to out.dtype
  fill: { value: number };                                // (): out filled with value
  random: { distribution: 'uniform' | 'normal'; key: readonly [number, number]; counter: number };
}
export type CoreKernelName = keyof CoreKernelAttrs;

/**
 * Fused kernels: one pass over the data for what the core kernels do in several ops. A
 * backend may offer them (`Backend.supports`); the op that uses one composes the same math
 * from core kernels on a backend without it, with the same result (bit for bit on the CPU,
 * where both paths round every intermediate alike). Not a fallback: the same computation.
 */
export interface FusedKernelAttrs {
  /**
   * (c [B, H]; z [B, 4H]: the pre-activations of the gates i, f, g, o) → [7, B, H]: h', c'
   * (c' = σ(f)·c + σ(i)·tanh(g), h' = σ(o)·tanh(c')), then the activations σ(i), σ(f),
   * tanh(g), σ(o), tanh(c') that the backward reads.
   */
  lstmCell: NoAttrs;
  /** (acts [7, B, H] from lstmCell, c [B, H], dOut [7, B, H]: rows 0, 1 = ∂/∂h', ∂/∂c') → ∂/∂z [B, 4H] or ∂/∂c [B, H]. */
  lstmCellBackward: { wrt: 'z' | 'c' };
  /**
   * relu's gradient: (dy, x) of one shape and dtype → dy · (x > 0 ? 1 : 0), the product
   * rounded as mul rounds it (the composition mul(dy, cast(greater(x, 0))) in one pass).
   */
  reluGrad: NoAttrs;
  /**
   * The joint sum of squares of tensors (x_0 … x_{n−1}) → 0-d: each tensor's squares summed
   * from 0 in order, then those sums added in order — clipGradNorm's composition (cast, square,
   * sum, add) in one kernel; the output dtype is the one it accumulates in.
   */
  sumOfSquares: NoAttrs;
  /**
   * An LSTM layer's L steps: (xw [L, B, 4H]: each step's input projection, h0 [B, H],
   * c0 [B, H], W_hh [4H, H], optionally b [4H]: the biases) → [L, 7, B, H], step t's block
   * being lstmCell's output for z_t = (xw_t + b) + h_{t−1}·W_hhᵀ (planes 0 and 1: h_t and c_t).
   */
  lstmSequence: NoAttrs;
  /**
   * Products over row segments, all in one kernel (an MoE layer's experts, rows sorted by
   * expert; segment e has sizes[e] rows): (a [M, k], b_0 … b_{E-1}) → [M, n], the rows of
   * segment e being a[seg e] · op(b_e), op(b) = bᵀ (b [n, k]) when transposeB, else b
   * ([k, n]). Each segment's rows equal matmul's of that segment. With `bias`, the inputs end
   * with b_0 … b_{E-1} [n] and segment e's rows are (a[seg e] · op(b_e)) + bias_e, the sum
   * rounded as add rounds it. With `relu`, then relu of every element (the relu kernel's bits):
   * an expert MLP's hidden layer in one kernel.
   */
  groupedMatmul: { sizes: readonly number[]; transposeB: boolean; bias?: boolean; relu?: boolean };
  /**
   * The MoE combine: (y [M, d], weights [M], index int32 [M]) → [numRows, d], zeros plus
   * weights[i] · y[i] added to row index[i] for i in order, each product rounded to the dtype
   * (indexAdd of y · weights[:, None]). An index out of [0, numRows) is an error.
   */
  weightedIndexAdd: { numRows: number };
  /**
   * Top-k gates (noisy top-k gating, eq. 5): (x [N, E], indices int32 [N, m], m ≥ k: the top
   * of each row, best first) → [N, E], zeros but at the first k indices of each row, which
   * hold softmax(x at those indices). Rounded as the composition rounds it: the max, x − max,
   * exp, the row sum in float64 from 0, then the division, each stored in the dtype.
   */
  topkGates: { k: number };
  /** topkGates' gradient: (dy [N, E], x [N, E], indices [N, m]) → ∂x [N, E], the composition's bits. */
  topkGatesBackward: { k: number };
  /**
   * The load estimator's P(x, i) (eq. 9) from the top indices: (clean, noisy, stddev [N, E],
   * indices int32 [N, m], m > k: the top of each noisy row, best first) → [N, E],
   * Φ((clean − threshold) / stddev) with threshold the (k+1)-th largest noisy logit of the row
   * where noisy > it, else the k-th; each step rounded as the composition (balancing.ts's
   * probInTopK) rounds it.
   */
  probInTopK: { k: number };
  /**
   * log Σ exp over the last axis, forward only (an op that needs no gradient): (x [..., n],
   * n ≥ 1) → one value per row, rounded as logsumexp's composition rounds it: the row's
   * maximum m (NaN if the row has one), the shift m where finite else 0, x − shift, exp, the
   * row sum in float64 from 0, log, then + shift, each stored in the dtype.
   */
  logsumexpRows: NoAttrs;
  /**
   * Each row's Σᵢ gᵢ log gᵢ over the last axis (0 where gᵢ ≤ 0 or NaN), forward only:
   * (g [..., n]) → one value per row; log, the product and the row sum (float64 from 0)
   * rounded as gateEntropy's composition rounds them.
   */
  gateEntropyRows: NoAttrs;
  /**
   * The balancing losses' cv²(v) = Var(v) / (Mean(v)² + 1e-10), population variance (÷n), of
   * all of v's elements: (v, any shape, n ≥ 1 elements) → 0-d, rounded as balancing.ts's
   * composition (mean → sub → square → mean → square → add → div) rounds it: each step stored in
   * the dtype, the sums in float64 from 0.
   */
  cvSquared: NoAttrs;
  /** cvSquared's gradient: (dy 0-d, v) → ∂v of v's shape, the bits of the composition's rules. */
  cvSquaredBackward: NoAttrs;
}
export type FusedKernelName = keyof FusedKernelAttrs;

/** Fused kernels with several outputs (Backend.runMany), offered optionally like the fused ones. */
export interface MultiOutputKernelAttrs {
  /**
   * The weight gradients of groupedMatmul: (a [M, p], b [M, q]) with row segments `sizes` →
   * E outputs [p, q], output e = a[seg e]ᵀ · b[seg e] (zeros for an empty segment), each equal
   * to matmul's of that segment. With `sums`, E more outputs follow: the segmentSums of a
   * ([p] each) or of b ([q] each), the biases' gradients, bit for bit.
   */
  groupedWeightGrads: { sizes: readonly number[]; sums?: 'a' | 'b' };
  /**
   * Column sums over row segments: (a [M, n]) → E outputs [n], output e = Σ of a[seg e]'s rows
   * (zeros for an empty segment), summed in row order in float64 and rounded once, as the sum
   * kernel sums a bias gradient (groupedMatmul's bias gradients).
   */
  segmentSums: { sizes: readonly number[] };
  /**
   * Adam updates of n parameters, torch.optim.Adam's (amsgrad off), in one kernel:
   * (p_0 … p_{n−1}, g_0 …, m_0 …, v_0 …) → 3n outputs (p'_0 …, m'_0 …, v'_0 …). steps[i] is
   * parameter i's update count t (bias corrections 1 − βᵗ); weight decay is L2 (added to g)
   * or, `decoupled`, AdamW's p·(1 − lr·λ).
   */
  adamStep: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; decoupled: boolean; steps: readonly number[] };
  /**
   * lstmSequence's gradients: (acts [L, 7, B, H], h0, c0, W_hh, dActs [L, 7, B, H]: ∂/∂h_t and
   * ∂/∂c_t in planes 0 and 1) → ∂xw [L, B, 4H], ∂h0, ∂c0 [B, H], ∂W_hh [4H, H] (one product
   * over all steps) and, with a fifth output, ∂b [4H].
   */
  lstmSequenceBackward: NoAttrs;
  /**
   * weightedIndexAdd's gradients: (dOut [numRows, d], y [M, d], weights [M], index [M]) →
   * ∂y [M, d] = weights[i] · dOut[index[i]], and ∂weights [M] = Σ_j dOut[index[i], j] · y[i, j]
   * (each product rounded to the dtype, summed in float64 in column order, as sum(·, 1)).
   */
  weightedIndexAddBackward: NoAttrs;
  /**
   * probInTopK's gradients: (dP, clean, noisy, stddev [N, E], indices [N, m]) → ∂clean,
   * ∂noisy (nonzero only at each row's k-th and (k+1)-th indices: the thresholds), ∂stddev,
   * all [N, E], the composition's bits.
   */
  probInTopKBackward: { k: number };
  /** (c 0-d, x_0 … x_{n−1}) → n outputs x_i · c, each x_i's dtype as c's (gradient clipping's scaling). */
  scaleAll: NoAttrs;
  /**
   * The noisy top-k gate's logits (NoisyTopKGating, eq. 3–4): (x [N, d], W_gate [d, E],
   * W_noise [d, E]) → clean = x·W_gate, raw = x·W_noise, softplus(raw), stddev = softplus(raw)
   * + epsilon, noise (randn's draws number counter … of the stream `key`), noise · stddev,
   * noisy = clean + noise · stddev (all [N, E]), and each noisy row's top m indices (int32
   * [N, m]), each the bits of its op (matmul, softplus, add, random, mul, add, topkIndices).
   * Not recorded: the caller records those ops' nodes (tensor/ops/fused.ts noisyTopKLogits).
   */
  noisyTopKLogits: { epsilon: number; key: readonly [number, number]; counter: number; m: number };
}
export type MultiOutputKernelName = keyof MultiOutputKernelAttrs;

/** Every kernel, core and fused, with its attributes. */
export interface KernelAttrs extends CoreKernelAttrs, FusedKernelAttrs {}
export type KernelName = keyof KernelAttrs;

type KernelFn<H extends Handle, K extends KernelName> = (inputs: readonly (TensorInfo & { handle: H })[], attrs: KernelAttrs[K], out: OutInfo) => H;
/** A backend's kernel table: every core kernel (a missing one is a compile error) and the fused kernels it offers. */
export type KernelTable<H extends Handle> = { [K in CoreKernelName]: KernelFn<H, K> } & { [K in FusedKernelName]?: KernelFn<H, K> };

export interface MemoryInfo {
  liveHandles: number;
  bytes: number;
  uploads: number;
  readbacks: number;
  kernelsCompiled: number;
  /** Bytes a caching allocator holds for reuse, in no tensor, that emptyCache() releases (the CPU backend's buffer pool). */
  cachedBytes?: number;
  /**
   * The CPU backend's WebAssembly memory, where its larger tensors live when it is shared
   * (src/backends/cpu/wasm/wasm-heap.ts): its size in bytes, and the bytes of its free blocks,
   * kept for the next tensors of their size. A WebAssembly memory cannot shrink, so
   * emptyCache() does not release these.
   */
  wasmMemoryBytes?: number;
  wasmFreeBytes?: number;
}

/** What a backend can do, asked by the layers above instead of comparing backend names. */
export interface BackendCapabilities {
  /**
   * Tensor data lives in host memory, so reading it costs no transfer. The MoE routes on the
   * host there (SparseDispatcher) and on the device otherwise (DeviceDispatcher).
   */
  readonly hostResident: boolean;
  /**
   * Whether dataSync() can read a tensor back synchronously (absent: yes). The gpu backend in
   * webgpu mode reads back only asynchronously; code that must look at values in the middle of
   * a forward pass (routers that route on the host) asks this and refuses with a clear error.
   */
  readonly syncReadback?: boolean;
  /** The dtypes it stores (every backend has float32 and int32; float64 is the CPU's). */
  readonly dtypes: readonly DType[];
}

/** What really runs: backend name, mode and kernel class, plus backend-specific details. */
export interface BackendInfo {
  readonly name: string;
  readonly mode: string;
  readonly kernelClass: string;
  readonly dtypes: readonly DType[];
  readonly [detail: string]: unknown;
}

export interface Backend {
  readonly name: string;
  readonly capabilities: BackendCapabilities;
  upload(values: TypedArray): Handle;
  run<K extends KernelName>(kernel: K, inputs: readonly TensorInfo[], attrs: KernelAttrs[K], out: OutInfo): Handle;
  /** Whether it offers a fused kernel, one output or several (absent: none). */
  supports?(kernel: FusedKernelName | MultiOutputKernelName): boolean;
  /** Runs a kernel with several outputs (where supports() says it has it). */
  runMany?<K extends MultiOutputKernelName>(kernel: K, inputs: readonly TensorInfo[], attrs: MultiOutputKernelAttrs[K], outs: readonly OutInfo[]): Handle[];
  readSync(handle: Handle, dtype: DType): TypedArray;
  read(handle: Handle, dtype: DType): Promise<TypedArray>;
  incRef(handle: Handle): void;
  decRef(handle: Handle): void;   // frees at zero; a freed handle is an error to use
  memory(): MemoryInfo;
  /** Releases memory a caching allocator holds in no tensor (torch.cuda.empty_cache); live tensors are untouched. */
  emptyCache?(): void;
  info(): BackendInfo;
  /** Resolves once the backend can run (webgpu: an adapter answered); rejects saying why not. */
  ready?(): Promise<void>;
  /** Frees the device; the backend's tensors become unusable. */
  shutdown?(): void;
  /**
   * Runs `f`, during which the backend may leave a job running on other threads while the
   * calling thread goes on (the CPU backend: a backward's expert weight gradients, while the
   * gate's backward runs); each such job is finished before any read of its results and
   * before this returns. Absent: `f` runs as it is.
   */
  overlapJobs?<T>(f: () => T): T;
}
