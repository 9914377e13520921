// `mixtape gradcheck`: float64 gradient checks of the gating math and the MoE layer for a
// configuration the user gives, printing the worst error per parameter. Inputs are built
// with a margin from top-k ties (the noisy logits are planned first and the noise solved
// from them), so central differences never cross a routing boundary.

import * as mt from '../index.js';
import { UsageError } from './run.js';

export interface GradcheckConfig { experts: number; k: number; d: number; hidden: number; batch: number; noise: boolean; seed: number }

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
  const { experts: E, k, d, hidden, batch: N } = c;
  const f64 = { dtype: 'float64' as const };
  mt.manualSeed(c.seed);
  const moe = new mt.MoE({ inputSize: d, outputSize: d, hiddenSize: hidden, numExperts: E, k, noisyGating: c.noise, dtype: 'float64' });
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
  const rows: GradcheckRow[] = [];
  for (const [check, fn] of checks) {
    const params: [string, mt.Tensor][] = check.startsWith('MoE') ? moe.namedParameters() : [['gate.w_gate', gate.w_gate], ['gate.w_noise', gate.w_noise]];
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

export function gradcheckCommand(c: GradcheckConfig): boolean {
  const rows = gradcheckRows(c);
  const { experts: E, k, d, hidden, batch: N } = c;
  const header = ['check', 'parameter', 'shape', 'max |analytical − numerical|', 'max relative', 'result'];
  const table = rows.map((row) => [row.check, row.parameter, row.shape, row.maxAbs.toExponential(2), row.maxRel.toExponential(2), row.ok ? 'ok' : 'FAIL']);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((t) => t[i]!.length)));
  const fmt = (cells: string[]) => cells.map((cell, i) => cell.padEnd(widths[i]!)).join('  ');
  console.log(`gradcheck (float64; central differences eps ${EPS}; pass when |a − n| <= ${ATOL} + ${RTOL}·|n|)`);
  console.log(`MoE: ${E} experts, k = ${k}, d = ${d}, expert hidden ${hidden}, ${N} examples, noise ${c.noise ? 'on (fixed draw)' : 'off'}`);
  console.log(fmt(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const t of table) console.log(fmt(t));
  const failed = rows.filter((row) => !row.ok).length;
  console.log(failed === 0 ? `all ${rows.length} checks passed` : `${failed} of ${rows.length} checks FAILED`);
  return failed === 0;
}
