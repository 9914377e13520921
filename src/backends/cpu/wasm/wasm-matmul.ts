// The CPU backend's matmul on WebAssembly SIMD128 (gemm-module.ts), over all its threads.
//
// Where the data lives: where the memory is shared (Node, or a cross-origin-isolated page),
// the CPU backend's larger float tensors are views on this memory (wasm-heap.ts, placed by
// the pool): a product reads such operands and writes such a result in place. Other operands
// are copied in and other results out, which costs O(mk + kn + mn) against the O(mnk)
// product: at 512² about 3–4% of the kernel, and on an expert-sized product (16 × 256 · 256 ×
// 512) it still leaves the SIMD path several times faster than the scalar one
// (bench/matmul-simd.bench.ts measures both). Products too small to pay for the copies (below
// MIN_MACS multiply-adds) stay on the scalar kernels.
//
// Memory: the threads' control block at address 0; above it the heap's blocks (wasm-heap.ts):
// tensors, the resident-weights arena, and one scratch block a product lays out as
//   B-panel scratch, one per thread | A | packed Aᵀ | B | C (m × nPad)
// leaving out what it reads or writes in place. C's rows are padded to whole 8-column
// panels; the padding is dropped on the copy out, so a result is written in place only when
// its width is a whole number of panels.
//
// An MoE layer's dispatched rows are never copied where the grouped products can read them in
// place: the CPU backend defers indexSelect's copy (pool.ts gathers), and grouped() reads A
// ('rows': the experts' first layer) or B ('weights': its weight gradient) through a table of
// the rows' addresses in the source (`indexed`). The copy was 2 MiB at T = 1024, k = 2, d 256,
// made on the calling thread while the worker waited: 0.1–0.3 ms of an E = 16 step (paired
// A/B in one process, BENCHMARKS.md, 2026-12-07).
//
// Expert weights stay resident. A grouped product copied all E experts' weights in on every
// call (8 MB per call at E = 16, d 256, hidden 512: the forward's, and again the backward's).
// Weights that are not tensors of this memory are kept in an arena block,
// keyed by their typed array, so the backward (and anything else that multiplies by the same
// weights before they change) finds them there. Sound because a CPU handle's array never
// changes while the handle lives (kernels write only their fresh results; an optimizer step
// assigns new handles), and a freed handle's buffer comes back from the pool under a new
// array object, so a key never meets other values. The arena is a ring (a new weight
// overwrites the oldest) holding twice the largest grouped call's weights, at least
// RESIDENT_MIN_BYTES and at most RESIDENT_MAX_BYTES; backendInfo() reports its size and its
// hits and copies. Measured alternating: the MoE step 1–2% faster at E = 16 and 64 (one copy
// of three saved per step in the benchmark; in training, where ∂x is needed too, two of four).
// The floor was 16 MB. But the weights that need the arena are mostly the small ones (from
// 16 KB up, tensors live in this memory), and the ring's first lap touches every fresh page
// of the arena. With 1 MB, the default compare's MoE model kept the same hits and copies
// (6624 and 6432 in 200 steps). Its placements, timed inside the process, took 48 ms instead
// of 177, and its peak RSS fell from 137 to 116 MB. The run's wall time did not resolve the
// difference.

import type { Shape } from '../../../core/shape.js';
import { batchMatrices } from '../matmul/batch.js';
import type { TypedArray } from '../../../core/dtype.js';
import { CLOSED, CTRL, CTRL_BYTES, GEMM, NR, TABLE_MATH, TABLE_SEQ, TABLE_T32, TABLE_T64, TABLE_W32, TABLE_W64, TABLE_WORDS, gemmModuleBytes, type GemmExports, type SimdDType } from './gemm-module.js';
import { ThreadPool, coreCount, workerSupport } from './thread-pool.js';
import { CHUNKED, mathModuleBytes, type MathExports } from './math-module.js';
import { ScratchBlock, WasmHeap } from './wasm-heap.js';
import { wasmApi, type WasmApi, type WasmMemory, type WasmModule } from './wasm-api.js';

/** 2 GiB: addresses stay below 2³¹, so the kernels' signed i32 arithmetic never wraps. */
const MAX_PAGES = 32768;
/** Below this many multiply-adds the scalar kernels win (copies and call overhead dominate). */
export const MIN_MACS = 4096;
/**
 * Below this many multiply-adds (256³) a product runs on one thread. Waking a worker costs
 * 2–7 µs, but when the machine runs more threads than it has cores, a worker descheduled
 * while it holds a chunk costs the product a whole time slice: at load 9–12 on this 2-core
 * machine an LSTM gate product 32×256·(1024×256)ᵀ (8.4M) ran 0.12× as fast on 2 threads as
 * on 1, and 512² (134M) 0.86–1.03× (bench simd). On a quiet machine 2 threads gained
 * 1.3–1.8× from about 8M up (notes/wasm-simd.md); this threshold gives up that gain below
 * 16.7M for not losing 8× on a busy one. Experts gain from threads by running side by
 * side, not by splitting one small product.
 */
export const THREAD_MACS = 1 << 24; // (an LSTM layer's products split from SEQUENCE_MACS)
/**
 * From this many multiply-adds a product below THREAD_MACS may be left running on the workers
 * (matmul's `async`) where its caller has other work meanwhile: the noisy gate's [1024, 256] ·
 * [256, 16] products (4.2M) are the case in point. Posting and joining cost ~0.04 ms more than
 * computing it here (measured in one process: a 4.2M product 0.21 ms here, 0.035 to post,
 * ~0.05 to join), so a 1M one (E = 4) gains nothing; from 2M up it pays.
 */
export const ASYNC_MACS = 1 << 21;
/**
 * From this many multiply-adds an LSTM layer's products (h_{t−1}·W_hhᵀ forward and ∂z_t·W_hh
 * backward, 4·B·H² a step, and W_hh's gradient over all steps) split over the threads below
 * THREAD_MACS too: the recurrence is a chain of them with nothing to run beside. Measured
 * (2 threads against the same products on one, alternating in one process, fwd + bwd, 35
 * steps): quiet, 4.2–8.4M step products 1.20–1.32× faster (B 32, H 256: 57.0 → 46.0 ms),
 * 2.1M 1.10×, 1.0M 1.00–1.07 and 0.5M 0.97 (hence 2²¹); at load 10 (ten busy processes on the
 * two cores) 0.97–1.13×, still 1.10–1.26× one thread's speed: the pool's caller now sleeps
 * while it waits (the core goes to a descheduled worker), which THREAD_MACS's 0.12× predates.
 */
export const SEQUENCE_MACS = 1 << 21;
/**
 * A weight gradient's segment of at most this many rows reads Aᵀ in place (each tile's MR
 * columns of A, row after row) instead of packing it into MR-row panels first, on the calling
 * thread before the job. A tile's sweep then touches one cache line per row: up to 512 rows,
 * 32 KB, an L1's worth. Measured (grouped weight gradients over 2048 rows, 2 threads, 21–41
 * alternations): segments of 64–512 rows ran 0.1–0.7 ms faster in place; one of 1024 rows ran
 * 0.65 ms slower with 256 columns and 4.5 ms slower with 1024.
 */
export const PACK_ROWS = 512;
/**
 * A grouped 'rows' product without transposeB (the backward's x·W_e, W_e k × n) runs swapped
 * only up to this sum length: its A is then W_eᵀ, read in place a column of W_e at a time, so
 * a tile's sweep touches one cache line per step of the sum (256 steps, 16 KB). Measured (16
 * experts of 128 rows, one thread, weights cold, 41 alternations, three runs): 256 → 512 ran
 * 0.12–0.21 ms faster swapped (of 10.5–11.1), 512 → 256 0.18–0.41 ms slower.
 */
export const SWAP_PLAIN_K = 256;
/** The longest segment whose weight gradient runs on gemmW (WasmMatmul.shortSums). */
export const SHORT_SUMS = 64;
/**
 * The partial panels of a swapped forward (W_e row-major) that run on gemmT_f32's tail tiles:
 * 1 or 2 real columns (bits 1 and 2; WasmMatmul.tailTiles, gemm-module.ts emitTailTile).
 */
export const TAIL_TILES = (1 << 1) | (1 << 2);
/**
 * The partial panels (bit c: c real columns) of the backward's swapped dy[seg]·W_e that run on
 * the column tail tiles by default (WasmMatmul.colTails): all of them. One thread, 256 experts
 * of 2 … 16 rows: 13.5–13.7 → 12.2–12.5 ms warm, 15.8–16.0 → 15.3–15.6 cold; each count alone
 * gained 0.1 … 0.5 ms (BENCHMARKS.md, 2026-12-07 afternoon).
 */
