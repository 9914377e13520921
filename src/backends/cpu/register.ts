// How setBackend('cpu', { threads, simd }) starts and reconfigures the CPU backend: the
// typed-array kernels, with matmul on WebAssembly SIMD128 over a worker pool where this
// JavaScript engine allows it (src/backends/cpu/wasm/). One instance: the thread count and
// the SIMD switch change how products are computed, never where tensors live, so calling
// setBackend('cpu', …) again reconfigures it and every tensor stays usable.

import type { OutInfo } from '../../core/backend.js';
import type { TypedArray } from '../../core/dtype.js';
import type { BackendRegistration } from '../../core/registry.js';
import { sizeOf, type Shape } from '../../core/shape.js';
import { adamStepKernel, CpuBackend, cpuKernels, cpuMultiKernels, data, deferredRows, lstmCellKernel, lstmSequenceBackwardKernel, lstmSequenceKernel, probInTopKBackwardKernel, probInTopKKernel, type CpuKernel, type CpuMultiKernel } from './cpu-backend.js';
import { adamStep, lstmCellForward, type LstmSequenceOps } from './fused.js';
import { checkIndex, topkIndices } from './indexing.js';
import { contiguousSplit, logsumexpRows } from './reduce.js';
import type { ProbInTopKPlanes } from './gating.js';
import { matmul as scalarMatmul } from './matmul/matmul.js';
import { cpuPool, type DeferredRows } from './pool.js';
import { fillRandom } from '../../core/philox.js';
import { WasmMatmul } from './wasm/wasm-matmul.js';
import type { WasmHeap } from './wasm/wasm-heap.js';
import { wasmApi } from './wasm/wasm-api.js';
import { MIN_ARITHMETIC, MIN_ELEMENTS, WasmMath } from './wasm/wasm-math.js';
import type { ArithmeticMode, ArithmeticOp } from './wasm/math-module.js';

export interface CpuOptions {
  /**
   * Threads a large matrix product is split over (default: the number of cores). Results
   * are bit-identical for any count. Without shared memory (a browser page that is not
   * cross-origin isolated) products run on one thread and backendInfo().threadsReason says why.
   */
  threads?: number;
  /**
   * false: the scalar typed-array matmul (the reference the SIMD kernels are tested
   * against). true: require WebAssembly SIMD (an error where it is missing). Default: SIMD
   * where available, else scalar, with backendInfo().simdReason saying why.
   */
  simd?: boolean;
}

/**
 * The rows the SIMD topk flags (a NaN, or fewer than k values above −∞) redone by the scalar
 * loop: xs holds rows of n, y rows of k indices; the topkIndices kernel's indices for them.
 */
function redoFlaggedRows(xs: Float32Array, n: number, k: number, y: Int32Array, flags: Int32Array): void {
  for (let r = 0; r < flags.length; r++) if (flags[r] !== 0) topkIndices(xs.subarray(r * n, (r + 1) * n), [n], k, y.subarray(r * k, (r + 1) * k), true);
}

/** The SIMD matmul's state for one CPU backend instance. */
class SimdState {
  /** The SIMD module, or why it cannot run here; built on first use of the backend. */
  private wasm: WasmMatmul | string | null = null;
  enabled = true;
  /** Threads requested (null: the pool's default, the core count). */
  private requested: number | null = null;

  engine(): WasmMatmul | string {
    if (this.wasm === null) {
      this.wasm = WasmMatmul.create();
      if (typeof this.wasm !== 'string' && this.requested !== null) this.wasm.pool?.resize(this.requested);
    }
    return this.wasm;
  }

  /**
   * The memory large float tensors are placed in (the pool asks when it makes one): the SIMD
   * engine's, where it runs with a shared memory and SIMD is on; else null (ordinary arrays).
   */
  tensorHeap(): WasmHeap | null {
    const engine = this.enabled ? this.engine() : null;
    return engine !== null && typeof engine !== 'string' && engine.heap.shared ? engine.heap : null;
  }

  configure(options: CpuOptions): void {
    const { threads, simd } = options;
    if (simd !== undefined && typeof simd !== 'boolean') throw new Error(`setBackend('cpu', { simd }): simd must be true or false, got ${String(simd)}`);
    if (threads !== undefined && (!Number.isInteger(threads) || threads < 1 || threads > 64)) {
      throw new Error(`setBackend('cpu', { threads }): threads must be an integer from 1 to 64, got ${String(threads)}`);
    }
    if (simd === true) {
      const engine = this.engine();
      if (typeof engine === 'string') throw new Error(`setBackend('cpu', { simd: true }): ${engine}; use simd: false for the scalar kernels`);
    }
    cpuPool.settle();
    if (simd !== undefined) this.enabled = simd;
    if (threads !== undefined) {
      this.requested = threads;
      const engine = this.wasm;
      if (engine !== null && typeof engine !== 'string') engine.pool?.resize(threads);
    }
  }

