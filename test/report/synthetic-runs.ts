// Synthetic run directories for the report tests: plausible metrics.jsonl curves (loss
// decaying toward the corpus floors, routing that balances or collapses) written the way
// `mixtape train` writes them, with a seeded generator so every render is identical.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CompareManifest, CorpusFloors, MetricsRecord, RunConfig, TrainRecord, ValRecord } from '../../src/report/schema.js';

export const FLOORS: CorpusFloors = { knownDomain: 1.52, bayes: 1.571, pooledBigram: 2.234, uniform: Math.log(64) };

/** mulberry32: a tiny seeded generator, enough for noise. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function config(over: Partial<RunConfig>): RunConfig {
  return {
    model: 'moe', label: 'moe', experts: 8, k: 2, modelSize: 64, expertHidden: 128, gating: 'noisy-top-k',
    wImportance: 0.1, wLoad: 0.1, dropout: 0, steps: 400, batch: 16, seqLen: 32, lr: 0.01, warmup: 20, seed: 1,
    backend: 'cpu', evalEvery: 50, data: 'synthetic', vocabSize: 64, domains: 4, floors: FLOORS,
    opsPerToken: { excludingSoftmax: 41_472, total: 45_568, trainingFlops: 6 * 45_568 }, parameters: 123_456,
    ...over,
  };
}

export interface RunShape {
  /** Loss the run converges to. */
  finalLoss: number;
  /** 'balanced': shares near 1/E; 'collapsed': two experts take most of the batch; null: dense. */
  routing: 'balanced' | 'collapsed' | null;
  /** Write domain × expert counts in the validation records. */
  domainExpert?: boolean;
  /** Leave out the validation records. */
  noVal?: boolean;
  seed?: number;
  /** Router runs (#13): write droppedFraction (this value, ± noise) and droppedPerExpert in every train record. */
  dropped?: number;
  /** Router runs: write routerZLoss in every train record. */
  routerZ?: boolean;
}

const cv = (v: number[]): number => {
  const m = v.reduce((a, b) => a + b, 0) / v.length;
  return Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / v.length) / m;
};

/** Per-expert shares at training progress p in [0, 1]. */
function shares(routing: 'balanced' | 'collapsed', experts: number, p: number, r: () => number): number[] {
  const raw = Array.from({ length: experts }, (_, e) => {
    if (routing === 'collapsed') return (e < 2 ? 1 + 6 * p : Math.max(0.02, 1 - p)) * (0.9 + 0.2 * r());
    return 1 + (1 - p) * (e === 0 ? 2 : 0) + 0.25 * (r() - 0.5);
  });
  const total = raw.reduce((a, b) => a + b, 0);
  return raw.map((x) => x / total);
}

export function metrics(c: RunConfig, shape: RunShape): MetricsRecord[] {
  const r = rng(shape.seed ?? 7);
  const out: MetricsRecord[] = [];
  const tokensPerStep = c.batch * c.seqLen;
  const lossAt = (step: number): number => shape.finalLoss + (FLOORS.uniform - shape.finalLoss) * Math.exp(-step / 70);
  for (let step = 1; step <= c.steps; step++) {
    const p = step / c.steps;
    const imp = shape.routing ? shares(shape.routing, c.experts, p, r) : null;
    const load = imp ? imp.map((s) => s * (0.95 + 0.1 * r())) : null;
    const tokensPerSec = 10_000 + 500 * r();
    const rec: TrainRecord = {
      type: 'train', step, tokens: step * tokensPerStep, loss: lossAt(step) + 0.12 * (r() - 0.5), auxLoss: imp ? 0.1 * cv(imp) ** 2 : 0,
      lr: c.lr, elapsed: step * 0.05, tokensPerSec, gflops: (c.opsPerToken.trainingFlops! * tokensPerSec) / 1e9,
      cvImportance: imp ? cv(imp) : null, cvLoad: load ? cv(load) : null,
      gateEntropy: imp ? Math.log(c.k) * (shape.routing === 'collapsed' ? 0.3 + 0.5 * (1 - p) : 0.6 + 0.3 * p) : null,
      importance: imp ? imp.map((s) => s * tokensPerStep) : null, load: load ? load.map((s) => s * tokensPerStep) : null,
      expertCounts: imp ? imp.map((s) => Math.round(s * tokensPerStep * c.k)) : null,
      ...(shape.dropped !== undefined ? { droppedFraction: shape.dropped === 0 ? 0 : shape.dropped * (0.8 + 0.4 * r()), droppedPerExpert: new Array<number>(c.experts).fill(shape.dropped) } : {}),
      ...(shape.routerZ ? { routerZLoss: 4 + r() } : {}),
    };
    out.push(rec);
    if (step % c.evalEvery === 0 && !shape.noVal) out.push(valRecord(c, shape, step, lossAt(step) + 0.03, imp, r));
  }
  return out;
}

