// Fused kernels of the CPU backend (FusedKernelAttrs in src/core/backend.ts): the LSTM cell
// in one pass over its gates, forward and backward, instead of ~14 elementwise ops forward
// and ~30 backward, each with its own result array; and the Adam update in one pass instead
// of ~12 ops per parameter.
//
// The LSTM forward and Adam round every intermediate to float32 where the composition
// (src/tensor/ops/fused.ts composedLstmCell, Adam.update in src/nn/optim.ts) stores one, in
// the same order, scalars included (a number operand becomes a float32 scalar tensor there),
// so their results are the composition's bit for bit. The LSTM backward computes each
// gradient in float64 and rounds it once: within half an ulp of the composed rules, which
// round after every op.

import type { MultiOutputKernelAttrs } from '../../core/backend.js';
import type { TypedArray } from '../../core/dtype.js';
import { sigmoidF32, tanhF32 } from '../../core/special.js';
import { cpuPool } from './pool.js';

/** unaryFns.sigmoid's formula (elementwise.ts), repeated here so that the loop inlines it. */
function sigmoid(x: number): number {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}

/**
 * z [B, 4H] (gates i, f, g, o), c [B, H] → acts [7, B, H]: h', c', σ(i), σ(f), tanh(g),
 * σ(o), tanh(c'). The last five are what the backward reads instead of recomputing them.
 */
export function lstmCellForward(z: TypedArray, c: TypedArray, B: number, H: number, acts: TypedArray, float32: boolean): void {
  if (float32) lstmCellForward32(z, c, B, H, acts);
  else lstmCellForward64(z, c, B, H, acts);
}

/**
 * Math.fround wherever the composition stores a float32 result; σ and tanh are the float32
 * algorithms of the unary kernels (sigmoidF32, tanhF32). The SIMD kernel (wasm/math-module.ts)
 * computes the same bits four lanes at a time.
 */
function lstmCellForward32(z: TypedArray, c: TypedArray, B: number, H: number, acts: TypedArray): void {
  const n = B * H, fr = Math.fround;
  for (let b = 0; b < B; b++) {
    const zr = b * 4 * H, cr = b * H;
    for (let j = 0; j < H; j++) {
      const si = sigmoidF32(z[zr + j]!), sf = sigmoidF32(z[zr + H + j]!);
      const tg = tanhF32(z[zr + 2 * H + j]!), so = sigmoidF32(z[zr + 3 * H + j]!);
      // c' = σ(f)·c + σ(i)·tanh(g): two products, each rounded, then their sum.
      const cNext = fr(fr(sf * c[cr + j]!) + fr(si * tg));
      const tc = tanhF32(cNext);
      const o = cr + j;
      acts[o] = so * tc;
      acts[n + o] = cNext;
      acts[2 * n + o] = si;
      acts[3 * n + o] = sf;
      acts[4 * n + o] = tg;
      acts[5 * n + o] = so;
      acts[6 * n + o] = tc;
    }
  }
}

function lstmCellForward64(z: TypedArray, c: TypedArray, B: number, H: number, acts: TypedArray): void {
  const n = B * H;
  for (let b = 0; b < B; b++) {
    const zr = b * 4 * H, cr = b * H;
    for (let j = 0; j < H; j++) {
      const si = sigmoid(z[zr + j]!), sf = sigmoid(z[zr + H + j]!);
      const tg = Math.tanh(z[zr + 2 * H + j]!), so = sigmoid(z[zr + 3 * H + j]!);
      const cNext = sf * c[cr + j]! + si * tg;
      const tc = Math.tanh(cNext);
      const o = cr + j;
      acts[o] = so * tc;
      acts[n + o] = cNext;
      acts[2 * n + o] = si;
      acts[3 * n + o] = sf;
      acts[4 * n + o] = tg;
      acts[5 * n + o] = so;
      acts[6 * n + o] = tc;
    }
  }
}

/**
 * The gradients of the cell from its saved activations: dOut [7, B, H] (rows 0 and 1 are
 * ∂L/∂h' and ∂L/∂c'; the others are ignored: the activations are no outputs of the cell).
 * wrt 'z' → dz [B, 4H]; wrt 'c' → dc [B, H].
 */
export function lstmCellBackward(acts: TypedArray, c: TypedArray, dOut: TypedArray, B: number, H: number, wrt: 'z' | 'c', out: TypedArray): void {
  const n = B * H;
  for (let b = 0; b < B; b++) {
    const cr = b * H, zr = b * 4 * H;
    for (let j = 0; j < H; j++) {
      const o = cr + j;
      const dh = dOut[o]!, si = acts[2 * n + o]!, sf = acts[3 * n + o]!, tg = acts[4 * n + o]!, so = acts[5 * n + o]!, tc = acts[6 * n + o]!;
      // ∂L/∂c' in total: directly, and through h' = σ(o)·tanh(c').
      const dc = dOut[n + o]! + dh * so * (1 - tc * tc);
      if (wrt === 'c') {
        out[o] = dc * sf;
      } else {
        out[zr + j] = dc * tg * si * (1 - si);
        out[zr + H + j] = dc * c[o]! * sf * (1 - sf);
        out[zr + 2 * H + j] = dc * si * (1 - tg * tg);
        out[zr + 3 * H + j] = dh * tc * so * (1 - so);
      }
    }
  }
}

