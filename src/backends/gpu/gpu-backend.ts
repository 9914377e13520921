// The GPU backend: gpu.js kernels over tensors that stay on the device between ops.
//
// A handle owns one immutable gpu.js pipeline result (a GL texture in headlessgl/webgl2
// mode, a storage buffer in webgpu mode), freed when its reference count reaches zero.
// Kernels are compiled once per (op, shapes, attributes) and cached; after its first run
// each kernel's class is checked, so a silent gpu.js fallback to CPU code is an error.
// float32 only: int32 tensors are stored as floats, exact up to 2^24; float64 is refused.
//
// webgpu mode is asynchronous underneath (gpu.js builds kernels and reads back with
// promises): a handle then holds the promise of its buffer, kernels run as soon as their
// inputs exist, and only `await t.data()` reads back. The other modes are synchronous.

import type { DType, TypedArray } from '../../core/dtype.js';
import { sizeOf, shapeToString } from '../../core/shape.js';
import type { Backend, BackendInfo, CoreKernelName, FusedKernelName, Handle, KernelAttrs, KernelName, KernelTable, MemoryInfo, OutInfo, TensorInfo } from '../../core/backend.js';
import { KERNEL_CLASS, startDevice, type Device, type GpuJsKernel, type GpuMode } from './device.js';
import { intRange, type IntRange } from './int-range.js';
import { makeKernels } from './kernels.js';

/** Largest tensor, in elements: float32 index arithmetic is exact below 2^24. */
export const MAX_ELEMENTS = 2 ** 24;

/** What gpu.js hands back from a pipeline kernel: a Texture or a WebGPUBufferResult. */
interface DeviceResult { toArray(): unknown; delete(): void }

export class GpuHandle implements Handle {
  /** References held by tensors (incRef/decRef). */
  refs = 1;
  /** webgpu: queued kernels that read this handle and have not been submitted yet. */
  pins = 0;
  /** The device memory once it exists (null while pending, and for empty tensors). */
  res: DeviceResult | null = null;
  /** webgpu: the kernel run that will produce res. */
  pending: Promise<DeviceResult> | null = null;
  released = false;
  constructor(readonly id: number, readonly size: number, public range: IntRange | null) {}
}

/** One kernel launch: the cache key, the gpu.js source, its tensor inputs and number uniforms. */
export interface Launch {
  key: string;
  source: string;
  inputs: readonly GpuHandle[];
  size: number;
  /** The largest literal loop bound in the source (gpu.js needs it as loopMaxIterations). */
  loop?: number;
  scalars?: readonly number[];
}

interface CachedKernel { kernel: GpuJsKernel; checked: boolean }

type In = readonly (TensorInfo & { handle: GpuHandle })[];

function float64Error(where: string): Error {
  return new Error(`${where}: float64 is CPU-only; gradcheck runs on the CPU backend (setBackend('cpu')), the gpu backend stores float32 (and int32 as float32)`);
}

export class GpuBackend implements Backend {
  readonly name = 'gpu';
  readonly capabilities: { readonly hostResident: false; readonly syncReadback: boolean; readonly dtypes: readonly ['float32', 'int32'] };
  readonly mode: GpuMode;
  private readonly device: Device;
  private readonly sync: boolean;
  private readonly cache = new Map<string, CachedKernel>();
  private readonly kernels = makeKernels();
  private readonly table: KernelTable<GpuHandle> = this.bind();
  private nextId = 1;
  private live = 0;
  private liveBytes = 0;
  private uploads = 0;
  private readbacks = 0;
  private compiled = 0;
  private asyncError: Error | null = null;
  private shut = false;

  constructor(mode: GpuMode) {
    this.mode = mode;
    this.device = startDevice(mode);
    this.sync = mode !== 'webgpu';
    this.capabilities = { hostResident: false, syncReadback: this.sync, dtypes: ['float32', 'int32'] };
    this.device.ready.catch((e: Error) => { this.asyncError ??= e; });
  }

  private bind(): KernelTable<GpuHandle> {
    const out = {} as Record<KernelName, unknown>;
    for (const name of Object.keys(this.kernels) as CoreKernelName[]) {
      const kernel = this.kernels[name] as (i: In, a: KernelAttrs[KernelName], o: OutInfo, be: GpuBackend) => GpuHandle;
      out[name] = (inputs: In, attrs: KernelAttrs[KernelName], info: OutInfo) => kernel(inputs, attrs, info, this);
    }
    return out as KernelTable<GpuHandle>;
  }

