// `mixtape report`: reads run directories (see schema.ts) and renders one self-contained
// HTML file: inline CSS and inline SVG charts, no scripts, no fonts, no URLs, so it can
// be mailed, archived or opened offline and always shows the same thing.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CompareManifest, CorpusFloors, RunConfig, TrainRecord, ValRecord } from './schema.js';
import { visibleText } from './expert-contexts.js';
import { esc, fmt, heatmap, lineChart, maxOf, minOf, type RefLine, type Series } from './svg.js';

export interface LoadedRun {
  /** The run directory it was read from. */
  dir: string;
  config: RunConfig;
  train: TrainRecord[];
  val: ValRecord[];
}

export interface ReportOptions {
  /** Page title; by default derived from the runs' labels. */
  title?: string;
  /** A free-text note shown under the title (e.g. the compare manifest's note). */
  note?: string;
  /** Shown in the header when given; left out by default so the output is reproducible. */
  generatedAt?: string;
  /** Order the experts of the domain × expert heatmap by their dominant domain (default true). */
  reorderExperts?: boolean;
}

// ---------------------------------------------------------------------------------------
// Loading

function readJson(path: string): unknown {
  if (!existsSync(path)) throw new Error(`${path}: file not found`);
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`${path}: invalid JSON (${(e as Error).message})`);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Checks the fields the report reads, so a wrong file fails here with its name, not as NaN in a chart. */
function checkConfig(v: unknown, path: string): RunConfig {
  if (!isObject(v)) throw new Error(`${path}: expected a JSON object (RunConfig)`);
  const types: Record<string, string> = { model: 'string', label: 'string', experts: 'number', k: 'number', parameters: 'number', steps: 'number' };
  for (const [field, type] of Object.entries(types)) {
    if (typeof v[field] !== type) throw new Error(`${path}: field "${field}" must be a ${type}`);
  }
  if (!isObject(v.opsPerToken) || typeof v.opsPerToken.excludingSoftmax !== 'number') {
    throw new Error(`${path}: field "opsPerToken.excludingSoftmax" must be a number`);
  }
  return v as unknown as RunConfig;
}

const NULLABLE_FIELDS = ['cvImportance', 'cvLoad', 'gateEntropy', 'importance', 'load', 'expertCounts', 'domainExpert', 'gflops'] as const;

/**
 * Parses metrics.jsonl. A final line without its newline that does not parse is the
 * record being written when the run was interrupted: it is skipped. Any other bad line
 * is an error naming the file and line. When a resumed run logs a step again, the later
 * record wins. Takes the raw bytes: a long run's log can outgrow V8's largest string.
 */
export function parseMetrics(data: Buffer | string, path: string): { train: TrainRecord[]; val: ValRecord[] } {
  const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const train = new Map<number, TrainRecord>(), val = new Map<number, ValRecord>();
  for (let start = 0, lineNo = 1; start < buf.length; lineNo++) {
    const newline = buf.indexOf(0x0a, start);
    const end = newline < 0 ? buf.length : newline;
    const line = buf.toString('utf8', start, end);
    start = end + 1;
    if (line.trim() === '') continue;
    let rec: unknown;
    try {
      rec = JSON.parse(line);
    } catch (e) {
      if (newline < 0) break; // truncated last line: no newline after it
      throw new Error(`${path}:${lineNo}: invalid JSON (${(e as Error).message})`);
    }
    if (!isObject(rec) || typeof rec.step !== 'number' || typeof rec.loss !== 'number') {
      throw new Error(`${path}:${lineNo}: a metrics record needs numeric "step" and "loss"`);
    }
    for (const f of NULLABLE_FIELDS) rec[f] ??= null; // older or partial writers may omit them
    if (rec.type === 'train') train.set(rec.step, rec as unknown as TrainRecord);
    else if (rec.type === 'val') val.set(rec.step, rec as unknown as ValRecord);
    // Other record types (future additions) are ignored.
  }
  const byStep = <T extends { step: number }>(m: Map<number, T>): T[] => [...m.values()].sort((x, y) => x.step - y.step);
  return { train: byStep(train), val: byStep(val) };
}

/** Reads RUN_DIR/config.json and RUN_DIR/metrics.jsonl. */
export function loadRun(dir: string): LoadedRun {
  const config = checkConfig(readJson(join(dir, 'config.json')), join(dir, 'config.json'));
  const metricsPath = join(dir, 'metrics.jsonl');
  if (!existsSync(metricsPath)) throw new Error(`${metricsPath}: file not found`);
  return { dir, config, ...parseMetrics(readFileSync(metricsPath), metricsPath) };
}

/** A compare directory (compare.json lists its runs, in display order) or a single run directory. */
export function loadReportInput(dir: string): LoadedRun[] {
  const manifestPath = join(dir, 'compare.json');
  if (existsSync(manifestPath)) {
    const m = readJson(manifestPath) as Partial<CompareManifest>;
    if (!isObject(m) || !Array.isArray(m.runs) || m.runs.length === 0 || !m.runs.every((r) => typeof r === 'string')) {
      throw new Error(`${manifestPath}: "runs" must be a non-empty list of subdirectory names`);
    }
    return m.runs.map((r) => loadRun(join(dir, r)));
  }
  if (existsSync(join(dir, 'config.json'))) return [loadRun(dir)];
  throw new Error(`${dir}: not a run directory (no config.json) or a compare directory (no compare.json)`);
}

// ---------------------------------------------------------------------------------------
// Statistics

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

/** The last 10 % of the records (at least one): "final" values average over it to smooth batch noise. */
const lastTenth = <T>(xs: T[]): T[] => xs.slice(xs.length - Math.max(1, Math.round(xs.length * 0.1)));

