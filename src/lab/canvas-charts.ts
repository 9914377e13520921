// The lab's live charts, drawn on <canvas> elements of fixed size: the HTML report's line
// chart and heatmap (src/report/svg.ts: the same options, ticks, number format, viridis
// colours and reference-line labels), plus importance/load bars. A redraw paints pixels only:
// no DOM is parsed and nothing is laid out again, so a frame of the page's thread stays
// short while the lab's worker trains (an SVG chart replaced per frame cost tens of ms of
// parsing and layout, hundreds on a busy machine).
//
// Colours given as CSS variables ('var(--c0)') are resolved against the page's stylesheet.
// The repository's tsconfig has no DOM library, so the canvas is reached through `any`.

import { fmt, niceTicks, viridis, type HeatmapOptions, type LineChartOptions } from '../report/svg.js';

const doc = (globalThis as any).document;
const FONT = '11px system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif';
const LABEL_FONT = '12px system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif';

/** A CSS colour, with var(--name) looked up on the document's root element. */
function resolve(color: string): string {
  const m = /^var\((--[\w-]+)\)$/.exec(color.trim());
  if (!m) return color;
  return (globalThis as any).getComputedStyle(doc.documentElement).getPropertyValue(m[1]).trim() || '#888';
}

/** A canvas of `width` × `height` CSS pixels (sharp on high-DPI screens), cleared; its 2D context. */
export function prepare(canvas: any, width: number, height: number, title: string): any {
  const ratio = (globalThis as any).devicePixelRatio || 1;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    // Its CSS width; the height follows the aspect ratio (the stylesheet's max-width: 100% and
    // height: auto shrink a chart wider than its column, as the report's SVG charts shrink).
    canvas.style.width = `${width}px`;
  }
  canvas.setAttribute('role', 'img');
  canvas.setAttribute('aria-label', title);
  const ctx = canvas.getContext('2d');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  return ctx;
}

interface Frame { width: number; height: number; left: number; top: number; plotW: number; plotH: number }

function frame(width: number, height: number, left: number, right: number, top: number): Frame {
  return { width, height, left, top, plotW: width - left - right, plotH: height - top - 46 };
}

function extent(values: number[], fallback: [number, number]): [number, number] {
  const finite = values.filter(Number.isFinite);
  if (finite.length === 0) return fallback;
  let lo = Infinity, hi = -Infinity;
  for (const v of finite) { if (v < lo) lo = v; if (v > hi) hi = v; }
  return lo === hi ? [lo - (Math.abs(lo) || 1) * 0.05, hi + (Math.abs(hi) || 1) * 0.05] : [lo, hi];
}

const linear = ([d0, d1]: [number, number], [r0, r1]: [number, number]) => {
  const k = d1 === d0 ? 0 : (r1 - r0) / (d1 - d0);
  return (v: number) => r0 + (v - d0) * k;
};

function text(ctx: any, s: string, x: number, y: number, align: 'left' | 'center' | 'right', color = resolve('var(--fg)'), font = FONT): void {
  ctx.font = font;
  ctx.fillStyle = color;
  ctx.textAlign = align;
  ctx.textBaseline = 'middle';
  ctx.fillText(s, x, y);
}

function line(ctx: any, x1: number, y1: number, x2: number, y2: number, color: string, width = 1, dash: number[] = []): void {
  ctx.strokeStyle = color;
  ctx.lineWidth = width;
  ctx.setLineDash(dash);
  ctx.beginPath();
  ctx.moveTo(x1, y1);
  ctx.lineTo(x2, y2);
  ctx.stroke();
  ctx.setLineDash([]);
}

/** The x axis (baseline, ticks, labels) and both axis labels. */
function axes(ctx: any, f: Frame, ticks: { at: number; label: string }[], xLabel: string, yLabel: string): void {
  const axis = resolve('var(--axis)'), muted = resolve('var(--muted)'), y0 = f.top + f.plotH;
  line(ctx, f.left, y0 + 0.5, f.left + f.plotW, y0 + 0.5, axis);
  for (const t of ticks) {
    line(ctx, t.at + 0.5, y0, t.at + 0.5, y0 + 4, axis);
    text(ctx, t.label, t.at, y0 + 14, 'center');
  }
  text(ctx, xLabel, f.left + f.plotW / 2, f.height - 9, 'center', muted, LABEL_FONT);
  ctx.save();
  ctx.translate(12, f.top + f.plotH / 2);
  ctx.rotate(-Math.PI / 2);
  text(ctx, yLabel, 0, 0, 'center', muted, LABEL_FONT);
  ctx.restore();
}

