// The CPU backend: typed arrays behind reference-counted handles. It is the readable
// reference every other backend is tested against, and the only one with float64.

import { dtypeOfArray, type DType, type TypedArray } from '../../core/dtype.js';
import { cpuPool, type DeferredRows } from './pool.js';
import { fillRandom } from '../../core/philox.js';
import { sizeOf } from '../../core/shape.js';
import type { Backend, BackendInfo, CoreKernelName, FusedKernelName, Handle, KernelAttrs, KernelName, KernelTable, MemoryInfo, MultiOutputKernelAttrs, MultiOutputKernelName, OutInfo, TensorInfo } from '../../core/backend.js';
import { adamStep, lstmCellBackward, lstmCellForward, lstmSequenceBackward, lstmSequenceForward, sumOfSquares, type AdamAttrs, type LstmSequenceOps } from './fused.js';
import { binaryBroadcast, binaryFast, binaryFns, broadcastLoop, mapUnary, unaryFns, whereFast } from './elementwise.js';
import { cvSquared, cvSquaredBackward, probInTopK, probInTopKBackward, topkGates, topkGatesBackward, type ProbInTopKPlanes } from './gating.js';
import { gather, indexAdd, indexSelect, oneHot, scatterAdd, topkIndices, weightedIndexAdd, weightedIndexAddBackward } from './indexing.js';
import { groupedMatmulScalar, groupedWeightGradsScalar, matmul } from './matmul/matmul.js';
import { broadcastTo, concat, flip, pad, permute, slice } from './movement.js';
import { argReduce, cumsum, gateEntropyRows, logsumexpRows, reduce } from './reduce.js';

/** A CPU tensor's storage: a typed array (null once freed) and its reference count. */
export class CpuHandle implements Handle {
  refs = 1;
  constructor(readonly id: number, public values: TypedArray | null) {}
}

/** A CPU kernel's operands. */
export type CpuInputs = readonly (TensorInfo & { handle: CpuHandle })[];
type In = CpuInputs;

/** An operand's values (an error if its handle was freed). */
export function data(info: TensorInfo & { handle: CpuHandle }): TypedArray {
  const values = info.handle.values;
  if (values === null) throw new Error(`cpu backend: handle ${info.handle.id} was used after it was freed`);
  // A result of a job still running on other threads: wait for it.
  if (cpuPool.pending !== null && cpuPool.pending.outputs.has(values)) cpuPool.settle();
  // Rows of a deferred gather: copied now.
  if (cpuPool.deferredLive > 0) cpuPool.fillRows(values);
  return values;
}

/** The deferred gather behind a tensor's array (pool.ts gathers), or null: its rows not yet copied, without copying them. */
export function deferredRows(info: TensorInfo & { handle: CpuHandle }): DeferredRows | null {
  const values = info.handle.values;
  return values === null ? null : cpuPool.gathers.get(values) ?? null;
}

/** The result array of a kernel that writes every element: a reused buffer is not zeroed first. */
const full = (out: OutInfo) => cpuPool.take(out.dtype, sizeOf(out.shape), false);

const unary = (name: keyof typeof unaryFns) => (inputs: In, _a: unknown, out: OutInfo, be: CpuBackend) => {
  const y = full(out);
  // float32 results need only float32 accuracy: Φ has a cheaper formula for them.
  mapUnary(name, data(inputs[0]!), y, out.dtype === 'float32');
  return be.wrap(y);
};

const binary = (name: keyof typeof binaryFns) => (inputs: In, _a: unknown, out: OutInfo, be: CpuBackend) => {
  const a = inputs[0]!, b = inputs[1]!;
  const y = full(out);
  if (!binaryFast(name, data(a), a.shape, data(b), b.shape, y, out.shape)) binaryBroadcast(binaryFns[name], data(a), a.shape, data(b), b.shape, y, out.shape);
  return be.wrap(y);
};

/** A CPU kernel: computes a new typed array and returns it wrapped by `be.wrap`. */
export type CpuKernel<K extends KernelName> = (inputs: CpuInputs, attrs: KernelAttrs[K], out: OutInfo, be: CpuBackend) => CpuHandle;
/** The CPU kernel table: one kernel per KernelName, the fused ones included (a missing one is a compile error). */
export type CpuKernelTable = { readonly [K in KernelName]: CpuKernel<K> };