  details(): Record<string, unknown> {
    const engine = this.engine();
    if (typeof engine === 'string') return { simd: false, simdReason: engine, threads: 1, threadsReason: 'the scalar kernels run on one thread' };
    if (!this.enabled) return { simd: false, simdReason: "setBackend('cpu', { simd: false }): the scalar kernels", threads: 1, threadsReason: 'the scalar kernels run on one thread' };
    const s = engine.status;
    return {
      simd: true, simdReason: s.simdReason,
      threads: engine.threads,
      threadsReason: s.threadsReason,
      simdProducts: engine.products,
      // Expert weights kept in the wasm memory between grouped products (wasm-matmul.ts).
      residentBytes: engine.residentBytes, residentHits: engine.residentHits, residentCopies: engine.residentCopies,
      // Products that found their A operand still in the wasm memory from the product before.
      operandReuses: engine.aReused,
      // Tensors placed in the engine's shared memory (read and written there in place by the products).
      tensorsInWasmMemory: engine.heap.shared,
      wasmMemoryBytes: engine.heap.memoryBytes, wasmMemoryLiveBytes: engine.heap.liveBytes, wasmMemoryFreeBytes: engine.heap.freeBytes,
      inPlaceOperands: engine.inPlace,
      // indexSelects of whole rows whose copy was deferred (pool.ts gathers), and of those, copied after all
      // because something other than a grouped product read them (an MoE step: 1 and 0).
      gathersDeferred: cpuPool.gathersDeferred, gathersFilled: cpuPool.gathersFilled,
      // float32 σ, tanh and LSTM cells computed by the SIMD transcendental kernels.
      simdMath: this.math() !== null ? 'WebAssembly SIMD128 σ, tanh, LSTM cell, Adam and the MoE combine (float32); e^x and Φ in float64 lanes (the bits of Math.exp); random draws: Philox rounds, and normal draws\' Box–Muller in SIMD lanes' : `scalar: ${String(this.mathModule)}`,
      simdMathCalls: this.math()?.calls ?? 0,
      simdMathInPlace: this.math()?.inPlace ?? 0,
      simdMathSplit: this.math()?.splitCalls ?? 0,
      chunksByThread: engine.pool?.chunksByThread() ?? [],
      // Jobs split over the threads (products, kernel pieces), and the milliseconds they took: the rest of a step
      // runs on the calling thread alone while the workers wait.
      threadedJobs: engine.pool?.jobs ?? 0, threadedJobMs: engine.pool?.jobMs ?? 0,
      // Of those, jobs left running while the calling thread went on (the experts' products beside the gate's
      // balancing half and its backward), and of these, single products too small to split (the gate's x·W_gate
      // beside its x·W_noise and noise draws).
      jobsLeftRunning: engine.pool?.jobsLeftRunning ?? 0, productsLeftRunning: engine.productsLeftRunning,
      // Noisy top-k gates whose logits, noise and top indices ran as one job of row blocks over the threads.
      noisyGateJobs: engine.noisyGateJobs,
    };
  }

  /** The float32 σ/tanh/LSTM-cell module, or why it cannot run here; built on first use. */
  private mathModule: WasmMath | string | null = null;

  /** The SIMD transcendental kernels when SIMD is on and runs here, else null. */
  private math(): WasmMath | null {
    if (!this.enabled) return null;
    if (this.mathModule === null) {
      // On the matmul's memory where it is shared, so that both read tensors there in place.
      const engine = this.engine();
      this.mathModule = typeof engine === 'string' ? WasmMath.create(wasmApi ?? null, null) : WasmMath.create(wasmApi ?? null, engine.heap, engine);
    }
    return typeof this.mathModule === 'string' ? null : this.mathModule;
  }

