// Graph nodes. Each recorded op keeps private copies of its inputs and output (sharing
// their data), so a graph survives tidy() disposing the user's intermediates. A node is
// reference-counted: by its output tensor and by the nodes that consume it. When nothing
// refers to it, or backward has used it, its copies are freed.

import type { RecordedOp } from '../tensor/recorded-ops.js';
import { Tensor, type GraphNode } from '../tensor/tensor.js';

/** Where an input's gradient goes: the node that produced it, or the leaf itself. */
export type GradTarget = Node | Tensor;

let nextSerial = 0;

export class Node implements GraphNode {
  /** Creation order: a checkpoint tells the nodes its function made from those it found (checkpoint.ts). */
  readonly serial = nextSerial++;
  refs = 1; // the output tensor
  /** True once backward has consumed the saved tensors (without retainGraph). */
  released = false;
  constructor(
    readonly op: RecordedOp,
    readonly attrs: Record<string, unknown>,
    /** Private copies of the inputs, as the gradient rule sees them. */
    readonly inputs: readonly Tensor[],
    /** Per input: where its gradient goes, or null when it needs none. */
    readonly targets: readonly (GradTarget | null)[],
  ) {}
  /** A private copy of the output (set right after construction: it points back to this node). */
  output!: Tensor;
}

/** The gradient target of a tensor: its node, the leaf it stands for, or null. */
export function targetOf(t: Tensor): GradTarget | null {
  if (t.node instanceof Node) return t.node;
  if (!t.requiresGrad) return null;
  return t.origin ?? t;
}

/** A private copy sharing t's data, owned by a node (not by any tidy scope). */
export function savedCopy(t: Tensor): Tensor {
  t.backend.incRef(t.handle);
  const copy = new Tensor(t.handle, t.shape, t.dtype, t.backend, false);
  copy.saved = true;
  copy.node = t.node;
  if (t.requiresGrad) {
    if (t.node === null) copy.requiresGrad = true;
    copy.origin = t.node === null ? (t.origin ?? t) : null;
  }
  return copy;
}

/** The serial the next node will get. */
export function nextNodeSerial(): number { return nextSerial; }

export function record(op: RecordedOp, inputs: readonly Tensor[], output: Tensor, attrs: object): void {
  const targets = inputs.map(targetOf);
  for (const target of targets) if (target instanceof Node) target.refs++;
  const node = new Node(op, attrs as Record<string, unknown>, inputs.map(savedCopy), targets);
  output.node = node;
  node.output = savedCopy(output);
}

/** Frees a node's saved tensors (backward does this as soon as it has used them). */
export function freeSaved(node: Node): void {
  if (node.released) return;
  node.released = true;
  for (const t of node.inputs) t.dispose();
  node.output.dispose();
}

/** Drops one reference; a node nobody refers to frees its tensors and its own references. */
export function release(start: GraphNode): void {
  const stack = [start as Node];
  while (stack.length > 0) {
    const node = stack.pop()!;
    if (--node.refs > 0) continue;
    freeSaved(node);
    for (const target of node.targets) if (target instanceof Node) stack.push(target);
  }
}

