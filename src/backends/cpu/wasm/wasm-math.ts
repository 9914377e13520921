// The CPU backend's float32 σ, tanh, LSTM cell and Adam update on WebAssembly SIMD128 (math-module.ts),
// on the calling thread. Where the SIMD matmul's memory is shared, this module runs on that
// same memory, and operands that are tensors there (wasm-heap.ts) are read, and results
// written, in place; other operands are copied into a staging block and results out, as they
// were into the module's own memory where the memory is not shared (a few ns per element
// against ~25–30 ns per Math.exp or Math.tanh).
// Results are the scalar kernels' bits (core/special.ts sigmoidF32, tanhF32), so where this
// path is off (setBackend('cpu', { simd: false }), or no SIMD here) nothing changes.

import { adamConstants, type AdamAttrs } from '../fused.js';
import type { NormalPairs, PhiloxBlocks } from '../../../core/philox.js';
import type { TypedArray } from '../../../core/dtype.js';
import { CHUNKED, mathModuleBytes, type ArithmeticMode, type ArithmeticOp, type ChunkedKernel, type MathExports } from './math-module.js';
import { TABLE_MATH, TABLE_WORDS } from './gemm-module.js';
import { ScratchBlock, type WasmHeap } from './wasm-heap.js';
import { wasmApi, type WasmApi, type WasmMemory } from './wasm-api.js';

const PAGE = 65536;
/** Below this many elements the copies and the call cost more than the scalar loop saves. */
export const MIN_ELEMENTS = 16;
/**
 * Below this many elements float32 arithmetic stays in JavaScript: the call and three copies
 * cost about what the loop does. Above, copies included, the module wins: in the MoE step the
 * gate's [1024, 16] multiplies went 35 → 15 µs each (op overhead included) and relu's
 * gradient over [2048, 512] 2.5 → 1.15 ms.
 */
export const MIN_ARITHMETIC = 1024;

/**
 * Below this many elements top-k stays in JavaScript. The JavaScript loop's branches follow
 * the data, and on fresh random logits it mispredicts about once per element: [1024, 16],
 * k = 3, took 180–220 µs inside the MoE step against 52 µs looping over one array.
 */
export const MIN_TOPK = 256;

/**
 * Where a kernel call may be split over the SIMD matmul's threads (its pool runs pieces of
 * math-module kernels: WasmMatmul.runPieces), and what a piece costs to run there.
 */
export interface PieceRunner {
  /** Threads a job runs on now (1: no split). */
  readonly threads: number;
  /** Whether a job left running on the pool is still to be joined: then pieces would wait for it, so a call runs whole on the calling thread instead, beside it. */
  readonly busy: boolean;
  /** The math module's kernels instantiated beside the pool's, over the same memory. */
  readonly mathKernels: MathExports | null;
  runPieces(tablePtr: number, count: number): void;
}

/**
 * Below this estimated time (ns) a kernel call runs on the calling thread alone. Between jobs
 * the workers sleep, and one takes 30–200 µs to wake on this 2-core VM; meanwhile the calling
 * thread takes every piece. Measured (σ over [n, 16] float32 on 2 threads, a 300 µs gap
 * before each call, 150 alternations, medians): 1024 rows (~50 µs of work) 89–109 µs split
 * against 58–76 alone; 4096 rows (~200 µs) 177–205 against 198–249; 16384 rows 505–535
 * against 750–934. With the worker still awake (a 5 µs gap) 1024 rows broke even.
 */
export const SPLIT_NS = 150_000;
/** About what one group of four normal draws' blocks (eight draws) costs on one thread, ns. */
const NORMAL_GROUP_NS = 100;

/**
 * How a kernel call splits: `units` independent rows or vectors, about `unitNs` ns each on
 * one thread; `args(at, u0, u1)`, the kernel's arguments for units u0 … u1 − 1 given the
 * parts' addresses. Every element is computed by one piece, as the whole call computes it.
 */
interface Split { id: ChunkedKernel; units: number; unitNs: number; args: (at: readonly number[], u0: number, u1: number) => number[] }

/** The Split of a kernel over vectors whose arguments are addresses then the vector count (16 bytes a vector each). */
function vectorSplit(id: ChunkedKernel, vectors: number, unitNs: number): Split {
  return { id, units: vectors, unitNs, args: (at, v0, v1) => [...at.map((a) => a + 16 * v0), v1 - v0] };
}

