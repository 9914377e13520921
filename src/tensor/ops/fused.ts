// Ops that run a fused kernel (FusedKernelAttrs, src/core/backend.ts) where the backend
// offers one, and compose the same math from core ops where it does not. Both paths give
// the same numbers; the fused one runs one kernel instead of a dozen and records one node.

import { getBackend, recordIfNeeded, runOp, runOpMany } from '../engine.js';
import { shapeToString } from '../../core/shape.js';
import type { Tensor } from '../tensor.js';
import { add, cast, div, exp, greater, mul, neg, normalCdf, relu, sigmoid, sub, tanh, where } from './elementwise.js';
import { max, sum } from './reduction.js';
import { softmax } from './functional.js';
import { broadcastTo, chunk, concat, reshape, slice, split, stack } from './movement.js';
import { gather, indexAdd, indexSelect, scatterAdd } from './indexing.js';
import { defaultGenerator, zeros, type Generator } from './creation.js';
import { matmul } from './linalg.js';
import { checkFloat, checkTensor, scalar } from './util.js';

export interface LSTMCellState { h: Tensor; c: Tensor }

/** The gradients a node's rule returns: grads[i] where wanted[i], the others disposed (null). */
function keepWanted(grads: readonly Tensor[], wanted: readonly boolean[]): (Tensor | null)[] {
  return grads.map((g, i) => {
    if (wanted[i]) return g;
    g.dispose();
    return null;
  });
}

/**
 * The LSTM update from the gate pre-activations z = (i, f, g, o) [B, 4H] and the cell
 * state c [B, H] (PyTorch's gate order):
 *   c' = σ(f) ⊙ c + σ(i) ⊙ tanh(g),   h' = σ(o) ⊙ tanh(c').
 */
export function lstmCell(z: Tensor, c: Tensor): LSTMCellState {
  checkTensor('lstmCell', z, 'z');
  checkTensor('lstmCell', c, 'c');
  checkFloat('lstmCell', z, 'z');
  const [B, H] = c.shape as [number, number];
  if (c.rank !== 2 || z.rank !== 2 || z.shape[0] !== B || z.shape[1] !== 4 * H || z.dtype !== c.dtype) {
    throw new Error(`lstmCell: z must be [B, 4H] and c [B, H] of one dtype, got z ${z.dtype} ${shapeToString(z.shape)} and c ${c.dtype} ${shapeToString(c.shape)}`);
  }
  if (!getBackend().supports?.('lstmCell')) return composedLstmCell(z, c);
  // c before z: backward's depth-first walk (src/autograd/backward.ts) then reaches the
  // previous step's cell state first, as in the composed graph, so the gradients that fan
  // in are summed in the same order and a checkpointed LSTM's stay bit-equal to the plain one's.
  const acts = runOp('lstmCell', [c, z], {}, { shape: [7, B, H], dtype: z.dtype }, 'lstmCell');
  const hRow = slice(acts, [0, 0, 0], [1, B, H]), cRow = slice(acts, [1, 0, 0], [1, B, H]);
  const out = { h: reshape(hRow, [B, H]), c: reshape(cRow, [B, H]) };
  for (const t of [acts, hRow, cRow]) t.dispose();
  return out;
}

/**
 * lstmCell from core ops: the order of its roundings is the one the fused kernel repeats.
 * Also for a caller whose checkpointed segments must sum gradients exactly as the composed
 * graph does where the fused node's walk differs (the recurrent MoE cell, src/moe/recurrent.ts).
 */
export function composedLstmCell(z: Tensor, c: Tensor): LSTMCellState {
  const [i, f, g, o] = chunk(z, 4, 1) as [Tensor, Tensor, Tensor, Tensor];
  const cNext = add(mul(sigmoid(f), c), mul(sigmoid(i), tanh(g)));
  return { h: mul(sigmoid(o), tanh(cNext)), c: cNext };
}

/**
 * The gradients of lstmCell's fused node: dOut [7, B, H] holds ∂L/∂h' and ∂L/∂c' in rows 0
 * and 1. Runs the fused backward kernel (no graph); `differentiable` composes the same
 * formulas from core ops instead, for gradients of gradients.
 */
export function lstmCellBackward(z: Tensor, c: Tensor, acts: Tensor, dOut: Tensor, wrt: 'z' | 'c', differentiable: boolean): Tensor {
  const [B, H] = c.shape as [number, number];
  if (!differentiable) {
    return runOp('lstmCellBackward', [acts, c, dOut], { wrt }, { shape: wrt === 'z' ? [B, 4 * H] : [B, H], dtype: c.dtype }, null);
  }
  // From z and c, not from the saved activations: those are outputs of the fused node, whose
  // own rule does not pass gradients through them.
  const [i, f, g, o] = chunk(z, 4, 1).map(sigmoidOrTanh) as [Tensor, Tensor, Tensor, Tensor];
  const tc = tanh(add(mul(f, c), mul(i, g)));
  const dh = reshape(slice(dOut, [0, 0, 0], [1, B, H]), [B, H]);
  const dcOut = reshape(slice(dOut, [1, 0, 0], [1, B, H]), [B, H]);
  const dc = add(dcOut, mul(mul(dh, o), sub(1, mul(tc, tc))));
  if (wrt === 'c') return mul(dc, f);
  const dsig = (s: Tensor) => mul(s, sub(1, s));
  return concat([mul(mul(dc, g), dsig(i)), mul(mul(dc, c), dsig(f)), mul(mul(dc, i), sub(1, mul(g, g))), mul(mul(dh, tc), dsig(o))], 1);
}