export const COL_TAILS = 0b11111110;

const align16 = (x: number) => Math.ceil(x / 16) * 16;
/** The most the resident-weights arena may take; a grouped call with more weights copies them in. */
export const RESIDENT_MAX_BYTES = 256 * 2 ** 20;
/** The least the arena takes (see the top of this file). */
export const RESIDENT_MIN_BYTES = 2 ** 20;

/** A weight kept in the arena: its bytes at ptr, until the ring overwrites them (live false). */
interface Resident { ptr: number; bytes: number; live: boolean }

/**
 * Copies rows × n of C (rows padded to nPad columns, from element c0 of mem) into out at offset.
 * Narrow rows are copied element by element: a subarray and a set per row cost more than the
 * copy (a [1024, 4] gating product: 52 µs and a thousand short-lived views, against a few µs).
 */
function copyOut(mem: Float32Array | Float64Array, c0: number, nPad: number, rows: number, n: number, out: TypedArray, offset: number): void {
  if (nPad === n) out.set(mem.subarray(c0, c0 + rows * n), offset);
  else if (n <= 16) {
    for (let i = 0; i < rows; i++) {
      const src = c0 + i * nPad, dst = offset + i * n;
      for (let j = 0; j < n; j++) out[dst + j] = mem[src + j]!;
    }
  } else for (let i = 0; i < rows; i++) out.set(mem.subarray(c0 + i * nPad, c0 + i * nPad + n), offset + i * n);
}

/**
 * A grouped job's chunk table (TABLE_WORDS words per chunk): per product, per block of rows,
 * per group of panels, the product's gemm arguments, then p0 p1 r0 r1 and its kind word. With
 * lanes > 1 the products are split into `lanes` runs of consecutive products, and the table
 * takes one chunk from each run in turn: threads claiming in turn then tend to stay on one
 * product each (WasmMatmul.interleave). The order enters no sum.
 * A function of its own: inside grouped(), whose body TurboFan does not optimize as a whole,
 * this loop took 0.02–0.06 ms per call of an E = 16 step (about a thousand entries a step)
 * while the workers waited; here it takes a few µs.
 */
function writeChunkTable(table: Int32Array, products: readonly GroupedProduct[], rowBlock: number, groupPanels: number, lanes = 1): void {
  // Each run's cursor: its next product, row block and panel group, and the product it ends at.
  const runs = Array.from({ length: lanes }, (_, l) => ({
    i: Math.ceil((l * products.length) / lanes), end: Math.ceil(((l + 1) * products.length) / lanes), r0: 0, g: 0,
  }));
  let o = 0, left = lanes;
  while (left > 0) {
    left = 0;
    for (const run of runs) {
      if (run.i >= run.end) continue;
      const { args, rows, panels, kind } = products[run.i]!;
      for (let w = 0; w < 10; w++) table[o + w] = args[w]!;
      table[o + 10] = run.g * groupPanels; table[o + 11] = Math.min(panels, (run.g + 1) * groupPanels);
      table[o + 12] = run.r0; table[o + 13] = Math.min(rows, run.r0 + rowBlock); table[o + 14] = kind;
      o += TABLE_WORDS;
      // The next chunk of this run: the next group, row block, product.
      if (++run.g < Math.ceil(panels / groupPanels)) { left++; continue; }
      run.g = 0;
      run.r0 += rowBlock;
      if (run.r0 >= rows) { run.r0 = 0; run.i++; }
      if (run.i < run.end) left++;
    }
  }
}

/**
 * One product of a grouped job: the gemm arguments but the panel and row ranges, its rows and
 * panels, and its chunk table kind (0 float32, 1 float64, TABLE_T32 / TABLE_T64 for gemmT,
 * TABLE_W32 / TABLE_W64 for gemmW).
 */
interface GroupedProduct { args: number[]; rows: number; panels: number; kind: number }

/** The math-module pieces the noisy gate's job runs (their CHUNKED ids). */
const PIECE = {
  softplus: CHUNKED.indexOf('softplus_f32'), addVs: CHUNKED.indexOf('add_vs_f32'), normal: CHUNKED.indexOf('normal_f32'),
  mulVv: CHUNKED.indexOf('mul_vv_f32'), addVv: CHUNKED.indexOf('add_vv_f32'), topk: CHUNKED.indexOf('topk_f32'),
} as const;

/** A float32 gemm chunk table entry at word o: rows 0 … rows−1, every panel, of A (row-major, k = d) · B (d × n) into C (n a whole number of panels). */
function gemmEntry(words: Int32Array, o: number, aPtr: number, d: number, bPtr: number, cPtr: number, n: number, rows: number): void {
  words[o] = aPtr; words[o + 1] = d * 4; words[o + 2] = 4; words[o + 3] = bPtr; words[o + 4] = n * 4; words[o + 5] = 4;
  words[o + 6] = cPtr; words[o + 7] = n * 4; words[o + 8] = n; words[o + 9] = d; words[o + 10] = 0; words[o + 11] = n / NR;
  words[o + 12] = 0; words[o + 13] = rows; words[o + 14] = 0;
}

/** A math-module piece's chunk table entry at word o: its CHUNKED id, then up to eight arguments. */
function pieceEntry(words: Int32Array, o: number, id: number, a: number, b: number, c: number, d: number, e: number, f: number, g: number, h: number): void {
  words[o] = id; words[o + 1] = a; words[o + 2] = b; words[o + 3] = c; words[o + 4] = d;
  words[o + 5] = e; words[o + 6] = f; words[o + 7] = g; words[o + 8] = h; words[o + 14] = TABLE_MATH;
}

/** Whether the byte ranges [a, a + aBytes) and [b, b + bBytes) share a byte (an address -1 is no range). */
function overlaps(a: number, aBytes: number, b: number, bBytes: number): boolean {
  return a >= 0 && b >= 0 && a < b + bBytes && b < a + aBytes;
}

/** What a grouped product adds: 'rows' biases and relu, 'weights' column sums of an operand. */
export interface GroupedOptions {
  biases?: readonly TypedArray[] | null;
  relu?: boolean;
  sums?: { of: 'a' | 'b'; outs: readonly TypedArray[] } | null;
  /**
   * When the job is split over the threads, post it and return at once
   * (ThreadPool.runAsync), calling `done` once it is joined; `busy` is then true. The caller
   * must not read the results nor free the operands until then (the CPU backend defers both:
   * register.ts). The scratch is this engine's second block, which no other product uses.
   */
  async?: { done: () => void } | null;
  /**
   * The rows of one operand, read where they lie instead of from a gathered copy ('rows': A,
   * 'weights': B; the CPU backend's deferred indexSelect, register.ts): row i of the operand is
   * row index[i] of src, a tensor of this memory whose rows are as wide as the operand's. The
   * operand's own array is then neither read nor written. The job reads the rows through a
   * table of their addresses (the gemm's aRs or sBp 0), so the values and their order, and
   * hence the bits, are those of the gathered copy. Not with 'weights' column sums of B.
   */
  indexed?: { src: TypedArray; index: Int32Array } | null;
}

/** What the SIMD path is and why it is (or is not) what runs. */
export interface SimdStatus {
  simd: boolean;
  simdReason: string;
  /** Whether worker threads over shared memory can run here. */
  sharedMemory: boolean;
  threadsReason: string;
}

