// The run directory's files, as written by `mixtape train` and read by `mixtape report`.
//
//   RUN_DIR/config.json              RunConfig
//   RUN_DIR/metrics.jsonl            one MetricsRecord per line
//   RUN_DIR/checkpoint.safetensors   the model (+ optimizer state), metadata holds the config
//   RUN_DIR/report.html              written by `mixtape report`
//
// `mixtape compare` writes COMPARE_DIR/compare.json (CompareManifest) and one RUN_DIR per
// model under it; its report covers all of them.

import type { CorpusFloors } from '../data/corpus.js';
import type { GatedContext } from './expert-contexts.js';

export type { CorpusFloors };

export interface RunConfig {
  /** 'moe' | 'dense' | 'hmoe' | 'rmoe' */
  model: string;
  label: string;
  experts: number;
  k: number;
  groups?: number;
  /** Recurrent layers run in checkpointed segments of this many steps (absent: no recomputation). */
  checkpointEvery?: number;
  modelSize: number;
  expertHidden: number;
  /** Runs with SwiGLU experts only: 'swiglu' (absent: the paper's ReLU MLP experts). */
  expert?: string;
  gating: string;
  wImportance: number;
  wLoad: number;
  /** Routers (#13), recorded only when set: token-choice capacity factor (unset: no dropping). */
  capacityFactor?: number;
  /** Router z-loss weight (recorded only when set; 0 = off). */
  wZLoss?: number;
  /** Switch/GShard balancing-loss α (recorded only when set; default 0.01). */
  auxLossWeight?: number;
  /** DeepSeek routing (recorded only when set): shared experts, 'sigmoid' | 'softmax', bias update rate γ. */
  sharedExperts?: number;
  scoreFunction?: string;
  biasUpdateRate?: number;
  /** DeepSeek-V3's sequence-wise balance loss α (recorded only when set; default 0 = off). */
  seqAuxLossWeight?: number;
  dropout: number;
  steps: number;
  batch: number;
  seqLen: number;
  lr: number;
  /** Linear warm-up steps of the paper's schedule (then ∝ 1/√step). */
  warmup: number;
  seed: number;
  backend: string;
  /** GPU runs only: the gpu.js mode (headlessgl or webgpu). */
  gpuMode?: string;
  evalEvery: number;
  /** 'synthetic' or the text file's path */
  data: string;
  vocabSize: number;
  /** Synthetic corpus only: number of domains and their names. */
  domains?: number;
  floors?: CorpusFloors;
  /**
   * Forward multiply-adds per token excluding the softmax (the paper's ops/timestep), and in
   * total; trainingFlops: FLOPs per token of a training step as the paper counts its TFLOPS
   * (2 per multiply-add, backward = 2 × forward, softmax included: 6 × total; absent in runs
   * written before it existed).
   */
  opsPerToken: { excludingSoftmax: number; total: number; trainingFlops?: number };
  parameters: number;
}

export interface TrainRecord {
  type: 'train';
  step: number;
  /** Tokens trained on so far. */
  tokens: number;
  /** Task loss (cross-entropy, nats per token) of this step's batch. */
  loss: number;
  auxLoss: number;
  lr: number;
  /** Seconds since the run started (excluding time before a resume). */
  elapsed: number;
  tokensPerSec: number;
  /** Achieved GFLOP/s of this step: opsPerToken.trainingFlops × tokensPerSec / 10⁹ (null in older runs). */
  gflops: number | null;
  /** MoE models only (null for dense): routing statistics of this step's batch. */
  cvImportance: number | null;
  cvLoad: number | null;
  gateEntropy: number | null;
  /** Per expert, [E] (flattened groups × experts for hmoe). */
  importance: number[] | null;
  load: number[] | null;
  expertCounts: number[] | null;
  /** Router runs (#13): routes dropped over capacity / all routes this step. */
  droppedFraction?: number;
  /** Router runs: per expert, dropped routes / routes that chose it. */
  droppedPerExpert?: number[];
  /** Router runs: mean logsumexp(router logits)² (ST-MoE z-loss, weighted or not). */
  routerZLoss?: number | null;
}

export interface ValRecord {
  type: 'val';
  step: number;
  loss: number;
  perplexity: number;
  /** MoE models: routing on the validation set. */
  cvImportance: number | null;
  cvLoad: number | null;
  gateEntropy: number | null;
  expertCounts: number[] | null;
  /** Synthetic corpus + MoE: [domain][expert] = how many validation tokens of that domain were routed to that expert. */
  domainExpert: number[][] | null;
  /**
   * Text corpus + MoE (Appendix E, Table 9): per expert, the validation contexts with the
   * highest gate values for it, best first (see expert-contexts.ts). Absent in older runs.
   */
  expertContexts?: GatedContext[][] | null;
}

export type MetricsRecord = TrainRecord | ValRecord;

export interface CompareManifest {
  /** Subdirectories (relative), one per run, in display order. */
  runs: string[];
  createdAt: string;
  note?: string;
  /** The flags compare was given (without --out), so that `compare --resume` needs only --out. */
  flags?: Record<string, string | boolean>;
}