/** The activation of gate block j of (i, f, g, o): tanh for g, σ for the others. */
function sigmoidOrTanh(x: Tensor, j: number): Tensor {
  return j === 2 ? tanh(x) : sigmoid(x);
}

// ---- an LSTM layer's steps in one kernel ----------------------------------------------------

/**
 * An LSTM layer's L steps from precomputed input projections: xw [L, B, 4H] (x_t·W_ihᵀ for
 * every step), the state h0, c0 [B, H], W_hh [4H, H] and optionally the biases [4H]
 * (b_ih + b_hh) → { hs [L, B, H] (every step's h), h, c [B, H] (the last step's state) },
 * with z_t = (xw_t + bias) + h_{t−1}·W_hhᵀ and lstmCell's update. Where the backend has the kernel (the
 * CPU) the steps run in one kernel and record one node; its backward walks the steps in one
 * kernel too, with W_hh's gradient one product over all steps instead of L added up. The
 * forward values equal the per-step composition's bit for bit (the same products, adds and
 * cells); the gradients, summed in another order, agree to rounding.
 */
export function lstmSequence(xw: Tensor, h0: Tensor, c0: Tensor, wHH: Tensor, bias?: Tensor): { hs: Tensor; h: Tensor; c: Tensor } {
  for (const [t, name] of [[xw, 'xw'], [h0, 'h0'], [c0, 'c0'], [wHH, 'wHH'], ...(bias === undefined ? [] : [[bias, 'bias']] as const)] as const) { checkTensor('lstmSequence', t, name); checkFloat('lstmSequence', t, name); }
  const [B, H] = h0.shape as [number, number];
  const L = xw.shape[0]!;
  const ok = xw.rank === 3 && xw.shape[1] === B && xw.shape[2] === 4 * H && h0.rank === 2 && c0.rank === 2 && c0.shape[0] === B && c0.shape[1] === H
    && wHH.rank === 2 && wHH.shape[0] === 4 * H && wHH.shape[1] === H && (bias === undefined || (bias.rank === 1 && bias.shape[0] === 4 * H))
    && [h0, c0, wHH, ...(bias ? [bias] : [])].every((t) => t.dtype === xw.dtype);
  if (!ok) {
    throw new Error(`lstmSequence: xw must be [L, B, 4H], h0 and c0 [B, H], wHH [4H, H], bias [4H], of one dtype; got xw ${xw.dtype} ${shapeToString(xw.shape)}, h0 ${h0.dtype} ${shapeToString(h0.shape)}, c0 ${c0.dtype} ${shapeToString(c0.shape)}, wHH ${wHH.dtype} ${shapeToString(wHH.shape)}${bias ? `, bias ${bias.dtype} ${shapeToString(bias.shape)}` : ''}`);
  }
  if (L === 0) throw new Error('lstmSequence: xw has no steps (L = 0)');
  if (!getBackend().supports?.('lstmSequence')) return composedLstmSequence(xw, h0, c0, wHH, bias);
  const acts = runOp('lstmSequence', [xw, h0, c0, wHH, ...(bias ? [bias] : [])], {}, { shape: [L, 7, B, H], dtype: xw.dtype }, 'lstmSequence');
  const hRows = slice(acts, [0, 0, 0, 0], [L, 1, B, H]), cRow = slice(acts, [L - 1, 1, 0, 0], [1, 1, B, H]);
  const hs = reshape(hRows, [L, B, H]);
  const last = slice(hs, [L - 1, 0, 0], [1, B, H]);
  const out = { hs, h: reshape(last, [B, H]), c: reshape(cRow, [B, H]) };
  for (const t of [acts, hRows, cRow, last]) t.dispose();
  return out;
}

/** lstmSequence step by step: the biases added to every step at once, then a matmul, an add and an lstmCell per step. */
export function composedLstmSequence(xw: Tensor, h0: Tensor, c0: Tensor, wHH: Tensor, bias?: Tensor): { hs: Tensor; h: Tensor; c: Tensor } {
  const L = xw.shape[0]!;
  const steps = chunk(bias ? add(xw, bias) : xw, L, 0);
  const outputs: Tensor[] = [];
  let h = h0, c = c0;
  for (let t = 0; t < L; t++) {
    const xt = reshape(steps[t]!, xw.shape.slice(1));
    ({ h, c } = lstmCell(add(xt, matmul(h, wHH, { transposeB: true })), c));
    outputs.push(h);
  }
  return { hs: stack(outputs, 0), h, c };
}

/**
 * lstmSequence's gradients for its inputs (xw, h0, c0, wHH[, bias]) from dActs [L, 7, B, H]: one
 * backward kernel; `differentiable` (gradients of gradients) composes the same walk from
 * core ops, recomputing each z_t from the inputs.
 */
