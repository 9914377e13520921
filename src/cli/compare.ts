// `mixtape compare`: the MoE model, its compute-matched dense model and (by default) the
// same MoE without balancing losses, trained on the same data with the same budget, two
// at a time in child processes; then one report over all of them.
//
// Ctrl-C stops every run: the running ones save their checkpoints (each child gets the
// SIGINT), the waiting ones do not start; `compare --resume` then continues each run from
// its checkpoint (or starts the ones that never ran) to its end.

import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type { CompareManifest, RunConfig } from '../report/schema.js';
import { formatDuration, formatRate } from './progress.js';
import { writeReport } from './report.js';
import { CHECKPOINT, Interrupted, UsageError } from './run.js';

export interface CompareOptions {
  base: RunConfig;
  experts: number[];
  out: string;
  /**
   * Runs trained at once (default: all of them, up to two per core). Each child process gets
   * the cores divided among the runs as its --threads unless --threads is given; results
   * are the same for any thread count, so this changes only the wall time.
   */
  parallel?: number;
  unbalanced: boolean;
  quiet: boolean;
  /** --gatings: one MoE per router (at the first expert count) instead of one per expert count. */
  gatings?: string[];
  /** The flags the user gave (passed on to every run). */
  flags: Record<string, string | boolean | undefined>;
  /** Continue the runs of an interrupted compare in `out` (each from its checkpoint). */
  resume?: boolean;
  /** --fine-grained M: the deepseek run splits each expert into M (M·E experts, M·k routed per token). */
  fineGrained?: number;
}

interface Plan { dir: string; label: string; flags: Record<string, string> }

/** The routers compare --gatings accepts, and the experts each runs per token. */
const DEEPSEEK_FLAGS = ['shared-experts', 'score-function', 'bias-update-rate', 'seq-aux-loss-weight'];
/** Flags of Switch and GShard only (their balancing loss α). */
const OWN_LOSS_FLAGS = ['aux-loss-weight'];
export const COMPARE_GATINGS = ['noisy-topk', 'switch', 'gshard', 'hash', 'expert-choice', 'deepseek'];
function expertsPerToken(gating: string, base: RunConfig, fineGrained: number): number {
  if (gating === 'switch' || gating === 'hash') return 1;
  if (gating === 'gshard') return 2;
  if (gating === 'expert-choice') return base.capacityFactor ?? base.k; // its capacity factor: experts per token on average
  if (gating === 'deepseek') return fineGrained * base.k + (base.sharedExperts ?? 0); // routed (fine-grained) plus always-on shared experts
  return base.k;
}

/**
 * Matched active compute: every router's experts get hidden size ⌈k·h / a⌉ (k, h: the base
 * --k and --expert-hidden; a: the router's experts per token, DeepSeek's shared experts and
 * fine-grained split included), so a·hidden ≈ k·h, the dense baseline's hidden size. The
 * gating matmuls (d·E, twice for noisy top-k) are not matched, and tokens dropped over
 * capacity do less work than planned.
 */
function routerPlans(o: CompareOptions, gatings: string[]): Plan[] {
  return gatings.map((g) => {
    // DeepSeekMoE's fine-grained segmentation: each expert split into m, m·k of them routed.
    const m = g === 'deepseek' ? o.fineGrained ?? 1 : 1, E = o.experts[0]! * m;
    const a = expertsPerToken(g, o.base, m), k = g === 'expert-choice' || g === 'noisy-topk' ? o.base.k : g === 'deepseek' ? m * o.base.k : a;
    const hidden = Math.max(1, Math.ceil((o.base.k * o.base.expertHidden) / a - 1e-9));
    return { dir: `router-${g}`, label: `${g} (E=${E}, ${a}×${hidden})`, flags: { model: 'moe', experts: String(E), gating: g, k: String(k), 'expert-hidden': String(hidden) } };
  });
}

