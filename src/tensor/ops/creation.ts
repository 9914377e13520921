// Creation ops: tensor(), zeros/ones/full, arange, linspace, eye, and seeded rand/randn.

import { getBackend, OutOfMemoryError, runOp } from '../engine.js';
import { allocate, dtypeOfArray, isDType, type DType, type TypedArray } from '../../core/dtype.js';
import { assertValidShape, shapeToString, sizeOf, type Shape } from '../../core/shape.js';
import { Tensor } from '../tensor.js';
import { checkNumber } from './util.js';

export interface CreateOptions { dtype?: DType; requiresGrad?: boolean }

export type NestedArray = number | readonly NestedArray[];

function checkDType(op: string, dtype: unknown): DType {
  if (!isDType(dtype)) throw new Error(`${op}: unknown dtype '${String(dtype)}' (expected 'float32', 'float64' or 'int32')`);
  return dtype;
}

function finish(t: Tensor, options: CreateOptions): Tensor {
  if (options.requiresGrad) t.requiresGrad = true;
  return t;
}

function inferShape(values: NestedArray, op: string): number[] {
  const shape: number[] = [];
  let v: NestedArray = values;
  while (Array.isArray(v)) {
    shape.push(v.length);
    if (v.length === 0) break;
    v = v[0]!;
  }
  return shape;
}

function flatten(values: NestedArray, shape: Shape, op: string): number[] {
  const out: number[] = [];
  const walk = (v: NestedArray, depth: number, path: number[]): void => {
    if (depth === shape.length) {
      if (typeof v !== 'number') throw new Error(`${op}: ragged nested array at index [${path.join(', ')}]: expected a number, got ${Array.isArray(v) ? 'an array' : typeof v}`);
      out.push(v);
      return;
    }
    if (!Array.isArray(v) || v.length !== shape[depth]) {
      throw new Error(`${op}: ragged nested array at index [${path.join(', ')}]: expected ${shape[depth]} elements, got ${Array.isArray(v) ? v.length : 'a number'}`);
    }
    v.forEach((item: NestedArray, i: number) => walk(item, depth + 1, [...path, i]));
  };
  walk(values, 0, []);
  return out;
}

function toTyped(values: ArrayLike<number>, dtype: DType, op: string): TypedArray {
  const out = allocate(dtype, values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (typeof v !== 'number') throw new Error(`${op}: element ${i} is not a number (${typeof v})`);
    if (dtype === 'int32' && (!Number.isInteger(v) || v < -2147483648 || v > 2147483647)) {
      throw new Error(`${op}: element ${i} (${v}) is not representable as int32`);
    }
    out[i] = v;
  }
  return out;
}

/** The typed array each dtype is stored in. */
const ARRAY_OF = { float32: Float32Array, float64: Float64Array, int32: Int32Array } as const;

/**
 * Creates a tensor from a number, a (nested) array or a typed array. A flat array with an
 * explicit shape is reshaped; the number of values must match the shape exactly.
 */
export function tensor(values: NestedArray | TypedArray, shape?: Shape | CreateOptions, options: CreateOptions = {}): Tensor {
  if (shape !== undefined && !Array.isArray(shape)) return tensor(values, undefined, shape as CreateOptions);
  const isTyped = ArrayBuffer.isView(values);
  const dtype = checkDType('tensor', options.dtype ?? (isTyped ? dtypeOfArray(values as TypedArray) : 'float32'));
  let flat: ArrayLike<number>;
  let inferred: number[];
  if (isTyped) {
    flat = values as TypedArray;
    inferred = [flat.length];
  } else if (typeof values === 'number') {
    flat = [values];
    inferred = [];
  } else if (Array.isArray(values)) {
    inferred = inferShape(values as NestedArray, 'tensor');
    flat = flatten(values as NestedArray, inferred, 'tensor');
  } else {
    throw new Error(`tensor: values must be a number, an array or a typed array, got ${values === null ? 'null' : typeof values}`);
  }
  let finalShape: Shape = inferred;
  if (shape !== undefined) {
    assertValidShape(shape, 'tensor');
    if (sizeOf(shape) !== flat.length) {
      throw new Error(`tensor: got ${flat.length} values for shape ${shapeToString(shape)}, which needs ${sizeOf(shape)}`);
    }
    finalShape = [...shape];
  }
  // A typed array of the dtype itself needs no conversion or checks: upload copies it.
  const typed = isTyped && (values as TypedArray).constructor === ARRAY_OF[dtype] ? values as TypedArray : toTyped(flat, dtype, 'tensor');
  const backend = getBackend();
  return finish(new Tensor(backend.upload(typed), finalShape, dtype, backend), options);
}