function finalMean(records: TrainRecord[], get: (r: TrainRecord) => number | null): number | null {
  const vals = lastTenth(records).map(get).filter((v): v is number => v !== null && Number.isFinite(v));
  return vals.length > 0 ? mean(vals) : null;
}

/** Splits n records into at most maxBins consecutive groups of near-equal size. */
function binRanges(n: number, maxBins: number): Array<[number, number]> {
  const bins = Math.min(n, maxBins);
  return Array.from({ length: bins }, (_, b) => [Math.floor((b * n) / bins), Math.floor(((b + 1) * n) / bins)]);
}

/** Mean step and mean value per bin: thousands of noisy train steps become a readable line. */
function binned<R extends { step: number }>(records: R[], get: (r: R) => number | null, maxBins = 300): Array<[number, number]> {
  return binRanges(records.length, maxBins).map(([a, b]) => {
    const slice = records.slice(a, b);
    const vals = slice.map(get).filter((v): v is number => v !== null && Number.isFinite(v));
    return [mean(slice.map((r) => r.step)), vals.length > 0 ? mean(vals) : NaN];
  });
}

/** Validation points get a dot (with a tooltip) each, unless there are so many that dots would be noise. */
const MAX_MARKERS = 100;

const isMoE = (run: LoadedRun): boolean =>
  run.train.some((r) => r.cvLoad !== null || r.importance !== null) || run.val.some((r) => r.cvLoad !== null);

const pct = (v: number): string => (Number.isFinite(v) ? `${fmt(v * 100, 3)} %` : 'no data');

const color = (i: number): string => `var(--c${i % 10})`;

/** Past 10 runs the colours repeat, so the repeats get a dashed line. */
const dashFor = (i: number): string | undefined => (i >= 10 ? '7 3' : undefined);

const bestVal = (run: LoadedRun): ValRecord | null =>
  run.val.reduce<ValRecord | null>((best, r) => (best === null || r.loss < best.loss ? r : best), null);

/** The corpus floors to draw: the first run's that has them (a compare shares one corpus). */
function sharedFloors(runs: LoadedRun[]): { floors: CorpusFloors; from: LoadedRun; differ: boolean } | null {
  const from = runs.find((r) => r.config.floors);
  if (!from) return null;
  const key = JSON.stringify(from.config.floors);
  return { floors: from.config.floors!, from, differ: runs.some((r) => r.config.floors && JSON.stringify(r.config.floors) !== key) };
}

// ---------------------------------------------------------------------------------------
// HTML pieces

function figure(title: string, svg: string, caption: string, legendHtml = ''): string {
  return `<figure><h3>${esc(title)}</h3>${svg}${legendHtml}<figcaption>${caption}</figcaption></figure>`;
}

/** HTML legend (wraps for many runs): a swatch and label per item. */
function legend(items: Array<{ label: string; color: string; dash?: boolean }>, note = ''): string {
  const spans = items.map((it) => `<span><i class="${it.dash ? 'sw dash' : 'sw'}" style="--sw:${it.color}"></i>${esc(it.label)}</span>`).join('');
  return `<div class="legend">${spans}${note ? `<span class="note">${note}</span>` : ''}</div>`;
}

const runLegend = (runs: Array<{ run: LoadedRun; i: number }>, note = ''): string =>
  legend(runs.map(({ run, i }) => ({ label: run.config.label, color: color(i), dash: i >= 10 })), note);

function section(id: string, title: string, body: string): string {
  return `<section id="${id}"><h2>${esc(title)}</h2>${body}</section>`;
}

const noMoE = '<p class="none">No mixture-of-experts run here (only dense models): no routing to show.</p>';

// ---------------------------------------------------------------------------------------
// (a) Loss

