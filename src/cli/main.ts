// The `mixtape` command line: train, compare, report, gradcheck, inspect.
// Errors are one line on stderr and a non-zero exit code (a stack trace only with --debug).

import { parseArgs, type ParseArgsConfig } from 'node:util';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as mt from '../index.js';
import type { RunConfig } from '../report/schema.js';
import { CHECKPOINT, Interrupted, makeCorpus, readCheckpoint, train, UsageError, validateConfig } from './run.js';
import { compare } from './compare.js';
import { gradcheckCommand } from './gradcheck.js';
import { inspect } from './inspect.js';
import { writeReport } from './report.js';
import { labCommand } from './lab.js';

const VERSION = '0.1.0';

type Options = NonNullable<ParseArgsConfig['options']>;

const trainFlags: Options = {
  model: { type: 'string' }, experts: { type: 'string' }, k: { type: 'string' }, groups: { type: 'string' },
  d: { type: 'string' }, 'expert-hidden': { type: 'string' }, gating: { type: 'string' },
  'w-importance': { type: 'string' }, 'w-load': { type: 'string' }, dropout: { type: 'string' },
  steps: { type: 'string' }, warmup: { type: 'string' }, batch: { type: 'string' }, 'seq-len': { type: 'string' }, lr: { type: 'string' },
  seed: { type: 'string' }, 'eval-every': { type: 'string' }, backend: { type: 'string' }, 'gpu-mode': { type: 'string' },
  out: { type: 'string' }, text: { type: 'string' }, 'word-level': { type: 'boolean' }, domains: { type: 'string' },
  label: { type: 'string' }, quiet: { type: 'boolean' }, 'progress-json': { type: 'boolean' },
};
const common: Options = { help: { type: 'boolean', short: 'h' }, debug: { type: 'boolean' } };

