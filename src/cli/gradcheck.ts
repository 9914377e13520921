// `mixtape gradcheck`: float64 gradient checks of the gating math and the MoE layer for a
// configuration the user gives, printing the worst error per parameter. Inputs are built
// with a margin from top-k ties (the noisy logits are planned first and the noise solved
// from them), so central differences never cross a routing boundary.
//
// Every gating kind: noisy top-k has its own checks (the gates, the smooth load, both CV²
// losses); the other routers are checked through their gates and the whole MoE layer, with
// their random parts fixed (GShard's u, no Switch jitter, DeepSeek's bias update off) and
// inputs redrawn until no step of 10·eps along any router weight changes the routing
// (which experts, in which order, which routes dropped over capacity) and no expert's
// pre-activation is within 1e-3 of relu's kink.

import * as mt from '../index.js';
import { UsageError } from './run.js';

export interface GradcheckConfig {
  experts: number; k: number; d: number; hidden: number; batch: number; noise: boolean; seed: number;
  /** The gating kind (default noisy-topk); switch and hash fix k = 1, gshard k = 2, softmax k = experts. */
  gating?: mt.GatingKind;
  /** Token-choice routers and expert-choice: drop routes over ⌈f·k·N/E⌉ per expert. */
  capacityFactor?: number;
  /** Weight of the router z-loss in the auxiliary loss (not hash). */
  wZLoss?: number;
  /** DeepSeek's always-on shared experts. */
  sharedExperts?: number;
}

const EPS = 1e-6, ATOL = 1e-5, RTOL = 1e-3;

export interface GradcheckRow { check: string; parameter: string; shape: string; maxAbs: number; maxRel: number; ok: boolean }

/** The gradient of a scalar function of `params` by central differences, parameter by parameter. */
function numericalGrad(f: () => number, p: mt.Tensor): Float64Array {
  const base = Float64Array.from(p.dataSync());
  const g = new Float64Array(base.length);
  for (let i = 0; i < base.length; i++) {
    const plus = base.slice(), minus = base.slice();
    plus[i]! += EPS; minus[i]! -= EPS;
    p.assign(mt.tensor(plus, p.shape, { dtype: 'float64' }));
    const fp = f();
    p.assign(mt.tensor(minus, p.shape, { dtype: 'float64' }));
    const fm = f();
    g[i] = (fp - fm) / (2 * EPS);
  }
  p.assign(mt.tensor(base, p.shape, { dtype: 'float64' }));
  return g;
}

function compareGrads(check: string, name: string, p: mt.Tensor, analytical: ArrayLike<number>, numerical: Float64Array): GradcheckRow {
  let maxAbs = 0, maxRel = 0, ok = true;
  for (let i = 0; i < numerical.length; i++) {
    const a = analytical[i]!, n = numerical[i]!, diff = Math.abs(a - n);
    maxAbs = Math.max(maxAbs, diff);
    maxRel = Math.max(maxRel, diff / Math.max(Math.abs(n), 1e-12));
    if (!(diff <= ATOL + RTOL * Math.abs(n))) ok = false;
  }
  return { check, parameter: name, shape: `[${p.shape.join(', ')}]`, maxAbs, maxRel: numerical.length ? maxRel : 0, ok };
}

/** Deterministic values in [-scale, scale) (an LCG: gradcheck inputs need no statistical quality). */
function values(n: number, seed: number, scale = 1): number[] {
  let s = (seed * 2654435761 + 12345) >>> 0;
  return Array.from({ length: n }, () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return ((s / 4294967296) * 2 - 1) * scale; });
}

/** The smallest gap, over rows, between the k-th and (k+1)-th largest logit. */
function minTopKGap(logits: mt.Tensor, k: number): number {
  const [N, E] = logits.shape as [number, number];
  const v = logits.dataSync();
  let gap = Infinity;
  for (let n = 0; n < N; n++) {
    const row = Array.from(v.subarray(n * E, (n + 1) * E)).sort((a, b) => b - a);
    gap = Math.min(gap, row[k - 1]! - row[k]!);
  }
  return gap;
}

/**
 * The checks' rows, worst error per parameter (no printing: the lab page shows them as a
 * table). Runs on the active backend, which must hold float64 (the CPU backend).
 */