/**
 * One operand of a kernel call: `count` elements of `values`, spanning `bytes` bytes in the
 * kernel's view (whole v128s: the kernels read and write the padding lanes). `write`: a result.
 */
interface Part { values: TypedArray; count: number; bytes: number; write?: boolean }

/** The bytes of n float32s as whole v128s. */
const f32Bytes = (n: number) => Math.ceil(n / 4) * 16;

export class WasmMath {
  private f32: Float32Array;
  /** Kernel calls that ran here (the others went to the scalar kernels). */
  calls = 0;
  /** Operands read and results written in place (tensors of the shared memory), not copied. */
  inPlace = 0;
  /** The staging block in the shared memory (null with a private memory, staged from 0). */
  private readonly staging: ScratchBlock | null;

  /** Kernel calls split over threads. */
  splitCalls = 0;
  /** The estimated work (ns) from which a call is split (SPLIT_NS). */
  splitNs = SPLIT_NS;

  private constructor(
    private readonly memory: WasmMemory, private readonly kernels: MathExports, private readonly heap: WasmHeap | null,
    private readonly pieces: PieceRunner | null,
  ) {
    this.f32 = new Float32Array(memory.buffer);
    this.staging = heap === null ? null : new ScratchBlock(heap);
  }

  /**
   * The module, or why it cannot run here (the caller keeps the scalar kernels). With a shared
   * `heap` (the SIMD matmul's), it runs on that memory and uses tensors there in place.
   */
  static create(wasm: WasmApi | null = wasmApi ?? null, heap: WasmHeap | null = null, pieces: PieceRunner | null = null): WasmMath | string {
    if (wasm === null) return 'no WebAssembly in this JavaScript engine';
    const onHeap = heap !== null && heap.shared ? heap : null;
    // Pieces run on the pool's instances, over the heap's memory: only with that heap.
    const runner = onHeap !== null && pieces?.mathKernels ? pieces : null;
    try {
      const memory = onHeap?.memory ?? new wasm.Memory({ initial: 1, maximum: 32768 });
      if (runner !== null) return new WasmMath(memory, runner.mathKernels!, onHeap, runner);
      const module = new wasm.Module(mathModuleBytes(onHeap !== null));
      return new WasmMath(memory, new wasm.Instance(module, { env: { memory } }).exports as unknown as MathExports, onHeap, null);
    } catch (e) {
      return `WebAssembly SIMD128 is not available here (${(e as Error).message})`;
    }
  }

  /** Whether this module runs on the shared memory where tensors live. */
  get shared(): boolean { return this.heap !== null; }

  /** The byte address of `bytes` bytes of staging space (the memory grown as needed). */
  private stage(bytes: number): number {
    if (this.staging !== null) {
      const ptr = this.staging.at(bytes);
      if (ptr < 0) throw new Error(`wasm math: the WebAssembly memory cannot hold ${bytes} bytes of staging`);
      return ptr;
    }
    const have = this.memory.buffer.byteLength;
    if (bytes > have) this.memory.grow(Math.ceil((bytes - have) / PAGE));
    return 0;
  }

  /** A float32 view of the whole memory as it is now. */
  private view(): Float32Array {
    if (this.f32.buffer !== this.memory.buffer) this.f32 = new Float32Array(this.memory.buffer);
    return this.f32;
  }

  /**
   * Runs `kernel` on the byte addresses of `parts`: a part that is a tensor of the shared
   * memory in place (a result only when its padded span stays inside its own block and
   * overlaps no other part), any other staged: copied in, and for results copied out after.
   */
  private call(parts: readonly Part[], kernel: (at: number[]) => void, split?: Split): void {
    const heap = this.heap;
    const at = parts.map((p) => (heap !== null ? heap.addressOf(p.values) : -1));
    parts.forEach((p, i) => {
      if (at[i]! < 0 || !p.write) return;
      const fits = p.bytes <= p.values.byteLength || heap!.isBlock(p.values);
      const clash = parts.some((q, j) => j !== i && at[j]! >= 0 && at[i]! < at[j]! + q.bytes && at[j]! < at[i]! + p.bytes);
      if (!fits || clash) at[i] = -1;
    });
    const staged = at.map((a) => a < 0);
    let total = 0;
    const offsets = parts.map((p, i) => { const o = total; if (staged[i]) total += p.bytes; return o; });
    // Split over threads when it pays: the pieces' table after the staged operands.
    const count = split === undefined ? 0 : this.pieceCount(split);
    const tableAt = total;
    total += count * TABLE_WORDS * 4;
    const base = total > 0 ? this.stage(total) : 0;
    const buffer = this.memory.buffer;
    parts.forEach((p, i) => {
      if (!staged[i]) { this.inPlace++; return; }
      at[i] = base + offsets[i]!;
      if (!p.write) viewOf(p.values, buffer, at[i]!, p.count).set(p.values.subarray(0, p.count));
    });
    if (count > 0) this.runSplit(split!, at, count, base + tableAt);
    else kernel(at);
    this.calls++;
    parts.forEach((p, i) => {
      if (p.write && staged[i]) p.values.set(viewOf(p.values, this.memory.buffer, at[i]!, p.count));
    });
  }