function plans(o: CompareOptions): Plan[] {
  const out: Plan[] = [];
  if (o.gatings) {
    out.push(...routerPlans(o, o.gatings));
    out.push({ dir: 'dense', label: `dense (hidden ${o.base.k}×${o.base.expertHidden})`, flags: { model: 'dense' } });
    return out;
  }
  const name = o.base.model === 'rmoe' ? 'recurrent MoE' : 'MoE';
  for (const E of o.experts) {
    out.push({ dir: `moe-${E}`, label: `${name}-${E} (k=${o.base.k})`, flags: { model: o.base.model === 'dense' ? 'moe' : o.base.model, experts: String(E) } });
  }
  // A recurrent MoE's k experts cost k·4d·2d per token: the dense block of k × 4d matches it.
  const denseHidden = o.base.model === 'rmoe' ? 4 * o.base.modelSize : o.base.expertHidden;
  out.push({ dir: 'dense', label: `dense (hidden ${o.base.k}×${denseHidden})`, flags: { model: 'dense', ...(o.base.model === 'rmoe' ? { 'expert-hidden': String(denseHidden) } : {}) } });
  if (o.unbalanced) {
    const E = o.experts[o.experts.length - 1]!;
    out.push({ dir: `moe-${E}-no-balancing`, label: `${name}-${E}, no balancing losses`, flags: { model: o.base.model === 'dense' ? 'moe' : o.base.model, experts: String(E), 'w-importance': '0', 'w-load': '0' } });
  }
  return out;
}

/** Flags shared by every run (data, budget, sizes), from what the user typed. */
function sharedFlags(flags: CompareOptions['flags'], own: readonly string[] = []): string[] {
  const skip = new Set(['experts', 'model', 'out', 'parallel', 'no-unbalanced', 'label', 'quiet', 'help', 'debug', 'w-importance', 'w-load', 'resume', 'gatings', 'fine-grained', 'threads', ...own]);
  const args: string[] = [];
  for (const [k, v] of Object.entries(flags)) {
    if (skip.has(k) || v === undefined || v === false) continue;
    args.push(`--${k}`);
    if (v !== true) args.push(String(v));
  }
  return args;
}

interface Live { label: string; step: number; total: number; loss: number; tokensPerSec: number; elapsed: number; done: boolean; val?: number }

