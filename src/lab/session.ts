// One model being studied in the lab: its settings, corpus, model, optimizer and the
// history of its steps. No DOM here (the page, src/lab/page.ts, draws it), so it runs in
// Node too and its checks are tested there.
//
// A step is the trainer's step (src/cli/run.ts): Adam, gradient-norm clipping at 1, the
// paper's inverse-square-root schedule, the routing statistics read back with the loss.
// Reads are `await t.data()` only: browser WebGPU has no synchronous readback.

import * as mt from '../index.js';
import type { Batch, Corpus } from '../data/corpus.js';
import { SyntheticCorpus } from '../data/synthetic.js';
import { decodeText, TextCorpus } from '../data/text.js';
import type { RunConfig, TrainRecord } from '../report/schema.js';

export type LabBackend = 'cpu' | 'webgl2' | 'webgpu';
export const LAB_BACKENDS: readonly LabBackend[] = ['webgpu', 'webgl2', 'cpu'];
/** The gpu.js kernel class each browser mode must run: anything else is a fallback, refused. */
const KERNEL_CLASS: Record<Exclude<LabBackend, 'cpu'>, string> = { webgl2: 'WebGL2Kernel', webgpu: 'WebGPUKernel' };

export interface LabSettings {
  model: 'moe' | 'dense' | 'hmoe';
  gating: mt.GatingKind;
  experts: number;
  k: number;
  groups: number;
  d: number;
  expertHidden: number;
  wImportance: number;
  wLoad: number;
  noise: boolean;
  /** Token-choice routers and expert-choice: each expert keeps ⌈f·k·N/E⌉ routes, the rest are dropped; null: no capacity. */
  capacityFactor: number | null;
  /** Weight of the router z-loss (ST-MoE); 0 = off. */
  wZLoss: number;
  /** DeepSeek: always-on shared experts. */
  sharedExperts: number;
  batch: number;
  seqLen: number;
  lr: number;
  warmup: number;
  seed: number;
  /** The synthetic corpus with this many domains, or a text the user dropped or pasted. */
  data: { kind: 'synthetic'; domains: number } | { kind: 'text'; name: string; text: string };
}

export const DEFAULT_SETTINGS: LabSettings = {
  model: 'moe', gating: 'noisy-topk', experts: 8, k: 2, groups: 2, d: 16, expertHidden: 32, wImportance: 0.1, wLoad: 0.1,
  noise: true, capacityFactor: null, wZLoss: 0, sharedExperts: 0, batch: 8, seqLen: 16, lr: 0.02, warmup: 20, seed: 0, data: { kind: 'synthetic', domains: 4 },
};

/** What is wrong with the settings, in the page's words, or null. */
export function checkSettings(s: LabSettings): string | null {
  const ints: [string, number, number][] = [['experts', s.experts, 1], ['k', s.k, 1], ['d', s.d, 1], ['expert hidden', s.expertHidden, 1],
    ['batch', s.batch, 1], ['sequence length', s.seqLen, 1], ['warm-up', s.warmup, 1], ['seed', s.seed, 0], ['groups', s.groups, 1]];
  if (s.data.kind === 'synthetic') ints.push(['domains', s.data.domains, 1]);
  for (const [name, v, min] of ints) if (!Number.isSafeInteger(v) || v < min) return `${name} must be an integer ≥ ${min}, got ${v}`;
  if (!['moe', 'dense', 'hmoe'].includes(s.model)) return `unknown model '${s.model}' (moe, dense or hmoe)`;
  if (!(mt.GATING_KINDS as readonly string[]).includes(s.gating)) return `unknown gating '${s.gating}' (${mt.GATING_KINDS.join(', ')})`;
  if (s.model !== 'dense' && s.k > s.experts) return `k (${s.k}) is larger than experts (${s.experts}): each token picks k of the experts`;
  const routerProblem = checkRouter(s);
  if (routerProblem) return routerProblem;
  if (s.model === 'hmoe') {
    if (s.experts % s.groups !== 0) return `experts (${s.experts}) must be divisible by groups (${s.groups}) for a hierarchical MoE`;
    const kPrimary = Math.min(2, s.groups, s.k);
    if (s.k % kPrimary !== 0) return `k (${s.k}) must be a multiple of ${kPrimary} (groups per token) for a hierarchical MoE`;
    if (s.k / kPrimary > s.experts / s.groups) return `k (${s.k}) needs ${s.k / kPrimary} experts per group but each group has ${s.experts / s.groups}`;
  }
  if (!(s.lr > 0 && Number.isFinite(s.lr))) return `the learning rate must be a positive number, got ${s.lr}`;
  for (const [name, v] of [['w_importance', s.wImportance], ['w_load', s.wLoad]] as const) {
    if (!(v >= 0 && Number.isFinite(v))) return `${name} must be a non-negative number, got ${v}`;
  }
  if (s.d * s.expertHidden * s.experts > 4_000_000) return 'this model is too large for the lab (experts × d × expert hidden > 4 million)';
  return null;
}

