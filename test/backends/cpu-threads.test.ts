// The SIMD matmul's worker threads: results are bit-identical for any thread count (chunks
// split the output, never the sum over k), the workers really take chunks, the pool
// shrinks and grows, and a Node process that used them still exits by itself.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SEQUENCE_MACS, THREAD_MACS, WasmMatmul } from '../../src/backends/cpu/wasm/wasm-matmul.js';
import { getBackend } from '../../src/tensor/engine.js';
import { mt } from '../helpers.js';

const engine = WasmMatmul.create();
if (typeof engine === 'string') throw new Error(`these tests need WebAssembly SIMD (Node 20 has it): ${engine}`);
const simd = engine;
const pool = simd.pool;

function values(n: number, seed: number, f64: boolean): Float32Array | Float64Array {
  let s = seed >>> 0;
  const out = f64 ? new Float64Array(n) : new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32) * 4 - 2;
  }
  return out;
}

/** Products big enough to be split (≥ THREAD_MACS), with ragged edges: every layout, both dtypes. */
const cases = [
  { m: 130, n: 197, k: 683 }, { m: 9, n: 1040, k: 1800 }, { m: 601, n: 12, k: 2400 }, { m: 256, n: 256, k: 256 },
];
for (const c of cases) assert.ok(c.m * c.n * c.k >= THREAD_MACS);

function product(c: { m: number; n: number; k: number }, tA: boolean, tB: boolean, f64: boolean): Float32Array | Float64Array {
  const a = values(c.m * c.k, c.m + c.k, f64), b = values(c.k * c.n, c.n * 3 + 1, f64);
  const out = f64 ? new Float64Array(c.m * c.n) : new Float32Array(c.m * c.n);
  const took = simd.matmul(a, tA ? [c.k, c.m] : [c.m, c.k], b, tB ? [c.n, c.k] : [c.k, c.n], out, [c.m, c.n], tA, tB);
  assert.ok(took);
  return out;
}

test('the thread pool is there (Node has worker_threads and shared memory)', { skip: pool === null ? `no pool: ${simd.status.threadsReason}` : false }, () => {
  assert.equal(simd.status.sharedMemory, true);
});