/** The report's line chart (lineChart in src/report/svg.ts: linear y axis) on a canvas. */
export function drawLineChart(canvas: any, o: LineChartOptions): void {
  const refLines = o.refLines ?? [];
  const width = o.width ?? 1040, height = o.height ?? 360;
  const xs = o.series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = o.series.flatMap((s) => s.points.map((p) => p[1])).concat(refLines.map((r) => r.y));
  const xDom = o.xDomain ?? extent(xs, [0, 1]), yDom = o.yDomain ?? extent(ys, [0, 1]);
  const yTicks = niceTicks(yDom[0], yDom[1], 5);
  const left = 34 + Math.ceil(Math.max(3, ...yTicks.map((t) => fmt(t).length)) * 6.5);
  const f = frame(width, height, left, refLines.length > 0 ? 150 : 16, 12);
  const ctx = prepare(canvas, width, height, o.title);
  const x = linear(xDom, [f.left, f.left + f.plotW]), y = linear(yDom, [f.top + f.plotH, f.top]);
  const grid = resolve('var(--grid)');
  for (const t of yTicks) {
    const yp = Math.round(y(t)) + 0.5;
    line(ctx, f.left, yp, f.left + f.plotW, yp, grid);
    text(ctx, fmt(t), f.left - 6, yp, 'right');
  }
  axes(ctx, f, niceTicks(xDom[0], xDom[1], 7).map((t) => ({ at: Math.round(x(t)), label: fmt(t) })), o.xLabel, o.yLabel);
  // Reference lines, labelled in the right margin and pushed apart as in the report.
  const placed = refLines.map((l) => ({ l, yl: y(l.y) })).filter(({ yl }) => yl >= f.top - 0.5 && yl <= f.top + f.plotH + 0.5).sort((a, b) => a.yl - b.yl);
  const labelY = placed.map((p) => p.yl);
  for (let i = 1; i < labelY.length; i++) labelY[i] = Math.max(labelY[i]!, labelY[i - 1]! + 13);
  const overflow = (labelY.at(-1) ?? 0) - (f.top + f.plotH + 6);
  if (overflow > 0) for (let i = 0; i < labelY.length; i++) labelY[i]! -= overflow;
  const x1 = f.left + f.plotW;
  placed.forEach(({ l, yl }, i) => {
    const color = resolve(l.color ?? 'var(--muted)');
    line(ctx, f.left, yl, x1, yl, color, 1, [5, 4]);
    ctx.beginPath(); ctx.moveTo(x1, yl); ctx.lineTo(x1 + 8, labelY[i]!); ctx.lineTo(x1 + 12, labelY[i]!); ctx.stroke();
    text(ctx, l.label, x1 + 15, labelY[i]!, 'left', color);
  });
  ctx.save();
  ctx.beginPath();
  ctx.rect(f.left, f.top, f.plotW, f.plotH);
  ctx.clip();
  for (const s of o.series) {
    ctx.strokeStyle = resolve(s.color);
    ctx.lineWidth = s.width ?? 1.5;
    ctx.beginPath();
    let pen = false;
    for (const [xv, yv] of s.points) {
      if (!Number.isFinite(xv) || !Number.isFinite(yv)) { pen = false; continue; }
      if (pen) ctx.lineTo(x(xv), y(yv)); else ctx.moveTo(x(xv), y(yv));
      pen = true;
    }
    ctx.stroke();
  }
  ctx.restore();
  if (o.series.every((s) => s.points.length === 0)) text(ctx, 'no data', f.left + f.plotW / 2, f.top + f.plotH / 2, 'center', resolve('var(--muted)'), LABEL_FONT);
}

