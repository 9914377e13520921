// What the trainer needs from a corpus: training batches as a pure function of the step
// (so a resumed run sees exactly the same data), a fixed validation set, and for the
// synthetic corpus the domains and the exact loss floors.

/** The exact loss floors of a corpus (synthetic corpus only), shown against the loss curves. */
export interface CorpusFloors {
  /** Mean per-token loss of the Bayes-optimal predictor that knows each document's domain (nats). */
  knownDomain: number;
  /** Mean per-token loss of the Bayes-optimal predictor that infers the domain from the prefix (exact forward filter) on the validation set. */
  bayes: number;
  /** Best loss of a model that ignores the domain: the true pooled bigram P(next | previous) on the validation set. */
  pooledBigram: number;
  /** ln(vocabulary size): a uniform guess. */
  uniform: number;
}

export interface Batch {
  /** [batch × seqLen] input ids, row-major. */
  x: Int32Array;
  /** [batch × seqLen] next-token targets. */
  y: Int32Array;
  /** [batch] the domain of each sequence (synthetic corpus only). */
  domains?: Int32Array;
}

export interface Corpus {
  readonly name: string;
  readonly vocabSize: number;
  readonly domains?: number;
  readonly floors?: CorpusFloors;
  /** The training batch of `step`: the same numbers every time it is asked for. */
  trainBatch(step: number, batch: number, seqLen: number): Batch;
  /** The validation set, cut into `seqLen` windows; `batches` of at most `batch` rows each. */
  validation(batch: number, seqLen: number): Batch[];
  /** Token ids back to text (for samples and inspection). */
  decode(ids: ArrayLike<number>): string;
}
