// A checkpoint's metadata is checked field by field before anything is read from it or
// written because of it: a file whose step is "banana" or whose configuration is null
// must be refused in one line, not resumed from step NaN (which used to empty
// metrics.jsonl) or printed as a JavaScript TypeError. Every field of mixtape_config is
// checked for its type and range, then the configuration as a whole as the CLI checks its
// flags, then the step, RNG and optimizer state against the configuration and the tensors.

import { GATING_KINDS } from '../moe/moe.js';
import type { Tensor } from '../tensor/tensor.js';
import type { RunConfig } from '../report/schema.js';
import { MAX_STEPS, validateConfig } from './run.js';
import { UsageError } from './errors.js';

export interface CheckpointState {
  config: RunConfig;
  step: number;
  rng: { key: [number, number]; counter: number };
  optimizer: Record<string, number>;
}

const MODELS = ['moe', 'dense', 'hmoe', 'rmoe'];
const EXPERTS = ['mlp', 'swiglu'];
const GATINGS: readonly string[] = GATING_KINDS;
const BACKENDS = ['cpu', 'gpu'];
const GPU_MODES = ['headlessgl', 'webgpu'];
/** Adam's per-parameter buffers (src/nn/optim.ts), saved as optimizer.<param index>.<name>. */
const OPTIMIZER_BUFFERS = ['exp_avg', 'exp_avg_sq'];

function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (v === undefined) return 'nothing';
  try {
    const s = JSON.stringify(v);
    return s === undefined ? typeof v : s.length > 60 ? `${s.slice(0, 60)}…` : s;
  } catch { return typeof v; }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Checks a checkpoint's metadata and tensors; every problem is one line naming the file and the field. */
export function checkCheckpoint(path: string, metadata: Record<string, string>, tensors: Record<string, Tensor>): CheckpointState {
  const fail = (what: string): never => { throw new UsageError(`${path}: ${what}`); };
  if (metadata.format !== 'mixtape' || metadata.mixtape_config === undefined) {
    fail('a safetensors file but not a mixtape checkpoint (no mixtape_config in its metadata)');
  }
  const json = (field: string): unknown => {
    const text = metadata[field];
    if (typeof text !== 'string') return fail(`its metadata has no ${field}`);
    try { return JSON.parse(text) as unknown; } catch { return fail(`its ${field} metadata is not valid JSON`); }
  };
  const config = checkRunConfig(json('mixtape_config'), (what) => fail(`mixtape_config.${what}`));
  try {
    validateConfig(config);
  } catch (e) {
    fail(`its configuration is not one mixtape can run: ${(e as Error).message}`);
  }

  const stepText = metadata.step;
  if (typeof stepText !== 'string' || !/^(0|[1-9]\d{0,9})$/.test(stepText)) fail(`step must be a whole number of steps, got ${show(stepText)}`);
  const step = Number(stepText);
  if (step > config.steps) fail(`step ${step} is beyond the run's ${config.steps} steps`);

  const rng = json('rng');
  const u32 = (v: unknown) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xffffffff;
  if (!isObject(rng) || !Array.isArray(rng.key) || rng.key.length !== 2 || !rng.key.every(u32) || !(Number.isSafeInteger(rng.counter) && (rng.counter as number) >= 0)) {
    fail(`rng must be {"key": [two 32-bit unsigned integers], "counter": a non-negative integer}, got ${show(rng)}`);
  }

  const optimizer = json('optimizer');
  if (!isObject(optimizer)) return fail(`optimizer must be an object of numbers, got ${show(optimizer)}`);
  const weights = Object.keys(tensors).filter((k) => !k.startsWith('optimizer.'));
  for (const [key, v] of Object.entries(optimizer)) {
    const perParam = /^(\d+)\.step$/.exec(key);
    if (key === 'lr') {
      if (!(typeof v === 'number' && v > 0 && Number.isFinite(v))) fail(`optimizer.lr must be a positive number, got ${show(v)}`);
    } else if (key === 'step' || perParam) {
      if (!(Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) <= step)) fail(`optimizer.${key} must be a whole number of steps up to the checkpoint's step ${step}, got ${show(v)}`);
      if (perParam && Number(perParam[1]) >= weights.length) fail(`optimizer.${key} names parameter ${perParam[1]}, but the checkpoint holds ${weights.length} tensors of weights`);
    } else {
      fail(`optimizer has an unknown entry ${show(key)}`);
    }
  }
  // Adam counts every step it took: a checkpoint saved after `step` steps says so.
  if (optimizer.step !== step) fail(`optimizer.step is ${show(optimizer.step)} but the checkpoint's step is ${step}`);

  for (const [name, t] of Object.entries(tensors)) {
    const m = /^optimizer\.(\d+)\.(.+)$/.exec(name);
    if (name.startsWith('optimizer.') && (!m || Number(m[1]) >= weights.length || !OPTIMIZER_BUFFERS.includes(m[2]!))) fail(`tensor ${name} is not optimizer state mixtape writes`);
    if (t.dtype !== 'float32' && t.dtype !== 'float64') fail(`tensor ${name} is ${t.dtype}; weights and optimizer state are float`);
    // Read where that costs nothing: on a device backend (webgpu reads asynchronously only)
    // the CLI has already checked the same file on the CPU, before selecting the backend.
    if (!t.backend.capabilities.hostResident) continue;
    const values = t.dataSync();
    for (let i = 0; i < values.length; i++) {
      if (!Number.isFinite(values[i]!)) fail(`tensor ${name} holds a non-finite value (${values[i]}) at index ${i}`);
    }
  }
  return { config, step, rng: rng as CheckpointState['rng'], optimizer: optimizer as Record<string, number> };
}