  /**
   * Runs `kernel` on the math module into fresh unzeroed float32 arrays of `outs`; null (the
   * arrays given back) where the module is off, an output is not float32, or the kernel
   * declines: the caller then runs the scalar kernel. Callers turn small jobs away first, so a
   * tiny op pays no closure or pool round trip.
   */
  private onMath(outs: readonly OutInfo[], kernel: (math: WasmMath, ys: Float32Array[]) => boolean): Float32Array[] | null {
    const math = this.math();
    if (math === null || outs.some((o) => o.dtype !== 'float32')) return null;
    const ys = outs.map((o) => cpuPool.take('float32', sizeOf(o.shape), false) as Float32Array);
    if (kernel(math, ys)) return ys;
    for (const y of ys) cpuPool.give(y);
    return null;
  }

  /** float32 σ, tanh or softplus on SIMD (the scalar kernel's bits); other dtypes and small arrays go scalar. */
  unary<K extends 'sigmoid' | 'tanh' | 'softplus'>(op: K): CpuKernel<K> {
    return (inputs, attrs, out, be) => {
      const ys = sizeOf(out.shape) >= MIN_ELEMENTS ? this.onMath([out], (math, [y]) => math.unary(op, data(inputs[0]!) as Float32Array, y!)) : null;
      return ys ? be.wrap(ys[0]!) : (cpuKernels[op] as CpuKernel<K>)(inputs, attrs, out, be);
    };
  }

  /** e^x (float32, float64) and float32 Φ on the SIMD math module in float64 lanes (the scalar kernels' bits), else the loops. */
  f64Unary<K extends 'exp' | 'normalCdf'>(op: K): CpuKernel<K> {
    return (inputs, attrs, out, be) => {
      const x = data(inputs[0]!), math = sizeOf(out.shape) >= MIN_ELEMENTS && out.dtype !== 'int32' ? this.math() : null;
      if (math !== null && (x instanceof Float32Array || x instanceof Float64Array)) {
        const y = cpuPool.take(out.dtype, sizeOf(out.shape), false) as Float32Array | Float64Array;
        if (math.f64Unary(op, x, y)) return be.wrap(y);
        cpuPool.give(y);
      }
      return (cpuKernels[op] as CpuKernel<K>)(inputs, attrs, out, be);
    };
  }

  /**
   * A float sum over the leading axes of a tensor of the engine's memory (sum(x, 0) of [N, E]:
   * the gate's importance and load) on the emitted colSums, float64 sums in row order rounded
   * once: reduce.ts's bits. Anything else: reduce.ts.
   */
  sum(): CpuKernel<'sum'> {
    return (inputs, attrs, out, be) => {
      const x = inputs[0]!, engine = x.dtype !== 'int32' && sizeOf(x.shape) >= MIN_ELEMENTS ? this.simd() : null;
      const split = engine !== null ? contiguousSplit(x.shape, attrs.axes) : null;
      if (engine !== null && split !== null && split[0] === 1 && split[2] > 1) {
        const y = cpuPool.take(out.dtype, split[2], false) as Float32Array | Float64Array;
        if (engine.columnSums(data(x) as Float32Array | Float64Array, split[1], split[2], y)) return be.wrap(y);
        cpuPool.give(y);
      }
      return cpuKernels.sum(inputs, attrs, out, be);
    };
  }

  /** logsumexp over rows with its e^x on the SIMD math module in one call (reduce.ts; the loops' bits), else the loops. */
  logsumexpRows(): CpuKernel<'logsumexpRows'> {
    return (inputs, _attrs, out, be) => {
      const x = inputs[0]!, y = cpuPool.take(out.dtype, sizeOf(out.shape)), math = sizeOf(x.shape) >= MIN_ELEMENTS ? this.math() : null;
      logsumexpRows(data(x), x.shape[x.shape.length - 1]!, out.dtype === 'float32', y, math === null ? null : (t, e) => math.f64Unary('exp', t, e),
        math === null || !this.rowsLogsumexp ? null : (v, n, sums, shifts) => math.logsumexpRows(v, n, sums, shifts));
      return be.wrap(y);
    };
  }

  /**
   * float32 add, sub, mul, div on the SIMD math module where the layout allows (one shape, a
   * scalar operand, or a row [C] / column [.., 1] operand with C a multiple of 4), else the
   * scalar kernels: the same bits either way.
   */
  arithmetic<K extends ArithmeticOp>(op: K): CpuKernel<K> {
    const scalar = cpuKernels[op] as CpuKernel<K>;
    return (inputs, attrs, out, be) => {
      // Small ops (the per-op overhead of a training step's scalars) go straight to the loops.
      if (sizeOf(out.shape) < MIN_ARITHMETIC) return scalar(inputs, attrs, out, be);
      const [a, b] = inputs as [typeof inputs[0], typeof inputs[0]];
      const plan = arithmeticPlan(a.shape, b.shape, out.shape), ad = data(a), bd = data(b);
      const ys = plan !== null && ad instanceof Float32Array && bd instanceof Float32Array
        ? this.onMath([out], (math, [y]) => math.arithmetic(op, plan.mode, ad, plan.aStep, bd, plan.bStep, plan.rows, plan.cols, y!)) : null;
      return ys ? be.wrap(ys[0]!) : scalar(inputs, attrs, out, be);
    };
  }

