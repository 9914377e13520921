// The SIMD128 matrix-product module, emitted at load time (see wasm-emitter.ts).
//
//   C (m × n) = A (m × k) · B (k × n), float32 with f32x4 or float64 with f64x2
//
// The scheme is XNNPACK's on x86 wasm, measured here against alternatives in one process
// (/work/shared/notes/wasm-simd.md, "Design choices"):
// - B is packed, one panel of NR = 8 columns at a time, k-major (panel[p·8 + j]), into a
//   per-thread scratch that stays in L1 while every row tile of A sweeps it. Reading B
//   strided in place ran at 0.75–0.95× of this. A·Bᵀ packs with 4×4 (2×2 for f64) lane
//   transposes made of i8x16.shuffle.
// - The micro-kernel keeps an MR × 8 tile of C in registers: float32 4 rows × 2 f32x4,
//   float64 2 rows × 4 f64x2 — 8 accumulators, the B vectors and one broadcast stay within
//   the 15 xmm registers V8 allocates on x64. Bigger tiles spilled and ran at 0.55–0.78×;
//   unrolling the k loop made TurboFan hoist loads and spill (0.6–0.87×).
// - A is broadcast (load32_splat / load64_splat) from its rows in place: 4 (2) row pointers
//   advanced by a k-stride. Aᵀ·B first packs Aᵀ into MR-row k-major panels (one v128 copy
//   per k), because broadcasting from a K × M layout with stride M aliased cache sets
//   (2.27× slower at 1024²). A grouped weight gradient's short segments (≤ 512 rows: a
//   tile's sweep touches one cache line per row, an L1's worth) read Aᵀ in place instead,
//   sparing the calling thread the pack (wasm-matmul.ts PACK_ROWS); the driver tells the
//   layouts apart by A's strides.
// - Rows past the last whole tile use a tile of just those rows (2 or 3 × 8 for float32,
//   then 1 × 8), not a padded tile (decode-sized products would waste 3/4 of the work).
//   Columns past the last whole panel are packed as zeros and land in C's padding, which
//   the caller drops; a panel of at most 4 real columns runs half-width tiles (one f32x4 or
//   two f64x2 per row), which skip the padding's half ([1024, 256]·[256, 4]: 0.102 → 0.086 ms).
// - While a panel's row tiles compute, the driver loads a few cache lines of the next panel's
//   B after each whole tile (wasm has no prefetch instruction): an MoE layer's expert weights
//   are read cold, and their lines then arrive during the arithmetic instead of stalling the
//   next pack (an E = 16 step, 1 thread, in one process: MoE −0.75 ms, 1.118 → 1.101 of the
//   dense block; BENCHMARKS.md, 2026-12-05). The control block's touch word turns it on, and
//   WasmMatmul sets it only around a one-thread grouped product of several experts: with warm
//   weights (a dense layer, an LSTM's products) or two threads, the touches cost more than
//   they hide (2 threads: the LSTM pass 1.3–1.6 ms faster without; BENCHMARKS.md, 2026-12-06).
// - An operand's rows may be read through a table of their addresses instead (a zero row
//   stride: aRs for A, sBp for B; see gemm_f32 below): the MoE's dispatched rows, which then
//   need no gathered copy (wasm-matmul.ts `indexed`). Only a tile's set-up and the pack's row
//   step change; the sums and their order do not.
// - gemmT stores each tile transposed (a lanes × lanes transpose of its accumulators, then
//   one vector per column of the tile, only for the panel's real columns). An MoE layer's
//   x·Wᵀ over short segments runs as W·x[seg]ᵀ on it (wasm-matmul.ts grouped): the weight is
//   then A, read in place, and what is packed is the segment (128 × 256 instead of 512 × 256
//   at E = 16), with the same sums in the same order. There a row-major A's whole tiles run
//   quartered (rows t, t + Q, t + 2Q, t + 3Q, so that W streams in four long runs the
//   prefetcher follows; each column's lanes then stored one by one), and a last panel of one
//   or two real columns runs on a tail tile with its lanes along A's rows (emitTailTile).
//   gemmT_f32's other narrow panels (at most 4 real columns) run on half-width tiles of 2·MR
//   rows: 8 sums going at once instead of 4, each of which waits a step for its add (one
//   thread, 64 experts' x·W_eᵀ of 35 or 36 rows: 13.3 → 12.7 ms; of 11 or 12 rows: 5.2 → 4.6).
//   Where A's rows lie one element apart (the backward's W_eᵀ read in place), a partial panel
//   runs on a column tail tile instead (emitColTailTile: A's rows loaded as vectors a step, lanes
//   along them, one accumulator per real column, no padding and no transpose).
// - gemmW computes a weight gradient over a short segment (wasm-matmul.ts SHORT_SUMS rows or
//   fewer): B read in place, the tile inlined, each row tile over every panel (emitGemmW).
// - Every element of C is summed by one kernel call, p = 0, 1, …, k-1 in order, starting
//   from +0, one multiply and one add per step (no FMA): its value does not depend on which
//   kernel (MR × 8 or 1 × 8) or which thread computed it. That is why results are
//   bit-identical for any thread count, and why float64 results equal a sequential float64
//   dot product exactly.
//
// With threads, the same module runs in every worker over one shared memory; `work` claims
// chunks (a group of panels × a block of rows, or a chunk table's entries: grouped products,
// pieces of math-module kernels, which it runs through the imported `chunk`, and sequences of
// both run in order by one thread, such as a row block of the noisy gate's chain) from a
// counter in a control block at address 0, and `worker` is the loop a worker thread runs
// forever (see thread-pool.ts).

import { ModuleBuilder, type Code, type Local } from './wasm-emitter.js';

export type SimdDType = 'float32' | 'float64';

/** Per-dtype constants of the kernels. */
export const GEMM = {
  float32: { bytes: 4, lanes: 4, mr: 4 },
  float64: { bytes: 8, lanes: 2, mr: 2 },
} as const;
/** Columns of a packed B panel (and of a micro-tile). */
export const NR = 8;

/** Words (i32 indices) of the control block at address 0 that threads share. */
export const CTRL = {
  seq: 0,        // job sequence number; workers wait on it
  claim: 1,      // (generation << 16) | next chunk; generation = seq & 0x7fff
  finished: 2,   // chunks finished in this job
  total: 3,      // chunks in this job
  spin: 4,       // how many times a worker polls seq before it sleeps in atomic.wait
  dtype: 5,      // 0 float32, 1 float64
  aPtr: 6, aRs: 7, aKs: 8, bPtr: 9, sBp: 10, sBj: 11, cPtr: 12, ldc: 13, n: 14, k: 15,
  m: 16, groups: 17, groupPanels: 18, blockRows: 19, panels: 20, scratch: 21, scratchStride: 22,
  active: 23,    // threads a job uses: workers numbered at or above it sleep through jobs
  alive: 24,     // workers numbered at or above this leave their loop (the pool stopping)
  table: 25,     // 0: one product, chunked by the words above; else the address of a chunk table
  touch: 26,     // nonzero: gemm touches the next panel's B while it computes a panel
  tail: 27,      // bit c (1 … 7): gemmT_f32 runs a partial panel of c columns of a row-major A on its tail tile
  tailPanels: 28, // partial panels (one count per row block of one) that ran on the tail tiles (observability and tests)
  quarter: 29,   // nonzero: gemmT runs a row-major A's whole tiles quartered (emitGemm)
  quartered: 30, // gemmT calls (chunks) that ran quartered (observability and tests)
  narrow8: 31,   // nonzero: gemmT_f32 runs a narrow panel's rows on tiles of 2·MR rows (emitGemm)
  narrowPanels: 32, // narrow panels (one count per row block of one) that ran on those tiles (observability and tests)
  colTail: 33,   // bit c (1 … 7): gemmT_f32 runs a partial panel of c columns of an A read a column at a time (Aᵀ in place) on its column tail tiles
  colTailPanels: 34, // partial panels (one count per row block of one) that ran on the column tail tiles (observability and tests)
  chunksBy: 64,  // words 64 … 127: chunks computed by each thread (observability)
} as const;
/** Most threads (main + workers) the control block has a chunk counter for. */
export const MAX_THREADS = 64;
/** Bytes the control block takes at the start of memory. */
export const CTRL_BYTES = (CTRL.chunksBy + MAX_THREADS) * 4;
/**
 * A chunk table entry (grouped products: one job of many products, e.g. an MoE layer's
 * experts): the gemm arguments aPtr aRs aKs bPtr sBp sBj cPtr ldc n k p0 p1 r0 r1, then
 * its kind (0 gemm_f32, 1 gemm_f64, TABLE_T32 / TABLE_T64 gemmT); i32 words. The thread's B-panel scratch comes from the
 * control block, sized for the largest k of the job.
 */
export const TABLE_WORDS = 15;
/** A chunk table entry's word 14 for a piece of a math-module kernel: words 0 … 13 are its chunk entry (math-module.ts CHUNK_WORDS). */
export const TABLE_MATH = 2;
/**
 * A chunk table entry's word 14 for a sequence: words 0 and 1 are the address and count of
 * entries (products or pieces, TABLE_WORDS words each) that the thread claiming it runs in
 * order (a row block of a chain of kernels, each reading what the one before wrote).
 */
export const TABLE_SEQ = 3;
/** A chunk table entry's word 14 for a float32 (float64) product storing C transposed (gemmT_f32, gemmT_f64). */
export const TABLE_T32 = 4;
export const TABLE_T64 = 5;
/**
 * A chunk table entry's word 14 for a float32 (float64) weight gradient over a short segment
 * (gemmW_f32, gemmW_f64): words 0 … 7 its arguments aPtr aKs bPtr sBp cPtr ldc n k, words 12
 * and 13 its rows r0 r1.
 */
