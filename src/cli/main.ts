// The `mixtape` command line: train, compare, report, gradcheck, inspect.
// Errors are one line on stderr and a non-zero exit code (a stack trace only with --debug).

import { parseArgs, type ParseArgsConfig } from 'node:util';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import * as mt from '../index.js';
import type { RunConfig } from '../report/schema.js';
import { CHECKPOINT, Interrupted, makeCorpus, readCheckpoint, train, UsageError, validateConfig } from './run.js';
import { checkMemory } from './memory-estimate.js';
import { claimRunDirectory, type RunLock } from './run-directory.js';
import { compare, COMPARE_GATINGS } from './compare.js';
import { gradcheckCommand } from './gradcheck.js';
import { inspect } from './inspect.js';
import { writeReport } from './report.js';
import { labCommand } from './lab.js';

const VERSION = '0.1.0';

type Options = NonNullable<ParseArgsConfig['options']>;

const trainFlags: Options = {
  model: { type: 'string' }, experts: { type: 'string' }, k: { type: 'string' }, groups: { type: 'string' }, 'checkpoint-every': { type: 'string' },
  d: { type: 'string' }, 'expert-hidden': { type: 'string' }, expert: { type: 'string' }, gating: { type: 'string' },
  'w-importance': { type: 'string' }, 'w-load': { type: 'string' }, dropout: { type: 'string' },
  'capacity-factor': { type: 'string' }, 'w-z-loss': { type: 'string' }, 'aux-loss-weight': { type: 'string' },
  'shared-experts': { type: 'string' }, 'score-function': { type: 'string' }, 'bias-update-rate': { type: 'string' }, 'seq-aux-loss-weight': { type: 'string' },
  steps: { type: 'string' }, warmup: { type: 'string' }, batch: { type: 'string' }, 'seq-len': { type: 'string' }, lr: { type: 'string' },
  seed: { type: 'string' }, 'eval-every': { type: 'string' }, backend: { type: 'string' }, 'gpu-mode': { type: 'string' },
  out: { type: 'string' }, text: { type: 'string' }, 'word-level': { type: 'boolean' }, domains: { type: 'string' },
  label: { type: 'string' }, quiet: { type: 'boolean' }, 'progress-json': { type: 'boolean' }, threads: { type: 'string' },
};
const common: Options = { help: { type: 'boolean', short: 'h' }, debug: { type: 'boolean' } };

