// What the trainer needs from a corpus: training batches as a pure function of the step
// (so a resumed run sees exactly the same data), a fixed validation set, and for the
// synthetic corpus the domains and the exact loss floors.

import type { CorpusFloors } from '../report/schema.js';

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