export const TABLE_W32 = 6;
export const TABLE_W64 = 7;
/** The claim index that closes a job: above any chunk count. */
export const CLOSED = 0xffff;

export interface GemmExports {
  /** Packs Aᵀ (A stored k × m at src) into MR-row, k-major panels at dst. */
  packAT_f32(src: number, m: number, k: number, dst: number): void;
  packAT_f64(src: number, m: number, k: number, dst: number): void;
  /**
   * C rows r0..r1-1, panels p0..p1-1 (columns 8·p0 … 8·p1-1) of A·B. A(i, p) for i in a
   * row tile of MR starting at a multiple of MR lies at aPtr + i·k·bytes + (i mod MR)·aRs
   * + p·aKs; B(p, j) at bPtr + p·sBp + j·sBj; C(i, j) at cPtr + i·ldc + j·bytes. Byte units.
   * Gathered rows (no valid layout has a zero row stride): with aRs 0, A(i, p) lies at
   * word(aPtr + 4i) + p·aKs, and with sBp 0, B(p, j) at word(bPtr + 4p) + j·sBj, where word(x)
   * is the i32 at x: tables of row addresses (WasmMatmul.grouped's `indexed`).
   */
  gemm_f32(aPtr: number, aRs: number, aKs: number, bPtr: number, sBp: number, sBj: number, cPtr: number, ldc: number,
    n: number, k: number, p0: number, p1: number, r0: number, r1: number, scratch: number): void;
  gemm_f64(aPtr: number, aRs: number, aKs: number, bPtr: number, sBp: number, sBj: number, cPtr: number, ldc: number,
    n: number, k: number, p0: number, p1: number, r0: number, r1: number, scratch: number): void;
  /**
   * gemm_f32 (gemm_f64) with C stored transposed: C(i, j) at cPtr + j·ldc + i·bytes. Only the
   * n columns of C are stored (a partial panel's padding would be the rows after them).
   */
  gemmT_f32(aPtr: number, aRs: number, aKs: number, bPtr: number, sBp: number, sBj: number, cPtr: number, ldc: number,
    n: number, k: number, p0: number, p1: number, r0: number, r1: number, scratch: number): void;
  gemmT_f64(aPtr: number, aRs: number, aKs: number, bPtr: number, sBp: number, sBj: number, cPtr: number, ldc: number,
    n: number, k: number, p0: number, p1: number, r0: number, r1: number, scratch: number): void;
  /**
   * C rows r0..r1-1 (all n columns, n a whole number of panels) of Aᵀ·B for a short sum (a
   * weight gradient over an expert's few rows): A(i, p) at aPtr + i·bytes + p·aKs (Aᵀ read in
   * place), B(p, j) at bPtr + p·sBp + j·bytes (with sBp 0, row p at word(bPtr + 4p): gathered
   * rows), C(i, j) at cPtr + i·ldc + j·bytes. B is read in place, not packed, and each tile of
   * MR rows sweeps every panel before the next tile (emitGemmW).
   */
  gemmW_f32(aPtr: number, aKs: number, bPtr: number, sBp: number, cPtr: number, ldc: number, n: number, k: number, r0: number, r1: number): void;
  gemmW_f64(aPtr: number, aKs: number, bPtr: number, sBp: number, cPtr: number, ldc: number, n: number, k: number, r0: number, r1: number): void;
  /**
   * Adds the vector at biasPtr (vecs v128 lanes-groups) to each of `rows` rows of C starting at
   * cPtr, ldc bytes apart: the grouped products' biases (f32x4.add rounds as the add kernel does).
   * With relu ≠ 0, then relu of each sum: the sum where it is > 0 or NaN, else +0 (the relu
   * kernel's bits).
   */
  addRows_f32(cPtr: number, ldc: number, rows: number, biasPtr: number, vecs: number, relu: number): void;
  addRows_f64(cPtr: number, ldc: number, rows: number, biasPtr: number, vecs: number, relu: number): void;
  /**
   * Column sums of `rows` rows (ld bytes apart, from src) into float64 sums at dst, `vecs`
   * v128s of columns per row: each column summed in row order in float64 from 0, as the
   * segmentSums kernel sums it (float32 lanes are widened exactly before each add). dst holds
   * 4·vecs (f32) or 2·vecs (f64) float64s; lanes past the columns the caller keeps are junk.
   */
  colSums_f32(src: number, ld: number, rows: number, dst: number, vecs: number): void;
  colSums_f64(src: number, ld: number, rows: number, dst: number, vecs: number): void;
  /** Zeroes `bytes` bytes from ptr (memory.fill: a view's fill on shared memory is ~3× slower). */
  zero(ptr: number, bytes: number): void;
  /** Copies `bytes` bytes from src to dst (memory.copy): a gather's rows between tensors of the memory. */
  copy(dst: number, src: number, bytes: number): void;
  /** Claims and computes chunks of the job in the control block until none is left (threads only). */
  work?(generation: number, thread: number): void;
  /** A worker thread's loop: wait for a job, work, forever (threads only). */
  worker?(thread: number): void;
}

type Spec = { t: 'f32' | 'f64'; bytes: number; lanes: number; mr: number; vn: number };

function specOf(dtype: SimdDType): Spec {
  const g = GEMM[dtype];
  return { t: dtype === 'float32' ? 'f32' : 'f64', bytes: g.bytes, lanes: g.lanes, mr: g.mr, vn: NR / g.lanes };
}

/** The i8x16.shuffle byte lanes that pick whole elements of `bytes` each (0.. from a, then b). */
function elementLanes(elements: number[], bytes: number): number[] {
  return elements.flatMap((e) => Array.from({ length: bytes }, (_, i) => e * bytes + i));
}

/**
 * A lanes × lanes transpose of the vectors r (r[q] lane i → out[i] lane q) through tmp: the
 * first stage stored in tmp now, and per output lane a function that pushes that vector.
 */
function transposeLanes(c: Code, lanes: number, r: readonly Local[], tmp: readonly Local[]): Array<() => void> {
  if (lanes === 4) {
    const lo = elementLanes([0, 4, 1, 5], 4), hi = elementLanes([2, 6, 3, 7], 4);
    c.get(r[0]!).get(r[1]!).i8x16Shuffle(lo).set(tmp[0]!);
    c.get(r[0]!).get(r[1]!).i8x16Shuffle(hi).set(tmp[1]!);
    c.get(r[2]!).get(r[3]!).i8x16Shuffle(lo).set(tmp[2]!);
    c.get(r[2]!).get(r[3]!).i8x16Shuffle(hi).set(tmp[3]!);
    const first = elementLanes([0, 1, 4, 5], 4), second = elementLanes([2, 3, 6, 7], 4);
    return [
      () => c.get(tmp[0]!).get(tmp[2]!).i8x16Shuffle(first), () => c.get(tmp[0]!).get(tmp[2]!).i8x16Shuffle(second),
      () => c.get(tmp[1]!).get(tmp[3]!).i8x16Shuffle(first), () => c.get(tmp[1]!).get(tmp[3]!).i8x16Shuffle(second),
    ];
  }
  return [() => c.get(r[0]!).get(r[1]!).i8x16Shuffle(elementLanes([0, 2], 8)), () => c.get(r[0]!).get(r[1]!).i8x16Shuffle(elementLanes([1, 3], 8))];
}

/** c += x · b over vectors, as separate multiply and add (no FMA: the same bits as scalar a·b + c). */
function madd(c: Code, s: Spec, acc: Local, x: Local, b: Local): void {
  c.get(acc).get(x).get(b);
  if (s.t === 'f32') c.f32x4Mul().f32x4Add(); else c.f64x2Mul().f64x2Add();
  c.set(acc);
}

/** Adds 1 to a control block word (an observability count): atomically where the memory is shared. */
function countIn(c: Code, word: number, shared: boolean): void {
  if (shared) c.i32(0).i32(1).i32AtomicAdd(word * 4).drop();
  else c.i32(0).i32(0).load('i32', word * 4).i32(1).i32Add().store('i32', word * 4);
}

/** The tiles' loop over the sum: body() k times (none for k = 0), p counting down from k. */
function eachStep(c: Code, p: Local, k: Local, body: () => void): void {
  c.get(k).set(p);
  c.block(() => {
    c.get(p).i32Eqz().brIf(0);
    c.loop(() => {
      body();
      c.get(p).i32(1).i32Sub().tee(p).brIf(0);
    });
  });
}

function splat(c: Code, s: Spec): void {
  if (s.t === 'f32') c.v128Load32Splat(); else c.v128Load64Splat();
}

/**
 * tile(a, aRs, aKs, b, c, ldc, k): the rows-× 8 micro-kernel, C tile = Σ_p A(·, p) B(p, ·);
 * with `vecs` below the panel's vectors, only its first vecs·lanes columns (a panel of at
 * most 4 real columns: the rest are the packing's zeros, and land in C's padding).
 */
