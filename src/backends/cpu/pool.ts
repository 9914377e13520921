// A caching allocator for the CPU backend's arrays, in the spirit of PyTorch's CUDA caching
// allocator: the buffer of a freed tensor is kept, by size class, and handed out again
// (zeroed) for a later result of about the same size.
//
// Why: without it every op result is a new ArrayBuffer, and V8 counts ArrayBuffers as
// external memory: an MoE training step with 256 experts allocates ~600 MB of results and
// gradients, which triggered a full or young-generation collection every ~15 ms ("external
// memory pressure", ~4% of the step) on top of calloc's zeroing of fresh pages.
//
// Small arrays go through it too: a training step of the default `mixtape compare` model
// (d = 32) makes thousands of results of 0.1–16 KB, and caching them made that step 8–15%
// faster than leaving everything under 16 KB to V8 (alternating A/B in one process).
// Bounds: arrays under MIN_BYTES (V8 keeps typed arrays up to 64 bytes on its own heap,
// where they cost next to nothing) are left to V8; the CPU backend lets the cache hold up to
// twice the peak of live tensor bytes seen so far, so process memory stays under three times
// the peak; empty() releases it all. Twice, not once: an MoE step (T 1024, d 256, E 4) frees
// its largest buffers late in backward, when a cache capped at the peak was full of other
// size classes, and the next forward took ~8 fresh buffers per step whose first touch
// (the kernel zeroing fresh pages) cost a quarter of the step: 114 → 90 ms with twice. Buffers are rounded up to four size classes per power
// of two (at most 25% slack) so that results whose row count varies from step to step, as
// an expert's does, still find a buffer.
//
// Float arrays of HEAP_MIN_BYTES and more go to the SIMD engine's shared WebAssembly memory
// instead, where there is one (wasm/wasm-heap.ts: the same size classes, a free list each):
// the products read and write them there in place. At an MoE step (T 1024, d 256, E 16, one
// thread) MoE/dense went from 1.131–1.145 to 1.101–1.118 (BENCHMARKS.md, 2026-12-04).

import { allocate, bytesPerElement, type DType, type TypedArray } from '../../core/dtype.js';
import type { WasmHeap } from './wasm/wasm-heap.js';

const MIN_BYTES = 64;
/**
 * Float arrays from this size up live in the SIMD kernels' shared memory when there is one
 * (wasm/wasm-heap.ts): the products read and write them in place instead of copying. Smaller
 * ones cost more to track (a finalizer each) than their copies cost.
 */
export const HEAP_MIN_BYTES = 16384;
/** Tensors may fill the shared memory up to here; the rest of its 2 GiB is the products' scratch. */
export const HEAP_TENSOR_LIMIT = 1.5 * 2 ** 30;

/** The buffer size serving `bytes`: the next of 4, 5, 6, 7 × 2ⁿ⁻² at or above it. */
export function sizeClass(bytes: number): number {
  // Every take and give asks this: an integer's leading zeros give ⌊log₂⌋ without Math.log2
  // (in a profile of `mixtape train --model rmoe`, 2.4% of the samples before, 1.8% after).
  if (bytes >= 16 && bytes < 2 ** 31 && bytes === Math.floor(bytes)) {
    const shift = 29 - Math.clz32(bytes), quarter = 2 ** shift;
    return ((bytes + quarter - 1) >>> shift) * quarter;
  }
  const quarter = 2 ** (Math.floor(Math.log2(bytes)) - 2);
  return Math.ceil(bytes / quarter) * quarter;
}

function view(dtype: DType, buffer: ArrayBuffer, size: number): TypedArray {
  switch (dtype) {
    case 'float32': return new Float32Array(buffer, 0, size);
    case 'float64': return new Float64Array(buffer, 0, size);
    case 'int32': return new Int32Array(buffer, 0, size);
  }
}

/** A deferred gather (BufferPool.gathers): its rows are src's rows index[i]; fill copies them. */
export interface DeferredRows { readonly src: TypedArray; readonly index: Int32Array; readonly fill: () => void }