  /** How many pieces a call of `split` runs as: 0 (whole, on this thread) when it would not pay. */
  private pieceCount(split: Split): number {
    const threads = this.pieces?.busy ? 1 : this.pieces?.threads ?? 1;
    return threads > 1 && split.units * split.unitNs >= this.splitNs ? Math.min(split.units, 4 * threads) : 0;
  }

  /** Writes `count` pieces of `split` (operands at `at`) into the table at tablePtr and runs them on the pool's threads. */
  private runSplit(split: Split, at: readonly number[], count: number, tablePtr: number): void {
    const table = new Int32Array(this.memory.buffer, tablePtr, count * TABLE_WORDS), id = CHUNKED.indexOf(split.id);
    for (let c = 0; c < count; c++) {
      const o = c * TABLE_WORDS;
      table[o] = id;
      table.set(split.args(at, Math.floor((c * split.units) / count), Math.floor(((c + 1) * split.units) / count)), o + 1);
      table[o + 14] = TABLE_MATH;
    }
    this.pieces!.runPieces(tablePtr, count);
    this.splitCalls++;
  }

  /**
   * Philox blocks (core/philox.ts PhiloxBlocks) from the module: the same words as the
   * JavaScript rounds, whose 32 × 32 → 64-bit products take four double multiplies each.
   */
  readonly philoxBlocks: PhiloxBlocks = (b0, count, key0, key1, words) => {
    const at = this.stage(16 * count); // 4 words per block
    this.kernels.philox(b0 % 4294967296, Math.floor(b0 / 4294967296), count, key0, key1, at);
    words.set(new Uint32Array(this.memory.buffer, at, 4 * count));
    this.calls++;
  };

  /**
   * Box–Muller pairs (core/philox.ts NormalPairs) from the module: the Philox rounds four
   * blocks at a time in i32 lanes, then the pairs in float64 lanes; the bits of core/philox.ts
   * (its blocks, uniform53 and boxMuller). The view returned is the staging area, valid until
   * the next call.
   */
  readonly normalPairs: NormalPairs = (b0, count, key0, key1, single) => {
    const blocks = Math.ceil(count / 4) * 4, bytes = single ? 4 : 8;
    // Over threads when it pays: pieces of whole groups of four blocks, each from its own counter.
    const split: Split = {
      id: single ? 'normal_f32' : 'normal_f64', units: blocks / 4, unitNs: NORMAL_GROUP_NS,
      args: ([dst], g0, g1) => { const b = b0 + 4 * g0; return [b % 4294967296, Math.floor(b / 4294967296), 4 * (g1 - g0), key0, key1, dst! + 8 * g0 * bytes]; },
    };
    const pieces = this.pieceCount(split);
    const at = this.stage(2 * blocks * bytes + pieces * TABLE_WORDS * 4);
    if (pieces > 0) this.runSplit(split, [at], pieces, at + 2 * blocks * bytes);
    else (single ? this.kernels.normal_f32 : this.kernels.normal_f64)(b0 % 4294967296, Math.floor(b0 / 4294967296), blocks, key0, key1, at);
    this.calls++;
    return single ? new Float32Array(this.memory.buffer, at, 2 * count) : new Float64Array(this.memory.buffer, at, 2 * count);
  };