function emitTile(mod: ModuleBuilder, s: Spec, rows: number, vecs = s.vn, transposedC = false): number {
  const params = Array<'i32'>(transposedC ? 9 : 7).fill('i32');
  return mod.func(`$tile${rows}x${vecs * s.lanes}${transposedC ? 'T' : ''}_${s.t}`, params, [], (c, a, aRs, aKs, b, cPtr, ldc, k, cols, cRs) => {
    const ar = Array.from({ length: rows }, () => c.local('i32'));
    const acc = Array.from({ length: rows }, () => Array.from({ length: vecs }, () => c.local('v128')));
    const bv = Array.from({ length: vecs }, () => c.local('v128'));
    const x = c.local('v128'), p = c.local('i32');
    // aRs 0: A's rows are gathered (wasm-matmul.ts's `indexed`): row r of the tile starts at the
    // address in the i32 word a + 4r. Else row r starts aRs bytes after row r − 1.
    c.get(aRs).i32Eqz().if(() => {
      for (let r = 0; r < rows; r++) c.get(a).load('i32', 4 * r).set(ar[r]!);
    }, () => {
      c.get(a).set(ar[0]!);
      for (let r = 1; r < rows; r++) c.get(ar[r - 1]!).get(aRs).i32Add().set(ar[r]!);
    });
    eachStep(c, p, k, () => {
      for (let v = 0; v < vecs; v++) c.get(b).v128Load(16 * v).set(bv[v]!);
      for (let r = 0; r < rows; r++) {
        c.get(ar[r]!); splat(c, s); c.set(x);
        for (let v = 0; v < vecs; v++) madd(c, s, acc[r]![v]!, x, bv[v]!);
        c.get(ar[r]!).get(aKs).i32Add().set(ar[r]!);
      }
      c.get(b).i32(NR * s.bytes).i32Add().set(b);
    });
    if (transposedC) storeTransposed(c, s, acc, cPtr, ldc, cols!, cRs!);
    else {
      for (let r = 0; r < rows; r++) {
        for (let v = 0; v < vecs; v++) c.get(cPtr).get(acc[r]![v]!).v128Store(16 * v);
        if (r + 1 < rows) c.get(cPtr).get(ldc).i32Add().set(cPtr);
      }
    }
  });
}

/**
 * tileColTail{cols}T_f32(a, aKs, b, cPtr, ldc, k): gemmT_f32's partial panel of cols < 8 real
 * columns where A's rows lie one element apart (aRs one element, aKs a row: the backward's
 * dy[seg]·W_e swapped, A = W_eᵀ read in place, its step p one row of W_e), with the lanes
 * along A's rows: step p loads the tile's rows as vectors (8 rows, two vectors, for 1 … 4
 * columns; 4 rows, one vector, for 5 … 7: at most 8 accumulators) and adds them times each
 * real column's B(p, j). No accumulator is spent on the panel's padding, and no transpose is
 * needed (the forward's tail tiles, whose rows are k apart, transpose four steps at a time).
 * Each sum is one multiply and one add a step, p = 0, 1, … in order, from +0: the bits of the
 * padded and half-width tiles. Column j of the tile is row j of C, its rows contiguous there.
 * Measured (one thread, 256 experts' dy[seg]·W_e of 2 … 16 rows, 256 → 512): 13.5–13.7 →
 * 12.2–12.5 ms with the weights warm, 15.8–16.0 → 15.3–15.6 cold; 64 experts of 20 … 45 rows
 * 11.2–11.7 → 10.8–11.4 warm, 11.7–12.3 → 11.4–12.0 cold (BENCHMARKS.md, 2026-12-07 afternoon).
 */
function emitColTailTile(mod: ModuleBuilder, s: Spec, cols: number): number {
  const { bytes } = s, vecs = colTailVecs(cols);
  return mod.func(`$tileColTail${cols}T_${s.t}`, Array<'i32'>(6).fill('i32'), [], (c, a, aKs, b, cPtr, ldc, k) => {
    const acc = Array.from({ length: vecs }, () => Array.from({ length: cols }, () => c.local('v128')));
    const va = Array.from({ length: vecs }, () => c.local('v128')), x = c.local('v128'), p = c.local('i32');
    eachStep(c, p, k, () => {
      for (let v = 0; v < vecs; v++) c.get(a).v128Load(16 * v).set(va[v]!);
      for (let j = 0; j < cols; j++) {
        c.get(b).v128Load32Splat(j * bytes).set(x);
        for (let v = 0; v < vecs; v++) madd(c, s, acc[v]![j]!, va[v]!, x);
      }
      c.get(a).get(aKs).i32Add().set(a);
      c.get(b).i32(NR * bytes).i32Add().set(b);
    });
    for (let j = 0; j < cols; j++) {
      for (let v = 0; v < vecs; v++) c.get(cPtr).get(ldc).i32(j).i32Mul().i32Add().get(acc[v]![j]!).v128Store(16 * v);
    }
  });
}

/** Vectors of A's rows a column tail tile of `cols` columns takes a step: two (8 rows) up to 4 columns, else one. */
const colTailVecs = (cols: number): number => (cols <= 4 ? 2 : 1);

/**
 * tileTail{cols}T_f32(a, aRs, b, cPtr, ldc, k, cRs): gemmT's last panel when it has cols < 8 real
 * columns (an expert's last m mod 8 rows, swapped), for a tile of MR rows of a row-major A (the
 * forward's W_e), with the lanes along the tile's rows instead of the panel's columns: one
 * accumulator per real column, none spent on the panel's padding (a padded 4 × 4 tile with one
 * real column does four multiply-adds for each real one). Four steps of each row are loaded at
 * once and transposed, the last k mod 4 steps gathered a lane at a time. Each sum is still one
 * multiply and one add per step, p = 0, 1, … in order, from +0: the bits of the padded tile.
 * Column j of the tile is row j of the caller's C, its rows cRs bytes apart there: one store a
 * column where they are contiguous, a lane at a time where the tiles are quartered (emitGemm).
 * Measured (one thread, 64 experts' x·W_eᵀ, 256 → 512, weights cold): segments of 33
 * rows 17.6 → 16.0 ms, 34 rows 17.9 → 16.5 (32 rows: 15.5); 35 rows no faster, 37 and more
 * slower, hence the control block's tail word (WasmMatmul.tailTiles). A's rows contiguous (the
 * backward's W_eᵀ read in place), one load a step, ran no faster for any count: not kept.
 */
function emitTailTile(mod: ModuleBuilder, s: Spec, cols: number): number {
  const { lanes, bytes } = s;
  return mod.func(`$tileTail${cols}T_${s.t}`, Array<'i32'>(7).fill('i32'), [], (c, a, aRs, b, cPtr, ldc, k, cRs) => {
    const acc = Array.from({ length: cols }, () => c.local('v128'));
    const ar = Array.from({ length: lanes }, () => c.local('i32'));
    const r = Array.from({ length: lanes }, () => c.local('v128')), tmp = Array.from({ length: lanes }, () => c.local('v128'));
    const va = c.local('v128'), x = c.local('v128'), p = c.local('i32'), k4 = c.local('i32');
    // acc[j] += va · B(p, j), B's panel row p at b + bOffset.
    const step = (bOffset: number) => {
      for (let j = 0; j < cols; j++) {
        c.get(b).v128Load32Splat(bOffset + j * bytes).set(x);
        madd(c, s, acc[j]!, va, x);
      }
    };
    c.get(a).set(ar[0]!);
    for (let q = 1; q < lanes; q++) c.get(ar[q - 1]!).get(aRs).i32Add().set(ar[q]!);
    c.get(k).get(k).i32(lanes).i32RemU().i32Sub().set(k4);
    c.forRange(p, 0, k4, lanes, () => {
      for (let q = 0; q < lanes; q++) c.get(ar[q]!).v128Load().set(r[q]!);
      transposeLanes(c, lanes, r, tmp).forEach((push, u) => { push(); c.set(va); step(u * NR * bytes); });
      for (let q = 0; q < lanes; q++) c.get(ar[q]!).i32(16).i32Add().set(ar[q]!);
      c.get(b).i32(lanes * NR * bytes).i32Add().set(b);
    });
    c.forRange(p, k4, k, 1, () => {
      c.get(ar[0]!).v128Load32Splat().set(va);
      for (let q = 1; q < lanes; q++) c.get(va).get(ar[q]!).load('f32').f32x4ReplaceLane(q).set(va);
      step(0);
      for (let q = 0; q < lanes; q++) c.get(ar[q]!).i32(bytes).i32Add().set(ar[q]!);
      c.get(b).i32(NR * bytes).i32Add().set(b);
    });
    // Rows contiguous in C: a vector a column; spread apart (quartered tiles): a lane at a time.
    c.get(cRs).i32(bytes).i32Eq().if(() => {
      for (let j = 0; j < cols; j++) c.get(cPtr).get(ldc).i32(j).i32Mul().i32Add().get(acc[j]!).v128Store();
    }, () => {
      for (let j = 0; j < cols; j++) {
        for (let q = 0; q < lanes; q++) {
          c.get(cPtr).get(ldc).i32(j).i32Mul().i32Add().get(cRs).i32(q).i32Mul().i32Add().get(acc[j]!).v128Store32Lane(q);
        }
      }
    });
  });
}

/**
 * A tile's sums stored transposed: tile column j (lane q of vector v, j = v·lanes + q) is row j
 * of the caller's C, at cPtr + j·ldc, and tile row r its element at r·cRs bytes from there.
 * Only the first `cols` columns are stored (those past a partial panel would be another
 * segment's rows). A tile of MR rows (lanes of them; 2·MR: two groups of lanes) transposes lanes × lanes first, then
 * stores a vector per column where its rows are contiguous in C (cRs one element), or each
 * column's lanes one by one (v128.store32_lane, store64_lane) where they are spread apart (a
 * swapped forward's quartered tiles, see emitGemm). Tiles of fewer rows (whose rows are always
 * contiguous) store element by element.
 */
