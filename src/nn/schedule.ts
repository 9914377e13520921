// Learning-rate schedules with PyTorch's closed forms. Call step() once per optimizer
// step (or epoch); the schedule sets optimizer.lr from the base learning rate.

import type { Optimizer } from './optim.js';

export abstract class LRScheduler {
  readonly baseLr: number;
  /** How many times step() has been called. */
  lastEpoch = 0;
  constructor(readonly optimizer: Optimizer) {
    this.baseLr = optimizer.lr;
  }
  /** Subclasses call this at the end of their constructors, once their fields are set. */
  protected start(): void { this.optimizer.lr = this.lrAt(0); }
  abstract lrAt(epoch: number): number;
  step(): number {
    this.lastEpoch++;
    this.optimizer.lr = this.lrAt(this.lastEpoch);
    return this.optimizer.lr;
  }
}

/** lr = base · γ^⌊epoch / stepSize⌋ (torch.optim.lr_scheduler.StepLR). */
export class StepLR extends LRScheduler {
  constructor(optimizer: Optimizer, readonly stepSize: number, readonly gamma = 0.1) {
    if (!(Number.isInteger(stepSize) && stepSize > 0)) throw new Error(`StepLR: stepSize must be a positive integer, got ${stepSize}`);
    super(optimizer);
    this.start();
  }
  lrAt(epoch: number): number { return this.baseLr * this.gamma ** Math.floor(epoch / this.stepSize); }
}

/** lr = η_min + (base - η_min)(1 + cos(π·epoch/T_max))/2 (CosineAnnealingLR's closed form). */
export class CosineAnnealingLR extends LRScheduler {
  constructor(optimizer: Optimizer, readonly tMax: number, readonly etaMin = 0) {
    if (!(Number.isInteger(tMax) && tMax > 0)) throw new Error(`CosineAnnealingLR: tMax must be a positive integer, got ${tMax}`);
    super(optimizer);
    this.start();
  }
  lrAt(epoch: number): number {
    return this.etaMin + (this.baseLr - this.etaMin) * (1 + Math.cos((Math.PI * epoch) / this.tMax)) / 2;
  }
}

/**
 * lr = base · (start + (end - start)·min(epoch, total)/total) (torch's LinearLR): with
 * start < 1 and end = 1, a linear warm-up over `totalIters` steps.
 */
export class LinearLR extends LRScheduler {
  constructor(optimizer: Optimizer, readonly startFactor = 1 / 3, readonly endFactor = 1, readonly totalIters = 5) {
    if (!(startFactor > 0 && startFactor <= 1) || !(endFactor >= 0 && endFactor <= 1)) {
      throw new Error(`LinearLR: startFactor must be in (0, 1] and endFactor in [0, 1], got ${startFactor}, ${endFactor}`);
    }
    if (!(Number.isInteger(totalIters) && totalIters > 0)) throw new Error(`LinearLR: totalIters must be a positive integer, got ${totalIters}`);
    super(optimizer);
    this.start();
  }
  lrAt(epoch: number): number {
    const t = Math.min(epoch, this.totalIters) / this.totalIters;
    return this.baseLr * (this.startFactor + (this.endFactor - this.startFactor) * t);
  }
}

/** Linear warm-up for `warmup` steps, then cosine decay to η_min at `total` steps. */
export class WarmupCosineLR extends LRScheduler {
  constructor(optimizer: Optimizer, readonly warmup: number, readonly total: number, readonly etaMin = 0) {
    if (!(Number.isInteger(warmup) && warmup >= 0 && Number.isInteger(total) && total > warmup)) {
      throw new Error(`WarmupCosineLR: need integers 0 <= warmup < total, got ${warmup}, ${total}`);
    }
    super(optimizer);
    this.start();
  }
  lrAt(epoch: number): number {
    if (epoch < this.warmup) return this.baseLr * (epoch + 1) / (this.warmup + 1);
    const t = Math.min(epoch - this.warmup, this.total - this.warmup) / (this.total - this.warmup);
    return this.etaMin + (this.baseLr - this.etaMin) * (1 + Math.cos(Math.PI * t)) / 2;
  }
}

/**
 * The paper's schedule (App. C.1): a linear warm-up for `warmup` steps, then ∝ 1/√step:
 * lr = base · min(t / warmup, √(warmup / t)) with t = epoch + 1. It does not depend on the
 * total number of steps, so a run extended with more steps continues the same curve.
 */
export class InverseSqrtLR extends LRScheduler {
  constructor(optimizer: Optimizer, readonly warmup: number) {
    if (!(Number.isInteger(warmup) && warmup >= 1)) throw new Error(`InverseSqrtLR: warmup must be a positive integer, got ${warmup}`);
    super(optimizer);
    this.start();
  }
  lrAt(epoch: number): number {
    const t = epoch + 1;
    return this.baseLr * Math.min(t / this.warmup, Math.sqrt(this.warmup / t));
  }
}