/** Routers to which a capacity factor applies (MoE's token-choice routers and expert-choice). */
export const CAPACITY_GATINGS: readonly mt.GatingKind[] = ['noisy-topk', 'switch', 'gshard', 'hash', 'deepseek', 'expert-choice'];
/** The k a gating fixes (switch and hash route to 1 expert, GShard to 2), or null when k is the user's. */
export function fixedK(gating: mt.GatingKind): number | null {
  return gating === 'switch' || gating === 'hash' ? 1 : gating === 'gshard' ? 2 : null;
}

/** The router settings (gating, capacity, z-loss, shared experts): what is wrong, or null. */
function checkRouter(s: LabSettings): string | null {
  if (s.model === 'dense') return null;
  if (s.model === 'hmoe' && s.gating !== 'noisy-topk') return `the hierarchical MoE routes with its own noisy top-k gates: pick gating noisy-topk, or model moe for gating ${s.gating}`;
  const k = fixedK(s.gating);
  if (k !== null && s.k !== k) return `gating ${s.gating} routes each token to ${k === 1 ? '1 expert' : 'its top 2 experts'}: set k = ${k} (got ${s.k})`;
  if (s.gating === 'gshard' && s.experts < 2) return `gating gshard needs at least 2 experts, got ${s.experts}`;
  if (s.capacityFactor !== null) {
    if (!(typeof s.capacityFactor === 'number' && s.capacityFactor > 0 && Number.isFinite(s.capacityFactor))) return `the capacity factor must be a positive number (or empty for no capacity), got ${s.capacityFactor}`;
    if (s.model !== 'moe') return `a capacity factor needs model moe (the model is ${s.model})`;
    if (!CAPACITY_GATINGS.includes(s.gating)) return `a capacity factor applies to ${CAPACITY_GATINGS.join(', ')}, not gating ${s.gating}: leave it empty`;
  }
  if (!(typeof s.wZLoss === 'number' && s.wZLoss >= 0 && Number.isFinite(s.wZLoss))) return `w_z-loss must be a non-negative number, got ${s.wZLoss}`;
  if (s.wZLoss > 0 && s.model !== 'moe') return `the router z-loss needs model moe (the model is ${s.model}): set w_z-loss to 0`;
  if (s.wZLoss > 0 && s.gating === 'hash') return `gating hash has no router logits, so w_z-loss must be 0, got ${s.wZLoss}`;
  if (!Number.isSafeInteger(s.sharedExperts) || s.sharedExperts < 0) return `shared experts must be an integer ≥ 0, got ${s.sharedExperts}`;
  if (s.sharedExperts > 0 && s.gating !== 'deepseek') return `shared experts need gating deepseek (the gating is ${s.gating}): set them to 0`;
  if (s.sharedExperts > 0 && s.sharedExperts >= s.experts) return `shared experts (${s.sharedExperts}) must be fewer than experts (${s.experts})`;
  return null;
}

/**
 * Why these settings cannot train on WebGPU in a browser, or null. Browser WebGPU has no
 * synchronous readback, and some routing reads values on the host inside the forward pass
 * (mt.hostRoutingReason: capacity dropping, hash routing, Expert Choice). WebGL2 and the
 * CPU read synchronously and run them all.
 */
export function webgpuProblem(s: LabSettings): string | null {
  if (s.model === 'dense') return null;
  const why = mt.hostRoutingReason(s.gating, s.capacityFactor);
  return why === null ? null
    : `${why} inside the forward pass, and WebGPU in a browser has no synchronous readback: train these settings on WebGL2 or the CPU`;
}

