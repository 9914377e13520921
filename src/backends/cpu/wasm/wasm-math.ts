// The CPU backend's float32 σ, tanh, LSTM cell and Adam update on WebAssembly SIMD128 (math-module.ts),
// on the calling thread: operands are copied into a private wasm memory and results out,
// as the matmul does (a few ns per element against ~25–30 ns per Math.exp or Math.tanh).
// Results are the scalar kernels' bits (core/special.ts sigmoidF32, tanhF32), so where this
// path is off (setBackend('cpu', { simd: false }), or no SIMD here) nothing changes.

import { adamConstants, type AdamAttrs } from '../fused.js';
import type { PhiloxBlocks } from '../../../core/philox.js';
import { mathModuleBytes, type ArithmeticMode, type ArithmeticOp, type MathExports } from './math-module.js';
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

export class WasmMath {
  private f32: Float32Array;
  /** Kernel calls that ran here (the others went to the scalar kernels). */
  calls = 0;

  private constructor(private readonly memory: WasmMemory, private readonly kernels: MathExports) {
    this.f32 = new Float32Array(memory.buffer);
  }

  /** The module, or why it cannot run here (the caller keeps the scalar kernels). */
  static create(wasm: WasmApi | null = wasmApi ?? null): WasmMath | string {
    if (wasm === null) return 'no WebAssembly in this JavaScript engine';
    try {
      const memory = new wasm.Memory({ initial: 1, maximum: 32768 });
      const module = new wasm.Module(mathModuleBytes());
      return new WasmMath(memory, new wasm.Instance(module, { env: { memory } }).exports as unknown as MathExports);
    } catch (e) {
      return `WebAssembly SIMD128 is not available here (${(e as Error).message})`;
    }
  }

  /** A float32 view of at least `floats` floats (the memory grown as needed). */
  private view(floats: number): Float32Array {
    const bytes = floats * 4;
    const have = this.memory.buffer.byteLength;
    if (bytes > have) this.memory.grow(Math.ceil((bytes - have) / PAGE));
    if (this.f32.buffer !== this.memory.buffer) this.f32 = new Float32Array(this.memory.buffer);
    return this.f32;
  }

  /**
   * Philox blocks (core/philox.ts PhiloxBlocks) from the module: the same words as the
   * JavaScript rounds, whose 32 × 32 → 64-bit products take four double multiplies each.
   */
  readonly philoxBlocks: PhiloxBlocks = (b0, count, key0, key1, words) => {
    this.view(4 * count); // 4 words per block: grows the memory as needed
    this.kernels.philox(b0 % 4294967296, Math.floor(b0 / 4294967296), count, key0, key1, 0);
    words.set(new Uint32Array(this.memory.buffer, 0, 4 * count));
    this.calls++;
  };

  /** out = op(x) elementwise, float32. False (nothing written) when too small to pay. */
  unary(op: 'sigmoid' | 'tanh', x: Float32Array, out: Float32Array): boolean {
    const n = out.length;
    if (n < MIN_ELEMENTS) return false;
    const vectors = Math.ceil(n / 4), pad = vectors * 4;
    const mem = this.view(2 * pad);
    mem.set(x.subarray(0, n), 0);
    (op === 'sigmoid' ? this.kernels.sigmoid_f32 : this.kernels.tanh_f32)(0, pad * 4, vectors);
    this.calls++;
    out.set(mem.subarray(pad, pad + n));
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
    const mem = this.view(7 * pad);
    [p, g, m, v].forEach((x, k) => mem.set(x.subarray(0, n), k * pad));
    const k = adamConstants(a);
    this.kernels.adam_f32(0, vectors, k.b1, k.b2, k.c1, k.c2, k.sq, k.eps, k.stepSize, k.wd, k.shrink, k.coupled ? 1 : 0, k.decoupled ? 1 : 0);
    this.calls++;
    outP.set(mem.subarray(4 * pad, 4 * pad + n));
    outM.set(mem.subarray(5 * pad, 5 * pad + n));
    outV.set(mem.subarray(6 * pad, 6 * pad + n));
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
    const mem = this.view(12 * pad);
    // The gates as four planes of n: plane g holds z[b, gH … gH + H) for every b.
    for (let g = 0; g < 4; g++) {
      for (let b = 0, src = g * H, dst = g * pad; b < B; b++, src += 4 * H, dst += H) mem.set(z.subarray(src, src + H), dst);
    }
    mem.set(c.subarray(0, n), 4 * pad);
    this.kernels.lstm_f32(0, 16 * pad, 20 * pad, vectors);
    this.calls++;
    if (pad === n) acts.set(mem.subarray(5 * pad, 12 * pad));
    else for (let p = 0; p < 7; p++) acts.set(mem.subarray((5 + p) * pad, (5 + p) * pad + n), p * n);
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
    const [yAt, wAt, idxAt, outAt, end] = offsets([m * d, m, m, numRows * d]) as [number, number, number, number, number];
    const mem = this.view(end);
    mem.set(y.subarray(0, m * d), yAt);
    mem.set(w.subarray(0, m), wAt);
    new Int32Array(mem.buffer).set(index, idxAt);
    this.kernels.combine_f32(yAt * 4, wAt * 4, idxAt * 4, outAt * 4, m, d / 4, numRows);
    this.calls++;
    out.set(mem.subarray(outAt, outAt + numRows * d));
    return true;
  }