  /** Resolves when the device is usable; rejects with the reason (webgpu: no adapter). */
  ready(): Promise<void> { return this.device.ready; }

  // ---- handles ---------------------------------------------------------------------------

  private newHandle(size: number, range: IntRange | null): GpuHandle {
    this.live++;
    this.liveBytes += 4 * size;
    return new GpuHandle(this.nextId++, size, range);
  }

  incRef(handle: Handle): void {
    const h = handle as GpuHandle;
    if (h.refs === 0) throw new Error(`gpu backend: incRef of freed handle ${h.id}`);
    h.refs++;
  }

  decRef(handle: Handle): void {
    const h = handle as GpuHandle;
    if (h.refs === 0) throw new Error(`gpu backend: handle ${h.id} freed twice`);
    if (--h.refs > 0) return;
    this.live--;
    this.liveBytes -= 4 * h.size;
    this.releaseIfUnused(h);
  }

  /** Deletes the device memory once no tensor and no queued kernel needs it. */
  private releaseIfUnused(h: GpuHandle): void {
    if (h.refs > 0 || h.pins > 0 || h.released) return;
    h.released = true;
    if (this.shut) return;
    if (h.res) { h.res.delete(); h.res = null; }
    else if (h.pending) h.pending.then((r) => r.delete(), () => {});
  }

  /** A kernel whose result is its input unchanged (a cast between float32 and int32 storage). */
  share(h: GpuHandle): GpuHandle {
    this.incRef(h);
    return h;
  }

  // ---- kernels ---------------------------------------------------------------------------

  private compile(key: string, source: string, size: number, loop: number, dynamic = false): CachedKernel {
    let entry = this.cache.get(key);
    if (entry) return entry;
    const kernel = this.device.gpu.createKernel(source, {
      output: [size],
      pipeline: true,
      immutable: true,          // a fresh texture/buffer per call (the default overwrites the last one)
      precision: 'single',
      tactic: 'precision',      // highp: the automatic choice can be lowp on small outputs
      loopMaxIterations: Math.max(1, loop), // the real bound: gpu.js cuts loops at 1000 otherwise
      ...(dynamic ? { dynamicOutput: true, dynamicArguments: true } : {}),
    });
    entry = { kernel, checked: false };
    this.cache.set(key, entry);
    this.compiled++;
    return entry;
  }

  /** After a kernel's first run: refuse gpu.js's silent fallbacks to CPU code. */
  private checkClass(entry: CachedKernel, key: string): void {
    entry.checked = true;
    const inner = entry.kernel.kernel;
    const cls = inner.constructor.name;
    if (cls !== KERNEL_CLASS[this.mode] || inner.fallbackReason) {
      throw new Error(`gpu backend (${this.mode}): kernel ${key} ran as ${cls}${inner.fallbackReason ? ` (${String(inner.fallbackReason)})` : ''} instead of ${KERNEL_CLASS[this.mode]}; mixtape refuses silent fallbacks`);
    }
  }

  launch(spec: Launch): GpuHandle {
    const out = this.newHandle(spec.size, null);
    if (spec.size === 0) return out;
    for (const h of spec.inputs) {
      if (h.size === 0) throw new Error(`gpu backend: internal error, kernel ${spec.key} got an empty input`);
    }
    const entry = this.compile(spec.key, spec.source, spec.size, spec.loop ?? 1);
    this.execute(entry, spec.key, out, spec.inputs, spec.scalars ?? []);
    return out;
  }

