// mixtape against the engines a user would pick instead, on the same machine and in one
// sitting (`npm run bench -- peers`): the LSTM and per-op-overhead targets of the SIMD/threads
// issue. Contenders alternate round by round (A, B, C, A, B, C, …) and medians are taken:
//
//   mixtape on 1 thread, and on all threads (setBackend('cpu', { threads }))
//   tfjs-backend-wasm (XNNPACK, SIMD; one thread: its multithreaded build does not run in Node)
//   PyTorch, one thread (bench/torch_peers.py, Debian's python3-torch; a child process that
//   runs one workload per line it is sent, so its runs alternate with the others')
//
// LSTM: batch 32, 35 steps, 256 → 256, forward + backward, every weight gradient read
// (tfjs: the same cell in tfjs ops, gradients by tf.grads, bench/tfjs-lstm.ts as in
// bench/lstm.bench.ts). Overhead: 1000 chained adds of [4] tensors from a leaf that requires
// grad, then backward.

import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { loadavg } from 'node:os';
import { createInterface } from 'node:readline';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import * as mt from '../src/index.js';
import { tfjsLstm } from './tfjs-lstm.js';
import { median } from './stats.js';

/** The PyTorch child: send a workload name, get its milliseconds. */
class TorchPeer {
  private readonly lines: AsyncIterator<string>;
  private constructor(private readonly child: ChildProcessWithoutNullStreams) {
    this.lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  }
  static async start(): Promise<{ peer: TorchPeer; version: string } | { reason: string }> {
    const python = process.env.MIXTAPE_PYTHON ?? '/usr/bin/python3';
    const child = spawn(python, [new URL('../../bench/torch_peers.py', import.meta.url).pathname], { stdio: 'pipe' });
    let stderr = '';
    child.stderr.on('data', (d) => { stderr += String(d); });
    const failed = new Promise<{ reason: string }>((resolve) => child.on('error', (e) => resolve({ reason: `${python}: ${e.message}` })));
    const peer = new TorchPeer(child);
    const closed = new Promise((resolve) => child.on('close', resolve));
    // The usual reason is a machine without PyTorch: say how to get the one the targets name.
    const hint = () => (/No module named 'torch'/.test(stderr) ? ' (Debian/Ubuntu: apt-get install python3-torch libopenblas0-pthread; without OpenBLAS\'s pthread build PyTorch runs reference BLAS)' : '');
    const first = peer.lines.next().then(async (r) => {
      if (!r.done) return { peer, version: r.value };
      await closed; // all of stderr read
      return { reason: `${python} bench/torch_peers.py exited: ${stderr.trim().split('\n').pop()}${hint()}` };
    });
    return Promise.race([first, failed]);
  }
  async run(name: string): Promise<number> {
    this.child.stdin.write(`${name}\n`);
    const r = await this.lines.next();
    if (r.done) throw new Error(`PyTorch peer exited during ${name}`);
    return Number(r.value);
  }
  stop(): void { this.child.stdin.end(); }
}

interface Contender { name: string; run: () => void | Promise<number> }

/**
 * ms per run, per contender, over `rounds` alternating rounds (a contender may time itself),
 * after `warmup` untimed rounds (JIT, wasm tier-up, caches).
 */
async function alternate(contenders: Contender[], rounds: number, warmup = 1): Promise<Map<string, number[]>> {
  for (let r = 0; r < warmup; r++) for (const c of contenders) await c.run();
  const times = new Map(contenders.map((c) => [c.name, [] as number[]]));
  for (let r = 0; r < rounds; r++) {
    for (const c of contenders) {
      const t0 = performance.now();
      const own = await c.run();
      times.get(c.name)!.push(typeof own === 'number' ? own : performance.now() - t0);
    }
  }
  return times;
}

function lstmContenders(threads: number, torch: TorchPeer | null): { contenders: Contender[]; dispose: () => void } {
  const B = 32, T = 35, I = 256, H = 256;
  mt.manualSeed(0);
  const lstm = new mt.LSTM({ inputSize: I, hiddenSize: H });
  const x = mt.randn([T, B, I]);
  const weights = lstm.parameters();
  const mixtape = (t: number) => () => {
    mt.setBackend('cpu', { threads: t });
    mt.tidy(() => {
      lstm.forward(x).output.sum().backward();
      for (const w of weights) w.grad!.dataSync();
      lstm.zeroGrad();
    });
  };
  const peer = tfjsLstm(weights, x);
  const contenders: Contender[] = [
    { name: 'mixtape 1T', run: mixtape(1) },
    { name: `mixtape ${threads}T`, run: mixtape(threads) },
    { name: 'tfjs-wasm', run: peer.run },
  ];
  if (torch) contenders.push({ name: 'PyTorch 1T', run: () => torch.run('lstm') });
  return { contenders, dispose: () => { mt.dispose([x, ...weights]); peer.dispose(); } };
}