function makeKernels(): CpuKernelTable {
  const alloc = (out: OutInfo) => cpuPool.take(out.dtype, sizeOf(out.shape));
  return {
    neg: unary('neg'), abs: unary('abs'), sign: unary('sign'), exp: unary('exp'), log: unary('log'),
    sqrt: unary('sqrt'), tanh: unary('tanh'), sigmoid: unary('sigmoid'), relu: unary('relu'),
    softplus: unary('softplus'), normalCdf: unary('normalCdf'),
    log1p: unary('log1p'), expm1: unary('expm1'), sin: unary('sin'), cos: unary('cos'),
    floor: unary('floor'), ceil: unary('ceil'), round: unary('round'), erf: unary('erf'),
    add: binary('add'), sub: binary('sub'), mul: binary('mul'), div: binary('div'), pow: binary('pow'),
    maximum: binary('maximum'), minimum: binary('minimum'),
    equal: binary('equal'), notEqual: binary('notEqual'), less: binary('less'), lessEqual: binary('lessEqual'),
    greater: binary('greater'), greaterEqual: binary('greaterEqual'),
    where: (inputs, _a, out, be) => {
      const [c, a, b] = inputs as [In[0], In[0], In[0]];
      const y = full(out), cv = data(c), av = data(a), bv = data(b);
      if (!whereFast(cv, c.shape, av, a.shape, bv, b.shape, y, out.shape)) broadcastLoop(out.shape, [c.shape, a.shape, b.shape], (o, off) => {
        y[o] = cv[off[0]!] !== 0 ? av[off[1]!]! : bv[off[2]!]!;
      });
      return be.wrap(y);
    },
    sum: (inputs, { axes }, out, be) => be.wrap(reduce('sum', data(inputs[0]!), inputs[0]!.shape, axes, out.dtype, sizeOf(out.shape))),
    max: (inputs, { axes }, out, be) => be.wrap(reduce('max', data(inputs[0]!), inputs[0]!.shape, axes, out.dtype, sizeOf(out.shape))),
    min: (inputs, { axes }, out, be) => be.wrap(reduce('min', data(inputs[0]!), inputs[0]!.shape, axes, out.dtype, sizeOf(out.shape))),
    prod: (inputs, { axes }, out, be) => be.wrap(reduce('prod', data(inputs[0]!), inputs[0]!.shape, axes, out.dtype, sizeOf(out.shape))),
    cumsum: (inputs, { axis }, out, be) => {
      const y = full(out);
      cumsum(data(inputs[0]!), inputs[0]!.shape, axis, y);
      return be.wrap(y);
    },
    argmax: (inputs, { axis }, _o, be) => be.wrap(argReduce('argmax', data(inputs[0]!), inputs[0]!.shape, axis)),
    argmin: (inputs, { axis }, _o, be) => be.wrap(argReduce('argmin', data(inputs[0]!), inputs[0]!.shape, axis)),
    matmul: (inputs, { transposeA, transposeB }, out, be) => {
      const [a, b] = inputs as [In[0], In[0]];
      const y = full(out);
      matmul(data(a), a.shape, data(b), b.shape, y, out.shape, transposeA, transposeB);
      return be.wrap(y);
    },
    permute: (inputs, { perm }, out, be) => {
      const y = full(out);
      permute(data(inputs[0]!), inputs[0]!.shape, perm, y);
      return be.wrap(y);
    },
    broadcastTo: (inputs, _a, out, be) => {
      const y = full(out);
      broadcastTo(data(inputs[0]!), inputs[0]!.shape, y, out.shape);
      return be.wrap(y);
    },
    slice: (inputs, { begin }, out, be) => {
      const y = full(out);
      slice(data(inputs[0]!), inputs[0]!.shape, begin, y, out.shape);
      return be.wrap(y);
    },
    flip: (inputs, { axes }, out, be) => {
      const y = full(out);
      flip(data(inputs[0]!), inputs[0]!.shape, axes, y);
      return be.wrap(y);
    },
    pad: (inputs, { before }, out, be) => {
      const y = alloc(out);
      pad(data(inputs[0]!), inputs[0]!.shape, before, y, out.shape);
      return be.wrap(y);
    },
    assembleSlices: (inputs, { begins }, out, be) => {
      const y = alloc(out);
      inputs.forEach((piece, i) => pad(data(piece), piece.shape, begins[i]!, y, out.shape, true));
      return be.wrap(y);
    },
    concat: (inputs, { axis }, out, be) => {
      const y = full(out);
      concat(inputs.map(data), inputs.map((i) => i.shape), axis, y, out.shape);
      return be.wrap(y);
    },
    gather: (inputs, { axis }, out, be) => {
      const [x, index] = inputs as [In[0], In[0]];
      const y = full(out);
      gather(data(x), x.shape, data(index) as Int32Array, index.shape, axis, y);
      return be.wrap(y);
    },
    scatterAdd: (inputs, { axis }, out, be) => {
      const [x, index, src] = inputs as [In[0], In[0], In[0]];
      const y = full(out);
      scatterAdd(data(x), x.shape, data(index) as Int32Array, index.shape, data(src), axis, y);
      return be.wrap(y);
    },
    indexSelect: (inputs, { axis }, out, be) => {
      const [x, index] = inputs as [In[0], In[0]];
      const y = full(out);
      indexSelect(data(x), x.shape, data(index) as Int32Array, axis, y);
      return be.wrap(y);
    },
    indexAdd: (inputs, { axis }, out, be) => {
      const [x, index, src] = inputs as [In[0], In[0], In[0]];
      const y = full(out);
      indexAdd(data(x), x.shape, data(index) as Int32Array, data(src), axis, y);
      return be.wrap(y);
    },
    reluGrad: (inputs, _a, out, be) => {
      const dy = data(inputs[0]!), x = data(inputs[1]!), y = full(out);
      // dy · (x > 0 ? 1 : 0): the multiply the composition does, NaN and −0 included.
      for (let i = 0; i < y.length; i++) y[i] = dy[i]! * +(x[i]! > 0);
      return be.wrap(y);
    },
    weightedIndexAdd: (inputs, { numRows }, out, be) => {
      const [y, w, index] = inputs as [In[0], In[0], In[0]];
      const o = alloc(out);
      weightedIndexAdd(data(y), data(w), data(index) as Int32Array, y.shape[1]!, numRows, o);
      return be.wrap(o);
    },
    topkGates: (inputs, { k }, out, be) => {
      const [x, indices] = inputs as [In[0], In[0]];
      const y = full(out);
      topkGates(data(x), data(indices) as Int32Array, x.shape[1]!, indices.shape[1]!, k, out.dtype === 'float32', y);
      return be.wrap(y);
    },
    topkGatesBackward: (inputs, { k }, out, be) => {
      const [dy, x, indices] = inputs as [In[0], In[0], In[0]];
      const dx = full(out);
      topkGatesBackward(data(dy), data(x), data(indices) as Int32Array, x.shape[1]!, indices.shape[1]!, k, out.dtype === 'float32', dx);
      return be.wrap(dx);
    },
    probInTopK: (inputs, { k }, out, be) => probInTopKKernel(inputs, k, out, be, null),
    oneHot: (inputs, { depth }, out, be) => {
      const y = alloc(out);
      oneHot(data(inputs[0]!) as Int32Array, depth, y);
      return be.wrap(y);
    },
    topkIndices: (inputs, { k, largest }, out, be) => {
      const y = full(out) as Int32Array;
      topkIndices(data(inputs[0]!), inputs[0]!.shape, k, y, largest);
      return be.wrap(y);
    },
    // A full stable sort: top-k of all n, in the same (value, then index) order, NaN largest.
    argsort: (inputs, { descending }, out, be) => {
      const x = inputs[0]!;
      const y = full(out) as Int32Array;
      topkIndices(data(x), x.shape, x.shape.length === 0 ? 1 : x.shape[x.shape.length - 1]!, y, descending);
      return be.wrap(y);
    },
    cast: (inputs, _a, out, be) => {
      const x = data(inputs[0]!);
      const y = full(out);
      if (out.dtype === 'int32') {
        for (let i = 0; i < x.length; i++) {
          const v = x[i]!;
          if (!Number.isFinite(v)) throw new Error(`cast: cannot convert the non-finite value ${v} to int32`);
          const t = Math.trunc(v); // toward zero, as PyTorch
          if (t < -2147483648 || t > 2147483647) throw new Error(`cast: ${v} is out of the int32 range`);
          y[i] = t;
        }
      } else {
        y.set(x);
      }
      return be.wrap(y);
    },
    fill: (_i, { value }, out, be) => {
      const y = full(out);
      y.fill(value);
      return be.wrap(y);
    },
    random: (_i, { distribution, key, counter }, out, be) => {
      const y = full(out);
      if (y instanceof Int32Array) throw new Error('random: int32 output is not supported');
      fillRandom(y, distribution, key, counter);
      return be.wrap(y);
    },
    lstmCell: (inputs, _a, out, be) => lstmCellKernel(inputs, out, be, scalarSequenceOps.cell),
    lstmCellBackward: (inputs, { wrt }, out, be) => {
      const [acts, c, dOut] = inputs as [In[0], In[0], In[0]];
      const [B, H] = c.shape as [number, number];
      const y = full(out);
      lstmCellBackward(data(acts), data(c), data(dOut), B, H, wrt, y);
      return be.wrap(y);
    },
    groupedMatmul: (inputs, { sizes, transposeB, bias, relu }, out, be) => {
      const y = full(out);
      const E = sizes.length, ins = inputs.map(data);
      groupedMatmulScalar(ins.slice(0, 1 + E), inputs[0]!.shape[1]!, sizes, transposeB, y, out.shape[1]!);
      if (bias) addSegmentBiases(y, ins.slice(1 + E), sizes, out.shape[1]!);
      if (relu) mapUnary('relu', y, y, y instanceof Float32Array);
      return be.wrap(y);
    },
    lstmSequence: (inputs, _a, out, be) => lstmSequenceKernel(inputs, out, be, scalarSequenceOps),
    sumOfSquares: (inputs, _a, out, be) => {
      const y = full(out);
      y[0] = sumOfSquares(inputs.map(data));
      return be.wrap(y);
    },
    logsumexpRows: (inputs, _a, out, be) => {
      const x = inputs[0]!, y = alloc(out);
      logsumexpRows(data(x), x.shape[x.shape.length - 1]!, out.dtype === 'float32', y);
      return be.wrap(y);
    },
    gateEntropyRows: (inputs, _a, out, be) => {
      const g = inputs[0]!, y = alloc(out);
      gateEntropyRows(data(g), g.shape[g.shape.length - 1]!, out.dtype === 'float32', y);
      return be.wrap(y);
    },
    cvSquared: (inputs, _a, out, be) => {
      const y = full(out);
      y[0] = cvSquared(data(inputs[0]!), out.dtype === 'float32');
      return be.wrap(y);
    },
    cvSquaredBackward: (inputs, _a, out, be) => {
      const dv = full(out);
      cvSquaredBackward(data(inputs[0]!)[0]!, data(inputs[1]!), out.dtype === 'float32', dv);
      return be.wrap(dv);
    },
  };
}