function lossChart(runs: LoadedRun[]): string {
  const series: Series[] = [];
  runs.forEach((run, i) => {
    series.push({ name: `${run.config.label} · train`, color: color(i), width: 1.2, opacity: 0.5, points: binned(run.train, (r) => r.loss) });
    if (run.val.length > 0) {
      series.push({ name: `${run.config.label} · validation`, color: color(i), width: 2.2, dash: dashFor(i), markers: run.val.length <= MAX_MARKERS, points: binned(run.val, (r) => r.loss) });
    }
  });
  const shared = sharedFloors(runs);
  const refLines: RefLine[] = shared ? [
    { y: shared.floors.knownDomain, label: `known domain ${fmt(shared.floors.knownDomain, 4)}`, color: 'var(--floor1)' },
    { y: shared.floors.bayes, label: `Bayes ${fmt(shared.floors.bayes, 4)}`, color: 'var(--floor2)' },
    { y: shared.floors.pooledBigram, label: `pooled bigram ${fmt(shared.floors.pooledBigram, 4)}`, color: 'var(--floor3)' },
    { y: shared.floors.uniform, label: `uniform ${fmt(shared.floors.uniform, 4)}`, color: 'var(--muted)' },
  ] : [];
  // Log y, bottom just under the lowest floor or loss. The top is the highest loss but at
  // most the uniform loss (where every run starts, so the first steps do not squash the
  // interesting end), and at least the pooled-bigram floor (so all three floors show).
  const ys = series.flatMap((s) => s.points.map((p) => p[1])).filter((v) => Number.isFinite(v) && v > 0);
  const f = shared?.floors;
  const lo = minOf(ys, f ? Math.min(f.knownDomain, f.bayes, f.pooledBigram) : Infinity) * 0.96;
  const hi = f ? Math.max(Math.min(maxOf(ys), f.uniform), f.pooledBigram, f.bayes, f.knownDomain) * 1.04 : maxOf(ys) * 1.02;
  const svg = lineChart({
    title: 'Loss vs step', series, refLines, xLabel: 'step', yLabel: 'loss (nats/token, log scale)',
    yScale: 'log', yDomain: ys.length > 0 ? [lo, hi] : undefined,
  });
  const floorNote = shared
    ? ` Dashed horizontal lines are the corpus floors${shared.differ ? ` (of ${esc(shared.from.config.label)}; the runs' corpora differ)` : ''}: no model can beat the Bayes line on this validation set, the known-domain line would need the domain as input, and a model below the pooled-bigram line is using the domain it infers from context.`
    : '';
  return figure('Loss vs step', svg,
    `Thin lines: training loss (mean over bins of steps); thick lines with dots: validation loss. Lower is better; the y axis is logarithmic.${floorNote}`,
    runLegend(runs.map((run, i) => ({ run, i })), 'thin = train, thick + dots = validation'));
}

// ---------------------------------------------------------------------------------------
// (b) Per-expert importance and load over time

/** Each record's vector as shares of its sum (the batch), binned over steps; rows = experts. */
function shareMatrix(records: TrainRecord[], get: (r: TrainRecord) => number[] | null, experts: number, ranges: Array<[number, number]>): number[][] {
  const rows = Array.from({ length: experts }, () => new Array<number>(ranges.length).fill(NaN));
  ranges.forEach(([a, b], c) => {
    const sums = new Array<number>(experts).fill(0);
    let n = 0;
    for (const r of records.slice(a, b)) {
      const v = get(r);
      const total = v ? v.reduce((x, y) => x + y, 0) : 0;
      if (!v || !(total > 0)) continue;
      v.forEach((x, e) => { if (e < experts) sums[e]! += x / total; });
      n++;
    }
    if (n > 0) sums.forEach((s, e) => { rows[e]![c] = s / n; });
  });
  return rows;
}

/** Bin edges in steps: midway between neighbouring bins, half a step spacing at the ends. */
function stepEdges(records: TrainRecord[], ranges: Array<[number, number]>): number[] {
  const first = (c: number): number => records[ranges[c]![0]]!.step;
  const last = (c: number): number => records[ranges[c]![1] - 1]!.step;
  const spacing = records.length > 1 ? (records.at(-1)!.step - records[0]!.step) / (records.length - 1) : 1;
  const edges = [first(0) - spacing / 2];
  for (let c = 1; c < ranges.length; c++) edges.push((last(c - 1) + first(c)) / 2);
  edges.push(last(ranges.length - 1) + spacing / 2);
  return edges;
}

function expertHeatmaps(run: LoadedRun): string {
  const recs = run.train.filter((r) => r.importance !== null || r.load !== null);
  const experts = maxOf(recs.map((r) => Math.max(r.importance?.length ?? 0, r.load?.length ?? 0)), 0);
  if (recs.length === 0 || experts === 0) return '';
  // Fewer columns for many experts: the cell count, hence the file size, stays bounded.
  const ranges = binRanges(recs.length, Math.max(20, Math.min(120, Math.floor(6000 / experts))));
  const edges = stepEdges(recs, ranges);
  const imp = shareMatrix(recs, (r) => r.importance, experts, ranges);
  const load = shareMatrix(recs, (r) => r.load, experts, ranges);
  const finite = [...imp.flat(), ...load.flat()].filter(Number.isFinite);
  // Never let a perfectly balanced run fill the whole scale: uniform sits at most mid-way.
  const vmax = maxOf(finite, 2 / experts);
  const rowLabels = Array.from({ length: experts }, (_, e) => `e${e}`);
  const one = (what: string, values: number[][]): string => heatmap({
    title: `${run.config.label}: ${what} share per expert`, values, rowLabels, columns: { edges },
    xLabel: 'step', yLabel: 'expert', vmax, colorLabel: 'share of batch',
    mark: { value: 1 / experts, label: `uniform share 1/${experts}` }, rowHeight: Math.max(14, 100 / experts),
    tooltip: (e, c, v) => `expert ${e}, steps ${Math.round(edges[c]!)}–${Math.round(edges[c + 1]!)}: ${pct(v)}`,
    rowTooltip: (e) => `expert ${e}: ${pct(values[e]![0]!)} at the start, ${pct(values[e]!.at(-1)!)} at the end`,
  });
  const cell = (what: string, values: number[][]): string => `<div><h4>${what === 'importance' ? 'Importance' : 'Load'}</h4>${one(what, values)}</div>`;
  return `<div class="pair"><h3>${esc(run.config.label)}</h3><div class="grid2">${cell('importance', imp)}${cell('load', load)}</div>` +
    `<figcaption>Left: importance (sum of gate values), right: load (expected number of examples) of each expert, as its share of the batch total. ` +
    `Each row is an expert, each column a bin of training steps; a balanced layer is an even colour near the ▸ mark on the scale (1/${experts}); bright rows are experts that take more than their share, dark rows starve.</figcaption></div>`;
}

function expertSection(runs: LoadedRun[]): string {
  const parts = runs.filter(isMoE).map(expertHeatmaps).filter((s) => s !== '');
  return section('experts', 'Expert importance and load over time', parts.length > 0 ? parts.join('') : noMoE);
}

// ---------------------------------------------------------------------------------------
// (c) CV of importance and load, (e) gate entropy

function cvChart(runs: LoadedRun[]): string {
  const moe = runs.map((run, i) => ({ run, i })).filter(({ run }) => isMoE(run));
  if (moe.length === 0) return noMoE;
  const series: Series[] = moe.flatMap(({ run, i }) => [
    { name: `${run.config.label} · CV(importance)`, color: color(i), width: 1.8, points: binned(run.train, (r) => r.cvImportance) },
    { name: `${run.config.label} · CV(load)`, color: color(i), width: 1.8, dash: '6 3', points: binned(run.train, (r) => r.cvLoad) },
  ]);
  const ys = series.flatMap((s) => s.points.map((p) => p[1])).filter((v) => Number.isFinite(v));
  const pos = ys.filter((v) => v > 0);
  // Strictly balanced gating gives CV(load) = 0 exactly; such values sit on the bottom edge.
  const lo = pos.length > 0 ? Math.max(1e-3, minOf(pos) * 0.8) : 1e-3;
  const hi = pos.length > 0 ? Math.max(lo * 10, maxOf(pos) * 1.25) : 1;
  const svg = lineChart({ title: 'Coefficient of variation of importance and load', series, xLabel: 'step', yLabel: 'CV (log scale)', yScale: 'log', yDomain: [lo, hi] });
  return figure('Balance: CV(importance) and CV(load)', svg,
    'Coefficient of variation (standard deviation / mean over experts) of each training batch\'s importance (solid) and load (dashed). ' +
    '0 means perfectly balanced experts; the balancing losses push these down. The y axis is logarithmic; exact zeros are drawn on the bottom edge.',
    runLegend(moe, 'solid = CV(importance), dashed = CV(load)'));
}

function entropyChart(runs: LoadedRun[]): string {
  const moe = runs.map((run, i) => ({ run, i })).filter(({ run }) => isMoE(run));
  if (moe.length === 0) return noMoE;
  const series: Series[] = moe.flatMap(({ run, i }) => {
    const s: Series[] = [{ name: `${run.config.label} · train`, color: color(i), width: 1.2, opacity: 0.55, points: binned(run.train, (r) => r.gateEntropy) }];
    const val = run.val.filter((r) => r.gateEntropy !== null);
    if (val.length > 0) s.push({ name: `${run.config.label} · validation`, color: color(i), width: 2.2, dash: dashFor(i), markers: val.length <= MAX_MARKERS, points: binned(val, (r) => r.gateEntropy) });
    return s;
  });
  // A token's top-k gates have entropy at most ln k (an even split among its k experts).
  const ks = [...new Set(moe.filter(({ run }) => run.config.model !== 'hmoe' && run.config.k > 1).map(({ run }) => run.config.k))];
  const refLines: RefLine[] = ks.map((k) => ({ y: Math.log(k), label: `ln ${k} (even over k=${k})` }));
  const ys = series.flatMap((s) => s.points.map((p) => p[1])).concat(refLines.map((r) => r.y)).filter(Number.isFinite);
  const svg = lineChart({ title: 'Gate entropy', series, refLines, xLabel: 'step', yLabel: 'gate entropy (nats)', yDomain: [0, maxOf(ys, 0.1) * 1.08] });
  return figure('Gate entropy', svg,
    'Mean entropy of each token\'s gate distribution over experts: near 0 a single expert takes almost all of a token\'s weight, near ln k the weight is split evenly among its k chosen experts.',
    runLegend(moe, 'thin = train, thick + dots = validation'));
}

// ---------------------------------------------------------------------------------------
// (d) Domain × expert specialization

/** Experts ordered by the domain that routes the largest share of its tokens to them, then by that share. */
function expertOrder(shares: number[][], experts: number): number[] {
  const dominant = Array.from({ length: experts }, (_, e) => {
    let best = -1, share = 0;
    shares.forEach((row, d) => { if (row[e]! > share) { share = row[e]!; best = d; } });
    return { e, d: best < 0 ? Infinity : best, share }; // unused experts go last
  });
  return dominant.sort((a, b) => a.d - b.d || b.share - a.share || a.e - b.e).map((x) => x.e);
}

function specialization(run: LoadedRun, reorder: boolean): string {
  const rec = [...run.val].reverse().find((r) => r.domainExpert !== null && r.domainExpert.length > 0);
  if (!rec) return '';
  const counts = rec.domainExpert!;
  const experts = Math.max(...counts.map((row) => row.length));
  const shares = counts.map((row) => {
    const total = row.reduce((a, b) => a + b, 0);
    return Array.from({ length: experts }, (_, e) => (total > 0 ? (row[e] ?? 0) / total : 0));
  });
  const order = reorder ? expertOrder(shares, experts) : shares[0]!.map((_, e) => e);
  const values = shares.map((row) => order.map((e) => row[e]!));
  const svg = heatmap({
    title: `${run.config.label}: domain × expert routing`, values,
    rowLabels: counts.map((_, d) => `domain ${d}`), columns: { labels: order.map((e) => `e${e}`) },
    xLabel: reorder ? 'expert (ordered by dominant domain)' : 'expert', yLabel: 'domain',
    vmax: maxOf(values.flat(), 1e-9), colorLabel: 'share of domain', rowHeight: 26,
    width: Math.min(1040, Math.max(420, 220 + experts * 46)),
    mark: { value: 1 / experts, label: `uniform 1/${experts}` },
    cellText: (v) => (v >= 0.005 ? Math.round(v * 100).toString() : ''),
    tooltip: (d, c, v) => `domain ${d} → expert ${order[c]}: ${pct(v)} (${counts[d]![order[c]!] ?? 0} tokens)`,
  });
  return figure(`${run.config.label}: domain × expert routing (validation, step ${rec.step})`, svg,
    `Each row is a domain of the synthetic corpus and shows how its validation tokens were split among the experts (rows sum to 100 %; numbers in cells are percent). ` +
    (reorder ? 'Experts are reordered by the domain that sends them the largest share, so a specialized layer shows a block diagonal; labels keep the original expert numbers. ' : '') +
    `Even rows mean the router ignores the domain.`);
}

/** Appendix E, Table 9: per expert, the validation contexts with the highest gate values for it. */
function contextsTable(run: LoadedRun): string {
  const rec = [...run.val].reverse().find((r) => Array.isArray(r.expertContexts) && r.expertContexts.length > 0);
  if (!rec) return '';
  const rows = rec.expertContexts!.map((contexts, e) => {
    const cells = contexts.map((c) => `<span class="ctx" title="gate ${c.gate.toFixed(3)}">${esc(visibleText(c.before))}<b>${esc(visibleText(c.token))}</b>${esc(visibleText(c.after))}</span>`);
    return `<tr><td>e${e}</td><td>${cells.length ? cells.join(' ') : '<span class="none">(never chosen)</span>'}</td></tr>`;
  }).join('');
  return `<figure><h3>${esc(run.config.label)}: contexts each expert is most strongly gated on (validation, step ${rec.step})</h3>` +
    `<div class="table"><table class="contexts"><thead><tr><th>Expert</th><th>Highest-gate contexts, best first (the gated token in bold; hover for the gate value)</th></tr></thead><tbody>${rows}</tbody></table></div>` +
    '<figcaption>As the paper\'s Table 9 (Appendix E): for each expert, the input tokens of the validation set with the highest gate value for that expert, with the text around them. ' +
    'Experts that specialise show a common thread per row — a character class or punctuation (syntax), or a topic (semantics). ⏎ marks a line break.</figcaption></figure>';
}

function specializationSection(runs: LoadedRun[], reorder: boolean): string {
  const parts = runs.filter(isMoE).map((r) => specialization(r, reorder) + contextsTable(r)).filter((s) => s !== '');
  const body = parts.length > 0 ? parts.join('')
    : '<p class="none">No run has domain × expert counts or expert contexts (they need a MoE model and a validation pass: the synthetic corpus gives the domain × expert table, a --text corpus the contexts table).</p>';
  return section('specialization', 'Expert specialization', body);
}

// ---------------------------------------------------------------------------------------
// (f) Summary table

interface Summary {
  run: LoadedRun;
  finalTrain: number | null;
  best: ValRecord | null;
  last: ValRecord | null;
  gap: number | null;
  cvLoad: number | null;
  tokensPerSec: number | null;
  gflops: number | null;
}

function summarize(run: LoadedRun): Summary {
  const last = run.val.at(-1) ?? null;
  const bayes = run.config.floors?.bayes;
  return {
    run, last, best: bestVal(run),
    finalTrain: finalMean(run.train, (r) => r.loss),
    gap: last && bayes !== undefined ? last.loss - bayes : null,
    cvLoad: finalMean(run.train, (r) => r.cvLoad),
    tokensPerSec: finalMean(run.train, (r) => r.tokensPerSec),
    gflops: finalMean(run.train, (r) => r.gflops),
  };
}

const num = (v: number | null | undefined, f: (v: number) => string): string => (v === null || v === undefined || !Number.isFinite(v) ? '—' : f(v));
const fixed = (d: number) => (v: number): string => v.toFixed(d);

function summaryTable(runs: LoadedRun[]): string {
  const rows = runs.map(summarize);
  const bestLoss = minOf(rows.map((r) => r.best?.loss ?? Infinity));
  const head = ['Run', 'Model', 'Experts', 'k', 'Parameters', 'Ops/token', 'Final train loss', 'Best val loss', 'Best val ppl', 'Final val loss', 'Final val ppl', 'Gap to Bayes', 'CV(load)', 'Tokens/s', 'GFLOP/s'];
  const body = rows.map((s, i) => {
    const c = s.run.config;
    const dense = c.model === 'dense';
    const isBest = s.best !== null && s.best.loss === bestLoss;
    const cells = [
      `<td class="run"><i class="sw" style="--sw:${color(i)}"></i>${esc(c.label)}</td>`,
      `<td>${esc(c.model)}</td>`,
      `<td>${dense ? '—' : c.groups ? `${c.groups}×${c.experts}` : c.experts}</td>`,
      `<td>${dense ? '—' : c.k}</td>`,
      `<td title="${c.parameters}">${fmt(c.parameters)}</td>`,
      `<td title="${c.opsPerToken.excludingSoftmax}">${fmt(c.opsPerToken.excludingSoftmax)}</td>`,
      `<td>${num(s.finalTrain, fixed(3))}</td>`,
      `<td${isBest ? ' class="best" title="best validation loss"' : ''}>${num(s.best?.loss, fixed(3))}${s.best ? ` <small>@${s.best.step}</small>` : ''}</td>`,
      `<td>${num(s.best?.perplexity, fixed(2))}</td>`,
      `<td>${num(s.last?.loss, fixed(3))}</td>`,
      `<td>${num(s.last?.perplexity, fixed(2))}</td>`,
      `<td>${num(s.gap, (v) => (v >= 0 ? '+' : '') + v.toFixed(3))}</td>`,
      `<td>${num(s.cvLoad, fixed(3))}</td>`,
      `<td>${num(s.tokensPerSec, (v) => fmt(v))}</td>`,
      `<td>${num(s.gflops, (v) => v.toPrecision(3))}</td>`,
    ];
    return `<tr>${cells.join('')}</tr>`;
  }).join('');
  return section('summary', 'Summary',
    `<div class="table"><table><thead><tr>${head.map((h) => `<th>${h}</th>`).join('')}</tr></thead><tbody>${body}</tbody></table></div>` +
    '<p class="caption">Final train loss, CV(load) and tokens/s average the last 10 % of training steps. Best and final val are the lowest and the last validation loss (perplexity = e<sup>loss</sup>); ' +
    'gap to Bayes = final validation loss − the corpus\'s Bayes floor (nats/token). Ops/token: forward multiply-adds per token, excluding the softmax (the paper\'s ops/timestep). ' +
    'GFLOP/s: achieved floating-point operations per second, counted as the paper counts its TFLOPS/GPU (§5.1): forward and backward, softmax included, a multiply-add as 2 FLOPs and the backward pass as twice the forward (6 × the forward multiply-adds per token × tokens/s); compare it with the machine\'s peak to see what fraction the model uses. The best validation loss is highlighted.</p>');
}

// ---------------------------------------------------------------------------------------
// (g) Router comparison (#13): MoE runs with different gating kinds side by side

/** Experts a token's output comes from (on average): the compute each router spends per token. */
function expertsPerToken(c: RunConfig): number {
  if (c.gating === 'switch' || c.gating === 'hash') return 1;
  if (c.gating === 'gshard') return 2;
  if (c.gating === 'expert-choice') return c.capacityFactor ?? c.k;
  if (c.gating === 'deepseek') return c.k + (c.sharedExperts ?? 0);
  if (c.gating === 'softmax') return c.experts;
  return c.k;
}

/**
 * I(domain; expert) in bits from the validation's [domain][expert] route counts: 0 when the
 * router ignores the domain, at most log₂(domains) when each domain has experts of its own.
 */
export function domainExpertInformation(counts: number[][]): number | null {
  const total = counts.flat().reduce((a, b) => a + b, 0);
  if (!(total > 0)) return null;
  const experts = Math.max(...counts.map((row) => row.length));
  const pd = counts.map((row) => row.reduce((a, b) => a + b, 0) / total);
  const pe = Array.from({ length: experts }, (_, e) => counts.reduce((a, row) => a + (row[e] ?? 0), 0) / total);
  let bits = 0;
  counts.forEach((row, d) => row.forEach((n, e) => { if (n > 0) bits += (n / total) * Math.log2(n / total / (pd[d]! * pe[e]!)); }));
  return Math.max(0, bits);
}

/** The busiest expert's share of a step's routes × E: 1 is perfect balance; the capacity factor that step needed to drop nothing. */
const peakLoad = (r: TrainRecord): number | null => {
  const c = r.expertCounts;
  const total = c ? c.reduce((a, b) => a + b, 0) : 0;
  return c && total > 0 ? (Math.max(...c) / total) * c.length : null;
};

/** Whether the report compares routers: MoE runs of more than one gating kind. */
const comparesRouters = (runs: LoadedRun[]): boolean => new Set(runs.filter((r) => isMoE(r) && r.config.model === 'moe').map((r) => r.config.gating)).size > 1;

function routerSection(runs: LoadedRun[]): string {
  const moe = runs.map((run, i) => ({ run, i })).filter(({ run }) => isMoE(run) && run.config.model === 'moe');
  const floors = sharedFloors(runs)?.floors;
  const dense = runs.find((r) => r.config.model === 'dense');
  const denseLoss = dense?.val.at(-1)?.loss;
  const signed = (v: number): string => (v >= 0 ? '+' : '') + v.toFixed(3);
  const head = ['Router', 'Gating', 'Experts/token × hidden', 'Ops/token', 'Final val loss', 'Gap to Bayes', 'Gap to known domain', 'Gap to pooled bigram', 'vs dense',
    'CV(load) train', 'CV(load) val', 'Peak/mean load', 'Dropped (whole run)', 'Dropped (last 10 %)', 'Router z', 'I(domain; expert)'];
  const body = moe.map(({ run, i }) => {
    const c = run.config, last = run.val.at(-1) ?? null;
    const dropped = run.train.some((r) => r.droppedFraction !== undefined);
    const de = [...run.val].reverse().find((r) => r.domainExpert !== null && r.domainExpert.length > 0);
    const info = de ? domainExpertInformation(de.domainExpert!) : null;
    const allDropped = run.train.map((r) => r.droppedFraction ?? 0);
    const cells = [
      `<td class="run"><i class="sw" style="--sw:${color(i)}"></i>${esc(c.label)}</td>`,
      `<td>${esc(c.gating)}${c.capacityFactor !== undefined ? ` <small>cf ${fmt(c.capacityFactor)}</small>` : ''}${c.sharedExperts ? ` <small>+${c.sharedExperts} shared</small>` : ''}</td>`,
      `<td>${fmt(expertsPerToken(c))} × ${c.expertHidden}</td>`,
      `<td title="${c.opsPerToken.excludingSoftmax}">${fmt(c.opsPerToken.excludingSoftmax)}</td>`,
      `<td>${num(last?.loss, fixed(4))}</td>`,
      `<td>${num(last && floors ? last.loss - floors.bayes : null, signed)}</td>`,
      `<td>${num(last && floors ? last.loss - floors.knownDomain : null, signed)}</td>`,
      `<td>${num(last && floors ? last.loss - floors.pooledBigram : null, signed)}</td>`,
      `<td>${num(last && denseLoss !== undefined ? last.loss - denseLoss : null, signed)}</td>`,
      `<td>${num(finalMean(run.train, (r) => r.cvLoad), fixed(3))}</td>`,
      `<td>${num(last?.cvLoad, fixed(3))}</td>`,
      `<td>${num(finalMean(run.train, peakLoad), fixed(2))}</td>`,
      `<td>${dropped ? pct(mean(allDropped)) : '—'}</td>`,
      `<td>${dropped ? pct(finalMean(run.train, (r) => r.droppedFraction ?? 0) ?? NaN) : '—'}</td>`,
      `<td>${num(finalMean(run.train, (r) => r.routerZLoss ?? null), (v) => v.toPrecision(3))}</td>`,
      `<td>${info === null ? '—' : `${info.toFixed(3)} bits`}</td>`,
    ];
    return `<tr>${cells.join('')}</tr>`;
  }).join('');
  const domains = moe[0]?.run.config.domains;
  const table = `<div class="table"><table class="routers"><thead><tr>${head.map((h) => `<th>${h}</th>`).join('')}</tr></thead><tbody>${body}</tbody></table></div>` +
    '<p class="caption">Every router trains the same language model on the same data and budget; only the MoE layer\'s router differs. ' +
    'Experts/token × hidden: the experts whose output a token receives (on average: Expert Choice\'s capacity factor; DeepSeek\'s routed plus shared experts) times their hidden size — the matched active compute (Ops/token adds the gating matmuls, which are not matched). ' +
    'Final val loss: the last validation; the gaps are to the corpus floors (Bayes: no model can go lower; known domain: would need the domain as input; below pooled bigram: the model uses the domain it infers) and to the dense baseline. ' +
    'CV(load) train averages the last 10 % of steps. Peak/mean load: the busiest expert\'s routes ÷ the mean over experts (last 10 % of steps): 1 is perfect balance, and it is the capacity factor a step needed to drop nothing. ' +
    'Dropped: routes dropped over capacity ÷ routes (— : no capacity factor, nothing dropped). Router z: mean logsumexp(router logits)² (ST-MoE), whether or not it is in the loss (— : no router logits, or not recorded). ' +
    `I(domain; expert): mutual information between a validation route\'s domain and its expert, from the last domain × expert counts: 0 when routing ignores the domain${domains ? `, at most log₂ ${domains} = ${Math.log2(domains).toFixed(3)} bits` : ''}.</p>`;
  const notes: string[] = [];
  if (moe.some(({ run }) => run.config.gating === 'expert-choice')) {
    notes.push('Expert Choice in a language model: each expert chooses among the tokens of the same time step across the batch (the MoE groups its [batch, time] input by time step), so routing never uses a later position of the same sequence; it does depend on the other sequences of the batch at that step, in training and validation alike.');
  }
  if (moe.some(({ run }) => run.config.gating === 'hash')) notes.push('Hash routing learns nothing: a fixed hash of the input token id picks the expert, the control for learned routing.');
  const noteHtml = notes.map((n) => `<p class="caption">${esc(n)}</p>`).join('');
  // Utilisation over time: the peak/mean load of every router, binned over steps.
  const series: Series[] = moe.map(({ run, i }) => ({ name: run.config.label, color: color(i), width: 1.8, dash: dashFor(i), points: binned(run.train, peakLoad) }));
  const ys = series.flatMap((s) => s.points.map((p) => p[1])).filter(Number.isFinite);
  const util = figure('Expert utilisation over time: peak/mean load per router', lineChart({
    title: 'Peak/mean expert load', series, refLines: [{ y: 1, label: 'perfect balance' }], xLabel: 'step', yLabel: 'busiest expert ÷ mean (log scale)',
    yScale: 'log', yDomain: [0.95, Math.max(2, maxOf(ys, 2) * 1.1)],
  }), 'Per training batch, the busiest expert\'s routes ÷ the mean over experts (binned over steps). Near 1 every expert is used evenly; a router that collapses onto a few experts climbs toward E. ' +
    'Each router\'s per-expert load over time is in <a href="#experts">Expert importance and load over time</a>, and its domain × expert routing in <a href="#specialization">Expert specialization</a>.', runLegend(moe));
  const anyDrop = moe.some(({ run }) => run.train.some((r) => (r.droppedFraction ?? 0) > 0));
  const drop = anyDrop ? figure('Dropped fraction over time', lineChart({
    title: 'Dropped fraction', series: moe.filter(({ run }) => run.train.some((r) => r.droppedFraction !== undefined))
      .map(({ run, i }) => ({ name: run.config.label, color: color(i), width: 1.8, dash: dashFor(i), points: binned(run.train, (r) => r.droppedFraction ?? null) })),
    xLabel: 'step', yLabel: 'routes dropped over capacity', yDomain: [0, 1],
  }), 'Routes dropped over expert capacity ⌈capacityFactor·k·N/E⌉ ÷ routes, per training batch (binned over steps); a dropped route adds nothing to its token, which the residual connection carries on.', runLegend(moe))
    : '<p class="none">No run dropped a route (no capacity factor was given, or no expert ever reached its capacity).</p>';
  return section('routers', 'Router comparison', table + noteHtml + util + drop);
}

// ---------------------------------------------------------------------------------------
// Page

const pageTitle = (runs: LoadedRun[], o: ReportOptions): string =>
  o.title ?? (runs.length === 1 ? `mixtape report: ${runs[0]!.config.label}` : `mixtape compare: ${runs.length} runs`);

function header(runs: LoadedRun[], o: ReportOptions): string {
  const title = pageTitle(runs, o);
  const c = runs[0]!.config;
  const facts = [
    `data: ${c.data}`, `vocabulary ${c.vocabSize}`, c.domains ? `${c.domains} domains` : '',
    `${c.steps} steps × batch ${c.batch} × ${c.seqLen} tokens`, `backend ${c.backend}`,
  ].filter((s) => s !== '');
  const floors = sharedFloors(runs)?.floors;
  const floorLine = floors
    ? `<p class="meta">Corpus floors (nats/token): known domain ${fmt(floors.knownDomain, 4)} · Bayes ${fmt(floors.bayes, 4)} · pooled bigram ${fmt(floors.pooledBigram, 4)} · uniform ${fmt(floors.uniform, 4)}</p>`
    : '';
  return `<header><h1>${esc(title)}</h1><p class="meta">${esc(facts.join(' · '))}${o.generatedAt ? ` · generated ${esc(o.generatedAt)}` : ''}</p>` +
    floorLine + (o.note ? `<p class="note">${esc(o.note)}</p>` : '') + '</header>';
}

function configDetails(runs: LoadedRun[]): string {
  const items = runs.map((r) => `<h4>${esc(r.config.label)} <small>${esc(r.dir)}</small></h4><pre>${esc(JSON.stringify(r.config, null, 2))}</pre>`).join('');
  return `<details><summary>Run configurations</summary>${items}</details>`;
}

const CSS = `
:root{color-scheme:light dark;--bg:#fff;--fg:#1b1f27;--muted:#5f6877;--grid:#e8eaee;--axis:#98a0ad;--card:#f6f7f9;--border:#dde1e7;--best:#d9f2d6;
--floor1:#7a5195;--floor2:#c0392b;--floor3:#b7791f;
--c0:#2f6fb0;--c1:#e8771c;--c2:#3f9a35;--c3:#c8312b;--c4:#8a63b8;--c5:#8c564b;--c6:#d0589f;--c7:#6f7780;--c8:#a8a82a;--c9:#17a6bd}
@media (prefers-color-scheme:dark){:root{--bg:#14171c;--fg:#e3e6eb;--muted:#9aa3b1;--grid:#282d35;--axis:#5c6574;--card:#1b1f26;--border:#2e343d;--best:#1e4424;
--floor1:#c39bdf;--floor2:#ff7b6e;--floor3:#f0b657;
--c0:#6aa7e6;--c1:#ffa155;--c2:#74c866;--c3:#ff6f66;--c4:#b797e6;--c5:#c99a8e;--c6:#f08acb;--c7:#aab1ba;--c8:#d8d85c;--c9:#5fd3e6}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1120px;margin:0 auto;padding:24px 24px 48px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:36px 0 10px;padding-bottom:4px;border-bottom:1px solid var(--border)}
h3{font-size:14px;margin:0 0 6px}h4{margin:14px 0 4px}.pair h4{margin:4px 0 0;font-size:13px;font-weight:600;color:var(--muted)}
.meta,.caption,figcaption,.none,small{color:var(--muted)}
.contexts td{vertical-align:top}.ctx{display:inline-block;margin:1px 8px 1px 0;padding:0 4px;background:var(--bg);border:1px solid var(--border);border-radius:4px;font-family:ui-monospace,monospace;white-space:pre}.meta{margin:2px 0}.note{margin:8px 0;white-space:pre-wrap}
figure{margin:0 0 22px;padding:14px;background:var(--card);border:1px solid var(--border);border-radius:8px;min-width:0}
figcaption,.caption{font-size:13px;margin-top:6px;max-width:80ch}
.pair{margin:0 0 22px;padding:14px;background:var(--card);border:1px solid var(--border);border-radius:8px}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:14px}
.grid2>figure{margin:0}
.chart{display:block;max-width:100%;height:auto}
.chart text{fill:var(--fg);font-size:11px;font-family:inherit}
.chart text.label{fill:var(--muted);font-size:12px}
.chart text.cell{font-size:10px}
.chart .axis{stroke:var(--axis)}.chart .grid{stroke:var(--grid)}.chart .mark{fill:var(--fg)}
.chart .line{fill:none;stroke-linejoin:round;stroke-linecap:round}
.chart .ref line,.chart .ref polyline{stroke-width:1.2}
.legend{display:flex;flex-wrap:wrap;align-items:center;gap:4px 16px;font-size:13px;margin-top:6px}
.legend .note{color:var(--muted)}
.sw{display:inline-block;width:18px;height:0;border-top:3px solid var(--sw);margin:0 6px 3px 0;vertical-align:middle}
.sw.dash{border-top-style:dashed}
.table{overflow-x:auto}
table{border-collapse:collapse;font-size:13px;font-variant-numeric:tabular-nums}
th,td{padding:5px 7px;border-bottom:1px solid var(--border);text-align:right;white-space:nowrap}
th{font-weight:600;vertical-align:bottom;white-space:normal}
th:first-child,td.run{text-align:left}
td.best{background:var(--best);font-weight:700}
details{margin-top:32px}pre{background:var(--card);border:1px solid var(--border);border-radius:6px;padding:10px;overflow-x:auto;font-size:12px}
`;

/** The whole report as one HTML document. */
export function renderReport(runs: LoadedRun[], options: ReportOptions = {}): string {
  if (runs.length === 0) throw new Error('renderReport: no runs to report');
  const body = [
    header(runs, options),
    summaryTable(runs),
    ...(comparesRouters(runs) ? [routerSection(runs)] : []),
    section('loss', 'Loss', lossChart(runs)),
    section('balance', 'Load balance', cvChart(runs)),
    expertSection(runs),
    specializationSection(runs, options.reorderExperts ?? true),
    section('entropy', 'Gate entropy', entropyChart(runs)),
    configDetails(runs),
  ].join('\n');
  return `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">` +
    `<meta name="color-scheme" content="light dark"><title>${esc(pageTitle(runs, options))}</title><style>${CSS}</style></head>\n<body><main>\n${body}\n</main></body></html>\n`;
}

/** The report's stylesheet (charts, tables, colours), reused by the lab page (src/lab/page.ts). */
export { CSS as REPORT_CSS };