  /** Its backward (weightedIndexAddBackward, float32, bit for bit) into dy [m, d] and dw [m]; false as combine. */
  combineBackward(dOut: Float32Array, y: Float32Array, w: Float32Array, index: Int32Array, d: number, numRows: number, dy: Float32Array, dw: Float32Array): boolean {
    const m = index.length;
    if (d % 4 !== 0 || m * d < MIN_ELEMENTS) return false;
    const [dOutAt, yAt, wAt, idxAt, dyAt, dwAt, end] = offsets([numRows * d, m * d, m, m, m * d, m]) as [number, number, number, number, number, number, number];
    const mem = this.view(end);
    mem.set(dOut.subarray(0, numRows * d), dOutAt);
    mem.set(y.subarray(0, m * d), yAt);
    mem.set(w.subarray(0, m), wAt);
    new Int32Array(mem.buffer).set(index, idxAt);
    this.kernels.combineBackward_f32(dOutAt * 4, yAt * 4, wAt * 4, idxAt * 4, dyAt * 4, dwAt * 4, m, d / 4);
    this.calls++;
    dy.set(mem.subarray(dyAt, dyAt + m * d));
    dw.set(mem.subarray(dwAt, dwAt + m));
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
    const [aAt, bAt, outAt, end] = offsets([a.length, b.length, rows * vecs * 4]) as [number, number, number, number];
    const mem = this.view(end);
    mem.set(a, aAt);
    mem.set(b, bAt);
    this.kernels[`${op}_${mode}_f32`](aAt * 4, bAt * 4, outAt * 4, rows, aStep * 4, bStep * 4, vecs);
    this.calls++;
    out.set(mem.subarray(outAt, outAt + n));
    return true;
  }

  /**
   * e^x (float32 or float64; e^x in float64 lanes, Math.exp's bits, one rounding to float32) or
   * Φ (float32 only: core/special.ts normalCdfFloat32) elementwise. False when too small to pay.
   */
  f64Unary(op: 'exp' | 'normalCdf', x: Float32Array | Float64Array, out: Float32Array | Float64Array): boolean {
    const n = out.length, f64 = out instanceof Float64Array;
    if (n < MIN_ELEMENTS || x.constructor !== out.constructor || (f64 && op !== 'exp')) return false;
    const lanes = f64 ? 2 : 4, vecs = Math.ceil(n / lanes), pad = vecs * 4; // pad: floats per operand
    const mem = this.view(2 * pad);
    const io = f64 ? new Float64Array(mem.buffer, 0, 2 * vecs * 2) : mem;
    io.set(x.subarray(0, n), 0);
    const kernel = f64 ? this.kernels.exp_f64 : op === 'exp' ? this.kernels.exp_f32 : this.kernels.normalCdf_f32;
    kernel(0, pad * 4, vecs);
    this.calls++;
    const at = f64 ? pad / 2 : pad;
    out.set(io.subarray(at, at + n));
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
    const [cAt, tAt, sAt, oAt, end] = offsets([n, n, n, n]) as [number, number, number, number, number];
    const mem = this.view(end);
    mem.set(clean.subarray(0, n), cAt);
    mem.set(thr.subarray(0, n), tAt);
    mem.set(sd.subarray(0, n), sAt);
    this.kernels.probInTopK_f32(cAt * 4, tAt * 4, sAt * 4, oAt * 4, Math.ceil(n / 4));
    this.calls++;
    out.set(mem.subarray(oAt, oAt + n));
    return true;
  }

  /** Its gradients' elementwise part into dClean and dSd (gating.ts probInTopKBackward, float32). False when too small to pay. */
  probInTopKBackward(dP: Float32Array, clean: Float32Array, thr: Float32Array, sd: Float32Array, dClean: Float32Array, dSd: Float32Array): boolean {
    const n = dP.length;
    if (n < MIN_ELEMENTS) return false;
    const [pAt, cAt, tAt, sAt, dcAt, dsAt, end] = offsets([n, n, n, n, n, n]) as [number, number, number, number, number, number, number];
    const mem = this.view(end);
    mem.set(dP.subarray(0, n), pAt);
    mem.set(clean.subarray(0, n), cAt);
    mem.set(thr.subarray(0, n), tAt);
    mem.set(sd.subarray(0, n), sAt);
    this.kernels.probInTopKBackward_f32(pAt * 4, cAt * 4, tAt * 4, sAt * 4, dcAt * 4, dsAt * 4, Math.ceil(n / 4));
    this.calls++;
    dClean.set(mem.subarray(dcAt, dcAt + n));
    dSd.set(mem.subarray(dsAt, dsAt + n));
    return true;
  }

  /** relu's gradient dy · (x > 0 ? 1 : 0), float32 (the reluGrad kernel's bits). False when too small to pay. */
  reluGrad(dy: Float32Array, x: Float32Array, out: Float32Array): boolean {
    const n = out.length;
    if (n < MIN_ARITHMETIC) return false;
    const [dyAt, xAt, outAt, end] = offsets([n, n, n]) as [number, number, number, number];
    const mem = this.view(end);
    mem.set(dy.subarray(0, n), dyAt);
    mem.set(x.subarray(0, n), xAt);
    this.kernels.reluGrad_f32(dyAt * 4, xAt * 4, outAt * 4, Math.ceil(n / 4));
    this.calls++;
    out.set(mem.subarray(outAt, outAt + n));
    return true;
  }
}

/** Consecutive regions of the given float counts, each starting on a v128: their offsets in floats, then the end. */
function offsets(sizes: readonly number[]): number[] {
  const at = [0];
  for (const n of sizes) at.push(at[at.length - 1]! + Math.ceil(n / 4) * 4);
  return at;
}