const HELP: Record<string, string> = {
  main: `mixtape ${VERSION}: train and study Sparsely-Gated Mixture-of-Experts language models.

Usage: mixtape <command> [flags]   (mixtape <command> --help for its flags)

Commands:
  train      train one model (moe, dense or hmoe) on the built-in corpus or a text file
  compare    train an MoE model, its compute-matched dense model and an MoE without balancing losses, then write one report
  report     write report.html for a run or compare directory
  gradcheck  float64 gradient checks of the gating math and the MoE layer, worst error per parameter
  inspect    print a checkpoint's configuration and routing statistics on a batch
  lab        open the interactive MoE laboratory in the browser (train live on WebGPU, WebGL2 or the CPU)

Common flags: --out DIR, --steps N, --seed N, --backend cpu|gpu [--gpu-mode headlessgl|webgpu], --experts N, --k N, --text FILE, --debug`,
  train: `Usage: mixtape train [flags]

Model:
  --model moe|dense|hmoe   the paper's LM with an MoE, the compute-matched dense baseline, or a hierarchical MoE (default moe)
  --experts N              number of experts (default 16); --k N experts per token (default 2)
  --groups N               hmoe: number of groups (default 4)
  --d N                    embedding = LSTM = MoE size (default 32); --expert-hidden N (default 64)
  --gating noisy-topk|softmax|batchwise   (default noisy-topk)
  --w-importance X, --w-load X             balancing-loss weights (default 0.1 each, as the paper's LM)
  --dropout X              dropout after every layer but the softmax (default 0)
Training:
  --steps N (default 1000)  --batch N (32)  --seq-len N (16)  --lr X (0.01)  --warmup N (50)  --seed N (0)  --eval-every N (100)
                           Adam, gradient-norm clipping at 1, the paper's schedule: linear warm-up, then ∝ 1/√step
  --backend cpu|gpu        (default cpu)
  --gpu-mode headlessgl|webgpu   with --backend gpu: gpu.js's mode (default headlessgl: needs an X display, e.g.
                           xvfb-run -a; webgpu: Dawn, a Vulkan driver). A mode that cannot start stops with the reason
Data:
  --text FILE              train on a UTF-8 text file (character level; --word-level for words) instead of
                           the built-in synthetic multi-domain corpus; --domains N for the synthetic corpus (default 8)
Output:
  --out DIR                run directory: config.json, metrics.jsonl, checkpoint.safetensors (default runs/<model>)
  --resume                 continue the run in --out from its checkpoint, to exactly the numbers of an uninterrupted run
  --label NAME, --quiet
Ctrl-C saves a checkpoint and stops.`,
  compare: `Usage: mixtape compare [flags]

Trains, on the same data and budget: the MoE model, its compute-matched dense model
(hidden size k × expert hidden), and the same MoE without balancing losses; with
--experts 4,16,64 one MoE per expert count. Then writes report.html. Runs two at a time.
Flags: all of train's (--experts may be a comma-separated list), plus
  --out DIR (default runs/compare)  --parallel N (default 2)  --no-unbalanced (skip the run without balancing losses)`,
  report: `Usage: mixtape report RUN_DIR [--out FILE]

Writes a self-contained HTML report (SVG charts, no network access) for a run directory or a compare directory.`,
  gradcheck: `Usage: mixtape gradcheck [--experts N] [--k N] [--d N] [--hidden N] [--batch N] [--noise on|off] [--seed N]

Runs float64 gradient checks (central differences, eps 1e-6; PyTorch's atol 1e-5, rtol 1e-3) of the
noisy top-k gates, the smooth load, both CV² losses and the MoE layer, and prints the worst error per parameter.`,
  inspect: `Usage: mixtape inspect CHECKPOINT [--batch N]

Prints the configuration stored in a checkpoint and the routing statistics on one validation batch.`,
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
    experts: int('experts', s('experts'), 16), k: int('k', s('k'), 2),
    ...(model === 'hmoe' ? { groups: int('groups', s('groups'), 4) } : {}),
    modelSize: int('d', s('d'), 32), expertHidden: int('expert-hidden', s('expert-hidden'), 64),
    gating: s('gating') ?? 'noisy-topk',
    wImportance: num('w-importance', s('w-importance'), 0.1), wLoad: num('w-load', s('w-load'), 0.1),
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
async function useBackend(config: Pick<RunConfig, 'backend' | 'gpuMode'>): Promise<void> {
  try {
    if (config.backend === 'gpu') {
      mt.setBackend('gpu', { mode: (config.gpuMode ?? 'headlessgl') as (typeof GPU_MODES)[number] });
      await mt.ready();
    } else {
      mt.setBackend('cpu');
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
  if (values.resume) {
    const saved = readCheckpoint(join(out, CHECKPOINT)).config;
    // Flags given explicitly must agree with the checkpoint; --steps may grow the run, and
    // --backend / --gpu-mode may move it (they default to the checkpoint's).
    const flags: Values = { ...flagsOf(saved), ...values };
    if (values['gpu-mode'] === undefined && flags.backend === 'gpu' && saved.gpuMode) flags['gpu-mode'] = saved.gpuMode;
    const explicit = configFromFlags(flags, {});
    const { gpuMode: _, ...rest } = saved;
    config = { ...rest, steps: explicit.steps, backend: explicit.backend, ...(explicit.gpuMode ? { gpuMode: explicit.gpuMode } : {}) };
    for (const key of ['model', 'experts', 'k', 'modelSize', 'expertHidden', 'gating', 'wImportance', 'wLoad', 'batch', 'seqLen', 'lr', 'warmup', 'seed', 'data'] as const) {
      if (JSON.stringify(explicit[key]) !== JSON.stringify(saved[key])) {
        throw new UsageError(`the checkpoint in ${out} was trained with ${key} = ${JSON.stringify(saved[key])}, but the flags say ${JSON.stringify(explicit[key])}`);
      }
    }
  } else {
    config = configFromFlags(values);
    if (existsSync(join(out, CHECKPOINT))) {
      throw new UsageError(`${out} already holds a run; pass --resume to continue it or choose another --out`);
    }
  }
  await useBackend(config);
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
    // A live Dawn (webgpu) device keeps Node running: free the device at the end of the run.
    if (config.backend === 'gpu') mt.shutdownGpu();
  }
}

/** Flags that reproduce a saved config (so a resume needs only --out and --resume). */
function flagsOf(c: RunConfig): Values {
  const text = c.data === 'synthetic' ? undefined : c.data.replace(/^word:/, '');
  return {
    model: c.model, experts: String(c.experts), k: String(c.k), ...(c.groups ? { groups: String(c.groups) } : {}),
    d: String(c.modelSize), 'expert-hidden': String(c.expertHidden), gating: c.gating,
    'w-importance': String(c.wImportance), 'w-load': String(c.wLoad), dropout: String(c.dropout), steps: String(c.steps), warmup: String(c.warmup),
    batch: String(c.batch), 'seq-len': String(c.seqLen), lr: String(c.lr), seed: String(c.seed), 'eval-every': String(c.evalEvery),
    backend: c.backend, label: c.label, ...(text ? { text, 'word-level': c.data.startsWith('word:') } : { domains: String(c.domains ?? 8) }),
  };
}

async function compareCommand(args: string[]): Promise<void> {
  const { values } = parse(args, { ...trainFlags, parallel: { type: 'string' }, 'no-unbalanced': { type: 'boolean' } });
  if (values.help) { console.log(HELP.compare); return; }
  const experts = ((values.experts as string | undefined) ?? '16').split(',').map((e) => int('experts', e, 16));
  const base = configFromFlags({ ...values, experts: String(experts[0]) });
  // The runs train in child processes: here only check that the backend can start.
  await useBackend(base);
  if (base.backend === 'gpu') mt.shutdownGpu();
  const out = resolve((values.out as string | undefined) ?? join('runs', 'compare'));
  const report = await compare({
    base, experts, out, parallel: int('parallel', values.parallel as string | undefined, 2),
    unbalanced: !values['no-unbalanced'], quiet: Boolean(values.quiet), flags: values,
  });
  console.log(`report: ${report}`);
}

async function reportCommand(args: string[]): Promise<void> {
  const { values, positionals } = parse(args, { out: { type: 'string' } }, true);
  if (values.help) { console.log(HELP.report); return; }
  if (positionals.length !== 1) throw new UsageError('report needs exactly one RUN_DIR (mixtape report RUN_DIR)');
  console.log(`report: ${writeReport(resolve(positionals[0]!), values.out as string | undefined)}`);
}

async function gradcheck(args: string[]): Promise<void> {
  const { values } = parse(args, {
    experts: { type: 'string' }, k: { type: 'string' }, d: { type: 'string' }, hidden: { type: 'string' },
    batch: { type: 'string' }, noise: { type: 'string' }, seed: { type: 'string' },
  });
  if (values.help) { console.log(HELP.gradcheck); return; }
  const noise = (values.noise as string | undefined) ?? 'on';
  if (noise !== 'on' && noise !== 'off') throw new UsageError(`--noise must be on or off, got '${noise}'`);
  const ok = gradcheckCommand({
    experts: int('experts', values.experts as string | undefined, 4), k: int('k', values.k as string | undefined, 2),
    d: int('d', values.d as string | undefined, 3), hidden: int('hidden', values.hidden as string | undefined, 3),
    batch: int('batch', values.batch as string | undefined, 5), noise: noise === 'on', seed: int('seed', values.seed as string | undefined, 0),
  });
  if (!ok) process.exitCode = 1;
}

async function inspectCommand(args: string[]): Promise<void> {
  const { values, positionals } = parse(args, { batch: { type: 'string' } }, true);
  if (values.help) { console.log(HELP.inspect); return; }
  if (positionals.length !== 1) throw new UsageError('inspect needs exactly one CHECKPOINT (mixtape inspect RUN_DIR/checkpoint.safetensors)');
  inspect(resolve(positionals[0]!), int('batch', values.batch as string | undefined, 8));
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