function storeTransposed(c: Code, s: Spec, acc: Local[][], cPtr: Local, ldc: Local, cols: Local, cRs: Local): void {
  const rows = acc.length, vecs = acc[0]!.length, { lanes, bytes } = s;
  const out = Array.from({ length: lanes }, () => c.local('v128'));
  const tmp = Array.from({ length: lanes }, () => c.local('v128'));
  const cr = Array.from({ length: rows }, () => c.local('i32'));
  const elements = (rowAt: (r: number) => void) => {
    for (let v = 0; v < vecs; v++) {
      for (let q = 0; q < lanes; q++) {
        const j = v * lanes + q;
        c.i32(j).get(cols).i32LtS().if(() => {
          for (let r = 0; r < rows; r++) {
            rowAt(r); c.get(ldc).i32(j).i32Mul().i32Add().get(acc[r]![v]!);
            if (s.t === 'f32') c.f32x4ExtractLane(q).store('f32'); else c.f64x2ExtractLane(q).store('f64');
          }
        });
      }
    }
  };
  if (rows < lanes) { elements((r) => c.get(cPtr).i32(r * bytes).i32Add()); return; }
  if (rows % lanes !== 0) throw new Error(`storeTransposed: a tile of ${rows} rows (whole groups of ${lanes}, or fewer)`);
  // Rows in groups of `lanes` (one group for MR rows; two for the narrow panels' 8-row tiles):
  // each group's lanes × lanes block transposed, so that vector q holds column v·lanes + q of
  // the group's rows.
  const groups = rows / lanes;
  const eachColumn = (store: (g: number, j: number) => void) => {
    for (let g = 0; g < groups; g++) {
      for (let v = 0; v < vecs; v++) {
        transposeLanes(c, lanes, acc.slice(g * lanes, (g + 1) * lanes).map((row) => row[v]!), tmp).forEach((push, q) => { push(); c.set(out[q]!); });
        for (let q = 0; q < lanes; q++) {
          const j = v * lanes + q;
          c.i32(j).get(cols).i32LtS().if(() => store(g, j));
        }
      }
    }
  };
  c.get(cRs).i32(bytes).i32Eq().if(() => {
    eachColumn((g, j) => { c.get(cPtr).get(ldc).i32(j).i32Mul().i32Add().get(out[j % lanes]!).v128Store(g * lanes * bytes); });
  }, () => {
    // Rows spread apart: the same transposes, then each column's lanes stored one by one at
    // the column's start plus r·cRs.
    c.get(cRs).set(cr[1]!);
    for (let r = 2; r < rows; r++) c.get(cr[r - 1]!).get(cRs).i32Add().set(cr[r]!);
    eachColumn((g, j) => {
      c.get(cPtr).get(ldc).i32(j).i32Mul().i32Add().set(cr[0]!);
      for (let q = 0; q < lanes; q++) {
        const r = g * lanes + q;
        c.get(cr[0]!); if (r > 0) c.get(cr[r]!).i32Add();
        c.get(out[j % lanes]!);
        if (s.t === 'f32') c.v128Store32Lane(q); else c.v128Store64Lane(q);
      }
    });
  });
}

/**
 * packPanel(bPtr, sBp, sBj, j0, cols, k, dst): dst[p·8 + jj] = B(p, j0 + jj) for jj < cols,
 * 0 beyond (the padding columns of C). Whole panels of a row-major B copy two (four)
 * vectors per k; whole panels of a transposed B (sBp = one element) transpose lanes-square
 * blocks with shuffles; anything else goes element by element.
 */
function emitPackPanel(mod: ModuleBuilder, s: Spec): number {
  const { t, bytes, lanes, vn } = s;
  return mod.func(`$packPanel_${s.t}`, ['i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32'], [], (c, bPtr, sBp, sBj, j0, cols, k, dst) => {
    const p = c.local('i32'), src = c.local('i32'), jj = c.local('i32'), eight = c.local('i32'), addr = c.local('i32');
    c.i32(NR).set(eight);
    const whole = () => c.get(cols).i32(NR).i32Eq();
    const rowMajor = () => c.get(sBj).i32(bytes).i32Eq();
    const transposed = () => c.get(sBp).i32(bytes).i32Eq();
    // B(p, j) starts at bPtr + j0·sBj.
    c.get(bPtr).get(j0).get(sBj).i32Mul().i32Add().set(src);
    // Gathered operands (wasm-matmul.ts's `indexed`): with sBp 0, row p of B starts at the
    // address in the i32 word bPtr + 4p (its elements sBj apart); with sBj 0, column j starts at
    // the word bPtr + 4j (its elements sBp apart).
    const gatheredRow = () => c.get(bPtr).get(p).i32(4).i32Mul().i32Add().load('i32');
    const gatheredCol = (j: () => void) => { c.get(bPtr); j(); c.i32(4).i32Mul().i32Add().load('i32'); };
    whole(); c.get(sBp).i32Eqz().i32And();
    c.if(() => {
      c.forRange(p, 0, k, 1, () => {
        gatheredRow(); c.get(j0).get(sBj).i32Mul().i32Add().set(src);
        for (let v = 0; v < vn; v++) c.get(dst).get(src).v128Load(16 * v).v128Store(16 * v);
        c.get(dst).i32(NR * bytes).i32Add().set(dst);
      });
    }, () => {
      whole(); rowMajor(); c.i32And();
      c.if(() => {
        c.forRange(p, 0, k, 1, () => {
          for (let v = 0; v < vn; v++) c.get(dst).get(src).v128Load(16 * v).v128Store(16 * v);
          c.get(src).get(sBp).i32Add().set(src);
          c.get(dst).i32(NR * bytes).i32Add().set(dst);
        });
      }, () => {
        whole(); transposed(); c.i32And();
        c.if(() => {
          // Column jj of the panel is a contiguous run of k elements at col[jj].
          const col = Array.from({ length: NR }, () => c.local('i32'));
          const r = Array.from({ length: lanes }, () => c.local('v128'));
          const tmp = Array.from({ length: lanes }, () => c.local('v128'));
          const kWhole = c.local('i32'), off = c.local('i32');
          // Gathered columns: a segment's rows, read as Bᵀ by gemmT.
          c.get(sBj).i32Eqz().if(() => {
            for (let q = 0; q < NR; q++) { gatheredCol(() => c.get(j0).i32(q).i32Add()); c.set(col[q]!); }
          }, () => {
            for (let q = 0; q < NR; q++) c.get(src).i32(q).get(sBj).i32Mul().i32Add().set(col[q]!);
          });
          c.get(k).get(k).i32(lanes).i32RemU().i32Sub().set(kWhole);
          c.forRange(p, 0, kWhole, lanes, () => {
            c.get(p).i32(bytes).i32Mul().set(off);
            for (let g = 0; g < NR / lanes; g++) {
              for (let q = 0; q < lanes; q++) c.get(col[g * lanes + q]!).get(off).i32Add().v128Load().set(r[q]!);
              // out[q] = (r0[q], r1[q], …): row p + q of the panel, columns g·lanes …
              const out = transposeLanes(c, lanes, r, tmp);
              for (let q = 0; q < lanes; q++) {
                // dst + ((p + q)·8 + g·lanes)·bytes
                c.get(dst).get(p).i32(q).i32Add().i32(NR * bytes).i32Mul().i32Add();
                out[q]!();
                c.v128Store(g * lanes * bytes);
              }
            }
          });
          c.forRange(p, kWhole, k, 1, () => {
            for (let q = 0; q < NR; q++) {
              c.get(dst).get(p).i32(NR * bytes).i32Mul().i32Add();
              c.get(col[q]!).get(p).i32(bytes).i32Mul().i32Add().load(t);
              c.store(t, q * bytes);
            }
          });
        }, () => {
          // Partial panel or a general layout: element by element, zeros past `cols`. B(p, j0 + jj)
          // at src + p·sBp + jj·sBj, or through its gathered row or column.
          const element = () => {
            c.get(sBp).i32Eqz().if(() => {
              gatheredRow(); c.get(j0).get(jj).i32Add().get(sBj).i32Mul().i32Add().set(addr);
            }, () => {
              c.get(sBj).i32Eqz().if(() => {
                gatheredCol(() => c.get(j0).get(jj).i32Add()); c.get(p).get(sBp).i32Mul().i32Add().set(addr);
              }, () => {
                c.get(src).get(p).get(sBp).i32Mul().i32Add().get(jj).get(sBj).i32Mul().i32Add().set(addr);
              });
            });
          };
          c.forRange(p, 0, k, 1, () => {
            c.forRange(jj, 0, eight, 1, () => {
              const at = () => c.get(dst).get(p).i32(NR).i32Mul().get(jj).i32Add().i32(bytes).i32Mul().i32Add();
              c.get(jj).get(cols).i32LtS();
              c.if(() => {
                element();
                at();
                c.get(addr).load(t);
                c.store(t);
              }, () => {
                at();
                if (t === 'f32') c.f32Zero(); else c.f64Zero();
                c.store(t);
              });
            });
          });
        });
      });
    });
  });
}