function overheadContenders(torch: TorchPeer | null): { contenders: Contender[]; dispose: () => void } {
  const leaf = mt.tensor([1, 2, 3, 4], { requiresGrad: true }), step = mt.tensor([0.5, -0.25, 0.125, 1]);
  const contenders: Contender[] = [{
    name: 'mixtape', run: () => {
      leaf.grad = null;
      mt.tidy(() => {
        let y = leaf;
        for (let i = 0; i < 1000; i++) y = y.add(step);
        y.sum().backward();
      });
      leaf.grad!.dataSync();
    },
  }];
  if (torch) contenders.push({ name: 'PyTorch', run: () => torch.run('overhead') });
  return { contenders, dispose: () => { leaf.grad?.dispose(); mt.dispose([leaf, step]); } };
}

export async function runPeersBench(): Promise<string[]> {
  await tf.setBackend('wasm');
  mt.setBackend('cpu');
  const threads = mt.backendInfo().threads as number;
  const started = await TorchPeer.start();
  const torch = 'peer' in started ? started.peer : null;
  console.log(`\n## mixtape against tfjs-wasm and PyTorch, alternating in one sitting (mixtape all threads = ${threads})\n`);
  console.log(torch ? `PyTorch peer: ${(started as { version: string }).version} (version, threads, mkldnn)` : `PyTorch peer skipped: ${(started as { reason: string }).reason}`);
  console.log(`(1-minute load average at start: ${loadavg()[0]!.toFixed(2)})\n`);
  const lines: string[] = [];
  const rounds = Number(process.env.MIXTAPE_ROUNDS ?? 7);

  const lstm = lstmContenders(threads, torch);
  const lt = await alternate(lstm.contenders, rounds);
  lstm.dispose();
  const ratio = (times: Map<string, number[]>, fast: string, slow: string) => median(times.get(fast)!.map((t, i) => times.get(slow)![i]! / t));
  console.log(`LSTM B32 T35 256→256 fwd+bwd: ${[...lt].map(([k, v]) => `${k} ${median(v).toFixed(1)} ms`).join('; ')}`);
  const best = ratio(lt, `mixtape ${threads}T`, 'mixtape 1T') >= 1 ? `mixtape ${threads}T` : 'mixtape 1T';
  const vsWasm = ratio(lt, best, 'tfjs-wasm');
  lines.push(`- LSTM forward + backward ≥ 10× tfjs-wasm: ${vsWasm.toFixed(1)}× (${best}) — ${vsWasm >= 10 ? 'met' : 'NOT met'}`);
  if (torch) {
    const vsTorch = 1 / ratio(lt, best, 'PyTorch 1T'); // time(mixtape) / time(PyTorch)
    lines.push(`- LSTM forward + backward within 3× of PyTorch's one-thread nn.LSTM: ${vsTorch.toFixed(2)}× its time (${best}) — ${vsTorch <= 3 ? 'met' : 'NOT met'}`);
  }
  lines.push(`  LSTM: ${threads} threads / 1 thread speed ${ratio(lt, `mixtape ${threads}T`, 'mixtape 1T').toFixed(2)}×`);

  const over = overheadContenders(torch);
  // 40 rounds of warm-up: mixtape's chain of 1000 adds takes 20–30 rounds (of 1–10 ms) to reach
  // V8's optimized tiers (per add 2–11 µs in the first ten, 0.8–1.1 from the thirtieth on, in
  // three runs of 120 rounds); one warm-up round left the median of 21 to those rounds.
  const ot = await alternate(over.contenders, rounds * 3, 40);
  over.dispose();
  console.log(`overhead, 1000 adds + backward: ${[...ot].map(([k, v]) => `${k} ${median(v).toFixed(2)} µs per add`).join('; ')}`);
  if (torch) {
    const q = ratio(ot, 'mixtape', 'PyTorch');
    lines.push(`- per-op overhead (1000 adds with autograd, forward + backward) ahead of PyTorch's: mixtape ${q.toFixed(2)}× PyTorch's speed — ${q >= 1 ? 'met' : 'NOT met'}`);
  }
  torch?.stop();
  await tf.setBackend('cpu');
  console.log(`\nTargets (peers):\n${lines.join('\n')}\n\nload average after: ${loadavg().map((l) => l.toFixed(2)).join(', ')}`);
  return lines;
}