test('results are bit-identical for 1, 2 and 3 threads, and the workers really computed chunks', { skip: pool === null ? 'no pool' : false, timeout: 120_000 }, async () => {
  // Workers boot in ~100 ms (longer on a busy machine); until then the main thread takes
  // every chunk. Wait until worker 1 (and later 2) has taken some.
  const workersTook = async (threads: number) => {
    pool!.resize(threads);
    const start = Date.now();
    for (;;) {
      product(cases[3]!, false, false, false);
      const by = pool!.chunksByThread();
      if (by.slice(1).every((c) => c > 0)) return;
      if (Date.now() - start > 60_000) assert.fail(`workers took no chunk within 60 s: chunks by thread ${by}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  const reference = new Map<string, Float32Array | Float64Array>();
  for (const threads of [1, 2, 3]) {
    if (threads > 1) await workersTook(threads);
    else pool!.resize(1);
    for (const c of cases) {
      for (const f64 of [false, true]) {
        for (const tA of [false, true]) {
          for (const tB of [false, true]) {
            const key = `${c.m}x${c.k}x${c.n} tA=${tA} tB=${tB} ${f64 ? 'float64' : 'float32'}`;
            const out = product(c, tA, tB, f64);
            const ref = reference.get(key);
            if (ref === undefined) reference.set(key, out);
            else assert.ok(Buffer.from(out.buffer).equals(Buffer.from(ref.buffer)), `${key}: ${threads} threads differ from 1 thread`);
          }
        }
      }
    }
  }
  const by = pool!.chunksByThread();
  assert.equal(by.length, 3);
  assert.ok(by.every((c) => c > 0), `every thread computed chunks: ${by}`);
  // Back to one thread: the workers stay alive but asleep, and take no chunk.
  pool!.resize(1);
  const before = pool!.chunksByThread();
  product(cases[0]!, true, false, true);
  assert.equal(pool!.running, 2);
  const after = pool!.chunksByThread();
  assert.equal(after.length, 3);
  assert.deepEqual(after.slice(1), before.slice(1), 'sleeping workers took no chunk');
  pool!.resize(1);
});

test('through the engine: setBackend(cpu, { threads }) keeps tensors usable and the numbers identical', () => {
  mt.setBackend('cpu', { threads: 1 });
  const x = mt.randn([264, 256], { dtype: 'float32' }), w = mt.randn([300, 256], { dtype: 'float32' }); // 20M multiply-adds
  const one = x.matmul(w, { transposeB: true }).dataSync();
  mt.setBackend('cpu', { threads: 2 });
  assert.equal(mt.backendInfo().threads, pool === null ? 1 : 2);
  const jobs = () => mt.backendInfo() as unknown as { threadedJobs: number; threadedJobMs: number };
  const before = jobs();
  const two = x.matmul(w, { transposeB: true }).dataSync();
  assert.ok(Buffer.from(one.buffer).equals(Buffer.from(two.buffer)), 'x·Wᵀ on 1 and 2 threads');
  // backendInfo counts the products split over the threads and the time they took; one
  // below the threshold (here 32 × 256 × 300, 2.5M multiply-adds) runs on the calling thread and is not counted.
  const after = jobs();
  if (pool !== null) {
    assert.equal(after.threadedJobs - before.threadedJobs, 1, 'one threaded job');
    assert.ok(after.threadedJobMs > before.threadedJobMs, `its time counted: ${before.threadedJobMs} → ${after.threadedJobMs} ms`);
  } else {
    assert.equal(after.threadedJobs, 0, 'no pool: no threaded job');
  }
  const rows = x.slice([0, 0], [32, 256]);
  rows.matmul(w, { transposeB: true }).dispose();
  rows.dispose();
  assert.equal(jobs().threadedJobs, after.threadedJobs, 'a small product runs on the calling thread');
  mt.setBackend('cpu'); // options absent: the thread count stays
  assert.equal(mt.backendInfo().threads, pool === null ? 1 : 2);
});

test('an LSTM layer\'s per-step products split over the threads from SEQUENCE_MACS, with the bits of one thread', () => {
  // B = 32, H = 128: h·W_hhᵀ and ∂z·W_hh are 4·B·H² = 2.1M multiply-adds a step, and W_hh's
  // gradient over the L·B rows 10.5M, all below THREAD_MACS and from SEQUENCE_MACS. The same
  // pass with sequenceMacs = Infinity (those on the calling thread) runs 2·L + 1 threaded jobs
  // fewer, with the same bits.
  const L = 5, B = 32, H = 128;
  assert.ok(4 * B * H * H >= SEQUENCE_MACS && L * B * 4 * H * H < THREAD_MACS);
  const jobs = () => (mt.backendInfo() as unknown as { threadedJobs: number }).threadedJobs;
  const backendEngine = () => (getBackend() as unknown as { simd: { engine(): WasmMatmul | string } }).simd.engine() as WasmMatmul;
  for (const dtype of ['float32', 'float64'] as const) {
    mt.manualSeed(3);
    const lstm = new mt.LSTM({ inputSize: 64, hiddenSize: H, dtype });
    const x = mt.randn([L, B, 64], { dtype });
    const run = (threads: number, sequenceMacs: number) => {
      mt.setBackend('cpu', { threads });
      backendEngine().sequenceMacs = sequenceMacs;
      const before = jobs();
      const y = lstm.forward(x).output;
      y.mul(y).sum().backward();
      const bits = [y, ...lstm.parameters().map((p) => p.grad!)].map((t) => Buffer.from(t.dataSync().slice().buffer));
      lstm.zeroGrad();
      y.dispose();
      return { bits, jobs: jobs() - before };
    };
    const one = run(1, SEQUENCE_MACS), unsplit = run(2, Infinity), split = run(2, SEQUENCE_MACS);
    for (const [name, r] of [['2 threads', split], ['2 threads, step products unsplit', unsplit]] as const) {
      one.bits.forEach((b, i) => assert.ok(b.equals(r.bits[i]!), `${dtype}, ${name}: tensor ${i} (output, then each parameter's gradient) differs from 1 thread`));
    }
    assert.equal(one.jobs, 0, `${dtype}: one thread runs no threaded job`);
    if (pool !== null) assert.equal(split.jobs - unsplit.jobs, 2 * L + 1, `${dtype}: the ${L} forward and ${L} backward step products and W_hh's gradient, split`);
    mt.dispose([x, ...lstm.parameters()]);
  }
  backendEngine().sequenceMacs = SEQUENCE_MACS;
  mt.setBackend('cpu', { threads: 1 });
});

test('a Node process that ran threaded products exits by itself (the workers are unref\'d)', { timeout: 120_000 }, () => {
  const index = fileURLToPath(new URL('../../src/index.ts', import.meta.url));
  const code = `import(${JSON.stringify(index)}).then((mt) => {
    mt.setBackend('cpu', { threads: 2 });
    const a = mt.randn([256, 256]);
    for (let i = 0; i < 50; i++) a.matmul(a).dispose();
    console.log('threads', mt.backendInfo().threads);
  });`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', code], { encoding: 'utf8', timeout: 100_000 });
  assert.equal(r.signal, null, `the child was killed (${r.signal}): it did not exit; stderr ${r.stderr}`);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /threads 2/);
});

test('stop() retires the workers for good; products then run on the calling thread, same numbers', { skip: pool === null ? 'no pool' : false }, () => {
  const own = WasmMatmul.create() as WasmMatmul;
  own.pool!.resize(2);
  const a = values(256 * 256, 3, false), b = values(256 * 256, 4, false);
  const run = () => {
    const out = new Float32Array(256 * 256);
    assert.ok(own.matmul(a, [256, 256], b, [256, 256], out, [256, 256], false, false));
    return out;
  };
  const before = run();
  own.pool!.stop();
  assert.equal(own.pool!.running, 0);
  const chunks = own.pool!.chunksByThread()[0]!;
  const after = run();
  assert.ok(Buffer.from(after.buffer).equals(Buffer.from(before.buffer)));
  assert.ok(own.pool!.chunksByThread()[0]! > chunks, 'the calling thread computed the chunks');
});