const HELP: Record<string, string> = {
  main: `mixtape ${VERSION}: train and study Sparsely-Gated Mixture-of-Experts language models.

Usage: mixtape <command> [flags]   (mixtape <command> --help for its flags)

Commands:
  train      train one model (moe, dense, hmoe or rmoe) on the built-in corpus or a text file
  compare    train an MoE model, its compute-matched dense model and an MoE without balancing losses, then write one report
  report     write report.html for a run or compare directory
  gradcheck  float64 gradient checks of the gating math and the MoE layer, worst error per parameter
  inspect    print a checkpoint's configuration and routing statistics on a batch
  lab        open the interactive MoE laboratory in the browser (train live on WebGPU, WebGL2 or the CPU)

Common flags: --out DIR, --steps N, --seed N, --backend cpu|gpu [--gpu-mode headlessgl|webgpu], --experts N, --k N, --text FILE, --debug`,
  train: `Usage: mixtape train [flags]

Model:
  --model moe|dense|hmoe|rmoe   the paper's LM with an MoE, the compute-matched dense baseline, a hierarchical MoE,
                           or a recurrent MoE (§3.1: an LSTM whose weights are k of E expert weight sets, in the MoE's place)
                           (default moe)
  --experts N              number of experts (default 16); --k N experts per token (default 2)
  --groups N               hmoe: number of groups (default 4)
  --checkpoint-every N     run the recurrent layers in checkpointed segments of N steps: backward recomputes
                           their activations instead of storing them (less memory, one more forward pass)
  --d N                    embedding = LSTM = MoE size (default 32); --expert-hidden N (default 64)
  --expert mlp|swiglu      expert type (default mlp, the paper's); swiglu: Mixtral's w2(silu(w1·x) ⊙ w3·x)
                           with hidden size round(2/3 · expert-hidden), the same multiply-adds (moe, dense)
  --gating noisy-topk|softmax|batchwise|switch|gshard|hash|expert-choice|deepseek   (default noisy-topk; switch: top-1, so --k defaults to 1)
                           gshard: top-2 with GShard's random second-expert routing in training
                           hash: a fixed hash of the input token id picks 1 expert (--k defaults to 1; no learned router)
                           expert-choice: each expert takes its top ⌈X·batch/experts⌉ tokens of each time step
                           (X = --capacity-factor, default --k; causal: only tokens of the same step compete)
                           deepseek: top-k by affinity + a selection bias balanced without a loss (DeepSeek-V3)
  --shared-experts N       deepseek: always-on shared experts besides the --experts routed ones (default 0)
  --score-function sigmoid|softmax   deepseek affinities (default sigmoid)
  --bias-update-rate X     deepseek: γ of the ±γ bias update after each step (default 0.001)
  --seq-aux-loss-weight X  deepseek: α of DeepSeek-V3's sequence-wise balance loss α·Σ fᵢPᵢ per sequence (default 0 = off)
  --capacity-factor X      expert-choice: average experts per token. Token-choice routers: each expert keeps ⌈X·k·tokens/experts⌉ tokens per batch, the rest
                           are dropped (by choice rank, then position; the residual carries them). Default: no dropping
  --w-z-loss X             router z-loss weight (ST-MoE; 1e-3 in the paper; default 0 = off)
  --aux-loss-weight X      switch, gshard: α of the balancing loss α·E·Σ fᵢPᵢ (default 0.01)
  --w-importance X, --w-load X             balancing-loss weights (default 0.1 each, as the paper's LM)
  --dropout X              dropout after every layer but the softmax (default 0)
Training:
  --steps N (default 1000)  --batch N (32)  --seq-len N (16)  --lr X (0.01)  --warmup N (50)  --seed N (0)  --eval-every N (100)
                           Adam, gradient-norm clipping at 1, the paper's schedule: linear warm-up, then ∝ 1/√step
  --backend cpu|gpu        (default cpu)
  --threads N              cpu: worker threads for the large matrix products (default one per core); every N gives
                           the same numbers bit for bit, so a resume may change it
  --gpu-mode headlessgl|webgpu   with --backend gpu: gpu.js's mode (default headlessgl: needs an X display, e.g.
                           xvfb-run -a; webgpu: Dawn, a Vulkan driver). A mode that cannot start stops with the reason
Data:
  --text FILE              train on a UTF-8 text file (character level; --word-level for words) instead of
                           the built-in synthetic multi-domain corpus; --domains N for the synthetic corpus (default 8)
Output:
  --out DIR                run directory: config.json, metrics.jsonl, checkpoint.safetensors (default runs/<model>)
  --resume                 continue the run in --out from its checkpoint, to exactly the numbers of an uninterrupted run;
                           --steps, --eval-every, --label, --backend and --gpu-mode may change (said in one line), other flags must match
  --label NAME, --quiet
Ctrl-C saves a checkpoint and stops.`,
  compare: `Usage: mixtape compare [flags]

Trains, on the same data and budget: the MoE model, its compute-matched dense model
(hidden size k × expert hidden), and the same MoE without balancing losses; with
--experts 4,16,64 one MoE per expert count. Then writes report.html. Runs two at a time.
Flags: all of train's (--experts may be a comma-separated list), plus
  --out DIR (default runs/compare)  --parallel N (default: every run at once, up to 2 per core)  --no-unbalanced (skip the run without balancing losses)
  --gatings noisy-topk,switch,gshard,expert-choice,hash,deepseek   one MoE per router at one --experts, plus the dense
                           baseline, with matched active compute: each router's expert hidden size is
                           ⌈k·h/a⌉ (a = its experts per token: switch, hash 1; gshard 2; noisy-topk k;
                           expert-choice its capacity factor, default k; deepseek k + --shared-experts), so
                           every run computes ≈ k·h per token
  --fine-grained M         with deepseek in --gatings: DeepSeekMoE's fine-grained experts for its run: each of the
                           --experts split into M, so M·E experts, M·k routed per token, hidden ⌈k·h/(M·k + shared)⌉
  --resume   continue the compare in --out after Ctrl-C: each run from its checkpoint, to its end
             (only --steps, --parallel, --threads and --quiet may change)
Ctrl-C stops every run, each saving its checkpoint.`,
  report: `Usage: mixtape report RUN_DIR [--out FILE]

Writes a self-contained HTML report (SVG charts, no network access) for a run directory or a compare directory.`,
  gradcheck: `Usage: mixtape gradcheck [--experts N] [--k N] [--d N] [--hidden N] [--batch N] [--noise on|off] [--seed N]
                        [--gating KIND] [--capacity-factor F] [--w-z-loss W] [--shared-experts N]

Runs float64 gradient checks (central differences, eps 1e-6; PyTorch's atol 1e-5, rtol 1e-3) and prints the
worst error per parameter: for noisy top-k gating (the default) of the gates, the smooth load, both CV² losses
and the MoE layer; for the other gating kinds (${mt.GATING_KINDS.join(', ')}) of the router's gates, batchwise's
threshold loss, and the MoE layer with the router's auxiliary loss, its random parts fixed and its inputs
drawn clear of routing boundaries. --capacity-factor drops routes over capacity; --w-z-loss weights the
router z-loss in; --shared-experts adds DeepSeek's shared experts.`,
  inspect: `Usage: mixtape inspect CHECKPOINT [--batch N] [--text FILE]

Prints the configuration stored in a checkpoint and the routing statistics on one validation batch
(of the built-in corpus, or with --text of the text file the model was trained on: the path stored
in the checkpoint is never opened); for a model trained on text, also the contexts each expert is
most strongly gated on over the validation set (the paper's Table 9).`,
  lab: `Usage: mixtape lab [RUN_DIR] [--port N]

Starts a local server (127.0.0.1, a free port unless --port) and prints the URL of the lab: a page
where you build an MoE, train it on WebGPU, WebGL2 or the CPU in your browser, watch its routing and
poke it. RUN_DIR (optional) is a run directory whose checkpoint the page can open. Ctrl-C stops it.`,
};