export async function compare(o: CompareOptions): Promise<string> {
  if (o.parallel !== undefined && !(o.parallel >= 1)) throw new UsageError(`--parallel must be a positive integer, got ${o.parallel}`);
  const runs = plans(o);
  // Several small runs sharing the cores finish sooner than the same runs two at a time
  // (the default 3 runs: 33 s against 39 s on 2 cores, measured 2026-12-03).
  const cores = availableParallelism();
  const parallel = Math.min(runs.length, o.parallel ?? Math.max(2, 2 * cores));
  const childThreads = o.flags.threads !== undefined ? String(o.flags.threads) : String(Math.max(1, Math.floor(cores / parallel)));
  if (!o.resume) {
    const flags = Object.fromEntries(Object.entries(o.flags).filter(([k, v]) => v !== undefined && !['out', 'resume', 'help', 'debug'].includes(k))) as Record<string, string | boolean>;
    const manifest: CompareManifest = { runs: runs.map((r) => r.dir), createdAt: new Date().toISOString(), note: `compare: ${runs.map((r) => r.label).join(', ')}`, flags };
    writeFileSync(join(o.out, 'compare.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  }
  const shared = sharedFlags(o.flags);
  // A router run sets its own gating, k and expert size: drop the user's copies of those.
  // DeepSeek's own flags go to the deepseek run only, --aux-loss-weight to switch and gshard.
  const sharedFor = (r: Plan) => (o.gatings ? sharedFlags(o.flags, [...Object.keys(r.flags), ...(r.flags.gating === 'deepseek' ? [] : DEEPSEEK_FLAGS),
    ...(r.flags.gating === 'switch' || r.flags.gating === 'gshard' ? [] : OWN_LOSS_FLAGS)]) : shared);
  const balance = [
    ...(o.flags['w-importance'] !== undefined ? ['--w-importance', String(o.flags['w-importance'])] : []),
    ...(o.flags['w-load'] !== undefined ? ['--w-load', String(o.flags['w-load'])] : []),
  ];
  const live: Live[] = runs.map((r) => ({ label: r.label, step: 0, total: o.base.steps, loss: NaN, tokensPerSec: 0, elapsed: 0, done: false }));
  const tty = Boolean(process.stderr.isTTY) && !o.quiet;
  let drawn = 0, lastDraw = 0;
  const draw = (force = false) => {
    if (o.quiet) return;
    const now = Date.now();
    if (!force && now - lastDraw < (tty ? 200 : 10_000)) return;
    lastDraw = now;
    const lines = live.map((l) => {
      const eta = l.step > 0 ? (l.elapsed / l.step) * (l.total - l.step) : NaN;
      const state = l.done ? `done, validation loss ${l.val?.toFixed(4)}` : l.step === 0 ? 'waiting' : `step ${l.step}/${l.total}  loss ${l.loss.toFixed(3)}  ${formatRate(l.tokensPerSec)} tok/s  ETA ${formatDuration(eta)}`;
      return `  ${l.label.padEnd(36)} ${state}`;
    });
    if (tty) process.stderr.write(`${drawn ? `\x1b[${drawn}A` : ''}${lines.map((l) => `\r\x1b[2K${l}`).join('\n')}\n`);
    else process.stderr.write(`${lines.join('\n')}\n`);
    drawn = lines.length;
  };
  if (!o.quiet) process.stderr.write(`mixtape compare: ${runs.length} runs of ${o.base.steps} steps, ${parallel} at a time, in ${o.out}\n`);
  let next = 0;
  const failures: string[] = [];
  // Ctrl-C: every running child saves its checkpoint and stops; no further run starts.
  let interrupted = false;
  const children = new Set<ReturnType<typeof spawn>>();
  const onSigint = () => {
    interrupted = true;
    for (const child of children) child.kill('SIGINT');
  };
  process.on('SIGINT', onSigint);
  const worker = async () => {
    while (next < runs.length && !interrupted) {
      const i = next++;
      const r = runs[i]!;
      const dir = join(o.out, r.dir);
      // A run with a checkpoint continues from it (with the checkpoint's settings; --steps may grow).
      const resumeRun = o.resume === true && existsSync(join(dir, CHECKPOINT));
      const threads = o.base.backend === 'cpu' ? ['--threads', childThreads] : [];
      const args = [...process.execArgv, process.argv[1]!, 'train', ...(resumeRun ? ['--resume', '--steps', String(o.base.steps)] : [...sharedFor(r), ...(r.flags['w-importance'] ? [] : balance),
        ...Object.entries(r.flags).flatMap(([k, v]) => [`--${k}`, v]), '--label', r.label]), ...threads, '--out', dir, '--progress-json'];
      await new Promise<void>((resolveRun) => {
        const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
        let buffer = '', errors = '';
        child.stdout.on('data', (chunk: Buffer) => {
          buffer += chunk.toString();
          let nl: number;
          while ((nl = buffer.indexOf('\n')) >= 0) {
            const line = buffer.slice(0, nl);
            buffer = buffer.slice(nl + 1);
            try {
              const p = JSON.parse(line) as Partial<Live> & { type?: string };
              if (p.type === 'progress') Object.assign(live[i]!, { step: p.step, total: p.total, loss: p.loss, tokensPerSec: p.tokensPerSec, elapsed: p.elapsed });
              if (p.type === 'done') Object.assign(live[i]!, { done: true, val: p.val });
            } catch { /* a plain line: ignore */ }
            draw();
          }
        });
        child.stderr.on('data', (chunk: Buffer) => { errors += chunk.toString(); });
        children.add(child);
        if (interrupted) child.kill('SIGINT');
        child.on('close', (c, signal) => {
          children.delete(child);
          // Stopped by Ctrl-C (130: it saved its checkpoint; killed by the signal before training began: nothing to save).
          const stopped = interrupted && (c === 130 || signal === 'SIGINT');
          if (c !== 0 && !stopped) failures.push(`${r.label}: ${errors.trim().split('\n').pop() ?? `exit code ${c}`}`);
          resolveRun();
        });
      });
    }
  };
  try {
    await Promise.all(Array.from({ length: parallel }, worker));
  } finally {
    process.off('SIGINT', onSigint);
  }
  draw(true);
  if (failures.length) throw new Error(`compare: ${failures.length} run(s) failed: ${failures.join('; ')}`);
  if (interrupted) {
    const stop = new Interrupted(0, o.out);
    stop.message = `interrupted; the runs saved their checkpoints in ${o.out} (continue with: mixtape compare --out ${o.out} --resume)`;
    throw stop;
  }
  return writeReport(o.out);
}
