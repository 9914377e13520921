// The lab page (served by `mixtape lab`, bundled into dist/lab.js): build an MoE, train it
// on WebGPU, WebGL2 or the CPU, watch its routing, and poke it.
//
// The engine side is src/lab/host.ts. On every backend (the CPU, WebGPU, and WebGL2 on an
// OffscreenCanvas) it runs in a Web Worker (dist/lab-worker.js) and the page only draws, one
// chart per animation frame while training.
// Charts are the HTML report's (src/report/svg.ts) drawn on canvases (src/lab/canvas-charts.ts),
// with the report's stylesheet.
//
// The repository's tsconfig has no DOM library (the engine must not depend on one), so the
// DOM is reached through `any` here, as in test/browser/page.ts.

import { GATING_KINDS } from '../moe/moe.js';
import { REPORT_CSS } from '../report/render.js';
import { esc, type Series } from '../report/svg.js';
import { drawBars, drawHeatmap, drawLineChart } from './canvas-charts.js';
import type { GradcheckConfig, GradcheckRow } from '../cli/gradcheck.js';
import { host, type Host, type HostMethod, type Summary } from './host.js';
import { DEFAULT_SETTINGS, fixedK, LAB_BACKENDS, type LabBackend, type LabSettings, type RoutedToken, type StepRecord } from './session.js';

const g = globalThis as any;
const doc = g.document;
const $ = (id: string): any => doc.getElementById(id);

// ---- the engine: the lab's worker --------------------------------------------------------

type Result<M extends HostMethod> = Awaited<ReturnType<Host[M]>>;

let worker: any = null;
let nextId = 0;
const waiting = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>();

function startWorker(): any {
  const w = new g.Worker('/lab-worker.js', { type: 'module' });
  w.onmessage = ({ data }: any) => {
    const p = waiting.get(data.id);
    if (!p) return;
    waiting.delete(data.id);
    if ('error' in data) p.reject(new Error(data.error)); else p.resolve(data.result);
  };
  w.onerror = (e: any) => showError(`the lab's worker failed: ${e.message}`);
  return w;
}

/** Calls the host in the worker, where the model lives ('page': on this thread, for what holds no model: decoding a dropped file). */
function call<M extends HostMethod>(method: M, args: Parameters<Host[M]>, on: 'worker' | 'page' = 'worker'): Promise<Result<M>> {
  if (on === 'page') return Promise.resolve().then(() => (host[method] as (...a: unknown[]) => unknown)(...args)) as Promise<Result<M>>;
  worker ??= startWorker();
  const id = ++nextId;
  return new Promise((resolve, reject) => {
    waiting.set(id, { resolve, reject });
    worker.postMessage({ id, method, args });
  });
}

// ---- state ------------------------------------------------------------------------------

let summary: Summary | null = null;
let history: StepRecord[] = [];
let running = false;
/** Pause was pressed: the loop stops after the step in flight (running stays true until then). */
let pauseRequested = false;
let busy = false;

// ---- the page ---------------------------------------------------------------------------

const CSS = `${REPORT_CSS}
body{max-width:1320px} .lab{display:grid;grid-template-columns:330px 1fr;gap:18px} fieldset{border:1px solid var(--border);border-radius:6px;margin:0 0 10px}
label{display:flex;justify-content:space-between;gap:8px;margin:3px 0;font-size:14px} input[type=number]{width:80px} textarea{width:100%;height:70px}
button{margin:2px} #message{min-height:1.4em;font-weight:600} #message.error{color:var(--c3)} #message.ok{color:var(--c2)}
#drop{border:2px dashed var(--border);padding:6px;text-align:center;font-size:13px;color:var(--muted)} #drop.over{border-color:var(--c0)}
.charts{display:grid;grid-template-columns:1fr 1fr;gap:8px} .charts>div{min-width:0;contain:content} .wide{grid-column:1/3}
table.small td,table.small th{padding:1px 6px;font-size:13px;text-align:right} .experts span{display:inline-block;margin:2px 6px}
.pass{color:var(--c2)} .fail{color:var(--c3)}`;

function field(id: string, label: string, value: string | number, type = 'number', extra = ''): string {
  return `<label for="${id}">${label}<input id="${id}" type="${type}" value="${esc(String(value))}" ${extra}></label>`;
}

function select(id: string, label: string, options: readonly string[], value: string): string {
  return `<label for="${id}">${label}<select id="${id}">${options.map((o) => `<option${o === value ? ' selected' : ''}>${o}</option>`).join('')}</select></label>`;
}