/** mixtape_config, field by field (the shape RunConfig promises), before any of it is used. */
export function checkRunConfig(c: unknown, fail: (what: string) => never): RunConfig {
  if (!isObject(c)) return fail(`must be an object, got ${show(c)}`);
  const int = (key: string, min: number, optional = false) => {
    const v = c[key];
    if (optional && v === undefined) return;
    if (!(Number.isSafeInteger(v) && (v as number) >= min)) fail(`${key} must be an integer ≥ ${min}, got ${show(v)}`);
  };
  const number = (key: string, ok: (v: number) => boolean, range: string, target: Record<string, unknown> = c, prefix = '') => {
    const v = target[key];
    if (!(typeof v === 'number' && Number.isFinite(v) && ok(v))) fail(`${prefix}${key} must be ${range}, got ${show(v)}`);
  };
  const oneOf = (key: string, allowed: readonly string[], optional = false) => {
    const v = c[key];
    if (optional && v === undefined) return;
    if (typeof v !== 'string' || !allowed.includes(v)) fail(`${key} must be one of ${allowed.join(', ')}, got ${show(v)}`);
  };
  oneOf('model', MODELS);
  if (typeof c.label !== 'string') fail(`label must be a string, got ${show(c.label)}`);
  for (const key of ['experts', 'k', 'modelSize', 'expertHidden', 'batch', 'seqLen', 'warmup', 'evalEvery', 'vocabSize']) int(key, 1);
  int('steps', 1);
  if ((c.steps as number) > MAX_STEPS) fail(`steps must be at most ${MAX_STEPS}, got ${show(c.steps)}`);
  int('groups', 1, true);
  int('checkpointEvery', 1, true);
  oneOf('expert', EXPERTS, true);
  // The routers' options (absent in runs that do not use them).
  for (const key of ['capacityFactor', 'wZLoss', 'auxLossWeight', 'biasUpdateRate', 'seqAuxLossWeight']) if (c[key] !== undefined) number(key, (v) => v >= 0, 'a non-negative number');
  int('sharedExperts', 0, true);
  oneOf('scoreFunction', ['sigmoid', 'softmax'], true);
  int('domains', 1, true);
  int('seed', 0);
  int('parameters', 0);
  oneOf('gating', GATINGS);
  number('wImportance', (v) => v >= 0, 'a non-negative number');
  number('wLoad', (v) => v >= 0, 'a non-negative number');
  number('dropout', (v) => v >= 0 && v < 1, 'a number in [0, 1)');
  number('lr', (v) => v > 0, 'a positive number');
  oneOf('backend', BACKENDS);
  oneOf('gpuMode', GPU_MODES, true);
  if (typeof c.data !== 'string' || c.data === '' || c.data === 'word:') fail(`data must be 'synthetic' or a text file's path, got ${show(c.data)}`);
  if (!isObject(c.opsPerToken)) fail(`opsPerToken must be an object, got ${show(c.opsPerToken)}`);
  for (const key of ['excludingSoftmax', 'total']) number(key, (v) => v >= 0, 'a non-negative number', c.opsPerToken as Record<string, unknown>, 'opsPerToken.');
  if ((c.opsPerToken as Record<string, unknown>).trainingFlops !== undefined) number('trainingFlops', (v) => v >= 0, 'a non-negative number', c.opsPerToken as Record<string, unknown>, 'opsPerToken.');
  if (c.floors !== undefined) {
    if (!isObject(c.floors)) fail(`floors must be an object, got ${show(c.floors)}`);
    for (const key of ['knownDomain', 'bayes', 'pooledBigram', 'uniform']) number(key, (v) => v >= 0, 'a non-negative number', c.floors as Record<string, unknown>, 'floors.');
  }
  return c as unknown as RunConfig;
}