  private execute(entry: CachedKernel, key: string, out: GpuHandle, inputs: readonly GpuHandle[], extra: readonly unknown[]): void {
    if (this.sync) {
      try {
        out.res = entry.kernel(...inputs.map((h) => h.res), ...extra) as DeviceResult;
      } catch (e) {
        this.decRef(out);
        if (entry.checked) throw e;
        this.cache.delete(key);
        throw new Error(`gpu backend (${this.mode}): kernel ${key} failed to build: ${(e as Error).message}\n${this.sourceOf(entry)}`);
      }
      if (!entry.checked) {
        try { this.checkClass(entry, key); } catch (e) { out.res.delete(); out.res = null; this.decRef(out); throw e; }
      }
      return;
    }
    // webgpu: run when the inputs exist; keep them alive (pinned) until the kernel is submitted.
    for (const h of inputs) h.pins++;
    const ready = inputs.every((h) => h.res !== null);
    const start = ready ? Promise.resolve(inputs.map((h) => h.res!)) : Promise.all(inputs.map((h) => h.res ?? h.pending!));
    const run = start.then(async (resolved) => {
      // After shutdown(), queued kernels must not run: run on the destroyed device, they
      // kept Dawn, and so Node, running forever (test/gpu/training.test.ts).
      if (this.shut) throw new Error('the backend was shut down');
      let res: DeviceResult;
      try {
        res = await (entry.kernel(...resolved, ...extra) as Promise<DeviceResult>);
      } catch (e) {
        if (entry.checked) throw e;
        throw new Error(`kernel failed to build: ${(e as Error).message}\n${this.sourceOf(entry)}`);
      }
      if (!entry.checked) this.checkClass(entry, key);
      return res;
    });
    out.pending = run;
    const unpin = () => { for (const h of inputs) { h.pins--; this.releaseIfUnused(h); } };
    run.then((res) => {
      out.res = res;
      out.pending = null;
      unpin();
      if (out.released && !this.shut) { res.delete(); out.res = null; }
    }, (e: Error) => {
      unpin();
      this.asyncError ??= new Error(`gpu backend (webgpu): kernel ${key} failed: ${e.message}`);
    });
  }

  private sourceOf(entry: CachedKernel): string {
    return String((entry.kernel.kernel as { source?: unknown }).source ?? '');
  }

  /** A tensor of `out`'s shape filled with value (a uniform, so no compile per value). */
  fill(out: OutInfo, value: number): GpuHandle {
    const size = sizeOf(out.shape);
    return this.launch({ key: `fill|${size}`, source: 'function(v) {\n  return v;\n}', inputs: [], size, scalars: [value] });
  }

  /** A copy of h's data (an identity kernel). */
  copy(h: GpuHandle, out: OutInfo): GpuHandle {
    const size = sizeOf(out.shape);
    return this.launch({ key: `copy|${size}`, source: 'function(a0) {\n  return a0[this.thread.x];\n}', inputs: [h], size });
  }

  /** Host float32 values to a new device tensor (counted as an upload). */
  uploadFloats(values: Float32Array, range: IntRange | null): GpuHandle {
    this.throwAsyncError();
    this.uploads++;
    const n = values.length;
    const out = this.newHandle(n, range);
    if (n === 0) return out;
    const source = 'function(a0) {\n  return a0[this.thread.x];\n}';
    // GL: one kernel for every size. webgpu: one per size, since a kernel that is still
    // being built would run every queued call at the last size set.
    const entry = this.sync ? this.compile('upload', source, n, 1, true) : this.compile(`upload|${n}`, source, n, 1);
    if (this.sync) entry.kernel.setOutput([n]);
    this.execute(entry, 'upload', out, [], [values]);
    return out;
  }

  checkIndex(op: string, index: TensorInfo & { handle: GpuHandle }, size: number, axis: number): void {
    const h = index.handle;
    if (h.size === 0) return;
    const r = h.range;
    if (r && r.lo >= 0 && r.hi < size) return;
    const message = (v: number) => axis >= 0
      ? `${op}: index ${v} is out of range for axis ${axis} of size ${size}`
      : `${op}: index ${v} is out of range for depth ${size}`;
    if (r && r.exact) throw new Error(message(r.lo < 0 ? r.lo : r.hi));
    const known = r !== null && Number.isFinite(r.lo) && Number.isFinite(r.hi);
    if (!this.sync) {
      throw new Error(`${op}: the gpu backend cannot check the values of this index tensor (shape ${shapeToString(index.shape)}, computed on the device, ` +
        `range ${known ? `[${r.lo}, ${r.hi}]` : 'unknown'}) without a synchronous readback, which webgpu mode does not have; ` +
        'make the indices on the host (tensor(...)), with topk/argmax, or clamp them (maximum/minimum) into range');
    }
    // Indices computed on the device whose range is not known: check them on the host.
    const values = this.readSync(h, 'int32');
    for (const v of values) if (v < 0 || v >= size) throw new Error(message(v));
  }

  // ---- the Backend interface -------------------------------------------------------------

