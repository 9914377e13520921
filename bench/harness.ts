// Shared benchmark harness: runs each case with benchmark.js for mixtape and, where there is
// a peer, for @tensorflow/tfjs-backend-cpu in the same process, prints one row per case and
// keeps the results for run-all's summary table.
//
// Every timed function must force its result (dataSync) and free what it made (mt.tidy /
// tf.tidy); the harness checks the live-tensor counts of both libraries after each case.

import { loadavg } from 'node:os';
import Benchmark from 'benchmark';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as mt from '../src/index.js';

export { mt, tf };

/** How a case's speed is shown: GFLOP/s from the flops of one call, or time per op. */
export type Metric =
  | { kind: 'gflops'; flops: number }
  | { kind: 'time'; unit: 'ms' | 'µs'; opsPerCall?: number };

export interface Case {
  name: string;
  metric: Metric;
  mixtape: () => void;
  /** The same work in tfjs-cpu; absent where tfjs has no peer (float64). */
  tfjs?: () => void;
  /** benchmark.js options for this case (maxTime, minSamples, …). */
  options?: Benchmark.Options;
}

export interface Suite {
  name: string;
  title: string;
  /** Builds the cases (and their inputs); called only when the suite is selected. */
  cases: () => Case[];
  /** Frees the inputs made by cases(). */
  teardown?: () => void;
}

export interface Measurement { hz: number; rme: number; samples: number }

export interface Result {
  suite: string;
  name: string;
  metric: Metric;
  mixtape: Measurement;
  tfjs: Measurement | null;
}

export const results: Result[] = [];

/** Defaults keep `npm run bench` within a few minutes on 2 cores; heavy cases lower them. */
export const defaultOptions: Benchmark.Options = { maxTime: 1, minSamples: 5, minTime: 0.05, delay: 0 };

let tfReady = false;
/** Selects tfjs's CPU backend, without its "install tfjs-node" banner. */
export async function initTfjs(): Promise<void> {
  if (tfReady) return;
  await tf.setBackend('cpu');
  const warn = console.warn;
  console.warn = () => {};
  try { tf.tidy(() => tf.zeros([1]).dataSync()); } finally { console.warn = warn; }
  tfReady = true;
}

/** Runs fn for about `ms` (at least once) so that the JIT has compiled it before timing. */
function warmUp(fn: () => void, ms = 200): void {
  const start = performance.now();
  do fn(); while (performance.now() - start < ms);
}

function measure(name: string, fn: () => void, options: Benchmark.Options | undefined): Measurement {
  warmUp(fn);
  const bench = new Benchmark(name, fn, { ...defaultOptions, ...options });
  bench.run(); // synchronous: async is off by default
  const error = (bench as unknown as { error?: unknown }).error;
  if (error) throw error instanceof Error ? error : new Error(String(error));
  return { hz: bench.hz, rme: bench.stats.rme, samples: bench.stats.sample.length };
}

/** The speed of one measurement in the case's unit, as a number. */
export function value(metric: Metric, m: Measurement): number {
  if (metric.kind === 'gflops') return (metric.flops * m.hz) / 1e9;
  const perOp = 1 / m.hz / (metric.opsPerCall ?? 1);
  return metric.unit === 'ms' ? perOp * 1e3 : perOp * 1e6;
}

export function unitOf(metric: Metric): string {
  return metric.kind === 'gflops' ? 'GFLOP/s' : `${metric.unit}/op`;
}

export function format(metric: Metric, m: Measurement | null): string {
  if (m === null) return '—';
  const v = value(metric, m);
  const digits = v >= 100 ? 0 : v >= 10 ? 1 : v >= 1 ? 2 : 3;
  return `${v.toFixed(digits)} ${unitOf(metric)}`;
}

/** mixtape speed / tfjs speed (> 1: mixtape is faster). */
export function ratio(r: Result): number | null {
  return r.tfjs === null ? null : r.mixtape.hz / r.tfjs.hz;
}

const pad = (s: string, n: number) => s.padEnd(n);
const lpad = (s: string, n: number) => s.padStart(n);

function liveCounts(): { mt: number; tf: number } {
  return { mt: mt.memory().liveHandles, tf: tf.memory().numTensors };
}

export async function runSuite(suite: Suite, filter?: string): Promise<void> {
  await initTfjs();
  // A filter selects cases with a matching word in their name ("512" is not "float64 512"'s "64").
  const cases = suite.cases().filter((c) => filter === undefined || c.name.split(' ').includes(filter) || (filter.includes(' ') && c.name.includes(filter)));
  console.log(`\n## ${suite.title}\n\n(1-minute load average at start: ${loadavg()[0]!.toFixed(2)})\n`);
  console.log(`${pad('case', 34)}${lpad('mixtape', 16)}${lpad('tfjs-cpu', 16)}${lpad('ratio', 9)}   ±rme mixtape / tfjs`);
  for (const c of cases) {
    const before = liveCounts();
    const mixtape = measure(`mixtape ${c.name}`, c.mixtape, c.options);
    const tfjs = c.tfjs ? measure(`tfjs ${c.name}`, c.tfjs, c.options) : null;
    const after = liveCounts();
    const result: Result = { suite: suite.name, name: c.name, metric: c.metric, mixtape, tfjs };
    results.push(result);
    const q = ratio(result);
    const rme = `±${mixtape.rme.toFixed(1)}%${tfjs ? ` / ±${tfjs.rme.toFixed(1)}%` : ''}`;
    console.log(`${pad(c.name, 34)}${lpad(format(c.metric, mixtape), 16)}${lpad(format(c.metric, tfjs), 16)}` +
      `${lpad(q === null ? '—' : `${q.toFixed(2)}×`, 9)}   ${rme}`);
    if (after.mt !== before.mt || after.tf !== before.tf) {
      console.log(`  ! live tensors changed: mixtape ${before.mt} → ${after.mt}, tfjs ${before.tf} → ${after.tf}`);
    }
  }
  suite.teardown?.();
  console.log(`\n(1-minute load average at end: ${loadavg()[0]!.toFixed(2)})`);
}