/** full() under the name of the op the caller used, so that errors name it. */
function filled(op: string, shape: Shape, value: number, options: CreateOptions): Tensor {
  assertValidShape(shape, op);
  const dtype = checkDType(op, options.dtype ?? 'float32');
  if (typeof value !== 'number') throw new Error(`${op}: value must be a number, got ${typeof value}`);
  if (dtype === 'int32' && (!Number.isInteger(value) || value < -2147483648 || value > 2147483647)) throw new Error(`${op}: value ${value} is not representable as int32`);
  return finish(underName(op, () => runOp('fill', [], { value }, { shape: [...shape], dtype }, null)), options);
}

/** Runs a creation kernel so that running out of memory names the function the caller used (zeros, randn, ...), not the kernel. */
function underName(op: string, run: () => Tensor): Tensor {
  try {
    return run();
  } catch (e) {
    if (e instanceof OutOfMemoryError) throw new OutOfMemoryError(op, e.shape, e.dtype, e.cause);
    throw e;
  }
}

export function full(shape: Shape, value: number, options: CreateOptions = {}): Tensor { return filled('full', shape, value, options); }
export function zeros(shape: Shape, options: CreateOptions = {}): Tensor { return filled('zeros', shape, 0, options); }
export function ones(shape: Shape, options: CreateOptions = {}): Tensor { return filled('ones', shape, 1, options); }
export function zerosLike(t: Tensor, options: CreateOptions = {}): Tensor { return filled('zerosLike', t.shape, 0, { dtype: t.dtype, ...options }); }
export function onesLike(t: Tensor, options: CreateOptions = {}): Tensor { return filled('onesLike', t.shape, 1, { dtype: t.dtype, ...options }); }

/**
 * Values start, start+step, ... below end (torch.arange). arange(n) is 0..n-1. The dtype is
 * int32 when every argument is an integer, else float32, unless given.
 */
export function arange(start: number, end?: number, step = 1, options: CreateOptions = {}): Tensor {
  if (end === undefined) { end = start; start = 0; }
  for (const [name, v] of [['start', start], ['end', end], ['step', step]] as const) {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`arange: ${name} must be a finite number, got ${v}`);
  }
  if (step === 0) throw new Error('arange: step must be nonzero');
  if ((end - start) / step < 0) throw new Error(`arange: step ${step} never reaches end ${end} from start ${start}`);
  const allInt = Number.isInteger(start) && Number.isInteger(end) && Number.isInteger(step);
  const dtype = checkDType('arange', options.dtype ?? (allInt ? 'int32' : 'float32'));
  const n = Math.max(0, Math.ceil((end - start) / step)); // max: an empty range gives 0, not -0
  if (dtype === 'int32' && (Math.min(start, start + (n - 1) * step) < -2147483648 || Math.max(start, start + (n - 1) * step) > 2147483647)) {
    throw new Error(`arange: the range from ${start} to ${end} does not fit in int32`);
  }
  const values = allocate(dtype, n);
  for (let i = 0; i < n; i++) values[i] = start + i * step;
  const backend = getBackend();
  return finish(new Tensor(backend.upload(values), [n], dtype, backend), options);
}

/**
 * `steps` values evenly spaced from start to end, both included (torch.linspace). Computed
 * as PyTorch's scalar loop does, from the nearer end (start + i·step in the first half,
 * end − (steps−1−i)·step in the second), so the last value is `end` exactly. (PyTorch's
 * vectorized loop adds multiples of step to the start of each SIMD block instead, which
 * can differ in the last bit, depending on the CPU's vector width.)
 */