  /** out = op(x) elementwise, float32. False (nothing written) when too small to pay. */
  unary(op: 'sigmoid' | 'tanh' | 'softplus', x: Float32Array, out: Float32Array): boolean {
    const n = out.length;
    if (n < MIN_ELEMENTS) return false;
    const b = f32Bytes(n);
    this.call([{ values: x, count: n, bytes: b }, { values: out, count: n, bytes: b, write: true }], ([src, dst]) =>
      this.kernels[`${op}_f32`](src!, dst!, b / 16), vectorSplit(`${op}_f32`, b / 16, op === 'softplus' ? 20 : 12));
    return true;
  }

  /**
   * Adam's float32 update of one parameter (fused.ts adamStep's float32 path, bit for bit) into
   * outP, outM, outV. False when too small to pay.
   */
  adam(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, a: AdamAttrs, outP: Float32Array, outM: Float32Array, outV: Float32Array): boolean {
    const n = p.length;
    if (n < MIN_ELEMENTS) return false;
    const vectors = Math.ceil(n / 4), pad = vectors * 4;
    // The kernel takes its seven planes at one address, `pad` floats apart: staged together.
    const base = this.stage(7 * pad * 4), mem = this.view(), at = base / 4;
    [p, g, m, v].forEach((x, k) => mem.set(x.subarray(0, n), at + k * pad));
    const k = adamConstants(a);
    this.kernels.adam_f32(base, vectors, k.b1, k.b2, k.c1, k.c2, k.sq, k.eps, k.stepSize, k.wd, k.shrink, k.coupled ? 1 : 0, k.decoupled ? 1 : 0);
    this.calls++;
    const out = this.view();
    outP.set(out.subarray(at + 4 * pad, at + 4 * pad + n));
    outM.set(out.subarray(at + 5 * pad, at + 5 * pad + n));
    outV.set(out.subarray(at + 6 * pad, at + 6 * pad + n));
    return true;
  }

  /**
   * The LSTM cell forward, float32: z [B, 4H], c [B, H] → acts [7, B, H] (fused.ts
   * lstmCellForward's layout). False when too small to pay.
   */
  lstmCell(z: Float32Array, c: Float32Array, B: number, H: number, acts: Float32Array): boolean {
    const n = B * H;
    if (n < MIN_ELEMENTS) return false;
    const vectors = Math.ceil(n / 4), pad = vectors * 4;
    const base = this.stage(12 * pad * 4), mem = this.view(), at = base / 4;
    // The gates as four planes of n: plane g holds z[b, gH … gH + H) for every b.
    for (let g = 0; g < 4; g++) {
      for (let b = 0, src = g * H, dst = at + g * pad; b < B; b++, src += 4 * H, dst += H) mem.set(z.subarray(src, src + H), dst);
    }
    mem.set(c.subarray(0, n), at + 4 * pad);
    this.kernels.lstm_f32(base, base + 16 * pad, base + 20 * pad, vectors);
    this.calls++;
    const out = this.view();
    if (pad === n) acts.set(out.subarray(at + 5 * pad, at + 12 * pad));
    else for (let p = 0; p < 7; p++) acts.set(out.subarray(at + (5 + p) * pad, at + (5 + p) * pad + n), p * n);
    return true;
  }

  /**
   * The MoE combine, float32 (indexing.ts weightedIndexAdd, bit for bit): out [numRows, d] =
   * zeros, then out[index[i]] += w[i] · y[i] in row order. The caller checks the indices.
   * False when d is not a multiple of 4 or the job too small to pay for the copies.
   */
  combine(y: Float32Array, w: Float32Array, index: Int32Array, d: number, numRows: number, out: Float32Array): boolean {
    const m = index.length;
    if (d % 4 !== 0 || m * d < MIN_ELEMENTS) return false;
    this.call([
      { values: y, count: m * d, bytes: m * d * 4 }, { values: w, count: m, bytes: f32Bytes(m) }, { values: index, count: m, bytes: f32Bytes(m) },
      { values: out, count: numRows * d, bytes: numRows * d * 4, write: true },
    ], ([yAt, wAt, idxAt, outAt]) => this.kernels.combine_f32(yAt!, wAt!, idxAt!, outAt!, m, d / 4, numRows));
    return true;
  }

