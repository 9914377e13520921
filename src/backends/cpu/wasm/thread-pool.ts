// Worker threads over one shared WebAssembly.Memory, for the SIMD kernels.
//
// Every worker instantiates the same compiled module over the same memory and runs its
// `worker` export forever: poll the job sequence word for a while, then sleep on it
// (memory.atomic.wait32). The main thread posts a job by writing its arguments into the
// control block, bumping the sequence word and notifying; then it works on the job itself
// and spins until every chunk is finished. Measured (notes/wasm-simd.md): an Atomics round
// trip is 0.6–1.6 µs against 39 µs for postMessage, and dynamic chunks (a shared counter)
// beat a static split by up to 1.2× because the two vCPUs of this machine often run at
// different speeds.
//
// The claim protocol (gemm-module.ts, `work`): the claim word holds (generation << 16) |
// next chunk, generation = the job's sequence number & 0x7fff. A thread claims with a
// compare-exchange that fails if the word changed since it read it, so a worker that wakes
// late for an old job can never take a chunk of a newer one; and after a job's last chunk
// the main thread writes CLOSED into the claim word before it writes the next job's
// arguments, so a late worker never reads half-written arguments. Chunks split the output
// by columns (and rows), never the sum over k, so every element is summed in the same
// order whichever thread computes it: results are bit-identical for any thread count.
//
// Node: node:worker_threads, each worker unref'd so a process exits while they sleep.
// Browsers: Web Workers from a Blob; shared memory needs a cross-origin-isolated page.

import { CLOSED, CTRL, MAX_THREADS } from './gemm-module.js';
import type { WasmMemory, WasmModule } from './wasm-api.js';
/**
 * Polls of the sequence word before a worker sleeps (a few µs). Waking a sleeping worker
 * costs 2–7 µs, small against a product big enough to be split; polling longer steals the
 * core from the main thread when the machine runs more threads than it has cores.
 */
const SPIN = 2000;
/** Polls of the finished count before the main thread sleeps on it (where it may block). */
const MAIN_SPIN = 2000;

interface WorkerHandle { stop(): void }

type NodeWorkerThreads = typeof import('node:worker_threads');

// Plain JavaScript run by each worker: it only instantiates the module and enters its loop
// (the loop itself is WebAssembly, emitted by gemm-module.ts). The bare 'worker_threads'
// keeps the browser bundle free of any "require('node:…" text (test/browser checks it).
// The math module first: its `chunk` is the gemm module's import for a job's kernel pieces.
const NODE_WORKER = `
const { workerData } = require('worker_threads');
const { module, math, memory, thread } = workerData;
const chunk = new WebAssembly.Instance(math, { env: { memory } }).exports.chunk;
new WebAssembly.Instance(module, { env: { memory, chunk } }).exports.worker(thread);
`;
const WEB_WORKER = `
onmessage = (e) => {
  const { module, math, memory, thread } = e.data;
  const chunk = new WebAssembly.Instance(math, { env: { memory } }).exports.chunk;
  new WebAssembly.Instance(module, { env: { memory, chunk } }).exports.worker(thread);
  close();
};
`;

function nodeWorkerThreads(): NodeWorkerThreads | null {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  return (proc?.getBuiltinModule?.('node:worker_threads') as NodeWorkerThreads | undefined) ?? null;
}

/** How to start a worker here, or why threads cannot run (null → reason). */
export function workerSupport(): { start: (module: WasmModule, math: WasmModule, memory: WasmMemory, thread: number) => WorkerHandle } | string {
  const wt = nodeWorkerThreads();
  if (wt) {
    return {
      start: (module, math, memory, thread) => {
        const w = new wt.Worker(NODE_WORKER, { eval: true, workerData: { module, math, memory, thread } });
        w.unref();
        return { stop: () => void w.terminate() };
      },
    };
  }
  const g = globalThis as { Worker?: new (url: string) => { postMessage(m: unknown): void; terminate(): void }; Blob?: typeof Blob; URL?: typeof URL };
  if (g.Worker && g.Blob && g.URL) {
    const url = g.URL.createObjectURL(new g.Blob([WEB_WORKER], { type: 'text/javascript' }));
    return {
      start: (module, math, memory, thread) => {
        const w = new g.Worker!(url);
        w.postMessage({ module, math, memory, thread });
        return { stop: () => w.terminate() };
      },
    };
  }
  return 'no node:worker_threads and no Web Worker here';
}