export function lstmSequenceGrads(dActs: Tensor, inputs: readonly Tensor[], acts: Tensor, needs: readonly boolean[], differentiable: boolean): (Tensor | null)[] {
  const [xw, h0, c0, wHH, bias] = inputs as [Tensor, Tensor, Tensor, Tensor, Tensor | undefined];
  const [L, , B, H] = acts.shape as [number, number, number, number];
  let grads: Tensor[];
  if (!differentiable) {
    grads = runOpMany('lstmSequenceBackward', [acts, h0, c0, wHH, dActs], {}, [
      { shape: [L, B, 4 * H], dtype: xw.dtype }, { shape: [B, H], dtype: xw.dtype }, { shape: [B, H], dtype: xw.dtype }, { shape: [4 * H, H], dtype: xw.dtype },
      ...(bias && needs[4] ? [{ shape: [4 * H], dtype: xw.dtype }] : []),
    ]);
  } else {
    const plane = (t: number, p: number) => reshape(slice(acts, [t, p, 0, 0], [1, 1, B, H]), [B, H]);
    const dPlane = (t: number, p: number) => reshape(slice(dActs, [t, p, 0, 0], [1, 1, B, H]), [B, H]);
    const xs = chunk(xw, L, 0).map((x) => reshape(x, [B, 4 * H]));
    const dzs: Tensor[] = new Array<Tensor>(L);
    let dh: Tensor | null = null, dc: Tensor | null = null;
    for (let t = L - 1; t >= 0; t--) {
      const hPrev = t === 0 ? h0 : plane(t - 1, 0), cPrev = t === 0 ? c0 : plane(t - 1, 1);
      const z = add(bias ? add(xs[t]!, bias) : xs[t]!, matmul(hPrev, wHH, { transposeB: true }));
      const dOut = stack([dh === null ? dPlane(t, 0) : add(dPlane(t, 0), dh), dc === null ? dPlane(t, 1) : add(dPlane(t, 1), dc)], 0);
      dzs[t] = lstmCellBackward(z, cPrev, acts, dOut, 'z', true);
      dc = lstmCellBackward(z, cPrev, acts, dOut, 'c', true);
      dh = matmul(dzs[t]!, wHH);
    }
    const dxw = stack(dzs, 0);
    const hPrevAll = concat([h0, ...Array.from({ length: L - 1 }, (_, t) => plane(t, 0))], 0);
    grads = [dxw, dh!, dc!, matmul(reshape(dxw, [L * B, 4 * H]), hPrevAll, { transposeA: true })];
    if (bias && needs[4]) grads.push(sum(dxw, [0, 1]));
  }
  const out = keepWanted(grads, needs);
  if (bias && out.length === 4) out.push(null);
  return out;
}

// ---- grouped products: an MoE layer's experts in one kernel ----------------------------

function checkSizes(op: string, sizes: readonly number[], rows: number): void {
  if (!Array.isArray(sizes) || sizes.length === 0 || sizes.some((m) => !Number.isInteger(m) || m < 0)) {
    throw new Error(`${op}: sizes must be a non-empty array of non-negative integers, got ${JSON.stringify(sizes)}`);
  }
  const total = sizes.reduce((a, b) => a + b, 0);
  if (total !== rows) throw new Error(`${op}: sizes sum to ${total}, but x has ${rows} rows`);
}

/**
 * Matrix products over row segments, as one op: x [M, k] holds segments of sizes[e] rows
 * (an MoE layer's routed examples, sorted by expert), and the rows of segment e become
 * x[seg e] · op(w_e) — op(w) = wᵀ for w [n, k] (a Linear weight) when transposeB, else w
 * [k, n]. Returns [M, n]. Each segment's rows equal matmul(x[seg e], w_e, { transposeB })
 * bit for bit. Where the backend has the groupedMatmul kernel (the CPU) all segments run
 * in one kernel, spread over its threads, forward and backward; elsewhere it composes
 * split → matmul → concat. `biases` (one [n] per segment) are added to their segments' rows
 * in the same kernel (on the CPU, in wasm memory before the copy out), as add would add them;
 * `relu` then applies relu there too (an expert MLP's hidden layer: the bits of relu(·), and
 * its gradient masks by the output, which is > 0 exactly where the input is).
 */