export class WasmMatmul {
  /** Products computed here (the others went to the scalar kernels). */
  products = 0;
  /** The allocator of the memory above the control block: tensors (when shared), the arena, the scratch. */
  readonly heap: WasmHeap;
  /** The block products lay out their scratch in. */
  private readonly scratchBlock: ScratchBlock;
  /** The scratch of a job left running (GroupedOptions.async), apart from every other product's. */
  private readonly asyncScratch: ScratchBlock;
  /** The arena of resident weights: a block at base of capacity bytes, the next write at top. */
  private arena = { base: -1, capacity: 0, top: 0 };
  private readonly residents = new WeakMap<TypedArray, Resident>();
  /**
   * The arena's live entries in the order they were placed, oldest from residentHead on: the
   * ring writes in address order, so the entries a placement overwrites are always the oldest.
   */
  private residentList: Resident[] = [];
  private residentHead = 0;
  /** The arena's limit: RESIDENT_MAX_BYTES (0 turns residency off: every call copies its weights). */
  residentLimit = RESIDENT_MAX_BYTES;
  /** Weights a grouped product found resident / had to copy into the arena. */
  residentHits = 0;
  residentCopies = 0;
  /** Operands read and results written in place (tensors in this memory), not copied. */
  inPlace = 0;
  /**
   * The A operand the last product left in the scratch (its copy at aPtr, or Aᵀ packed there
   * when transposed), when its caller said A's values cannot change (a tensor's array): the
   * next product of the same A, in the same layout, uses it in place (the gate's x·W_gate then
   * x·W_noise, and xᵀ·∂ of both in backward). Any other use of the scratch drops it.
   */
  private readonly lastA: { a: TypedArray | null; aPtr: number; m: number; k: number; transposeA: boolean; dtype: SimdDType } = { a: null, aPtr: 0, m: 0, k: 0, transposeA: false, dtype: 'float32' };
  /** Products that found their A operand in the scratch. */
  aReused = 0;
  /** The least multiply-adds of a product left running (ASYNC_MACS; Infinity: none, for A/B measurements and tests). */
  asyncMacs = ASYNC_MACS;
  /** Products left running (matmul's `async`). */
  productsLeftRunning = 0;
  /** The least multiply-adds from which an LSTM layer's per-step products split (SEQUENCE_MACS; Infinity: from THREAD_MACS, for A/B measurements). */
  sequenceMacs = SEQUENCE_MACS;
  /** Noisy top-k gates computed as one job of row blocks (noisyTopK). */
  noisyGateJobs = 0;

  private constructor(
    private readonly memory: WasmMemory,
    private readonly kernels: GemmExports,
    readonly pool: ThreadPool | null,
    readonly status: SimdStatus,
    /** The math module's kernels on this memory, instantiated beside the pool's (null without threads). */
    readonly mathKernels: MathExports | null = null,
  ) {
    this.heap = new WasmHeap(memory, CTRL_BYTES, MAX_PAGES, (ptr, bytes) => kernels.zero(ptr, bytes));
    this.scratchBlock = new ScratchBlock(this.heap);
    this.asyncScratch = new ScratchBlock(this.heap);
    this.tailTiles = TAIL_TILES;
    this.quarterRows = true;
    this.narrowTiles = true;
    this.colTails = COL_TAILS;
  }

  /**
   * Whether a grouped product of several experts' weights run on one thread touches the next
   * panel's B while it computes a panel (the control block's touch word, set for that loop
   * only): the cold weights' lines arrive during the arithmetic instead of stalling the next
   * pack. Everywhere else the word is 0: with the weights warm (a dense layer, an LSTM) or two
   * threads reading at once, the touches cost more than they hide (BENCHMARKS.md). Off: never
   * (for A/B measurements).
   */
  touchAhead = true;
  /** Whether a grouped 'rows' product of short segments runs swapped on gemmT (grouped(); off for A/B measurements and tests). */
  swapRows = true;
  /** Grouped 'rows' products that ran swapped (observability and tests). */
  swappedProducts = 0;
  /**
   * Whether a swapped job's chunk table interleaves runs of experts, one run per thread
   * (writeChunkTable's `lanes`). A swapped chunk streams its expert's whole weight (512 KiB at
   * E = 16): a thread that stays on one expert finds it in its own L2 after the first chunk,
   * where chunks claimed in expert order put both threads on each expert's weight. Paired
   * medians in the step, plain − interleaved: E = 16 +0.025 … +0.288 ms (five runs), E = 64
   * +0.205 (BENCHMARKS.md, 2026-12-07). Off for A/B measurements.
   */
  interleave = true;
  /**
   * A grouped weight gradient over a segment of at most this many rows runs on gemmW (B read
   * in place, each row tile sweeping every panel; gemm-module.ts emitGemmW) where its width is
   * a whole number of panels. 0: never (for A/B measurements and tests).
   */
  shortSums = SHORT_SUMS;
  /** Weight gradients that ran on gemmW (observability and tests). */
  shortSumProducts = 0;

  /** The control block's words (CTRL), as a view over the memory as it is now (it may have grown). */
  private ctrl(): Int32Array { return new Int32Array(this.heap.buffer(), 0, CTRL_BYTES / 4); }
  private setTouch(on: boolean): void { this.ctrl()[CTRL.touch] = on ? 1 : 0; }

  /**
   * Which partial panels of a float32 gemmT with A row-major (a swapped forward's W_e) run on
   * its tail tiles (gemm-module.ts emitTailTile), as the control block's tail word: bit c for a
   * panel of c real columns. 0: all on the padded tiles (for A/B measurements and tests).
   */
  get tailTiles(): number { return this.ctrl()[CTRL.tail]!; }
  set tailTiles(mask: number) { this.ctrl()[CTRL.tail] = mask; }
  /**
   * Whether gemmT runs a row-major A's whole tiles quartered (the control block's quarter word;
   * gemm-module.ts emitGemm): a swapped forward's W_e then streams as MR long runs of rows.
   * Off: MR consecutive rows a tile (for A/B measurements and tests).
   */
  get quarterRows(): boolean { return this.ctrl()[CTRL.quarter] !== 0; }
  set quarterRows(on: boolean) { this.ctrl()[CTRL.quarter] = on ? 1 : 0; }
  /**
   * Whether a float32 gemmT runs a narrow panel (at most 4 real columns, not on a tail tile)
   * on tiles of 2·MR rows (the control block's narrow8 word; gemm-module.ts emitGemm). Off:
   * on the half-width tiles of MR rows (for A/B measurements and tests).
   */
  get narrowTiles(): boolean { return this.ctrl()[CTRL.narrow8] !== 0; }
  set narrowTiles(on: boolean) { this.ctrl()[CTRL.narrow8] = on ? 1 : 0; }
  /**
   * Which partial panels of a float32 gemmT whose A is read a column at a time (the backward's
   * dy[seg]·W_e swapped: A = W_eᵀ in place) run on its column tail tiles (gemm-module.ts
   * emitColTailTile), as the control block's colTail word: bit c for a panel of c real columns.
   * 0: on the padded and half-width tiles (for A/B measurements and tests).
   */
  get colTails(): number { return this.ctrl()[CTRL.colTail]!; }
  set colTails(mask: number) { this.ctrl()[CTRL.colTail] = mask; }
  /** Partial panels that ran on the column tail tiles so far, one count per row block of one (observability and tests). */
  get colTailPanels(): number { return Atomics.load(this.ctrl(), CTRL.colTailPanels); }
  /** Narrow panels that ran on the tiles of 2·MR rows so far, one count per row block of a panel (observability and tests). */
  get narrowPanels(): number { return Atomics.load(this.ctrl(), CTRL.narrowPanels); }
  /** gemmT calls (a chunk each, threaded) that ran quartered so far (observability and tests). */
  get quarteredCalls(): number { return Atomics.load(this.ctrl(), CTRL.quartered); }
  /** Partial panels that ran on the tail tiles so far, one count per row block of a panel (observability and tests). */
  get tailPanels(): number { return Atomics.load(this.ctrl(), CTRL.tailPanels); }

  /**
   * Builds the module and its memory, shared when threads can run here. Returns the reason
   * instead when WebAssembly SIMD128 cannot run (the caller reports it and keeps the scalar
   * kernels). `wasm` is the engine's WebAssembly (null: none; a test passes one without SIMD).
   */
  static create(wasm: WasmApi | null = wasmApi ?? null): WasmMatmul | string {
    if (wasm === null) return 'no WebAssembly in this JavaScript engine';
    let threadsReason = 'worker threads over a shared WebAssembly.Memory';
    let shared: WasmMemory | null = null;
    const workers = workerSupport();
    if (typeof SharedArrayBuffer === 'undefined') {
      threadsReason = 'no SharedArrayBuffer (a browser page without cross-origin isolation): one thread';
    } else if (typeof workers === 'string') {
      threadsReason = `${workers}: one thread`;
    } else {
      try {
        shared = new wasm.Memory({ initial: 1, maximum: MAX_PAGES, shared: true });
      } catch (e) {
        threadsReason = `a shared WebAssembly.Memory could not be created (${(e as Error).message}): one thread`;
      }
    }
    const memory = shared ?? new wasm.Memory({ initial: 1, maximum: MAX_PAGES });
    let module: WasmModule;
    try {
      module = new wasm.Module(gemmModuleBytes({ shared: shared !== null, initialPages: 1, maximumPages: MAX_PAGES }, shared !== null));
    } catch (e) {
      return `WebAssembly SIMD128 is not available here (${(e as Error).message})`;
    }
    // With threads, the math module runs over the same memory in every thread, and a job's
    // chunks may be pieces of its kernels (runPieces): the gemm module imports its dispatcher.
    let math: { module: WasmModule; kernels: MathExports } | null = null;
    if (shared !== null && typeof workers !== 'string') {
      try {
        const mathModule = new wasm.Module(mathModuleBytes(true));
        math = { module: mathModule, kernels: new wasm.Instance(mathModule, { env: { memory } }).exports as unknown as MathExports };
      } catch (e) {
        return `WebAssembly SIMD128 is not available here (${(e as Error).message})`;
      }
    }
    const kernels = new wasm.Instance(module, { env: { memory, chunk: math?.kernels.chunk } }).exports as unknown as GemmExports;
    const pool = shared !== null && math !== null && typeof workers !== 'string'
      ? new ThreadPool(module, math.module, memory, workers, (g, t) => kernels.work!(g, t))
      : null;
    if (pool) pool.resize(coreCount());
    const status = { simd: true, simdReason: 'WebAssembly SIMD128 matmul (f32x4, f64x2)', sharedMemory: pool !== null, threadsReason };
    return new WasmMatmul(memory, kernels, pool, status, math?.kernels ?? null);
  }