/**
 * Adds bias e to every row of segment e of y [Σ sizes, n] in place: y = y + b, rounded to y's
 * dtype as the add kernel rounds (groupedMatmul with biases).
 */
export function addSegmentBiases(y: TypedArray, biases: readonly TypedArray[], sizes: readonly number[], n: number): void {
  let r = 0;
  sizes.forEach((m, e) => {
    const b = biases[e]!;
    for (const end = r + m; r < end; r++) for (let j = 0, base = r * n; j < n; j++) y[base + j] = y[base + j]! + b[j]!;
  });
}

/**
 * Column sums of a [M, n] over row segments into ys (one [n] each), every column summed in row
 * order in float64. Row and column counters are locals: a counter shared with a closure lives
 * in its context, and this loop ran 1.4× slower than sum(·, 0) with one.
 */
function segmentSums(a: TypedArray, n: number, sizes: readonly number[], ys: TypedArray[]): void {
  const acc = new Float64Array(n);
  let r = 0;
  for (let e = 0; e < sizes.length; e++) {
    acc.fill(0);
    for (const end = r + sizes[e]!; r < end; r++) {
      const base = r * n;
      for (let j = 0; j < n; j++) acc[j] = acc[j]! + a[base + j]!;
    }
    ys[e]!.set(acc);
  }
}

