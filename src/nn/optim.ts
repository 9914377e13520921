// Optimizers with PyTorch's defaults and update rules (torch.optim.SGD, Adam, AdamW),
// gradient-norm clipping, and the state needed to resume a run exactly.
// Updates replace each parameter's data in place (Tensor.assign), outside autograd.

import { zeros, zerosLike } from '../tensor/ops/creation.js';
import { div } from '../tensor/ops/elementwise.js';
import type { DType } from '../core/dtype.js';
import { getBackend, keep, noGrad, runOp, runOpMany, tidy } from '../tensor/engine.js';
import { Tensor } from '../tensor/tensor.js';

export interface OptimizerState {
  /** Per-parameter buffers, keyed "<param index>.<buffer>" (e.g. "0.exp_avg"). */
  tensors: Record<string, Tensor>;
  /** Step counts and the current learning rate. */
  scalars: Record<string, number>;
}

export abstract class Optimizer {
  readonly params: Tensor[];
  /** The learning rate; schedules change it between steps. */
  lr: number;
  protected stepCount = 0;
  protected readonly buffers: Map<string, Tensor>[];
  /** Per-parameter update counts (a parameter without a gradient is not stepped). */
  protected readonly paramSteps = new Map<Tensor, number>();

  constructor(params: Iterable<Tensor>, lr: number, name: string) {
    this.params = [...params];
    if (this.params.length === 0) throw new Error(`${name}: got an empty parameter list`);
    this.params.forEach((p, i) => {
      if (!(p instanceof Tensor) || !p.requiresGrad || !p.isLeaf) throw new Error(`${name}: params[${i}] is not a leaf tensor that requires grad`);
    });
    if (!(typeof lr === 'number' && lr >= 0 && Number.isFinite(lr))) throw new Error(`${name}: invalid learning rate ${lr}`);
    this.lr = lr;
    this.buffers = this.params.map(() => new Map());
  }

  /** Sets every parameter's gradient to null (zero_grad(set_to_none=True)). */
  zeroGrad(): void { for (const p of this.params) p.zeroGrad(); }

  /** Applies one update to every parameter that has a gradient. */
  step(): void {
    this.stepCount++;
    noGrad(() => {
      this.params.forEach((p, i) => {
        if (p.grad === null) return;
        const updated = tidy(() => this.update(p, p.grad!, this.buffers[i]!));
        p.assign(updated);
        updated.dispose();
      });
    });
  }

  /** Returns the new parameter value; may replace entries of `state` (kept tensors). */
  protected abstract update(p: Tensor, g: Tensor, state: Map<string, Tensor>): Tensor;

  protected setBuffer(state: Map<string, Tensor>, name: string, value: Tensor): Tensor {
    const old = state.get(name);
    state.set(name, keep(value));
    old?.dispose();
    return value;
  }

  stateDict(): OptimizerState {
    const tensors: Record<string, Tensor> = {};
    this.buffers.forEach((m, i) => m.forEach((t, name) => { tensors[`${i}.${name}`] = t; }));
    const scalars: Record<string, number> = { step: this.stepCount, lr: this.lr };
    this.params.forEach((p, i) => { const n = this.paramSteps.get(p); if (n !== undefined) scalars[`${i}.step`] = n; });
    return { tensors, scalars };
  }

  loadStateDict(state: OptimizerState): void {
    for (const [key, t] of Object.entries(state.tensors)) {
      const [index, name] = [Number(key.slice(0, key.indexOf('.'))), key.slice(key.indexOf('.') + 1)];
      const p = this.params[index];
      if (p === undefined || !name) throw new Error(`loadStateDict: unknown optimizer state key ${key}`);
      if (t.shape.some((d, j) => d !== p.shape[j]) || t.rank !== p.rank) {
        throw new Error(`loadStateDict: optimizer state ${key} has shape [${t.shape.join(', ')}] but params[${index}] has [${p.shape.join(', ')}]`);
      }
      this.setBuffer(this.buffers[index]!, name, noGrad(() => t.cast(p.dtype)));
    }
    if (state.scalars.step !== undefined) this.stepCount = state.scalars.step;
    this.params.forEach((p, i) => { const n = state.scalars[`${i}.step`]; if (n !== undefined) this.paramSteps.set(p, n); });
    if (state.scalars.lr !== undefined) this.lr = state.scalars.lr;
  }
}

