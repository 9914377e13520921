// Hand-written SVG charts for the HTML report: a line chart and a heatmap, plus the
// escaping, tick and number-format helpers they share. The SVG is meant to be inlined
// in an HTML page (no xmlns needed, so the page holds no URL at all); colours of axes
// and text come from the page's CSS classes so one chart reads in light and dark mode.

/** Escapes text for HTML/SVG text and double- or single-quoted attributes. */
export function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&${{ '&': 'amp', '<': 'lt', '>': 'gt', '"': 'quot', "'": '#39' }[c]!};`);
}

/** Min and max of long arrays (Math.min(...xs) overflows the stack past ~100k values); NaN skipped. */
export function minOf(xs: readonly number[], init = Infinity): number {
  let m = init;
  for (const x of xs) if (x < m) m = x;
  return m;
}

export function maxOf(xs: readonly number[], init = -Infinity): number {
  let m = init;
  for (const x of xs) if (x > m) m = x;
  return m;
}

/** A short human number: 3 significant digits, k/M/G suffixes for large values. */
export function fmt(v: number, digits = 3): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  for (const [scale, suffix] of [[1e9, 'G'], [1e6, 'M'], [1e3, 'k']] as const) {
    if (a >= scale * 10) return `${trimZeros((v / scale).toPrecision(digits))}${suffix}`;
  }
  if (a >= 1000) return String(Math.round(v));
  if (a === 0) return '0';
  if (a < 1e-3) return v.toExponential(1);
  return trimZeros(v.toPrecision(digits));
}

const trimZeros = (s: string): string => (s.includes('.') && !s.includes('e') ? s.replace(/\.?0+$/, '') : s);

/** Coordinates in the SVG: rounded to 0.1 px, which keeps the file small. */
const px = (v: number): string => String(Math.round(v * 10) / 10);

/** About `count` round tick values covering [lo, hi] (1-2-5 steps). */
export function niceTicks(lo: number, hi: number, count = 6): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let t = Math.ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9; t += step) {
    ticks.push(Math.abs(t) < step * 1e-9 ? 0 : Number(t.toPrecision(12)));
  }
  return ticks;
}

/** Ticks for a log axis: round linear ticks within a decade, 1-2-5 or powers of 10 beyond. */
export function logTicks(lo: number, hi: number): number[] {
  const decades = Math.log10(hi / lo);
  if (decades < 1) return niceTicks(lo, hi, 8);
  const mantissas = decades <= 1.5 ? [1, 1.5, 2, 3, 5, 7] : decades <= 3 ? [1, 2, 5] : [1];
  const ticks: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of mantissas) {
      const t = Number((m * 10 ** e).toPrecision(6));
      if (t >= lo * (1 - 1e-9) && t <= hi * (1 + 1e-9)) ticks.push(t);
    }
  }
  return ticks;
}

// ---------------------------------------------------------------------------------------
// Line chart

export interface Series {
  name: string;
  /** Any CSS colour, e.g. 'var(--c0)'. */
  color: string;
  /** [x, y] pairs in x order; a non-finite y breaks the line. */
  points: ReadonlyArray<readonly [number, number]>;
  width?: number;
  opacity?: number;
  /** SVG stroke-dasharray, e.g. '6 3'. */
  dash?: string;
  /** Draw a dot (with a hover tooltip) at every point. */
  markers?: boolean;
}

export interface RefLine {
  y: number;
  label: string;
  color?: string;
}

export interface LineChartOptions {
  title: string;
  series: Series[];
  xLabel: string;
  yLabel: string;
  refLines?: RefLine[];
  yScale?: 'linear' | 'log';
  /** Fixed ranges; by default the data's (and the reference lines') extent. Data outside is clipped. */
  xDomain?: [number, number];
  yDomain?: [number, number];
  width?: number;
  height?: number;
}

interface Frame {
  width: number;
  height: number;
  left: number;
  top: number;
  plotW: number;
  plotH: number;
}

function frame(width: number, height: number, { left = 62, right = 16, top = 12 } = {}): Frame {
  const bottom = 46;
  return { width, height, left, top, plotW: width - left - right, plotH: height - top - bottom };
}

/** Room for the rotated axis label plus the longest tick label (about 6.5 px per character at 11 px). */
const leftMargin = (labels: string[]): number => 34 + Math.ceil(Math.max(3, ...labels.map((l) => l.length)) * 6.5);

/** A scale maps data to pixels inside the plot area. */
type Scale = (v: number) => number;

function linearScale([d0, d1]: [number, number], [r0, r1]: [number, number]): Scale {
  const k = d1 === d0 ? 0 : (r1 - r0) / (d1 - d0);
  return (v) => r0 + (v - d0) * k;
}

function logScale([d0, d1]: [number, number], range: [number, number]): Scale {
  const lin = linearScale([Math.log(d0), Math.log(d1)], range);
  // Non-positive values cannot be placed on a log axis: pin them just below the bottom.
  return (v) => (v > 0 ? lin(Math.log(v)) : range[0] + 1);
}

function extent(values: number[], fallback: [number, number]): [number, number] {
  const finite = values.filter(Number.isFinite);
  if (finite.length === 0) return fallback;
  const lo = minOf(finite), hi = maxOf(finite);
  return lo === hi ? [lo - (Math.abs(lo) || 1) * 0.05, hi + (Math.abs(hi) || 1) * 0.05] : [lo, hi];
}

function svgOpen(f: Frame, title: string): string {
  return `<svg class="chart" viewBox="0 0 ${f.width} ${f.height}" width="${f.width}" height="${f.height}" role="img" aria-label="${esc(title)}"><title>${esc(title)}</title>`;
}

/** The x axis: baseline, ticks with labels, and the axis label. */
function xAxis(f: Frame, x: Scale, ticks: number[], label: string, tickText = fmt): string {
  const y0 = f.top + f.plotH;
  let s = `<line class="axis" x1="${f.left}" y1="${y0}" x2="${f.left + f.plotW}" y2="${y0}"/>`;
  for (const t of ticks) {
    const xp = px(f.left + x(t));
    s += `<line class="axis" x1="${xp}" y1="${y0}" x2="${xp}" y2="${y0 + 4}"/><text x="${xp}" y="${y0 + 16}" text-anchor="middle">${esc(tickText(t))}</text>`;
  }
  return s + `<text class="label" x="${px(f.left + f.plotW / 2)}" y="${f.height - 8}" text-anchor="middle">${esc(label)}</text>`;
}

/** The y axis label, rotated, left of the tick labels. */
const yAxisLabel = (f: Frame, label: string): string =>
  `<text class="label" transform="translate(14 ${px(f.top + f.plotH / 2)}) rotate(-90)" text-anchor="middle">${esc(label)}</text>`;

/** Horizontal grid lines with y tick labels. */
function yGrid(f: Frame, y: Scale, ticks: number[]): string {
  let s = '';
  for (const t of ticks) {
    const yp = px(f.top + y(t));
    s += `<line class="grid" x1="${f.left}" y1="${yp}" x2="${f.left + f.plotW}" y2="${yp}"/><text x="${f.left - 6}" y="${yp}" dy="0.32em" text-anchor="end">${esc(fmt(t))}</text>`;
  }
  return s;
}

/** SVG path data for the points, starting a new sub-path after each gap. */
function pathData(points: Series['points'], x: Scale, y: Scale): string {
  let d = '', pen = false;
  for (const [xv, yv] of points) {
    if (!Number.isFinite(xv) || !Number.isFinite(yv)) { pen = false; continue; }
    d += `${pen ? 'L' : 'M'}${px(x(xv))} ${px(y(yv))}`;
    pen = true;
  }
  return d;
}

function seriesSvg(s: Series, x: Scale, y: Scale): string {
  const style = `stroke:${s.color}`;
  const attrs = `stroke-width="${s.width ?? 1.5}"${s.opacity !== undefined ? ` stroke-opacity="${s.opacity}"` : ''}${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}`;
  let out = `<path class="line" style="${style}" ${attrs} d="${pathData(s.points, x, y)}"><title>${esc(s.name)}</title></path>`;
  if (s.markers) {
    for (const [xv, yv] of s.points) {
      if (!Number.isFinite(xv) || !Number.isFinite(yv)) continue;
      out += `<circle style="fill:${s.color}" cx="${px(x(xv))}" cy="${px(y(yv))}" r="2.6"><title>${esc(`${s.name} · step ${xv}: ${fmt(yv, 4)}`)}</title></circle>`;
    }
  }
  return out;
}

/**
 * Reference-line labels sit in the right margin at their line's height, pushed apart so
 * close values (two floors 0.02 nats apart) stay legible; a leader connects them.
 */
function refLinesSvg(f: Frame, y: Scale, lines: RefLine[]): string {
  const placed = lines
    .map((l) => ({ l, yl: f.top + y(l.y) }))
    .filter(({ yl }) => yl >= f.top - 0.5 && yl <= f.top + f.plotH + 0.5)
    .sort((a, b) => a.yl - b.yl);
  const gap = 13;
  const labelY = placed.map((p) => p.yl);
  for (let i = 1; i < labelY.length; i++) labelY[i] = Math.max(labelY[i]!, labelY[i - 1]! + gap);
  const overflow = (labelY.at(-1) ?? 0) - (f.top + f.plotH + 6);
  if (overflow > 0) for (let i = 0; i < labelY.length; i++) labelY[i]! -= overflow;
  const x1 = f.left + f.plotW;
  return placed.map(({ l, yl }, i) => {
    const color = l.color ?? 'var(--muted)';
    const ly = labelY[i]!;
    return `<g class="ref" style="stroke:${color};fill:${color}"><line x1="${f.left}" y1="${px(yl)}" x2="${x1}" y2="${px(yl)}" stroke-dasharray="5 4"/>` +
      `<polyline fill="none" points="${x1},${px(yl)} ${x1 + 8},${px(ly)} ${x1 + 12},${px(ly)}"/>` +
      `<text x="${x1 + 15}" y="${px(ly)}" dy="0.32em" stroke="none">${esc(l.label)}</text><title>${esc(`${l.label}`)}</title></g>`;
  }).join('');
}

/** A line chart with axes, grid, optional log y axis and labelled horizontal reference lines. */
export function lineChart(o: LineChartOptions): string {
  const refLines = o.refLines ?? [];
  const f = frame(o.width ?? 1040, o.height ?? 360, { right: refLines.length > 0 ? 150 : 16 });
  const log = o.yScale === 'log';
  const xs = o.series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = o.series.flatMap((s) => s.points.map((p) => p[1])).concat(refLines.map((r) => r.y)).filter((v) => !log || v > 0);
  const xDom = o.xDomain ?? extent(xs, [0, 1]);
  let yDom = o.yDomain ?? extent(ys, log ? [0.1, 1] : [0, 1]);
  if (log) yDom = [Math.max(yDom[0], 1e-12), Math.max(yDom[1], yDom[0] * 1.01)];
  const x = linearScale(xDom, [0, f.plotW]);
  const y = (log ? logScale : linearScale)(yDom, [f.plotH, 0]);
  const yTicks = log ? logTicks(yDom[0], yDom[1]) : niceTicks(yDom[0], yDom[1], 5);

  // The data lives in a nested <svg>, which clips to its viewport without needing an id.
  const plot = `<svg x="${f.left}" y="${f.top}" width="${f.plotW}" height="${f.plotH}" viewBox="0 0 ${f.plotW} ${f.plotH}" overflow="hidden">` +
    o.series.map((s) => seriesSvg(s, x, y)).join('') + '</svg>';
  const empty = o.series.every((s) => s.points.length === 0)
    ? `<text class="label" x="${px(f.left + f.plotW / 2)}" y="${px(f.top + f.plotH / 2)}" text-anchor="middle">no data</text>` : '';
  return svgOpen(f, o.title) + yGrid(f, y, yTicks) + xAxis(f, x, niceTicks(xDom[0], xDom[1], 7), o.xLabel) +
    yAxisLabel(f, o.yLabel) + refLinesSvg(f, y, refLines) + plot + empty + '</svg>';
}

// ---------------------------------------------------------------------------------------
// Heatmap

/** Viridis colour map (perceptually uniform, readable on light and dark backgrounds), t in [0, 1]. */
export function viridis(t: number): string {
  const stops = ['#440154', '#482878', '#3e4989', '#31688e', '#26828e', '#1f9e89', '#35b779', '#6ece58', '#b5de2b', '#fde725'];
  const u = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(u));
  const a = hexRgb(stops[i]!), b = hexRgb(stops[i + 1]!);
  const mix = a.map((c, j) => Math.round(c + (b[j]! - c) * (u - i)));
  return `#${mix.map((c) => c.toString(16).padStart(2, '0')).join('')}`;
}