/** packAT(src, m, k, dst): Aᵀ stored k × m → panels of MR rows, dst[(i0·k + p·MR + r)] = A(i0 + r, p). */
function emitPackAT(mod: ModuleBuilder, s: Spec, name: string): number {
  const { t, bytes, mr } = s;
  return mod.func(name, ['i32', 'i32', 'i32', 'i32'], [], (c, src, m, k, dst) => {
    const i0 = c.local('i32'), p = c.local('i32'), from = c.local('i32'), to = c.local('i32');
    const mWhole = c.local('i32'), rowBytes = c.local('i32'), r = c.local('i32');
    c.get(m).get(m).i32(mr).i32RemU().i32Sub().set(mWhole);
    c.get(m).i32(bytes).i32Mul().set(rowBytes);
    // Whole panels: MR consecutive elements of one row of the stored K × M are one vector.
    // Eight panels at a time, four rows at a time: a few rows read front to back, and each
    // panel a whole cache line (four vectors) per visit, eight write streams where all the
    // panels at once (k·MR bytes apart) would collide in the cache's sets. Panel by panel,
    // reading down the columns, ran at 3.3 GB/s on a 1024 × 1024 A; this at 7 (2026-12-04).
    const g0 = c.local('i32'), gEnd = c.local('i32'), k4 = c.local('i32'), panelBytes = c.local('i32'), base = c.local('i32');
    c.get(k).get(k).i32(3).i32And().i32Sub().set(k4);
    c.get(k).i32(mr * bytes).i32Mul().set(panelBytes);
    c.forRange(g0, 0, mWhole, 8 * mr, () => {
      c.get(g0).i32(8 * mr).i32Add().set(gEnd);
      c.get(gEnd).get(mWhole).get(gEnd).get(mWhole).i32LeS().select().set(gEnd);
      c.get(dst).get(g0).get(k).i32Mul().i32(bytes).i32Mul().i32Add().set(base);
      // Rows p … p + 3 (p < k4), then the last rows one at a time.
      c.forRange(p, 0, k, 4, () => {
        c.get(src).get(p).get(rowBytes).i32Mul().i32Add().get(g0).i32(bytes).i32Mul().i32Add().set(from);
        c.get(base).get(p).i32(mr * bytes).i32Mul().i32Add().set(to);
        c.get(p).get(k4).i32LtS().if(() => {
          c.forRange(i0, g0, gEnd, mr, () => {
            for (let q = 0; q < 4; q++) {
              c.get(to).get(from);
              if (q > 0) c.get(rowBytes).i32(q).i32Mul().i32Add();
              c.v128Load().v128Store(q * mr * bytes);
            }
            c.get(from).i32(mr * bytes).i32Add().set(from);
            c.get(to).get(panelBytes).i32Add().set(to);
          });
        }, () => {
          c.forRange(r, p, k, 1, () => {
            c.forRange(i0, g0, gEnd, mr, () => {
              c.get(to).get(from).v128Load().v128Store();
              c.get(from).i32(mr * bytes).i32Add().set(from);
              c.get(to).get(panelBytes).i32Add().set(to);
            });
            // The next row: back to the group's first panel, one vector further down it.
            c.get(src).get(r).i32(1).i32Add().get(rowBytes).i32Mul().i32Add().get(g0).i32(bytes).i32Mul().i32Add().set(from);
            c.get(base).get(r).i32(1).i32Add().i32(mr * bytes).i32Mul().i32Add().set(to);
          });
        });
      });
    });
    // The last rows (fewer than MR), element by element, in the same panel layout.
    c.forRange(r, mWhole, m, 1, () => {
      c.forRange(p, 0, k, 1, () => {
        c.get(dst).get(mWhole).get(k).i32Mul().get(p).i32(mr).i32Mul().i32Add().get(r).i32Add().get(mWhole).i32Sub().i32(bytes).i32Mul().i32Add();
        c.get(src).get(p).get(m).i32Mul().get(r).i32Add().i32(bytes).i32Mul().i32Add().load(t);
        c.store(t);
      });
    });
  });
}

/** addRows(cPtr, ldc, rows, bias, vecs, relu): rows of C += the bias vector, `vecs` vectors per row, then relu when asked. */
function emitAddRows(mod: ModuleBuilder, s: Spec, name: string): number {
  return mod.func(name, ['i32', 'i32', 'i32', 'i32', 'i32', 'i32'], [], (c, cPtr, ldc, rows, bias, vecs, relu) => {
    const r = c.local('i32'), v = c.local('i32'), row = c.local('i32'), at = c.local('i32'), x = c.local('v128');
    c.forRange(r, 0, rows, 1, () => {
      c.get(cPtr).get(r).get(ldc).i32Mul().i32Add().set(row);
      c.forRange(v, 0, vecs, 1, () => {
        c.get(row).get(v).i32(16).i32Mul().i32Add().set(at);
        c.get(at).v128Load().get(bias).get(v).i32(16).i32Mul().i32Add().v128Load();
        if (s.t === 'f32') c.f32x4Add(); else c.f64x2Add();
        c.set(x);
        // relu: x where x > 0 or x ≠ x (NaN), else +0.
        c.get(relu).if(() => {
          c.get(x).f32x4Const(0).get(x).f32x4Const(0);
          if (s.t === 'f32') c.f32x4Gt().get(x).get(x).f32x4Ne(); else c.f64x2Gt().get(x).get(x).f64x2Ne();
          c.v128Or().v128Bitselect().set(x);
        });
        c.get(at).get(x).v128Store();
      });
    });
  });
}

/** colSums(src, ld, rows, dst, vecs): dst (float64) = Σ over the rows, column by column, in row order. */
function emitColSums(mod: ModuleBuilder, s: Spec, name: string): number {
  return mod.func(name, ['i32', 'i32', 'i32', 'i32', 'i32'], [], (c, src, ld, rows, dst, vecs) => {
    const r = c.local('i32'), v = c.local('i32'), row = c.local('i32'), d = c.local('i32'), x = c.local('v128');
    // Bytes of float64 sums per v128 of columns: 32 for four float32 lanes, 16 for two float64.
    const step = s.t === 'f32' ? 32 : 16;
    c.forRange(v, 0, vecs, 1, () => {
      c.get(dst).get(v).i32(step).i32Mul().i32Add().set(d);
      c.get(d).f32x4Const(0).v128Store();
      if (s.t === 'f32') c.get(d).f32x4Const(0).v128Store(16);
    });
    c.forRange(r, 0, rows, 1, () => {
      c.get(src).get(r).get(ld).i32Mul().i32Add().set(row);
      c.forRange(v, 0, vecs, 1, () => {
        c.get(row).get(v).i32(16).i32Mul().i32Add().v128Load().set(x);
        c.get(dst).get(v).i32(step).i32Mul().i32Add().set(d);
        if (s.t === 'f32') {
          c.get(d).get(d).v128Load().get(x).f64x2PromoteLowF32x4().f64x2Add().v128Store();
          c.get(d).get(d).v128Load(16).get(x).get(x).i8x16Shuffle(elementLanes([2, 3, 2, 3], 4)).f64x2PromoteLowF32x4().f64x2Add().v128Store(16);
        } else {
          c.get(d).get(d).v128Load().get(x).f64x2Add().v128Store();
        }
      });
    });
  });
}

/**
 * The macro-kernel: for each panel, pack it (with `pack`, the dtype's emitPackPanel), then
 * sweep the rows with the tiles. With
 * `transposedC`, C(i, j) is stored at cPtr + j·ldc + i·bytes (the product computes Cᵀ of the
 * caller's C: an MoE layer's x·Wᵀ as W·xᵀ, which packs the segment's rows instead of the
 * weight; wasm-matmul.ts grouped).
 */
