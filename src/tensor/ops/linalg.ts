// matmul: 2-D, batched with broadcast batch dimensions, and 1-D operands as in
// torch.matmul. Transposed operands are read in place (transposeA/transposeB). And the
// triangular masks tril/triu.

import { runOp } from '../engine.js';
import { broadcastShapes, shapeToString } from '../../core/shape.js';
import type { Tensor } from '../tensor.js';
import { reshape } from './movement.js';
import { arange } from './creation.js';
import { greaterEqual, lessEqual, sub, where } from './elementwise.js';
import { checkInt, checkTensor } from './util.js';

export interface MatmulOptions { transposeA?: boolean; transposeB?: boolean }

export function matmul(a: Tensor, b: Tensor, options: MatmulOptions = {}): Tensor {
  checkTensor('matmul', a, 'a');
  checkTensor('matmul', b, 'b');
  const transposeA = options.transposeA ?? false, transposeB = options.transposeB ?? false;
  if (a.dtype !== b.dtype) throw new Error(`matmul: dtype mismatch, a is ${a.dtype} and b is ${b.dtype}`);
  if (a.rank === 0 || b.rank === 0) throw new Error(`matmul: both operands need at least 1 dimension, got shapes ${shapeToString(a.shape)} and ${shapeToString(b.shape)}`);
  // 1-D operands are promoted to matrices and the added dimension removed afterwards.
  if (a.rank === 1 || b.rank === 1) {
    const ka1 = a.rank === 1 ? a.shape[0]! : (transposeA ? a.shape[a.rank - 2]! : a.shape[a.rank - 1]!);
    const kb1 = b.rank === 1 ? b.shape[0]! : (transposeB ? b.shape[b.rank - 1]! : b.shape[b.rank - 2]!);
    if (ka1 !== kb1) {
      throw new Error(`matmul: inner dimensions differ: a ${shapeToString(a.shape)} contributes ${ka1}, b ${shapeToString(b.shape)} contributes ${kb1}`);
    }
    const a2 = a.rank === 1 ? reshape(a, [1, a.shape[0]!]) : a;
    const b2 = b.rank === 1 ? reshape(b, [b.shape[0]!, 1]) : b;
    if ((a.rank === 1 && transposeA) || (b.rank === 1 && transposeB)) throw new Error('matmul: a 1-D operand cannot be transposed');
    const c = matmul(a2, b2, options);
    const shape = c.shape.slice(0, -2);
    if (a.rank !== 1) shape.push(c.shape[c.rank - 2]!);
    if (b.rank !== 1) shape.push(c.shape[c.rank - 1]!);
    const out = reshape(c, shape);
    for (const t of [a2, b2, c]) if (t !== a && t !== b) t.dispose();
    return out;
  }
  const [m, ka] = transposeA ? [a.shape[a.rank - 1]!, a.shape[a.rank - 2]!] : [a.shape[a.rank - 2]!, a.shape[a.rank - 1]!];
  const [kb, n] = transposeB ? [b.shape[b.rank - 1]!, b.shape[b.rank - 2]!] : [b.shape[b.rank - 2]!, b.shape[b.rank - 1]!];
  if (ka !== kb) {
    throw new Error(
      `matmul: inner dimensions differ: a ${shapeToString(a.shape)}${transposeA ? 'ᵀ' : ''} has ${ka} columns, ` +
      `b ${shapeToString(b.shape)}${transposeB ? 'ᵀ' : ''} has ${kb} rows`,
    );
  }
  const batch = broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2), 'matmul (batch dimensions)');
  return runOp('matmul', [a, b], { transposeA, transposeB }, { shape: [...batch, m, n], dtype: a.dtype }, 'matmul');
}

/**
 * Keeps the entries of the last two axes on and below (tril) or on and above (triu) the
 * `diagonal`-th diagonal (0 the main one, > 0 above it, < 0 below), zeros elsewhere: a where
 * over the mask col − row ≤ diagonal (tril) or ≥ diagonal (triu), so the gradient is masked alike.
 */
function triangle(op: 'tril' | 'triu') {
  return (x: Tensor, diagonal = 0): Tensor => {
    checkTensor(op, x, 'x');
    checkInt(op, diagonal, 'diagonal');
    if (x.rank < 2) throw new Error(`${op}: x must have at least 2 dimensions, got shape ${shapeToString(x.shape)}`);
    const rows = arange(x.shape[x.rank - 2]!), cols = arange(x.shape[x.rank - 1]!);
    const r = reshape(rows, [rows.size, 1]);
    const offset = sub(cols, r);
    const keep = op === 'tril' ? lessEqual(offset, diagonal) : greaterEqual(offset, diagonal);
    const out = where(keep, x, 0);
    for (const t of [rows, cols, r, offset, keep]) t.dispose();
    return out;
  };
}

export const tril = triangle('tril');
export const triu = triangle('triu');