  /** The load estimator's P(x, i) with its Φ on the SIMD math module (float32), else the loop: the same bits. */
  probInTopK(): CpuKernel<'probInTopK'> {
    return (inputs, { k }, out, be) => probInTopKKernel(inputs, k, out, be, this.planes());
  }

  probInTopKBackward(): CpuMultiKernel<'probInTopKBackward'> {
    return (inputs, { k }, outs, be) => probInTopKBackwardKernel(inputs, k, outs, be, this.planes());
  }

  private probPlanes: ProbInTopKPlanes | null = null;

  /** probInTopK's SIMD planes when the math module runs here (made once; each call counted there). */
  private planes(): ProbInTopKPlanes | null {
    const math = this.math();
    if (math === null) return null;
    return this.probPlanes ??= {
      forward: (clean, thr, sd, out) => math.probInTopK(clean, thr, sd, out),
      backward: (dP, clean, thr, sd, dClean, dSd) => math.probInTopKBackward(dP, clean, thr, sd, dClean, dSd),
      thresholds: (noisy, tRows, thr, E) => this.rowsThresholds && math.thresholds(noisy, tRows, thr, E),
      thresholdSums: (noisy, dClean, tRows, sums, E) => this.rowsThresholds && math.thresholdSums(noisy, dClean, tRows, sums, E),
    };
  }

  /** relu's gradient on the SIMD math module (float32), else the scalar kernel. */
  reluGrad(): CpuKernel<'reluGrad'> {
    return (inputs, attrs, out, be) => {
      const dy = data(inputs[0]!), x = data(inputs[1]!);
      const ys = sizeOf(out.shape) >= MIN_ARITHMETIC && dy instanceof Float32Array && x instanceof Float32Array
        ? this.onMath([out], (math, [y]) => math.reluGrad(dy, x, y!)) : null;
      return ys ? be.wrap(ys[0]!) : cpuKernels.reluGrad!(inputs, attrs, out, be);
    };
  }

  /**
   * float32 top-k indices, largest first, on SIMD (WasmMath.topk); rows it flags (a NaN, or
   * −∞ among the k best) and everything else go to the loop: the scalar kernel's indices.
   */
  topkIndices(): CpuKernel<'topkIndices'> {
    return (inputs, attrs, out, be) => {
      const x = inputs[0]!, math = x.dtype === 'float32' && attrs.largest && x.shape.length > 0 ? this.math() : null;
      if (math !== null) {
        const n = x.shape[x.shape.length - 1]!, k = attrs.k, rows = n === 0 ? 0 : sizeOf(x.shape) / n;
        const y = cpuPool.take('int32', rows * k, false) as Int32Array, flags = cpuPool.take('int32', rows, false) as Int32Array;
        const xs = data(x) as Float32Array;
        if (math.topk(xs, rows, n, k, y, flags)) {
          redoFlaggedRows(xs, n, k, y, flags);
          cpuPool.give(flags);
          return be.wrap(y);
        }
        cpuPool.give(flags);
        cpuPool.give(y);
      }
      return cpuKernels.topkIndices(inputs, attrs, out, be);
    };
  }

  /** The MoE combine on the SIMD math module (float32, rows a multiple of 4 wide), else the scalar kernel. */
  weightedIndexAdd(): CpuKernel<'weightedIndexAdd'> {
    return (inputs, attrs, out, be) => {
      const [y, w, index] = inputs as [typeof inputs[0], typeof inputs[0], typeof inputs[0]];
      const ys = y.shape[1]! % 4 === 0 ? this.onMath([out], (math, [o]) => {
        const idx = data(index) as Int32Array;
        for (let i = 0; i < idx.length; i++) checkIndex('weightedIndexAdd', idx[i]!, attrs.numRows, 0);
        return math.combine(data(y) as Float32Array, data(w) as Float32Array, idx, y.shape[1]!, attrs.numRows, o!);
      }) : null;
      return ys ? be.wrap(ys[0]!) : cpuKernels.weightedIndexAdd!(inputs, attrs, out, be);
    };
  }