  /** Its backward (weightedIndexAddBackward, float32, bit for bit) into dy [m, d] and dw [m]; false as combine. */
  combineBackward(dOut: Float32Array, y: Float32Array, w: Float32Array, index: Int32Array, d: number, numRows: number, dy: Float32Array, dw: Float32Array): boolean {
    const m = index.length;
    if (d % 4 !== 0 || m * d < MIN_ELEMENTS) return false;
    this.call([
      { values: dOut, count: numRows * d, bytes: numRows * d * 4 }, { values: y, count: m * d, bytes: m * d * 4 },
      { values: w, count: m, bytes: f32Bytes(m) }, { values: index, count: m, bytes: f32Bytes(m) },
      { values: dy, count: m * d, bytes: m * d * 4, write: true }, { values: dw, count: m, bytes: f32Bytes(m), write: true },
    ], ([dOutAt, yAt, wAt, idxAt, dyAt, dwAt]) => this.kernels.combineBackward_f32(dOutAt!, yAt!, wAt!, idxAt!, dyAt!, dwAt!, m, d / 4), {
      // By rows i: each piece writes its rows of dy and dw, reading dOut where idx points.
      id: 'combineBackward_f32', units: m, unitNs: 1.25 * d,
      args: ([dOutAt, yAt, wAt, idxAt, dyAt, dwAt], i0, i1) => [dOutAt!, yAt! + i0 * d * 4, wAt! + i0 * 4, idxAt! + i0 * 4, dyAt! + i0 * d * 4, dwAt! + i0 * 4, i1 - i0, d / 4],
    });
    return true;
  }

  /**
   * float32 arithmetic on the module (see math-module.ts ArithmeticExports): out (rows × cols)
   * = A ⊕ B row by row, A read from a at row r as a[r·aStep …] (a vector of cols) or a[r·aStep]
   * (splat, mode 'sv'), B likewise. cols a multiple of 4 unless rows is 1. False (nothing
   * written) when too small to pay for the copies.
   */
  arithmetic(op: ArithmeticOp, mode: ArithmeticMode, a: Float32Array, aStep: number, b: Float32Array, bStep: number, rows: number, cols: number, out: Float32Array): boolean {
    const n = rows * cols;
    if (n < MIN_ARITHMETIC || (rows > 1 && cols % 4 !== 0)) return false;
    const vecs = Math.ceil(cols / 4);
    this.call([
      { values: a, count: a.length, bytes: f32Bytes(a.length) }, { values: b, count: b.length, bytes: f32Bytes(b.length) },
      { values: out, count: n, bytes: rows * vecs * 16, write: true },
    ], ([aAt, bAt, outAt]) => this.kernels[`${op}_${mode}_f32`](aAt!, bAt!, outAt!, rows, aStep * 4, bStep * 4, vecs), rows > 1 ? {
      // By rows; one row (a whole array, or a vector and a splat) by vectors.
      id: `${op}_${mode}_f32`, units: rows, unitNs: 1.5 * vecs,
      args: ([aAt, bAt, outAt], r0, r1) => [aAt! + r0 * aStep * 4, bAt! + r0 * bStep * 4, outAt! + r0 * vecs * 16, r1 - r0, aStep * 4, bStep * 4, vecs],
    } : {
      id: `${op}_${mode}_f32`, units: vecs, unitNs: 1.5,
      args: ([aAt, bAt, outAt], v0, v1) => [aAt! + (mode === 'sv' ? 0 : 16 * v0), bAt! + (mode === 'vs' ? 0 : 16 * v0), outAt! + 16 * v0, 1, aStep * 4, bStep * 4, v1 - v0],
    });
    return true;
  }

  /**
   * e^x (float32 or float64; e^x in float64 lanes, Math.exp's bits, one rounding to float32) or
   * Φ (float32 only: core/special.ts normalCdfFloat32) elementwise. False when too small to pay.
   */
  f64Unary(op: 'exp' | 'log' | 'normalCdf', x: Float32Array | Float64Array, out: Float32Array | Float64Array): boolean {
    const n = out.length, f64 = out instanceof Float64Array;
    // ln: float64 only, the normal draws' radius lanes (the backend's log stays on Math.log,
    // as fast here: 8.5 against 9.8 ns an element in lanes).
    if (n < MIN_ELEMENTS || x.constructor !== out.constructor || (f64 ? op === 'normalCdf' : op === 'log')) return false;
    const lanes = f64 ? 2 : 4, vecs = Math.ceil(n / lanes);
    const k = this.kernels;
    const kernel = op === 'exp' ? (f64 ? k.exp_f64 : k.exp_f32) : op === 'log' ? k.log_f64 : k.normalCdf_f32;
    const name = op === 'exp' ? (f64 ? 'exp_f64' : 'exp_f32') : op === 'normalCdf' ? 'normalCdf_f32' : null;
    this.call([{ values: x, count: n, bytes: vecs * 16 }, { values: out, count: n, bytes: vecs * 16, write: true }], ([src, dst]) => kernel(src!, dst!, vecs),
      name === null ? undefined : vectorSplit(name, vecs, op === 'normalCdf' ? 52 : f64 ? 13 : 26));
    return true;
  }