  /** Threads a large product runs on. */
  get threads(): number { return this.pool?.threads ?? 1; }

  /** Whether a job left running (GroupedOptions.async) is still to be joined: kernel pieces meanwhile run on the calling thread (WasmMath). */
  get busy(): boolean { return this.pool?.busy ?? false; }

  private view(dtype: SimdDType): Float32Array | Float64Array {
    return dtype === 'float32' ? this.heap.f32() : this.heap.f64();
  }

  /** Bytes the resident arena spans (0 before a grouped product used it). */
  get residentBytes(): number { return this.arena.capacity; }

  /** The address of a product's scratch block of at least `bytes` bytes, or -1 where the memory cannot hold it. */
  private scratch(bytes: number): number {
    const before = this.scratchBlock.ptr, ptr = this.scratchBlock.at(bytes);
    // A new block elsewhere: the A operand left in the old one is gone.
    if (ptr !== before) this.lastA.a = null;
    return ptr;
  }

  /**
   * Where each of `bs` (elems elements of `bytes` each) lies in the arena, copying in those not
   * resident; null where the arena cannot hold them. Every pointer returned stays valid until
   * the next product: the arena holds at least twice one call's weights, so a weight placed by
   * this call is not overwritten by the same call, and one found resident but then overwritten
   * by this call's placements is placed again.
   */
  private residentWeights(bs: readonly TypedArray[], elems: number, bytes: number, dtype: SimdDType): number[] | null {
    const size = align16(elems * bytes), need = size * bs.length;
    const capacity = Math.max(this.arena.capacity, Math.min(this.residentLimit, Math.max(RESIDENT_MIN_BYTES, 2 * need)));
    if (2 * need > capacity) return null;
    if (capacity > this.arena.capacity) {
      // A bigger arena is a new block: every weight in the old one is dropped.
      for (const r of this.residentList) r.live = false;
      this.residentList = [];
      this.residentHead = 0;
      if (this.arena.base >= 0) this.heap.release(this.arena.base);
      const base = this.heap.alloc(capacity);
      this.arena = base < 0 ? { base: -1, capacity: 0, top: 0 } : { base, capacity, top: base };
      if (base < 0) return null;
    }
    const entries = bs.map((b) => this.residents.get(b));
    for (const r of entries) if (r?.live) this.residentHits++;
    for (let again = true; again;) {
      again = false;
      for (let e = 0; e < bs.length; e++) {
        if (entries[e]?.live) continue;
        entries[e] = this.place(bs[e]!, elems, size, dtype);
        this.residentCopies++;
        again = true;
      }
    }
    return entries.map((r) => r!.ptr);
  }

  /**
   * Copies b into the arena at the ring's next place, dropping the entries it overwrites: the
   * oldest ones, from the front of the list. (A filter of the whole list per placement took
   * about 5% of the CPU profile of `mixtape train --model moe`, the default compare's MoE
   * model, whose 8 KB expert weights then filled a 16 MB arena about 2000 entries deep.)
   */
  private place(b: TypedArray, elems: number, size: number, dtype: SimdDType): Resident {
    const a = this.arena, list = this.residentList;
    if (a.top + size > a.base + a.capacity) {
      // Back to the start: the last lap's entries past the old top (the oldest) are dropped
      // now, so that the front of the list is again the next place the ring overwrites.
      const oldTop = a.top;
      a.top = a.base;
      while (this.residentHead < list.length && list[this.residentHead]!.ptr >= oldTop) list[this.residentHead++]!.live = false;
    }
    const ptr = a.top;
    a.top += size;
    // The last lap's entries lie at or after ptr, oldest first, ahead of this lap's (which end
    // at or before ptr): drop from the front while the front overlaps [ptr, ptr + size).
    for (let r = list[this.residentHead]; r !== undefined && r.ptr < ptr + size && ptr < r.ptr + r.bytes; r = list[this.residentHead]) {
      r.live = false;
      this.residentHead++;
    }
    if (this.residentHead > 64 && 2 * this.residentHead > list.length) {
      list.splice(0, this.residentHead);
      this.residentHead = 0;
    }
    this.view(dtype).set(b.subarray(0, elems), ptr / GEMM[dtype].bytes);
    const r: Resident = { ptr, bytes: size, live: true };
    this.residents.set(b, r);
    list.push(r);
    return r;
  }

  /**
   * out = op(a) · op(b) with broadcast batch dimensions, as the scalar matmul. Returns false
   * (having written nothing) when the product is not one for this path: int32, mixed dtypes,
   * below MIN_MACS, or larger than the wasm memory. `aStable`: a's values do not change while
   * the array lives (a tensor's), so a copy of it left by the previous product may be reused.
   */
  matmul(
    a: TypedArray, aShape: Shape, b: TypedArray, bShape: Shape,
    out: TypedArray, outShape: Shape, transposeA: boolean, transposeB: boolean, aStable = false,
    async: { done: () => void } | null = null, splitFrom = THREAD_MACS,
  ): boolean {
    const dtype: SimdDType | null = out instanceof Float32Array ? 'float32' : out instanceof Float64Array ? 'float64' : null;
    if (dtype === null || a.constructor !== out.constructor || b.constructor !== out.constructor) return false;
    const r = outShape.length;
    const m = outShape[r - 2]!, n = outShape[r - 1]!;
    const k = transposeA ? aShape[aShape.length - 2]! : aShape[aShape.length - 1]!;
    if (m * n * k < MIN_MACS) return false;
    const { bytes, mr } = GEMM[dtype];
    const panels = Math.ceil(n / NR), nPad = panels * NR;
    const matrices = batchMatrices(aShape, bShape, outShape);
    // Left running (`async`): a product of one matrix, too small to be split here (it would run
    // on this thread alone), with no other job running: the workers take it while this thread
    // goes on (the noisy gate's x·W_gate beside its x·W_noise and noise draws).
    const leave = async !== null && this.pool !== null && this.threads > 1 && !this.pool.busy
      && matrices.a.length === 1 && m * n * k >= this.asyncMacs && m * n * k < THREAD_MACS;
    const threads = leave || m * n * k >= Math.min(splitFrom, THREAD_MACS) ? this.threads : 1;
    const scratchStride = align16(k * NR * bytes);
    // Operands of this memory are read in place; the result is written in place when it has
    // whole panels and shares no byte with an operand.
    const aAt = this.heap.addressOf(a), bAt = this.heap.addressOf(b);
    let cAt = nPad === n ? this.heap.addressOf(out) : -1;
    if (cAt >= 0 && (overlaps(cAt, out.byteLength, aAt, a.byteLength) || overlaps(cAt, out.byteLength, bAt, b.byteLength))) cAt = -1;
    const copyA = aAt < 0;
    const aOff = align16(scratchStride * this.threads);
    const apOff = align16(aOff + (copyA ? m * k * bytes : 0));
    // Packed Aᵀ fills whole MR-row panels, the last one included.
    const bOff = align16(apOff + (transposeA ? Math.ceil(m / mr) * mr * k * bytes : 0));
    const cOff = align16(bOff + (bAt < 0 ? k * n * bytes : 0));
    // A job left running has its own scratch, apart from the products this thread runs meanwhile.
    const scratchBytes = cOff + (cAt < 0 ? m * nPad * bytes : 0);
    const base = leave ? this.asyncScratch.at(scratchBytes) : this.scratch(scratchBytes);
    if (base < 0) return false;
    this.products++;
    this.inPlace += (aAt >= 0 ? 1 : 0) + (bAt >= 0 ? 1 : 0) + (cAt >= 0 ? 1 : 0);

    const last = this.lastA, single = matrices.a.length === 1 && !leave;
    // What the product prepares from A in the scratch (its copy, or Aᵀ packed): none when it
    // reads A in place untransposed.
    const prepared = copyA || transposeA;
    const aPtr = base + (transposeA ? apOff : aOff);
    const reuse = prepared && aStable && single && last.a === a && last.aPtr === aPtr && last.m === m && last.k === k
      && last.transposeA === transposeA && last.dtype === dtype;
    // Kept in place (no object per product): this product's A, or none.
    last.a = prepared && aStable && single ? a : null;
    last.aPtr = aPtr; last.m = m; last.k = k; last.transposeA = transposeA; last.dtype = dtype;
    if (reuse) this.aReused++;
    const aRs = transposeA ? bytes : k * bytes, aKs = transposeA ? mr * bytes : bytes;
    const sBp = transposeB ? bytes : n * bytes, sBj = transposeB ? k * bytes : bytes;
    const ldc = nPad * bytes;
    const gemm = dtype === 'float32' ? this.kernels.gemm_f32 : this.kernels.gemm_f64;
    const panelScratch = base;
    let bCopied = -1;
    for (let batch = 0, cOffElems = 0; batch < matrices.a.length; batch++, cOffElems += m * n) {
      const aIdx = matrices.a[batch]!, bIdx = matrices.b[batch]!;
      const mem = this.view(dtype);
      // A as stored (m × k, or k × m when transposed) for this batch.
      const aStored = copyA ? base + aOff : aAt + aIdx * m * k * bytes;
      if (!reuse) {
        if (copyA) mem.set(a.subarray(aIdx * m * k, (aIdx + 1) * m * k), (base + aOff) / bytes);
        if (transposeA) (dtype === 'float32' ? this.kernels.packAT_f32 : this.kernels.packAT_f64)(aStored, m, k, base + apOff);
      }
      const aSrc = transposeA ? base + apOff : aStored;
      let bPtr: number;
      if (bAt >= 0) bPtr = bAt + bIdx * k * n * bytes;
      else {
        bPtr = base + bOff;
        if (bIdx !== bCopied) mem.set(b.subarray(bIdx * k * n, (bIdx + 1) * k * n), bPtr / bytes);
        bCopied = bIdx;
      }
      const cPtr = cAt >= 0 ? cAt + cOffElems * bytes : base + cOff;
      if (threads > 1) {
        // Left running: the copy out (when not written in place) waits for the join.
        const done = leave ? () => { if (cAt < 0) copyOut(this.view(dtype), cPtr / bytes, nPad, m, n, out, 0); async!.done(); } : undefined;
        this.runThreaded(dtype, { aSrc, aRs, aKs, bPtr, sBp, sBj, cPtr, ldc, n, k, m, panels, scratch: panelScratch, scratchStride }, threads, done);
        if (leave) { this.productsLeftRunning++; return true; }
      } else {
        gemm(aSrc, aRs, aKs, bPtr, sBp, sBj, cPtr, ldc, n, k, 0, panels, 0, m, panelScratch);
      }
      if (cAt < 0) copyOut(this.view(dtype), cPtr / bytes, nPad, m, n, out, cOffElems);
    }
    return true;
  }

