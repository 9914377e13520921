// Reverse-mode differentiation over the recorded graph. Iterative (no recursion: an
// unrolled LSTM is tens of thousands of nodes deep), gradients accumulate on fan-out,
// broadcast gradients are reduced in one place, and each node's saved tensors are freed
// as soon as they have been used unless retainGraph is set.

import * as ops from '../tensor/ops/index.js';
import { getBackend, keep, tidy, withGradMode } from '../tensor/engine.js';
import { shapesEqual, shapeToString, type Shape } from '../core/shape.js';
import { Tensor, type BackwardOptions } from '../tensor/tensor.js';
import { freeSaved, Node, targetOf, type GradTarget } from './node.js';
import { isAssemblingRule, ruleFor, type AssemblingRule, type GradRule, type RuleContext } from './rules.js';

/** Sums a gradient over the dimensions that broadcasting added or stretched. */
export function sumToShape(g: Tensor, shape: Shape, op: string, input: number): Tensor {
  if (shapesEqual(g.shape, shape)) return g;
  const lead = g.rank - shape.length;
  const axes: number[] = [];
  let ok = lead >= 0;
  for (let i = 0; ok && i < g.rank; i++) {
    if (i < lead) axes.push(i);
    else if (shape[i - lead] === 1 && g.shape[i] !== 1) axes.push(i);
    else if (shape[i - lead] !== g.shape[i]) ok = false;
  }
  if (!ok) {
    throw new Error(`backward of ${op}: the gradient for input ${input} has shape ${shapeToString(g.shape)}, which does not reduce to the input's shape ${shapeToString(shape)}`);
  }
  return ops.reshape(ops.sum(g, axes, true), shape);
}

export interface GradRequest {
  roots: readonly Tensor[];
  rootGrads: readonly (Tensor | undefined)[];
  retainGraph: boolean;
  createGraph: boolean;
  /** When given, return these targets' gradients instead of accumulating into leaves. */
  wanted?: readonly GradTarget[];
  /** Nodes where this pass ends: their gradient is returned and their rule not run (a checkpoint's inputs). */
  stopAt?: ReadonlySet<GradTarget>;
  /** Sums already begun for some targets, which this pass continues (a checkpoint's recomputation). */
  initial?: ReadonlyMap<GradTarget, Tensor>;
}

/** Nodes reachable from the roots, and for each how many consumers will send it a gradient. */
function countConsumers(starts: readonly GradTarget[], stopAt: ReadonlySet<GradTarget>): Map<Node, number> {
  const pending = new Map<Node, number>();
  const stack: Node[] = [];
  for (const s of starts) if (s instanceof Node && !pending.has(s)) { pending.set(s, 0); if (!stopAt.has(s)) stack.push(s); }
  while (stack.length > 0) {
    const node = stack.pop()!;
    for (const t of node.targets) {
      if (!(t instanceof Node)) continue;
      const seen = pending.has(t);
      pending.set(t, (pending.get(t) ?? 0) + 1);
      if (!seen && !stopAt.has(t)) stack.push(t);
    }
  }
  return pending;
}

/**
 * The nodes on a path to one that may leave a job running (LEAVES_JOBS_RUNNING), themselves
 * included: taken before the others, so that the rest of the graph (the MoE's auxiliary
 * losses and its gate) runs beside the experts' jobs rather than before the first of them.
 * Empty, at the cost of one scan, when the graph has no such node.
 */
function leadingToJobs(pending: ReadonlyMap<Node, number>): Set<Node> {
  const leading = new Set<Node>();
  const stack: Node[] = [];
  for (const n of pending.keys()) if (LEAVES_JOBS_RUNNING.has(n.op)) { leading.add(n); stack.push(n); }
  if (stack.length === 0) return leading;
  const consumers = new Map<Node, Node[]>();
  for (const n of pending.keys()) {
    for (const t of n.targets) if (t instanceof Node) (consumers.get(t) ?? consumers.set(t, []).get(t)!).push(n);
  }
  while (stack.length > 0) {
    for (const c of consumers.get(stack.pop()!) ?? []) if (!leading.has(c)) { leading.add(c); stack.push(c); }
  }
  return leading;
}