function render(): void {
  const d = DEFAULT_SETTINGS;
  doc.head.insertAdjacentHTML('beforeend', `<style>${CSS}</style>`);
  doc.body.innerHTML = `<main><h1>mixtape lab</h1>
<p id="backend-info">no model yet</p><p id="message" role="alert"></p>
<div class="lab"><form id="build-form" onsubmit="return false">
<fieldset><legend>model</legend>${select('model', 'model', ['moe', 'dense', 'hmoe'], d.model)}${select('gating', 'gating', GATING_KINDS, d.gating)}
${field('experts', 'experts', d.experts)}${field('k', 'k', d.k)}${field('groups', 'groups (hmoe)', d.groups)}${field('d', 'd', d.d)}${field('hidden', 'expert hidden', d.expertHidden)}
${field('w-importance', 'w_importance', d.wImportance, 'number', 'step="any"')}${field('w-load', 'w_load', d.wLoad, 'number', 'step="any"')}
<label for="noise">noisy gating<input id="noise" type="checkbox" checked></label>
${field('capacity-factor', 'capacity factor (empty: none)', '', 'number', 'step="any" min="0" placeholder="none"')}${field('w-z-loss', 'w_z-loss', d.wZLoss, 'number', 'step="any"')}
${field('shared-experts', 'shared experts (deepseek)', d.sharedExperts)}</fieldset>
<fieldset><legend>training</legend>${field('batch', 'batch', d.batch)}${field('seq-len', 'sequence length', d.seqLen)}${field('lr', 'learning rate', d.lr, 'number', 'step="any"')}
${field('warmup', 'warm-up steps', d.warmup)}${field('seed', 'seed', d.seed)}</fieldset>
<fieldset><legend>data</legend>${select('data', 'corpus', ['synthetic', 'text'], 'synthetic')}${field('domains', 'domains (synthetic)', 4)}
<div id="drop">drop a UTF-8 text file here, or <input id="file" type="file"></div><textarea id="text" placeholder="…or paste text here (data: text)"></textarea></fieldset>
<fieldset><legend>backend</legend>${select('backend', 'backend', LAB_BACKENDS, 'cpu')}</fieldset>
<button id="build">build</button> <button id="train" disabled>train</button><button id="pause" disabled>pause</button><button id="step" disabled>step</button><button id="reset" disabled>reset</button>
<p>step <b id="step-count">0</b> <span id="speed"></span></p>
<fieldset><legend>run directory</legend><button id="open-run">open the run's checkpoint</button><div id="run-info"></div></fieldset>
<fieldset><legend>download</legend><button id="download-metrics" disabled>metrics.jsonl</button><button id="download-checkpoint" disabled>checkpoint.safetensors</button></fieldset>
</form>
<div><div class="charts" id="charts">${['wide loss-chart', 'cv-chart', 'entropy-chart', 'bars', 'heatmap', 'wide dropped-chart', 'wide domain-table'].map((c) => {
  const [wide, id] = c.includes(' ') ? c.split(' ') : ['', c];
  return `<div${wide ? ' class="wide"' : ''} id="${id}" style="display:none"><h4></h4><canvas class="chart"></canvas></div>`;
}).join('')}</div>
<h2>poke</h2><div id="experts" class="experts"></div>
<p><input id="route-input" size="40" placeholder="a sequence to route"> <button id="route-sample">a validation sequence</button> <button id="route">route</button></p>
<div id="route-table"></div>
<p><button id="gradcheck">float64 gradient checks of this gating (CPU)</button></p><div id="gradcheck-table"></div></div></div></main>`;
}

function showError(text: string): void { const m = $('message'); m.className = 'error'; m.textContent = text; }
function showOk(text: string): void { const m = $('message'); m.className = 'ok'; m.textContent = text; }

// ---- settings from the form --------------------------------------------------------------

let droppedText: { name: string; text: string } | null = null;