/** An LSTM layer's products and cells on the scalar kernels. */
export const scalarSequenceOps: LstmSequenceOps = {
  matmul,
  cell: (z, c, B, H, acts) => lstmCellForward(z, c, B, H, acts, z instanceof Float32Array),
};

/** The lstmCell kernel over `cell` (the SIMD backend passes its own). */
export function lstmCellKernel(inputs: In, out: OutInfo, be: CpuBackend, cell: LstmSequenceOps['cell']): CpuHandle {
  const [c, z] = inputs as [In[0], In[0]];
  const [B, H] = c.shape as [number, number];
  const y = full(out);
  cell(data(z), data(c), B, H, y);
  return be.wrap(y);
}

/** Updates one parameter (fused.ts adamStep's signature): the scalar kernel or a SIMD one. */
export type AdamOne = (p: TypedArray, g: TypedArray, m: TypedArray, v: TypedArray, a: AdamAttrs, outP: TypedArray, outM: TypedArray, outV: TypedArray, float32: boolean) => void;

/** The adamStep kernel: inputs (p…, g…, m…, v…), outputs (p'…, m'…, v'…), one parameter at a time by `one`. */
/** The load estimator's P(x, i) (gating.ts), its elementwise part on `planes` where given (the SIMD module). */
export function probInTopKKernel(inputs: In, k: number, out: OutInfo, be: CpuBackend, planes: ProbInTopKPlanes | null): CpuHandle {
  const [clean, noisy, stddev, indices] = inputs as [In[0], In[0], In[0], In[0]];
  const y = full(out);
  probInTopK(data(clean), data(noisy), data(stddev), data(indices) as Int32Array, clean.shape[1]!, indices.shape[1]!, k, out.dtype === 'float32', y, planes);
  return be.wrap(y);
}