function parse(args: string[], options: Options, allowPositionals = false): { values: Values; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args, options: { ...options, ...common }, strict: true, allowPositionals });
    return { values: values as Values, positionals };
  } catch (e) {
    // Node's messages are long; keep the essential part on one line.
    const msg = (e as Error).message.split('\n')[0]!.replace(/\. To specify a positional argument.*$/, '');
    const ambiguous = /^Option '(--[\w-]+)' argument is ambiguous/.exec(msg);
    if (ambiguous) throw new UsageError(`${ambiguous[1]} needs a value; write a value that starts with '-' as ${ambiguous[1]}=-X`);
    throw new UsageError(msg.replace(/^Unknown option '(.+)'$/, 'unknown flag $1').replace(/^Option '(.+)' argument missing$/, '$1 needs a value'));
  }
}

function int(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(n)) throw new UsageError(`--${flag} must be an integer, got '${value}'`);
  return n;
}

function num(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new UsageError(`--${flag} must be a number, got '${value}'`);
  return n;
}

type Values = Record<string, string | boolean | undefined>;

/** A RunConfig from flags (defaults for the rest). */
export function configFromFlags(v: Values, overrides: Partial<RunConfig> = {}): RunConfig {
  const s = (k: string) => v[k] as string | undefined;
  const model = s('model') ?? 'moe';
  const backend = s('backend') ?? 'cpu';
  if (backend !== 'cpu' && backend !== 'gpu') throw new UsageError(`--backend must be cpu or gpu, got '${backend}'`);
  const gpuMode = s('gpu-mode');
  if (gpuMode !== undefined && !(GPU_MODES as readonly string[]).includes(gpuMode)) {
    throw new UsageError(`--gpu-mode must be ${GPU_MODES.join(' or ')}, got '${gpuMode}'`);
  }
  if (gpuMode !== undefined && backend !== 'gpu') throw new UsageError(`--gpu-mode ${gpuMode} needs --backend gpu (the backend is ${backend})`);
  const text = s('text');
  const config: RunConfig = {
    model, label: s('label') ?? model,
    experts: int('experts', s('experts'), 16), k: int('k', s('k'), s('gating') === 'switch' || s('gating') === 'hash' ? 1 : 2),
    ...(model === 'hmoe' ? { groups: int('groups', s('groups'), 4) } : {}),
    ...(s('checkpoint-every') !== undefined ? { checkpointEvery: int('checkpoint-every', s('checkpoint-every'), 0) } : {}),
    modelSize: int('d', s('d'), 32), expertHidden: int('expert-hidden', s('expert-hidden'), 64),
    // Recorded for SwiGLU runs only (MLP runs' config.json is as before).
    ...(s('expert') !== undefined && s('expert') !== 'mlp' ? { expert: s('expert')! } : {}),
    gating: s('gating') ?? 'noisy-topk',
    wImportance: num('w-importance', s('w-importance'), 0.1), wLoad: num('w-load', s('w-load'), 0.1),
    // Router flags are recorded only when given, so earlier runs' configs are unchanged.
    ...(s('capacity-factor') !== undefined ? { capacityFactor: num('capacity-factor', s('capacity-factor'), 0) } : {}),
    ...(s('w-z-loss') !== undefined ? { wZLoss: num('w-z-loss', s('w-z-loss'), 0) } : {}),
    ...(s('aux-loss-weight') !== undefined ? { auxLossWeight: num('aux-loss-weight', s('aux-loss-weight'), 0.01) } : {}),
    ...(s('shared-experts') !== undefined ? { sharedExperts: int('shared-experts', s('shared-experts'), 0) } : {}),
    ...(s('score-function') !== undefined ? { scoreFunction: s('score-function')! } : {}),
    ...(s('bias-update-rate') !== undefined ? { biasUpdateRate: num('bias-update-rate', s('bias-update-rate'), 1e-3) } : {}),
    ...(s('seq-aux-loss-weight') !== undefined ? { seqAuxLossWeight: num('seq-aux-loss-weight', s('seq-aux-loss-weight'), 0) } : {}),
    dropout: num('dropout', s('dropout'), 0),
    steps: int('steps', s('steps'), 1000), batch: int('batch', s('batch'), 32), seqLen: int('seq-len', s('seq-len'), 16),
    lr: num('lr', s('lr'), 0.01), warmup: int('warmup', s('warmup'), 50), seed: int('seed', s('seed'), 0), backend,
    // Recorded for GPU runs only (CPU runs' config.json is as before).
    ...(backend === 'gpu' ? { gpuMode: gpuMode ?? 'headlessgl' } : {}),
    evalEvery: int('eval-every', s('eval-every'), 100),
    data: text ? (v['word-level'] ? `word:${text}` : text) : 'synthetic',
    ...(text ? {} : { domains: int('domains', s('domains'), 8) }),
    vocabSize: 0, opsPerToken: { excludingSoftmax: 0, total: 0 }, parameters: 0,
    ...overrides,
  };
  validateConfig(config);
  let corpus;
  try {
    corpus = makeCorpus(text ? { text, wordLevel: Boolean(v['word-level']) } : { domains: config.domains ?? 8 }, config.seed, config.seqLen);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  config.vocabSize = corpus.vocabSize;
  return config;
}

/** gpu.js modes the CLI offers (webgl2 needs a browser). */
const GPU_MODES = ['headlessgl', 'webgpu'] as const;

/**
 * Selects the backend and waits until it can run (webgpu: an adapter answered), or fails
 * with the backend's reason (never a silent CPU fallback).
 */
/**
 * --threads N: the CPU backend's worker threads (default one per core). Results are the same
 * for every N (bit for bit), so it is no part of a run's configuration and may change on resume.
 */
function threadsFlag(values: Values, backend: string): number | undefined {
  const v = values.threads as string | undefined;
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 1 || n > 64) throw new UsageError(`--threads must be an integer from 1 to 64, got '${v}'`);
  if (backend !== 'cpu') throw new UsageError(`--threads ${v}: threads are the CPU backend's; this run uses --backend ${backend}`);
  return n;
}

