// Ops that run a fused kernel (FusedKernelAttrs, src/core/backend.ts) where the backend
// offers one, and compose the same math from core ops where it does not. Both paths give
// the same numbers; the fused one runs one kernel instead of a dozen and records one node.

import { getBackend, runOp } from '../engine.js';
import { shapeToString } from '../../core/shape.js';
import type { Tensor } from '../tensor.js';
import { add, mul, sigmoid, sub, tanh } from './elementwise.js';
import { chunk, concat, reshape, slice } from './movement.js';
import { checkFloat, checkTensor } from './util.js';

export interface LSTMCellState { h: Tensor; c: Tensor }

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