/** Its gradients ∂clean, ∂noisy, ∂stddev, likewise. */
export function probInTopKBackwardKernel(inputs: In, k: number, outs: readonly OutInfo[], be: CpuBackend, planes: ProbInTopKPlanes | null): CpuHandle[] {
  const [dP, clean, noisy, stddev, indices] = inputs as [In[0], In[0], In[0], In[0], In[0]];
  const [dClean, dNoisy, dStddev] = outs.map(full) as [TypedArray, TypedArray, TypedArray];
  probInTopKBackward(data(dP), data(clean), data(noisy), data(stddev), data(indices) as Int32Array, clean.shape[1]!, indices.shape[1]!, k, outs[0]!.dtype === 'float32',
    dClean, dNoisy, dStddev, planes);
  return [be.wrap(dClean), be.wrap(dNoisy), be.wrap(dStddev)];
}

export function adamStepKernel(inputs: In, { steps, ...attrs }: MultiOutputKernelAttrs['adamStep'], outs: readonly OutInfo[], be: CpuBackend, one: AdamOne): CpuHandle[] {
  const n = steps.length;
  const ys = outs.map(full);
  for (let i = 0; i < n; i++) {
    one(data(inputs[i]!), data(inputs[n + i]!), data(inputs[2 * n + i]!), data(inputs[3 * n + i]!), { ...attrs, step: steps[i]! },
      ys[i]!, ys[n + i]!, ys[2 * n + i]!, outs[i]!.dtype === 'float32');
  }
  return ys.map((y) => be.wrap(y));
}

/** The lstmSequence kernel over `ops` (the SIMD backend passes its own). */
export function lstmSequenceKernel(inputs: In, out: OutInfo, be: CpuBackend, ops: LstmSequenceOps): CpuHandle {
  const [xw, h0, c0, w, bias] = inputs as [In[0], In[0], In[0], In[0], In[0] | undefined];
  const [L, B] = xw.shape as [number, number], H = h0.shape[1]!;
  const y = full(out);
  lstmSequenceForward(data(xw), bias ? data(bias) : null, data(h0), data(c0), data(w), L, B, H, y, ops);
  return be.wrap(y);
}