async function useBackend(config: Pick<RunConfig, 'backend' | 'gpuMode'>, threads?: number): Promise<void> {
  try {
    if (config.backend === 'gpu') {
      mt.setBackend('gpu', { mode: (config.gpuMode ?? 'headlessgl') as (typeof GPU_MODES)[number] });
      await mt.ready();
    } else {
      mt.setBackend('cpu', threads === undefined ? {} : { threads });
    }
  } catch (e) {
    mt.shutdownGpu(); // a device that started but is not usable must not keep the process alive
    throw new UsageError(`--backend ${config.backend}: ${(e as Error).message.replace(/^setBackend: /, '')}`);
  }
}

async function trainCommand(args: string[]): Promise<void> {
  const { values } = parse(args, { ...trainFlags, resume: { type: 'boolean' } });
  if (values.help) { console.log(HELP.train); return; }
  let config: RunConfig;
  const out = resolve((values.out as string | undefined) ?? join('runs', (values.model as string | undefined) ?? 'moe'));
  let lock: RunLock | undefined;
  try {
    if (values.resume) {
      // Claimed before the checkpoint is read: no other process may save it meanwhile.
      lock = claimRunDirectory(out, 'train --resume', { onStale: note });
      config = resumedConfig(out, values);
    } else {
      config = configFromFlags(values);
      checkMemory(config);
      lock = claimRunDirectory(out, 'train', { onStale: note });
      if (existsSync(join(out, CHECKPOINT))) {
        throw new UsageError(`${out} already holds a run; pass --resume to continue it or choose another --out`);
      }
    }
    await useBackend(config, threadsFlag(values, config.backend));
  } catch (e) {
    lock?.discard(); // nothing was written: leave no directory behind either
    throw e;
  }
  let stop = false;
  const onSigint = () => { stop = true; };
  process.on('SIGINT', onSigint);
  try {
    // --progress-json (used by compare): machine-readable progress on stdout instead of the bar.
    const json = Boolean(values['progress-json']);
    const result = await train(config, {
      out, resume: Boolean(values.resume), quiet: Boolean(values.quiet) || json, shouldStop: () => stop,
      ...(json ? { onStep: (r) => console.log(JSON.stringify({ type: 'progress', step: r.step, total: config.steps, loss: r.loss, tokensPerSec: r.tokensPerSec, elapsed: r.elapsed })) } : {}),
    });
    if (json) console.log(JSON.stringify({ type: 'done', val: result.loss }));
    else console.log(`done: ${config.label}, validation loss ${result.loss.toFixed(4)} nats/token (perplexity ${result.perplexity.toFixed(2)}); run directory ${out}`);
  } finally {
    process.off('SIGINT', onSigint);
    lock.discard();
    // A live Dawn (webgpu) device keeps Node running: free the device at the end of the run.
    if (config.backend === 'gpu') mt.shutdownGpu();
  }
}

