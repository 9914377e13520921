// Helpers shared by the op files: operand checks and number → tensor conversion.

import { checkLive, runOp } from '../engine.js';
import { promoteTypes, promoteWithNumber, type DType } from '../../core/dtype.js';
import { Tensor } from '../tensor.js';

export type TensorLike = Tensor | number;

export function checkTensor(op: string, x: unknown, arg: string): Tensor {
  if (!(x instanceof Tensor)) throw new Error(`${op}: argument '${arg}' must be a Tensor, got ${describe(x)}`);
  checkLive(op, x, arg);
  return x;
}

export function describe(x: unknown): string {
  if (x instanceof Tensor) return `a ${x.dtype} tensor of shape [${x.shape.join(', ')}]`;
  if (Array.isArray(x)) return 'an array';
  return x === null ? 'null' : typeof x === 'number' ? String(x) : typeof x;
}

export function checkFloat(op: string, x: Tensor, arg: string): void {
  if (x.dtype === 'int32') throw new Error(`${op}: argument '${arg}' must be a float tensor, got int32 (cast it first)`);
}

/** A 0-d tensor holding `value` (no gradient), for number operands. */
export function scalar(value: number, dtype: DType): Tensor {
  return runOp('fill', [], { value }, { shape: [], dtype }, null);
}

/** The dtype two operands compute in, with PyTorch's promotion (numbers are "weak"). */
export function resultType(op: string, a: TensorLike, b: TensorLike): DType {
  if (typeof a === 'number' && typeof b === 'number') throw new Error(`${op}: at least one operand must be a Tensor`);
  if (typeof a === 'number') return promoteWithNumber((b as Tensor).dtype, a);
  if (typeof b === 'number') return promoteWithNumber(a.dtype, b);
  return promoteTypes(a.dtype, b.dtype);
}

export function checkNumber(op: string, value: unknown, arg: string): number {
  if (typeof value !== 'number' || Number.isNaN(value)) throw new Error(`${op}: argument '${arg}' must be a number, got ${describe(value)}`);
  return value;
}

export function checkInt(op: string, value: unknown, arg: string, min = -Infinity): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new Error(`${op}: argument '${arg}' must be an integer${min > -Infinity ? ` >= ${min}` : ''}, got ${describe(value)}`);
  }
  return value;
}