  /**
   * out[j] = Σ_i x[i, j] for x [rows, cols] (sum over the first axis: importance, load, a bias
   * gradient), each column summed in float64 from 0 in row order and rounded once into out, as
   * reduce.ts's loop sums it (the emitted colSums), when x is a tensor of this memory whose rows
   * are whole vectors (so no row is read past its end); false (nothing written) otherwise.
   */
  columnSums(x: Float32Array | Float64Array, rows: number, cols: number, out: Float32Array | Float64Array): boolean {
    const at = this.heap.addressOf(x), bytes = x.BYTES_PER_ELEMENT;
    if (at < 0 || (cols * bytes) % 16 !== 0 || rows * cols > x.length) return false;
    const vecs = (cols * bytes) / 16, acc = this.heap.alloc(cols * 8);
    if (acc < 0) return false;
    (bytes === 4 ? this.kernels.colSums_f32 : this.kernels.colSums_f64)(at, cols * bytes, rows, acc, vecs);
    out.set(new Float64Array(this.heap.buffer(), acc, cols));
    this.heap.release(acc);
    this.columnSumCalls++;
    return true;
  }
  /** Sums columnSums() took (observability and tests). */
  columnSumCalls = 0;

  /**
   * out[j] = x[index[j]] for rows of `rowElems` elements (indexSelect along the first axis), row
   * by row with memory.copy, when x and out are both tensors of this memory; false (nothing
   * written) otherwise. The caller checks the indices. A row copied from JavaScript costs a
   * view and a shared-memory set (~100 ns for 1 KiB) against ~20 ns here.
   */
  gatherRows(x: TypedArray, index: Int32Array, rowElems: number, out: TypedArray): boolean {
    const xAt = this.heap.addressOf(x), outAt = this.heap.addressOf(out);
    if (xAt < 0 || outAt < 0 || x.constructor !== out.constructor) return false;
    const rowBytes = rowElems * x.BYTES_PER_ELEMENT, copy = this.kernels.copy;
    for (let j = 0; j < index.length; j++) copy(outAt + j * rowBytes, xAt + index[j]! * rowBytes, rowBytes);
    return true;
  }