function settings(): LabSettings {
  const n = (id: string) => Number($(id).value);
  let data: LabSettings['data'] = { kind: 'synthetic', domains: n('domains') };
  if ($('data').value === 'text') {
    const pasted = String($('text').value);
    if (droppedText) data = { kind: 'text', ...droppedText };
    else if (pasted.trim()) data = { kind: 'text', name: 'pasted text', text: pasted };
    else throw new Error('data: text needs a dropped file or pasted text');
  }
  const capacity = String($('capacity-factor').value).trim();
  return {
    model: $('model').value, gating: $('gating').value, experts: n('experts'), k: n('k'), groups: n('groups'), d: n('d'), expertHidden: n('hidden'),
    wImportance: n('w-importance'), wLoad: n('w-load'), noise: $('noise').checked,
    capacityFactor: capacity === '' ? null : Number(capacity), wZLoss: n('w-z-loss'), sharedExperts: n('shared-experts'), batch: n('batch'), seqLen: n('seq-len'), lr: n('lr'),
    warmup: n('warmup'), seed: n('seed'), data,
  };
}

async function readDropped(file: any): Promise<void> {
  const bytes = new Uint8Array(await file.arrayBuffer());
  try {
    const text = await call('text', [bytes, file.name], 'page');
    droppedText = { name: file.name, text };
    $('data').value = 'text';
    showOk(`${file.name}: ${text.length} characters of text; build to train on it`);
  } catch (e) {
    showError((e as Error).message);
  }
}

// ---- drawing ----------------------------------------------------------------------------

const color = (i: number) => `var(--c${i % 10})`;

/**
 * A chart's place: its caption and canvas (created once, in render()), shown or hidden.
 * Showing or hiding happens when the model changes, not per step: a step repaints pixels only.
 */
function chart(id: string, caption: string | null): any {
  const box = $(id);
  const visible = caption !== null;
  if ((box.style.display !== 'none') !== visible) box.style.display = visible ? '' : 'none';
  if (visible && box.firstChild.textContent !== caption) box.firstChild.textContent = caption;
  return box.lastChild;
}

/** The live view, one part per chart: while training, one part is redrawn per frame (below). */
const parts: Record<string, () => void> = {
  counter() {
    $('step-count').textContent = String(summary!.step);
    const last = history.at(-1);
    if (last) $('speed').textContent = `(${Math.round(last.tokensPerSec)} tokens/s, loss ${last.loss.toFixed(4)})`;
  },
  loss() {
    const fl = summary!.floors;
    drawLineChart(chart('loss-chart', fl ? 'training loss (nats/token) against the synthetic corpus\'s exact floors' : 'training loss (nats/token)'), {
      title: 'training loss (nats/token) against the corpus floors', xLabel: 'step', yLabel: 'loss', width: wide(), height: 280,
      series: [{ name: 'loss', color: color(0), points: points((r) => r.loss) }],
      refLines: fl ? [{ y: fl.knownDomain, label: `known domain ${fl.knownDomain.toFixed(3)}` }, { y: fl.bayes, label: `Bayes ${fl.bayes.toFixed(3)}` },
        { y: fl.pooledBigram, label: `pooled bigram ${fl.pooledBigram.toFixed(3)}` }, { y: fl.uniform, label: `uniform ${fl.uniform.toFixed(3)}` }] : [],
    });
  },
  cv() {
    const series: Series[] = [{ name: 'CV(importance)', color: color(1), points: points((r) => r.cvImportance) }, { name: 'CV(load)', color: color(2), points: points((r) => r.cvLoad) }];
    const canvas = chart('cv-chart', summary!.experts ? 'CV(importance) (orange), CV(load) (green)' : null);
    if (summary!.experts) drawLineChart(canvas, { title: 'CV(importance) and CV(load)', xLabel: 'step', yLabel: 'CV', series, width: half(), height: 240 });
  },
  entropy() {
    const canvas = chart('entropy-chart', summary!.experts ? 'gate entropy (nats)' : null);
    if (summary!.experts) drawLineChart(canvas, { title: 'gate entropy (nats)', xLabel: 'step', yLabel: 'entropy', series: [{ name: 'entropy', color: color(4), points: points((r) => r.gateEntropy) }], width: half(), height: 240 });
  },
  bars() {
    const last = history.at(-1);
    const shown = summary!.experts && last?.importance && last.load;
    const canvas = chart('bars', shown ? 'importance (blue) and load (orange) per expert, last step' : null);
    if (shown) drawBars(canvas, last.importance!, last.load!, color(0), color(1), half());
  },
  dropped() {
    // Where there is capacity: the share of routes dropped over it, per step.
    const shown = history.some((r) => r.droppedFraction !== undefined);
    const canvas = chart('dropped-chart', shown ? 'dropped fraction: routes over the experts\' capacity / all routes' : null);
    if (shown) drawLineChart(canvas, { title: 'dropped fraction', xLabel: 'step', yLabel: 'dropped', series: [{ name: 'dropped', color: color(3), points: points((r) => r.droppedFraction ?? null) }], width: wide(), height: 200 });
  },
  heatmap() {
    // Load share per expert over the last 60 steps: columns are steps, rows experts.
    const recent = history.slice(-60).filter((r) => r.load);
    const canvas = chart('heatmap', summary!.experts && recent.length > 0 ? 'load share per expert, recent steps' : null);
    if (!summary!.experts || recent.length === 0) return;
    const E = summary!.experts;
    const values = Array.from({ length: E }, (_, e) => recent.map((r) => r.load![e]! / Math.max(1e-12, r.load!.reduce((a, b) => a + b, 0))));
    drawHeatmap(canvas, {
      title: 'load share per expert over the recent steps', values, rowLabels: values.map((_, e) => `expert ${e}`), columns: { edges: [...recent.map((r) => r.step - 1), recent.at(-1)!.step] },
      xLabel: 'step', yLabel: 'expert', vmax: Math.max(2 / E, ...values.flat()), colorLabel: 'share of load', mark: { value: 1 / E, label: 'uniform' }, width: half(),
    });
  },
};

