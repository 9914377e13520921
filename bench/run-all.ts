// Runs the benchmark suites (all, or those named on the command line) and prints a summary
// in Markdown, ready for BENCHMARKS.md.
//
//   npm run bench                      every suite
//   npm run bench -- matmul reduce     only these suites
//   npm run bench -- matmul:512        only matmul cases with the word "512" in their name
//   npm run bench -- "matmul:float32 512"   or containing this phrase

import { execSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { elementwiseSuite } from './elementwise.bench.js';
import { format, ratio, results, runSuite, type Result, type Suite } from './harness.js';
import { lstmSuite } from './lstm.bench.js';
import { matmulSuite } from './matmul.bench.js';
import { MOE_EXPERTS, moeSuite } from './moe.bench.js';
import { runMoeStepBench } from './moe-step.bench.js';
import { runReleaseBench } from './release.bench.js';
import { overheadSuite } from './overhead.bench.js';
import { reduceSuite } from './reduce.bench.js';
import { runSimdMatmulBench } from './simd-matmul.bench.js';
import { runPeersBench } from './peers.bench.js';

const SUITES: Suite[] = [matmulSuite, elementwiseSuite, reduceSuite, overheadSuite, lstmSuite, moeSuite];

/** Suites that alternate their contenders themselves (not benchmark.js): name → runner. */
const ALTERNATING: Record<string, (filter?: string) => Promise<string[]>> = { simd: runSimdMatmulBench, peers: runPeersBench, moestep: runMoeStepBench, release: runReleaseBench };

function selection(args: string[]): { suite: Suite; filter?: string }[] {
  if (args.length === 0) return SUITES.map((suite) => ({ suite }));
  return args.filter((arg) => !(arg.split(':')[0]! in ALTERNATING)).map((arg) => {
    const [name, filter] = arg.split(':', 2) as [string, string | undefined];
    const suite = SUITES.find((s) => s.name === name);
    if (!suite) throw new Error(`bench: unknown suite '${name}' (expected one of ${[...SUITES.map((s) => s.name), ...Object.keys(ALTERNATING)].join(', ')})`);
    return { suite, filter };
  });
}

function shell(cmd: string): string {
  try { return execSync(cmd, { encoding: 'utf8' }).trim(); } catch { return '?'; }
}

const load = () => loadavg().map((l) => l.toFixed(2)).join(', ');

function machine(): string[] {
  return [
    `date: ${shell('date')}`,
    `cpu: ${cpus()[0]?.model ?? '?'} (nproc ${shell('nproc')})`,
    `node: ${process.version}, tfjs-core ${tfjsVersion()}`,
  ];
}

function tfjsVersion(): string {
  return shell(`node -p "require('@tensorflow/tfjs-core/package.json').version"`);
}

function find(suite: string, name: string): Result | undefined {
  return results.find((r) => r.suite === suite && r.name === name);
}

function targets(): string[] {
  const lines: string[] = [];
  const mm = find('matmul', 'float32 512');
  if (mm) {
    const q = ratio(mm)!;
    lines.push(`- float32 matmul 512×512 ≥ 3× tfjs-cpu: ${q.toFixed(2)}× (${format(mm.metric, mm.mixtape)}) — ${q >= 3 ? 'met' : 'NOT met'}`);
  }
  for (const r of results.filter((x) => x.suite === 'overhead')) {
    const q = ratio(r)!;
    lines.push(`- per-op overhead (${r.name}) no worse than tfjs-cpu: ${format(r.metric, r.mixtape)} vs ${format(r.metric, r.tfjs)}, ratio ${q.toFixed(2)}× — ${q >= 1 ? 'met' : 'NOT met'}`);
  }
  const lstm = find('lstm', 'forward + backward');
  if (lstm) {
    const q = ratio(lstm)!;
    lines.push(`- LSTM forward + backward ≥ 2× tfjs-cpu: ${q.toFixed(2)}× — ${q >= 2 ? 'met' : 'NOT met'}`);
  }
  // MoE: against the compute-matched dense block, and E = 256 against E = 4, same run.
  const ms = (r: Result | undefined) => (r ? 1000 / r.mixtape.hz : undefined);
  const dense = ms(results.find((r) => r.suite === 'moe' && r.name.startsWith('dense')));
  const moe = (E: number) => ms(find('moe', `MoE E=${E}`));
  if (dense !== undefined) {
    for (const E of MOE_EXPERTS.filter((e) => e <= 64)) {
      const t = moe(E);
      if (t !== undefined) lines.push(`- MoE E=${E} / dense ≤ 1.15: ${(t / dense).toFixed(3)} — ${t / dense <= 1.15 ? 'met' : 'NOT met'}`);
    }
  }
  const [e4, e256] = [moe(4), moe(256)];
  if (e4 !== undefined && e256 !== undefined) {
    lines.push(`- MoE time(E=256) / time(E=4) ≤ 1.3: ${(e256 / e4).toFixed(3)} — ${e256 / e4 <= 1.3 ? 'met' : 'NOT met'}`);
  }
  const alone = (what: string, E: number) => ms(find('moe', `${what} products alone E=${E}`));
  const [x4, x256, g4, g256] = [alone('expert', 4), alone('expert', 256), alone('gating', 4), alone('gating', 256)];
  if (e4 !== undefined && e256 !== undefined && x4 !== undefined && x256 !== undefined && g4 !== undefined && g256 !== undefined) {
    // If everything but the products cost at E = 256 what it costs at E = 4.
    const floor = (e4 + (x256 - x4) + (g256 - g4)) / e4;
    lines.push(`  floor from the products alone: experts ${x4.toFixed(0)} → ${x256.toFixed(0)} ms, gating ${g4.toFixed(0)} → ${g256.toFixed(0)} ms; with nothing else growing, E=256 / E=4 would be ${floor.toFixed(3)}`);
    lines.push(`  the step without its gating products (the growth the target allows): E=256 / E=4 = ${((e256 - g256) / (e4 - g4)).toFixed(3)}`);
  }
  return lines;
}

async function main(): Promise<void> {
  const selected = selection(process.argv.slice(2));
  const loadBefore = load();
  console.log(`# mixtape benchmarks\n\n${machine().join('\n')}\nload average before (1, 5, 15 min): ${loadBefore}`);
  const started = performance.now();
  for (const { suite, filter } of selected) await runSuite(suite, filter);
  const args = process.argv.slice(2);
  const alternatingTargets: string[] = [];
  for (const [name, runner] of Object.entries(ALTERNATING)) {
    // Each occurrence runs (`moestep:1 moestep:2`: one thread, then two), in the order given.
    const given = args.filter((a) => a.split(':')[0] === name);
    for (const arg of args.length === 0 ? [undefined] : given) alternatingTargets.push(...await runner(arg?.split(':', 2)[1]));
  }
  const seconds = (performance.now() - started) / 1e3;

  console.log('\n## Summary (Markdown)');
  // The table holds the benchmark.js suites' results; the alternating suites print their own.
  if (results.length > 0) {
    console.log('\n| suite | case | mixtape | tfjs-cpu | ratio (mixtape/tfjs) |');
    console.log('|---|---|---:|---:|---:|');
  }
  for (const r of results) {
    const q = ratio(r);
    console.log(`| ${r.suite} | ${r.name} | ${format(r.metric, r.mixtape)} | ${format(r.metric, r.tfjs)} | ${q === null ? '—' : `${q.toFixed(2)}×`} |`);
  }
  const t = [...targets(), ...alternatingTargets];
  if (t.length > 0) console.log(`\nTargets:\n${t.join('\n')}`);
  console.log(`\nload average before: ${loadBefore}; after: ${load()}; total ${seconds.toFixed(0)} s`);
}

await main();