  /**
   * The load estimator's P = Φ((clean − thr) / sd), float32, each element's threshold given
   * (gating.ts probInTopK, bit for bit: Φ and e^x in float64 as core/special.ts computes them).
   * False when too small to pay.
   */
  probInTopK(clean: Float32Array, thr: Float32Array, sd: Float32Array, out: Float32Array): boolean {
    const n = out.length;
    if (n < MIN_ELEMENTS) return false;
    const b = f32Bytes(n);
    this.call([{ values: clean, count: n, bytes: b }, { values: thr, count: n, bytes: b }, { values: sd, count: n, bytes: b }, { values: out, count: n, bytes: b, write: true }],
      ([cAt, tAt, sAt, oAt]) => this.kernels.probInTopK_f32(cAt!, tAt!, sAt!, oAt!, b / 16), vectorSplit('probInTopK_f32', b / 16, 60));
    return true;
  }

  /**
   * logsumexp's row shifts and float64 sums of e^(x − shift) over rows of n float32 (n a
   * multiple of 4; reduce.ts logsumexpRows finishes each row), one pass per row in the module,
   * split over threads by rows. False (nothing written) otherwise.
   */
  logsumexpRows(x: Float32Array, n: number, sums: Float64Array, shifts: Float32Array): boolean {
    const rows = sums.length;
    if (n % 4 !== 0 || rows * n < MIN_ELEMENTS || shifts.length !== rows) return false;
    const vecs = n / 4;
    this.call([
      { values: x, count: rows * n, bytes: rows * n * 4 }, { values: sums, count: rows, bytes: Math.ceil(rows / 2) * 16, write: true },
      { values: shifts, count: rows, bytes: f32Bytes(rows), write: true },
    ], ([xAt, sAt, hAt]) => this.kernels.logsumexpRows_f32(xAt!, rows, vecs, sAt!, hAt!), {
      id: 'logsumexpRows_f32', units: rows, unitNs: 6 * n,
      args: ([xAt, sAt, hAt], r0, r1) => [xAt! + r0 * n * 4, r1 - r0, vecs, sAt! + 8 * r0, hAt! + 4 * r0],
    });
    return true;
  }

  /** topk's per-lane slots (2k v128s), grown as needed. */
  private topkSlots = new Float32Array(32);

  /**
   * The k largest of each row of x (rows × n float32), largest first, ties to the lower index,
   * into out (rows × k): indexing.ts topkIndices' indices, except that a row holding a NaN or
   * fewer than k values above −∞ gets flags[r] = 1 (else 0) for the caller to redo. False
   * (nothing written) when too small to pay or k is outside 1 … 16.
   */
  topk(x: Float32Array, rows: number, n: number, k: number, out: Int32Array, flags: Int32Array): boolean {
    if (rows * n < MIN_TOPK || k < 1 || k > 16 || n < k) return false;
    if (this.topkSlots.length < 8 * k) this.topkSlots = new Float32Array(8 * k);
    const slots = this.topkSlots;
    this.call([
      { values: x, count: rows * n, bytes: f32Bytes(rows * n) }, { values: out, count: rows * k, bytes: f32Bytes(rows * k), write: true },
      { values: flags, count: rows, bytes: f32Bytes(rows), write: true }, { values: slots, count: 8 * k, bytes: 32 * k, write: true },
    ], ([xAt, oAt, fAt, sAt]) => this.kernels.topk_f32(xAt!, rows, n, k, oAt!, fAt!, sAt!));
    return true;
  }

