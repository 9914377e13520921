// The one small runtime context: the active backend, gradient mode, tidy scopes and the
// function every op goes through (runOp). Autograd recording is delegated to src/autograd.

import type { Backend, BackendInfo, Handle, KernelAttrs, KernelName, MemoryInfo, MultiOutputKernelAttrs, MultiOutputKernelName, OutInfo } from '../core/backend.js';
import { bytesPerElement, type DType } from '../core/dtype.js';
import { checkBackendOptions, registrationOf, type BackendName, type BackendOptionsOf } from '../core/registry.js';
import { shapeToString, sizeOf, type Shape } from '../core/shape.js';
import { autogradHooks } from './autograd-hooks.js';
import type { RecordedOp } from './recorded-ops.js';
import { Tensor } from './tensor.js';

export type { BackendName } from '../core/registry.js';
/** setBackend's options (the gpu backend's `mode`, ...); each backend declares its own. */
export type BackendOptions = BackendOptionsOf<BackendName>;

/** Started backends by instance key, kept while the process runs: switching back finds their tensors alive. */
const started = new Map<string, Backend>();
let current: Backend | null = null;

function start(name: string, options: Record<string, unknown>, op: string): Backend {
  const registration = registrationOf(name, op);
  checkBackendOptions(name, registration, options, op);
  const key = `${name}:${registration.instanceKey?.(options) ?? ''}`;
  let backend = started.get(key);
  if (!backend) {
    backend = registration.create(options);
    started.set(key, backend);
  } else {
    registration.configure?.(backend, options);
  }
  return backend;
}

/** The active backend; the CPU backend until setBackend chooses another. */
function active(): Backend {
  return current ??= start('cpu', {}, 'mixtape');
}

/**
 * Selects the backend new tensors live on, by its registered name ('cpu', 'gpu', or one
 * registered with registerBackend). Asking for one that cannot run is an error naming the
 * reason and the fix, never a fallback. Tensors stay on the backend that made them: using
 * one with another backend is an error. For webgpu, `await ready()` reports a missing
 * adapter before the first op does.
 */
export function setBackend<N extends string>(name: N, options?: BackendOptionsOf<N>): void {
  current = start(name, (options === undefined ? {} : options) as Record<string, unknown>, 'setBackend');
}

/** Resolves when the active backend can run (webgpu: once an adapter answered); rejects saying why not. */
export async function ready(): Promise<void> {
  await active().ready?.();
}

/**
 * Frees every started backend that holds a device (their tensors become unusable) and makes
 * the CPU backend active. In webgpu mode Node does not exit while the Dawn device lives: call
 * this (or process.exit) at the end of a script.
 */
export function shutdownGpu(): void {
  for (const [key, backend] of started) {
    if (!backend.shutdown) continue;
    backend.shutdown();
    started.delete(key);
  }
  current = start('cpu', {}, 'shutdownGpu');
}

export function getBackend(): Backend { return active(); }

/** What really runs: backend name, mode and kernel class. */
export function backendInfo(): BackendInfo { return active().info(); }

/** Counters of the active backend: live handles, bytes, uploads, readbacks, kernels compiled. */
export function memory(): MemoryInfo { return active().memory(); }

/**
 * Releases the memory that caching allocators hold for reuse, in no live tensor (PyTorch's
 * torch.cuda.empty_cache): the CPU backend's buffer pool, of every started backend. Live
 * tensors are untouched; memory().cachedBytes drops to 0. The free blocks of the CPU
 * backend's WebAssembly memory (memory().wasmFreeBytes) stay: such a memory cannot shrink.
 */
export function emptyCache(): void {
  for (const backend of started.values()) backend.emptyCache?.();
}

// ---- gradient mode --------------------------------------------------------------------

let gradEnabled = true;

export function isGradEnabled(): boolean { return gradEnabled; }

/** Runs fn with autograd recording off (torch.no_grad). */
export function noGrad<T>(fn: () => T): T {
  const previous = gradEnabled;
  gradEnabled = false;
  try { return fn(); } finally { gradEnabled = previous; }
}

/** Runs fn with autograd recording on (torch.enable_grad). */
export function enableGrad<T>(fn: () => T): T {
  const previous = gradEnabled;
  gradEnabled = true;
  try { return fn(); } finally { gradEnabled = previous; }
}

/** Internal: sets the mode for a stretch of code (backward uses it for createGraph). */
export function withGradMode<T>(enabled: boolean, fn: () => T): T {
  return enabled ? enableGrad(fn) : noGrad(fn);
}

// ---- scopes ---------------------------------------------------------------------------

const scopes: Tensor[][] = [];

/** Internal: registers a new tensor with the innermost tidy scope. */
export function track(t: Tensor): void {
  scopes[scopes.length - 1]?.push(t);
}

function collectTensors(value: unknown, into: Set<Tensor>, seen = new Set<unknown>()): void {
  if (value instanceof Tensor) { into.add(value); return; }
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if (value instanceof Map) { for (const v of value.values()) collectTensors(v, into, seen); return; }
  for (const v of Object.values(value as object)) collectTensors(v, into, seen);
}

/**
 * Runs fn and disposes every tensor created inside it, except those it returns (found in
 * arrays, plain objects and Maps) and those passed to keep(). fn must be synchronous.
 */