/** A line on stderr that is not an error (a stale lock taken over, flags a resume changes). */
function note(message: string): void {
  console.error(`mixtape: ${message}`);
}

/** Settings a resume may change; every other flag must agree with the checkpoint. */
const RESUME_CHANGES = { steps: 'steps', evalEvery: 'eval-every', label: 'label', backend: 'backend', gpuMode: 'gpu-mode' } as const;
const RESUME_FIXED = ['model', 'experts', 'k', 'groups', 'checkpointEvery', 'modelSize', 'expertHidden', 'expert', 'gating', 'wImportance', 'wLoad', 'capacityFactor', 'wZLoss', 'auxLossWeight', 'sharedExperts', 'scoreFunction', 'biasUpdateRate', 'seqAuxLossWeight', 'dropout', 'batch', 'seqLen', 'lr', 'warmup', 'seed', 'data', 'domains'] as const;

/**
 * The configuration of `train --resume`: the checkpoint's, with the flags given. A flag that
 * would change the model, the data or the numbers of the run is refused; --steps,
 * --eval-every, --label, --backend and --gpu-mode may change, and a change is said in one line.
 */
function resumedConfig(out: string, values: Values): RunConfig {
  const ckpt = readCheckpoint(join(out, CHECKPOINT));
  const saved = ckpt.config;
  mt.dispose(ckpt.tensors);
  checkMemory(saved, "the checkpoint's ");
  const flags: Values = { ...flagsOf(saved), ...values };
  // --backend / --gpu-mode default to the checkpoint's.
  if (values['gpu-mode'] === undefined && flags.backend === 'gpu' && saved.gpuMode) flags['gpu-mode'] = saved.gpuMode;
  const explicit = configFromFlags(flags, {});
  for (const key of RESUME_FIXED) {
    if (JSON.stringify(explicit[key]) !== JSON.stringify(saved[key])) {
      // An absent expert is the paper's MLP expert (configs record only 'swiglu').
      const show = (v: unknown) => JSON.stringify(v === undefined && key === 'expert' ? 'mlp' : v);
      throw new UsageError(`the checkpoint in ${out} was trained with ${key} = ${show(saved[key])}, but the flags say ${show(explicit[key])} (a resume may change only --steps, --eval-every, --label, --backend and --gpu-mode)`);
    }
  }
  if (explicit.steps < ckpt.step) throw new UsageError(`--steps ${explicit.steps} is below the checkpoint's step ${ckpt.step} in ${out}`);
  const { gpuMode: _, ...rest } = saved;
  const config: RunConfig = {
    ...rest, steps: explicit.steps, evalEvery: explicit.evalEvery, label: explicit.label, backend: explicit.backend,
    ...(explicit.gpuMode ? { gpuMode: explicit.gpuMode } : {}),
  };
  const changed = Object.entries(RESUME_CHANGES)
    .filter(([key]) => JSON.stringify(config[key as keyof RunConfig]) !== JSON.stringify(saved[key as keyof RunConfig]))
    .map(([key, flag]) => `--${flag} ${String(config[key as keyof RunConfig] ?? '(none)')} (was ${String(saved[key as keyof RunConfig] ?? '(none)')})`);
  if (changed.length) note(`resuming ${out} at step ${ckpt.step} with ${changed.join(', ')}`);
  return config;
}