  /**
   * Grouped products over row segments (an MoE layer's experts: rows sorted by expert,
   * segment e holds sizes[e] rows), all in one job spread over the threads:
   *   'rows':    out[seg e] (M × n) = A[seg e] (M × k) · op(B_e), op(B_e) = B_eᵀ when
   *              transposeB (B_e stored n × k, a Linear weight) else B_e (k × n), plus
   *              biases[e] on every row when biases are given (added before the copy out),
   *              then relu of every element with `relu`;
   *   'weights': outs[e] (k × n) = A[seg e]ᵀ · B[seg e], A [M, k] and B [M, n] (the weight
   *              gradients, summed over the segment's rows; one output per segment), and
   *              with `sums`, each segment's column sums of A or B into sums.outs[e] (the
   *              biases' gradients; float64 sums in row order, as the segmentSums kernel's),
   *              from the copy already in wasm memory.
   * Every element is summed by one gemm call in the order of the single product, so each
   * segment's result is bit-identical to matmul() of that segment, for any thread count.
   * Operands and results that are tensors of this memory are read and written in place.
   * Returns false (having written nothing) where the SIMD path does not take it.
   */
  grouped(
    mode: 'rows' | 'weights', a: TypedArray, bs: readonly TypedArray[], sizes: readonly number[],
    k: number, n: number, transposeB: boolean, out: TypedArray | readonly TypedArray[], options: GroupedOptions = {}, residentOk = true,
  ): boolean {
    // A job left running may read the resident arena and its scratch: finished first.
    this.pool?.join();
    this.lastA.a = null;
    const { biases = null, sums = null, relu = false, async = null, indexed = null } = options;
    const first = Array.isArray(out) ? out[0] : out;
    const dtype: SimdDType | null = first instanceof Float32Array ? 'float32' : first instanceof Float64Array ? 'float64' : null;
    if (dtype === null || a.constructor !== first.constructor || bs.some((b) => b.constructor !== first.constructor)) return false;
    const { bytes, mr } = GEMM[dtype];
    const E = sizes.length, M = sizes.reduce((x, y) => x + y, 0);
    // As matmul: a job this small runs on the scalar kernels (so a one-segment job, a dense
    // Expert's layer, always gives matmul's bits).
    if (M * k * n < MIN_MACS) return false;
    // A gathered operand: A of 'rows', B of 'weights' (whose column sums read B's own array).
    const gatherA = indexed !== null && mode === 'rows', gatherB = indexed !== null && mode === 'weights';
    const srcAt = indexed === null ? -1 : this.heap.addressOf(indexed.src);
    if (indexed !== null && (srcAt < 0 || indexed.src.constructor !== first.constructor || indexed.index.length !== M || (gatherB && sums?.of === 'b'))) return false;
    const panels = Math.ceil(n / NR), nPad = panels * NR;
    // The sum length of every product: k ('rows'), a segment's rows ('weights').
    const maxK = mode === 'rows' ? k : Math.max(0, ...sizes);
    const scratchStride = align16(Math.max(1, maxK) * NR * bytes);
    // In place: A; B ('weights'; 'rows' when every expert with rows has its weight here);
    // the result(s) when they have whole panels and share no byte with an operand.
    const aAt = gatherA ? srcAt : this.heap.addressOf(a);
    const bAts = gatherB ? [srcAt] : bs.map((b) => this.heap.addressOf(b));
    const aSpan = gatherA ? indexed!.src.byteLength : a.byteLength;
    const bSpan = (b: TypedArray) => (gatherB ? indexed!.src.byteLength : b.byteLength);
    const bInPlace = mode === 'weights' ? bAts[0]! >= 0 : sizes.every((m, e) => m === 0 || bAts[e]! >= 0);
    const outs = Array.isArray(out) ? out as readonly TypedArray[] : [out as TypedArray];
    const cAts = outs.map((o) => (nPad === n ? this.heap.addressOf(o) : -1));
    const clash = (o: TypedArray, at: number) => overlaps(at, o.byteLength, aAt, aSpan) || bs.some((b, e) => overlaps(at, o.byteLength, bAts[e]!, bSpan(b)));
    const cInPlace = cAts.every((at, i) => at >= 0 && !clash(outs[i]!, at));
    const aOff = align16(scratchStride * this.threads);
    const apOff = align16(aOff + (aAt < 0 ? M * k * bytes : 0));
    // 'weights': a segment of more than PACK_ROWS rows has its Aᵀ (k × its rows) packed into
    // MR-row panels, as for transposeA; a shorter one reads Aᵀ in place (aRs one element, aKs
    // a row of A). Where a row of A is MR elements, those are the packed layout's strides, and
    // its one panel is A itself: the gemm takes either for the other, rightly.
    const packs = (m: number) => m > PACK_ROWS;
    // 'weights' over a segment of at most shortSums rows, n whole panels: gemmW (emitGemmW).
    const shortSum = (m: number) => mode === 'weights' && m <= this.shortSums && n % NR === 0;
    const apBytes = mode === 'weights' ? sizes.reduce((c, m) => c + (packs(m) ? Math.ceil(k / mr) * mr * m * bytes : 0), 0) : 0;
    const bOff = align16(apOff + apBytes);
    // 'rows': weights not in place come from the resident arena, else are copied into B.
    const used = mode === 'rows' ? sizes.reduce((c, m) => c + (m > 0 ? 1 : 0), 0) : 0;
    const resident = !bInPlace && residentOk && mode === 'rows' && 2 * used * align16(k * n * bytes) <= this.residentLimit;
    const bBytes = bInPlace || resident ? 0 : mode === 'rows' ? E * k * n * bytes : M * n * bytes;
    const cRows = mode === 'rows' ? M : E * k;
    const cOff = align16(bOff + bBytes);
    // Chunks: per product, groups of up to 4 panels, each over all the product's rows: a chunk
    // packs its panels once, so blocks of rows would pack them once per block (at E = 4, 512
    // rows per expert, blocks of 64 packed every panel 8 times, and 2 threads ran the grouped
    // products 1.45× faster than 1 against the dense block's 1.8×). Only a job of fewer than 4
    // chunks per thread is split into blocks of 64 rows as well, for balance.
    // 'rows' with transposeB and segments shorter than the weight (an MoE layer's experts: 128
    // rows against 512 at E = 16) runs each product swapped: out[seg]ᵀ = W_e · A[seg]ᵀ on
    // gemmT, which packs the segment's rows instead of the weight (m × k elements, not n × k)
    // and stores its tiles transposed. The same sums in the same order (each product A·W is
    // W·A exactly), so the same bits. Measured on 16 experts of 128 rows, one thread, weights
    // cold: 256 → 512 11.4 → 11.0 ms, 512 → 256 10.9 → 10.7 (BENCHMARKS.md, 2026-12-07).
    // Without transposeB (the backward's dy[seg]·W_e), A' = W_eᵀ read in place (aRs one
    // element, aKs a row of W_e), for sums of at most SWAP_PLAIN_K.
    const swapped = mode === 'rows' && (transposeB || k <= SWAP_PLAIN_K) && this.swapRows && M < n * used;
    const panelsOf = (m: number) => (swapped ? Math.ceil(m / NR) : shortSum(m) ? 1 : panels);
    const groupPanels = Math.min(4, panels);
    const rowsOf = (e: number) => (mode === 'rows' ? (swapped ? n : sizes[e]!) : k);
    const maxRows = Math.max(k, n, ...sizes);
    const countChunks = (block: number) => sizes.reduce((c, m, e) => c + (m > 0 ? Math.ceil(panelsOf(m) / groupPanels) * Math.ceil(rowsOf(e) / block) : 0), 0);
    const rowBlock = countChunks(maxRows) >= 4 * this.threads ? maxRows : 64;
    const chunks = countChunks(rowBlock);
    // Split over the threads when large enough; the claim word counts chunks in 16 bits, so a
    // job of more chunks runs on this thread.
    const threaded = this.pool !== null && this.threads > 1 && M * k * n >= THREAD_MACS && chunks < CLOSED;
    const leaveRunning = threaded && async !== null;
    const tableOff = align16(cOff + (cInPlace ? 0 : cRows * nPad * bytes));
    // 'rows' with biases or relu: each bias (zeros without biases), padded to nPad columns,
    // added to its rows by addRows, which applies the relu.
    const epilogue = mode === 'rows' && (biases !== null || relu);
    const biasOff = align16(tableOff + (threaded ? chunks * TABLE_WORDS * 4 : 0));
    // 'weights' with sums: one segment's float64 column sums at a time, columns padded to v128s.
    const sumCols = sums === null ? 0 : sums.of === 'a' ? k : n;
    const sumVecs = Math.ceil((sumCols * bytes) / 16);
    const sumsOff = align16(biasOff + (epilogue ? E * nPad * bytes : 0));
    // A gathered operand's row addresses, one i32 per row.
    const rowsOff = align16(sumsOff + sumVecs * (16 / bytes) * 8);
    let bPtrs: number[] | null = null;
    if (resident) {
      const placed = this.residentWeights(bs.filter((_, e) => sizes[e]! > 0), k * n, bytes, dtype);
      // No room for the arena (near the 2 GiB of a wasm32 memory): copy the weights in instead.
      if (placed === null) return this.grouped(mode, a, bs, sizes, k, n, transposeB, out, options, false);
      let i = 0;
      bPtrs = sizes.map((m) => (m > 0 ? placed[i++]! : 0));
    }
    // After the arena: a new arena block must not be taken while the scratch's pointers are in use.
    // A job left running has its own scratch (the one before it was joined above).
    const scratchBytes = rowsOff + (indexed !== null ? M * 4 : 0);
    const base = leaveRunning ? this.asyncScratch.at(scratchBytes) : this.scratch(scratchBytes);
    if (base < 0) return false;
    this.products += E;
    if (swapped) this.swappedProducts += used;
    this.inPlace += (aAt >= 0 ? 1 : 0) + (bInPlace ? 1 : 0) + (cInPlace ? 1 : 0);
    const rowsPtr = base + rowsOff;
    const aPtr = gatherA ? rowsPtr : aAt >= 0 ? aAt : base + aOff, apPtr = base + apOff;
    const bPtr = gatherB ? rowsPtr : mode === 'weights' && bInPlace ? bAts[0]! : base + bOff;
    if (indexed !== null) {
      const table = new Int32Array(this.heap.buffer(), rowsPtr, M), rowBytes = (gatherA ? k : n) * bytes, index = indexed.index;
      for (let i = 0; i < M; i++) table[i] = srcAt + index[i]! * rowBytes;
    }
    const cPtr = base + cOff, tablePtr = base + tableOff, biasPtr = base + biasOff, sumsPtr = base + sumsOff;
    if (bInPlace && mode === 'rows') bPtrs = bAts;

    const mem = this.view(dtype);
    if (aAt < 0) mem.set(a.subarray(0, M * k), aPtr / bytes);
    if (mode === 'weights') { if (!bInPlace) mem.set(bs[0]!.subarray(0, M * n), bPtr / bytes); }
    else if (bPtrs === null) bs.forEach((b, e) => mem.set(b.subarray(0, k * n), bPtr / bytes + e * k * n));
    const packAT = dtype === 'float32' ? this.kernels.packAT_f32 : this.kernels.packAT_f64;
    const ldc = nPad * bytes;
    // One product per non-empty segment: the gemm arguments but the panel and row ranges, and its rows.
    const products: GroupedProduct[] = [];
    const kind = dtype === 'float64' ? 1 : 0, kindT = dtype === 'float64' ? TABLE_T64 : TABLE_T32, kindW = dtype === 'float64' ? TABLE_W64 : TABLE_W32;
    let row0 = 0, packed = apPtr;
    for (let e = 0; e < E; e++) {
      const m = sizes[e]!;
      if (m === 0) continue;
      const weight = mode === 'rows' ? (bPtrs ? bPtrs[e]! : bPtr + e * k * n * bytes) : 0, cSeg = (cInPlace ? cAts[0]! : cPtr) + row0 * ldc;
      if (swapped) {
        // A' = W_e (n × k, row-major; without transposeB W_eᵀ, W_e being k × n), B' = A[seg]ᵀ
        // (its column j row j of the segment, or of src through the address table), C' =
        // out[seg]ᵀ (gemmT: stored transposed).
        products.push({
          args: [weight, transposeB ? k * bytes : bytes, transposeB ? bytes : n * bytes, gatherA ? aPtr + row0 * 4 : aPtr + row0 * k * bytes, bytes, gatherA ? 0 : k * bytes, cSeg, ldc, m, k],
          rows: n, panels: Math.ceil(m / NR), kind: kindT,
        });
      } else if (mode === 'rows') {
        products.push({
          args: [gatherA ? aPtr + row0 * 4 : aPtr + row0 * k * bytes, gatherA ? 0 : k * bytes, bytes, weight, transposeB ? bytes : n * bytes, transposeB ? k * bytes : bytes, cSeg, ldc, n, k],
          rows: m, panels, kind,
        });
      } else {
        // A[seg]ᵀ (k × m) is stored m × k: element (r, p) at row p, column r, read in place;
        // or packed, as matmul() does for transposeA.
        let aT = [aPtr + row0 * k * bytes, bytes, k * bytes];
        if (shortSum(m)) {
          // A sum of few rows: gemmW (B read in place, every panel a row tile at a time).
          products.push({ args: [aT[0]!, k * bytes, gatherB ? bPtr + row0 * 4 : bPtr + row0 * n * bytes, gatherB ? 0 : n * bytes, cInPlace ? cAts[e]! : cPtr + e * k * ldc, ldc, n, m, 0, 0], rows: k, panels: 1, kind: kindW });
          this.shortSumProducts++;
          row0 += m;
          continue;
        }
        if (packs(m)) {
          packAT(aT[0]!, k, m, packed);
          aT = [packed, bytes, mr * bytes];
          packed += Math.ceil(k / mr) * mr * m * bytes;
        }
        products.push({ args: [...aT, gatherB ? bPtr + row0 * 4 : bPtr + row0 * n * bytes, gatherB ? 0 : n * bytes, bytes, cInPlace ? cAts[e]! : cPtr + e * k * ldc, ldc, n, m], rows: k, panels, kind });
      }
      row0 += m;
    }
    // 'weights': empty segments' gradients are zeros. The column sums read only the operands
    // (and their own scratch): computed by this thread while the job's chunks run, when
    // threaded (the workers take the chunks meanwhile), so that a job left running has only
    // its copy out left when joined.
    if (Array.isArray(out)) (out as readonly TypedArray[]).forEach((o, e) => { if (sizes[e] === 0) o.fill(0); });
    const columnSums = () => {
      if (sums === null) return;
      const colSums = dtype === 'float32' ? this.kernels.colSums_f32 : this.kernels.colSums_f64;
      const [src, ld] = sums.of === 'a' ? [aPtr, k * bytes] : [bPtr, n * bytes];
      const acc = new Float64Array(this.heap.buffer(), sumsPtr, sumVecs * (16 / bytes));
      let row0 = 0;
      sums.outs.forEach((o, e) => {
        colSums(src + row0 * ld, ld, sizes[e]!, sumsPtr, sumVecs);
        o.set(acc.subarray(0, sumCols)); // rounded once to the output's dtype
        row0 += sizes[e]!;
      });
    };
    // After the products: 'rows' adds the biases (and applies the relu); both copy out (unless
    // written in place), dropping the column padding.
    const finish = () => {
      const view = this.view(dtype), c0 = cPtr / bytes;
      if (Array.isArray(out)) {
        if (!cInPlace) (out as readonly TypedArray[]).forEach((o, e) => { if (sizes[e] !== 0) copyOut(view, c0 + e * k * nPad, nPad, k, n, o, 0); });
        return;
      }
      const at = cInPlace ? cAts[0]! : cPtr;
      if (epilogue) {
        // Segment e's rows get bias e, four (two) lanes at a time: a JavaScript loop over the
        // product took 1.7 ms per million elements, ten times the copy out. Relu without
        // biases adds zeros first: x + 0 is x but for -0 → +0, which relu maps to +0 anyway.
        const addRows = dtype === 'float32' ? this.kernels.addRows_f32 : this.kernels.addRows_f64;
        let row0 = 0;
        sizes.forEach((m, e) => {
          const b = biasPtr + e * nPad * bytes;
          if (biases !== null) view.set(biases[e]!.subarray(0, n), b / bytes);
          else view.fill(0, b / bytes, b / bytes + nPad);
          addRows(at + row0 * ldc, ldc, m, b, (nPad * bytes) / 16, relu ? 1 : 0);
          row0 += m;
        });
      }
      if (!cInPlace) copyOut(view, c0, nPad, M, n, out as TypedArray, 0);
    };
    if (threaded) {
      writeChunkTable(new Int32Array(this.heap.buffer(), tablePtr, chunks * TABLE_WORDS), products, rowBlock, groupPanels, swapped && this.interleave ? this.threads : 1);
      const write = (ctrl: Int32Array) => { ctrl[CTRL.table] = tablePtr; ctrl[CTRL.scratch] = base; ctrl[CTRL.scratchStride] = scratchStride; };
      if (leaveRunning) {
        this.pool!.runAsync(chunks, write, () => { finish(); async!.done(); });
        columnSums();
        return true;
      }
      this.pool!.run(chunks, write, columnSums);
    } else {
      columnSums();
      // One thread: each product in one call, every panel packed once.
      const gemm = dtype === 'float32' ? this.kernels.gemm_f32 : this.kernels.gemm_f64;
      const gemmT = dtype === 'float32' ? this.kernels.gemmT_f32 : this.kernels.gemmT_f64;
      const touch = this.touchAhead && mode === 'rows' && products.length > 1;
      if (touch) this.setTouch(true);
      try {
        const gemmW = dtype === 'float32' ? this.kernels.gemmW_f32 : this.kernels.gemmW_f64;
        for (const { args, rows, panels: p1, kind: kd } of products) {
          const [aP, aRs, aKs, bP, sBp, sBj, cP, ld, nn, kk] = args as [number, number, number, number, number, number, number, number, number, number];
          // gemmW's first eight words are its own: aPtr aKs bPtr sBp cPtr ldc n k.
          if (kd === kindW) gemmW(aP, aRs, aKs, bP, sBp, sBj, cP, ld, 0, rows);
          else (kd === kindT ? gemmT : gemm)(aP, aRs, aKs, bP, sBp, sBj, cP, ld, nn, kk, 0, p1, 0, rows, base);
        }
      } finally {
        if (touch) this.setTouch(false);
      }
    }
    finish();
    return true;
  }