  /** Its gradients' elementwise part into dClean and dSd (gating.ts probInTopKBackward, float32). False when too small to pay. */
  probInTopKBackward(dP: Float32Array, clean: Float32Array, thr: Float32Array, sd: Float32Array, dClean: Float32Array, dSd: Float32Array): boolean {
    const n = dP.length;
    if (n < MIN_ELEMENTS) return false;
    const b = f32Bytes(n);
    this.call([
      { values: dP, count: n, bytes: b }, { values: clean, count: n, bytes: b }, { values: thr, count: n, bytes: b }, { values: sd, count: n, bytes: b },
      { values: dClean, count: n, bytes: b, write: true }, { values: dSd, count: n, bytes: b, write: true },
    ], ([pAt, cAt, tAt, sAt, dcAt, dsAt]) => this.kernels.probInTopKBackward_f32(pAt!, cAt!, tAt!, sAt!, dcAt!, dsAt!, b / 16), vectorSplit('probInTopKBackward_f32', b / 16, 60));
    return true;
  }

  /**
   * probInTopK's per-element thresholds into thr over rows of E float32 (E a multiple of 4),
   * each row's (tIn, tOut) pair in tRows (gating.ts thresholds' bits). False (nothing written)
   * otherwise.
   */
  thresholds(noisy: Float32Array, tRows: Float32Array, thr: Float32Array, E: number): boolean {
    const n = thr.length, rows = tRows.length / 2;
    if (E % 4 !== 0 || n < MIN_ELEMENTS || rows * E !== n) return false;
    const vecs = E / 4;
    this.call([{ values: noisy, count: n, bytes: n * 4 }, { values: tRows, count: 2 * rows, bytes: f32Bytes(2 * rows) }, { values: thr, count: n, bytes: n * 4, write: true }],
      ([nAt, tAt, oAt]) => this.kernels.thresholds_f32(nAt!, tAt!, oAt!, rows, vecs), {
        id: 'thresholds_f32', units: rows, unitNs: E / 2,
        args: ([nAt, tAt, oAt], r0, r1) => [nAt! + r0 * E * 4, tAt! + 8 * r0, oAt! + r0 * E * 4, r1 - r0, vecs],
      });
    return true;
  }

  /**
   * The thresholds' gradients' row sums (gating.ts probInTopKBackward's bits): per row of E
   * float32 (E a multiple of 4), the float64 sums of −dClean where noisy > tIn and elsewhere,
   * into sums (two a row). False (nothing written) otherwise.
   */
  thresholdSums(noisy: Float32Array, dClean: Float32Array, tRows: Float32Array, sums: Float64Array, E: number): boolean {
    const n = noisy.length, rows = tRows.length / 2;
    if (E % 4 !== 0 || n < MIN_ELEMENTS || rows * E !== n || dClean.length !== n || sums.length !== 2 * rows) return false;
    const vecs = E / 4;
    this.call([
      { values: noisy, count: n, bytes: n * 4 }, { values: dClean, count: n, bytes: n * 4 }, { values: tRows, count: 2 * rows, bytes: f32Bytes(2 * rows) },
      { values: sums, count: 2 * rows, bytes: 16 * rows, write: true },
    ], ([nAt, dAt, tAt, sAt]) => this.kernels.thresholdSums_f32(nAt!, dAt!, tAt!, sAt!, rows, vecs), {
      id: 'thresholdSums_f32', units: rows, unitNs: 2 * E,
      args: ([nAt, dAt, tAt, sAt], r0, r1) => [nAt! + r0 * E * 4, dAt! + r0 * E * 4, tAt! + 8 * r0, sAt! + 16 * r0, r1 - r0, vecs],
    });
    return true;
  }

  /** relu's gradient dy · (x > 0 ? 1 : 0), float32 (the reluGrad kernel's bits). False when too small to pay. */
  reluGrad(dy: Float32Array, x: Float32Array, out: Float32Array): boolean {
    const n = out.length;
    if (n < MIN_ARITHMETIC) return false;
    const b = f32Bytes(n);
    this.call([{ values: dy, count: n, bytes: b }, { values: x, count: n, bytes: b }, { values: out, count: n, bytes: b, write: true }],
      ([dyAt, xAt, outAt]) => this.kernels.reluGrad_f32(dyAt!, xAt!, outAt!, b / 16), vectorSplit('reluGrad_f32', b / 16, 2));
    return true;
  }
}

/** A view of `count` elements of values' type on buffer at byte address `at`. */
function viewOf(values: TypedArray, buffer: ArrayBufferLike, at: number, count: number): TypedArray {
  if (values instanceof Float64Array) return new Float64Array(buffer, at, count);
  if (values instanceof Int32Array) return new Int32Array(buffer, at, count);
  return new Float32Array(buffer, at, count);
}
