// The Tensor: an immutable n-d array on a backend, plus what autograd needs to know about
// it. Every op exists as a function (src/tensor/ops) and as a method here.

import type { Backend, Handle } from '../core/backend.js';
import { isFloat, type DType, type TypedArray } from '../core/dtype.js';
import { autogradHooks } from './autograd-hooks.js';
import * as engine from './engine.js';
import type { Axis } from './ops/reduction.js';
import * as ops from './ops/index.js';
import type { TensorLike } from './ops/util.js';
import { sizeOf, stridesOf, type Shape } from '../core/shape.js';

/**
 * The symbol Node's util.inspect (console.log, the REPL) looks for: the same registered
 * symbol as `inspect.custom`, without importing node:util, so the engine also runs in a browser.
 */
const INSPECT_CUSTOM = Symbol.for('nodejs.util.inspect.custom');

let nextId = 1;

/** What autograd attaches to a tensor that an op produced (see src/autograd/node.ts). */
export interface GraphNode { readonly op: string; refs: number }

export interface BackwardOptions { retainGraph?: boolean; createGraph?: boolean }

const BACKWARD_OPTIONS = ['retainGraph', 'createGraph'];

/** Sorts out Tensor.backward's arguments, with a message for each form it does not take. */
function backwardArguments(root: Tensor, gradient: unknown, options: unknown): { grad: Tensor | undefined; opts: BackwardOptions } {
  const isOptions = (v: unknown) => typeof v === 'object' && v !== null && !(v instanceof Tensor) && !Array.isArray(v);
  let opts = options;
  if (isOptions(gradient)) {
    if (options !== undefined) throw new Error('backward: got an options object as the gradient and a second argument; pass backward(gradient, options) or backward(options)');
    opts = gradient;
    gradient = undefined;
  }
  if (opts !== undefined && !isOptions(opts)) throw new Error(`backward: options must be an object like { retainGraph: true }, got ${describe(opts)}`);
  for (const [key, value] of Object.entries((opts ?? {}) as Record<string, unknown>)) {
    if (!BACKWARD_OPTIONS.includes(key)) throw new Error(`backward: unknown option '${key}' (expected ${BACKWARD_OPTIONS.join(' or ')})`);
    if (value !== undefined && typeof value !== 'boolean') throw new Error(`backward: option ${key} must be true or false, got ${describe(value)}`);
  }
  let grad: Tensor | undefined;
  if (gradient === undefined || gradient === null) grad = undefined;
  else if (gradient instanceof Tensor) grad = gradient;
  else if (typeof gradient === 'number') {
    // torch accepts a Python number only where it can stand for the whole gradient: a one-element output.
    if (root.size !== 1) throw new Error(`backward: a number gradient (${gradient}) needs a one-element output, but this tensor has shape [${root.shape.join(', ')}]; pass a gradient tensor of that shape`);
    if (!Number.isFinite(gradient)) throw new Error(`backward: the gradient must be finite, got ${gradient}`);
    grad = ops.full(root.shape, gradient, { dtype: root.dtype });
  } else {
    throw new Error(`backward: the gradient must be a Tensor, a number or omitted, got ${describe(gradient)}`);
  }
  return { grad, opts: (opts ?? {}) as BackwardOptions };
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return 'an array (wrap it with mt.tensor)';
  if (typeof v === 'string') return `the string '${v}'`;
  return v === null ? 'null' : typeof v === 'object' ? 'an object' : `${typeof v} ${String(v)}`;
}

export class Tensor {
  readonly id = nextId++;
  readonly shape: readonly number[];
  readonly size: number;
  /** @internal The graph node that produced this tensor (null for leaves and constants). */
  node: GraphNode | null = null;
  /** @internal For autograd's private copies of a leaf: the leaf whose .grad they feed. */
  origin: Tensor | null = null;
  /** @internal Autograd's private copy, held by a graph node: it does not own a node reference. */
  saved = false;
  /** @internal Set by keep(): no tidy disposes it. */
  kept = false;
  /** The accumulated gradient of a leaf after backward(). */
  grad: Tensor | null = null;
  private disposed = false;
  private needsGrad = false;

  /** @internal Tensors are made by ops, not by `new`. */
  constructor(
    /** @internal Replaced only by assign() (optimizer steps, loading weights). */
    public handle: Handle,
    shape: Shape,
    /** The element type; assign() may change it on a leaf (Module.to). */
    public dtype: DType,
    /** @internal */ readonly backend: Backend,
    trackInScope = true,
  ) {
    // A frozen shape (another tensor's, or one made here) is shared, not copied: most op
    // results have an input's shape, and this constructor runs for every op.
    this.shape = Object.isFrozen(shape) ? shape : Object.freeze(shape.slice());
    this.size = sizeOf(shape);
    if (trackInScope) engine.track(this);
  }

