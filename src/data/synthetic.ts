// The built-in corpus: a seeded synthetic multi-domain language with a known optimum.
// D domains, each a first-order Markov chain over V symbols in which every symbol has s
// equally likely successors (chosen at random per domain); each document is drawn from one
// domain, starting from a uniform symbol. Because the generating process is known, the
// best achievable losses are computed exactly:
//   knownDomain   = ln s: the predictor that is told the document's domain;
//   bayes         the predictor that infers the domain from the prefix (an exact forward
//                 filter over domains), averaged over the validation tokens — the floor for
//                 any model on this validation set;
//   pooledBigram  the true P(next | previous) pooled over domains: the best a model can do
//                 if it ignores the domain;
//   uniform       = ln V.
// A model between pooledBigram and bayes has learned to use the domain; MoE experts that
// specialize by domain show up in the domain × expert routing heatmap.

import { Generator } from '../tensor/ops/creation.js';
import { fillRandom } from '../core/philox.js';
import type { CorpusFloors } from './corpus.js';
import type { Batch, Corpus } from './corpus.js';

export interface SyntheticOptions {
  domains?: number;
  vocab?: number;
  successors?: number;
  /** Number of validation documents. */
  validationDocs?: number;
  seed?: number;
}

/**
 * `n` uniforms in [0, 1) from a seeded Philox stream (float64), drawn on the host: the
 * data is the same whichever backend trains on it (the numbers equal rand([n]) with a
 * Generator(seed) in float64).
 */
export function uniforms(n: number, seed: number): Float64Array {
  const { key, counter } = new Generator(seed).take(n);
  const out = new Float64Array(n);
  fillRandom(out, 'uniform', key, counter);
  return out;
}

export class SyntheticCorpus implements Corpus {
  readonly name: string;
  readonly vocabSize: number;
  readonly domains: number;
  readonly successors: number;
  readonly seed: number;
  /** next[d][a] = the s successors of symbol a in domain d. */
  readonly next: number[][][];
  private readonly validationDocs: number;
  private floorsCache: CorpusFloors | undefined;
  private validationCache = new Map<string, Batch[]>();

  constructor(options: SyntheticOptions = {}) {
    this.domains = options.domains ?? 8;
    this.vocabSize = options.vocab ?? 32;
    this.successors = options.successors ?? 4;
    this.validationDocs = options.validationDocs ?? 256;
    this.seed = options.seed ?? 0;
    for (const [name, v, min] of [['domains', this.domains, 1], ['vocab', this.vocabSize, 2], ['successors', this.successors, 1]] as const) {
      if (!Number.isInteger(v) || v < min) throw new Error(`synthetic corpus: ${name} must be an integer >= ${min}, got ${v}`);
    }
    if (this.successors > this.vocabSize) throw new Error(`synthetic corpus: successors (${this.successors}) cannot exceed vocab (${this.vocabSize})`);
    this.name = `synthetic (${this.domains} domains, ${this.vocabSize} symbols, ${this.successors} successors each)`;
    // The tables come from the corpus seed, not the training seed: runs with different
    // training seeds study the same language.
    const u = uniforms(this.domains * this.vocabSize * this.vocabSize, 1_000_003 + this.seed);
    let i = 0;
    this.next = Array.from({ length: this.domains }, () => Array.from({ length: this.vocabSize }, () => {
      // A random subset of size s: the s smallest of V uniform keys.
      const keys = Array.from({ length: this.vocabSize }, (_, b) => [u[i++]!, b] as const);
      return keys.sort((p, q) => p[0] - q[0]).slice(0, this.successors).map(([, b]) => b).sort((p, q) => p - q);
    }));
  }

  /** P_d(b | a). */
  prob(d: number, a: number, b: number): number {
    return this.next[d]![a]!.includes(b) ? 1 / this.successors : 0;
  }