export interface SGDOptions { lr: number; momentum?: number; dampening?: number; weightDecay?: number; nesterov?: boolean }

/** torch.optim.SGD: d = g + λp; b = μb + (1-τ)d (b = d at the first step); p -= lr·(nesterov ? d + μb : b). */
export class SGD extends Optimizer {
  readonly momentum: number;
  readonly dampening: number;
  readonly weightDecay: number;
  readonly nesterov: boolean;
  constructor(params: Iterable<Tensor>, options: SGDOptions) {
    super(params, options.lr, 'SGD');
    this.momentum = options.momentum ?? 0;
    this.dampening = options.dampening ?? 0;
    this.weightDecay = options.weightDecay ?? 0;
    this.nesterov = options.nesterov ?? false;
    if (this.momentum < 0 || this.weightDecay < 0) throw new Error('SGD: momentum and weightDecay must be non-negative');
    if (this.nesterov && (this.momentum <= 0 || this.dampening !== 0)) throw new Error('SGD: nesterov needs a positive momentum and zero dampening');
  }

  protected update(p: Tensor, g: Tensor, state: Map<string, Tensor>): Tensor {
    let d = this.weightDecay !== 0 ? g.add(p.mul(this.weightDecay)) : g;
    if (this.momentum !== 0) {
      const prev = state.get('momentum_buffer');
      const buf = prev === undefined ? d.clone() : prev.mul(this.momentum).add(d.mul(1 - this.dampening));
      this.setBuffer(state, 'momentum_buffer', buf);
      d = this.nesterov ? d.add(buf.mul(this.momentum)) : buf;
    }
    return p.sub(d.mul(this.lr));
  }
}

export interface AdamOptions { lr?: number; betas?: [number, number]; eps?: number; weightDecay?: number; amsgrad?: boolean }

/**
 * torch.optim.Adam: g += λp (L2, coupled); m = β₁m + (1-β₁)g; v = β₂v + (1-β₂)g²;
 * p -= (lr / (1-β₁ᵗ)) · m / (√v / √(1-β₂ᵗ) + ε). amsgrad uses the running max of v.
 */