export function tidy<T>(fn: () => T): T {
  scopes.push([]);
  let result: T | undefined;
  let ok = false;
  try {
    result = fn();
    ok = true;
  } finally {
    const scope = scopes.pop()!;
    // What fn returned: one tensor or a short flat array of tensors (and nulls), the common
    // cases (every op's backward returns such an array), is checked as that list, without
    // building a set; anything else is searched whole.
    let returned: readonly unknown[] | Set<Tensor> = [];
    if (ok) {
      if (result instanceof Promise) {
        for (const t of scope) if (!t.isDisposed && !t.kept) t.dispose();
        // eslint-disable-next-line no-unsafe-finally
        throw new Error('tidy: fn must be synchronous, but it returned a Promise');
      }
      if (result instanceof Tensor) returned = [result];
      else if (Array.isArray(result) && result.length <= 8 && result.every((v) => v === null || v === undefined || v instanceof Tensor)) returned = result;
      else collectTensors(result, (returned = new Set<Tensor>()));
    }
    for (const t of scope) {
      if (t.isDisposed || t.kept) continue;
      if (returned instanceof Set ? returned.has(t) : returned.includes(t)) track(t); // hand it to the enclosing scope
      else t.dispose();
    }
  }
  return result as T;
}

/** Exempts a tensor from every enclosing tidy. */
export function keep<T extends Tensor>(t: T): T {
  t.kept = true;
  return t;
}

/** Disposes a tensor, or every tensor in an array or object. */
export function dispose(value: unknown): void {
  const all = new Set<Tensor>();
  collectTensors(value, all);
  for (const t of all) if (!t.isDisposed) t.dispose();
}

// ---- running ops ----------------------------------------------------------------------

/** V8's RangeErrors for an ArrayBuffer it cannot reserve ("Array buffer allocation failed", "Invalid array buffer length"). */
function isAllocationFailure(e: unknown): e is RangeError {
  return e instanceof RangeError && /allocation failed|invalid (typed )?array (buffer )?length/i.test(e.message);
}

function formatBytes(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = bytes, unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++; }
  return unit === 0 ? `${bytes} bytes` : `${value.toFixed(1)} ${units[unit]} (${bytes.toExponential(2)} bytes)`;
}

/**
 * A result the backend could not allocate. Names the op, the result's shape and dtype and
 * the bytes it needed, where V8 alone says "Array buffer allocation failed".
 */
export class OutOfMemoryError extends RangeError {
  readonly bytes: number;
  constructor(readonly op: string, readonly shape: Shape, readonly dtype: DType, cause?: unknown) {
    const bytes = sizeOf(shape) * bytesPerElement(dtype);
    super(`${op}: out of memory allocating the result ${shapeToString(shape)} ${dtype}: ${formatBytes(bytes)}`, cause === undefined ? undefined : { cause });
    this.name = 'OutOfMemoryError';
    this.bytes = bytes;
  }
}

export function checkLive(op: string, t: Tensor, arg: string): void {
  if (t.isDisposed) throw new Error(`${op}: argument '${arg}' (tensor #${t.id}, shape [${t.shape.join(', ')}]) was disposed`);
  const backend = active();
  if (t.backend !== backend) {
    throw new Error(`${op}: argument '${arg}' lives on the ${t.backend.name} backend but the active backend is ${backend.name}`);
  }
}

/**
 * Runs a kernel on the active backend and wraps the result. `record` names the op autograd
 * records (its gradient rule in src/autograd/rules.ts; the type makes a recorded op without
 * a rule a compile error), or null for an op with no gradient; when an input requires grad,
 * a graph node is added.
 */
export function runOp<K extends KernelName>(
  kernel: K, inputs: readonly Tensor[], attrs: KernelAttrs[K], out: { shape: Shape; dtype: DType },
  record: RecordedOp | null,
): Tensor {
  const backend = active();
  const info: OutInfo = { shape: out.shape, dtype: out.dtype };
  let handle: Handle;
  try {
    handle = backend.run(kernel, inputs.map((t) => ({ handle: t.handle, shape: t.shape, dtype: t.dtype })), attrs, info);
  } catch (e) {
    if (isAllocationFailure(e)) throw new OutOfMemoryError(kernel, out.shape, out.dtype, e);
    throw e;
  }
  const y = new Tensor(handle, out.shape, out.dtype, backend);
  if (record !== null) recordIfNeeded(record, inputs, y, attrs);
  return y;
}

/**
 * Runs a kernel with several outputs (Backend.runMany, where supports() says the backend has
 * it) and wraps them. Not recorded: these kernels serve backward passes.
 */
export function runOpMany<K extends MultiOutputKernelName>(
  kernel: K, inputs: readonly Tensor[], attrs: MultiOutputKernelAttrs[K], outs: readonly { shape: Shape; dtype: DType }[],
): Tensor[] {
  const backend = active();
  if (!backend.runMany || !backend.supports?.(kernel)) throw new Error(`${kernel}: the ${backend.name} backend has no such kernel`);
  const infos: OutInfo[] = outs.map((o) => ({ shape: o.shape, dtype: o.dtype }));
  let handles: Handle[];
  try {
    handles = backend.runMany(kernel, inputs.map((t) => ({ handle: t.handle, shape: t.shape, dtype: t.dtype })), attrs, infos);
  } catch (e) {
    if (isAllocationFailure(e)) throw new OutOfMemoryError(kernel, outs[0]?.shape ?? [], outs[0]?.dtype ?? 'float32', e);
    throw e;
  }
  return handles.map((h, i) => new Tensor(h, outs[i]!.shape, outs[i]!.dtype, backend));
}

export function recordIfNeeded(op: RecordedOp, inputs: readonly Tensor[], y: Tensor, attrs: object): void {
  if (!gradEnabled || !inputs.some((t) => t.requiresGrad)) return;
  autogradHooks()?.record(op, inputs, y, attrs);
}