  get rank(): number { return this.shape.length; }
  get isDisposed(): boolean { return this.disposed; }
  /** A leaf is a tensor no recorded op produced (PyTorch's is_leaf). */
  get isLeaf(): boolean { return this.node === null; }
  /** The name of the op that produced this tensor, or null (PyTorch's grad_fn). */
  get gradFn(): string | null { return this.node?.op ?? null; }

  get requiresGrad(): boolean { return this.needsGrad || this.node !== null; }
  set requiresGrad(value: boolean) {
    if (value && !isFloat(this.dtype)) throw new Error(`requiresGrad: only float tensors can require gradients, this one is ${this.dtype}`);
    if (!value && this.node !== null && !this.saved) throw new Error('requiresGrad: cannot turn off gradients of a non-leaf tensor; use detach()');
    this.needsGrad = value;
  }
  /** Sets requiresGrad and returns this tensor (PyTorch's requires_grad_). */
  requiresGrad_(value = true): this { this.requiresGrad = value; return this; }

  // ---- reading back ------------------------------------------------------------------

  private live(op: string): void {
    if (this.disposed) throw new Error(`${op}: tensor #${this.id} of shape [${this.shape.join(', ')}] was disposed`);
  }
  /** The values as a flat typed array (a copy): a synchronous readback. */
  dataSync(): TypedArray { this.live('dataSync'); return this.backend.readSync(this.handle, this.dtype); }
  /** The values as a flat typed array (a copy). */
  async data(): Promise<TypedArray> { this.live('data'); return this.backend.read(this.handle, this.dtype); }
  /** The values as nested JS arrays (a number for a 0-d tensor). */
  toArray(): unknown {
    const flat = this.dataSync();
    if (this.rank === 0) return flat[0]!;
    const strides = stridesOf(this.shape);
    const build = (dim: number, offset: number): unknown[] =>
      Array.from({ length: this.shape[dim]! }, (_, i) =>
        dim === this.rank - 1 ? flat[offset + i]! : build(dim + 1, offset + i * strides[dim]!));
    return build(0, 0);
  }
  /** The single value of a one-element tensor. */
  item(): number {
    if (this.size !== 1) throw new Error(`item: only one-element tensors can be converted to a number, this one has shape [${this.shape.join(', ')}]`);
    return this.dataSync()[0]!;
  }

  toString(): string {
    if (this.disposed) return `tensor(<disposed>, shape=[${this.shape.join(', ')}], dtype=${this.dtype})`;
    const body = this.size > 1000 ? `<${this.size} values>` : JSON.stringify(this.toArray());
    const extra = [`shape=[${this.shape.join(', ')}]`, `dtype=${this.dtype}`];
    if (this.node) extra.push(`gradFn=${this.node.op}`);
    else if (this.needsGrad) extra.push('requiresGrad=true');
    return `tensor(${body}, ${extra.join(', ')})`;
  }
  [INSPECT_CUSTOM](): string { return this.toString(); }

  // ---- lifetime and autograd ---------------------------------------------------------

  /** Frees this tensor's reference to its data (and its .grad); using it afterwards is an error. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.zeroGrad();
    this.backend.decRef(this.handle);
    if (this.node !== null && !this.saved) autogradHooks()?.releaseNode(this.node);
  }

  /** The same data without a gradient history (shares memory). */
  detach(): Tensor {
    this.live('detach');
    this.backend.incRef(this.handle);
    return new Tensor(this.handle, this.shape, this.dtype, this.backend);
  }

  /**
   * Reverse-mode differentiation from this tensor; gradients accumulate into leaves' .grad.
   * PyTorch's forms: `backward()`, `backward(gradient)` with a tensor of this shape (or a
   * number when this tensor has one element), `backward(gradient, options)`, and
   * `backward(options)` (as `loss.backward(retain_graph=True)`).
   */
  backward(gradient?: Tensor | number | BackwardOptions | null, options?: BackwardOptions): void {
    this.live('backward');
    const hooks = autogradHooks();
    if (hooks === null) throw new Error('backward: autograd is not installed (import mixtape from its index, which calls installAutograd)');
    const { grad, opts } = backwardArguments(this, gradient, options);
    try {
      hooks.backward(this, grad, opts);
    } finally {
      if (typeof gradient === 'number') grad?.dispose();
    }
  }