/** Runs backward; returns the gradient of every leaf reached (or of each wanted target). */
export function runBackward(request: GradRequest): Map<GradTarget, Tensor> {
  const { roots, retainGraph, createGraph } = request;
  const wanted = new Set(request.wanted ?? []);
  const stopAt = request.stopAt ?? new Set<GradTarget>();
  // A new tensor object over g's data: each stored gradient is its own object, so disposing
  // one never frees another. Recorded (a reshape) only when building a graph of gradients.
  const alias = (g: Tensor): Tensor => (createGraph ? ops.reshape(g, g.shape) : g.detach());
  // The backend may leave a job running while the pass goes on (overlapJobs): the experts'
  // weight gradients while the gate's backward runs. Every such job is done when it returns.
  const backend = getBackend();
  const pass = () => tidy(() => withGradMode(createGraph, () => {
    const grads = new Map<GradTarget, Tensor>();
    // Each stored gradient is its own tensor object, so disposing one never frees another.
    const accumulate = (target: GradTarget, g: Tensor) => {
      const previous = grads.get(target);
      if (previous === undefined) { grads.set(target, g); return; }
      grads.set(target, ops.add(previous, g));
      previous.dispose();
      g.dispose();
    };
    // Pieces for assembling rules (slice), per target: assembled in one op when the target's own turn comes.
    const assembling = new Map<GradTarget, { rule: AssemblingRule<never>; pieces: Tensor[]; begins: (readonly number[])[]; shape: readonly number[] }>();
    const flushPieces = (target: GradTarget) => {
      const pending = assembling.get(target);
      if (!pending) return;
      assembling.delete(target);
      const assembled = pending.rule.assemble(pending.pieces, pending.begins, pending.shape);
      for (const p of pending.pieces) p.dispose();
      accumulate(target, assembled);
    };
    for (const [target, g] of request.initial ?? []) grads.set(target, g);
    const starts: GradTarget[] = [];
    roots.forEach((root, i) => {
      const target = targetOf(root);
      if (target === null) {
        throw new Error(`backward: output ${i} (shape ${shapeToString(root.shape)}) does not require grad and has no grad_fn`);
      }
      let g = request.rootGrads[i];
      if (g === undefined) {
        if (root.size !== 1) {
          throw new Error(`backward: grad can be implicitly created only for one-element outputs; output ${i} has shape ${shapeToString(root.shape)} (pass a gradient)`);
        }
        g = ops.onesLike(root.detach());
      } else if (!shapesEqual(g.shape, root.shape) || g.dtype !== root.dtype) {
        throw new Error(`backward: the gradient for output ${i} has shape ${shapeToString(g.shape)} (${g.dtype}) but the output has shape ${shapeToString(root.shape)} (${root.dtype})`);
      }
      accumulate(target, alias(g));
      starts.push(target);
    });

    const pending = countConsumers(starts, stopAt);
    // Two stacks: the nodes on a path to a job left running are taken first.
    const leading = leadingToJobs(pending);
    const ready: Node[] = [], readyFirst: Node[] = [];
    const makeReady = (n: Node) => (leading.has(n) ? readyFirst : ready).push(n);
    for (const [n, count] of pending) if (count === 0) makeReady(n);
    const leaves = new Map<GradTarget, Tensor>();
    while (ready.length + readyFirst.length > 0) {
      const node = readyFirst.pop() ?? ready.pop()!;
      flushPieces(node);
      if (stopAt.has(node)) continue;
      const dy = grads.get(node);
      if (dy !== undefined) {
        if (node.released) {
          throw new Error(`backward: trying to backward through the graph a second time (op ${node.op}); its saved tensors were freed. Pass {retainGraph: true} to the first backward`);
        }
        const take = (i: number) => {
          const target = node.targets[i], g = target ? grads.get(target) : undefined;
          if (g !== undefined) grads.delete(target!);
          return g;
        };
        const ctx: RuleContext<never> = {
          inputs: node.inputs, output: node.output, attrs: node.attrs as never, needs: node.targets.map((t) => t !== null), takeSum: take,
        };
        const rule = ruleFor(node.op);
        if (isAssemblingRule(rule)) {
          const target = node.targets[0];
          if (target) {
            const { piece, begin } = (rule as AssemblingRule<never>).piece(dy, ctx);
            const pending = assembling.get(target) ?? { rule: rule as AssemblingRule<never>, pieces: [], begins: [], shape: node.inputs[0]!.shape };
            pending.pieces.push(piece === dy ? alias(dy) : piece);
            pending.begins.push(begin);
            assembling.set(target, pending);
          }
        } else {
          // The rule's temporaries die with this inner tidy; only the reduced gradients leave it.
          const inputGrads = tidy(() => {
            const raw = (rule as GradRule<never>)(dy, ctx);
            return node.targets.map((target, i) => {
              const g = raw[i];
              if (target === null || g === null || g === undefined) return null;
              const input = node.inputs[i]!;
              const reduced = sumToShape(g, input.shape, node.op, i);
              if (reduced.dtype !== input.dtype) {
                throw new Error(`backward of ${node.op}: the gradient for input ${i} is ${reduced.dtype} but the input is ${input.dtype}`);
              }
              return reduced === dy ? alias(dy) : reduced;
            });
          });
          inputGrads.forEach((g, i) => { if (g) accumulate(node.targets[i]!, g); });
        }
        if (wanted.has(node)) leaves.set(node, dy);
        else dy.dispose();
        grads.delete(node);
      }
      if (!retainGraph) freeSaved(node);
      // Of the nodes this one makes ready, those that may leave a job running go on the
      // stack last, to be taken first: the rest of the graph then runs beside their jobs.
      let first: Node[] | null = null;
      for (const t of node.targets) {
        if (!(t instanceof Node)) continue;
        const left = pending.get(t)! - 1;
        pending.set(t, left);
        if (left === 0) {
          if (LEAVES_JOBS_RUNNING.has(t.op)) (first ??= []).push(t);
          else makeReady(t);
        }
      }
      if (first !== null) for (const t of first) makeReady(t);
    }
    for (const target of [...assembling.keys()]) flushPieces(target);
    for (const [target, g] of grads) if (!(target instanceof Node) || stopAt.has(target)) leaves.set(target, g);
    return leaves;
  }));
  return backend.overlapJobs ? backend.overlapJobs(pass) : pass();
}

/**
 * Ops whose backward may end in a job the backend leaves running (overlapJobs): the grouped
 * experts' weight gradients. Taken before the other nodes made ready with them, so that the
 * MoE's gate backward runs beside the experts' last job instead of before it.
 */
const LEAVES_JOBS_RUNNING: ReadonlySet<string> = new Set(['groupedMatmul']);

/** Tensor.backward: accumulate into the .grad of every leaf that requires it. */
export function backward(root: Tensor, grad: Tensor | undefined, options: BackwardOptions): void {
  const leaves = runBackward({
    roots: [root], rootGrads: [grad], retainGraph: options.retainGraph ?? options.createGraph ?? false,
    createGraph: options.createGraph ?? false,
  });
  for (const [target, g] of leaves) {
    const leaf = target as Tensor;
    if (leaf.grad === null) {
      leaf.grad = keep(g);
    } else {
      const sum = withGradMode(options.createGraph ?? false, () => ops.add(leaf.grad!, g));
      leaf.grad.dispose();
      g.dispose();
      leaf.grad = keep(sum);
    }
  }
}