/** The lstmSequenceBackward kernel over `ops`. */
export function lstmSequenceBackwardKernel(inputs: In, outs: readonly OutInfo[], be: CpuBackend, ops: LstmSequenceOps): CpuHandle[] {
  const [acts, h0, c0, w, dActs] = inputs as [In[0], In[0], In[0], In[0], In[0]];
  const [L, , B, H] = acts.shape as [number, number, number, number];
  const ys = outs.map(full);
  lstmSequenceBackward(data(acts), data(h0), data(c0), data(w), data(dActs), L, B, H, ys[0]!, ys[1]!, ys[2]!, ys[3]!, ys[4] ?? null, ops);
  return ys.map((y) => be.wrap(y));
}

/**
 * The CPU kernels, frozen. Another backend can reuse them and replace a few:
 * `new CpuBackend({ name: 'mine', kernels: { matmul: myMatmul } })`.
 */
export const cpuKernels: CpuKernelTable = Object.freeze(makeKernels());

/** A CPU kernel with several outputs (Backend.runMany). */
export type CpuMultiKernel<K extends MultiOutputKernelName> = (inputs: CpuInputs, attrs: MultiOutputKernelAttrs[K], outs: readonly OutInfo[], be: CpuBackend) => CpuHandle[];
export type CpuMultiKernelTable = { readonly [K in MultiOutputKernelName]: CpuMultiKernel<K> };

/** The CPU's kernels with several outputs, on the scalar kernels. */
export const cpuMultiKernels: CpuMultiKernelTable = Object.freeze({
  groupedWeightGrads: (inputs, { sizes, sums }, outs, be) => {
    const ys = outs.map(full), E = sizes.length;
    groupedWeightGradsScalar(data(inputs[0]!), data(inputs[1]!), inputs[0]!.shape[1]!, inputs[1]!.shape[1]!, sizes, ys.slice(0, E));
    if (sums !== undefined) {
      const s = inputs[sums === 'a' ? 0 : 1]!;
      segmentSums(data(s), s.shape[1]!, sizes, ys.slice(E));
    }
    return ys.map((y) => be.wrap(y));
  },
  lstmSequenceBackward: (inputs, _a, outs, be) => lstmSequenceBackwardKernel(inputs, outs, be, scalarSequenceOps),
  segmentSums: (inputs, { sizes }, outs, be) => {
    const ys = outs.map(full);
    segmentSums(data(inputs[0]!), inputs[0]!.shape[1]!, sizes, ys);
    return ys.map((y) => be.wrap(y));
  },
  weightedIndexAddBackward: (inputs, _a, outs, be) => {
    const [dOut, y, w, index] = inputs as [In[0], In[0], In[0], In[0]];
    const [dy, dw] = outs.map(full) as [TypedArray, TypedArray];
    weightedIndexAddBackward(data(dOut), data(y), data(w), data(index) as Int32Array, y.shape[1]!, dOut.shape[0]!, dy, dw);
    return [be.wrap(dy), be.wrap(dw)];
  },
  probInTopKBackward: (inputs, { k }, outs, be) => probInTopKBackwardKernel(inputs, k, outs, be, null),
  adamStep: (inputs, attrs, outs, be) => adamStepKernel(inputs, attrs, outs, be, adamStep),
  scaleAll: (inputs, _a, outs, be) => {
    const c = data(inputs[0]!)[0]!;
    return outs.map((o, i) => {
      const x = data(inputs[i + 1]!), y = full(o);
      for (let j = 0; j < y.length; j++) y[j] = x[j]! * c;
      return be.wrap(y);
    });
  },
  noisyTopKLogits: (inputs, attrs, outs, be) => composedNoisyTopK(inputs, attrs, outs, be),
});

/**
 * noisyTopKLogits as the ops compose it: each step through the backend's own kernel (be.run),
 * the very kernels those ops would run, so the same bits (the SIMD kernel's fallback too).
 */