export function gradcheckRows(c: GradcheckConfig): GradcheckRow[] {
  for (const [flag, v] of [['experts', c.experts], ['k', c.k], ['d', c.d], ['hidden', c.hidden], ['batch', c.batch]] as const) {
    if (!(Number.isInteger(v) && v >= 1)) throw new UsageError(`--${flag} must be a positive integer, got ${v}`);
  }
  if (c.k > c.experts) throw new UsageError(`--k ${c.k} is larger than --experts ${c.experts}`);
  if (c.experts * (c.d * c.hidden + c.hidden * c.d) > 20000) throw new UsageError('this configuration has too many parameters for a full finite-difference check (keep experts × d × hidden small)');
  const gating = c.gating ?? 'noisy-topk';
  if (!mt.GATING_KINDS.includes(gating)) throw new UsageError(`unknown --gating '${String(gating)}' (expected ${mt.GATING_KINDS.join(', ')})`);
  // A combination the MoE refuses (a capacity factor for softmax, a z-loss for hash, …) is a usage error.
  try {
    mt.dispose(new mt.MoE({ inputSize: c.d, outputSize: c.d, hiddenSize: c.hidden, numExperts: c.experts, k: gatingK(gating, c.k, c.experts), gating, dtype: 'float64', ...routerExtras(c) }).parameters());
  } catch (e) {
    throw new UsageError((e as Error).message.replace(/^MoE: /, ''));
  }
  if (gating !== 'noisy-topk') return routerRows(c, gating);
  const { experts: E, k, d, hidden, batch: N } = c;
  const f64 = { dtype: 'float64' as const };
  mt.manualSeed(c.seed);
  const moe = new mt.MoE({ inputSize: d, outputSize: d, hiddenSize: hidden, numExperts: E, k, noisyGating: c.noise, dtype: 'float64', ...routerExtras(c) });
  const gate = moe.gate as mt.NoisyTopKGating;
  // Without noise the clean logits decide the routing: draw inputs until every row's top-k
  // choice is clear of a tie by a margin far above the finite-difference step.
  let seed = c.seed, x!: mt.Tensor;
  for (let attempt = 0; ; attempt++, seed += 1000) {
    x = mt.tensor(values(N * d, seed + 1), [N, d], f64);
    gate.w_gate.assign(mt.tensor(values(d * E, seed + 2, 0.8), [d, E], f64));
    gate.w_noise.assign(mt.tensor(values(d * E, seed + 3, 0.8), [d, E], f64));
    if (c.noise || k === E || minTopKGap(mt.noGrad(() => x.matmul(gate.w_gate)), k) > 1e-3) break;
    if (attempt === 200) throw new UsageError('could not draw inputs whose top-k choice is clear of ties; try another --seed or a smaller --batch');
  }
  for (const [i, e] of moe.experts.entries()) e.fc1.bias!.assign(mt.tensor(values(hidden, seed + 10 + i, 0.5), [hidden], f64));
  // Plan the noisy logits (well separated per row), then solve the noise from them.
  const plannedH = Array.from({ length: N * E }, (_, i) => -1 + 0.3 * ((i * 7 + Math.floor(i / E) * 3) % E) + 0.01 * (i % 3));
  const noise = mt.noGrad(() => mt.tidy(() => mt.tensor(plannedH, [N, E], f64).sub(x.matmul(gate.w_gate)).div(x.matmul(gate.w_noise).softplus().add(gate.noiseEpsilon))));
  const r = mt.tensor(values(N * d, seed + 4), [N, d], f64);
  const checks: [string, () => mt.Tensor][] = [
    ['gates Σ r·G(x)', () => gate.forward(x, { noise }).gates.mul(mt.tensor(values(N * E, seed + 5), [N, E], f64)).sum()],
    ...(c.noise && k < E ? [['smooth load Σ r·Load', () => gate.forward(x, { noise }).load.mul(mt.tensor(values(E, seed + 6), [E], f64)).sum()] as [string, () => mt.Tensor]] : []),
    ['CV²(importance)', () => mt.cvSquared(gate.forward(x, { noise }).importance)],
    ['CV²(load)', () => mt.cvSquared(gate.forward(x, { noise }).load)],
    ['MoE Σ r·y + auxLoss', () => { const o = moe.forward(x, { noise }); return o.output.mul(r).sum().add(o.auxLoss); }],
  ];
  const gateParams: [string, mt.Tensor][] = [['gate.w_gate', gate.w_gate], ['gate.w_noise', gate.w_noise]];
  return runChecks(moe, checks.map(([check, fn]) => [check, fn, check.startsWith('MoE') ? moe.namedParameters() : gateParams]));
}

/** Each check's analytical gradient (backward) against central differences, per parameter. */
function runChecks(moe: mt.Module, checks: readonly [string, () => mt.Tensor, [string, mt.Tensor][]][]): GradcheckRow[] {
  const rows: GradcheckRow[] = [];
  for (const [check, fn, params] of checks) {
    mt.tidy(() => {
      moe.zeroGrad();
      const value = fn();
      // A quantity with no gradient path (the hard counts without noise) has a zero gradient.
      if (value.requiresGrad) value.backward();
      for (const [name, p] of params) {
        const analytical = p.grad ? Float64Array.from(p.grad.dataSync()) : new Float64Array(p.size);
        const numerical = mt.noGrad(() => numericalGrad(() => mt.tidy(() => fn().item()), p));
        rows.push(compareGrads(check, name, p, analytical, numerical));
      }
    });
  }
  return rows;
}