function emitGemm(mod: ModuleBuilder, s: Spec, name: string, pack: number, transposedC = false, shared = false): number {
  // Each tile in two widths: the whole panel, and its first half for a panel of at most 4 real
  // columns (a gate's [·, 4] logits, the last panel of n = 8q + 1 … 8q + 4), which then does
  // half the multiply-adds; the same sums in the same order for the columns it computes.
  const half = s.vn / 2;
  const tc = transposedC;
  const tile = emitTile(mod, s, s.mr, s.vn, tc), tileH = emitTile(mod, s, s.mr, half, tc);
  const tile1 = emitTile(mod, s, 1, s.vn, tc), tile1H = emitTile(mod, s, 1, half, tc);
  // Tiles of 2 … MR−1 rows for a segment's last rows (an expert's row count is rarely a
  // multiple of MR): one 3 × 8 call instead of three 1 × 8 ones, which each reload B.
  const tiles = Array.from({ length: s.mr - 2 }, (_, r) => emitTile(mod, s, r + 2, s.vn, tc));
  const tilesH = Array.from({ length: s.mr - 2 }, (_, r) => emitTile(mod, s, r + 2, half, tc));
  // gemmT_f32's tail tiles, one per real column count 1 … 7 (emitTailTile).
  const tails = tc && s.t === 'f32' ? Array.from({ length: NR - 1 }, (_, j) => emitTailTile(mod, s, j + 1)) : [];
  // gemmT_f32's narrow panels (at most 4 real columns) on tiles of 2·MR rows: a half-width
  // tile of MR rows keeps only MR sums going, each waiting a step for its add, and took 82%
  // of a whole tile's time for half its work.
  const tile8H = tc && s.t === 'f32' ? emitTile(mod, s, 2 * s.mr, half, tc) : -1;
  const colTails = tc && s.t === 'f32' ? Array.from({ length: NR - 1 }, (_, j) => emitColTailTile(mod, s, j + 1)) : [];
  const P = Array(15).fill('i32') as 'i32'[];
  return mod.func(name, P, [], (c, aPtr, aRs, aKs, bPtr, sBp, sBj, cPtr, ldc, n, k, p0, p1, r0, r1, scratch) => {
    const jp = c.local('i32'), j0 = c.local('i32'), cols = c.local('i32'), cCol = c.local('i32');
    const i = c.local('i32'), rowBytes = c.local('i32'), lastTile = c.local('i32'), rem = c.local('i32');
    const tp = c.local('i32'), tStep = c.local('i32'), tLeft = c.local('i32'), per = c.local('i32'), q = c.local('i32'), sink = c.local('i32');
    const nextCols = c.local('i32'), narrow = c.local('i32'), aStep = c.local('i32'), tailOn = c.local('i32');
    const quartered = c.local('i32'), quarter = c.local('i32'), t = c.local('i32'), tEnd = c.local('i32');
    const uniformRows = c.local('i32'), narrow8 = c.local('i32'), q8 = c.local('i32'), colTail = c.local('i32');
    // Calls the half-width tile on a narrow panel, else the whole one (each branch pushes the arguments).
    // A tile's last arguments: its C (row i), ldc and k; transposed, the panel's columns too.
    // Transposed, the tile's rows lie cRs bytes apart in C: one element, or a quarter of the
    // rows for the quartered tiles below.
    const tileC = (cRs: (() => void) | null = null) => {
      if (tc) { c.get(cCol).get(i).i32(s.bytes).i32Mul().i32Add().get(ldc).get(k).get(cols); if (cRs) cRs(); else c.i32(s.bytes); }
      else c.get(cCol).get(i).get(ldc).i32Mul().i32Add().get(ldc).get(k);
    };
    const callTile = (whole: number, halfWidth: number, args: () => void) => c.get(narrow).if(() => { args(); c.call(halfWidth); }, () => { args(); c.call(whole); });
    // Bytes from row i of A to row i + 1, for the tiles' starts: k elements in MR-row panels
    // (aRs one element, aKs MR of them: Aᵀ packed), else aRs (A row-major, or Aᵀ read in place).
    c.get(k).i32(s.bytes).i32Mul().get(aRs);
    c.get(aRs).i32(s.bytes).i32Eq().get(aKs).i32(s.mr * s.bytes).i32Eq().i32And().select().set(rowBytes);
    // Gathered rows (aRs 0): a tile starts at its first row's word of the address table.
    c.i32(4).get(rowBytes).get(aRs).i32Eqz().select().set(rowBytes);
    c.i32(4).get(aRs).get(aRs).i32Eqz().select().set(aStep);
    c.get(r1).i32(s.mr).i32Sub().set(lastTile);
    // Row r of A at aPtr + r·aRs for every r (A row-major, or Aᵀ read in place; not packed Aᵀ,
    // whose MR-row panels a tile of 2·MR rows would straddle, nor gathered rows).
    c.get(aRs).i32Eqz().i32Eqz().get(aRs).i32(s.bytes).i32Eq().get(aKs).i32(s.mr * s.bytes).i32Eq().i32And().i32Eqz().i32And().set(uniformRows);
    // gemmT with A row-major (a swapped forward's W_e, aRs a row, aKs one element) runs its
    // whole tiles quartered where the control block's quarter word is set: tile t takes rows
    // r0 + t, r0 + t + Q, … (Q = (r1 − r0) / MR) instead of MR consecutive rows, so that each
    // of its MR row pointers walks a long run of consecutive rows, which the hardware
    // prefetcher follows; MR consecutive rows (one 4 KiB page a tile at k = 256) restart it
    // every tile. Each row is still one tile's row, its sums the same: the same bits.
    c.i32(0).set(quartered);
    if (tc) {
      c.i32(0).load('i32', CTRL.quarter * 4).get(aRs).get(k).i32(s.bytes).i32Mul().i32Eq().i32And().get(aKs).i32(s.bytes).i32Eq().i32And()
        .get(r1).get(r0).i32Sub().i32(2 * s.mr).i32GeS().i32And().set(quartered);
      c.get(r1).get(r0).i32Sub().i32(s.mr).i32DivU().set(quarter);
      c.get(quartered).if(() => countIn(c, CTRL.quartered, shared));
    }
    c.forRange(jp, p0, p1, 1, () => {
      c.get(jp).i32(NR).i32Mul().set(j0);
      // cols = min(8, n - j0)
      c.get(n).get(j0).i32Sub().i32(NR).get(n).get(j0).i32Sub().i32(NR).i32LtS().select().set(cols);
      c.get(bPtr).get(sBp).get(sBj).get(j0).get(cols).get(k).get(scratch).call(pack);
      c.get(cols).i32(NR / 2).i32LeS().set(narrow);
      // A partial panel of gemmT_f32 with A row-major (aKs one element) runs its whole row
      // tiles (if it has any) on a tail tile where the control block's tail word has the bit of
      // its column count; only then is it counted.
      c.i32(0).set(tailOn);
      if (tails.length > 0) {
        c.get(cols).i32(NR).i32LtS().get(aKs).i32(s.bytes).i32Eq().i32And().get(aRs).i32Eqz().i32Eqz().i32And()
          .get(r1).get(r0).i32Sub().i32(s.mr).i32GeS().i32And()
          .i32(0).load('i32', CTRL.tail * 4).get(cols).i32ShrU().i32(1).i32And().i32And().set(tailOn);
        c.get(tailOn).if(() => countIn(c, CTRL.tailPanels, shared));
      }
      // The backward's layout (A's rows one element apart, not packed), with at least one column
      // tail tile's rows: MR << narrow, i.e. colTailVecs(cols) vectors of lanes.
      c.i32(0).set(colTail);
      if (colTails.length > 0) {
        c.get(cols).i32(NR).i32LtS().get(uniformRows).i32And().get(aRs).i32(s.bytes).i32Eq().i32And().get(aKs).i32(s.bytes).i32Ne().i32And()
          .get(r1).get(r0).i32Sub().i32(s.mr).get(narrow).i32Shl().i32GeS().i32And()
          .i32(0).load('i32', CTRL.colTail * 4).get(cols).i32ShrU().i32(1).i32And().i32And().set(colTail);
        c.get(colTail).if(() => countIn(c, CTRL.colTailPanels, shared));
      }
      c.i32(0).set(narrow8);
      if (tile8H >= 0) {
        c.get(narrow).get(tailOn).i32Eqz().i32And().get(colTail).i32Eqz().i32And().get(uniformRows).i32And().get(r1).get(r0).i32Sub().i32(2 * s.mr).i32GeS().i32And()
          .i32(0).load('i32', CTRL.narrow8 * 4).i32Eqz().i32Eqz().i32And().set(narrow8);
        c.get(narrow8).if(() => countIn(c, CTRL.narrowPanels, shared));
      }
      // C(i, j) at cPtr + i·ldc + j·bytes; transposed, at cPtr + j·ldc + i·bytes.
      if (tc) c.get(cPtr).get(j0).get(ldc).i32Mul().i32Add().set(cCol);
      else c.get(cPtr).get(j0).i32(s.bytes).i32Mul().i32Add().set(cCol);
      c.get(r0).set(i);
      // The next panel's B, touched a few cache lines after each tile so that its lines are
      // on their way while this panel computes (no prefetch instruction in wasm).
      c.i32(0).set(tLeft);
      c.get(jp).i32(1).i32Add().get(p1).i32LtS().get(k).i32(0).i32GtS().i32And().i32(0).load('i32', CTRL.touch * 4).i32Eqz().i32Eqz().i32And()
        .get(sBp).i32Eqz().i32Eqz().i32And().if(() => {
        c.get(bPtr).get(j0).i32(NR).i32Add().get(sBj).i32Mul().i32Add().set(tp);
        c.get(n).get(j0).i32Sub().i32(NR).i32Sub().set(nextCols);
        c.get(nextCols).i32(NR).get(nextCols).i32(NR).i32LtS().select().set(nextCols);
        c.get(sBp).i32(s.bytes).i32Eq().if(() => {
          c.i32(64).set(tStep);
          // Rows j0 + 8 … of a transposed B: (cols − 1) row strides plus one row of k, in lines.
          c.get(nextCols).i32(1).i32Sub().get(sBj).i32Mul().get(k).i32(s.bytes).i32Mul().i32Add().i32(63).i32Add().i32(6).i32ShrU().set(tLeft);
        }, () => {
          c.get(sBj).i32(s.bytes).i32Eq().if(() => { c.get(sBp).set(tStep); c.get(k).set(tLeft); });
        });
        // Per whole tile: ceil(tLeft / tiles), tiles = max(1, (r1 − r0) / MR), so that the
        // panel's whole tiles touch all of the next panel.
        c.get(r1).get(r0).i32Sub().i32(s.mr).i32DivU().tee(per).get(per).i32Eqz().i32Add().set(per);
        c.get(tLeft).get(per).i32Add().i32(1).i32Sub().get(per).i32DivU().set(per);
      });
      // A whole tile from row i, its rows aRs apart in A and cRs apart in C (transposed).
      const wholeTile = (aRsOf: () => void, cRsOf: (() => void) | null) => {
        const padded = () => callTile(tile, tileH, () => {
          c.get(aPtr).get(i).get(rowBytes).i32Mul().i32Add(); aRsOf(); c.get(aKs).get(scratch);
          tileC(cRsOf);
        });
        if (tails.length === 0) { padded(); return; }
        c.get(tailOn).if(() => {
          tails.forEach((fn, j) => c.get(cols).i32(j + 1).i32Eq().if(() => {
            c.get(aPtr).get(i).get(rowBytes).i32Mul().i32Add(); aRsOf(); c.get(scratch);
            c.get(cCol).get(i).i32(s.bytes).i32Mul().i32Add().get(ldc).get(k);
            if (cRsOf) cRsOf(); else c.i32(s.bytes);
            c.call(fn);
          }));
        }, padded);
      };
      // A narrow panel's rows on 2·MR-row tiles first: quartered, tile t takes rows t + u·Q8
      // (u = 0 … 2·MR − 1, Q8 = (r1 − r0) / (2·MR)); else 2·MR consecutive rows a tile.
      const narrowTiles = () => {
        const tile8 = (rowStride: () => void, cRsOf: () => void) => {
          c.get(aPtr).get(i).get(rowBytes).i32Mul().i32Add(); rowStride(); c.get(aKs).get(scratch);
          c.get(cCol).get(i).i32(s.bytes).i32Mul().i32Add().get(ldc).get(k).get(cols); cRsOf();
          c.call(tile8H);
        };
        c.get(quartered).if(() => {
          c.get(r1).get(r0).i32Sub().i32(2 * s.mr).i32DivU().set(q8);
          c.get(r0).get(q8).i32Add().set(tEnd);
          c.forRange(t, r0, tEnd, 1, () => {
            c.get(t).set(i);
            tile8(() => c.get(q8).get(rowBytes).i32Mul(), () => c.get(q8).i32(s.bytes).i32Mul());
          });
          c.get(r0).get(q8).i32(2 * s.mr).i32Mul().i32Add().set(i);
        }, () => {
          c.block(() => c.loop(() => {
            c.get(r1).get(i).i32Sub().i32(2 * s.mr).i32LtS().brIf(1);
            tile8(() => c.get(aRs), () => c.i32(s.bytes));
            c.get(i).i32(2 * s.mr).i32Add().set(i).br(0);
          }));
        });
      };
      if (tile8H >= 0) c.get(narrow8).if(narrowTiles);
      if (colTails.length > 0) {
        c.get(colTail).if(() => {
          colTails.forEach((fn, j) => c.get(cols).i32(j + 1).i32Eq().if(() => {
            const rows = colTailVecs(j + 1) * s.lanes;
            c.block(() => c.loop(() => {
              c.get(r1).get(i).i32Sub().i32(rows).i32LtS().brIf(1);
              c.get(aPtr).get(i).i32(s.bytes).i32Mul().i32Add().get(aKs).get(scratch);
              c.get(cCol).get(i).i32(s.bytes).i32Mul().i32Add().get(ldc).get(k);
              c.call(fn);
              c.get(i).i32(rows).i32Add().set(i).br(0);
            }));
          }));
        });
      }
      if (tc) {
        c.get(quartered).get(narrow8).i32Eqz().i32And().if(() => {
          c.get(r0).get(quarter).i32Add().set(tEnd);
          c.forRange(t, r0, tEnd, 1, () => {
            c.get(t).set(i);
            wholeTile(() => c.get(quarter).get(rowBytes).i32Mul(), () => c.get(quarter).i32(s.bytes).i32Mul());
          });
          c.get(r0).get(quarter).i32(s.mr).i32Mul().i32Add().set(i);
        });
      }
      c.block(() => c.loop(() => {
        c.get(i).get(lastTile).i32GtS().brIf(1);
        wholeTile(() => c.get(aRs), null);
        c.i32(0).set(q);
        c.block(() => c.loop(() => {
          c.get(q).get(per).i32GeS().get(tLeft).i32Eqz().i32Or().brIf(1);
          c.get(sink).get(tp).load('i32').i32Xor().set(sink);
          c.get(tp).get(tStep).i32Add().set(tp);
          c.get(tLeft).i32(1).i32Sub().set(tLeft);
          c.get(q).i32(1).i32Add().set(q).br(0);
        }));
        c.get(i).i32(s.mr).i32Add().set(i).br(0);
      }));
      // The last rows from a panel start: the widest tile that fits (2 … MR−1 rows).
      for (let rows = s.mr - 1; rows >= 2; rows--) {
        c.get(r1).get(i).i32Sub().i32(rows).i32GeS().get(i).i32(s.mr - 1).i32And().i32Eqz().i32And().if(() => {
          callTile(tiles[rows - 2]!, tilesH[rows - 2]!, () => {
            c.get(aPtr).get(i).get(rowBytes).i32Mul().i32Add().get(aRs).get(aKs).get(scratch);
            tileC();
          });
          c.get(i).i32(rows).i32Add().set(i);
        });
      }
      c.block(() => c.loop(() => {
        c.get(i).get(r1).i32GeS().brIf(1);
        // Row i of A: its panel's start (i rounded down to MR) plus (i mod MR) rows in it.
        callTile(tile1, tile1H, () => {
          c.get(aPtr).get(i).get(i).i32(s.mr - 1).i32And().tee(rem).i32Sub().get(rowBytes).i32Mul().i32Add();
          c.get(rem).get(aStep).i32Mul().i32Add();
          c.get(aRs).get(aKs).get(scratch);
          tileC();
        });
        c.get(i).i32(1).i32Add().set(i).br(0);
      }));
    });
    // The touches' sink, kept (a load whose value is dropped could be removed) in the panel
    // scratch, which is this call's own and free now (k > 0: it has room).
    c.get(k).if(() => { c.get(scratch).get(sink).store('i32'); });
  });
}