function valRecord(c: RunConfig, shape: RunShape, step: number, loss: number, imp: number[] | null, r: () => number): ValRecord {
  const domains = c.domains ?? 4;
  // Domain d prefers experts 2d and 2d+1, increasingly with training.
  const domainExpert = shape.domainExpert
    ? Array.from({ length: domains }, (_, d) => Array.from({ length: c.experts }, (_, e) =>
      Math.round((Math.floor(e / 2) === d ? 400 * (step / c.steps) : 20) + 30 * r())))
    : null;
  return {
    type: 'val', step, loss, perplexity: Math.exp(loss),
    cvImportance: imp ? cv(imp) * 0.5 : null, cvLoad: imp ? cv(imp) * 0.4 : null,
    gateEntropy: imp ? Math.log(c.k) * 0.7 : null, expertCounts: imp ? imp.map((s) => Math.round(s * 5000)) : null,
    domainExpert,
  };
}

/** Writes RUN_DIR/config.json and RUN_DIR/metrics.jsonl; returns the directory. */
export function writeRun(dir: string, c: RunConfig, shape: RunShape, tail = ''): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(c, null, 2));
  writeFileSync(join(dir, 'metrics.jsonl'), metrics(c, shape).map((m) => JSON.stringify(m) + '\n').join('') + tail);
  return dir;
}

/**
 * The compare directory of the tests: a dense baseline, a balanced MoE with floors and
 * domain × expert counts (its label needs escaping), and a MoE without balancing losses.
 */
export function writeCompare(dir: string): string {
  writeRun(join(dir, 'dense'), config({ model: 'dense', label: 'dense baseline', experts: 0, k: 0, parameters: 98_000 }), { finalLoss: 1.95, routing: null, seed: 1 });
  writeRun(join(dir, 'moe'), config({ label: 'MoE-8 <k=2> & "balanced"' }), { finalLoss: 1.68, routing: 'balanced', domainExpert: true, seed: 2 },
    '{"type":"train","step":401,"loss":1.6'); // interrupted mid-write
  writeRun(join(dir, 'moe-nobal'), config({ label: 'MoE-8 no balancing', wImportance: 0, wLoad: 0, floors: undefined }), { finalLoss: 1.83, routing: 'collapsed', seed: 3 });
  const manifest: CompareManifest = { runs: ['dense', 'moe', 'moe-nobal'], createdAt: '2025-01-01T00:00:00Z', note: 'synthetic <test> compare' };
  writeFileSync(join(dir, 'compare.json'), JSON.stringify(manifest));
  return dir;
}

/**
 * A compare --gatings directory: one MoE per router (noisy top-k, Switch with a capacity
 * factor that drops, Expert Choice, hash, DeepSeek with a shared expert) and the dense baseline.
 */
export function writeRouterCompare(dir: string): string {
  const runs: [string, Partial<RunConfig>, RunShape][] = [
    ['router-noisy-topk', { label: 'noisy-topk', gating: 'noisy-topk' }, { finalLoss: 1.70, routing: 'balanced', domainExpert: true, seed: 11 }],
    ['router-switch', { label: 'switch', gating: 'switch', k: 1, expertHidden: 256, capacityFactor: 1.25 }, { finalLoss: 1.74, routing: 'balanced', domainExpert: true, seed: 12, dropped: 0.05, routerZ: true }],
    ['router-expert-choice', { label: 'expert-choice', gating: 'expert-choice' }, { finalLoss: 1.69, routing: 'balanced', domainExpert: true, seed: 13, dropped: 0, routerZ: true }],
    ['router-hash', { label: 'hash', gating: 'hash', k: 1, expertHidden: 256 }, { finalLoss: 1.80, routing: 'collapsed', domainExpert: true, seed: 14, dropped: 0 }],
    ['router-deepseek', { label: 'deepseek', gating: 'deepseek', sharedExperts: 1, expertHidden: 86 }, { finalLoss: 1.68, routing: 'balanced', domainExpert: true, seed: 15, dropped: 0, routerZ: true }],
    ['dense', { model: 'dense', label: 'dense', experts: 0, k: 0 }, { finalLoss: 1.9, routing: null, seed: 16 }],
  ];
  for (const [sub, over, shape] of runs) writeRun(join(dir, sub), config(over), shape);
  const manifest: CompareManifest = { runs: runs.map(([sub]) => sub), createdAt: '2025-01-01T00:00:00Z', note: 'routers', flags: { gatings: 'noisy-topk,switch,expert-choice,hash,deepseek' } };
  writeFileSync(join(dir, 'compare.json'), JSON.stringify(manifest));
  return dir;
}
