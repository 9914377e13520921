// Training one model: builds the corpus and model from a RunConfig, trains with Adam,
// validates periodically, writes metrics.jsonl and atomic safetensors checkpoints, and
// resumes from a checkpoint to exactly the numbers an uninterrupted run would produce
// (the data of step s is a pure function of s; the RNG, optimizer and schedule state are
// saved with the weights).

import { existsSync, readFileSync, writeFileSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import * as mt from '../index.js';
import { defaultGenerator } from '../tensor/ops/creation.js';
import { saveSafetensorsAsync, loadSafetensors, removeStaleTemporaries } from '../nn/safetensors.js';
import type { Corpus, Batch } from '../data/corpus.js';
import { SyntheticCorpus } from '../data/synthetic.js';
import { TextCorpus } from '../data/text.js';
import type { MetricsRecord, RunConfig, TrainRecord, ValRecord } from '../report/schema.js';
import { ProgressBar } from './progress.js';
import { topGatedContexts, type GatedContext } from '../report/expert-contexts.js';
import { checkCheckpoint } from './checkpoint-metadata.js';
import { UsageError } from './errors.js';
import { makeDirectory } from './run-directory.js';

export const CHECKPOINT = 'checkpoint.safetensors';

export interface DataOptions { text?: string; wordLevel?: boolean; domains?: number; vocab?: number }

export { UsageError } from './errors.js';

/** The most steps a run may have. */
export const MAX_STEPS = 1_000_000_000;

export function makeCorpus(data: DataOptions, seed: number, seqLen: number): Corpus {
  if (data.text) {
    const corpus = new TextCorpus(data.text, { level: data.wordLevel ? 'word' : 'char', seed });
    // Both throw their clear error now if a sequence does not fit, not after the training steps.
    corpus.trainBatch(0, 1, seqLen);
    corpus.validation(1, seqLen);
    return corpus;
  }
  const corpus = new SyntheticCorpus({ domains: data.domains ?? 8, vocab: data.vocab ?? 32, seed: 0 });
  corpus.floorsFor(seqLen);
  return corpus;
}

export type AnyLM = mt.MoELanguageModel | mt.DenseLanguageModel | mt.RecurrentMoELanguageModel;

export function makeModel(config: RunConfig): AnyLM {
  const common = {
    vocabSize: config.vocabSize, modelSize: config.modelSize, expertHidden: config.expertHidden, k: config.k,
    dropout: config.dropout, ...(config.checkpointEvery ? { checkpointEvery: config.checkpointEvery } : {}),
    ...(config.expert ? { expert: config.expert as mt.ExpertKind } : {}),
  };
  if (config.model === 'dense') return new mt.DenseLanguageModel(common);
  if (config.model === 'rmoe') {
    return new mt.RecurrentMoELanguageModel({ ...common, numExperts: config.experts, wImportance: config.wImportance, wLoad: config.wLoad });
  }
  if (config.model !== 'moe' && config.model !== 'hmoe') throw new UsageError(`unknown --model '${config.model}' (expected moe, dense, hmoe or rmoe)`);
  return new mt.MoELanguageModel({
    ...common, numExperts: config.experts, gating: config.gating as mt.GatingKind, wImportance: config.wImportance, wLoad: config.wLoad,
    router: {
      ...(config.capacityFactor !== undefined ? { capacityFactor: config.capacityFactor } : {}),
      ...(config.wZLoss !== undefined ? { wZLoss: config.wZLoss } : {}),
      ...(config.auxLossWeight !== undefined ? { auxLossWeight: config.auxLossWeight } : {}),
      ...(config.sharedExperts !== undefined ? { sharedExperts: config.sharedExperts } : {}),
      ...(config.scoreFunction !== undefined ? { scoreFunction: config.scoreFunction as mt.ScoreFunction } : {}),
      ...(config.biasUpdateRate !== undefined ? { biasUpdateRate: config.biasUpdateRate } : {}),
      ...(config.seqAuxLossWeight !== undefined ? { seqAuxLossWeight: config.seqAuxLossWeight } : {}),
    },
    ...(config.model === 'hmoe' ? { hierarchicalGroups: config.groups ?? 4 } : {}),
  });
}

/** Checks a configuration before any work, with CLI-flag wording. */
export function validateConfig(c: RunConfig): void {
  const positive = (flag: string, v: number) => {
    if (!Number.isInteger(v) || v < 1) throw new UsageError(`--${flag} must be a positive integer, got ${v}`);
  };
  positive('experts', c.experts); positive('k', c.k); positive('d', c.modelSize); positive('expert-hidden', c.expertHidden);
  positive('steps', c.steps); positive('warmup', c.warmup);
  if (c.steps > MAX_STEPS) throw new UsageError(`--steps must be at most ${MAX_STEPS}, got ${c.steps}`); positive('batch', c.batch); positive('seq-len', c.seqLen); positive('eval-every', c.evalEvery);
  if (c.model !== 'dense' && c.k > c.experts) throw new UsageError(`--k ${c.k} is larger than --experts ${c.experts}: each token picks k of the experts`);
  if (c.model === 'hmoe') {
    const g = c.groups ?? 4;
    positive('groups', g);
    if (c.experts % g !== 0) throw new UsageError(`--experts ${c.experts} must be divisible by --groups ${g} for --model hmoe`);
    const kPrimary = Math.min(2, g, c.k);
    if (c.k % kPrimary !== 0) throw new UsageError(`--k ${c.k} must be a multiple of ${kPrimary} (groups per token) for --model hmoe`);
    if (c.k / kPrimary > c.experts / g) throw new UsageError(`--k ${c.k} needs ${c.k / kPrimary} experts per group but each group has ${c.experts / g}`);
  }
  if (c.checkpointEvery !== undefined) positive('checkpoint-every', c.checkpointEvery);
  if (c.model === 'rmoe' && c.gating !== 'noisy-topk') throw new UsageError(`--model rmoe routes with noisy top-k gating; --gating ${c.gating} is not available for it`);
  if (c.expert !== undefined && c.expert !== 'mlp' && c.expert !== 'swiglu') throw new UsageError(`unknown --expert '${c.expert}' (expected mlp or swiglu)`);
  if (c.expert === 'swiglu' && c.model === 'hmoe') throw new UsageError('--expert swiglu needs --model moe or dense (the hierarchical MoE has MLP experts only)');
  if (!GATINGS.includes(c.gating)) throw new UsageError(`unknown --gating '${c.gating}' (expected ${GATINGS.join(', ')})`);
  validateRouter(c);
  if (!(c.lr > 0 && Number.isFinite(c.lr))) throw new UsageError(`--lr must be a positive number, got ${c.lr}`);
  if (!(c.dropout >= 0 && c.dropout < 1)) throw new UsageError(`--dropout must be in [0, 1), got ${c.dropout}`);
  for (const [flag, v] of [['w-importance', c.wImportance], ['w-load', c.wLoad]] as const) {
    if (!(v >= 0 && Number.isFinite(v))) throw new UsageError(`--${flag} must be a non-negative number, got ${v}`);
  }
  if (!Number.isSafeInteger(c.seed) || c.seed < 0) throw new UsageError(`--seed must be a non-negative integer, got ${c.seed}`);
}

/** The --gating kinds the CLI accepts (MoE's GatingKind). */
export const GATINGS: readonly string[] = mt.GATING_KINDS;
const TOKEN_CHOICE = ['noisy-topk', 'switch', 'gshard', 'hash', 'deepseek'];
/** The routers after 2017 (#13): --model moe only. */
const NEW_ROUTERS = ['switch', 'gshard', 'hash', 'expert-choice', 'deepseek'];

/** The router flags (#13), one clear error per bad combination. */
function validateRouter(c: RunConfig): void {
  if (c.model === 'hmoe' && NEW_ROUTERS.includes(c.gating)) throw new UsageError(`--gating ${c.gating} needs --model moe (the hierarchical MoE has its own noisy top-k gates)`);
  if (c.model === 'moe' && c.gating === 'switch' && c.k !== 1) throw new UsageError(`--gating switch routes each token to 1 expert, got --k ${c.k}`);
  if (c.model === 'moe' && c.gating === 'hash' && c.k !== 1) throw new UsageError(`--gating hash sends each token to the 1 expert its id hashes to, got --k ${c.k}`);
  if (c.model === 'moe' && c.gating === 'hash' && c.wZLoss !== undefined && c.wZLoss > 0) throw new UsageError(`--gating hash has no router logits, so --w-z-loss must be 0, got ${c.wZLoss}`);
  if (c.model === 'moe' && c.gating === 'gshard' && c.k !== 2) throw new UsageError(`--gating gshard routes each token to its top 2 experts, got --k ${c.k}`);
  if (c.model === 'moe' && c.gating === 'gshard' && c.experts < 2) throw new UsageError(`--gating gshard needs at least 2 experts, got --experts ${c.experts}`);
  if (c.capacityFactor !== undefined) {
    if (!(c.capacityFactor > 0 && Number.isFinite(c.capacityFactor))) throw new UsageError(`--capacity-factor must be a positive number, got ${c.capacityFactor}`);
    if (c.model !== 'moe') throw new UsageError(`--capacity-factor needs --model moe (the model is ${c.model})`);
    if (!TOKEN_CHOICE.includes(c.gating) && c.gating !== 'expert-choice') throw new UsageError(`--capacity-factor applies to token-choice routers (${TOKEN_CHOICE.join(', ')}) and expert-choice, not --gating ${c.gating}`);
    if (c.gating === 'expert-choice' && c.capacityFactor > c.experts) throw new UsageError(`--gating expert-choice: --capacity-factor ${c.capacityFactor} (experts per token on average) cannot exceed --experts ${c.experts}`);
  }
  if (c.auxLossWeight !== undefined && c.gating !== 'switch' && c.gating !== 'gshard') throw new UsageError(`--aux-loss-weight needs --gating switch or gshard (the gating is ${c.gating})`);
  // Routers that read their routing on the host mid-forward need a synchronous readback (MoE.hostRouting).
  if (c.model === 'moe' && c.backend === 'gpu' && c.gpuMode === 'webgpu' && mt.hostRoutingReason(c.gating as mt.GatingKind, c.capacityFactor) !== null) {
    const what = c.gating === 'expert-choice' || c.gating === 'hash' ? `--gating ${c.gating}` : '--capacity-factor';
    throw new UsageError(`${what} routes on the host (a synchronous readback in the middle of each forward pass), which --gpu-mode webgpu does not offer: use --gpu-mode headlessgl or --backend cpu`);
  }
  const deepseekOnly = [['shared-experts', c.sharedExperts], ['score-function', c.scoreFunction], ['bias-update-rate', c.biasUpdateRate], ['seq-aux-loss-weight', c.seqAuxLossWeight]] as const;
  for (const [flag, v] of deepseekOnly) if (v !== undefined && c.gating !== 'deepseek') throw new UsageError(`--${flag} needs --gating deepseek (the gating is ${c.gating})`);
  if (c.sharedExperts !== undefined && (!Number.isInteger(c.sharedExperts) || c.sharedExperts < 0)) throw new UsageError(`--shared-experts must be a non-negative integer, got ${c.sharedExperts}`);
  if (c.sharedExperts !== undefined && c.sharedExperts >= c.experts) throw new UsageError(`--shared-experts ${c.sharedExperts} must be fewer than --experts ${c.experts}`);
  if (c.scoreFunction !== undefined && c.scoreFunction !== 'sigmoid' && c.scoreFunction !== 'softmax') throw new UsageError(`--score-function must be sigmoid or softmax, got '${c.scoreFunction}'`);
  for (const [flag, v] of [['w-z-loss', c.wZLoss], ['aux-loss-weight', c.auxLossWeight], ['bias-update-rate', c.biasUpdateRate], ['seq-aux-loss-weight', c.seqAuxLossWeight]] as const) {
    if (v !== undefined && !(v >= 0 && Number.isFinite(v))) throw new UsageError(`--${flag} must be a non-negative number, got ${v}`);
  }
}

/**
 * Whether a run's records carry the router fields (droppedFraction, droppedPerExpert,
 * routerZLoss): every flat MoE, whatever its router, so that one metrics format and one
 * report serve all routers (the hierarchical and recurrent MoE have their own gates).
 */
export function recordsRouter(c: RunConfig): boolean {
  return c.model === 'moe';
}

interface Stats { cvImportance: number; cvLoad: number; gateEntropy: number; importance: number[]; load: number[]; expertCounts: number[] }

// ---- readbacks -------------------------------------------------------------------------
// The trainer reads the device only with `await t.data()` (webgpu mode has no synchronous
// readback) and as rarely as it can: a training step reads once (the loss, the balancing
// loss, the gradient norm and the routing statistics, concatenated on the device), an
// evaluation once per READ_EVERY validation batches, a checkpoint once per tensor.

/**
 * Reads several tensors with one readback: flattened, cast to one dtype (float64 if any
 * is, else float32: every value is carried exactly, int32 too as the GPU stores it as
 * float32) and concatenated on the backend. Returns one view per tensor, in order.
 */
async function readTogether(tensors: readonly mt.Tensor[]): Promise<ArrayLike<number>[]> {
  const dtype = tensors.some((t) => t.dtype === 'float64') ? 'float64' : 'float32';
  const flat = mt.noGrad(() => mt.tidy(() => mt.concat(tensors.map((t) => {
    const flat = t.reshape([t.size]);
    return flat.dtype === dtype ? flat : flat.cast(dtype); // (a cast to the same dtype would copy)
  }), 0)));
  let values: ArrayLike<number> & { subarray(begin: number, end: number): ArrayLike<number> };
  try {
    values = (await flat.data()) as Float32Array | Float64Array;
  } finally {
    flat.dispose();
  }
  let at = 0;
  return tensors.map((t) => values.subarray(at, (at += t.size)));
}

/** Examples per expert, when the MoE already counted them on the host (sparse dispatch: no readback). */
function countsOnHost(s: mt.MoEStats): number[] | null {
  // With device dispatch, expertCounts is a getter that reads back synchronously (and would
  // be one more readback per step): countOnDevice counts the same thing on the device instead.
  const own = Object.getOwnPropertyDescriptor(s, 'expertCounts');
  return own && 'value' in own ? [...(own.value as number[])] : null;
}

/**
 * [E] examples per expert, on the device, as the device-dispatch getter counts them: the
 * chosen indices, or the nonzero gates with batchwise gating and in the hierarchical MoE.
 * (The getter also caps them at the expert capacity, which the language model leaves at
 * the number of rows, where no count can reach it.)
 */
function countOnDevice(s: mt.MoEStats, config: RunConfig): mt.Tensor {
  const E = s.importance.size;
  // Dropped routes and GShard's skipped second experts have gate 0: count the nonzero gates.
  if (config.model === 'hmoe' || ['batchwise', 'gshard', 'expert-choice'].includes(config.gating) || config.capacityFactor !== undefined) return s.gates.greater(0).sum(0);
  return mt.oneHot(s.indices.reshape([s.indices.size]), E, { dtype: 'int32' }).sum(0);
}

/** The tensors readStats needs, in its order, and the counts if they are known on the host. */
function statsTensors(s: mt.MoEStats, config: RunConfig): { tensors: mt.Tensor[]; counts: number[] | null } {
  const counts = countsOnHost(s);
  const tensors = [s.cvImportance, s.cvLoad, s.gateEntropy, s.importance, s.load];
  if (counts === null) tensors.push(countOnDevice(s, config));
  return { tensors, counts };
}

/** Stats from the values of statsTensors' tensors, as read back. */
function readStats(values: readonly ArrayLike<number>[], counts: number[] | null): Stats {
  const [cvImportance, cvLoad, gateEntropy, importance, load, deviceCounts] = values;
  return {
    cvImportance: cvImportance![0]!, cvLoad: cvLoad![0]!, gateEntropy: gateEntropy![0]!,
    importance: Array.from(importance!), load: Array.from(load!), expertCounts: counts ?? Array.from(deviceCounts!),
  };
}

function toTensors(b: Batch, batch: number, seqLen: number): { x: mt.Tensor; y: mt.Tensor } {
  return { x: mt.tensor(b.x, [batch, seqLen], { dtype: 'int32' }), y: mt.tensor(b.y, [batch, seqLen], { dtype: 'int32' }) };
}

/** Validation batches whose results stay on the device before one readback. */
const READ_EVERY = 256;

/** Mean validation loss and routing statistics (eval mode: no noise, no dropout). */
export async function evaluate(model: AnyLM, corpus: Corpus, config: RunConfig): Promise<Omit<ValRecord, 'step' | 'type'>> {
  model.eval();
  let lossSum = 0, tokens = 0;
  const E = config.model === 'dense' ? 0 : config.experts;
  const counts = new Array<number>(E).fill(0);
  const domainExpert = corpus.domains && E ? Array.from({ length: corpus.domains }, () => new Array<number>(E).fill(0)) : null;
  // Text corpora: every position's input token, chosen experts and their gates, for the contexts table (App. E).
  const contexts = !corpus.domains && E ? { tokens: [] as number[], indices: [] as number[], gates: [] as number[] } : null;
  let importance = new Array<number>(E).fill(0), load = new Array<number>(E).fill(0), entropySum = 0, batches = 0;
  // Per batch, the tensors to read (kept on the device) and what the host already knows.
  interface Pending { batch: Batch; tensors: mt.Tensor[]; counts: number[] | null; k: number }
  let pending: Pending[] = [];
  // Accumulates in the batches' order, in doubles, as one readback per batch would.
  const flush = async () => {
    if (pending.length === 0) return;
    const batch = pending;
    pending = [];
    let values: ArrayLike<number>[];
    try {
      values = await readTogether(batch.flatMap((p) => p.tensors));
    } finally {
      for (const p of batch) mt.dispose(p.tensors);
    }
    let at = 0;
    for (const p of batch) {
      const v = values.slice(at, (at += p.tensors.length));
      lossSum += v[0]![0]!;
      if (p.tensors.length === 1) continue;
      const [imp, ld, entropy, deviceCounts, idx, chosen] = [v[1]!, v[2]!, v[3]!, p.counts ? null : v[4]!, p.counts ? v[4] : v[5], p.counts ? v[5] : v[6]];
      (p.counts ?? Array.from(deviceCounts!)).forEach((c, e) => { counts[e]! += c; });
      importance = importance.map((x, e) => x + imp[e]!);
      load = load.map((x, e) => x + ld[e]!);
      entropySum += entropy[0]!;
      batches++;
      if (contexts && idx && chosen) {
        for (let i = 0; i < idx.length; i++) { contexts.indices.push(idx[i]!); contexts.gates.push(chosen[i]!); }
        for (const id of p.batch.x) contexts.tokens.push(id);
      }
      if (domainExpert && p.batch.domains && idx && chosen) {
        // Only the routes a token really took: not a zero-gate candidate (Expert Choice lists
        // every expert, GShard may skip its second, a dropped route's gate is 0).
        for (let n = 0; n < idx.length / p.k; n++) {
          const d = p.batch.domains[Math.floor(n / config.seqLen)]!;
          for (let j = 0; j < p.k; j++) if (chosen[n * p.k + j]! > 0) domainExpert[d]![idx[n * p.k + j]!]!++;
        }
      }
    }
  };
  try {
    for (const b of corpus.validation(config.batch, config.seqLen)) {
      const rows = b.x.length / config.seqLen;
      tokens += b.y.length;
      pending.push(mt.noGrad(() => mt.tidy(() => {
        const { x, y } = toTensors(b, rows, config.seqLen);
        const out = model.forward(x);
        const tensors = [mt.crossEntropy(out.logits, y, { reduction: 'sum' })];
        const s = out.stats;
        if (!s) return { batch: b, tensors, counts: null, k: 0 };
        const counts = countsOnHost(s);
        tensors.push(s.importance, s.load, s.gateEntropy);
        if (counts === null) tensors.push(countOnDevice(s, config));
        if ((domainExpert && b.domains) || contexts) tensors.push(s.indices, mt.gather(s.gates, 1, s.indices));
        return { batch: b, tensors, counts, k: s.indices.shape[1]! };
      })));
      if (pending.length >= READ_EVERY) await flush();
    }
    await flush();
  } finally {
    for (const p of pending) mt.dispose(p.tensors);
    model.train();
  }
  const loss = lossSum / tokens;
  // cv_squared on the host (the same formula as mt.cvSquared), whatever the backend.
  const cv = (v: number[]) => {
    if (!E) return null;
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    const variance = v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length;
    return Math.sqrt(variance / (mean * mean + 1e-10));
  };
  return {
    loss, perplexity: Math.exp(loss),
    cvImportance: E ? cv(importance) : null, cvLoad: E ? cv(load) : null,
    gateEntropy: E ? entropySum / batches : null, expertCounts: E ? counts : null, domainExpert,
    ...(contexts ? { expertContexts: expertContextsOf(contexts, corpus, config, E) } : {}),
  };
}

/** The contexts table from the validation routing: characters or words around each gated token. */
function expertContextsOf(c: { tokens: number[]; indices: number[]; gates: number[] }, corpus: Corpus, config: RunConfig, E: number): GatedContext[][] {
  const words = config.data.startsWith('word:');
  return topGatedContexts({ indices: c.indices, gates: c.gates, k: c.indices.length / c.tokens.length }, c.tokens, config.seqLen, E,
    (ids) => corpus.decode(ids), words ? { top: 5, before: 3, after: 1 } : { top: 5, before: 8, after: 3 });
}

export interface TrainOptions {
  out: string;
  resume?: boolean;
  quiet?: boolean;
  /** Called after each step (used by compare to show several runs). */
  onStep?: (r: TrainRecord) => void;
  /** Checked between steps; when it returns true, a checkpoint is saved and training stops. */
  shouldStop?: () => boolean;
}

/** Reads the weights and optimizer state with async readbacks, then writes the file atomically (saveSafetensorsAsync). */
async function saveCheckpoint(dir: string, model: AnyLM, opt: mt.Optimizer, config: RunConfig, step: number): Promise<void> {
  const optState = opt.stateDict();
  const tensors: Record<string, mt.Tensor> = { ...model.stateDict() };
  for (const [k, t] of Object.entries(optState.tensors)) tensors[`optimizer.${k}`] = t;
  await saveSafetensorsAsync(join(dir, CHECKPOINT), tensors, {
    format: 'mixtape', mixtape_config: JSON.stringify(config), step: String(step),
    rng: JSON.stringify(defaultGenerator.getState()), optimizer: JSON.stringify(optState.scalars),
  });
}

export interface LoadedCheckpoint {
  config: RunConfig; step: number; tensors: Record<string, mt.Tensor>; metadata: Record<string, string>;
  rng: { key: [number, number]; counter: number }; optimizer: Record<string, number>;
}

/** Reads a checkpoint and checks every metadata field (checkpoint-metadata.ts) before returning anything. */
export function readCheckpoint(path: string): LoadedCheckpoint {
  if (!existsSync(path)) throw new UsageError(`no checkpoint at ${path}`);
  const { tensors, metadata } = loadSafetensors(path);
  try {
    return { ...checkCheckpoint(path, metadata, tensors), tensors, metadata };
  } catch (e) {
    mt.dispose(tensors);
    throw e;
  }
}

/** Loads model weights from a checkpoint, with a one-line error if they belong to another configuration. */
export function loadWeights(model: AnyLM, ckpt: LoadedCheckpoint, path: string): void {
  const weights = Object.fromEntries(Object.entries(ckpt.tensors).filter(([k]) => !k.startsWith('optimizer.')));
  try {
    model.loadStateDict(weights);
  } catch (e) {
    throw new UsageError(`${path} does not fit this model configuration: ${(e as Error).message.replace(/^loadStateDict: /, '')}`);
  }
}

/** Trains (or resumes) one run in `options.out`. Returns the final validation record. */
export async function train(config: RunConfig, options: TrainOptions): Promise<ValRecord> {
  validateConfig(config);
  const dir = options.out;
  makeDirectory(dir, '--out'); // (not mkdirSync's recursive mode, which can loop for ever, e.g. under /proc)
  const corpus = makeCorpus(dataOf(config), config.seed, config.seqLen);
  mt.manualSeed(config.seed);
  const model = makeModel(config);
  const opt = new mt.Adam(model.parameters(), { lr: config.lr });
  // Independent of the total number of steps, so --resume with more --steps continues exactly.
  const schedule = new mt.InverseSqrtLR(opt, config.warmup);
  let startStep = 0;
  const metricsPath = join(dir, 'metrics.jsonl');
  if (options.resume) {
    const path = join(dir, CHECKPOINT);
    removeStaleTemporaries(path);
    // Everything is checked before metrics.jsonl or config.json is touched.
    const ckpt = readCheckpoint(path);
    const mismatch = diffConfig(ckpt.config, config);
    if (mismatch) throw new UsageError(`the checkpoint in ${dir} was trained with ${mismatch}; resume with the same flags (only --steps and --eval-every may change)`);
    if (ckpt.step > config.steps) throw new UsageError(`the checkpoint in ${dir} is at step ${ckpt.step}, beyond --steps ${config.steps}`);
    loadWeights(model, ckpt, path);
    const optTensors = Object.fromEntries(Object.entries(ckpt.tensors).filter(([k]) => k.startsWith('optimizer.')).map(([k, t]) => [k.slice('optimizer.'.length), t]));
    try {
      opt.loadStateDict({ tensors: optTensors, scalars: ckpt.optimizer });
    } catch (e) {
      throw new UsageError(`${path}: its optimizer state does not fit this model: ${(e as Error).message.replace(/^loadStateDict: /, '')}`);
    }
    defaultGenerator.setState(ckpt.rng);
    startStep = ckpt.step;
    for (let i = 0; i < startStep; i++) schedule.step();
    // Drop metrics written after the checkpoint (an interrupted run may have gone further).
    const kept = existsSync(metricsPath)
      ? readFileSync(metricsPath, 'utf8').split('\n').filter((l) => { try { return (JSON.parse(l) as MetricsRecord).step <= startStep; } catch { return false; } })
      : [];
    writeFileSync(metricsPath, kept.map((l) => `${l}\n`).join(''));
  } else {
    writeFileSync(metricsPath, '');
  }
  config.parameters = model.numParameters();
  const ops = model.opsPerToken();
  config.opsPerToken = { excludingSoftmax: ops.excludingSoftmax, total: ops.total, trainingFlops: ops.trainingFlops };
  if (corpus.floors) config.floors = corpus.floors;
  if (corpus.domains) config.domains = corpus.domains;
  writeFileSync(join(dir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);

  const bar = new ProgressBar(process.stderr, options.quiet);
  const write = (r: MetricsRecord) => appendFileSync(metricsPath, `${JSON.stringify(r)}\n`);
  const started = Date.now();
  let lastVal: ValRecord | null = null;
  let step = startStep;
  let trainedTokens = startStep * config.batch * config.seqLen;
  while (step < config.steps) {
    const batch = corpus.trainBatch(step, config.batch, config.seqLen);
    opt.zeroGrad();
    const t0 = Date.now();
    // Everything this step reports, kept on the device and read back once, below.
    const { reported, counts, dropped } = mt.tidy(() => {
      const { x, y } = toTensors(batch, config.batch, config.seqLen);
      const out = model.forward(x);
      const task = mt.crossEntropy(out.logits, y);
      task.add(out.auxLoss).backward();
      const routing = out.stats ? statsTensors(out.stats, config) : { tensors: [], counts: null };
      // Flat MoE runs also record the router z-loss (read with the rest) and the dropped fractions (host numbers).
      const dropped = recordsRouter(config) && out.stats ? { fraction: out.stats.droppedFraction ?? 0, perExpert: out.stats.droppedPerExpert ?? [], hasZ: out.stats.routerZLoss !== undefined } : null;
      const z = dropped?.hasZ ? [out.stats!.routerZLoss!] : []; // hash routing has no router logits
      return { reported: [task.detach(), out.auxLoss.detach(), ...z, ...routing.tensors], counts: routing.counts, dropped };
    });
    // Clipping at 1 on the device: the norm is read with the rest (no readback of its own).
    const norm = mt.clipGradNormTensor(model.parameters(), 1);
    let values: ArrayLike<number>[];
    try {
      values = await readTogether([norm, ...reported]);
    } finally {
      norm.dispose();
      mt.dispose(reported);
    }
    const [gradNorm, lossValue, auxValue, ...rest] = values;
    const zValue = dropped?.hasZ ? rest.shift()![0]! : null, routing = rest;
    const loss = lossValue![0]!, aux = auxValue![0]!, stats = routing.length ? readStats(routing, counts) : null;
    if (!Number.isFinite(loss)) throw new Error(`training diverged at step ${step + 1}: the loss is ${loss}; try a smaller --lr`);
    if (!Number.isFinite(gradNorm![0]!)) throw new Error(`training diverged at step ${step + 1}: the gradient norm is ${gradNorm![0]!}; try a smaller --lr`);
    opt.step();
    schedule.step();
    step++;
    trainedTokens += config.batch * config.seqLen;
    const elapsed = (Date.now() - started) / 1000;
    const tokensPerSec = (config.batch * config.seqLen) / Math.max(1e-3, (Date.now() - t0) / 1000);
    const record: TrainRecord = {
      type: 'train', step, tokens: trainedTokens, loss, auxLoss: aux, lr: opt.lr, elapsed,
      tokensPerSec, gflops: (ops.trainingFlops * tokensPerSec) / 1e9,
      cvImportance: stats?.cvImportance ?? null, cvLoad: stats?.cvLoad ?? null, gateEntropy: stats?.gateEntropy ?? null,
      importance: stats?.importance ?? null, load: stats?.load ?? null, expertCounts: stats?.expertCounts ?? null,
      ...(dropped ? { droppedFraction: dropped.fraction, droppedPerExpert: dropped.perExpert, routerZLoss: zValue } : {}),
    };
    write(record);
    options.onStep?.(record);
    const averageRate = ((step - startStep) * config.batch * config.seqLen) / Math.max(1e-3, elapsed);
    bar.update({ step, total: config.steps, tokensPerSec: averageRate, gflops: (ops.trainingFlops * averageRate) / 1e9, loss, cvLoad: record.cvLoad, elapsed, label: config.label });
    if (step % config.evalEvery === 0 || step === config.steps) {
      lastVal = { type: 'val', step, ...(await evaluate(model, corpus, config)) };
      write(lastVal);
      await saveCheckpoint(dir, model, opt, config, step);
      bar.log(`${config.label}: step ${step}: validation loss ${lastVal.loss.toFixed(4)} (perplexity ${lastVal.perplexity.toFixed(2)})${lastVal.cvLoad !== null ? `, CV(load) ${lastVal.cvLoad.toFixed(3)}` : ''}`);
    }
    // Let signal handlers run between steps.
    await new Promise((resolve) => setImmediate(resolve));
    if (options.shouldStop?.() && step < config.steps) {
      await saveCheckpoint(dir, model, opt, config, step);
      bar.done();
      throw new Interrupted(step, dir);
    }
  }
  bar.done();
  return lastVal ?? { type: 'val', step, ...(await evaluate(model, corpus, config)) };
}

export class Interrupted extends Error {
  constructor(readonly step: number, readonly dir: string) {
    super(`interrupted at step ${step}; checkpoint saved in ${dir} (continue with: mixtape train --out ${dir} --resume)`);
    this.name = 'Interrupted';
  }
}

export function dataOf(config: RunConfig): DataOptions {
  if (config.data === 'synthetic') return { domains: config.domains ?? 8 };
  const wordLevel = config.data.startsWith('word:');
  return { text: wordLevel ? config.data.slice(5) : config.data, wordLevel };
}

/** The first setting that differs between a checkpoint's config and the requested one (ignoring steps and bookkeeping). */
function diffConfig(saved: RunConfig, wanted: RunConfig): string | null {
  // (evalEvery may change: evaluation draws no random numbers, so the training numbers stay the same.)
  const keys: (keyof RunConfig)[] = ['model', 'experts', 'k', 'groups', 'modelSize', 'checkpointEvery', 'expertHidden', 'expert', 'gating', 'wImportance', 'wLoad', 'capacityFactor', 'wZLoss', 'auxLossWeight', 'sharedExperts', 'scoreFunction', 'biasUpdateRate', 'seqAuxLossWeight', 'dropout', 'batch', 'seqLen', 'lr', 'warmup', 'seed', 'data', 'vocabSize'];
  for (const key of keys) {
    if (JSON.stringify(saved[key]) !== JSON.stringify(wanted[key])) return `${String(key)} = ${JSON.stringify(saved[key])}, not ${JSON.stringify(wanted[key])}`;
  }
  if (wanted.steps < saved.steps && wanted.steps < 0) return 'fewer steps';
  return null;
}