const hexRgb = (h: string): number[] => [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16));

export interface HeatmapOptions {
  title: string;
  /** values[row][column]. */
  values: number[][];
  rowLabels: string[];
  /** Columns: named categories, or a numeric axis given by column edges (columns + 1 values). */
  columns: { labels: string[] } | { edges: number[] };
  xLabel: string;
  yLabel: string;
  /** Colour range; values are clamped into it. */
  vmin?: number;
  vmax: number;
  /** Caption of the colour bar, and an optional marked value on it (e.g. the uniform share). */
  colorLabel: string;
  mark?: { value: number; label: string };
  /** Print each value in its cell when the cells are large enough. */
  cellText?: (v: number) => string;
  /** Hover text of a cell; used on small heatmaps only (see CELL_TOOLTIPS_MAX). */
  tooltip?: (row: number, col: number, v: number) => string;
  /** Hover text of a whole row, used when the heatmap is too large for per-cell text. */
  rowTooltip?: (row: number) => string;
  width?: number;
  /** Pixels per row, before clamping the plot height into a readable range. */
  rowHeight?: number;
}

/** Row labels: all of them when they fit, else about every n-th. */
function rowLabelSvg(f: Frame, labels: string[], rowH: number): string {
  const every = Math.ceil(12 / rowH);
  return labels.map((l, r) => (r % every === 0
    ? `<text x="${f.left - 6}" y="${px(f.top + (r + 0.5) * rowH)}" dy="0.32em" text-anchor="end">${esc(l)}</text>` : '')).join('');
}