  weightedIndexAddBackward(): CpuMultiKernel<'weightedIndexAddBackward'> {
    return (inputs, attrs, outs, be) => {
      const [dOut, y, w, index] = inputs as [typeof inputs[0], typeof inputs[0], typeof inputs[0], typeof inputs[0]];
      const ys = y.shape[1]! % 4 === 0 ? this.onMath(outs, (math, [dy, dw]) => {
        const idx = data(index) as Int32Array, numRows = dOut.shape[0]!;
        for (let i = 0; i < idx.length; i++) checkIndex('weightedIndexAddBackward', idx[i]!, numRows, 0);
        return math.combineBackward(data(dOut) as Float32Array, data(y) as Float32Array, data(w) as Float32Array, idx, y.shape[1]!, numRows, dy!, dw!);
      }) : null;
      return ys ? ys.map((a) => be.wrap(a)) : cpuMultiKernels.weightedIndexAddBackward(inputs, attrs, outs, be);
    };
  }

  /** Uniform and normal draws with the Philox rounds on WebAssembly (the same words as the JavaScript rounds). */
  random(): CpuKernel<'random'> {
    return (inputs, attrs, out, be) => {
      const math = this.math();
      if (math === null || out.dtype === 'int32') return cpuKernels.random(inputs, attrs, out, be);
      const y = cpuPool.take(out.dtype, sizeOf(out.shape), false) as Float32Array | Float64Array;
      fillRandom(y, attrs.distribution, attrs.key, attrs.counter, math.philoxBlocks, math.normalPairs);
      return be.wrap(y);
    };
  }

  lstmCell(): CpuKernel<'lstmCell'> {
    return (inputs, _a, out, be) => lstmCellKernel(inputs, out, be, this.sequenceOps.cell);
  }

  /** An LSTM layer's products and cells as the per-step ops would run them: SIMD where it takes them. */
  private readonly sequenceOps: LstmSequenceOps = {
    matmul: (a, aShape, b, bShape, out, outShape, transposeA, transposeB) => {
      const engine = this.simd();
      if (engine === null || !engine.matmul(a, aShape, b, bShape, out, outShape, transposeA, transposeB, false, null, engine.sequenceMacs)) scalarMatmul(a, aShape, b, bShape, out, outShape, transposeA, transposeB);
    },
    cell: (z, c, B, H, acts) => {
      const math = z instanceof Float32Array ? this.math() : null;
      if (math === null || !math.lstmCell(z as Float32Array, c as Float32Array, B, H, acts as Float32Array)) lstmCellForward(z, c, B, H, acts, z instanceof Float32Array);
    },
  };

  /** Adam over every parameter: float32 ones on SIMD (the scalar kernel's bits), others scalar. */
  adamStep(): CpuMultiKernel<'adamStep'> {
    return (inputs, attrs, outs, be) => {
      const math = this.math();
      return adamStepKernel(inputs, attrs, outs, be, (p, g, m, v, a, oP, oM, oV, f32) => {
        if (!(f32 && math !== null && math.adam(p as Float32Array, g as Float32Array, m as Float32Array, v as Float32Array, a, oP as Float32Array, oM as Float32Array, oV as Float32Array))) adamStep(p, g, m, v, a, oP, oM, oV, f32);
      });
    };
  }

  lstmSequence(): CpuKernel<'lstmSequence'> {
    return (inputs, _a, out, be) => lstmSequenceKernel(inputs, out, be, this.sequenceOps);
  }

  lstmSequenceBackward(): CpuMultiKernel<'lstmSequenceBackward'> {
    return (inputs, _a, outs, be) => lstmSequenceBackwardKernel(inputs, outs, be, this.sequenceOps);
  }

  /** The SIMD engine when it is on and runs here, else null (the scalar kernels). */
  private simd(): WasmMatmul | null {
    const engine = this.enabled ? this.engine() : null;
    return engine !== null && typeof engine !== 'string' ? engine : null;
  }

  /**
   * Runs `product` into fresh unzeroed arrays of `outs` on the SIMD engine; null (the arrays
   * given back) where the engine is off or declines the product (int32, too small to pay for
   * the copies, beyond the wasm memory): the caller then runs the scalar kernel.
   */
  private onSimd(outs: readonly OutInfo[], product: (engine: WasmMatmul, ys: TypedArray[]) => boolean): TypedArray[] | null {
    const engine = this.simd();
    if (engine === null) return null;
    const ys = outs.map((o) => cpuPool.take(o.dtype, sizeOf(o.shape), false));
    if (product(engine, ys)) return ys;
    for (const y of ys) cpuPool.give(y);
    return null;
  }