/**
 * gemmW(aPtr, aKs, bPtr, sBp, cPtr, ldc, n, k, r0, r1): the weight gradient Aᵀ·B of a short
 * segment (k of its rows, at most wasm-matmul.ts SHORT_SUMS: an MoE expert's 8–32 at
 * E = 64–256), C rows r0 … r1 − 1 and all its
 * n columns (whole panels). With so short a sum the general gemm's costs around each tile
 * (packing B's panel, the driver's loop and the call, 20–30% of a tile of 8 steps) outweigh
 * the tile. Here B is read in place (a segment's k rows, an L1's worth at k = 8, 2 KiB a row),
 * the tile's body is inlined, and each tile of MR rows sweeps every panel before the next, so
 * that C is written a whole row block at a time. Each element is still summed p = 0, 1, … in
 * order from +0, one multiply and one add a step: the bits of gemm.
 */
function emitGemmW(mod: ModuleBuilder, s: Spec, name: string): number {
  const { bytes, vn, mr } = s;
  return mod.func(name, Array<'i32'>(10).fill('i32'), [], (c, aPtr, aKs, bPtr, sBp, cPtr, ldc, n, k, r0, r1) => {
    const i = c.local('i32'), j = c.local('i32'), p = c.local('i32'), a = c.local('i32'), bRow = c.local('i32'), tp = c.local('i32');
    const cRow = c.local('i32'), rowEnd = c.local('i32'), colBytes = c.local('i32');
    const acc = Array.from({ length: mr }, () => Array.from({ length: vn }, () => c.local('v128')));
    const bv = Array.from({ length: vn }, () => c.local('v128'));
    const x = c.local('v128'), zero = c.local('v128');
    c.get(n).i32(bytes).i32Mul().set(colBytes);
    // Tiles of `rows` rows from row i, every panel (j the panel's byte offset in a row).
    const tiles = (rows: number, gathered: boolean) => {
      c.forRange(j, 0, colBytes, NR * bytes, () => {
        for (let r = 0; r < rows; r++) for (let v = 0; v < vn; v++) c.get(zero).set(acc[r]![v]!);
        c.get(aPtr).get(i).i32(bytes).i32Mul().i32Add().set(a);
        if (gathered) c.get(bPtr).set(tp); else c.get(bPtr).get(j).i32Add().set(bRow);
        c.forRange(p, 0, k, 1, () => {
          if (gathered) { c.get(tp).load('i32').get(j).i32Add().set(bRow); c.get(tp).i32(4).i32Add().set(tp); }
          for (let v = 0; v < vn; v++) c.get(bRow).v128Load(16 * v).set(bv[v]!);
          for (let r = 0; r < rows; r++) {
            c.get(a); if (s.t === 'f32') c.v128Load32Splat(r * bytes); else c.v128Load64Splat(r * bytes);
            c.set(x);
            for (let v = 0; v < vn; v++) madd(c, s, acc[r]![v]!, x, bv[v]!);
          }
          c.get(a).get(aKs).i32Add().set(a);
          if (!gathered) c.get(bRow).get(sBp).i32Add().set(bRow);
        });
        c.get(cPtr).get(i).get(ldc).i32Mul().i32Add().get(j).i32Add().set(cRow);
        for (let r = 0; r < rows; r++) {
          for (let v = 0; v < vn; v++) c.get(cRow).get(acc[r]![v]!).v128Store(16 * v);
          if (r + 1 < rows) c.get(cRow).get(ldc).i32Add().set(cRow);
        }
      });
    };
    const all = (gathered: boolean) => {
      c.get(r0).set(i);
      c.get(r1).i32(mr - 1).i32Sub().set(rowEnd);
      c.block(() => c.loop(() => {
        c.get(i).get(rowEnd).i32GeS().brIf(1);
        tiles(mr, gathered);
        c.get(i).i32(mr).i32Add().set(i).br(0);
      }));
      c.block(() => c.loop(() => {
        c.get(i).get(r1).i32GeS().brIf(1);
        tiles(1, gathered);
        c.get(i).i32(1).i32Add().set(i).br(0);
      }));
    };
    c.get(sBp).i32Eqz().if(() => all(true), () => all(false));
  });
}

/**
 * Runs one chunk table entry that is not a sequence (word 14: 0 a float32 product, 1 a
 * float64 one, TABLE_T32 / TABLE_T64 one on gemmT, TABLE_W32 / TABLE_W64 one on gemmW,
 * TABLE_MATH a piece of a math-module kernel) on `thread`'s B-panel scratch.
 */