/** The colour bar right of the plot, drawn as small rects (no gradient id to collide). */
function colorBar(f: Frame, vmin: number, vmax: number, label: string, mark?: HeatmapOptions['mark']): string {
  const x0 = f.left + f.plotW + 18, w = 12, n = 48, h = f.plotH / n;
  const yOf = (v: number): number => f.top + f.plotH * (1 - (v - vmin) / (vmax - vmin || 1));
  let s = '';
  for (let i = 0; i < n; i++) s += `<rect x="${x0}" y="${px(f.top + i * h)}" width="${w}" height="${px(h + 0.6)}" fill="${viridis(1 - (i + 0.5) / n)}"/>`;
  for (const t of niceTicks(vmin, vmax, 4)) {
    s += `<line class="axis" x1="${x0 + w}" y1="${px(yOf(t))}" x2="${x0 + w + 3}" y2="${px(yOf(t))}"/><text x="${x0 + w + 5}" y="${px(yOf(t))}" dy="0.32em">${esc(fmt(t))}</text>`;
  }
  if (mark && mark.value >= vmin && mark.value <= vmax) {
    const ym = px(yOf(mark.value));
    s += `<polygon class="mark" points="${x0 - 1},${ym} ${x0 - 7},${Number(ym) - 4} ${x0 - 7},${Number(ym) + 4}"><title>${esc(mark.label)}</title></polygon>`;
  }
  // The bar's caption goes above it, horizontally: rotated, a long caption outgrows a short bar.
  return s + `<text class="label" x="${f.width - 2}" y="${f.top - 9}" text-anchor="end">${esc(label)}</text>`;
}