  /**
   * The noisy top-k gate's logits and top indices (NoisyTopKGating.route, eq. 3–4), float32,
   * as one job of row blocks spread over the threads. Each block runs, in order on the thread
   * that claims it: x·W_gate → clean and x·W_noise → raw (the gemm with matmul's arguments, so
   * matmul's bits), softplus(raw) → sp, sp + ε → std, the normal draws → noise (Philox blocks
   * by counter: the random kernel's bits), noise · std → scaled, clean + scaled → noisy, and
   * each noisy row's m largest → top, with the SIMD topk's flags. Blocks share nothing, so the
   * results do not depend on the thread count. x is [N, d], the weights [d, E]. Before, these
   * were eight kernels on the calling thread with the worker mostly asleep between them (one
   * product was left running on it): about 0.57 ms of an E = 16 step (N = 1024, d = 256)
   * against 0.43–0.53 as this job, which takes 0.73 ms on one thread (BENCHMARKS.md).
   * Operands and results outside this memory (tensors below 16 KiB) are copied in and out.
   * Returns topk's flags, one per row (1 where JavaScript must redo the row: a NaN, or fewer
   * than m values above −∞; a view of the scratch, valid until the next product), or null
   * (nothing written) where this path does not take it: float64, E not a whole
   * number of panels, a product below MIN_MACS, m above 16, or no pool (whose `work` runs
   * the table; one thread runs it alone).
   */
  noisyTopK(
    x: TypedArray, wGate: TypedArray, wNoise: TypedArray, N: number, d: number, E: number, m: number,
    epsilon: number, key: readonly [number, number], counter: number, outs: readonly TypedArray[],
  ): Int32Array | null {
    const pool = this.pool;
    if (pool === null || this.mathKernels === null || !(x instanceof Float32Array) || !(wGate instanceof Float32Array) || !(wNoise instanceof Float32Array)) return null;
    if (E % NR !== 0 || N * d * E < MIN_MACS || m < 1 || m > 16 || m > E || counter % 2 !== 0) return null;
    // About four blocks a thread, whole tiles of rows (the gemm's and topk's four).
    const threads = this.threads, blocks = Math.min(Math.ceil(N / 4), 4 * threads);
    const R = Math.ceil(N / blocks / 4) * 4, count = Math.ceil(N / R);
    const STEPS = 8, entryBytes = TABLE_WORDS * 4;
    const scratchStride = align16(d * NR * 4);
    const epsOff = align16(scratchStride * threads);
    const flagsOff = epsOff + 16;
    const slotsOff = align16(flagsOff + N * 4);
    const seqOff = slotsOff + count * 32 * m;
    const subOff = seqOff + count * entryBytes;
    const stageOff = align16(subOff + count * STEPS * entryBytes);
    // Operands and results outside this memory (tensors below 16 KiB) are staged after the
    // table, copied in before the job and out after it. Addresses stay in locals and an
    // Int32Array (not arrays of numbers, whose element kinds change under V8 and deopt this).
    const heap = this.heap, outCount = outs.length;
    const xIn = heap.addressOf(x), gIn = heap.addressOf(wGate), nIn = heap.addressOf(wNoise);
    const outIn = new Int32Array(outCount);
    let stagedBytes = (xIn < 0 ? align16(N * d * 4) : 0) + (gIn < 0 ? align16(d * E * 4) : 0) + (nIn < 0 ? align16(d * E * 4) : 0);
    for (let i = 0; i < outCount; i++) {
      outIn[i] = heap.addressOf(outs[i]!);
      if (outIn[i]! < 0) stagedBytes += align16(outs[i]!.length * 4);
    }
    const base = this.scratch(stageOff + stagedBytes);
    if (base < 0) return null;
    let next = base + stageOff;
    const xAt = xIn >= 0 ? xIn : next;
    if (xIn < 0) next += align16(N * d * 4);
    const gAt = gIn >= 0 ? gIn : next;
    if (gIn < 0) next += align16(d * E * 4);
    const nAt = nIn >= 0 ? nIn : next;
    if (nIn < 0) next += align16(d * E * 4);
    const at = new Int32Array(outCount);
    for (let i = 0; i < outCount; i++) {
      if (outIn[i]! >= 0) at[i] = outIn[i]!;
      else { at[i] = next; next += align16(outs[i]!.length * 4); }
    }
    const cleanAt = at[0]!, rawAt = at[1]!, spAt = at[2]!, stdAt = at[3]!, noiseAt = at[4]!, scaledAt = at[5]!, noisyAt = at[6]!, topAt = at[7]!;
    this.lastA.a = null;
    this.products += 2;
    const f32 = heap.f32();
    if (xIn < 0) f32.set(x.subarray(0, N * d), xAt / 4);
    if (gIn < 0) f32.set(wGate.subarray(0, d * E), gAt / 4);
    if (nIn < 0) f32.set(wNoise.subarray(0, d * E), nAt / 4);
    f32[(base + epsOff) / 4] = epsilon;
    const words = new Int32Array(heap.buffer(), base + seqOff, (count + count * STEPS) * TABLE_WORDS);
    words.fill(0);
    const b0 = counter / 2;
    for (let b = 0; b < count; b++) {
      const r0 = b * R, rows = Math.min(R, N - r0), off = r0 * E * 4, vecs = (rows * E) / 4;
      const seq = b * TABLE_WORDS, sub = (count + b * STEPS) * TABLE_WORDS;
      words[seq] = base + seqOff + sub * 4; words[seq + 1] = STEPS; words[seq + 14] = TABLE_SEQ;
      const blocksAt = b0 + (r0 * E) / 2;
      // Written word by word (no array per entry): this runs once per gate forward.
      gemmEntry(words, sub, xAt + r0 * d * 4, d, gAt, cleanAt + off, E, rows);
      gemmEntry(words, sub + TABLE_WORDS, xAt + r0 * d * 4, d, nAt, rawAt + off, E, rows);
      pieceEntry(words, sub + 2 * TABLE_WORDS, PIECE.softplus, rawAt + off, spAt + off, vecs, 0, 0, 0, 0, 0);
      pieceEntry(words, sub + 3 * TABLE_WORDS, PIECE.addVs, spAt + off, base + epsOff, stdAt + off, 1, 0, 0, vecs, 0);
      pieceEntry(words, sub + 4 * TABLE_WORDS, PIECE.normal, blocksAt % 4294967296, Math.floor(blocksAt / 4294967296), (rows * E) / 2, key[0] | 0, key[1] | 0, noiseAt + off, 0, 0);
      pieceEntry(words, sub + 5 * TABLE_WORDS, PIECE.mulVv, noiseAt + off, stdAt + off, scaledAt + off, 1, 0, 0, vecs, 0);
      pieceEntry(words, sub + 6 * TABLE_WORDS, PIECE.addVv, cleanAt + off, scaledAt + off, noisyAt + off, 1, 0, 0, vecs, 0);
      pieceEntry(words, sub + 7 * TABLE_WORDS, PIECE.topk, noisyAt + off, rows, E, m, topAt + r0 * m * 4, base + flagsOff + r0 * 4, base + slotsOff + b * 32 * m, 0);
    }
    pool.run(count, (ctrl) => { ctrl[CTRL.table] = base + seqOff; ctrl[CTRL.scratch] = base; ctrl[CTRL.scratchStride] = scratchStride; });
    this.noisyGateJobs++;
    for (let i = 0; i < outCount; i++) {
      if (outIn[i]! >= 0) continue;
      const o = outs[i]!;
      o.set(o instanceof Int32Array ? new Int32Array(heap.buffer(), at[i]!, o.length) : new Float32Array(heap.buffer(), at[i]!, o.length));
    }
    return new Int32Array(heap.buffer(), base + flagsOff, N);
  }