/** The MoE router options of the settings (MoELanguageModel's `router`). */
export function routerOptions(s: LabSettings): NonNullable<mt.MoELanguageModelOptions['router']> {
  return {
    ...(s.capacityFactor !== null ? { capacityFactor: s.capacityFactor } : {}),
    ...(s.wZLoss > 0 ? { wZLoss: s.wZLoss } : {}),
    ...(s.sharedExperts > 0 ? { sharedExperts: s.sharedExperts } : {}),
  };
}

/** A dropped file's bytes as text: a clear error for binary or non-UTF-8 files (decodeText). */
export function textFromBytes(bytes: Uint8Array, name: string): string {
  return decodeText(bytes, name);
}

/**
 * Starts a backend and runs one kernel. A GPU mode whose kernels are not the mode's own
 * class (gpu.js falls back to CPU kernels when it cannot get a context) is an error, never
 * a silent fallback; on any failure the CPU backend is active again and the error says why.
 */
export async function startBackend(kind: LabBackend): Promise<mt.BackendInfo> {
  if (kind === 'cpu') { mt.setBackend('cpu'); return mt.backendInfo(); }
  try {
    mt.setBackend('gpu', { mode: kind });
    await mt.ready();
    const probe = mt.tensor([1, 2, 3]).add(1);
    const v = Array.from(await probe.data());
    probe.dispose();
    if (v.join() !== '2,3,4') throw new Error(`a probe kernel computed [${v.join(', ')}] instead of [2, 3, 4]`);
    const info = mt.backendInfo();
    if (info.kernelClass !== KERNEL_CLASS[kind]) throw new Error(`gpu.js runs ${String(info.kernelClass)}, not ${KERNEL_CLASS[kind]}: refusing a silent fallback`);
    return info;
  } catch (e) {
    mt.setBackend('cpu');
    throw new Error(`${kind} cannot start: ${(e as Error).message}`);
  }
}

export interface StepRecord extends TrainRecord { frozen: number[]; zeroed: number[] }

/** One token of a routed sequence: the experts it went to and their gate values. */
export interface RoutedToken { token: string; experts: number[]; gates: number[]; noise: number[] | null }

type LM = mt.MoELanguageModel | mt.DenseLanguageModel;

export class LabSession {
  readonly corpus: Corpus;
  readonly model: LM;
  readonly optimizer: mt.Adam;
  private readonly schedule: mt.InverseSqrtLR;
  step = 0;
  readonly history: StepRecord[] = [];
  /** Experts whose weights the optimizer may not change (restored after each step). */
  readonly frozen = new Set<number>();
  readonly zeroed = new Set<number>();
  /** Tokens per domain (rows) and expert (columns), over all training steps so far (synthetic corpus only). */
  readonly domainExpert: number[][] | null;
  readonly backend: string;

  constructor(readonly settings: LabSettings, corpus?: Corpus) {
    const problem = checkSettings(settings);
    if (problem) throw new Error(problem);
    const s = settings;
    this.corpus = corpus ?? (s.data.kind === 'synthetic'
      ? new SyntheticCorpus({ domains: s.data.domains, vocab: 32, seed: 0 })
      : new TextCorpus(s.data.name, { content: s.data.text, level: 'char', seed: s.seed }));
    if (this.corpus instanceof SyntheticCorpus) this.corpus.floorsFor(s.seqLen);
    this.backend = mt.backendInfo().name;
    mt.manualSeed(s.seed);
    const common = { vocabSize: this.corpus.vocabSize, modelSize: s.d, expertHidden: s.expertHidden, k: s.k };
    this.model = s.model === 'dense' ? new mt.DenseLanguageModel(common)
      : new mt.MoELanguageModel({ ...common, numExperts: s.experts, gating: s.gating, noisyGating: s.noise, wImportance: s.wImportance, wLoad: s.wLoad,
        router: routerOptions(s), ...(s.model === 'hmoe' ? { hierarchicalGroups: s.groups } : {}) });
    this.optimizer = new mt.Adam(this.model.parameters(), { lr: s.lr });
    this.schedule = new mt.InverseSqrtLR(this.optimizer, s.warmup);
    this.domainExpert = this.corpus.domains && s.model !== 'dense'
      ? Array.from({ length: this.corpus.domains }, () => new Array<number>(s.experts).fill(0)) : null;
  }

  get experts(): number { return this.settings.model === 'dense' ? 0 : this.settings.experts; }

