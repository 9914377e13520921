// Activation checkpointing (Chen et al. 2016; Gruslys et al. 2016; torch.utils.checkpoint):
// checkpoint(fn, ...inputs) runs fn but keeps only its inputs for backward; backward runs fn
// again, with the same random numbers, and differentiates that recomputation. An unrolled
// LSTM checkpointed every √T steps stores O(√T) states instead of O(T) steps of
// activations, for one more forward pass (Shazeer et al. 2017, §3.1, grow the batch of a
// recurrent MoE this way).
//
// The whole call is one graph node, op 'checkpoint', whose inputs are fn's inputs plus
// every tensor fn reached from outside that requires grad (the module's parameters it
// closes over, for instance): the forward records fn's graph once to find them, then drops
// it. The node's output is fn's differentiable outputs flattened into one tensor; the caller
// gets views of it (a reshape for one output, slices for several).
//
// Gradients equal the un-checkpointed ones bit for bit: the recomputation gives the same
// values (same kernels, the default generator rewound to where it stood), and the inner
// backward continues the outer pass's sums for the inputs (RuleContext.takeSum) instead of
// adding a separately summed segment, so every gradient is added up in the same order.
// createGraph works (the recomputation is recorded into the outer graph), and so do nested
// checkpoints (an inner one is a node like any other of the recomputed graph).
//
// Random numbers: the default generator is rewound; a Generator passed explicitly to an op
// inside fn is not (as PyTorch restores only its global generators), so its draws would
// differ: use the default generator inside checkpointed functions.

import { shapeToString } from '../core/shape.js';
import { enableGrad, isGradEnabled, noGrad, tidy } from '../tensor/engine.js';
import { defaultGenerator } from '../tensor/ops/creation.js';
import * as ops from '../tensor/ops/index.js';
import { Tensor } from '../tensor/tensor.js';
import { runBackward } from './backward.js';
import { nextNodeSerial, Node, record, savedCopy, targetOf, type GradTarget } from './node.js';
import type { RuleContext } from './rules.js';

/** fn's result: a tensor, or arrays and plain objects of tensors (and other values, returned as they are). */
type Outputs = unknown;

/** The tensors in a result, depth first, in a fixed order (arrays by index, objects by key). */
function tensorsIn(value: Outputs, into: Tensor[] = []): Tensor[] {
  if (value instanceof Tensor) into.push(value);
  else if (Array.isArray(value)) for (const v of value) tensorsIn(v, into);
  else if (isPlainObject(value)) for (const v of Object.values(value)) tensorsIn(v, into);
  return into;
}

/** The same structure with some tensors replaced; a part with nothing replaced is returned as it was. */
function replaceTensors(value: Outputs, replace: (t: Tensor) => Tensor): Outputs {
  if (value instanceof Tensor) return replace(value);
  if (Array.isArray(value)) {
    const parts = value.map((v) => replaceTensors(v, replace));
    return parts.every((p, i) => p === value[i]) ? value : parts;
  }
  if (isPlainObject(value)) {
    const entries = Object.entries(value).map(([k, v]) => [k, replaceTensors(v, replace)] as const);
    return entries.every(([k, v]) => v === value[k]) ? value : Object.fromEntries(entries);
  }
  return value;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype;
}

/** Outputs with a gradient history: the ones the checkpoint node stands for. */
const differentiable = (ts: readonly Tensor[]) => ts.filter((t) => t.requiresGrad);

/**
 * What fn's graph reaches outside itself: leaves that require grad and nodes made before fn
 * ran (serial below `firstSerial`), each with a tensor standing for it.
 */
function boundaryOf(outputs: readonly Tensor[], firstSerial: number): Map<GradTarget, Tensor> {
  const found = new Map<GradTarget, Tensor>();
  const seen = new Set<Node>();
  const stack: Node[] = [];
  const visit = (target: GradTarget | null, standIn: () => Tensor) => {
    if (target === null || found.has(target)) return;
    if (target instanceof Node && target.serial >= firstSerial) {
      if (!seen.has(target)) { seen.add(target); stack.push(target); }
      return;
    }
    found.set(target, standIn());
  };
  for (const t of outputs) visit(targetOf(t), () => t);
  while (stack.length > 0) {
    const node = stack.pop()!;
    node.targets.forEach((target, i) => visit(target, () => (target instanceof Node ? target.output : node.inputs[i]!)));
  }
  return found;
}

/**
 * Runs fn(...inputs) keeping only the inputs for backward, which recomputes fn (with the
 * same random numbers) and differentiates it: torch.utils.checkpoint. fn returns a tensor,
 * or arrays / plain objects of tensors; its float outputs with a gradient history come back
 * as views of one checkpoint node, the rest as they are. fn must compute the same thing
 * when called again (only the default generator's draws are replayed), and tensors it
 * closes over must still be alive at backward. Without grad mode, this is fn(...inputs).
 */