/** The MoE options of the config's capacity factor, z-loss and shared experts. */
function routerExtras(c: GradcheckConfig): Pick<mt.MoEOptions<'mlp'>, 'capacityFactor' | 'wZLoss' | 'sharedExperts'> {
  return {
    ...(c.capacityFactor !== undefined ? { capacityFactor: c.capacityFactor } : {}),
    ...(c.wZLoss ? { wZLoss: c.wZLoss } : {}),
    ...(c.sharedExperts ? { sharedExperts: c.sharedExperts } : {}),
  };
}

/** The k a gating routes with: switch and hash 1, gshard 2, softmax every expert, else the config's. */
export function gatingK(gating: mt.GatingKind, k: number, experts: number): number {
  return gating === 'switch' || gating === 'hash' ? 1 : gating === 'gshard' ? 2 : gating === 'softmax' ? experts : k;
}

/** What a routing decision is: the nonzero gates (after any dropping) and the chosen experts in order. */
function routingSignature(out: mt.MoEOutput): string {
  const gates = out.stats.gates.dataSync(), indices = out.stats.indices.dataSync();
  let s = '';
  for (const g of gates) s += g > 0 ? '1' : '0';
  return `${s}|${Array.from(indices).join(',')}`;
}

/** Whether a step of ±h along any one entry of `params` changes the routing of `forward`. */
function routingStable(forward: () => mt.MoEOutput, params: readonly mt.Tensor[], h: number): boolean {
  return mt.noGrad(() => {
    const signature = () => mt.tidy(() => routingSignature(forward()));
    const base = signature();
    for (const p of params) {
      const values = Float64Array.from(p.dataSync());
      try {
        for (let i = 0; i < values.length; i++) {
          for (const step of [h, -h]) {
            const moved = values.slice();
            moved[i]! += step;
            p.assign(mt.tensor(moved, p.shape, { dtype: 'float64' }));
            if (signature() !== base) return false;
          }
        }
      } finally {
        p.assign(mt.tensor(values, p.shape, { dtype: 'float64' }));
      }
    }
    return true;
  });
}

/**
 * The checks of a router other than noisy top-k: its gates w.r.t. its weights, batchwise's
 * threshold loss L_batchwise (eq. 20) w.r.t. the thresholds, and the MoE layer (output and
 * auxiliary loss: the router's balancing loss, the z-loss when weighted) w.r.t. every parameter.
 */