/** Flags that reproduce a saved config (so a resume needs only --out and --resume). */
function flagsOf(c: RunConfig): Values {
  const text = c.data === 'synthetic' ? undefined : c.data.replace(/^word:/, '');
  return {
    model: c.model, experts: String(c.experts), k: String(c.k), ...(c.groups ? { groups: String(c.groups) } : {}),
    ...(c.checkpointEvery ? { 'checkpoint-every': String(c.checkpointEvery) } : {}),
    d: String(c.modelSize), 'expert-hidden': String(c.expertHidden), ...(c.expert ? { expert: c.expert } : {}), gating: c.gating,
    'w-importance': String(c.wImportance), 'w-load': String(c.wLoad),
    ...(c.capacityFactor !== undefined ? { 'capacity-factor': String(c.capacityFactor) } : {}),
    ...(c.wZLoss !== undefined ? { 'w-z-loss': String(c.wZLoss) } : {}),
    ...(c.auxLossWeight !== undefined ? { 'aux-loss-weight': String(c.auxLossWeight) } : {}),
    ...(c.sharedExperts !== undefined ? { 'shared-experts': String(c.sharedExperts) } : {}),
    ...(c.scoreFunction !== undefined ? { 'score-function': c.scoreFunction } : {}),
    ...(c.biasUpdateRate !== undefined ? { 'bias-update-rate': String(c.biasUpdateRate) } : {}),
    ...(c.seqAuxLossWeight !== undefined ? { 'seq-aux-loss-weight': String(c.seqAuxLossWeight) } : {}),
    dropout: String(c.dropout), steps: String(c.steps), warmup: String(c.warmup),
    batch: String(c.batch), 'seq-len': String(c.seqLen), lr: String(c.lr), seed: String(c.seed), 'eval-every': String(c.evalEvery),
    backend: c.backend, label: c.label, ...(text ? { text, 'word-level': c.data.startsWith('word:') } : { domains: String(c.domains ?? 8) }),
  };
}

