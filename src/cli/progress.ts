// A one-line progress display: a bar with step, tokens/s, loss, CV(load) and ETA, redrawn
// in place on a terminal, or printed every few seconds when stderr is not a TTY.

export interface ProgressState {
  step: number;
  total: number;
  tokensPerSec: number;
  /** Achieved GFLOP/s (training FLOPs per token × tokens/s), when known. */
  gflops?: number;
  loss: number;
  cvLoad: number | null;
  elapsed: number;
  label?: string;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m}m${String(s % 60).padStart(2, '0')}s` : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

export function formatRate(tokensPerSec: number): string {
  return tokensPerSec >= 1000 ? `${(tokensPerSec / 1000).toFixed(1)}k` : tokensPerSec.toFixed(0);
}

export function formatGflops(gflops: number): string {
  return gflops >= 100 ? gflops.toFixed(0) : gflops >= 1 ? gflops.toFixed(2) : gflops.toPrecision(2);
}

export function progressLine(p: ProgressState, width = 24): string {
  const frac = p.total > 0 ? Math.min(1, p.step / p.total) : 1;
  const filled = Math.round(frac * width);
  const bar = `${'='.repeat(Math.max(0, filled - 1))}${filled > 0 ? (frac < 1 ? '>' : '=') : ''}${' '.repeat(width - filled)}`;
  const eta = p.step > 0 ? (p.elapsed / p.step) * (p.total - p.step) : NaN;
  const parts = [
    p.label ? `${p.label}` : '',
    `step ${String(p.step).padStart(String(p.total).length)}/${p.total}`,
    `[${bar}]`,
    `${(frac * 100).toFixed(0).padStart(3)}%`,
    `${formatRate(p.tokensPerSec)} tok/s`,
    p.gflops === undefined ? '' : `${formatGflops(p.gflops)} GFLOP/s`,
    `loss ${p.loss.toFixed(3)}`,
    p.cvLoad === null ? '' : `CV(load) ${p.cvLoad.toFixed(3)}`,
    `ETA ${formatDuration(eta)}`,
  ];
  return parts.filter(Boolean).join('  ');
}

export class ProgressBar {
  private lastPrint = 0;
  private readonly tty: boolean;
  constructor(private readonly stream: NodeJS.WriteStream = process.stderr, private readonly quiet = false) {
    this.tty = Boolean(stream.isTTY);
  }
  update(p: ProgressState): void {
    if (this.quiet) return;
    const now = Date.now();
    if (this.tty) {
      if (now - this.lastPrint < 100 && p.step < p.total) return;
      this.stream.write(`\r\x1b[2K${progressLine(p)}`);
    } else {
      if (now - this.lastPrint < 5000 && p.step < p.total && p.step !== 1) return;
      this.stream.write(`${progressLine(p)}\n`);
    }
    this.lastPrint = now;
  }
  done(): void {
    if (!this.quiet && this.tty) this.stream.write('\n');
  }
  log(line: string): void {
    if (this.quiet) return;
    this.stream.write(this.tty ? `\r\x1b[2K${line}\n` : `${line}\n`);
  }
}