parts.domain = () => {
  const canvas = chart('domain-table', domainTable ? 'domain × expert: share of each domain\'s tokens per expert (all training steps)' : null);
  if (!domainTable) return;
  const shares = domainTable.map((row) => { const t = row.reduce((a, b) => a + b, 0); return row.map((v) => (t ? v / t : 0)); });
  drawHeatmap(canvas, {
    title: 'domain × expert: share of each domain\'s tokens sent to each expert (all steps)', values: shares, rowLabels: shares.map((_, d) => `domain ${d}`),
    columns: { labels: shares[0]!.map((_, e) => String(e)) }, xLabel: 'expert', yLabel: 'domain', vmax: Math.max(1e-9, ...shares.flat()), colorLabel: 'share', width: wide(),
    cellText: (v) => v.toFixed(2),
  });
};

const points = (f: (r: StepRecord) => number | null) => history.map((r) => [r.step, f(r) ?? NaN] as const);

/** The width of the charts' column (CSS pixels), read when everything is redrawn: charts are drawn to fit it. */
let columnWidth = 860;
const wide = () => Math.max(400, Math.floor(columnWidth));
const half = () => Math.max(300, Math.floor((columnWidth - 8) / 2));

/** Redraws everything now (after a build, a single step, a pause). */
function draw(): void {
  if (!summary) return;
  columnWidth = $('charts').clientWidth || columnWidth;
  for (const part of Object.values(parts)) part();
}

/**
 * While training: the counter every frame, and one waiting chart per frame, so no task of
 * the page's thread redraws all charts at once.
 */
const waitingParts = new Set<string>();
let frameScheduled = false;
function drawSoon(names: readonly string[] = Object.keys(parts).filter((n) => n !== 'counter' && n !== 'domain')): void {
  for (const n of names) waitingParts.add(n);
  if (frameScheduled || waitingParts.size === 0) return;
  frameScheduled = true;
  g.requestAnimationFrame(() => {
    frameScheduled = false;
    if (!summary) { waitingParts.clear(); return; }
    const t0 = performance.now();
    parts.counter!();
    const name = waitingParts.values().next().value!;
    waitingParts.delete(name);
    parts[name]!();
    // Layout is forced so the measure includes it (the frame would lay out anyway).
    void $('loss-chart').offsetHeight;
    noteDraw(name, performance.now() - t0);
    drawSoon([]);
  });
}

/** The slowest redraw so far (the page's own work per task, for the responsiveness test). */
const slowestDraw = { part: '', ms: 0 };
function noteDraw(part: string, ms: number): void {
  if (ms > slowestDraw.ms) { slowestDraw.part = part; slowestDraw.ms = ms; }
}

/** The domain × expert counts, fetched from the host every 10 steps while training. */
let domainTable: number[][] | null = null;

async function drawDomainTable(): Promise<void> {
  domainTable = summary && summary.experts ? await call('domainExpert', []) : null;
  if (running) drawSoon(['domain']); else parts.domain!();
}

function drawExperts(): void {
  const E = summary?.experts ?? 0;
  $('experts').innerHTML = E === 0 ? '' : 'experts: ' + Array.from({ length: E }, (_, e) =>
    `<span>${e} <label style="display:inline">freeze <input type="checkbox" id="freeze-${e}" data-expert="${e}"></label> <button id="zero-${e}" data-expert="${e}">zero</button></span>`).join('');
}