/** The number of cores (Node: os.availableParallelism; browsers: navigator.hardwareConcurrency). */
export function coreCount(): number {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const os = proc?.getBuiltinModule?.('node:os') as typeof import('node:os') | undefined;
  if (os?.availableParallelism) return os.availableParallelism();
  const nav = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator;
  return Math.max(1, nav?.hardwareConcurrency ?? 1);
}

/**
 * The workers of a thread count. Thread 0 is the caller (the main thread); workers are
 * threads 1 … threads-1, started on the first job that uses them.
 */
export class ThreadPool {
  private readonly workers: WorkerHandle[] = [];
  private seq = 0;
  private threadCount = 1;
  private readonly canBlock: boolean;
  private stopped = false;
  /** Jobs run through run() (products, and pieces of math-module kernels), and the milliseconds the calling thread spent in them (its own chunks and the wait for the workers' last ones). */
  jobs = 0;
  jobMs = 0;
  /** Jobs posted by runAsync: left running while the calling thread went on. */
  jobsLeftRunning = 0;

  constructor(
    private readonly module: WasmModule,
    /** The math module (math-module.ts), whose `chunk` each worker passes the gemm module. */
    private readonly math: WasmModule,
    private readonly memory: WasmMemory,
    private readonly starter: ReturnType<typeof workerSupport> & object,
    private readonly work: (generation: number, thread: number) => void,
  ) {
    const ctrl = this.ctrl();
    // A browser's main thread may not block in Atomics.wait (it throws); Node's may.
    try {
      Atomics.wait(ctrl, CTRL.spin, -1, 0);
      this.canBlock = true;
    } catch {
      this.canBlock = false;
    }
    Atomics.store(ctrl, CTRL.spin, SPIN);
    Atomics.store(ctrl, CTRL.active, 1);
    Atomics.store(ctrl, CTRL.alive, MAX_THREADS);
  }

  get threads(): number { return this.threadCount; }

  /** Workers started (they start on the first job that wants them, and sleep when not in use). */
  get running(): number { return this.workers.length; }

  private ctrl(): Int32Array { return new Int32Array(this.memory.buffer, 0, CTRL.chunksBy + MAX_THREADS); }

  /**
   * Sets the thread count a job uses. Workers beyond it stay alive, asleep (they wake on
   * each job only to sleep again), so that growing back costs no new worker (~100 ms).
   */
  resize(threads: number): void {
    if (!Number.isInteger(threads) || threads < 1 || threads > MAX_THREADS) {
      throw new Error(`setBackend('cpu', { threads }): threads must be an integer from 1 to ${MAX_THREADS}, got ${threads}`);
    }
    this.threadCount = threads;
    Atomics.store(this.ctrl(), CTRL.active, threads);
  }

  /**
   * Retires every worker, for good: each leaves its loop at its next wake-up (an empty job
   * wakes them now) and never claims another chunk, so its thread ends without losing
   * work. Later jobs run on the calling thread alone.
   */
  stop(): void {
    this.join();
    this.stopped = true;
    Atomics.store(this.ctrl(), CTRL.alive, 1);
    this.post(0);
    for (const w of this.workers.splice(0)) w.stop();
  }

  /** Starts the missing workers (each takes ~100 ms to boot; jobs meanwhile run without it). */
  private ensureWorkers(): void {
    while (!this.stopped && this.workers.length < this.threadCount - 1) {
      this.workers.push(this.starter.start(this.module, this.math, this.memory, this.workers.length + 1));
    }
  }

