// The one seam between the tensor layer and autograd. The tensor layer sits below
// src/autograd and cannot import it, yet an op must record a graph node, a disposed tensor
// must drop its node, and Tensor.backward must run backward. src/autograd provides those
// three functions as one object (src/autograd/hooks.ts) and src/index.ts installs it:
//
//   installAutograd(autogradHooks)      // src/index.ts
//
// Without it, ops run and nothing is recorded (requiresGrad tensors have no graph).

import type { RecordedOp } from './recorded-ops.js';
import type { BackwardOptions, GraphNode, Tensor } from './tensor.js';

export interface AutogradHooks {
  /** Adds the graph node of an op whose inputs require grad (src/autograd/node.ts). */
  record(op: RecordedOp, inputs: readonly Tensor[], output: Tensor, attrs: object): void;
  /** Drops a disposed tensor's reference to its node (src/autograd/node.ts). */
  releaseNode(node: GraphNode): void;
  /** Tensor.backward (src/autograd/backward.ts). */
  backward(root: Tensor, grad: Tensor | undefined, options: BackwardOptions): void;
}

let installed: AutogradHooks | null = null;

/** Connects autograd to the tensor layer (src/index.ts does this once). */
export function installAutograd(hooks: AutogradHooks): void { installed = hooks; }

/** The installed hooks, or null before installAutograd. */
export function autogradHooks(): AutogradHooks | null { return installed; }