  /** The parameters of expert e (flat or hierarchical MoE), by their state_dict names. */
  expertParameters(e: number): mt.Tensor[] {
    if (!(Number.isInteger(e) && e >= 0 && e < this.experts)) throw new Error(`expert ${e} does not exist (this model has ${this.experts})`);
    const perGroup = this.settings.experts / this.settings.groups;
    const prefix = this.settings.model === 'hmoe' ? `moe.groups.${Math.floor(e / perGroup)}.experts.${e % perGroup}.` : `moe.experts.${e}.`;
    return this.model.namedParameters().filter(([n]) => n.startsWith(prefix)).map(([, p]) => p);
  }

  /** Sets expert e's weights to zero: its output is 0 until training moves them again (unless frozen). */
  zeroExpert(e: number): void {
    for (const p of this.expertParameters(e)) p.assign(mt.zeros(p.shape, { dtype: p.dtype }));
    this.zeroed.add(e);
  }

  /** Training leaves a frozen expert's weights as they are. */
  setFrozen(e: number, frozen: boolean): void {
    this.expertParameters(e);
    if (frozen) this.frozen.add(e); else this.frozen.delete(e);
  }

  private tensors(b: Batch, rows: number): { x: mt.Tensor; y: mt.Tensor } {
    const T = this.settings.seqLen;
    return { x: mt.tensor(b.x, [rows, T], { dtype: 'int32' }), y: mt.tensor(b.y, [rows, T], { dtype: 'int32' }) };
  }

  /** One training step; resolves with what it measured. */
  async trainStep(): Promise<StepRecord> {
    const s = this.settings, t0 = performance.now();
    const batch = this.corpus.trainBatch(this.step, s.batch, s.seqLen);
    this.optimizer.zeroGrad();
    const droppedSeen: { fraction: number; perExpert: number[] }[] = [];
    const reported = mt.tidy(() => {
      const { x, y } = this.tensors(batch, s.batch);
      const out = this.model.forward(x);
      const task = mt.crossEntropy(out.logits, y);
      task.add(out.auxLoss).backward();
      const st = out.stats;
      // Routes dropped over capacity are counted on the host when the MoE drops them.
      if (st && s.capacityFactor !== null) droppedSeen.push({ fraction: st.droppedFraction ?? 0, perExpert: st.droppedPerExpert ?? [] });
      return [task.detach(), out.auxLoss.detach(), ...(st ? [st.cvImportance, st.cvLoad, st.gateEntropy, st.importance, st.load, st.gates.greater(0), st.gates.greater(0).sum(0)] : [])];
    });
    const norm = mt.clipGradNormTensor(this.model.parameters(), 1);
    let values: number[][];
    try {
      values = [];
      for (const t of [norm, ...reported]) values.push(Array.from(await t.data()));
    } finally {
      norm.dispose();
      mt.dispose(reported);
    }
    const [gradNorm, loss, aux, cvI, cvL, entropy, importance, load, routed, counts] = values;
    if (!Number.isFinite(loss![0]!)) throw new Error(`training diverged at step ${this.step + 1}: the loss is ${loss![0]}; lower the learning rate`);
    if (!Number.isFinite(gradNorm![0]!)) throw new Error(`training diverged at step ${this.step + 1}: the gradient norm is ${gradNorm![0]}; lower the learning rate`);
    // Frozen experts: keep their weights (Adam would still move them by its momentum).
    const kept = [...this.frozen].flatMap((e) => this.expertParameters(e).map((p) => [p, p.clone()] as const));
    this.optimizer.step();
    for (const [p, copy] of kept) { p.assign(copy); copy.dispose(); }
    this.schedule.step();
    this.step++;
    // Domain × expert: every route that was dispatched (a nonzero gate: not dropped over
    // capacity, not a GShard second expert left out; Expert Choice's variable number per token).
    if (this.domainExpert && batch.domains && routed) {
      const E = s.experts;
      for (let n = 0; n < routed.length / E; n++) {
        const d = batch.domains[Math.floor(n / s.seqLen)]!;
        for (let e = 0; e < E; e++) if (routed[n * E + e]! > 0) this.domainExpert[d]![e]!++;
      }
    }
    const tokens = s.batch * s.seqLen;
    const tokensPerSec = tokens / Math.max(1e-3, (performance.now() - t0) / 1000);
    const record: StepRecord = {
      type: 'train', step: this.step, tokens: this.step * tokens, loss: loss![0]!, auxLoss: aux![0]!, lr: this.optimizer.lr,
      elapsed: (performance.now() - t0) / 1000, tokensPerSec, gflops: (this.model.opsPerToken().trainingFlops * tokensPerSec) / 1e9,
      cvImportance: cvI?.[0] ?? null, cvLoad: cvL?.[0] ?? null, gateEntropy: entropy?.[0] ?? null,
      importance: importance ?? null, load: load ?? null, expertCounts: counts ?? null,
      ...(droppedSeen[0] ? { droppedFraction: droppedSeen[0].fraction, droppedPerExpert: droppedSeen[0].perExpert } : {}),
      frozen: [...this.frozen], zeroed: [...this.zeroed],
    };
    this.history.push(record);
    return record;
  }