/** The hyperparameters of one parameter's Adam update (MultiOutputKernelAttrs.adamStep, with its own step). */
export type AdamAttrs = Omit<MultiOutputKernelAttrs['adamStep'], 'steps'> & { step: number };

/**
 * The scalars of Adam's update as the composition's scalar tensors hold them (float32-rounded
 * for float32 parameters), and which weight decay applies.
 */
export function adamConstants(a: AdamAttrs, float32 = true) {
  const r = float32 ? Math.fround : (x: number) => x;
  const bc1 = 1 - a.beta1 ** a.step, bc2 = 1 - a.beta2 ** a.step;
  return {
    b1: r(a.beta1), b2: r(a.beta2), c1: r(1 - a.beta1), c2: r(1 - a.beta2),
    sq: r(Math.sqrt(bc2)), eps: r(a.eps), stepSize: r(a.lr / bc1),
    wd: r(a.weightDecay), shrink: r(1 - a.lr * a.weightDecay),
    coupled: a.weightDecay !== 0 && !a.decoupled, decoupled: a.weightDecay !== 0 && a.decoupled,
  };
}

/** Adam's update of one parameter into outP, outM, outV (each p.length long). See MultiOutputKernelAttrs.adamStep. */
export function adamStep(p: TypedArray, g: TypedArray, m: TypedArray, v: TypedArray, a: AdamAttrs, outP: TypedArray, outM: TypedArray, outV: TypedArray, float32: boolean): void {
  const n = p.length;
  const { b1, b2, c1, c2, sq, eps, stepSize, wd, shrink, coupled, decoupled } = adamConstants(a, float32);
  if (float32) {
    const fr = Math.fround;
    for (let i = 0; i < n; i++) {
      const pi = p[i]!;
      const gi = coupled ? fr(g[i]! + fr(pi * wd)) : g[i]!;
      const param = decoupled ? fr(pi * shrink) : pi;
      const mi = fr(fr(m[i]! * b1) + fr(gi * c1));
      const vi = fr(fr(v[i]! * b2) + fr(fr(gi * gi) * c2));
      const denom = fr(fr(fr(Math.sqrt(vi)) / sq) + eps);
      outP[i] = param - fr(fr(mi / denom) * stepSize);
      outM[i] = mi;
      outV[i] = vi;
    }
  } else {
    for (let i = 0; i < n; i++) {
      const pi = p[i]!;
      const gi = coupled ? g[i]! + pi * wd : g[i]!;
      const param = decoupled ? pi * shrink : pi;
      const mi = m[i]! * b1 + gi * c1;
      const vi = v[i]! * b2 + gi * gi * c2;
      const denom = Math.sqrt(vi) / sq + eps;
      outP[i] = param - (mi / denom) * stepSize;
      outM[i] = mi;
      outV[i] = vi;
    }
  }
}

/**
 * Σ_i Σ_j x_i[j]² in float64: each array's squares summed from 0 in order, then the arrays'
 * sums in order (the composition cast → square → sum → add, rounding for rounding).
 */
export function sumOfSquares(xs: readonly TypedArray[]): number {
  let total = 0;
  xs.forEach((x, i) => {
    let s = 0;
    for (let j = 0; j < x.length; j++) { const v = x[j]!; s += v * v; }
    total = i === 0 ? s : total + s;
  });
  return total;
}

// ---- an LSTM layer's steps in one kernel ---------------------------------------------------

/** The products and the cell a layer's kernel runs with (the SIMD ones, or the scalar references). */
export interface LstmSequenceOps {
  /** out = op(a) · op(b), as the matmul kernel (2-D here). */
  matmul(a: TypedArray, aShape: readonly number[], b: TypedArray, bShape: readonly number[], out: TypedArray, outShape: readonly number[], transposeA: boolean, transposeB: boolean): void;
  /** lstmCellForward (float32 or float64 by the arrays). */
  cell(z: TypedArray, c: TypedArray, B: number, H: number, acts: TypedArray): void;
}

/** A zeroed scratch array of x's float dtype from the buffer pool (given back by the caller). */
const like = (x: TypedArray, n: number): TypedArray => cpuPool.take(x instanceof Float32Array ? 'float32' : 'float64', n);