  /**
   * onSimd for a grouped product that, inside overlapJobs, may be left running: then its
   * results are registered as pending (cpuPool.pending, with its operands) until it is joined.
   */
  private leavingRunning(outs: readonly OutInfo[], operands: readonly TypedArray[], product: (engine: WasmMatmul, ys: TypedArray[], async: { done: () => void } | null) => boolean): TypedArray[] | null {
    // One job left running at a time: the one before is finished first, so that `busy` below is this one's.
    if (this.overlapping) cpuPool.settle();
    let leftRunning = false;
    const ys = this.onSimd(outs, (engine, arrays) => {
      const ran = product(engine, arrays, this.overlapping ? this.joined : null);
      leftRunning = ran && engine.busy;
      return ran;
    });
    if (ys !== null && leftRunning) this.pending(ys, operands);
    return ys;
  }

  /** Registers the job just left running on the engine: its results wait for it when read or freed (cpuPool.pending). */
  private pending(outputs: readonly TypedArray[], operands: readonly TypedArray[]): void {
    const engine = this.engine() as WasmMatmul;
    cpuPool.pending = { outputs: new Set(outputs), operands, join: () => engine.pool!.join() };
  }

  /** The `async` of a job that may be left running (its results freed for reading when joined): one object for every call. */
  private readonly joined = { done: () => cpuPool.finished() };

  groupedMatmul(): CpuKernel<'groupedMatmul'> {
    return (inputs, attrs, out, be) => {
      const E = attrs.sizes.length, biases = attrs.bias ? inputs.slice(1 + E).map(data) : null;
      const weights = inputs.slice(1, 1 + E).map(data);
      const run = (x: TypedArray, indexed: DeferredRows | null) => this.leavingRunning([out], [indexed?.src ?? x, ...weights, ...(biases ?? [])], (engine, [y], async) =>
        engine.grouped('rows', x, weights, attrs.sizes, inputs[0]!.shape[1]!, out.shape[1]!, attrs.transposeB, y!, { biases, relu: attrs.relu === true, async, indexed }));
      // x the MoE's dispatched rows, not copied yet: read where they lie (else copied by data).
      const rows = deferredRows(inputs[0]!);
      const ys = (rows !== null ? run(inputs[0]!.handle.values!, rows) : null) ?? run(data(inputs[0]!), null);
      return ys ? be.wrap(ys[0]!) : cpuKernels.groupedMatmul!(inputs, attrs, out, be);
    };
  }

  /** Inside overlapJobs: grouped weight gradients may be left running (nothing in a backward reads them but the sums into the leaves). */
  private overlapping = false;
  /** Whether indexSelect of whole rows defers its copy (pool.ts gathers; off: copied at once, for A/B measurements and tests). */
  deferGathers = true;
  /** Whether float32 logsumexp over rows of a multiple of 4 runs its row passes in the math module (logsumexpRows_f32; off: the JavaScript rows around one e^x call, for A/B measurements and tests). */
  rowsLogsumexp = true;
  /** Whether probInTopK's thresholds and their gradients' row sums run in the math module (E a multiple of 4; off: JavaScript loops, for A/B measurements and tests). */
  rowsThresholds = true;
  /** Whether overlapJobs leaves jobs running at all (off: every job is joined where it is posted; for A/B measurements and tests). */
  overlap = true;

  /**
   * Runs f with grouped weight gradients left running on the workers (WasmMatmul.grouped's
   * `async`) while the calling thread goes on with the rest of the backward; pieces of other
   * kernels meanwhile run on the calling thread, and the next job joins it first. A read of
   * its results (cpu-backend.ts `data`, readSync) waits for it, and blocks given back wait
   * until it is done (pool.ts). Every job left running is finished when f returns.
   */
  overlapJobs<T>(f: () => T): T {
    if (this.overlapping || !this.overlap) return f();
    this.overlapping = true;
    try {
      return f();
    } finally {
      this.overlapping = false;
      cpuPool.settle();
    }
  }