async function compareCommand(args: string[]): Promise<void> {
  const { values: given } = parse(args, { ...trainFlags, parallel: { type: 'string' }, 'no-unbalanced': { type: 'boolean' }, resume: { type: 'boolean' }, gatings: { type: 'string' }, 'fine-grained': { type: 'string' } });
  if (given.help) { console.log(HELP.compare); return; }
  const out = resolve((given.out as string | undefined) ?? join('runs', 'compare'));
  const resume = Boolean(given.resume);
  // Claimed first (it also checks that --out can be created and written); released at the end.
  const lock = claimRunDirectory(out, resume ? 'compare --resume' : 'compare', { onStale: note });
  try {
    let values = given;
    if (resume) values = resumedCompareFlags(out, given);
    else if (existsSync(join(out, 'compare.json'))) throw new UsageError(`${out} already holds a compare; pass --resume to continue it or choose another --out`);
    const experts = ((values.experts as string | undefined) ?? '16').split(',').map((e) => int('experts', e, 16));
    const gatings = values.gatings === undefined ? undefined : (values.gatings as string).split(',').map((g) => g.trim());
    if (gatings) {
      for (const g of gatings) if (!COMPARE_GATINGS.includes(g)) throw new UsageError(`--gatings: unknown or unsupported router '${g}' (expected a comma-separated list of ${COMPARE_GATINGS.join(', ')})`);
      if (new Set(gatings).size !== gatings.length) throw new UsageError(`--gatings lists a router twice: ${gatings.join(',')}`);
      if (experts.length !== 1) throw new UsageError('--gatings compares routers at one expert count: give one --experts');
      if (values.gating !== undefined) throw new UsageError('--gatings sets each run\'s --gating: do not give --gating too');
    }
    if (values['fine-grained'] !== undefined && !gatings?.includes('deepseek')) throw new UsageError('--fine-grained splits the deepseek run\'s experts: it needs deepseek in --gatings');
    const fineGrained = int('fine-grained', values['fine-grained'] as string | undefined, 1);
    if (fineGrained < 1) throw new UsageError(`--fine-grained must be a positive integer, got ${fineGrained}`);
    const deepseekFlags = { 'shared-experts': undefined, 'score-function': undefined, 'bias-update-rate': undefined, 'seq-aux-loss-weight': undefined };
    const ownLossFlags = { 'aux-loss-weight': undefined };
    const base = configFromFlags({ ...values, ...(gatings ? { ...deepseekFlags, ...ownLossFlags } : {}), experts: String(experts[0]) });
    if (gatings) {
      if (!gatings.includes('deepseek') && Object.keys(deepseekFlags).some((f) => values[f] !== undefined)) throw new UsageError('--shared-experts, --score-function, --bias-update-rate and --seq-aux-loss-weight need deepseek in --gatings');
      if (!gatings.includes('switch') && !gatings.includes('gshard') && values['aux-loss-weight'] !== undefined) throw new UsageError('--aux-loss-weight needs switch or gshard in --gatings');
      if (gatings.includes('deepseek')) base.sharedExperts = values['shared-experts'] === undefined ? undefined : int('shared-experts', values['shared-experts'] as string, 0);
      for (const g of gatings) {
        // Each run's own configuration, checked (and its memory estimated) before any run starts.
        const m = g === 'deepseek' ? fineGrained : 1;
        checkMemory(configFromFlags({
          ...values, ...(g === 'deepseek' ? {} : deepseekFlags), ...(g === 'switch' || g === 'gshard' ? {} : ownLossFlags),
          experts: String(experts[0]! * m), gating: g, k: String(g === 'switch' || g === 'hash' ? 1 : g === 'gshard' ? 2 : base.k * m),
        }));
      }
    }
    for (const E of experts) checkMemory({ ...base, experts: E });
    // The runs train in child processes: here only check that the backend can start.
    await useBackend(base, threadsFlag(values, base.backend));
    if (base.backend === 'gpu') mt.shutdownGpu();
    const report = await compare({
      base, experts, out, ...(values.parallel === undefined ? {} : { parallel: int('parallel', values.parallel as string, 2) }),
      unbalanced: !values['no-unbalanced'], quiet: Boolean(values.quiet), flags: values, resume, ...(gatings ? { gatings, fineGrained } : {}),
    });
    console.log(`report: ${report}`);
  } catch (e) {
    if (!resume && !existsSync(join(out, 'compare.json'))) lock.discard(); // nothing was written
    throw e;
  } finally {
    lock.release();
  }
}

/** Flags a compare --resume may give: where and how to run, and more steps. Others must be the saved ones. */
const COMPARE_RESUME_CHANGES = new Set(['out', 'resume', 'steps', 'parallel', 'quiet', 'debug', 'help', 'threads']);

/** The flags of the compare in `out` (from its compare.json), with the ones a resume may change. */
function resumedCompareFlags(out: string, given: Values): Values {
  const path = join(out, 'compare.json');
  if (!existsSync(path)) throw new UsageError(`${out} holds no compare to resume (no compare.json)`);
  let manifest: { flags?: unknown };
  try { manifest = JSON.parse(readFileSync(path, 'utf8')) as { flags?: unknown }; } catch { throw new UsageError(`${path} is not valid JSON`); }
  const saved = manifest.flags;
  if (typeof saved !== 'object' || saved === null || Array.isArray(saved) || !Object.values(saved).every((v) => typeof v === 'string' || typeof v === 'boolean')) {
    throw new UsageError(`${path} does not record the compare's flags (written by an older mixtape?): run the runs with mixtape train --out RUN_DIR --resume`);
  }
  const flags = saved as Values;
  for (const [key, v] of Object.entries(given)) {
    if (v === undefined || COMPARE_RESUME_CHANGES.has(key)) continue;
    if (flags[key] !== v) throw new UsageError(`the compare in ${out} was started with ${flags[key] === undefined ? `no --${key}` : `--${key} ${String(flags[key])}`}, but the flags say --${key} ${String(v)} (compare --resume may change only --steps, --parallel, --threads and --quiet)`);
  }
  return { ...flags, ...Object.fromEntries(Object.entries(given).filter(([k, v]) => v !== undefined && COMPARE_RESUME_CHANGES.has(k))) };
}