  /**
   * Runs `count` pieces of math-module kernels on the pool's threads: their table (TABLE_WORDS
   * words each, word 14 TABLE_MATH, words 0 … 8 the piece's chunk entry) is at tablePtr.
   * Returns when every piece is done.
   */
  runPieces(tablePtr: number, count: number): void {
    this.pool!.run(count, (ctrl) => { ctrl[CTRL.table] = tablePtr; });
  }

  /**
   * Splits the product into chunks: groups of up to 4 panels (32 columns, as measured best at
   * 512²), about 4 per thread; when that gives too few chunks, row blocks too.
   */
  private runThreaded(
    dtype: SimdDType,
    p: { aSrc: number; aRs: number; aKs: number; bPtr: number; sBp: number; sBj: number; cPtr: number; ldc: number; n: number; k: number; m: number; panels: number; scratch: number; scratchStride: number },
    threads: number,
    /** When given, the job is left running (ThreadPool.runAsync) and this runs once it is joined. */
    done?: () => void,
  ): void {
    const mr = GEMM[dtype].mr;
    const groupPanels = Math.min(4, Math.max(1, Math.ceil(p.panels / (4 * threads))));
    const groups = Math.ceil(p.panels / groupPanels);
    const wantBlocks = groups >= 2 * threads ? 1 : Math.ceil((2 * threads) / groups);
    const blockRows = Math.ceil(Math.ceil(p.m / wantBlocks) / mr) * mr;
    const blocks = Math.ceil(p.m / blockRows);
    const write = (ctrl: Int32Array) => {
      ctrl[CTRL.dtype] = dtype === 'float64' ? 1 : 0;
      ctrl[CTRL.table] = 0;
      ctrl[CTRL.aPtr] = p.aSrc; ctrl[CTRL.aRs] = p.aRs; ctrl[CTRL.aKs] = p.aKs;
      ctrl[CTRL.bPtr] = p.bPtr; ctrl[CTRL.sBp] = p.sBp; ctrl[CTRL.sBj] = p.sBj;
      ctrl[CTRL.cPtr] = p.cPtr; ctrl[CTRL.ldc] = p.ldc; ctrl[CTRL.n] = p.n; ctrl[CTRL.k] = p.k; ctrl[CTRL.m] = p.m;
      ctrl[CTRL.groups] = groups; ctrl[CTRL.groupPanels] = groupPanels; ctrl[CTRL.blockRows] = blockRows;
      ctrl[CTRL.panels] = p.panels; ctrl[CTRL.scratch] = p.scratch; ctrl[CTRL.scratchStride] = p.scratchStride;
    };
    if (done) this.pool!.runAsync(groups * blocks, write, done);
    else this.pool!.run(groups * blocks, write);
  }
}