/** A heatmap of rows × columns with a viridis colour bar. */
export function heatmap(o: HeatmapOptions): string {
  const rows = o.values.length, cols = o.values[0]?.length ?? 0;
  const plotH = Math.min(340, Math.max(60, rows * (o.rowHeight ?? 18)));
  const f = frame(o.width ?? 510, plotH + 70, { left: leftMargin(o.rowLabels), right: 66, top: 24 });
  const rowH = f.plotH / Math.max(1, rows);
  const vmin = o.vmin ?? 0;
  const edges = 'edges' in o.columns ? o.columns.edges : null;
  const x = edges ? linearScale([edges[0]!, edges.at(-1)!], [0, f.plotW]) : linearScale([0, cols], [0, f.plotW]);
  const colX = (c: number): [number, number] => (edges ? [x(edges[c]!), x(edges[c + 1]!)] : [x(c), x(c + 1)]);
  const showText = o.cellText !== undefined && rowH >= 14 && f.plotW / Math.max(1, cols) >= 30;
  const norm = (v: number): number => (v - vmin) / (o.vmax - vmin || 1);

  // Cells are grouped into one path per quantized colour: a few bytes per cell instead of
  // a <rect> each, which keeps a long run's heatmaps small. 64 levels look continuous.
  const byLevel = new Map<number, string>();
  let overlay = '';
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const v = o.values[r]![c]!;
      if (!Number.isFinite(v)) continue; // no data: the background shows through
      const [xa, xb] = colX(c);
      const level = Math.round(Math.min(1, Math.max(0, norm(v))) * (COLOR_LEVELS - 1));
      // 0.5 px of overlap hides hairline seams between neighbouring cells.
      const w = px(xb - xa + 0.5);
      byLevel.set(level, (byLevel.get(level) ?? '') + `M${px(xa)} ${px(r * rowH)}h${w}v${px(rowH + 0.5)}h-${w}z`);
      if (showText) {
        overlay += `<text class="cell" x="${px((xa + xb) / 2)}" y="${px((r + 0.5) * rowH)}" dy="0.32em" text-anchor="middle" style="fill:${norm(v) > 0.6 ? '#111' : '#fff'}">${esc(o.cellText!(v))}</text>`;
      }
    }
  }
  let cells = [...byLevel].map(([level, d]) => `<path fill="${viridis(level / (COLOR_LEVELS - 1))}" d="${d}"/>`).join('') + overlay;
  cells += tooltipTargets(o, rows, cols, rowH, colX, f.plotW);
  const plot = `<svg x="${f.left}" y="${f.top}" width="${f.plotW}" height="${f.plotH}" viewBox="0 0 ${px(f.plotW)} ${px(f.plotH)}" overflow="hidden">${cells}</svg>`;
  const xAx = edges
    ? xAxis(f, x, niceTicks(edges[0]!, edges.at(-1)!, 5), o.xLabel)
    : xAxis(f, (c) => x(c + 0.5), labelIndices(cols, f.plotW), o.xLabel, (c) => (o.columns as { labels: string[] }).labels[c] ?? '');
  return svgOpen(f, o.title) + plot + xAx + rowLabelSvg(f, o.rowLabels, rowH) + yAxisLabel(f, o.yLabel) +
    colorBar(f, vmin, o.vmax, o.colorLabel, o.mark) + '</svg>';
}

