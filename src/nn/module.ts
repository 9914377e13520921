// Module and parameters, with PyTorch's conventions: parameters and submodules are found
// from the module's own properties in declaration order, and named with dotted paths
// ("experts.0.fc1.weight") exactly as PyTorch's state_dict keys.

import { cast } from '../tensor/ops/elementwise.js';
import { keep, noGrad } from '../tensor/engine.js';
import { isDType, type DType } from '../core/dtype.js';
import { shapeToString } from '../core/shape.js';
import { Tensor } from '../tensor/tensor.js';

const parameterSet = new WeakSet<Tensor>();

/** Marks a float tensor as a trainable parameter: requiresGrad, and exempt from tidy. */
export function parameter(t: Tensor): Tensor {
  t.requiresGrad = true;
  keep(t);
  parameterSet.add(t);
  return t;
}

export function isParameter(value: unknown): value is Tensor {
  return value instanceof Tensor && parameterSet.has(value);
}

export interface ModuleOptions { dtype?: DType }

/** A size argument of a layer: a positive integer, or an error naming the layer and the argument. */
export function checkPositiveInt(op: string, name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new Error(`${op}: ${name} must be a positive integer, got ${String(v)}`);
  return v;
}

export function checkDType(op: string, dtype: DType | undefined): DType {
  const d = dtype ?? 'float32';
  if (!isDType(d) || d === 'int32') throw new Error(`${op}: dtype must be 'float32' or 'float64', got '${String(d)}'`);
  return d;
}

export abstract class Module {
  /** Training mode (dropout active, MoE noise on). Set by train() / eval(). */
  training = true;

  /** Direct submodules: Module-valued properties, and arrays of modules as name.0, name.1, ... */
  namedChildren(): [string, Module][] {
    const out: [string, Module][] = [];
    for (const [key, value] of Object.entries(this)) {
      if (value instanceof Module) out.push([key, value]);
      else if (Array.isArray(value)) value.forEach((v, i) => { if (v instanceof Module) out.push([`${key}.${i}`, v]); });
    }
    return out;
  }

  /** This module and every descendant, depth first, with dotted names ('' for this one). */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [name, child] of this.namedChildren()) out.push(...child.namedModules(prefix ? `${prefix}.${name}` : name));
    return out;
  }

  /** [name, parameter] pairs: this module's own parameters first, then each child's, recursively. */
  namedParameters(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    const join = (name: string) => (prefix ? `${prefix}.${name}` : name);
    for (const [key, value] of Object.entries(this)) if (isParameter(value)) out.push([join(key), value]);
    for (const [name, child] of this.namedChildren()) out.push(...child.namedParameters(join(name)));
    return out;
  }

  /**
   * The parameters in namedParameters()' order, without building their names: zeroGrad and the
   * optimizers ask every step, and an MoE of 64 experts has 258 of them.
   */
  parameters(): Tensor[] {
    const out: Tensor[] = [];
    this.collectParameters(out);
    return out;
  }

  /**
   * Appends this module's parameters in namedParameters()' order. A module that lists its own
   * parameters or children (an override, such as Sequential's namedChildren) is asked, at any depth.
   */
  private collectParameters(out: Tensor[]): void {
    if (this.namedParameters !== Module.prototype.namedParameters) {
      for (const [, p] of this.namedParameters()) out.push(p);
      return;
    }
    for (const value of Object.values(this)) if (isParameter(value)) out.push(value);
    if (this.namedChildren !== Module.prototype.namedChildren) {
      for (const [, child] of this.namedChildren()) child.collectParameters(out);
      return;
    }
    for (const value of Object.values(this)) {
      if (value instanceof Module) value.collectParameters(out);
      else if (Array.isArray(value)) for (const v of value) if (v instanceof Module) v.collectParameters(out);
    }
  }

  /** The number of trainable scalars. */
  numParameters(): number { return this.parameters().reduce((n, p) => n + p.size, 0); }

  /** name → parameter (the parameters themselves, sharing data, as PyTorch's state_dict). */
  stateDict(): Record<string, Tensor> { return Object.fromEntries(this.namedParameters()); }

  /**
   * Copies values into the parameters, converting to each parameter's dtype. Missing or
   * unknown keys (with strict) and mismatched shapes are errors naming the key and shapes.
   */
  loadStateDict(record: Record<string, Tensor>, options: { strict?: boolean } = {}): void {
    const strict = options.strict ?? true;
    const own = new Map(this.namedParameters());
    const missing = [...own.keys()].filter((k) => !(k in record));
    const unexpected = Object.keys(record).filter((k) => !own.has(k));
    if (strict && (missing.length > 0 || unexpected.length > 0)) {
      const parts = [];
      if (missing.length) parts.push(`missing keys: ${missing.join(', ')}`);
      if (unexpected.length) parts.push(`unexpected keys: ${unexpected.join(', ')}`);
      throw new Error(`loadStateDict: ${parts.join('; ')}`);
    }
    for (const [key, value] of Object.entries(record)) {
      const p = own.get(key);
      if (p === undefined) continue;
      if (!(value instanceof Tensor)) throw new Error(`loadStateDict: the value for ${key} is not a Tensor`);
      if (value.shape.length !== p.shape.length || value.shape.some((d, i) => d !== p.shape[i])) {
        throw new Error(`loadStateDict: size mismatch for ${key}: the checkpoint has shape ${shapeToString(value.shape)}, the module has ${shapeToString(p.shape)}`);
      }
      if (value.dtype === 'int32') throw new Error(`loadStateDict: ${key} is int32 in the checkpoint; parameters are float`);
    }
    noGrad(() => {
      for (const [key, value] of Object.entries(record)) {
        const p = own.get(key);
        if (p === undefined) continue;
        const converted = value.dtype === p.dtype ? value : cast(value, p.dtype);
        p.assign(converted);
        if (converted !== value) converted.dispose();
      }
    });
  }

  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  eval(): this { return this.train(false); }

  /** Converts every parameter to a float dtype in place (e.g. 'float64' for gradcheck). */
  to(dtype: DType): this {
    checkDType('Module.to', dtype);
    noGrad(() => {
      for (const p of this.parameters()) {
        if (p.dtype === dtype) continue;
        const converted = cast(p, dtype);
        p.zeroGrad();
        p.assign(converted);
        converted.dispose();
      }
    });
    return this;
  }

  /** Drops every parameter's gradient (PyTorch's zero_grad(set_to_none=True)). */
  zeroGrad(): void { for (const p of this.parameters()) p.zeroGrad(); }

  /** A PyTorch-like one-line-per-module summary with parameter shapes. */
  toString(): string {
    const lines: string[] = [];
    const visit = (m: Module, name: string, depth: number): void => {
      const own = Object.entries(m).filter(([, v]) => isParameter(v)).map(([k, v]) => `${k}${shapeToString((v as Tensor).shape)}`);
      lines.push(`${'  '.repeat(depth)}${name ? `(${name}): ` : ''}${m.constructor.name}${own.length ? ` ${own.join(' ')}` : ''}`);
      for (const [childName, child] of m.namedChildren()) visit(child, childName, depth + 1);
    };
    visit(this, '', 0);
    return lines.join('\n');
  }
}