export function groupedMatmul(x: Tensor, weights: readonly Tensor[], sizes: readonly number[], options: { transposeB?: boolean; biases?: readonly Tensor[]; relu?: boolean } = {}): Tensor {
  checkTensor('groupedMatmul', x, 'x');
  checkFloat('groupedMatmul', x, 'x');
  const transposeB = options.transposeB ?? false;
  if (x.rank !== 2) throw new Error(`groupedMatmul: x must be [M, k], got ${shapeToString(x.shape)}`);
  checkSizes('groupedMatmul', sizes, x.shape[0]!);
  if (!Array.isArray(weights) || weights.length !== sizes.length) {
    throw new Error(`groupedMatmul: expected ${sizes.length} weights (one per segment), got ${Array.isArray(weights) ? weights.length : typeof weights}`);
  }
  const [M, k] = x.shape as [number, number];
  weights.forEach((w, e) => checkTensor('groupedMatmul', w, `weights[${e}]`));
  const n = weights[0]!.shape[transposeB ? 0 : 1]!;
  weights.forEach((w, e) => {
    const want = transposeB ? [n, k] : [k, n];
    if (w.rank !== 2 || w.shape[0] !== want[0] || w.shape[1] !== want[1] || w.dtype !== x.dtype) {
      throw new Error(`groupedMatmul: weights[${e}] must be ${x.dtype} ${shapeToString(want)} (x is ${shapeToString(x.shape)}${transposeB ? ', transposeB' : ''}), got ${w.dtype} ${shapeToString(w.shape)}`);
    }
  });
  const biases = options.biases;
  if (biases !== undefined) {
    if (!Array.isArray(biases) || biases.length !== sizes.length) {
      throw new Error(`groupedMatmul: expected ${sizes.length} biases (one per segment), got ${Array.isArray(biases) ? biases.length : typeof biases}`);
    }
    biases.forEach((b, e) => {
      checkTensor('groupedMatmul', b, `biases[${e}]`);
      if (b.rank !== 1 || b.shape[0] !== n || b.dtype !== x.dtype) throw new Error(`groupedMatmul: biases[${e}] must be ${x.dtype} [${n}], got ${b.dtype} ${shapeToString(b.shape)}`);
    });
  }
  if (!getBackend().supports?.('groupedMatmul')) {
    const parts = split(x, [...sizes], 0);
    const outs = parts.map((p, e) => {
      const y = matmul(p, weights[e]!, { transposeB });
      return biases ? add(y, biases[e]!) : y;
    });
    const y = concat(outs, 0);
    for (const t of [...parts, ...outs]) t.dispose();
    if (!options.relu) return y;
    const h = relu(y);
    y.dispose();
    return h;
  }
  const attrs = { sizes: [...sizes], transposeB, bias: biases !== undefined, ...(options.relu ? { relu: true } : {}) };
  return runOp('groupedMatmul', [x, ...weights, ...(biases ?? [])], attrs, { shape: [M, n], dtype: x.dtype }, 'groupedMatmul');
}

/**
 * Column sums of a [M, n] over its row segments → E tensors [n] (zeros for an empty segment),
 * each summed in row order in float64 as sum(·, 0) sums it: groupedMatmul's bias gradients.
 * One kernel where the backend has it; split → sum elsewhere.
 */
export function segmentSums(a: Tensor, sizes: readonly number[], options: { differentiable?: boolean } = {}): Tensor[] {
  checkSizes('segmentSums', sizes, a.shape[0]!);
  // Composed (and differentiable, for gradients of gradients) where there is no kernel.
  if (options.differentiable || !getBackend().supports?.('segmentSums')) {
    const parts = split(a, [...sizes], 0);
    const sums = parts.map((p) => sum(p, 0));
    for (const t of parts) t.dispose();
    return sums;
  }
  return runOpMany('segmentSums', [a], { sizes: [...sizes] }, sizes.map(() => ({ shape: [a.shape[1]!], dtype: a.dtype })));
}

/**
 * The weight gradients of groupedMatmul: a [M, p], b [M, q] with the same row segments → E
 * tensors [p, q], the e-th a[seg e]ᵀ · b[seg e] (zeros for an empty segment), from one
 * kernel where the backend has it. With `sums` ('a' or 'b'), E more tensors follow: that
 * operand's segmentSums (the biases' gradients), bit for bit, from the same kernel (the CPU's
 * SIMD path sums the copy its product already made). Not recorded: it serves the backward
 * pass (groupedMatmul's rule, with grad mode off).
 */
export function groupedWeightGrads(a: Tensor, b: Tensor, sizes: readonly number[], options: { sums?: 'a' | 'b' } = {}): Tensor[] {
  checkSizes('groupedWeightGrads', sizes, a.shape[0]!);
  if (a.rank !== 2 || b.rank !== 2 || b.shape[0] !== a.shape[0] || a.dtype !== b.dtype) {
    throw new Error(`groupedWeightGrads: a [M, p] and b [M, q] of one dtype, got a ${a.dtype} ${shapeToString(a.shape)} and b ${b.dtype} ${shapeToString(b.shape)}`);
  }
  const { sums } = options;
  if (sums !== undefined && sums !== 'a' && sums !== 'b') throw new Error(`groupedWeightGrads: sums must be 'a' or 'b', got ${String(sums)}`);
  const [p, q] = [a.shape[1]!, b.shape[1]!];
  if (!getBackend().supports?.('groupedWeightGrads')) {
    const as = split(a, [...sizes], 0), bs = split(b, [...sizes], 0);
    const grads = as.map((ap, e) => matmul(ap, bs[e]!, { transposeA: true }));
    for (const t of [...as, ...bs]) t.dispose();
    return sums === undefined ? grads : [...grads, ...segmentSums(sums === 'a' ? a : b, sizes)];
  }
  const outs = sizes.map(() => ({ shape: [p, q], dtype: a.dtype }));
  if (sums !== undefined) outs.push(...sizes.map(() => ({ shape: [sums === 'a' ? p : q], dtype: a.dtype })));
  return runOpMany('groupedWeightGrads', [a, b], sums === undefined ? { sizes: [...sizes] } : { sizes: [...sizes], sums }, outs);
}

