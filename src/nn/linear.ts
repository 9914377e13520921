// Linear, Embedding, Dropout and Sequential with PyTorch's names, layouts and defaults.

import { dropout, gelu, silu, type GeluOptions } from '../tensor/ops/functional.js';
import { indexSelect } from '../tensor/ops/indexing.js';
import { matmul } from '../tensor/ops/linalg.js';
import { reshape } from '../tensor/ops/movement.js';
import { tidy } from '../tensor/engine.js';
import { shapeToString } from '../core/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { linearBound, normalInit, uniform, type InitOptions } from './init.js';
import { checkDType, checkPositiveInt, Module, parameter } from './module.js';


function checkInput(op: string, x: unknown, lastDim: number, what: string): Tensor {
  if (!(x instanceof Tensor)) throw new Error(`${op}: input must be a Tensor`);
  if (x.rank === 0 || x.shape[x.rank - 1] !== lastDim) {
    throw new Error(`${op}: expected input with last dimension ${lastDim} (${what}), got shape ${shapeToString(x.shape)}`);
  }
  return x;
}

/** y = x·Wᵀ + b, with weight [out, in] and bias [out] (torch.nn.Linear). */
export class Linear extends Module {
  weight: Tensor;
  bias: Tensor | null;
  constructor(readonly inFeatures: number, readonly outFeatures: number, options: { bias?: boolean } & InitOptions = {}) {
    super();
    checkPositiveInt('Linear', 'inFeatures', inFeatures);
    checkPositiveInt('Linear', 'outFeatures', outFeatures);
    const init = { dtype: checkDType('Linear', options.dtype), ...(options.generator ? { generator: options.generator } : {}) };
    const bound = linearBound(inFeatures);
    this.weight = parameter(uniform([outFeatures, inFeatures], bound, init));
    this.bias = options.bias === false ? null : parameter(uniform([outFeatures], bound, init));
  }

  forward(x: Tensor): Tensor {
    checkInput('Linear', x, this.inFeatures, 'inFeatures');
    return tidy(() => {
      // Flatten leading dimensions so that one matmul (and one weight-gradient matmul) serves them all.
      const flat = x.rank === 2 ? x : reshape(x, [-1, this.inFeatures]);
      let y = matmul(flat, this.weight, { transposeB: true });
      if (this.bias) y = y.add(this.bias);
      return x.rank === 2 ? y : reshape(y, [...x.shape.slice(0, -1), this.outFeatures]);
    });
  }
}

/** A lookup table: weight [num, dim] ~ N(0, 1) (torch.nn.Embedding). Indices are int32. */
export class Embedding extends Module {
  weight: Tensor;
  constructor(readonly numEmbeddings: number, readonly embeddingDim: number, options: InitOptions = {}) {
    super();
    checkPositiveInt('Embedding', 'numEmbeddings', numEmbeddings);
    checkPositiveInt('Embedding', 'embeddingDim', embeddingDim);
    const init = { dtype: checkDType('Embedding', options.dtype), ...(options.generator ? { generator: options.generator } : {}) };
    this.weight = parameter(normalInit([numEmbeddings, embeddingDim], 1, init));
  }

  forward(indices: Tensor): Tensor {
    if (!(indices instanceof Tensor) || indices.dtype !== 'int32') {
      throw new Error(`Embedding: indices must be an int32 tensor, got ${indices instanceof Tensor ? indices.dtype : typeof indices}`);
    }
    return tidy(() => {
      try {
        const rows = indexSelect(this.weight, 0, reshape(indices, [indices.size]));
        return reshape(rows, [...indices.shape, this.embeddingDim]);
      } catch (e) {
        throw new Error(`Embedding: ${(e as Error).message} (the table has ${this.numEmbeddings} rows)`);
      }
    });
  }
}

/** Inverted dropout while training; the identity in eval mode. */
export class Dropout extends Module {
  constructor(readonly p = 0.5) {
    super();
    if (typeof p !== 'number' || !(p >= 0 && p <= 1)) throw new Error(`Dropout: p must be a probability in [0, 1], got ${p}`);
  }
  forward(x: Tensor): Tensor { return dropout(x, this.p, this.training); }
}

/** Applies modules in order. */
export class Sequential extends Module {
  readonly layers: Module[];
  constructor(...layers: (Module & { forward(x: Tensor): Tensor })[]) {
    super();
    this.layers = layers;
  }
  /** Children are named 0, 1, ... as in torch.nn.Sequential's state_dict. */
  override namedChildren(): [string, Module][] { return this.layers.map((m, i) => [String(i), m]); }
  forward(x: Tensor): Tensor {
    return tidy(() => this.layers.reduce((h, m) => (m as Module & { forward(x: Tensor): Tensor }).forward(h), x));
  }
}

/** ReLU as a module, for Sequential. */
export class ReLU extends Module {
  forward(x: Tensor): Tensor { return x.relu(); }
}

/** Tanh as a module, for Sequential. */
export class Tanh extends Module {
  forward(x: Tensor): Tensor { return x.tanh(); }
}

/** torch.nn.GELU: the exact x·Φ(x), or { approximate: 'tanh' }. */
export class GELU extends Module {
  readonly approximate: 'none' | 'tanh';
  constructor(options: GeluOptions = {}) {
    super();
    this.approximate = options.approximate ?? 'none';
    if (this.approximate !== 'none' && this.approximate !== 'tanh') throw new Error(`GELU: approximate must be 'none' or 'tanh', got '${String(this.approximate)}'`);
  }
  forward(x: Tensor): Tensor { return gelu(x, { approximate: this.approximate }); }
}

/** torch.nn.SiLU: x·σ(x). */
export class SiLU extends Module {
  forward(x: Tensor): Tensor { return silu(x); }
}