  /** Chunks each thread (index: 0 the caller, then every worker started) has computed so far. */
  chunksByThread(): number[] {
    const ctrl = this.ctrl();
    return Array.from({ length: Math.max(this.threadCount, this.workers.length + 1) }, (_, t) => Atomics.load(ctrl, CTRL.chunksBy + t));
  }

  /**
   * Runs a job of `total` chunks whose arguments the caller has written into the control
   * block (`write`, called while the claim word is closed). Returns when all are finished.
   * `beside`, when given, runs on this thread once the job is posted, before it takes chunks:
   * work that must not wait for the job nor touch what it writes (the workers take chunks meanwhile).
   */
  run(total: number, write: (ctrl: Int32Array) => void, beside?: () => void): void {
    this.join();
    if (total >= CLOSED) throw new Error(`thread pool: a job of ${total} chunks is more than the claim word holds`);
    const start = performance.now();
    this.ensureWorkers();
    const ctrl = this.ctrl();
    write(ctrl);
    const generation = this.post(total);
    beside?.();
    this.finish(generation, total);
    this.jobs++;
    this.jobMs += performance.now() - start;
  }

  /** Whether a job posted by runAsync is still to be joined. */
  get busy(): boolean { return this.pending !== null; }

  /**
   * Posts a job as run() does but returns at once: the workers take its chunks while the
   * calling thread goes on with other work, and join() (which run() and runAsync() call
   * first) takes the chunks left and waits for the rest; then `done` runs. Until then the
   * caller must not read the job's results nor free or overwrite its operands. The same
   * chunks as run(), whichever thread takes them: the same bits.
   */
  runAsync(total: number, write: (ctrl: Int32Array) => void, done: () => void): void {
    this.join();
    if (total >= CLOSED) throw new Error(`thread pool: a job of ${total} chunks is more than the claim word holds`);
    const start = performance.now();
    this.ensureWorkers();
    write(this.ctrl());
    this.pending = { generation: this.post(total), total, done };
    this.jobsLeftRunning++;
    this.jobMs += performance.now() - start;
  }

  /** Finishes the job runAsync posted, if any: this thread takes the chunks left, waits for the workers' last ones, then runs its `done`. */
  join(): void {
    const job = this.pending;
    if (job === null) return;
    this.pending = null;
    const start = performance.now();
    this.finish(job.generation, job.total);
    this.jobs++;
    this.jobMs += performance.now() - start;
    job.done();
  }

  private pending: { generation: number; total: number; done: () => void } | null = null;

  /** Takes chunks of the posted job until none is left, waits for every one to be finished, and closes the claim word. */
  private finish(generation: number, total: number): void {
    const ctrl = this.ctrl();
    this.work(generation, 0);
    // The workers' last chunks: poll, then sleep until the last one notifies (a worker that
    // was descheduled holding a chunk then gets this core instead of a spinning main thread).
    for (let spins = 0, done = Atomics.load(ctrl, CTRL.finished); done < total; done = Atomics.load(ctrl, CTRL.finished)) {
      if (++spins > MAIN_SPIN && this.canBlock) Atomics.wait(ctrl, CTRL.finished, done, 1);
    }
    Atomics.store(ctrl, CTRL.claim, (generation << 16) | CLOSED);
  }

  /** Publishes a job (arguments already written) and wakes the workers; returns its generation. */
  private post(total: number): number {
    const ctrl = this.ctrl();
    this.seq = (this.seq + 1) | 0;
    const generation = this.seq & 0x7fff;
    Atomics.store(ctrl, CTRL.finished, 0);
    Atomics.store(ctrl, CTRL.total, total);
    Atomics.store(ctrl, CTRL.claim, generation << 16);
    Atomics.store(ctrl, CTRL.seq, this.seq);
    Atomics.notify(ctrl, CTRL.seq);
    return generation;
  }
}