export function composedNoisyTopK(inputs: CpuInputs, { epsilon, key, counter, m }: MultiOutputKernelAttrs['noisyTopKLogits'], outs: readonly OutInfo[], be: CpuBackend): CpuHandle[] {
  const [x, wGate, wNoise] = inputs as [In[0], In[0], In[0]];
  const { shape, dtype } = outs[0]!;
  const t = (handle: CpuHandle, s = shape) => ({ handle, shape: s, dtype });
  const product = { transposeA: false, transposeB: false };
  const clean = be.run('matmul', [x, wGate], product, outs[0]!) as CpuHandle;
  const raw = be.run('matmul', [x, wNoise], product, outs[1]!) as CpuHandle;
  const sp = be.run('softplus', [t(raw)], {}, outs[2]!) as CpuHandle;
  const eps = be.run('fill', [], { value: epsilon }, { shape: [], dtype }) as CpuHandle;
  const std = be.run('add', [t(sp), t(eps, [])], {}, outs[3]!) as CpuHandle;
  be.decRef(eps);
  const noise = be.run('random', [], { distribution: 'normal', key, counter }, outs[4]!) as CpuHandle;
  const scaled = be.run('mul', [t(noise), t(std)], {}, outs[5]!) as CpuHandle;
  const noisy = be.run('add', [t(clean), t(scaled)], {}, outs[6]!) as CpuHandle;
  const top = be.run('topkIndices', [t(noisy)], { k: m, largest: true }, outs[7]!) as CpuHandle;
  return [clean, raw, sp, std, noise, scaled, noisy, top];
}

export interface CpuBackendOptions {
  /** The backend's name (default 'cpu'); a backend built on these kernels names itself. */
  name?: string;
  /** Kernels that replace the CPU's own; the others are `cpuKernels`. */
  kernels?: Partial<CpuKernelTable>;
  /** Kernels with several outputs that replace the CPU's own (`cpuMultiKernels`). */
  multiKernels?: Partial<CpuMultiKernelTable>;
  /** What info() reports as the kernel class (default 'typed-array'). */
  kernelClass?: string;
  /** Backend-specific details info() adds (the SIMD matmul's state and thread count). */
  details?: () => Record<string, unknown>;
  /** Backend.overlapJobs (the SIMD engine's jobs left running); absent: f runs as it is. */
  overlap?: <T>(f: () => T) => T;
}

export class CpuBackend implements Backend {
  readonly name: string;
  readonly capabilities = { hostResident: true, dtypes: ['float32', 'float64', 'int32'] } as const;
  private nextId = 1;
  private live = 0;
  private liveBytes = 0;
  private uploads = 0;
  private readbacks = 0;
  private readonly kernels: CpuKernelTable;
  private readonly multiKernels: CpuMultiKernelTable;
  private readonly kernelClass: string;
  private readonly details: (() => Record<string, unknown>) | undefined;
  private readonly overlap: (<T>(f: () => T) => T) | undefined;
  private readonly table: KernelTable<CpuHandle>;

  constructor(options: CpuBackendOptions = {}) {
    this.name = options.name ?? 'cpu';
    this.kernelClass = options.kernelClass ?? 'typed-array';
    this.details = options.details;
    this.overlap = options.overlap;
    this.kernels = { ...cpuKernels, ...options.kernels };
    this.multiKernels = { ...cpuMultiKernels, ...options.multiKernels };
    this.table = this.bind();
  }

  private bind(): KernelTable<CpuHandle> {
    const out = {} as Record<KernelName, unknown>;
    for (const name of Object.keys(this.kernels) as KernelName[]) {
      const kernel = this.kernels[name] as CpuKernel<KernelName>;
      out[name] = (inputs: In, attrs: KernelAttrs[KernelName], info: OutInfo) => kernel(inputs, attrs, info, this);
    }
    return out as KernelTable<CpuHandle>;
  }

  /** Adopts a freshly computed typed array as a new live handle. */
  wrap(values: TypedArray): CpuHandle {
    this.live++;
    this.liveBytes += values.byteLength;
    // The cache may hold up to twice the peak of live bytes (see pool.ts).
    if (2 * this.liveBytes > cpuPool.limitBytes) cpuPool.limitBytes = 2 * this.liveBytes;
    return new CpuHandle(this.nextId++, values);
  }