export class Adam extends Optimizer {
  readonly betas: [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  readonly amsgrad: boolean;
  protected readonly decoupled: boolean = false;

  constructor(params: Iterable<Tensor>, options: AdamOptions = {}, name = 'Adam', defaultWeightDecay = 0) {
    super(params, options.lr ?? 1e-3, name);
    this.betas = options.betas ?? [0.9, 0.999];
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? defaultWeightDecay;
    this.amsgrad = options.amsgrad ?? false;
    const [b1, b2] = this.betas;
    if (!(b1 >= 0 && b1 < 1 && b2 >= 0 && b2 < 1)) throw new Error(`${name}: betas must be in [0, 1), got [${b1}, ${b2}]`);
    if (!(this.eps >= 0) || !(this.weightDecay >= 0)) throw new Error(`${name}: eps and weightDecay must be non-negative`);
  }

  /**
   * Where the backend has the fused adamStep (the CPU), every parameter's update runs in one
   * kernel: the same numbers bit for bit as update() composes, without a dozen ops per
   * parameter.
   */
  override step(): void {
    if (this.amsgrad || !getBackend().supports?.('adamStep')) { super.step(); return; }
    this.stepCount++;
    const indices = this.params.flatMap((p, i) => (p.grad === null ? [] : [i]));
    if (indices.length === 0) return;
    noGrad(() => tidy(() => {
      const ps = indices.map((i) => this.params[i]!);
      const steps = ps.map((p) => { const t = (this.paramSteps.get(p) ?? 0) + 1; this.paramSteps.set(p, t); return t; });
      const buffer = (i: number, name: string) => this.buffers[i]!.get(name) ?? zerosLike(this.params[i]!);
      const inputs = [...ps, ...ps.map((p) => p.grad!), ...indices.map((i) => buffer(i, 'exp_avg')), ...indices.map((i) => buffer(i, 'exp_avg_sq'))];
      const attrs = { lr: this.lr, beta1: this.betas[0], beta2: this.betas[1], eps: this.eps, weightDecay: this.weightDecay, decoupled: this.decoupled, steps };
      const shapes = ps.map((p) => ({ shape: p.shape, dtype: p.dtype }));
      const outs = runOpMany('adamStep', inputs, attrs, [...shapes, ...shapes, ...shapes]);
      const n = ps.length;
      indices.forEach((i, j) => {
        ps[j]!.assign(outs[j]!);
        this.setBuffer(this.buffers[i]!, 'exp_avg', outs[n + j]!);
        this.setBuffer(this.buffers[i]!, 'exp_avg_sq', outs[2 * n + j]!);
      });
    }));
  }

  protected update(p: Tensor, g: Tensor, state: Map<string, Tensor>): Tensor {
    const [b1, b2] = this.betas;
    this.paramSteps.set(p, (this.paramSteps.get(p) ?? 0) + 1);
    // Steps are counted per parameter on the host (a tensor here would cost a readback).
    const t = this.paramSteps.get(p)!;
    let param = p;
    if (this.weightDecay !== 0) {
      if (this.decoupled) param = p.mul(1 - this.lr * this.weightDecay); // AdamW
      else g = g.add(p.mul(this.weightDecay));
    }
    const m = this.setBuffer(state, 'exp_avg', (state.get('exp_avg') ?? zerosLike(p)).mul(b1).add(g.mul(1 - b1)));
    const v = this.setBuffer(state, 'exp_avg_sq', (state.get('exp_avg_sq') ?? zerosLike(p)).mul(b2).add(g.square().mul(1 - b2)));
    const bc1 = 1 - b1 ** t, bc2 = 1 - b2 ** t;
    let second = v;
    if (this.amsgrad) second = this.setBuffer(state, 'max_exp_avg_sq', (state.get('max_exp_avg_sq') ?? zerosLike(p)).maximum(v));
    const denom = second.sqrt().div(Math.sqrt(bc2)).add(this.eps);
    return param.sub(m.div(denom).mul(this.lr / bc1));
  }
}

/** torch.optim.AdamW: Adam with decoupled weight decay p *= (1 - lr·λ), default λ = 0.01. */
export class AdamW extends Adam {
  protected override readonly decoupled: boolean = true;
  constructor(params: Iterable<Tensor>, options: AdamOptions = {}) {
    super(params, options, 'AdamW', 0.01);
  }
}

/** The gradients' joint sum of squares, on the backend (float64 on the CPU, float32 on the GPU). */
function gradSumOfSquares(withGrad: readonly Tensor[]): Tensor {
  // In float64 where it exists (the CPU backend); the GPU stores float32.
  const dtype = getBackend().capabilities.dtypes.includes('float64') ? 'float64' : 'float32';
  // One kernel where the backend has it (the CPU): the composition below, rounding for rounding.
  if (getBackend().supports?.('sumOfSquares')) return runOp('sumOfSquares', withGrad.map((p) => p.grad!), {}, { shape: [], dtype }, null);
  let sumSq: Tensor | null = null;
  for (const p of withGrad) {
    const g = p.grad!.dtype === dtype ? p.grad! : p.grad!.cast(dtype); // cast to the same dtype would copy
    const sq = g.square().sum();
    sumSq = sumSq === null ? sq : sumSq.add(sq);
  }
  return sumSq!;
}

function checkMaxNorm(fn: string, maxNorm: number): void {
  if (!(maxNorm > 0)) throw new Error(`${fn}: maxNorm must be positive, got ${maxNorm}`);
}

/**
 * Scales all gradients so that their joint norm is at most maxNorm (torch.nn.utils.
 * clip_grad_norm_ with norm_type 2, coefficient maxNorm / (norm + 1e-6)). Returns the
 * norm before clipping. Reads the norm back (once); see clipGradNormTensor for the
 * variant that stays on the device.
 */
export function clipGradNorm(params: Iterable<Tensor>, maxNorm: number): number {
  checkMaxNorm('clipGradNorm', maxNorm);
  const withGrad = [...params].filter((p) => p.grad !== null);
  if (withGrad.length === 0) return 0;
  // The sum of squares is formed on the backend and read back once.
  const total = noGrad(() => tidy(() => Math.sqrt(gradSumOfSquares(withGrad).item())));
  if (!Number.isFinite(total)) throw new Error(`clipGradNorm: the total gradient norm is ${total}`);
  const coef = maxNorm / (total + 1e-6);
  if (coef < 1) {
    noGrad(() => {
      for (const p of withGrad) {
        const scaled = keep(p.grad!.mul(coef));
        p.grad!.dispose();
        p.grad = scaled;
      }
    });
  }
  return total;
}

/**
 * clipGradNorm without a readback, as torch.nn.utils.clip_grad_norm_ computes it: the
 * norm, the coefficient min(1, maxNorm / (norm + 1e-6)) and the scaling are tensor ops on
 * the device, and the result is the 0-d norm before clipping (float64 on the CPU backend,
 * float32 on the GPU), which the caller owns and reads when it wants (`await norm.data()`),
 * e.g. together with the loss in one readback. Gradients are always multiplied (by 1 when
 * under the limit, which leaves them bit-identical), so on the CPU the result equals
 * clipGradNorm's exactly. A non-finite norm cannot be refused without reading it: as
 * PyTorch with error_if_nonfinite=False, an infinite norm scales the gradients by 0 and a
 * NaN norm makes them NaN; check the returned norm (clipGradNorm throws instead).
 *
 * A separate function rather than an option of clipGradNorm: the return type stays static
 * (number vs Tensor, no overload on a flag), clipGradNorm keeps its contract (a number;
 * throws on a non-finite norm), and the name says what comes back, like item() / data().
 * Without gradients it returns a 0-d zero, as PyTorch does.
 */
export function clipGradNormTensor(params: Iterable<Tensor>, maxNorm: number): Tensor {
  checkMaxNorm('clipGradNormTensor', maxNorm);
  const withGrad = [...params].filter((p) => p.grad !== null);
  if (withGrad.length === 0) return zeros([], { dtype: getBackend().capabilities.dtypes.includes('float64') ? 'float64' : 'float32' });
  return noGrad(() => {
    const norm = tidy(() => gradSumOfSquares(withGrad).sqrt());
    tidy(() => {
      // PyTorch: clip_coef = max_norm / (total_norm + 1e-6), clamped at 1.
      const coef = div(maxNorm, norm.add(1e-6)).clamp(undefined, 1);
      const byDType = new Map<DType, Tensor>(); // cast once per gradient dtype (as the number maxNorm/… would be)
      if (getBackend().supports?.('scaleAll')) {
        // One kernel per gradient dtype (the CPU): each gradient times the coefficient, as mul computes it.
        for (const dtype of new Set(withGrad.map((p) => p.grad!.dtype))) {
          const group = withGrad.filter((p) => p.grad!.dtype === dtype);
          const c = dtype === coef.dtype ? coef : coef.cast(dtype);
          const scaled = runOpMany('scaleAll', [c, ...group.map((p) => p.grad!)], {}, group.map((p) => ({ shape: p.grad!.shape, dtype })));
          group.forEach((p, i) => { p.grad!.dispose(); p.grad = keep(scaled[i]!); });
        }
        return;
      }
      for (const p of withGrad) {
        const dtype = p.grad!.dtype;
        if (!byDType.has(dtype)) byDType.set(dtype, dtype === coef.dtype ? coef : coef.cast(dtype));
        const scaled = keep(p.grad!.mul(byDType.get(dtype)!));
        p.grad!.dispose();
        p.grad = scaled;
      }
    });
    return norm;
  });
}