/**
 * groupedMatmul's gradients: ∂x = groupedMatmul(dy, w, ¬transposeB); ∂w_e from one grouped
 * kernel (with the biases' ∂b_e, dy's segment sums, when both are wanted), or, for gradients
 * of gradients, from differentiable per-segment products.
 */
export function groupedMatmulGrads(dy: Tensor, x: Tensor, weights: readonly Tensor[], sizes: readonly number[], transposeB: boolean, needs: readonly boolean[], differentiable: boolean, hasBias = false): (Tensor | null)[] {
  const E = weights.length;
  const dx = needs[0] ? groupedMatmul(dy, weights, sizes, { transposeB: !transposeB }) : null;
  const wantW = needs.slice(1, 1 + E), wantB = hasBias ? needs.slice(1 + E, 1 + 2 * E) : [];
  if (!differentiable && wantW.some(Boolean) && wantB.some(Boolean)) {
    const grads = transposeB ? groupedWeightGrads(dy, x, sizes, { sums: 'a' }) : groupedWeightGrads(x, dy, sizes, { sums: 'b' });
    return [dx, ...keepWanted(grads.slice(0, E), wantW), ...keepWanted(grads.slice(E), wantB)];
  }
  // The biases' gradients: each segment's rows of dy summed.
  const dbs: (Tensor | null)[] = !wantB.some(Boolean) ? wantB.map(() => null)
    : keepWanted(segmentSums(dy, sizes, { differentiable }), wantB);
  if (!wantW.some(Boolean)) return [dx, ...weights.map(() => null), ...dbs];
  if (differentiable) {
    const xs = split(x, [...sizes], 0), dys = split(dy, [...sizes], 0);
    const dws = weights.map((_, e) => (!needs[1 + e] ? null
      : transposeB ? matmul(dys[e]!, xs[e]!, { transposeA: true }) : matmul(xs[e]!, dys[e]!, { transposeA: true })));
    return [dx, ...dws, ...dbs];
  }
  const grads = transposeB ? groupedWeightGrads(dy, x, sizes) : groupedWeightGrads(x, dy, sizes);
  return [dx, ...keepWanted(grads, wantW), ...dbs];
}

// ---- relu's gradient ------------------------------------------------------------------

/**
 * relu's gradient dy · (x > 0) for relu(x)'s dy (same shape and dtype): one kernel where the
 * backend has it, instead of a comparison, a cast and a multiply over the whole activation;
 * the composition elsewhere and when `differentiable` (gradients of gradients). The same bits
 * either way.
 */
export function reluGrad(dy: Tensor, x: Tensor, differentiable: boolean): Tensor {
  if (differentiable || !getBackend().supports?.('reluGrad')) {
    const m = cast(greater(x, 0), dy.dtype);
    const g = mul(dy, m);
    m.dispose();
    return g;
  }
  return runOp('reluGrad', [dy, x], {}, { shape: dy.shape, dtype: dy.dtype }, null);
}

// ---- the MoE combine: gated rows scattered to their examples --------------------------

/**
 * out [numRows, d] with out[index[i]] += weights[i] · y[i] for the rows i of y [M, d], in row
 * order, from zeros: an MoE layer's combine (tensor2tensor's unsorted_segment_sum of the gated
 * expert outputs). The same numbers as indexAdd(zeros([numRows, d]), 0, index, y · weights[:, None]):
 * each product rounded to the dtype, then added in row order. Where the backend has the kernels
 * (the CPU) it is one kernel forward and one backward, instead of a multiply, a scatter-add, and
 * in backward a gather, two multiplies and a row sum; elsewhere it composes those ops.
 */
export function weightedIndexAdd(y: Tensor, weights: Tensor, index: Tensor, numRows: number): Tensor {
  checkTensor('weightedIndexAdd', y, 'y');
  checkTensor('weightedIndexAdd', weights, 'weights');
  checkTensor('weightedIndexAdd', index, 'index');
  checkFloat('weightedIndexAdd', y, 'y');
  const M = y.shape[0]!;
  if (y.rank !== 2 || weights.rank !== 1 || weights.shape[0] !== M || weights.dtype !== y.dtype || index.rank !== 1 || index.shape[0] !== M || index.dtype !== 'int32') {
    throw new Error(`weightedIndexAdd: y must be float [M, d], weights [M] of y's dtype and index int32 [M]; got y ${y.dtype} ${shapeToString(y.shape)}, weights ${weights.dtype} ${shapeToString(weights.shape)}, index ${index.dtype} ${shapeToString(index.shape)}`);
  }
  if (!Number.isInteger(numRows) || numRows < 0) throw new Error(`weightedIndexAdd: numRows must be a non-negative integer, got ${numRows}`);
  const d = y.shape[1]!;
  if (!getBackend().supports?.('weightedIndexAdd')) {
    const weighted = mul(y, reshape(weights, [M, 1]));
    const out = indexAdd(zeros([numRows, d], { dtype: y.dtype }), 0, index, weighted);
    weighted.dispose();
    return out;
  }
  return runOp('weightedIndexAdd', [y, weights, index], { numRows }, { shape: [numRows, d], dtype: y.dtype }, 'weightedIndexAdd');
}

