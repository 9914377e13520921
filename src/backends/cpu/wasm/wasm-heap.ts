// The allocator of the SIMD kernels' WebAssembly memory: the products' scratch, the
// resident-weights arena and — where the memory is shared — the CPU backend's larger tensors.
//
// Why tensors live here: a product whose operands and result are ordinary typed arrays copies
// them in and the result out (wasm-matmul.ts). At an MoE step (T 1024, d 256, E 16) that was
// about 12M floats a step, 3–4 ms, and the experts' weight gradients alone (E× the dense
// block's) were copied out of the memory they were computed in. A tensor allocated here is a
// view on the memory itself: the kernels read it and write it in place.
//
// Only a shared memory can hold tensors: growing a non-shared WebAssembly.Memory detaches its
// ArrayBuffer (every view on it would read as empty), while a shared one keeps its old
// SharedArrayBuffer objects valid over the same bytes. Where the memory is not shared (a
// browser page without cross-origin isolation), the heap serves the kernels' own regions only.
//
// Blocks come in BufferPool's size classes (four per power of two) and freed ones wait on a
// list per class for the next block of that class; a wasm memory cannot shrink, so the memory
// stays at the peak of the blocks live at once, class by class (as the pool's cache does).
// Address 0 holds the threads' control block, below the first block.

import type { DType, TypedArray } from '../../../core/dtype.js';
import type { WasmMemory } from './wasm-api.js';
import { sizeClass } from '../pool.js';

const PAGE = 65536;
/** Every block starts on a cache line. */
const ALIGN = 64;

/**
 * The block size serving `bytes`: the pool's size class (pool.ts sizeClass) rounded up to
 * whole cache lines, so that every block, laid end to end, starts on one.
 */
export function blockClass(bytes: number): number {
  return Math.ceil(sizeClass(Math.max(ALIGN, bytes)) / ALIGN) * ALIGN;
}

/**
 * One block with room for the most bytes asked of it so far (a kernel's scratch or staging
 * area): a larger request releases it and takes a bigger one elsewhere.
 */
export class ScratchBlock {
  /** Its address (-1: none yet, or the memory could not hold the last request). */
  ptr = -1;
  private bytes = 0;
  constructor(private readonly heap: WasmHeap) {}

  /** The block's address with room for `bytes`, or -1 where the memory cannot hold it. */
  at(bytes: number): number {
    if (bytes <= this.bytes) return this.ptr;
    if (this.ptr >= 0) this.heap.release(this.ptr);
    this.ptr = this.heap.alloc(bytes);
    this.bytes = this.ptr < 0 ? 0 : blockClass(bytes);
    return this.ptr;
  }
}

export class WasmHeap {
  /** The next unallocated byte. */
  private top: number;
  private readonly freeLists = new Map<number, number[]>();
  /** The class of every block handed out and not yet released, by address. */
  private readonly live = new Map<number, number>();
  /** The byte length of the array place() put on a block, by address (blocks alloc() gave out directly have none). */
  private readonly placed = new Map<number, number>();
  /** Every buffer object the memory has had (a shared memory's grows give new ones over the same bytes). */
  private readonly buffers = new WeakSet<object>();
  private current: ArrayBuffer | SharedArrayBuffer | null = null;
  private views: { f32: Float32Array; f64: Float64Array } | null = null;
  /** Bytes in blocks handed out and not released / waiting on the free lists. */
  liveBytes = 0;
  freeBytes = 0;

  constructor(
    readonly memory: WasmMemory,
    /** The first address blocks may use (above the control block). */
    base: number,
    private readonly maxPages: number,
    /** Zeroes bytes in place (a wasm memory.fill). */
    readonly zero: (ptr: number, bytes: number) => void,
  ) {
    this.top = Math.ceil(base / ALIGN) * ALIGN;
    this.buffer();
  }

  /** Whether the memory is shared, so that tensors may live in it. */
  get shared(): boolean { return typeof SharedArrayBuffer !== 'undefined' && this.memory.buffer instanceof SharedArrayBuffer; }

