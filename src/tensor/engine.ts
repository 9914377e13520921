// The one small runtime context: the active backend, gradient mode, tidy scopes and the
// function every op goes through (runOp). Autograd recording is delegated to src/autograd.

import type { Backend, KernelAttrs, KernelName, MemoryInfo, OutInfo } from '../backends/backend.js';
import { CpuBackend } from '../backends/cpu/cpu-backend.js';
import type { GpuMode } from '../backends/gpu/device.js';
import { GpuBackend } from '../backends/gpu/gpu-backend.js';
import type { DType } from './dtype.js';
import type { Shape } from './shape.js';
import { Tensor } from './tensor.js';

let active: Backend = new CpuBackend();
/** One backend per name and mode, kept while the process runs: switching back finds its tensors alive. */
const started = new Map<string, Backend>([['cpu', active]]);

export type BackendName = 'cpu' | 'gpu';
export interface BackendOptions { mode?: GpuMode }

/** gpu.js mode used when none is given: headless-gl in Node, WebGPU (else WebGL2) in a browser. */
function defaultGpuMode(): GpuMode {
  if (typeof (globalThis as { document?: unknown }).document === 'undefined') return 'headlessgl';
  return (globalThis as { navigator?: { gpu?: unknown } }).navigator?.gpu ? 'webgpu' : 'webgl2';
}

/**
 * Selects the backend new tensors live on. Asking for one that cannot run is an error
 * naming the reason and the fix, never a fallback. Tensors stay on the backend that made
 * them: using one with another backend is an error. For webgpu, `await ready()` reports a
 * missing adapter before the first op does.
 */
export function setBackend(name: BackendName, options: BackendOptions = {}): void {
  if (name === 'cpu') {
    active = started.get('cpu')!;
    return;
  }
  if (name === 'gpu') {
    const mode = options.mode ?? defaultGpuMode();
    const key = `gpu:${String(mode)}`;
    let backend = started.get(key);
    if (!backend) {
      backend = new GpuBackend(mode);
      started.set(key, backend);
    }
    active = backend;
    return;
  }
  throw new Error(`setBackend: unknown backend '${String(name)}' (expected 'cpu' or 'gpu')`);
}

/** Resolves when the active backend can run (webgpu: once an adapter answered); rejects saying why not. */
export async function ready(): Promise<void> {
  await (active as Backend & { ready?: () => Promise<void> }).ready?.();
}

/**
 * Frees every GPU backend started so far (their tensors become unusable) and makes the CPU
 * backend active. In webgpu mode Node does not exit while the Dawn device lives: call this
 * (or process.exit) at the end of a script.
 */
export function shutdownGpu(): void {
  for (const [key, backend] of started) {
    if (key === 'cpu') continue;
    (backend as Backend & { shutdown?: () => void }).shutdown?.();
    started.delete(key);
  }
  active = started.get('cpu')!;
}

export function getBackend(): Backend { return active; }

/** What really runs: backend name, mode and kernel class. */
export function backendInfo(): { name: string; mode: string; kernelClass: string; [key: string]: unknown } {
  return active.info() as { name: string; mode: string; kernelClass: string };
}

/** Counters of the active backend: live handles, bytes, uploads, readbacks, kernels compiled. */
export function memory(): MemoryInfo { return active.memory(); }

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
    const survivors = new Set<Tensor>();
    if (ok) {
      if (result instanceof Promise) {
        for (const t of scope) if (!t.isDisposed && !t.kept) t.dispose();
        // eslint-disable-next-line no-unsafe-finally
        throw new Error('tidy: fn must be synchronous, but it returned a Promise');
      }
      collectTensors(result, survivors);
    }
    for (const t of scope) {
      if (t.isDisposed || t.kept) continue;
      if (survivors.has(t)) track(t); // hand it to the enclosing scope
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

type Recorder = (op: string, inputs: readonly Tensor[], output: Tensor, attrs: object) => void;
let recorder: Recorder | null = null;

/** Internal: src/autograd installs the function that records graph nodes. */
export function setRecorder(r: Recorder): void { recorder = r; }

export function checkLive(op: string, t: Tensor, arg: string): void {
  if (t.isDisposed) throw new Error(`${op}: argument '${arg}' (tensor #${t.id}, shape [${t.shape.join(', ')}]) was disposed`);
  if (t.backend !== active) {
    throw new Error(`${op}: argument '${arg}' lives on the ${t.backend.name} backend but the active backend is ${active.name}`);
  }
}

/**
 * Runs a kernel on the active backend and wraps the result. When `record` names a
 * differentiable op and an input requires grad, the autograd recorder adds a graph node.
 */
export function runOp<K extends KernelName>(
  kernel: K, inputs: readonly Tensor[], attrs: KernelAttrs[K], out: { shape: Shape; dtype: DType },
  record: string | null = kernel,
): Tensor {
  const info: OutInfo = { shape: out.shape, dtype: out.dtype };
  const handle = active.run(kernel, inputs.map((t) => ({ handle: t.handle, shape: t.shape, dtype: t.dtype })), attrs, info);
  const y = new Tensor(handle, out.shape, out.dtype, active);
  if (record !== null) recordIfNeeded(record, inputs, y, attrs);
  return y;
}

export function recordIfNeeded(op: string, inputs: readonly Tensor[], y: Tensor, attrs: object): void {
  if (gradEnabled && recorder !== null && inputs.some((t) => t.requiresGrad)) recorder(op, inputs, y, attrs);
}