/**
 * weightedIndexAdd's gradients from dOut [numRows, d]: ∂y[i] = weights[i] · dOut[index[i]] and
 * ∂weights[i] = Σ_j dOut[index[i], j] · y[i, j] (each product rounded, summed in float64 in
 * column order, as sum(·, 1) sums them). One kernel; `differentiable` composes the same from
 * core ops (gradients of gradients).
 */
export function weightedIndexAddGrads(dOut: Tensor, y: Tensor, weights: Tensor, index: Tensor, needs: readonly boolean[], differentiable: boolean): (Tensor | null)[] {
  const M = y.shape[0]!, d = y.shape[1]!;
  let dy: Tensor, dw: Tensor;
  if (!differentiable) {
    [dy, dw] = runOpMany('weightedIndexAddBackward', [dOut, y, weights, index], {}, [{ shape: [M, d], dtype: y.dtype }, { shape: [M], dtype: y.dtype }]) as [Tensor, Tensor];
  } else {
    const picked = indexSelect(dOut, 0, index), products = mul(picked, y);
    dy = mul(picked, reshape(weights, [M, 1]));
    dw = sum(products, 1);
    picked.dispose();
    products.dispose();
  }
  return [...keepWanted([dy, dw], needs), null];
}

// ---- noisy top-k gating: the gates and the load estimator from the top indices ---------

/** Checks x-like [N, E] float operands of one dtype and indices int32 [N, m] with m ≥ minColumns. */
function checkGating(op: string, named: readonly [string, Tensor][], indices: Tensor, k: number, minColumns: number): void {
  for (const [name, t] of named) { checkTensor(op, t, name); checkFloat(op, t, name); }
  checkTensor(op, indices, 'indices');
  const [first, x] = named[0]!;
  if (x.rank !== 2) throw new Error(`${op}: ${first} must be [N, E], got ${shapeToString(x.shape)}`);
  for (const [name, t] of named.slice(1)) {
    if (t.rank !== 2 || t.shape[0] !== x.shape[0] || t.shape[1] !== x.shape[1] || t.dtype !== x.dtype) {
      throw new Error(`${op}: ${name} must be ${x.dtype} ${shapeToString(x.shape)} like ${first}, got ${t.dtype} ${shapeToString(t.shape)}`);
    }
  }
  if (!Number.isInteger(k) || k < 1) throw new Error(`${op}: k must be a positive integer, got ${k}`);
  if (indices.dtype !== 'int32' || indices.rank !== 2 || indices.shape[0] !== x.shape[0] || indices.shape[1]! < minColumns || indices.shape[1]! > x.shape[1]!) {
    throw new Error(`${op}: indices must be int32 [${x.shape[0]}, m] with ${minColumns} ≤ m ≤ ${x.shape[1]} (each row's top indices, best first), got ${indices.dtype} ${shapeToString(indices.shape)}`);
  }
}

/**
 * The noisy top-k gate's logits (eq. 3–4) with drawn noise, and each row's top m indices, in
 * one kernel where the backend has it (the CPU: on SIMD, one job of row blocks spread over the
 * threads), else null (the caller composes the ops). The graph and every value are those of
 *   clean = matmul(x, wGate); stddev = softplus(matmul(x, wNoise)).add(epsilon);
 *   noise = randn([N, E], { generator }); noisy = clean.add(noise.mul(stddev));
 *   top = topkIndices(noisy, m)
 * bit for bit, the generator advanced alike: the kernel computes all of it, and the same nodes
 * are recorded here with its results.
 */