function emitEntry(mod: ModuleBuilder, gemms: Gemms, chunk: number): number {
  return mod.func(null, ['i32', 'i32'], [], (c, entry, thread) => {
    const ctrl = (word: number) => c.i32(0).load('i32', word * 4);
    const kind = c.local('i32');
    const args = () => {
      for (let word = 0; word < 14; word++) c.get(entry).load('i32', word * 4);
      ctrl(CTRL.scratch); c.get(thread); ctrl(CTRL.scratchStride); c.i32Mul().i32Add();
    };
    const call = (f: number) => { args(); c.call(f); };
    c.get(entry).load('i32', 14 * 4).set(kind);
    // A weight gradient over a short segment: words 0 … 7, then its rows (words 12, 13).
    c.get(kind).i32(TABLE_W32).i32Eq().get(kind).i32(TABLE_W64).i32Eq().i32Or();
    c.if(() => {
      const w = (f: number) => { for (let word = 0; word < 8; word++) c.get(entry).load('i32', word * 4); c.get(entry).load('i32', 12 * 4).get(entry).load('i32', 13 * 4).call(f); };
      c.get(kind).i32(TABLE_W64).i32Eq();
      c.if(() => w(gemms.w64), () => w(gemms.w32));
      c.return();
    });
    c.get(kind).i32(TABLE_MATH).i32Eq();
    c.if(() => { c.get(entry).call(chunk); }, () => {
      c.get(kind).i32(TABLE_T32).i32Eq();
      c.if(() => call(gemms.t32), () => {
        c.get(kind).i32(TABLE_T64).i32Eq();
        c.if(() => call(gemms.t64), () => {
          c.get(kind);
          c.if(() => call(gemms.g64), () => call(gemms.g32));
        });
      });
    });
  });
}

/** The gemm variants a chunk table entry may name (word 14). */
interface Gemms { g32: number; g64: number; t32: number; t64: number; w32: number; w64: number }

/** The chunk loop threads share (see thread-pool.ts for the protocol's reasoning). */
function emitWork(mod: ModuleBuilder, gemms: Gemms, chunk: number): number {
  const w = (word: number) => word * 4;
  const { g32: gemm32, g64: gemm64 } = gemms;
  const runEntry = emitEntry(mod, gemms, chunk);
  return mod.func('work', ['i32', 'i32'], [], (c, gen, thread) => {
    const v = c.local('i32'), idx = c.local('i32'), group = c.local('i32'), block = c.local('i32');
    const p0 = c.local('i32'), p1 = c.local('i32'), r0 = c.local('i32'), r1 = c.local('i32'), entry = c.local('i32');
    const step = c.local('i32'), steps = c.local('i32');
    const ctrl = (word: number) => c.i32(0).load('i32', w(word));
    c.block(() => c.loop(() => {
      c.i32(0).i32AtomicLoad(w(CTRL.claim)).tee(v).i32(16).i32ShrU().get(gen).i32Ne().brIf(1);
      c.get(v).i32(0xffff).i32And().tee(idx);
      c.i32(0).i32AtomicLoad(w(CTRL.total)).i32GeU().brIf(1);
      // Claim chunk idx only if nobody moved the counter since we read it.
      c.i32(0).get(v).get(v).i32(1).i32Add().i32AtomicCmpxchg(w(CTRL.claim)).get(v).i32Ne().brIf(0);
      // A grouped job: the chunk's arguments are its table entry.
      ctrl(CTRL.table);
      c.if(() => {
        c.get(idx).i32(TABLE_WORDS * 4).i32Mul(); ctrl(CTRL.table); c.i32Add().set(entry);
        // A sequence: words 0 and 1 the address and count of entries this thread runs in order.
        c.get(entry).load('i32', 14 * 4).i32(TABLE_SEQ).i32Eq();
        c.if(() => {
          c.get(entry).load('i32', 4).set(steps);
          c.get(entry).load('i32', 0).set(entry);
          c.forRange(step, 0, steps, 1, () => {
            c.get(entry).get(step).i32(TABLE_WORDS * 4).i32Mul().i32Add().get(thread).call(runEntry);
          });
        }, () => { c.get(entry).get(thread).call(runEntry); });
      }, () => {
      c.get(idx); ctrl(CTRL.groups); c.i32RemU().set(group);
      c.get(idx); ctrl(CTRL.groups); c.i32DivU().set(block);
      c.get(group); ctrl(CTRL.groupPanels); c.i32Mul().set(p0);
      // p1 = min(p0 + groupPanels, panels), r1 = min(r0 + blockRows, m)
      c.get(p0); ctrl(CTRL.groupPanels); c.i32Add().set(p1);
      c.get(p1); ctrl(CTRL.panels); c.get(p1); ctrl(CTRL.panels); c.i32LtS().select().set(p1);
      c.get(block); ctrl(CTRL.blockRows); c.i32Mul().set(r0);
      c.get(r0); ctrl(CTRL.blockRows); c.i32Add().set(r1);
      c.get(r1); ctrl(CTRL.m); c.get(r1); ctrl(CTRL.m); c.i32LtS().select().set(r1);
      // A block sees none of the operand stack outside it: each branch pushes the arguments.
      const args = () => {
        for (const word of [CTRL.aPtr, CTRL.aRs, CTRL.aKs, CTRL.bPtr, CTRL.sBp, CTRL.sBj, CTRL.cPtr, CTRL.ldc, CTRL.n, CTRL.k]) ctrl(word);
        c.get(p0).get(p1).get(r0).get(r1);
        ctrl(CTRL.scratch); c.get(thread); ctrl(CTRL.scratchStride); c.i32Mul().i32Add();
      };
      ctrl(CTRL.dtype);
      c.if(() => { args(); c.call(gemm64); }, () => { args(); c.call(gemm32); });
      });
      c.get(thread).i32(4).i32Mul().i32(1).i32AtomicAdd(w(CTRL.chunksBy)).drop();
      // The last chunk wakes the main thread if it sleeps waiting for it.
      c.i32(0).i32(1).i32AtomicAdd(w(CTRL.finished)).i32(1).i32Add();
      c.i32(0).i32AtomicLoad(w(CTRL.total)).i32Eq();
      c.if(() => c.i32(0).i32(1).atomicNotify(w(CTRL.finished)).drop());
      c.br(0);
    }));
  });
}

/** A worker thread's loop: poll seq `spin` times, then sleep on it; on a new job, work. */
function emitWorker(mod: ModuleBuilder, work: number): number {
  const seqAddr = CTRL.seq * 4;
  return mod.func('worker', ['i32'], [], (c, thread) => {
    const seen = c.local('i32'), s = c.local('i32'), spins = c.local('i32');
    c.i32(0).i32AtomicLoad(seqAddr).set(seen);
    const inJobs = () => { c.get(thread); c.i32(0).load('i32', CTRL.active * 4); c.i32LtS(); };
    c.loop(() => {
      // A worker outside the active count goes straight to sleep; an active one polls first.
      c.i32(0).load('i32', CTRL.spin * 4).i32(0);
      inJobs();
      c.select().set(spins);
      c.block(() => c.loop(() => {
        c.i32(0).i32AtomicLoad(seqAddr).tee(s).get(seen).i32Ne().brIf(1);
        c.get(spins).i32Eqz();
        c.if(() => {
          c.i32(0).get(seen).i64(-1n).atomicWait32(seqAddr).drop();
        }, () => {
          c.get(spins).i32(1).i32Sub().set(spins);
        });
        c.br(0);
      }));
      c.get(s).set(seen);
      c.get(thread); c.i32(0).load('i32', CTRL.alive * 4); c.i32GeS();
      c.if(() => c.return());
      inJobs();
      c.if(() => c.get(s).i32(0x7fff).i32And().get(thread).call(work));
      c.br(0);
    });
  });
}

/** The module's bytes: kernels for both dtypes, plus the thread entry points when `threads`. */
export function gemmModuleBytes(memory: { shared: boolean; initialPages: number; maximumPages: number }, threads: boolean): Uint8Array {
  const mod = new ModuleBuilder(memory);
  // With threads, a job's chunk may be a piece of a math-module kernel: `env.chunk` is that
  // module's dispatcher (math-module.ts), instantiated over the same memory in every thread.
  const chunk = threads ? mod.importFunc('chunk', ['i32'], []) : -1;
  const f32 = specOf('float32'), f64 = specOf('float64');
  emitPackAT(mod, f32, 'packAT_f32');
  emitPackAT(mod, f64, 'packAT_f64');
  emitAddRows(mod, f32, 'addRows_f32');
  emitAddRows(mod, f64, 'addRows_f64');
  emitColSums(mod, f32, 'colSums_f32');
  emitColSums(mod, f64, 'colSums_f64');
  mod.func('zero', ['i32', 'i32'], [], (c, ptr, bytes) => { c.get(ptr).i32(0).get(bytes).memoryFill(); });
  mod.func('copy', ['i32', 'i32', 'i32'], [], (c, dst, src, bytes) => { c.get(dst).get(src).get(bytes).memoryCopy(); });
  const pack32 = emitPackPanel(mod, f32), pack64 = emitPackPanel(mod, f64);
  const gemms: Gemms = {
    g32: emitGemm(mod, f32, 'gemm_f32', pack32), g64: emitGemm(mod, f64, 'gemm_f64', pack64),
    t32: emitGemm(mod, f32, 'gemmT_f32', pack32, true, memory.shared), t64: emitGemm(mod, f64, 'gemmT_f64', pack64, true, memory.shared),
    w32: emitGemmW(mod, f32, 'gemmW_f32'), w64: emitGemmW(mod, f64, 'gemmW_f64'),
  };
  if (threads) emitWorker(mod, emitWork(mod, gemms, chunk));
  return mod.bytes();
}