  /**
   * Replaces a leaf's data in place with a copy of `value`'s (same shape; the dtype
   * becomes value's), like PyTorch's `p.data = value`. Graphs recorded before keep the old
   * values: they hold their own references. Used by optimizers and loadStateDict.
   */
  assign(value: Tensor): this {
    this.live('assign');
    if (this.node !== null) throw new Error('assign: only leaf tensors can be assigned (this one was produced by an op)');
    if (!(value instanceof Tensor) || value.isDisposed) throw new Error('assign: value must be a live Tensor');
    if (value.shape.length !== this.shape.length || value.shape.some((d, i) => d !== this.shape[i])) {
      throw new Error(`assign: value has shape [${value.shape.join(', ')}] but the tensor has shape [${this.shape.join(', ')}]`);
    }
    if (value.backend !== this.backend) throw new Error(`assign: value lives on the ${value.backend.name} backend, the tensor on ${this.backend.name}`);
    if (this.needsGrad && value.dtype === 'int32') throw new Error('assign: a tensor that requires grad cannot hold int32 values');
    value.backend.incRef(value.handle);
    this.backend.decRef(this.handle);
    this.handle = value.handle;
    this.dtype = value.dtype;
    return this;
  }

  /** Drops the leaf's accumulated gradient. */
  zeroGrad(): void {
    this.grad?.dispose();
    this.grad = null;
  }

  // ---- ops as methods (see src/tensor/ops for documentation) ---------------------------

  clone(): Tensor { return ops.reshape(this, this.shape); }
  cast(dtype: DType): Tensor { return ops.cast(this, dtype); }
  float(): Tensor { return ops.cast(this, 'float32'); }
  double(): Tensor { return ops.cast(this, 'float64'); }
  int(): Tensor { return ops.cast(this, 'int32'); }

  add(other: TensorLike): Tensor { return ops.add(this, other); }
  sub(other: TensorLike): Tensor { return ops.sub(this, other); }
  mul(other: TensorLike): Tensor { return ops.mul(this, other); }
  div(other: TensorLike): Tensor { return ops.div(this, other); }
  pow(other: TensorLike): Tensor { return ops.pow(this, other); }
  maximum(other: TensorLike): Tensor { return ops.maximum(this, other); }
  minimum(other: TensorLike): Tensor { return ops.minimum(this, other); }
  equal(other: TensorLike): Tensor { return ops.equal(this, other); }
  notEqual(other: TensorLike): Tensor { return ops.notEqual(this, other); }
  less(other: TensorLike): Tensor { return ops.less(this, other); }
  lessEqual(other: TensorLike): Tensor { return ops.lessEqual(this, other); }
  greater(other: TensorLike): Tensor { return ops.greater(this, other); }
  greaterEqual(other: TensorLike): Tensor { return ops.greaterEqual(this, other); }
  /** PyTorch's Tensor.where: this where cond is nonzero, else other. */
  where(cond: Tensor, other: TensorLike): Tensor { return ops.where(cond, this, other); }
  clamp(min?: number, max?: number): Tensor { return ops.clamp(this, min, max); }

  neg(): Tensor { return ops.neg(this); }
  abs(): Tensor { return ops.abs(this); }
  sign(): Tensor { return ops.sign(this); }
  exp(): Tensor { return ops.exp(this); }
  log(): Tensor { return ops.log(this); }
  sqrt(): Tensor { return ops.sqrt(this); }
  square(): Tensor { return ops.square(this); }
  reciprocal(): Tensor { return ops.reciprocal(this); }
  tanh(): Tensor { return ops.tanh(this); }
  sigmoid(): Tensor { return ops.sigmoid(this); }
  relu(): Tensor { return ops.relu(this); }
  softplus(): Tensor { return ops.softplus(this); }
  normalCdf(): Tensor { return ops.normalCdf(this); }
  log1p(): Tensor { return ops.log1p(this); }
  expm1(): Tensor { return ops.expm1(this); }
  sin(): Tensor { return ops.sin(this); }
  cos(): Tensor { return ops.cos(this); }
  erf(): Tensor { return ops.erf(this); }
  floor(): Tensor { return ops.floor(this); }
  ceil(): Tensor { return ops.ceil(this); }
  round(): Tensor { return ops.round(this); }
  gelu(options?: ops.GeluOptions): Tensor { return ops.gelu(this, options); }
  silu(): Tensor { return ops.silu(this); }
  isFinite(): Tensor { return ops.isFinite(this); }
  /** torch.Tensor.masked_fill: value where mask is nonzero. */
  maskedFill(mask: Tensor, value: number): Tensor { return ops.maskedFill(this, mask, value); }