export function noisyTopKLogits(x: Tensor, wGate: Tensor, wNoise: Tensor, epsilon: number, m: number, generator: Generator = defaultGenerator): { clean: Tensor; stddev: Tensor; noise: Tensor; noisy: Tensor; top: Tensor } | null {
  if (!getBackend().supports?.('noisyTopKLogits')) return null;
  checkTensor('noisyTopKLogits', x, 'x');
  checkFloat('noisyTopKLogits', x, 'x');
  checkTensor('noisyTopKLogits', wGate, 'wGate');
  checkTensor('noisyTopKLogits', wNoise, 'wNoise');
  const [N, d] = x.shape as [number, number], E = wGate.shape[1]!;
  if (x.rank !== 2 || wGate.rank !== 2 || wGate.shape[0] !== d || wNoise.rank !== 2 || wNoise.shape[0] !== d || wNoise.shape[1] !== E || wGate.dtype !== x.dtype || wNoise.dtype !== x.dtype) {
    throw new Error(`noisyTopKLogits: expected x [N, d] and wGate, wNoise [d, E] of x's dtype, got x ${x.dtype} ${shapeToString(x.shape)}, wGate ${wGate.dtype} ${shapeToString(wGate.shape)}, wNoise ${wNoise.dtype} ${shapeToString(wNoise.shape)}`);
  }
  if (!Number.isInteger(m) || m < 1 || m > E) throw new Error(`noisyTopKLogits: m must be an integer from 1 to ${E}, got ${m}`);
  const { key, counter } = generator.take(N * E);
  const plane = { shape: [N, E], dtype: x.dtype };
  const [clean, raw, sp, stddev, noise, scaled, noisy, top] = runOpMany('noisyTopKLogits', [x, wGate, wNoise], { epsilon, key, counter, m },
    [plane, plane, plane, plane, plane, plane, plane, { shape: [N, m], dtype: 'int32' }]) as [Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor];
  const product = { transposeA: false, transposeB: false };
  recordIfNeeded('matmul', [x, wGate], clean, product);
  recordIfNeeded('matmul', [x, wNoise], raw, product);
  recordIfNeeded('softplus', [raw], sp, {});
  // The add's second operand, as sp.add(epsilon) makes it.
  const eps = scalar(epsilon, x.dtype);
  recordIfNeeded('add', [sp, eps], stddev, {});
  eps.dispose();
  recordIfNeeded('mul', [noise, stddev], scaled, {});
  recordIfNeeded('add', [clean, scaled], noisy, {});
  return { clean, stddev, noise, noisy, top };
}

/** topk's indices alone (x [N, E], 1 ≤ m ≤ E): int32 [N, m], best first (ties to the lower index), no gradient. */
export function topkIndices(x: Tensor, m: number): Tensor {
  checkTensor('topkIndices', x, 'x');
  if (x.rank !== 2 || !Number.isInteger(m) || m < 1 || m > x.shape[1]!) throw new Error(`topkIndices: expected x [N, E] and 1 ≤ m ≤ E, got x ${shapeToString(x.shape)} and m = ${m}`);
  return runOp('topkIndices', [x], { k: m, largest: true }, { shape: [x.shape[0]!, m], dtype: 'int32' }, null);
}

/** Columns [from, to) of indices, or indices itself when that is all of it. */
function columns(indices: Tensor, from: number, to: number): Tensor {
  return from === 0 && to === indices.shape[1] ? indices : slice(indices, [0, from], [indices.shape[0]!, to - from]);
}

/**
 * Noisy top-k's gates (eq. 5): [N, E] zeros but at each row's first k `indices` (its top
 * logits, best first, from topkIndices), which hold the softmax of x there. The numbers of
 * gathering those logits, softmax, and scatter-adding into zeros; where the backend has the
 * kernels (the CPU), one kernel each way instead of about twenty.
 */
export function topkGates(x: Tensor, indices: Tensor, k: number): Tensor {
  checkGating('topkGates', [['x', x]], indices, k, k);
  if (!getBackend().supports?.('topkGates')) {
    const top = columns(indices, 0, k);
    const values = gather(x, 1, top), g = softmax(values, -1);
    const out = scatterAdd(zeros(x.shape, { dtype: x.dtype }), 1, top, g);
    for (const t of [values, g, ...(top === indices ? [] : [top])]) t.dispose();
    return out;
  }
  return runOp('topkGates', [x, indices], { k }, { shape: x.shape, dtype: x.dtype }, 'topkGates');
}

/**
 * topkGates' gradient for its dy: one kernel where the backend has it; `differentiable`
 * composes the rules of gather → softmax → scatterAdd (gradients of gradients), the same bits.
 */
export function topkGatesGrad(dy: Tensor, x: Tensor, indices: Tensor, k: number, differentiable: boolean): Tensor {
  if (!differentiable && getBackend().supports?.('topkGatesBackward')) {
    return runOp('topkGatesBackward', [dy, x, indices], { k }, { shape: x.shape, dtype: x.dtype }, null);
  }
  const top = columns(indices, 0, k);
  const values = gather(x, 1, top), m = max(values.detach(), 1, true);
  const e = exp(sub(values, m)), s = sum(e, 1, true), g = div(e, s), dg = gather(dy, 1, top);
  const ds = sum(neg(mul(dg, div(g, s))), 1, true);
  const dShifted = mul(add(div(dg, s), ds), e);
  return scatterAdd(zeros(x.shape, { dtype: x.dtype }), 1, top, dShifted);
}

/**
 * The load estimator's P(x, i) (eq. 9) from each noisy row's top indices [N, m], m > k (from
 * topkIndices): Φ((clean − threshold) / stddev), the threshold being the (k+1)-th largest noisy
 * logit where noisy exceeds it, else the k-th. balancing.ts's probInTopK, which takes the top
 * values instead, gives the same numbers; this form runs one kernel each way on the CPU.
 */