function routerRows(c: GradcheckConfig, gating: mt.GatingKind): GradcheckRow[] {
  const { experts: E, d, hidden, batch: N } = c;
  const k = gatingK(gating, c.k, E);
  const f64 = { dtype: 'float64' as const };
  const options: mt.MoEOptions<'mlp'> = {
    inputSize: d, outputSize: d, hiddenSize: hidden, numExperts: E, k, gating, dtype: 'float64', ...routerExtras(c),
    // L_batchwise treats the gates as constants on purpose (it trains the thresholds only),
    // which a finite difference in the router weights cannot see: it is checked on its own.
    ...(gating === 'batchwise' ? { wBatchwise: 0 } : {}),
    // The loss-free bias update changes the bias on every training forward: off here.
    ...(gating === 'deepseek' ? { biasUpdateRate: 0 } : {}),
  };
  mt.manualSeed(c.seed);
  let moe!: mt.MoE, x!: mt.Tensor, seed = c.seed;
  let fixed: mt.MoEForwardOptions = {};
  const gateParams = () => moe.gate.namedParameters().filter(([n]) => n !== 'thresholds');
  for (let attempt = 0; ; attempt++, seed += 1000) {
    moe = new mt.MoE(options);
    x = mt.tensor(values(N * d, seed + 1), [N, d], f64);
    for (const [i, [, p]] of gateParams().entries()) p.assign(mt.tensor(values(p.size, seed + 2 + i, 1.5), p.shape, f64));
    for (const [i, e] of [...moe.experts, ...moe.shared_experts].entries()) e.fc1.bias!.assign(mt.tensor(values(hidden, seed + 10 + i, 0.5), [hidden], f64));
    fixed = gating === 'gshard' ? { uniform: mt.tensor(values(N, seed + 3).map((v) => (v + 1) / 2), [N], f64) }
      : gating === 'hash' ? { tokenIds: mt.tensor(Array.from({ length: N }, (_, i) => (3 * i + seed) % 65521), [N], { dtype: 'int32' }) } : {};
    const reluMargin = mt.noGrad(() => Math.min(...[...moe.experts, ...moe.shared_experts].map((e) => mt.tidy(() => e.fc1.forward(x).abs().min().item()))));
    if (reluMargin > 1e-3 && routingStable(() => moe.forward(x, fixed), gateParams().map(([, p]) => p), 10 * EPS)) break;
    if (attempt === 200) throw new UsageError(`could not draw inputs whose ${gating} routing is clear of its boundaries; try another --seed or a smaller --batch`);
  }
  const gate = moe.gate;
  const routerGates = (): mt.Tensor => gate instanceof mt.GShardGating ? gate.forward(x, { uniform: fixed.uniform! }).gates
    : gate instanceof mt.ExpertChoiceGating ? gate.forward(x, 1).gates
      : gate instanceof mt.HashGating ? gate.forward(x, fixed.tokenIds).gates
        : (gate as mt.SwitchGating | mt.SoftmaxGating | mt.BatchwiseGating | mt.DeepSeekGating).forward(x).gates;
  const r = mt.tensor(values(N * d, seed + 4), [N, d], f64), rGates = mt.tensor(values(N * E, seed + 5), [N, E], f64);
  const checks: [string, () => mt.Tensor, [string, mt.Tensor][]][] = [];
  if (gateParams().length > 0) checks.push([`${gating} gates Σ r·G(x)`, () => routerGates().mul(rGates).sum(), gateParams().map(([n, p]) => [`gate.${n}`, p])]);
  if (gate instanceof mt.BatchwiseGating) {
    // Thresholds between two neighbouring probabilities of their expert's column, so the
    // threshold mask disagrees with the batchwise one somewhere (a nonzero gradient) and no
    // step of eps crosses a probability.
    const probs = mt.noGrad(() => mt.softmax(x.matmul(gate.w_gate), -1)), P = probs.dataSync();
    const m = gate.examplesPerExpert(N);
    const T = Array.from({ length: E }, (_, e) => {
      const col = Array.from({ length: N }, (_, n) => P[n * E + e]!).sort((a, b) => a - b);
      const j = Math.min(N - 2, Math.max(0, (e % Math.max(1, N - 1))));
      return N > 1 ? (col[j]! + col[j + 1]!) / 2 : col[0]! / 2;
    });
    gate.thresholds.assign(mt.tensor(T, [E], f64));
    checks.push(['L_batchwise (eq. 20)', () => mt.batchwiseThresholdLoss(probs, gate.thresholds, m), [['gate.thresholds', gate.thresholds]]]);
  }
  checks.push([`MoE (${gating}) Σ r·y + auxLoss`, () => { const o = moe.forward(x, fixed); return o.output.mul(r).sum().add(o.auxLoss); }, moe.namedParameters()]);
  return runChecks(moe, checks);
}

export function gradcheckCommand(c: GradcheckConfig): boolean {
  const rows = gradcheckRows(c);
  const { experts: E, k, d, hidden, batch: N } = c;
  const header = ['check', 'parameter', 'shape', 'max |analytical − numerical|', 'max relative', 'result'];
  const table = rows.map((row) => [row.check, row.parameter, row.shape, row.maxAbs.toExponential(2), row.maxRel.toExponential(2), row.ok ? 'ok' : 'FAIL']);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((t) => t[i]!.length)));
  const fmt = (cells: string[]) => cells.map((cell, i) => cell.padEnd(widths[i]!)).join('  ');
  console.log(`gradcheck (float64; central differences eps ${EPS}; pass when |a − n| <= ${ATOL} + ${RTOL}·|n|)`);
  const gating = c.gating ?? 'noisy-topk';
  const extras = [c.capacityFactor !== undefined ? `capacity factor ${c.capacityFactor}` : '', c.wZLoss ? `z-loss weight ${c.wZLoss}` : '', c.sharedExperts ? `${c.sharedExperts} shared experts` : ''].filter(Boolean);
  console.log(`MoE (${gating} gating): ${E} experts, k = ${gatingK(gating, k, E)}, d = ${d}, expert hidden ${hidden}, ${N} examples${gating === 'noisy-topk' ? `, noise ${c.noise ? 'on (fixed draw)' : 'off'}` : ''}${extras.length ? `, ${extras.join(', ')}` : ''}`);
  console.log(fmt(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const t of table) console.log(fmt(t));
  const failed = rows.filter((row) => !row.ok).length;
  console.log(failed === 0 ? `all ${rows.length} checks passed` : `${failed} of ${rows.length} checks FAILED`);
  return failed === 0;
}