  /** Bytes the memory spans. */
  get memoryBytes(): number { return this.memory.buffer.byteLength; }

  /** The memory's current buffer (remembered, so that views on it are recognised after a grow). */
  buffer(): ArrayBuffer | SharedArrayBuffer {
    const b = this.memory.buffer;
    if (b !== this.current) {
      this.current = b;
      this.buffers.add(b);
      this.views = null;
    }
    return b;
  }

  /** float32 and float64 views of the whole memory as it is now. */
  f32(): Float32Array { return this.wholeViews().f32; }
  f64(): Float64Array { return this.wholeViews().f64; }
  private wholeViews(): { f32: Float32Array; f64: Float64Array } {
    const b = this.buffer(); // drops the views of a buffer the memory has grown past
    return (this.views ??= { f32: new Float32Array(b), f64: new Float64Array(b) });
  }

  /** The address of a block of at least `bytes` bytes, or -1 where the memory cannot grow to hold it (below `limit` bytes of memory). */
  alloc(bytes: number, limit = this.maxPages * PAGE): number {
    const cls = blockClass(bytes);
    const list = this.freeLists.get(cls);
    let ptr = list !== undefined && list.length > 0 ? list.pop()! : -1;
    if (ptr >= 0) {
      this.freeBytes -= cls;
    } else {
      if (this.top + cls > Math.min(limit, this.maxPages * PAGE)) return -1;
      const have = this.memory.buffer.byteLength;
      if (this.top + cls > have) this.memory.grow(Math.ceil((this.top + cls - have) / PAGE));
      ptr = this.top;
      this.top += cls;
    }
    this.live.set(ptr, cls);
    this.liveBytes += cls;
    return ptr;
  }

  /** Returns a block to its class's list. Releasing an address not handed out is an error (a double free would hand a block out twice). */
  release(ptr: number): void {
    const cls = this.live.get(ptr);
    if (cls === undefined) throw new Error(`wasm heap: release of ${ptr}, which is not a live block`);
    this.live.delete(ptr);
    this.placed.delete(ptr);
    this.liveBytes -= cls;
    this.freeBytes += cls;
    let list = this.freeLists.get(cls);
    if (list === undefined) this.freeLists.set(cls, (list = []));
    list.push(ptr);
  }

  /**
   * A typed array of `size` elements on a block of its own, or null where the memory cannot
   * grow below `limit` bytes. Give it back with free(); one never given back (a tensor left to
   * the garbage collector) returns its block when it is collected.
   */
  place(dtype: DType, size: number, limit: number): TypedArray | null {
    const ptr = this.alloc(size * (dtype === 'float64' ? 8 : 4), limit);
    if (ptr < 0) return null;
    const values = this.view(dtype, ptr, size);
    this.placed.set(ptr, values.byteLength);
    this.finalizer.register(values, ptr, values);
    return values;
  }

  /** Returns a placed array's block (the caller guarantees nothing else refers to it). */
  free(values: TypedArray): void {
    this.finalizer.unregister(values);
    this.release(values.byteOffset);
  }

  private readonly finalizer = new FinalizationRegistry<number>((ptr) => this.release(ptr));

  /** A typed array of `size` elements on the block at ptr. */
  view(dtype: DType, ptr: number, size: number): TypedArray {
    const b = this.buffer();
    switch (dtype) {
      case 'float32': return new Float32Array(b, ptr, size);
      case 'float64': return new Float64Array(b, ptr, size);
      case 'int32': return new Int32Array(b, ptr, size);
    }
  }

  /** The byte address of an array that is a view on this memory, else -1 (an ordinary array). */
  addressOf(values: TypedArray): number {
    return this.buffers.has(values.buffer) ? values.byteOffset : -1;
  }

  /**
   * Whether `values` is an array place() made, whole (what the pool gives back, and a result a
   * kernel may write past its end up to its block's end): not a shorter view of its start.
   */
  isBlock(values: TypedArray): boolean {
    return this.buffers.has(values.buffer) && this.placed.get(values.byteOffset) === values.byteLength;
  }
}