const COLOR_LEVELS = 64;
const CELL_TOOLTIPS_MAX = 600;

/** Invisible rects carrying the hover text: per cell on small heatmaps, else per row. */
function tooltipTargets(o: HeatmapOptions, rows: number, cols: number, rowH: number, colX: (c: number) => [number, number], plotW: number): string {
  let s = '';
  if (o.tooltip && rows * cols <= CELL_TOOLTIPS_MAX) {
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        const [xa, xb] = colX(c);
        s += `<rect class="hit" fill="transparent" x="${px(xa)}" y="${px(r * rowH)}" width="${px(xb - xa)}" height="${px(rowH)}"><title>${esc(o.tooltip(r, c, o.values[r]![c]!))}</title></rect>`;
      }
    }
  } else if (o.rowTooltip) {
    for (let r = 0; r < rows; r++) s += `<rect class="hit" fill="transparent" x="0" y="${px(r * rowH)}" width="${px(plotW)}" height="${px(rowH)}"><title>${esc(o.rowTooltip(r))}</title></rect>`;
  }
  return s;
}

/** Which category indices get an x label: all when they fit (about 24 px each), else every n-th. */
function labelIndices(n: number, width: number): number[] {
  const every = Math.max(1, Math.ceil(24 / (width / Math.max(1, n))));
  return Array.from({ length: n }, (_, i) => i).filter((i) => i % every === 0);
}