  /** `count` documents of seqLen + 1 symbols from a seeded stream; row r's domain in domains[r]. */
  private sample(count: number, seqLen: number, streamSeed: number): Batch {
    const L = seqLen + 1;
    const u = uniforms(count * (L + 1), streamSeed);
    const x = new Int32Array(count * seqLen), y = new Int32Array(count * seqLen), domains = new Int32Array(count);
    let j = 0;
    for (let r = 0; r < count; r++) {
      const d = Math.min(this.domains - 1, Math.floor(u[j++]! * this.domains));
      domains[r] = d;
      let a = Math.min(this.vocabSize - 1, Math.floor(u[j++]! * this.vocabSize));
      for (let t = 0; t < seqLen; t++) {
        const succ = this.next[d]![a]!;
        const b = succ[Math.min(succ.length - 1, Math.floor(u[j++]! * succ.length))]!;
        x[r * seqLen + t] = a;
        y[r * seqLen + t] = b;
        a = b;
      }
    }
    return { x, y, domains };
  }

  trainBatch(step: number, batch: number, seqLen: number): Batch {
    // A fresh, never-repeating stream: no overfitting, and step s is always the same batch.
    return this.sample(batch, seqLen, (this.seed + 1) * 1_000_000_007 % 2 ** 40 + step * 7919 + 17);
  }

  validation(batch: number, seqLen: number): Batch[] {
    const key = `${batch}x${seqLen}`;
    const cached = this.validationCache.get(key);
    if (cached) return cached;
    const all = this.sample(this.validationDocs, seqLen, 99_991 + this.seed);
    const out: Batch[] = [];
    for (let r = 0; r < this.validationDocs; r += batch) {
      const n = Math.min(batch, this.validationDocs - r);
      out.push({
        x: all.x.slice(r * seqLen, (r + n) * seqLen), y: all.y.slice(r * seqLen, (r + n) * seqLen),
        domains: all.domains!.slice(r, r + n),
      });
    }
    this.validationCache.set(key, out);
    this.floorsCache = this.computeFloors(out, seqLen);
    return out;
  }

  /** The exact floors on the validation set of the given window length (computes it if needed). */
  floorsFor(seqLen: number): CorpusFloors {
    this.validation(64, seqLen);
    return this.floorsCache!;
  }

  get floors(): CorpusFloors | undefined { return this.floorsCache; }

  private computeFloors(batches: Batch[], seqLen: number): CorpusFloors {
    const V = this.vocabSize, D = this.domains;
    // Pooled bigram: joint P(prev = a, next = b) averaged over domains and positions 1..seqLen,
    // propagating each domain's marginal from the uniform start.
    const joint = new Float64Array(V * V);
    for (let d = 0; d < D; d++) {
      let marginal = new Float64Array(V).fill(1 / V);
      for (let t = 0; t < seqLen; t++) {
        const nextMarginal = new Float64Array(V);
        for (let a = 0; a < V; a++) {
          for (const b of this.next[d]![a]!) {
            const p = marginal[a]! / this.successors;
            joint[a * V + b]! += p / D;
            nextMarginal[b]! += p;
          }
        }
        marginal = nextMarginal;
      }
    }
    const rowSum = Array.from({ length: V }, (_, a) => joint.subarray(a * V, (a + 1) * V).reduce((s, v) => s + v, 0));
    let pooled = 0, bayes = 0, count = 0;
    for (const batch of batches) {
      const rows = batch.domains!.length;
      for (let r = 0; r < rows; r++) {
        const posterior = new Float64Array(D).fill(1 / D);
        for (let t = 0; t < seqLen; t++) {
          const a = batch.x[r * seqLen + t]!, b = batch.y[r * seqLen + t]!;
          pooled -= Math.log(joint[a * V + b]! / rowSum[a]!);
          let p = 0;
          for (let d = 0; d < D; d++) p += posterior[d]! * this.prob(d, a, b);
          bayes -= Math.log(p);
          // Bayes update of the domain posterior with the observed transition.
          for (let d = 0; d < D; d++) posterior[d] = (posterior[d]! * this.prob(d, a, b)) / p;
          count++;
        }
      }
    }
    return { knownDomain: Math.log(this.successors), bayes: bayes / count, pooledBigram: pooled / count, uniform: Math.log(V) };
  }

  decode(ids: ArrayLike<number>): string {
    const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ';
    return Array.from(ids, (i) => (i < alphabet.length ? alphabet[i]! : `<${i}>`)).join('');
  }
}