  sum(axis?: Axis, keepdims = false): Tensor { return ops.sum(this, axis, keepdims); }
  mean(axis?: Axis, keepdims = false): Tensor { return ops.mean(this, axis, keepdims); }
  max(axis?: Axis, keepdims = false): Tensor { return ops.max(this, axis, keepdims); }
  min(axis?: Axis, keepdims = false): Tensor { return ops.min(this, axis, keepdims); }
  logsumexp(axis?: Axis, keepdims = false): Tensor { return ops.logsumexp(this, axis, keepdims); }
  prod(axis?: Axis, keepdims = false): Tensor { return ops.prod(this, axis, keepdims); }
  /** torch.var: correction 1 (Bessel) unless given. */
  var(axis?: Axis, options?: ops.VarOptions): Tensor { return ops.variance(this, axis, options); }
  variance(axis?: Axis, options?: ops.VarOptions): Tensor { return ops.variance(this, axis, options); }
  std(axis?: Axis, options?: ops.VarOptions): Tensor { return ops.std(this, axis, options); }
  norm(p = 2, axis?: Axis, keepdims = false): Tensor { return ops.norm(this, p, axis, keepdims); }
  any(axis?: Axis, keepdims = false): Tensor { return ops.any(this, axis, keepdims); }
  all(axis?: Axis, keepdims = false): Tensor { return ops.all(this, axis, keepdims); }
  cumsum(axis: number): Tensor { return ops.cumsum(this, axis); }
  argmax(axis?: number, keepdims = false): Tensor { return ops.argmax(this, axis, keepdims); }
  argmin(axis?: number, keepdims = false): Tensor { return ops.argmin(this, axis, keepdims); }
  softmax(axis = -1): Tensor { return ops.softmax(this, axis); }
  logSoftmax(axis = -1): Tensor { return ops.logSoftmax(this, axis); }
  dropout(p = 0.5, training = true): Tensor { return ops.dropout(this, p, training); }

  matmul(other: Tensor, options?: ops.MatmulOptions): Tensor { return ops.matmul(this, other, options); }

  reshape(shape: readonly number[]): Tensor { return ops.reshape(this, shape); }
  view(shape: readonly number[]): Tensor { return ops.reshape(this, shape); }
  flatten(startAxis = 0, endAxis = -1): Tensor { return ops.flatten(this, startAxis, endAxis); }
  squeeze(axis?: number | readonly number[]): Tensor { return ops.squeeze(this, axis); }
  unsqueeze(axis: number): Tensor { return ops.unsqueeze(this, axis); }
  permute(perm: readonly number[]): Tensor { return ops.permute(this, perm); }
  transpose(axis0 = -2, axis1 = -1): Tensor { return ops.transpose(this, axis0, axis1); }
  broadcastTo(shape: Shape): Tensor { return ops.broadcastTo(this, shape); }
  expand(shape: Shape): Tensor { return ops.broadcastTo(this, shape); }
  slice(begin: readonly number[], size?: readonly number[]): Tensor { return ops.slice(this, begin, size); }
  pad(before: readonly number[], after: readonly number[]): Tensor { return ops.pad(this, before, after); }
  flip(axis: number | readonly number[]): Tensor { return ops.flip(this, axis); }
  /** torch.Tensor.repeat: x.repeat(2, 3) or x.repeat([2, 3]). */
  repeat(...repeats: number[] | [readonly number[]]): Tensor {
    return ops.repeat(this, Array.isArray(repeats[0]) ? repeats[0] : (repeats as number[]));
  }
  tril(diagonal = 0): Tensor { return ops.tril(this, diagonal); }
  triu(diagonal = 0): Tensor { return ops.triu(this, diagonal); }
  /** torch.split: a number is the chunk size (the last may be smaller), an array the sizes. */
  split(splitSize: number | readonly number[], axis = 0): Tensor[] { return ops.split(this, splitSize, axis); }
  chunk(chunks: number, axis = 0): Tensor[] { return ops.chunk(this, chunks, axis); }
  /** concat([this, ...others], axis) */
  concat(others: readonly Tensor[], axis = 0): Tensor { return ops.concat([this, ...others], axis); }
  /** cat([this, ...others], axis) */
  cat(others: readonly Tensor[], axis = 0): Tensor { return ops.concat([this, ...others], axis); }
  /** stack([this, ...others], axis) */
  stack(others: readonly Tensor[], axis = 0): Tensor { return ops.stack([this, ...others], axis); }

  gather(axis: number, index: Tensor): Tensor { return ops.gather(this, axis, index); }
  scatterAdd(axis: number, index: Tensor, src: Tensor): Tensor { return ops.scatterAdd(this, axis, index, src); }
  indexSelect(axis: number, index: Tensor): Tensor { return ops.indexSelect(this, axis, index); }
  indexAdd(axis: number, index: Tensor, src: Tensor): Tensor { return ops.indexAdd(this, axis, index, src); }
  oneHot(numClasses: number, options?: { dtype?: DType }): Tensor { return ops.oneHot(this, numClasses, options); }
  topk(k: number, options?: { largest?: boolean }): { values: Tensor; indices: Tensor } { return ops.topk(this, k, options); }
  sort(axis = -1, descending = false): { values: Tensor; indices: Tensor } { return ops.sort(this, axis, descending); }
  argsort(axis = -1, descending = false): Tensor { return ops.argsort(this, axis, descending); }
}