  groupedWeightGrads(): CpuMultiKernel<'groupedWeightGrads'> {
    return (inputs, attrs, outs, be) => {
      const [a, b] = inputs as [typeof inputs[0], typeof inputs[0]];
      const E = attrs.sizes.length, of = attrs.sums;
      const av = data(a);
      const run = (bv: TypedArray, indexed: DeferredRows | null) => this.leavingRunning(outs, [av, indexed?.src ?? bv], (engine, arrays, async) => engine.grouped('weights', av, [bv], attrs.sizes,
        a.shape[1]!, b.shape[1]!, false, arrays.slice(0, E), { sums: of === undefined ? null : { of, outs: arrays.slice(E) }, async, indexed }));
      // b the MoE's dispatched rows (∂W₁ = ∂hᵀ·x), not copied yet: read where they lie.
      const rows = deferredRows(b);
      const ys = (rows !== null ? run(b.handle.values!, rows) : null) ?? run(data(b), null);
      return ys ? ys.map((y) => be.wrap(y)) : cpuMultiKernels.groupedWeightGrads(inputs, attrs, outs, be);
    };
  }

  /**
   * The noisy gate's logits and top indices as one job of row blocks over the threads
   * (WasmMatmul.noisyTopK: float32, E a multiple of 8), the rows its topk flags redone as the
   * topkIndices kernel redoes them; else the ops' own kernels in turn.
   */
  noisyTopKLogits(): CpuMultiKernel<'noisyTopKLogits'> {
    return (inputs, attrs, outs, be) => {
      const engine = this.simd();
      const [x, wGate, wNoise] = inputs as [typeof inputs[0], typeof inputs[0], typeof inputs[0]];
      if (engine !== null && x.dtype === 'float32') {
        const [N, d] = x.shape as [number, number], E = outs[0]!.shape[1]!, m = attrs.m;
        const ys = outs.map((o) => cpuPool.take(o.dtype, sizeOf(o.shape), false));
        const flags = engine.noisyTopK(data(x), data(wGate), data(wNoise), N, d, E, m, attrs.epsilon, attrs.key, attrs.counter, ys);
        if (flags !== null) {
          redoFlaggedRows(ys[6] as Float32Array, E, m, ys[7] as Int32Array, flags);
          return ys.map((y) => be.wrap(y));
        }
        for (const y of ys) cpuPool.give(y);
      }
      return cpuMultiKernels.noisyTopKLogits(inputs, attrs, outs, be);
    };
  }

  /**
   * indexSelect of whole rows (axis 0, rows of at least 64 bytes) between tensors of the SIMD
   * engine's memory: one memory.copy per row (the MoE's dispatch of its routed rows); else the
   * scalar kernel. The same values either way.
   */
  indexSelect(): CpuKernel<'indexSelect'> {
    return (inputs, attrs, out, be) => {
      const [x, index] = inputs as [typeof inputs[0], typeof inputs[0]];
      const engine = this.simd(), rowElems = sizeOf(x.shape.slice(1));
      const xv = engine !== null && attrs.axis === 0 && x.dtype !== 'int32' && rowElems * (x.dtype === 'float64' ? 8 : 4) >= 64 ? data(x) : null;
      if (engine !== null && xv !== null && engine.heap.addressOf(xv) >= 0) {
        const idx = data(index) as Int32Array, rows = x.shape[0]!;
        for (let j = 0; j < idx.length; j++) checkIndex('indexSelect', idx[j]!, rows, 0);
        const y = cpuPool.take(out.dtype, sizeOf(out.shape), false);
        // Deferred (pool.ts gathers): a grouped product reads the rows where they lie, and
        // anything else that reads y has them copied first. Its own copy of the indices: the
        // index tensor may be freed before.
        if (this.deferGathers && engine.heap.addressOf(y) >= 0) {
          const kept = idx.slice();
          cpuPool.deferRows(y, { src: xv, index: kept, fill: () => { engine.gatherRows(xv, kept, rowElems, y); } });
          return be.wrap(y);
        }
        if (engine.gatherRows(xv, idx, rowElems, y)) return be.wrap(y);
        cpuPool.give(y);
      }
      return cpuKernels.indexSelect(inputs, attrs, out, be);
    };
  }

  /** Every matmul of a step comes here: no closure or array per call, unlike onSimd. */
  matmul(): CpuKernel<'matmul'> {
    return (inputs, attrs, out, be) => {
      const engine = this.simd();
      if (engine !== null) {
        const [a, b] = inputs as [typeof inputs[0], typeof inputs[0]];
        const av = data(a), bv = data(b);
        // Inside overlapJobs with no job running, a product too small to split may be left
        // running on the workers (WasmMatmul.matmul's `async`) while this thread goes on.
        const async = this.overlapping && cpuPool.pending === null ? this.joined : null;
        const y = cpuPool.take(out.dtype, sizeOf(out.shape), false);
        if (engine.matmul(av, a.shape, bv, b.shape, y, out.shape, attrs.transposeA, attrs.transposeB, true, async)) {
          if (async !== null && engine.busy) this.pending([y], [av, bv]);
          return be.wrap(y);
        }
        cpuPool.give(y);
      }
      // Not a product for SIMD (int32, too small to pay for the copies) or SIMD is off.
      return cpuKernels.matmul(inputs, attrs, out, be);
    };
  }
}

