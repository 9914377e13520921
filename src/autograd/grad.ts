// Functional gradients: torch.autograd.grad's form (outputs, inputs) and the
// function-transform form grad(f) / valueAndGrad(f) of torch.func and tfjs.

import * as ops from '../tensor/ops/index.js';
import { enableGrad } from '../tensor/engine.js';
import { shapeToString } from '../core/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { runBackward } from './backward.js';
import { targetOf } from './node.js';

export interface AutogradGradOptions {
  /** One gradient per output (required for outputs with more than one element). */
  gradOutputs?: readonly (Tensor | undefined)[];
  retainGraph?: boolean;
  /** Record the backward pass itself, so the result can be differentiated again. */
  createGraph?: boolean;
  /** Return zeros for inputs the outputs do not depend on, instead of throwing. */
  allowUnused?: boolean;
}

/**
 * Gradients of `outputs` with respect to `inputs`, without touching any .grad
 * (torch.autograd.grad). Inputs may be leaves or intermediate tensors.
 */
export function autogradGrad(outputs: Tensor | readonly Tensor[], inputs: readonly Tensor[], options: AutogradGradOptions = {}): Tensor[] {
  const outs = outputs instanceof Tensor ? [outputs] : [...outputs];
  const targets = inputs.map((t, i) => {
    if (!(t instanceof Tensor)) throw new Error(`autograd.grad: inputs[${i}] is not a Tensor`);
    const target = targetOf(t);
    if (target === null) throw new Error(`autograd.grad: inputs[${i}] (shape ${shapeToString(t.shape)}) does not require grad`);
    return target;
  });
  const createGraph = options.createGraph ?? false;
  const found = runBackward({
    roots: outs,
    rootGrads: options.gradOutputs ?? outs.map(() => undefined),
    retainGraph: options.retainGraph ?? createGraph,
    createGraph,
    wanted: targets,
  });
  return inputs.map((t, i) => {
    const g = found.get(targets[i]!);
    if (g !== undefined) return g;
    if (!options.allowUnused) {
      throw new Error(`autograd.grad: inputs[${i}] (shape ${shapeToString(t.shape)}) was not used in computing the outputs; pass {allowUnused: true} for zeros`);
    }
    return ops.zerosLike(t);
  });
}

export const autograd = { grad: autogradGrad };

export interface GradOptions { argnums?: number | readonly number[] }

function prepare(f: (...args: Tensor[]) => Tensor, args: Tensor[], argnums: number | readonly number[], op: string) {
  const list = typeof argnums === 'number' ? [argnums] : [...argnums];
  for (const i of list) {
    if (!Number.isInteger(i) || i < 0 || i >= args.length) throw new Error(`${op}: argnums ${i} is out of range for ${args.length} arguments`);
    const a = args[i];
    if (!(a instanceof Tensor)) throw new Error(`${op}: argument ${i} must be a Tensor`);
    if (a.dtype === 'int32') throw new Error(`${op}: argument ${i} is int32; only float arguments can be differentiated`);
  }
  // Fresh leaves sharing the arguments' data, so the caller's tensors are not marked.
  const leaves = args.map((a, i) => (list.includes(i) ? a.detach().requiresGrad_() : a));
  const value = enableGrad(() => f(...leaves));
  if (!(value instanceof Tensor) || value.size !== 1) {
    throw new Error(`${op}: f must return a one-element Tensor, got ${value instanceof Tensor ? `shape ${shapeToString(value.shape)}` : typeof value}`);
  }
  const grads = autogradGrad(value, list.map((i) => leaves[i]!), { allowUnused: true });
  list.forEach((i) => leaves[i]!.dispose());
  return { value: value.detach(), grads, single: typeof argnums === 'number', disposeValue: () => value.dispose() };
}

/** grad(f)(...args): the gradient of a scalar-valued f with respect to args[argnums] (default 0). */
export function grad(f: (...args: Tensor[]) => Tensor, options: GradOptions = {}): (...args: Tensor[]) => Tensor | Tensor[] {
  return (...args) => {
    const r = prepare(f, args, options.argnums ?? 0, 'grad');
    r.value.dispose();
    r.disposeValue();
    return r.single ? r.grads[0]! : r.grads;
  };
}

/** valueAndGrad(f)(...args) → {value, grad}: f's value and its gradient, in one pass. */
export function valueAndGrad(f: (...args: Tensor[]) => Tensor, options: GradOptions = {}): (...args: Tensor[]) => { value: Tensor; grad: Tensor | Tensor[] } {
  return (...args) => {
    const r = prepare(f, args, options.argnums ?? 0, 'valueAndGrad');
    r.disposeValue();
    return { value: r.value, grad: r.single ? r.grads[0]! : r.grads };
  };
}