  /** Token ids of a typed sequence: the synthetic corpus's letters, or the text's characters. */
  encode(text: string): number[] {
    const chars = Array.from(text);
    if (chars.length === 0) throw new Error('type a sequence to route');
    const ids = chars.map((ch) => {
      for (let i = 0; i < this.corpus.vocabSize; i++) if (this.corpus.decode([i]) === ch) return i;
      throw new Error(`'${ch}' is not in this corpus's vocabulary (${this.corpus.decode(Array.from({ length: Math.min(this.corpus.vocabSize, 40) }, (_, i) => i))}…)`);
    });
    return ids;
  }

  /** A validation sequence of the corpus, as text to route. */
  sampleSequence(): string {
    const b = this.corpus.validation(1, this.settings.seqLen)[0]!;
    return this.corpus.decode(b.x.subarray(0, this.settings.seqLen));
  }

  /**
   * Routes one sequence: per token the chosen experts and their gate values. With noisy
   * top-k gating the gates are those of one noise draw ε ~ N(0, 1) per expert (shown with
   * them: H = x·W_g + ε·softplus(x·W_noise), eq. 4); otherwise the clean gates (eval mode).
   */
  async route(text: string): Promise<RoutedToken[]> {
    if (this.settings.model === 'dense') throw new Error('the dense model has no router: build an MoE to route a sequence');
    const ids = this.encode(text);
    const T = ids.length, E = this.settings.experts;
    const noisy = this.settings.model === 'moe' && this.settings.gating === 'noisy-topk' && this.settings.noise;
    const got = mt.noGrad(() => mt.tidy(() => {
      const x = mt.tensor(ids, [1, T], { dtype: 'int32' });
      const noise = noisy ? mt.randn([T, E]) : undefined;
      if (noisy) this.model.train(); else this.model.eval();
      const out = (this.model as mt.MoELanguageModel).forward(x, noise ? { noise } : {});
      return [out.stats!.gates, ...(noise ? [noise] : [])];
    }));
    this.model.train();
    let gates: number[], noise: number[] | null;
    try {
      gates = Array.from(await got[0]!.data());
      noise = got[1] ? Array.from(await got[1].data()) : null;
    } finally {
      mt.dispose(got);
    }
    return ids.map((id, t) => {
      const row = gates.slice(t * E, (t + 1) * E);
      const experts = row.map((g, e) => [g, e] as const).filter(([g]) => g > 0).sort((a, b) => b[0] - a[0]).map(([, e]) => e);
      return { token: this.corpus.decode([id]), experts, gates: experts.map((e) => row[e]!), noise: noise ? experts.map((e) => noise![t * E + e]!) : null };
    });
  }

  /** The RunConfig `mixtape inspect` reads from a checkpoint's metadata. */
  runConfig(): RunConfig {
    const s = this.settings, ops = this.model.opsPerToken();
    return {
      model: s.model, label: `lab ${s.model}`, experts: s.experts, k: s.k, ...(s.model === 'hmoe' ? { groups: s.groups } : {}),
      modelSize: s.d, expertHidden: s.expertHidden, gating: s.gating, wImportance: s.wImportance, wLoad: s.wLoad, dropout: 0,
      ...(s.capacityFactor !== null ? { capacityFactor: s.capacityFactor } : {}), ...(s.wZLoss > 0 ? { wZLoss: s.wZLoss } : {}),
      ...(s.sharedExperts > 0 ? { sharedExperts: s.sharedExperts } : {}),
      steps: Math.max(1, this.step), batch: s.batch, seqLen: s.seqLen, lr: s.lr, warmup: s.warmup, seed: s.seed, backend: this.backend,
      evalEvery: Math.max(1, this.step), data: s.data.kind === 'synthetic' ? 'synthetic' : s.data.name, vocabSize: this.corpus.vocabSize,
      ...(this.corpus.domains ? { domains: this.corpus.domains } : {}), ...(this.corpus.floors ? { floors: this.corpus.floors } : {}),
      opsPerToken: { excludingSoftmax: ops.excludingSoftmax, total: ops.total }, parameters: this.model.numParameters(),
    };
  }