  upload(values: TypedArray): Handle {
    if (values instanceof Float64Array) throw float64Error('gpu backend upload');
    if (values instanceof Int32Array) {
      let lo = Infinity, hi = -Infinity;
      for (let i = 0; i < values.length; i++) {
        const v = values[i]!;
        if (v > MAX_ELEMENTS || v < -MAX_ELEMENTS) {
          throw new Error(`gpu backend: int32 element ${i} (${v}) is beyond ±2^24 = ±16777216; the gpu backend stores int32 as float32, exact only up to 2^24 (use the CPU backend for larger integers)`);
        }
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      return this.uploadFloats(Float32Array.from(values), values.length ? { lo, hi, exact: true } : null);
    }
    return this.uploadFloats(values.slice(), null);
  }

  /** No fused kernels: the ops compose them from the core kernels, which gpu.js compiles one by one. */
  supports(_kernel: FusedKernelName): boolean { return false; }

  run<K extends KernelName>(kernel: K, inputs: readonly TensorInfo[], attrs: KernelAttrs[K], out: OutInfo): Handle {
    this.throwAsyncError();
    if (this.shut) throw new Error(`gpu backend (${this.mode}): ${kernel} after the backend was shut down`);
    if (out.dtype === 'float64' || inputs.some((i) => i.dtype === 'float64')) throw float64Error(kernel);
    const size = sizeOf(out.shape);
    if (size > MAX_ELEMENTS) {
      throw new Error(`${kernel}: the result ${shapeToString(out.shape)} has ${size} elements; the gpu backend holds at most 2^24 = 16777216 per tensor (its float32 index arithmetic is exact only below 2^24)`);
    }
    for (const i of inputs) {
      if ((i.handle as GpuHandle).refs === 0) throw new Error(`gpu backend: ${kernel} got freed handle ${i.handle.id}`);
    }
    const run = this.table[kernel] as ((i: In, a: KernelAttrs[K], o: OutInfo) => GpuHandle) | undefined;
    // The fused kernels are the CPU's; the ops compose their math from core kernels here (supports()).
    if (run === undefined) throw new Error(`gpu backend (${this.mode}): it has no fused kernel ${kernel}; ask supports() first`);
    const range = out.dtype === 'int32' ? intRange(kernel, inputs as In, attrs) : null;
    const h = run(inputs as In, attrs, out);
    if (out.dtype === 'int32' && h.range === null) h.range = range;
    return h;
  }

  readSync(handle: Handle, dtype: DType): TypedArray {
    if (!this.sync) {
      throw new Error('dataSync: the gpu backend in webgpu mode reads back asynchronously; use `await t.data()` (item(), toArray() and dataSync() need a synchronous readback)');
    }
    const h = this.readable(handle, dtype);
    this.readbacks++;
    const values = h.res ? (h.res.toArray() as Float32Array) : new Float32Array(0);
    return dtype === 'int32' ? Int32Array.from(values) : Float32Array.from(values);
  }

  async read(handle: Handle, dtype: DType): Promise<TypedArray> {
    if (this.sync) return this.readSync(handle, dtype);
    const h = this.readable(handle, dtype);
    this.readbacks++;
    let res = h.res;
    if (res === null && h.pending) {
      h.pins++;
      try { res = await h.pending; } finally { h.pins--; }
    }
    const values = res ? await (res.toArray() as Promise<Float32Array>) : new Float32Array(0);
    this.releaseIfUnused(h);
    return dtype === 'int32' ? Int32Array.from(values) : Float32Array.from(values);
  }

  private readable(handle: Handle, dtype: DType): GpuHandle {
    this.throwAsyncError();
    if (dtype === 'float64') throw float64Error('read');
    const h = handle as GpuHandle;
    if (h.refs === 0) throw new Error(`gpu backend: read of freed handle ${h.id}`);
    return h;
  }

  private throwAsyncError(): void {
    if (this.asyncError) throw this.asyncError;
  }

  memory(): MemoryInfo {
    return { liveHandles: this.live, bytes: this.liveBytes, uploads: this.uploads, readbacks: this.readbacks, kernelsCompiled: this.compiled };
  }

  info(): BackendInfo {
    return {
      name: 'gpu', mode: this.mode, kernelClass: KERNEL_CLASS[this.mode], dtypes: this.capabilities.dtypes,
      maxElements: MAX_ELEMENTS, device: this.device.describe(),
    };
  }

  /** Frees the device (kernels, and for webgpu the Dawn device that keeps Node running). */
  shutdown(): void {
    if (this.shut) return;
    this.shut = true;
    for (const { kernel } of this.cache.values()) kernel.destroy();
    this.cache.clear();
    this.device.shutdown();
  }
}