export function checkpoint<T>(fn: (...inputs: Tensor[]) => T, ...inputs: Tensor[]): T {
  if (typeof fn !== 'function') throw new Error(`checkpoint: fn must be a function, got ${typeof fn}`);
  inputs.forEach((t, i) => {
    if (!(t instanceof Tensor)) throw new Error(`checkpoint: inputs[${i}] must be a Tensor, got ${t === null ? 'null' : typeof t}`);
    if (t.isDisposed) throw new Error(`checkpoint: inputs[${i}] (tensor #${t.id}, shape ${shapeToString(t.shape)}) was disposed`);
  });
  if (!isGradEnabled()) return fn(...inputs);
  const rng = defaultGenerator.getState();
  const firstSerial = nextNodeSerial();
  return tidy(() => {
    const result = fn(...inputs);
    const outs = differentiable(tensorsIn(result));
    if (outs.length === 0) return result;
    const dtype = outs[0]!.dtype;
    outs.forEach((t, i) => {
      if (t.dtype !== dtype) throw new Error(`checkpoint: fn's differentiable outputs must share one dtype; output ${i} is ${t.dtype}, output 0 is ${dtype}`);
    });
    // Node inputs: fn's own inputs first (the recomputation calls fn with them), then what it closed over.
    const boundary = boundaryOf(outs, firstSerial);
    for (const x of inputs) { const target = targetOf(x); if (target) boundary.delete(target); }
    const saved = [...inputs, ...boundary.values()];
    const shapes = outs.map((t) => t.shape);
    const flat = noGrad(() => ops.concat(outs.map((t) => ops.reshape(t.detach(), [t.size])), 0));
    const attrs = { backward: (dy: Tensor, ctx: RuleContext<'checkpoint'>) => recompute(fn, inputs.length, rng, shapes, dy, ctx) };
    record('checkpoint', saved, flat, attrs);
    // The views are new tensors: fn's own outputs (and the graph behind them) die with this tidy.
    let at = 0;
    const views = new Map(outs.map((t) => {
      const view = outs.length === 1 ? ops.reshape(flat, t.shape) : ops.reshape(ops.slice(flat, [at], [t.size]), t.shape);
      at += t.size;
      return [t, view];
    }));
    return replaceTensors(result, (t) => views.get(t) ?? t) as T;
  });
}

/** The checkpoint node's gradient rule: fn again, then backward through it. */
function recompute(
  fn: (...inputs: Tensor[]) => unknown, explicit: number, rng: ReturnType<typeof defaultGenerator.getState>,
  shapes: readonly (readonly number[])[], dy: Tensor, ctx: RuleContext<'checkpoint'>,
): (Tensor | null)[] {
  const createGraph = isGradEnabled(); // backward runs rules with grad mode = createGraph
  const now = defaultGenerator.getState();
  defaultGenerator.setState(rng);
  // Fresh handles on the saved inputs (same data and gradient targets), so that nothing fn
  // returns or disposes is one of the node's own copies.
  const args = ctx.inputs.slice(0, explicit).map(savedCopy);
  let outs: Tensor[];
  try {
    outs = differentiable(tensorsIn(enableGrad(() => fn(...args))));
  } finally {
    defaultGenerator.setState(now);
  }
  if (outs.length !== shapes.length || outs.some((t, i) => t.shape.join() !== shapes[i]!.join())) {
    throw new Error(`checkpoint: recomputing fn gave ${outs.length} differentiable outputs of shapes ${outs.map((t) => shapeToString(t.shape)).join(', ')}, but the forward pass gave ${shapes.length} of shapes ${shapes.map(shapeToString).join(', ')}; fn must compute the same thing every time`);
  }
  let at = 0;
  const pieces = outs.map((t) => {
    const piece = ops.reshape(outs.length === 1 ? dy : ops.slice(dy, [at], [t.size]), t.shape);
    at += t.size;
    return piece;
  });
  // The pass continues the outer one's sums for every input and stops at the inputs' nodes.
  const targets = ctx.inputs.map((_, i) => (ctx.needs[i] ? targetOf(ctx.inputs[i]!) : null));
  const initial = new Map<GradTarget, Tensor>();
  const stopAt = new Set<GradTarget>();
  targets.forEach((target, i) => {
    if (target === null || stopAt.has(target)) return;
    stopAt.add(target);
    const sum = ctx.takeSum(i);
    if (sum !== undefined) initial.set(target, sum);
  });
  const grads = runBackward({ roots: outs, rootGrads: pieces, retainGraph: createGraph, createGraph, stopAt, initial });
  args.forEach((a) => a.dispose());
  // One gradient per distinct target (an input given twice gets its sum once).
  const given = new Set<GradTarget>();
  return targets.map((target) => {
    if (target === null || given.has(target)) return null;
    given.add(target);
    return grads.get(target) ?? null;
  });
}