/**
 * L steps of the LSTM recurrence: xw [L, B, 4H] (every step's input projection), the biases
 * b [4H] or null, h0, c0 [B, H], w = W_hh [4H, H] → acts [L, 7, B, H], step t's block being
 * lstmCell's output for z_t = (xw_t + b) + h_{t−1}·Wᵀ (the composition's adds, rounded
 * alike), its h and c the next step's state.
 */
export function lstmSequenceForward(xw: TypedArray, bias: TypedArray | null, h0: TypedArray, c0: TypedArray, w: TypedArray, L: number, B: number, H: number, acts: TypedArray, ops: LstmSequenceOps): void {
  const n = B * H, G = 4 * H, zn = 4 * n, block = 7 * n;
  const z = like(xw, zn);
  const f32 = xw instanceof Float32Array, fr = Math.fround;
  for (let t = 0; t < L; t++) {
    const h = t === 0 ? h0 : acts.subarray((t - 1) * block, (t - 1) * block + n);
    const c = t === 0 ? c0 : acts.subarray((t - 1) * block + n, (t - 1) * block + 2 * n);
    ops.matmul(h, [B, H], w, [G, H], z, [B, G], false, true);
    const x0 = t * zn;
    if (bias === null) for (let i = 0; i < zn; i++) z[i] = xw[x0 + i]! + z[i]!;
    else if (f32) for (let r = 0; r < zn; r += G) for (let j = 0; j < G; j++) z[r + j] = fr(xw[x0 + r + j]! + bias[j]!) + z[r + j]!;
    else for (let r = 0; r < zn; r += G) for (let j = 0; j < G; j++) z[r + j] = xw[x0 + r + j]! + bias[j]! + z[r + j]!;
    ops.cell(z, c, B, H, acts.subarray(t * block, (t + 1) * block));
  }
  cpuPool.give(z);
}

/**
 * The gradients of lstmSequenceForward from dActs [L, 7, B, H] (planes 0 and 1 of each step:
 * ∂L/∂h_t and ∂L/∂c_t from outside; the others are ignored): walking back, each step's
 * ∂L/∂h_t and ∂L/∂c_t add what flows from step t + 1, the cell's backward gives ∂z_t (which
 * is ∂xw_t) and ∂c_{t−1}, and ∂h_{t−1} = ∂z_t · W. ∂W = Σ_t ∂z_tᵀ · h_{t−1} is one product
 * over all steps at the end, [L·B, 4H]ᵀ · [L·B, H], not L products added up; the biases'
 * gradient db (when asked for) sums ∂z over the L·B rows in order, in float64, as the sum
 * kernel sums a bias gradient.
 */
export function lstmSequenceBackward(
  acts: TypedArray, h0: TypedArray, c0: TypedArray, w: TypedArray, dActs: TypedArray, L: number, B: number, H: number,
  dxw: TypedArray, dh0: TypedArray, dc0: TypedArray, dw: TypedArray, db: TypedArray | null, ops: LstmSequenceOps,
): void {
  const n = B * H, zn = 4 * n, block = 7 * n;
  const dOut = like(dh0, 2 * n), dh = like(dh0, n), dc = like(dh0, n);
  for (let t = L - 1; t >= 0; t--) {
    const d0 = t * block;
    for (let i = 0; i < n; i++) {
      dOut[i] = dActs[d0 + i]! + dh[i]!;
      dOut[n + i] = dActs[d0 + n + i]! + dc[i]!;
    }
    const a = acts.subarray(d0, d0 + block);
    const c = t === 0 ? c0 : acts.subarray(d0 - block + n, d0 - block + 2 * n);
    const dz = dxw.subarray(t * zn, (t + 1) * zn);
    lstmCellBackward(a, c, dOut, B, H, 'z', dz);
    lstmCellBackward(a, c, dOut, B, H, 'c', dc);
    ops.matmul(dz, [B, 4 * H], w, [4 * H, H], dh, [B, H], false, false);
  }
  dh0.set(dh);
  dc0.set(dc);
  // h_{t−1} for every step, stacked: h0, then the first L − 1 steps' h.
  const hPrev = like(h0, L * n);
  hPrev.set(h0);
  for (let t = 1; t < L; t++) hPrev.set(acts.subarray((t - 1) * block, (t - 1) * block + n), t * n);
  ops.matmul(dxw, [L * B, 4 * H], hPrev, [L * B, H], dw, [4 * H, H], true, false);
  for (const scratch of [dOut, dh, dc, hPrev]) cpuPool.give(scratch);
  if (db !== null) {
    const G = 4 * H, acc = new Float64Array(G);
    for (let r = 0; r < L * B * G; r += G) for (let j = 0; j < G; j++) acc[j] = acc[j]! + dxw[r + j]!;
    db.set(acc);
  }
}