export function linspace(start: number, end: number, steps: number, options: CreateOptions = {}): Tensor {
  for (const [name, v] of [['start', start], ['end', end]] as const) {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`linspace: ${name} must be a finite number, got ${v}`);
  }
  if (typeof steps !== 'number' || !Number.isInteger(steps) || steps < 0) throw new Error(`linspace: steps must be a non-negative integer, got ${steps}`);
  const dtype = checkDType('linspace', options.dtype ?? 'float32');
  const values = allocate(dtype, steps);
  const step = steps > 1 ? (end - start) / (steps - 1) : 0;
  const half = Math.floor(steps / 2);
  for (let i = 0; i < steps; i++) {
    const v = steps === 1 ? start : i < half ? start + step * i : end - step * (steps - 1 - i);
    values[i] = dtype === 'int32' ? Math.trunc(v) : v; // int32: truncated toward zero, as PyTorch
  }
  const backend = getBackend();
  return finish(new Tensor(backend.upload(values), [steps], dtype, backend), options);
}

/** The n×m identity: ones on the main diagonal (torch.eye; m defaults to n). */
export function eye(n: number, m: number = n, options: CreateOptions = {}): Tensor {
  for (const [name, v] of [['n', n], ['m', m]] as const) {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new Error(`eye: ${name} must be a non-negative integer, got ${v}`);
  }
  const dtype = checkDType('eye', options.dtype ?? 'float32');
  const values = allocate(dtype, n * m);
  for (let i = 0; i < Math.min(n, m); i++) values[i * m + i] = 1;
  const backend = getBackend();
  return finish(new Tensor(backend.upload(values), [n, m], dtype, backend), options);
}

// ---- random numbers -------------------------------------------------------------------

/**
 * A stream of random numbers: a Philox key (the seed) and a counter of values drawn so
 * far. The same seed gives the same numbers, on every backend (torch.Generator).
 */
export class Generator {
  private key: [number, number] = [0, 0];
  private counter = 0;
  constructor(seed = 0) { this.manualSeed(seed); }

  manualSeed(seed: number): this {
    if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`manualSeed: seed must be a non-negative safe integer, got ${seed}`);
    this.key = [seed % 4294967296, Math.floor(seed / 4294967296)];
    this.counter = 0;
    return this;
  }

  /** Internal: reserves n values of the stream; returns the key and the first counter. */
  take(n: number): { key: [number, number]; counter: number } {
    const counter = this.counter;
    // Each draw starts on a fresh Philox block so that draws do not depend on each other's parity.
    this.counter += n + (n % 2);
    return { key: this.key, counter };
  }

  /** The state, to save and restore a run exactly. */
  getState(): { key: [number, number]; counter: number } { return { key: [...this.key], counter: this.counter }; }
  setState(state: { key: readonly [number, number]; counter: number }): void {
    this.key = [state.key[0], state.key[1]];
    this.counter = state.counter;
  }
}

export const defaultGenerator = new Generator(0);

/** Seeds the default generator (torch.manual_seed). */
export function manualSeed(seed: number): void { defaultGenerator.manualSeed(seed); }

export interface RandomOptions extends CreateOptions { generator?: Generator }

function random(op: string, distribution: 'uniform' | 'normal', shape: Shape, options: RandomOptions): Tensor {
  assertValidShape(shape, op);
  const dtype = checkDType(op, options.dtype ?? 'float32');
  if (dtype === 'int32') throw new Error(`${op}: dtype must be float32 or float64, got int32`);
  const { key, counter } = (options.generator ?? defaultGenerator).take(sizeOf(shape));
  return finish(underName(op, () => runOp('random', [], { distribution, key, counter }, { shape: [...shape], dtype }, null)), options);
}

/** Standard normal samples (Box–Muller over Philox4x32-10). */
export function randn(shape: Shape, options: RandomOptions = {}): Tensor { return random('randn', 'normal', shape, options); }

/** Uniform samples in [0, 1). */
export function rand(shape: Shape, options: RandomOptions = {}): Tensor { return random('rand', 'uniform', shape, options); }

/** Normal samples with the given mean and standard deviation. */
export function normal(shape: Shape, mean: number, std: number, options: RandomOptions = {}): Tensor {
  checkNumber('normal', mean, 'mean');
  if (!Number.isFinite(std) || std < 0) throw new Error(`normal: std must be a finite non-negative number, got ${std}`);
  const z = randn(shape, options);
  const scaled = z.mul(std);
  const out = scaled.add(mean);
  z.dispose();
  scaled.dispose();
  return out;
}