/** The report's heatmap (heatmap in src/report/svg.ts: viridis cells, colour bar, cell text) on a canvas. */
export function drawHeatmap(canvas: any, o: HeatmapOptions): void {
  const rows = o.values.length, cols = o.values[0]?.length ?? 0;
  const plotH = Math.min(340, Math.max(60, rows * (o.rowHeight ?? 18)));
  const width = o.width ?? 510, height = plotH + 70;
  const f = frame(width, height, 34 + Math.ceil(Math.max(3, ...o.rowLabels.map((l) => l.length)) * 6.5), 66, 24);
  const ctx = prepare(canvas, width, height, o.title);
  const rowH = f.plotH / Math.max(1, rows), vmin = o.vmin ?? 0;
  const edges = 'edges' in o.columns ? o.columns.edges : null;
  const x = edges ? linear([edges[0]!, edges.at(-1)!], [f.left, f.left + f.plotW]) : linear([0, cols], [f.left, f.left + f.plotW]);
  const colX = (c: number): [number, number] => (edges ? [x(edges[c]!), x(edges[c + 1]!)] : [x(c), x(c + 1)]);
  const norm = (v: number) => Math.min(1, Math.max(0, (v - vmin) / (o.vmax - vmin || 1)));
  const showText = o.cellText !== undefined && rowH >= 14 && f.plotW / Math.max(1, cols) >= 30;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const v = o.values[r]![c]!;
      if (!Number.isFinite(v)) continue;
      const [xa, xb] = colX(c);
      ctx.fillStyle = viridis(norm(v));
      ctx.fillRect(xa, f.top + r * rowH, xb - xa + 0.5, rowH + 0.5);
      if (showText) text(ctx, o.cellText!(v), (xa + xb) / 2, f.top + (r + 0.5) * rowH, 'center', norm(v) > 0.6 ? '#111' : '#fff');
    }
  }
  const every = Math.ceil(12 / rowH);
  o.rowLabels.forEach((l, r) => { if (r % every === 0) text(ctx, l, f.left - 6, f.top + (r + 0.5) * rowH, 'right'); });
  const ticks = edges
    ? niceTicks(edges[0]!, edges.at(-1)!, 5).map((t) => ({ at: Math.round(x(t)), label: fmt(t) }))
    : Array.from({ length: cols }, (_, c) => c).filter((c) => c % Math.max(1, Math.ceil(24 / (f.plotW / Math.max(1, cols)))) === 0)
      .map((c) => ({ at: Math.round(x(c + 0.5)), label: (o.columns as { labels: string[] }).labels[c] ?? '' }));
  axes(ctx, f, ticks, o.xLabel, o.yLabel);
  // The colour bar, its ticks, the marked value and its caption.
  const x0 = f.left + f.plotW + 18, n = 48, h = f.plotH / n;
  for (let i = 0; i < n; i++) { ctx.fillStyle = viridis(1 - (i + 0.5) / n); ctx.fillRect(x0, f.top + i * h, 12, h + 0.6); }
  const yOf = (v: number) => f.top + f.plotH * (1 - (v - vmin) / (o.vmax - vmin || 1));
  for (const t of niceTicks(vmin, o.vmax, 4)) { line(ctx, x0 + 12, yOf(t), x0 + 15, yOf(t), resolve('var(--axis)')); text(ctx, fmt(t), x0 + 17, yOf(t), 'left'); }
  if (o.mark && o.mark.value >= vmin && o.mark.value <= o.vmax) {
    const ym = yOf(o.mark.value);
    ctx.fillStyle = resolve('var(--fg)');
    ctx.beginPath(); ctx.moveTo(x0 - 1, ym); ctx.lineTo(x0 - 7, ym - 4); ctx.lineTo(x0 - 7, ym + 4); ctx.fill();
  }
  text(ctx, o.colorLabel, width - 2, f.top - 9, 'right', resolve('var(--muted)'), LABEL_FONT);
}

/** Importance and load per expert, side by side (colours a and b). */
export function drawBars(canvas: any, importance: readonly number[], load: readonly number[], a: string, b: string, W = 500): void {
  const E = importance.length, H = 220, top = 16, bottom = 30, left = 40;
  const ctx = prepare(canvas, W, H, `importance and load of ${E} experts`);
  const max = Math.max(1e-12, ...importance, ...load), bw = (W - left - 10) / E;
  const y = (v: number) => top + (H - top - bottom) * (1 - v / max);
  const grid = resolve('var(--grid)');
  for (const t of niceTicks(0, max, 4)) { line(ctx, left, Math.round(y(t)) + 0.5, W - 10, Math.round(y(t)) + 0.5, grid); text(ctx, fmt(t), left - 4, y(t), 'right'); }
  for (let e = 0; e < E; e++) {
    const x = left + e * bw;
    ctx.fillStyle = resolve(a); ctx.fillRect(x + 2, y(importance[e]!), bw / 2 - 3, y(0) - y(importance[e]!));
    ctx.fillStyle = resolve(b); ctx.fillRect(x + bw / 2, y(load[e]!), bw / 2 - 3, y(0) - y(load[e]!));
    text(ctx, String(e), x + bw / 2, H - 12, 'center');
  }
}