// ---- actions ----------------------------------------------------------------------------

/** Runs an action with the buttons disabled; its error goes to the message line and changes nothing else. */
async function act(fn: () => Promise<void>): Promise<void> {
  if (busy) return;
  busy = true;
  try { await fn(); } catch (e) { showError((e as Error).message); } finally { busy = false; controls(); }
}

function controls(): void {
  const built = summary !== null;
  $('train').disabled = !built || running;
  $('pause').disabled = !running;
  $('step').disabled = !built || running;
  $('reset').disabled = !built || running;
  $('download-metrics').disabled = !built;
  $('download-checkpoint').disabled = !built;
}

function describe(s: Summary): string {
  const i = s.info as Record<string, unknown>;
  const device = i.device ? ` · device ${JSON.stringify(i.device)}` : '';
  // The CPU backend: its matmul (WebAssembly SIMD or scalar) and threads (shared memory needs the cross-origin isolation the server's headers give).
  const cpu = s.backend === 'cpu' ? ` · matmul: ${String(i.simd ? i.simdReason : `scalar (${String(i.simdReason)})`)}, ${String(i.threads)} thread${i.threads === 1 ? '' : 's'} (${String(i.threadsReason)})` : '';
  return `backend ${s.backend}: ${String(i.name)} (${String(i.mode)}), kernel class ${String(i.kernelClass)}${device}${cpu} · ${s.corpus} · ${s.parameters} parameters · ${s.experts} experts · ${s.inWorker ? 'trains in a Web Worker' : 'trains on the page\'s thread'} · cross-origin isolated: ${String(g.crossOriginIsolated)}`;
}

async function build(): Promise<void> {
  const wanted = $('backend').value as LabBackend;
  const s = settings();
  const built = await call('build', [s, wanted]);
  summary = built;
  $('run-info').textContent = '';
  history = [];
  $('backend-info').textContent = describe(built);
  showOk(`built: ${s.model}${s.model === 'dense' ? '' : ` with ${s.experts} experts, k = ${s.k}, gating ${s.gating}`} on ${wanted}`);
  drawExperts();
  draw();
  await drawDomainTable();
}

async function stepOnce(): Promise<void> {
  const [record] = await call('step', [1]);
  history.push(record!);
  summary!.step = record!.step;
  if (running) drawSoon(); else draw();
  if (record!.step % 10 === 0 || !running) await drawDomainTable();
}