  upload(values: TypedArray): Handle {
    this.uploads++;
    const copy = cpuPool.take(dtypeOfArray(values), values.length, false);
    copy.set(values);
    return this.wrap(copy);
  }

  supports(kernel: FusedKernelName | MultiOutputKernelName): boolean {
    return kernel in this.multiKernels || this.table[kernel as FusedKernelName] !== undefined;
  }

  runMany<K extends MultiOutputKernelName>(kernel: K, inputs: readonly TensorInfo[], attrs: MultiOutputKernelAttrs[K], outs: readonly OutInfo[]): Handle[] {
    const handles = (this.multiKernels[kernel] as CpuMultiKernel<K>)(inputs as In, attrs, outs, this);
    handles.forEach((h, i) => {
      const expected = sizeOf(outs[i]!.shape);
      if (h.values!.length !== expected || dtypeOfArray(h.values!) !== outs[i]!.dtype) {
        throw new Error(`cpu backend: kernel ${kernel} output ${i} has ${h.values!.length} ${dtypeOfArray(h.values!)} values, expected ${expected} ${outs[i]!.dtype}`);
      }
    });
    return handles;
  }

  run<K extends KernelName>(kernel: K, inputs: readonly TensorInfo[], attrs: KernelAttrs[K], out: OutInfo): Handle {
    const handle = (this.table[kernel] as KernelTable<CpuHandle>[CoreKernelName] as (i: In, a: KernelAttrs[K], o: OutInfo) => CpuHandle)(inputs as In, attrs, out);
    const expected = sizeOf(out.shape);
    if (handle.values!.length !== expected || dtypeOfArray(handle.values!) !== out.dtype) {
      throw new Error(`cpu backend: kernel ${kernel} produced ${handle.values!.length} ${dtypeOfArray(handle.values!)} values, expected ${expected} ${out.dtype}`);
    }
    return handle;
  }

  overlapJobs<T>(f: () => T): T {
    return this.overlap ? this.overlap(f) : f();
  }

  readSync(handle: Handle, dtype: DType): TypedArray {
    const values = (handle as CpuHandle).values;
    if (values === null) throw new Error(`cpu backend: read of freed handle ${handle.id}`);
    if (cpuPool.pending !== null && cpuPool.pending.outputs.has(values)) cpuPool.settle();
    if (cpuPool.deferredLive > 0) cpuPool.fillRows(values);
    if (dtypeOfArray(values) !== dtype) throw new Error(`cpu backend: handle ${handle.id} holds ${dtypeOfArray(values)}, not ${dtype}`);
    this.readbacks++;
    return values.slice();
  }

  read(handle: Handle, dtype: DType): Promise<TypedArray> {
    return Promise.resolve(this.readSync(handle, dtype));
  }

  incRef(handle: Handle): void {
    const h = handle as CpuHandle;
    if (h.values === null) throw new Error(`cpu backend: incRef of freed handle ${h.id}`);
    h.refs++;
  }

  decRef(handle: Handle): void {
    const h = handle as CpuHandle;
    if (h.values === null) throw new Error(`cpu backend: handle ${h.id} freed twice`);
    if (--h.refs === 0) {
      this.live--;
      this.liveBytes -= h.values.byteLength;
      cpuPool.give(h.values);
      h.values = null;
    }
  }

  memory(): MemoryInfo {
    const heap = cpuPool.heap;
    return {
      liveHandles: this.live, bytes: this.liveBytes, uploads: this.uploads, readbacks: this.readbacks, kernelsCompiled: 0, cachedBytes: cpuPool.cachedBytes,
      ...(heap !== null ? { wasmMemoryBytes: heap.memoryBytes, wasmFreeBytes: heap.freeBytes } : {}),
    };
  }

  emptyCache(): void {
    cpuPool.empty();
    // The cache may grow back to twice the peak of live bytes seen from now on, not the old peak's.
    cpuPool.limitBytes = 2 * this.liveBytes;
  }

  info(): BackendInfo {
    return { ...this.details?.(), name: this.name, mode: 'cpu', kernelClass: this.kernelClass, dtypes: this.capabilities.dtypes };
  }
}