export class BufferPool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  /** Bytes held for reuse (not in any tensor). */
  cachedBytes = 0;
  /** The most the cache may hold: the backend raises it to twice its peak of live bytes. */
  limitBytes = 0;
  hits = 0;
  misses = 0;
  /** Arrays below this many bytes bypass the cache (tests lower it to put small tensors through it). */
  minBytes = MIN_BYTES;
  /**
   * Tests: fill every unzeroed buffer handed out with NaN, so that a kernel that claims to write
   * every element of its result but does not shows up as NaN instead of stale numbers.
   */
  poison = false;
  /**
   * Where float arrays of at least heapMinBytes go: the SIMD kernels' shared memory, asked for
   * when first needed (null: none here, SIMD off, or not shared), so that a program that never
   * makes a large tensor starts no wasm module.
   */
  heapSource: (() => WasmHeap | null) | null = null;
  heapMinBytes = HEAP_MIN_BYTES;
  /** The memories arrays were placed in (one, unless several CPU backends were made). */
  private readonly heaps = new Set<WasmHeap>();
  /** The shared memory arrays were last placed in, or null (none yet). */
  heap: WasmHeap | null = null;
  /** Arrays placed in / given back to the shared memory. */
  heapTakes = 0;
  heapGives = 0;
  /**
   * A job left running on the SIMD engine's threads (a weight gradient of an overlapped
   * backward, register.ts): its results, which a read or a free must wait for (settle), and its
   * operands, held here so that no collection frees their blocks. Until it is joined, blocks
   * of the shared memory given back wait in `deferred`: the job may still be reading one.
   */
  pending: { outputs: ReadonlySet<TypedArray>; operands: readonly TypedArray[]; join: () => void } | null = null;
  private deferred: TypedArray[] = [];

  /** Waits for the job left running, if any (it then calls finished()). */
  settle(): void { this.pending?.join(); }

  /**
   * Results of indexSelect whose rows are not copied yet (register.ts): the MoE's dispatched
   * rows, which its experts' grouped products read where they lie in src (WasmMatmul.grouped's
   * `indexed`), forward and backward, so that the copy is never made. Anything else that reads
   * such an array (the backend's `data`, readSync) makes the copy first, with `fill`; so does
   * freeing src. The values are the same either way. Weak both ways: a result left to the
   * garbage collector undisposed takes its entry (and its hold on src) with it, so its block
   * still goes back through the heap's FinalizationRegistry.
   */
  readonly gathers = new WeakMap<TypedArray, DeferredRows>();
  /** Deferred gathers registered and not yet copied, freed or collected (0: data() and give() skip the lookup). */
  deferredLive = 0;
  /** A deferred gather's result collected undisposed leaves the count here. */
  private readonly collected = new FinalizationRegistry<null>(() => { this.deferredLive--; });
  /** Each src of a deferred gather, with the results that read it. */
  private readonly gatherSources = new WeakMap<TypedArray, Set<WeakRef<TypedArray>>>();
  /** Gathers deferred, and those then copied after all (observability and tests). */
  gathersDeferred = 0;
  gathersFilled = 0;

  /** Registers out as src's rows `index`, to be copied by `fill` when first read. */
  deferRows(out: TypedArray, rows: DeferredRows): void {
    this.gathers.set(out, rows);
    let outs = this.gatherSources.get(rows.src);
    if (outs === undefined) this.gatherSources.set(rows.src, (outs = new Set()));
    outs.add(new WeakRef(out));
    this.collected.register(out, null, out);
    this.gathersDeferred++;
    this.deferredLive++;
  }

  /** Copies a deferred gather's rows into out now (nothing when out is not one). */
  fillRows(out: TypedArray): void {
    const rows = this.gathers.get(out);
    if (rows === undefined) return;
    rows.fill();
    this.forgetRows(out, rows);
    this.gathersFilled++;
  }

  private forgetRows(out: TypedArray, rows: DeferredRows): void {
    this.gathers.delete(out);
    this.collected.unregister(out);
    this.deferredLive--;
    const outs = this.gatherSources.get(rows.src);
    if (outs === undefined) return;
    for (const ref of outs) if (ref.deref() === out || ref.deref() === undefined) outs.delete(ref);
    if (outs.size === 0) this.gatherSources.delete(rows.src);
  }

  /** The job left running is done: its results may be read and the blocks given back meanwhile are free. */
  finished(): void {
    this.pending = null;
    for (const values of this.deferred.splice(0)) this.give(values);
  }

  /**
   * An array of `size` elements, on a cached buffer when one of its class is free. Zeroed
   * unless `zeroed` is false, for a kernel that writes every element itself.
   */
  take(dtype: DType, size: number, zeroed = true): TypedArray {
    const bytes = size * bytesPerElement(dtype);
    if (bytes < this.minBytes || bytes < 16) return allocate(dtype, size);
    if (bytes >= this.heapMinBytes && dtype !== 'int32') {
      const onHeap = this.takeOnHeap(dtype, size, bytes, zeroed);
      if (onHeap !== null) return onHeap;
    }
    const cls = sizeClass(bytes);
    const buffer = this.free.get(cls)?.pop();
    if (buffer === undefined) {
      this.misses++;
      const fresh = view(dtype, new ArrayBuffer(cls), size);
      if (!zeroed && this.poison) fresh.fill(dtype === 'int32' ? -123456789 : NaN);
      return fresh;
    }
    this.hits++;
    this.cachedBytes -= cls;
    const values = view(dtype, buffer, size);
    if (zeroed) values.fill(0);
    else if (this.poison) values.fill(dtype === 'int32' ? -123456789 : NaN);
    return values;
  }

  /**
   * Takes back the array of a freed tensor. The caller guarantees nothing else refers to its
   * buffer (the CPU backend owns every handle's array: uploads and readbacks copy).
   */
  give(values: TypedArray): void {
    if (this.deferredLive > 0) {
      // A deferred gather never read needs no copy; one whose src goes needs it now.
      const rows = this.gathers.get(values);
      if (rows !== undefined) this.forgetRows(values, rows);
      const outs = this.gatherSources.get(values);
      if (outs !== undefined) {
        for (const ref of [...outs]) {
          const out = ref.deref();
          if (out !== undefined) this.fillRows(out);
        }
        this.gatherSources.delete(values);
      }
    }
    // A result of the job left running, freed before it was read: the job may still write it
    // (a copy out when it is joined), so it is finished first. An ordinary array would
    // otherwise go back to the cache and be handed out again before that write.
    if (this.pending !== null && this.pending.outputs.has(values)) this.settle();
    // Checked before touching .buffer: V8 keeps small typed arrays on its heap and would
    // create an ArrayBuffer for them on that access.
    if (values.byteLength < this.minBytes || values.byteLength < 16) return;
    if (values.byteLength >= this.heapMinBytes && this.heaps.size > 0) {
      for (const heap of this.heaps) {
        if (heap.isBlock(values)) {
          if (this.pending !== null) { this.deferred.push(values); return; }
          heap.free(values);
          this.heapGives++;
          return;
        }
      }
    }
    const buffer = values.buffer as ArrayBuffer;
    const cls = buffer.byteLength;
    if (values.byteOffset !== 0 || sizeClass(cls) !== cls) return; // not one of ours
    if (this.cachedBytes + cls > this.limitBytes) return; // left to the garbage collector
    let list = this.free.get(cls);
    if (list === undefined) this.free.set(cls, (list = []));
    list.push(buffer);
    this.cachedBytes += cls;
  }

  /**
   * A block of the shared memory for an array, or null (no such memory, or it is full: the
   * array is an ordinary one, which the kernels copy). An array never given back (a tensor
   * left to the garbage collector) returns its block when it is collected.
   */
  private takeOnHeap(dtype: DType, size: number, bytes: number, zeroed: boolean): TypedArray | null {
    const heap = this.heapSource?.() ?? null;
    if (heap === null || !heap.shared) return null;
    const values = heap.place(dtype, size, HEAP_TENSOR_LIMIT);
    if (values === null) return null;
    this.heaps.add(heap);
    this.heap = heap;
    if (zeroed) heap.zero(values.byteOffset, bytes);
    else if (this.poison) values.fill(NaN);
    this.heapTakes++;
    return values;
  }

  /** Drops every cached buffer (the garbage collector frees them); blocks of the shared memory stay (it cannot shrink). */
  empty(): void {
    this.free.clear();
    this.cachedBytes = 0;
  }
}

/** The CPU backend's allocator, shared by its kernels and their scratch arrays. */
export const cpuPool = new BufferPool();