export function probInTopKAt(clean: Tensor, noisy: Tensor, stddev: Tensor, indices: Tensor, k: number): Tensor {
  checkGating('probInTopKAt', [['clean', clean], ['noisy', noisy], ['stddev', stddev]], indices, k, k + 1);
  if (!getBackend().supports?.('probInTopK')) {
    const { atIn, atOut, thresholdIn, thresholdOut, inside } = loadThresholds(noisy, indices, k);
    const threshold = where(inside, thresholdIn, thresholdOut), shifted = sub(clean, threshold), z = div(shifted, stddev);
    const p = normalCdf(z);
    for (const t of [atIn, atOut, thresholdIn, thresholdOut, inside, threshold, shifted, z]) t.dispose();
    return p;
  }
  return runOp('probInTopK', [clean, noisy, stddev, indices], { k }, { shape: clean.shape, dtype: clean.dtype }, 'probInTopK');
}

/**
 * Where each row's (k+1)-th and k-th largest noisy logits are (atIn, atOut: [N, 1] columns of
 * indices, m > k so never all of it), those logits, and where noisy exceeds the first.
 */
function loadThresholds(noisy: Tensor, indices: Tensor, k: number): { atIn: Tensor; atOut: Tensor; thresholdIn: Tensor; thresholdOut: Tensor; inside: Tensor } {
  const atIn = columns(indices, k, k + 1), atOut = columns(indices, k - 1, k);
  const thresholdIn = gather(noisy, 1, atIn), thresholdOut = gather(noisy, 1, atOut);
  return { atIn, atOut, thresholdIn, thresholdOut, inside: greater(noisy.detach(), thresholdIn.detach()) };
}

/**
 * probInTopKAt's gradients for its dP: [∂clean, ∂noisy, ∂stddev, null]. One kernel where the
 * backend has it; `differentiable` composes the rules of the composition (gradients of
 * gradients), the same bits.
 */
export function probInTopKAtGrads(dP: Tensor, clean: Tensor, noisy: Tensor, stddev: Tensor, indices: Tensor, k: number, needs: readonly boolean[], differentiable: boolean): (Tensor | null)[] {
  if (!differentiable && getBackend().supports?.('probInTopKBackward')) {
    const outs = [clean, noisy, stddev].map((t) => ({ shape: t.shape, dtype: t.dtype }));
    return [...keepWanted(runOpMany('probInTopKBackward', [dP, clean, noisy, stddev, indices], { k }, outs), needs.slice(0, 3)), null];
  }
  const { atIn, atOut, thresholdIn, thresholdOut, inside } = loadThresholds(noisy, indices, k);
  const z = div(sub(clean, where(inside, thresholdIn, thresholdOut)), stddev);
  const dz = mul(dP, mul(exp(mul(mul(z, z), -0.5)), 1 / Math.sqrt(2 * Math.PI)));
  const dClean = div(dz, stddev), dStddev = neg(mul(dz, div(z, stddev))), dThreshold = neg(dClean);
  const dIn = sum(where(inside, dThreshold, 0), 1, true), dOut = sum(where(inside, 0, dThreshold), 1, true);
  const dNoisy = add(scatterAdd(zeros(noisy.shape, { dtype: noisy.dtype }), 1, atIn, dIn), scatterAdd(zeros(noisy.shape, { dtype: noisy.dtype }), 1, atOut, dOut));
  return [...keepWanted([dClean, dNoisy, dStddev], needs.slice(0, 3)), null];
}

/**
 * cv²(v) = Var(v) / (Mean(v)² + 1e-10) over all of v's elements (moe/balancing.ts cvSquared,
 * which checks v) as one kernel and one recorded node where the backend has it; null where it
 * does not, for the caller to compose. The composition's bits.
 */
export function cvSquaredFused(v: Tensor): Tensor | null {
  if (!getBackend().supports?.('cvSquared')) return null;
  return runOp('cvSquared', [v], {}, { shape: [], dtype: v.dtype }, 'cvSquared');
}

/**
 * cvSquared's gradient for dy: one kernel where the backend has it; `differentiable` composes
 * the rules of the composition step by step (gradients of gradients), the same bits.
 */
export function cvSquaredGrad(dy: Tensor, v: Tensor, differentiable: boolean): Tensor {
  if (!differentiable && getBackend().supports?.('cvSquaredBackward')) {
    return runOp('cvSquaredBackward', [dy, v], {}, { shape: v.shape, dtype: v.dtype }, null);
  }
  const n = v.size, flat = reshape(v, [n]);
  const m = div(sum(flat), n), d = sub(flat, m);
  const variance = div(sum(mul(d, d)), n), den = add(mul(m, m), 1e-10), out = div(variance, den);
  // div's rule, add's, then mul(m, m)'s two products, summed as backward sums them.
  const dVar = div(dy, den), dDen = neg(mul(dy, div(out, den)));
  const dmFromSquare = add(mul(dDen, m), mul(dDen, m));
  // mean's division and broadcast, mul(d, d)'s two products summed, then sub's: ∂m = Σ −∂d.
  const dq = broadcastTo(reshape(div(dVar, n), [1]), [n]);
  const dd = add(mul(dq, d), mul(dq, d));
  const dm = add(dmFromSquare, reshape(sum(neg(dd), [0], true), []));
  return reshape(add(dd, broadcastTo(reshape(div(dm, n), [1]), [n])), v.shape);
}