async function trainLoop(): Promise<void> {
  running = true;
  pauseRequested = false;
  controls();
  try {
    while (!pauseRequested) {
      await stepOnce();
      // One step per task: input and drawing get their turn between steps.
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
  } catch (e) {
    showError((e as Error).message);
  } finally {
    running = false;
    controls();
    parts.counter!();
    drawSoon();
    await drawDomainTable().catch((e: Error) => showError(e.message));
  }
}

function routeTable(rows: RoutedToken[]): string {
  const noisy = rows.some((r) => r.noise);
  const head = `<tr><th>#</th><th>token</th><th>experts (gate)</th>${noisy ? '<th>noise ε of the chosen experts</th>' : ''}</tr>`;
  return `<table class="small" id="routed">${head}${rows.map((r, t) => `<tr><td>${t}</td><td>${esc(r.token)}</td><td>${r.experts.map((e, j) => `${e} (${r.gates[j]!.toFixed(3)})`).join(', ')}</td>${noisy ? `<td>${r.noise!.map((v) => v.toFixed(3)).join(', ')}</td>` : ''}</tr>`).join('')}</table>` +
    (noisy ? '<p>noisy top-k: gates of one draw ε ~ N(0, 1), H = x·W_g + ε·softplus(x·W_noise) (eq. 4)</p>' : '<p>clean gates (no noise)</p>');
}

function gradcheckTable(result: { rows: GradcheckRow[]; config: GradcheckConfig }): string {
  const ok = result.rows.every((r) => r.ok), gating = result.config.gating ?? 'noisy-topk';
  return `<p id="gradcheck-result" class="${ok ? 'pass' : 'fail'}" style="overflow-wrap:anywhere">${ok ? `all ${result.rows.length} checks of ${gating} passed` : `${result.rows.filter((r) => !r.ok).length} of ${result.rows.length} checks of ${gating} FAILED`} (float64, central differences eps 1e-6, pass when |a − n| ≤ 1e-5 + 1e-3·|n|; ${esc(JSON.stringify(result.config))})</p>` +
    `<table class="small"><tr><th>check</th><th>parameter</th><th>shape</th><th>max |analytical − numerical|</th><th>max relative</th><th>result</th></tr>${result.rows.map((r) =>
      `<tr><td>${esc(r.check)}</td><td>${esc(r.parameter)}</td><td>${r.shape}</td><td>${r.maxAbs.toExponential(2)}</td><td>${r.maxRel.toExponential(2)}</td><td class="${r.ok ? 'pass' : 'fail'}">${r.ok ? 'ok' : 'FAIL'}</td></tr>`).join('')}</table>`;
}

function download(name: string, body: Uint8Array | string, type: string): void {
  const url = g.URL.createObjectURL(new g.Blob([body], { type }));
  const a = doc.createElement('a');
  a.href = url; a.download = name; doc.body.appendChild(a); a.click(); a.remove();
  setTimeout(() => g.URL.revokeObjectURL(url), 1000);
}

async function openRun(): Promise<void> {
  const listing = await (await g.fetch('/run/')).json() as { dir: string | null; files: string[]; checkpoint: boolean; reason: string | null };
  if (listing.reason) throw new Error(listing.reason);
  if (!listing.checkpoint) throw new Error(`${listing.dir} has no checkpoint.safetensors yet (files: ${listing.files.join(', ')})`);
  const bytes = new Uint8Array(await (await g.fetch('/run/checkpoint.safetensors')).arrayBuffer());
  const opened = await call('openCheckpoint', [bytes, `${listing.dir}/checkpoint.safetensors`]);
  summary = opened;
  history = [];
  $('backend-info').textContent = describe(opened);
  $('run-info').textContent = `${listing.dir}: ${opened.settings.model}, ${opened.experts} experts, k = ${opened.settings.k}, gating ${opened.settings.gating}, step ${opened.step}`;
  showOk(`opened ${listing.dir}/checkpoint.safetensors (step ${opened.step}); route a sequence to inspect its routing`);
  drawExperts();
  draw();
  await drawDomainTable();
}

function wire(): void {
  const on = (id: string, fn: () => Promise<void>) => $(id).addEventListener('click', () => act(fn));
  on('build', build);
  $('train').addEventListener('click', () => { if (summary && !running && !busy) void trainLoop(); });
  $('pause').addEventListener('click', () => { pauseRequested = true; });
  on('step', stepOnce);
  on('reset', build);
  on('route-sample', async () => { $('route-input').value = await call('sample', []); });
  on('route', async () => { $('route-table').innerHTML = routeTable(await call('route', [$('route-input').value])); });
  on('gradcheck', async () => { $('gradcheck-table').innerHTML = gradcheckTable(await call('gradcheck', [])); });
  on('open-run', openRun);
  on('download-metrics', async () => download('metrics.jsonl', await call('metrics', []), 'application/x-ndjson'));
  on('download-checkpoint', async () => download('checkpoint.safetensors', await call('checkpoint', []), 'application/octet-stream'));
  $('experts').addEventListener('click', (ev: any) => {
    const e = Number(ev.target.dataset?.expert);
    if (ev.target.tagName === 'BUTTON') void act(async () => { await call('zero', [e]); showOk(`expert ${e} zeroed`); });
    if (ev.target.type === 'checkbox') void act(async () => { await call('freeze', [e, ev.target.checked]); showOk(`expert ${e} ${ev.target.checked ? 'frozen' : 'trains again'}`); });
  });
  $('file').addEventListener('change', () => { const f = $('file').files[0]; if (f) void readDropped(f); });
  const drop = $('drop');
  drop.addEventListener('dragover', (ev: any) => { ev.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (ev: any) => { ev.preventDefault(); drop.classList.remove('over'); const f = ev.dataTransfer.files[0]; if (f) void readDropped(f); });
  $('text').addEventListener('input', () => { droppedText = null; });
  // Switch and hash route to 1 expert, GShard to 2: the k field follows the gating.
  $('gating').addEventListener('change', () => { const k = fixedK($('gating').value); if (k !== null) $('k').value = String(k); });
}

render();
wire();
g.addEventListener('resize', () => { if (!running) draw(); });
controls();
/** For tests and the console: the page's state. */
g.mixtapeLab = { get summary() { return summary; }, get history() { return history; }, get running() { return running; }, get busy() { return busy; }, get drawing() { return waitingParts.size + (frameScheduled ? 1 : 0); }, slowestDraw, readDropped };