  /** A mixtape checkpoint (the format `mixtape train` writes and `mixtape inspect` reads). */
  /** A checkpoint as `mixtape train` writes it (weights, optimizer state, RNG state), so that `inspect` and `--resume` accept it. */
  async checkpoint(): Promise<Uint8Array> {
    const optState = this.optimizer.stateDict();
    const tensors: Record<string, mt.Tensor> = { ...this.model.stateDict() };
    for (const [k, t] of Object.entries(optState.tensors)) tensors[`optimizer.${k}`] = t;
    return mt.serializeSafetensorsAsync(tensors, {
      format: 'mixtape', mixtape_config: JSON.stringify(this.runConfig()), step: String(this.step),
      rng: JSON.stringify(mt.defaultGenerator.getState()), optimizer: JSON.stringify(optState.scalars),
    });
  }

  /** The steps so far as metrics.jsonl lines (the report's TrainRecord). */
  metricsJsonl(): string {
    return this.history.map(({ frozen: _f, zeroed: _z, ...r }) => `${JSON.stringify(r)}\n`).join('');
  }

  dispose(): void {
    mt.dispose(this.model.parameters());
  }
}

/** Settings of a checkpoint's RunConfig (a run trained by `mixtape train`). */
export function settingsOfRun(c: RunConfig): LabSettings {
  if (c.data !== 'synthetic') throw new Error(`this run was trained on the text file ${c.data}; the lab can open runs on the synthetic corpus only`);
  if (!['moe', 'dense', 'hmoe'].includes(c.model)) throw new Error(`this run is a ${c.model} model; the lab builds moe, dense and hmoe models only`);
  if (c.expert !== undefined && c.expert !== 'mlp') throw new Error(`this run has ${c.expert} experts; the lab builds MLP experts only`);
  const unsupported = ([['scoreFunction', c.scoreFunction, 'sigmoid'], ['auxLossWeight', c.auxLossWeight, 0.01], ['biasUpdateRate', c.biasUpdateRate, 1e-3]] as const)
    .filter(([, v, d]) => v !== undefined && v !== d);
  if (unsupported.length) throw new Error(`this run sets ${unsupported.map(([n, v]) => `${n} = ${v}`).join(', ')}, which the lab does not offer (it uses the defaults)`);
  return {
    ...DEFAULT_SETTINGS, model: c.model as LabSettings['model'], gating: c.gating as mt.GatingKind, experts: c.experts, k: c.k, groups: c.groups ?? (c.model === 'hmoe' ? 4 : DEFAULT_SETTINGS.groups),
    d: c.modelSize, expertHidden: c.expertHidden, wImportance: c.wImportance, wLoad: c.wLoad, noise: true, batch: c.batch, seqLen: c.seqLen,
    capacityFactor: c.capacityFactor ?? null, wZLoss: c.wZLoss ?? 0, sharedExperts: c.sharedExperts ?? 0,
    lr: c.lr, warmup: c.warmup, seed: c.seed, data: { kind: 'synthetic', domains: c.domains ?? 8 },
  };
}

/** A session holding a checkpoint's weights (bytes of checkpoint.safetensors). */
export function sessionFromCheckpoint(bytes: Uint8Array, source: string): { session: LabSession; config: RunConfig; step: number } {
  const { tensors, metadata } = mt.parseSafetensors(bytes, source);
  if (metadata.format !== 'mixtape' || !metadata.mixtape_config) { mt.dispose(tensors); throw new Error(`${source} is a safetensors file but not a mixtape checkpoint (no mixtape_config in its metadata)`); }
  const config = JSON.parse(metadata.mixtape_config) as RunConfig;
  let session: LabSession;
  try {
    session = new LabSession(settingsOfRun(config));
    session.model.loadStateDict(Object.fromEntries(Object.entries(tensors).filter(([k]) => !k.startsWith('optimizer.'))));
  } finally {
    mt.dispose(tensors);
  }
  session.step = Number(metadata.step ?? 0);
  return { session, config, step: session.step };
}
