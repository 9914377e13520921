// The lab's engine side: what the page can ask of the current session, as plain functions
// of structured-cloneable values. Every backend runs them in a Web Worker (src/lab/worker.ts),
// so training never blocks the page: the CPU backend, WebGPU, and WebGL2 on the
// OffscreenCanvas that gpu.js makes in a worker.

import * as mt from '../index.js';
import { gatingK, gradcheckRows, type GradcheckConfig, type GradcheckRow } from '../cli/gradcheck.js';
import { checkSettings, LabSession, sessionFromCheckpoint, startBackend, textFromBytes, webgpuProblem, type LabBackend, type LabSettings, type RoutedToken, type StepRecord } from './session.js';

/** What the page shows about a built model. */
export interface Summary {
  backend: LabBackend;
  info: mt.BackendInfo;
  corpus: string;
  vocabSize: number;
  experts: number;
  domains: number | null;
  floors: { knownDomain: number; bayes: number; pooledBigram: number; uniform: number } | null;
  parameters: number;
  step: number;
  settings: LabSettings;
  /** Whether the model lives in a Web Worker (no document: the page's thread only draws). */
  inWorker: boolean;
}

let session: LabSession | null = null;
let backend: LabBackend = 'cpu';
let info: mt.BackendInfo | null = null;

function current(): LabSession {
  if (!session) throw new Error('build a model first');
  return session;
}

function summary(): Summary {
  const s = current();
  return {
    backend, info: info!, corpus: s.corpus.name, vocabSize: s.corpus.vocabSize, experts: s.experts, domains: s.corpus.domains ?? null,
    floors: s.corpus.floors ?? null, parameters: s.model.numParameters(), step: s.step, settings: s.settings,
    inWorker: (globalThis as { document?: unknown }).document === undefined,
  };
}

/**
 * In the lab's worker there is no <script> tag: gpu.js's browser build (a UMD file that
 * hangs GPU off `self` when there is no module system) is imported from the lab's server,
 * which serves it. Its kernels then draw on an OffscreenCanvas or a WebGPU device.
 */
async function loadGpuJsInWorker(): Promise<void> {
  const scope = globalThis as { GPU?: object; document?: unknown };
  // A browser's own WebGPU interface is also called GPU (navigator.gpu's class): only a GPU
  // with gpu.js's static isGPUSupported is gpu.js.
  const isGpuJs = () => typeof scope.GPU === 'function' && 'isGPUSupported' in scope.GPU;
  if (isGpuJs() || scope.document !== undefined) return;
  const url = '/gpu-browser.min.js'; // a variable: the bundler must leave this import alone
  await import(url);
  if (!isGpuJs()) throw new Error(`${url} did not define the global GPU in the lab's worker`);
}

/** Makes a backend active again (started backends are cached: its tensors are still valid). */
function activate(b: mt.BackendInfo): void {
  if (b.name === 'gpu') mt.setBackend('gpu', { mode: b.mode as 'webgl2' | 'webgpu' });
  else mt.setBackend('cpu');
}

/**
 * Builds a new session; bad settings, a backend that cannot start or a model that cannot be
 * built leave the old session as it was, on its own backend, active again.
 */
async function build(settings: LabSettings, wanted: LabBackend): Promise<Summary> {
  const problem = checkSettings(settings);
  if (problem) throw new Error(problem);
  const onWebGPU = wanted === 'webgpu' ? webgpuProblem(settings) : null;
  if (onWebGPU) throw new Error(onWebGPU);
  if (wanted !== 'cpu') {
    try { await loadGpuJsInWorker(); } catch (e) { throw new Error(`${wanted} cannot start: ${(e as Error).message}`); }
  }
  const previous = mt.backendInfo();
  let started: mt.BackendInfo, next: LabSession;
  try {
    started = await startBackend(wanted);
    next = new LabSession(settings);
  } catch (e) {
    activate(previous);
    throw e;
  }
  session?.dispose();
  session = next;
  backend = wanted;
  info = started;
  return summary();
}

/** `n` training steps, one after another (the page asks for one at a time while training). */
async function step(n = 1): Promise<StepRecord[]> {
  const out: StepRecord[] = [];
  for (let i = 0; i < n; i++) out.push(await current().trainStep());
  return out;
}

/**
 * The float64 gradient checks of the session's gating (its kind, capacity factor, z-loss and
 * shared experts) and MoE layer, at its experts and k up to 8 experts (small d so finite
 * differences stay quick), on the CPU backend; the session's backend is active again
 * afterwards (started backends are cached, its tensors stay valid).
 */
function gradcheck(): { rows: GradcheckRow[]; config: GradcheckConfig } {
  const s = current().settings;
  if (s.model === 'dense') throw new Error('the dense model has no gating to check: build an MoE');
  const experts = Math.min(s.experts, 8);
  const config: GradcheckConfig = {
    gating: s.gating, experts, k: gatingK(s.gating, Math.min(s.k, experts), experts), d: 4, hidden: 4, batch: 6, noise: s.noise && s.gating === 'noisy-topk', seed: s.seed,
    ...(s.capacityFactor !== null ? { capacityFactor: s.capacityFactor } : {}), ...(s.wZLoss > 0 ? { wZLoss: s.wZLoss } : {}),
    ...(s.sharedExperts > 0 ? { sharedExperts: Math.min(s.sharedExperts, experts - 1) } : {}),
  };
  const previous = mt.backendInfo();
  mt.setBackend('cpu');
  try {
    return { rows: gradcheckRows(config), config };
  } finally {
    activate(previous);
  }
}

/** Opens a checkpoint's bytes (a run directory's checkpoint.safetensors) on the current backend. */
function openCheckpoint(bytes: Uint8Array, source: string): Summary {
  const opened = sessionFromCheckpoint(bytes, source);
  session?.dispose();
  session = opened.session;
  info ??= mt.backendInfo();
  return summary();
}

export const host = {
  build,
  step,
  route: (text: string): Promise<RoutedToken[]> => current().route(text),
  sample: (): string => current().sampleSequence(),
  freeze: (e: number, frozen: boolean): void => current().setFrozen(e, frozen),
  zero: (e: number): void => current().zeroExpert(e),
  domainExpert: (): number[][] | null => current().domainExpert,
  gradcheck,
  checkpoint: (): Promise<Uint8Array> => current().checkpoint(),
  metrics: (): string => current().metricsJsonl(),
  openCheckpoint,
  /** Checks a dropped file's bytes; resolves with the text. */
  text: (bytes: Uint8Array, name: string): string => textFromBytes(bytes, name),
};

export type Host = typeof host;
export type HostMethod = keyof Host;