async function reportCommand(args: string[]): Promise<void> {
  const { values, positionals } = parse(args, { out: { type: 'string' } }, true);
  if (values.help) { console.log(HELP.report); return; }
  if (positionals.length !== 1) throw new UsageError('report needs exactly one RUN_DIR (mixtape report RUN_DIR)');
  const dir = resolve(positionals[0]!);
  const out = values.out as string | undefined;
  // Written into the run directory: claimed like every command that writes there.
  const lock = existsSync(dir) && (out === undefined || dirname(resolve(out)) === dir) ? claimRunDirectory(dir, 'report', { flag: 'RUN_DIR', onStale: note }) : undefined;
  try {
    console.log(`report: ${writeReport(dir, out)}`);
  } finally {
    lock?.release();
  }
}

async function gradcheck(args: string[]): Promise<void> {
  const { values } = parse(args, {
    experts: { type: 'string' }, k: { type: 'string' }, d: { type: 'string' }, hidden: { type: 'string' },
    batch: { type: 'string' }, noise: { type: 'string' }, seed: { type: 'string' },
    gating: { type: 'string' }, 'capacity-factor': { type: 'string' }, 'w-z-loss': { type: 'string' }, 'shared-experts': { type: 'string' },
  });
  if (values.help) { console.log(HELP.gradcheck); return; }
  const gating = (values.gating as string | undefined) ?? 'noisy-topk';
  if (!(mt.GATING_KINDS as readonly string[]).includes(gating)) throw new UsageError(`unknown --gating '${gating}' (expected ${mt.GATING_KINDS.join(', ')})`);
  const capacity = values['capacity-factor'] as string | undefined;
  const noise = (values.noise as string | undefined) ?? 'on';
  if (noise !== 'on' && noise !== 'off') throw new UsageError(`--noise must be on or off, got '${noise}'`);
  const ok = gradcheckCommand({
    experts: int('experts', values.experts as string | undefined, 4), k: int('k', values.k as string | undefined, 2),
    d: int('d', values.d as string | undefined, 3), hidden: int('hidden', values.hidden as string | undefined, 3),
    batch: int('batch', values.batch as string | undefined, 5), noise: noise === 'on', seed: int('seed', values.seed as string | undefined, 0),
    gating: gating as mt.GatingKind, ...(capacity !== undefined ? { capacityFactor: num('capacity-factor', capacity, 1) } : {}),
    wZLoss: num('w-z-loss', values['w-z-loss'] as string | undefined, 0), sharedExperts: int('shared-experts', values['shared-experts'] as string | undefined, 0),
  });
  if (!ok) process.exitCode = 1;
}

async function inspectCommand(args: string[]): Promise<void> {
  const { values, positionals } = parse(args, { batch: { type: 'string' }, text: { type: 'string' } }, true);
  if (values.help) { console.log(HELP.inspect); return; }
  if (positionals.length !== 1) throw new UsageError('inspect needs exactly one CHECKPOINT (mixtape inspect RUN_DIR/checkpoint.safetensors)');
  await inspect(resolve(positionals[0]!), int('batch', values.batch as string | undefined, 8), values.text as string | undefined);
}

async function lab(args: string[]): Promise<void> {
  const { values, positionals } = parse(args, { port: { type: 'string' } }, true);
  if (values.help) { console.log(HELP.lab); return; }
  if (positionals.length > 1) throw new UsageError('lab takes at most one RUN_DIR');
  const port = int('port', values.port as string | undefined, 0);
  if (port < 0 || port > 65535) throw new UsageError(`--port must be in 0..65535, got ${port}`);
  await labCommand(positionals[0] === undefined ? undefined : resolve(positionals[0]), port);
}

const commands: Record<string, (args: string[]) => Promise<void>> = {
  train: trainCommand, compare: compareCommand, report: reportCommand, gradcheck, inspect: inspectCommand, lab,
};

export async function main(argv: string[]): Promise<number> {
  const debug = argv.includes('--debug');
  const [command, ...rest] = argv;
  try {
    if (command === undefined || command === '--help' || command === '-h' || command === 'help') { console.log(HELP.main); return 0; }
    if (command === '--version') { console.log(VERSION); return 0; }
    const run = commands[command];
    if (!run) throw new UsageError(`unknown command '${command}' (expected ${Object.keys(commands).join(', ')}; see mixtape --help)`);
    await run(rest);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof Interrupted) { console.error(`mixtape: ${e.message}`); return 130; }
    const err = e as Error;
    console.error(`mixtape: ${String(err.message ?? err).split('\n')[0]}`);
    if (debug) console.error(err.stack);
    return e instanceof UsageError ? 2 : 1;
  }
}