/**
 * How a float32 arithmetic op reads its operands on the math module, or null where the layout
 * is another (the scalar kernels take it): out [.., C] viewed as rows × C; an operand of
 * out's size is read whole, a scalar or a column [.., 1] one float per row (splat), a row [C]
 * the same C floats for every row.
 */
export function arithmeticPlan(aShape: Shape, bShape: Shape, outShape: Shape): { mode: ArithmeticMode; rows: number; cols: number; aStep: number; bStep: number } | null {
  const n = sizeOf(outShape), na = sizeOf(aShape), nb = sizeOf(bShape);
  if (na === n && nb === n) return { mode: 'vv', rows: 1, cols: n, aStep: 0, bStep: 0 };
  if (na === n && nb === 1) return { mode: 'vs', rows: 1, cols: n, aStep: 0, bStep: 0 };
  if (na === 1 && nb === n) return { mode: 'sv', rows: 1, cols: n, aStep: 0, bStep: 0 };
  const r = outShape.length, C = outShape[r - 1] ?? 1, rows = n / C;
  if (r === 0 || n === 0) return null;
  const padded = (s: Shape) => [...new Array<number>(r - s.length).fill(1), ...s];
  const isColumn = (s: Shape) => { const p = padded(s); return p[r - 1] === 1 && p.slice(0, -1).every((d, i) => d === outShape[i]); };
  const isRow = (s: Shape) => { const p = padded(s); return p[r - 1] === C && p.slice(0, -1).every((d) => d === 1); };
  if (na === n && isColumn(bShape)) return { mode: 'vs', rows, cols: C, aStep: C, bStep: 1 };
  if (nb === n && isColumn(aShape)) return { mode: 'sv', rows, cols: C, aStep: 1, bStep: C };
  if (na === n && isRow(bShape)) return { mode: 'vv', rows, cols: C, aStep: C, bStep: 0 };
  if (nb === n && isRow(aShape)) return { mode: 'vv', rows, cols: C, aStep: 0, bStep: C };
  return null;
}

/** A CPU backend with the SIMD matmul, configured by `options`. */
export function createCpuBackend(options: CpuOptions = {}): CpuBackend & { readonly simd: SimdState } {
  const state = new SimdState();
  state.configure(options);
  // Large float tensors live in the SIMD engine's memory from now on (pool.ts, wasm/wasm-heap.ts).
  cpuPool.heapSource = () => state.tensorHeap();
  const backend = new CpuBackend({
    kernels: { matmul: state.matmul(), groupedMatmul: state.groupedMatmul(), sigmoid: state.unary('sigmoid'), tanh: state.unary('tanh'), softplus: state.unary('softplus'), topkIndices: state.topkIndices(), lstmCell: state.lstmCell(), lstmSequence: state.lstmSequence(), random: state.random(), weightedIndexAdd: state.weightedIndexAdd(),
      add: state.arithmetic('add'), sub: state.arithmetic('sub'), mul: state.arithmetic('mul'), div: state.arithmetic('div'), reluGrad: state.reluGrad(), probInTopK: state.probInTopK(), exp: state.f64Unary('exp'), normalCdf: state.f64Unary('normalCdf'), indexSelect: state.indexSelect(), logsumexpRows: state.logsumexpRows(), sum: state.sum() },
    multiKernels: { groupedWeightGrads: state.groupedWeightGrads(), lstmSequenceBackward: state.lstmSequenceBackward(), adamStep: state.adamStep(), weightedIndexAddBackward: state.weightedIndexAddBackward(), probInTopKBackward: state.probInTopKBackward(), noisyTopKLogits: state.noisyTopKLogits() },
    details: () => state.details(), overlap: (f) => state.overlapJobs(f) });
  return Object.assign(backend, { simd: state });
}

export const cpuRegistration: BackendRegistration<CpuOptions> = {
  create: (options) => createCpuBackend(options),
  configure: (backend, options) => (backend as ReturnType<typeof createCpuBackend>).simd.configure(options),
  options: ['threads', 'simd'],
};
