// `mixtape compare` with its defaults against a released version, in one sitting
// (`npm run bench -- release`): the wall-time target of the SIMD/threads issue (≥ 3× faster
// than 0.1.0), with the validation losses beside it (within ±0.01 of 0.1.0's, and identical
// for 1 thread and for all threads).
//
// The baseline (MIXTAPE_BASELINE, default 0.1.0's commit) is unpacked from git into a
// temporary folder (`git archive`, so this checkout's worktrees stay as they are), built with
// its own build script over this checkout's node_modules, and run as a user runs it:
// `node bin/mixtape.js compare`. Contenders alternate round by round (baseline, this
// version on all threads, this version on 1 thread); medians of the wall times.

import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { median } from './stats.js';

const BASELINE = process.env.MIXTAPE_BASELINE ?? '8998483';

interface Contender { name: string; dir: string; args: string[] }

/** One `mixtape compare` run: wall seconds and the validation loss of each of its runs. */
function compareRun(c: Contender, out: string): { seconds: number; losses: Map<string, number> } {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [join(c.dir, 'bin/mixtape.js'), 'compare', '--out', out, ...c.args], { cwd: c.dir, encoding: 'utf8', maxBuffer: 1 << 26 });
  const seconds = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`${c.name}: mixtape compare exited with ${r.status}: ${(r.stderr || r.stdout).trim().split('\n').slice(-5).join('\n')}`);
  const losses = new Map<string, number>();
  for (const line of `${r.stdout}\n${r.stderr}`.split(/[\r\n]+/)) {
    const m = /^\s+(.+?)\s+done, validation loss ([0-9.]+)/.exec(line);
    if (m) losses.set(m[1]!.trim(), Number(m[2]));
  }
  if (losses.size === 0) throw new Error(`${c.name}: no validation losses in the output of mixtape compare:\n${r.stdout.slice(-2000)}`);
  return { seconds, losses };
}

export async function runReleaseBench(filter?: string): Promise<string[]> {
  const rounds = Number(filter ?? process.env.MIXTAPE_BENCH_ROUNDS ?? 2);
  const root = resolve(new URL('../..', import.meta.url).pathname);
  const tmp = mkdtempSync(join(tmpdir(), 'mixtape-release-'));
  const base = join(tmp, 'baseline');
  try {
    execFileSync('bash', ['-c', `mkdir -p '${base}' && git -C '${root}' archive '${BASELINE}' | tar -x -C '${base}'`]);
    symlinkSync(join(root, 'node_modules'), join(base, 'node_modules'));
    execFileSync(process.execPath, ['scripts/build.mjs'], { cwd: base, stdio: 'pipe' });
    // Extra compare flags for every contender (a smoke test: MIXTAPE_RELEASE_ARGS='--steps 20').
    const extra = (process.env.MIXTAPE_RELEASE_ARGS ?? '').split(/\s+/).filter(Boolean);
    const contenders: Contender[] = [
      { name: `baseline ${BASELINE}`, dir: base, args: [...extra] },
      { name: 'this version, all threads', dir: root, args: [...extra] },
      { name: 'this version, 1 thread', dir: root, args: ['--threads', '1', ...extra] },
    ];
    console.log(`\nmixtape compare (defaults${extra.length ? ` and ${extra.join(' ')}` : ''}), ${rounds} alternating rounds; load ${loadavg()[0]!.toFixed(2)}`);
    const results = contenders.map(() => [] as { seconds: number; losses: Map<string, number> }[]);
    for (let r = 0; r < rounds; r++) {
      contenders.forEach((c, i) => {
        const res = compareRun(c, join(tmp, `runs-${i}-${r}`));
        results[i]!.push(res);
        console.log(`  round ${r + 1} ${c.name.padEnd(28)} ${res.seconds.toFixed(1)} s  ${[...res.losses].map(([n, l]) => `${n}: ${l.toFixed(4)}`).join(', ')}`);
      });
    }
    const wall = results.map((rs) => median(rs.map((x) => x.seconds)));
    const lines: string[] = [];
    const speedup = wall[0]! / wall[1]!;
    lines.push(`- mixtape compare wall time ≥ 3× faster than ${BASELINE}: ${speedup.toFixed(2)}× (${wall[0]!.toFixed(1)} s → ${wall[1]!.toFixed(1)} s; 1 thread ${wall[2]!.toFixed(1)} s) — ${speedup >= 3 ? 'met' : 'NOT met'}`);
    const [b, all, one] = [results[0]![0]!.losses, results[1]![0]!.losses, results[2]![0]!.losses];
    const diffs = [...all].map(([n, l]) => [n, b.has(n) ? Math.abs(l - b.get(n)!) : NaN] as const);
    const within = diffs.every(([, d]) => d <= 0.01);
    lines.push(`- validation losses within ±0.01 of ${BASELINE}'s: ${diffs.map(([n, d]) => `${n} ${Number.isNaN(d) ? 'not in the baseline' : `|Δ| ${d.toFixed(4)}`}`).join('; ')} — ${within ? 'met' : 'NOT met'}`);
    const same = [...all].every(([n, l]) => one.get(n) === l) && all.size === one.size;
    lines.push(`- identical validation losses on 1 thread and on all threads: ${same ? 'yes' : 'NO'} — ${same ? 'met' : 'NOT met'}`);
    console.log(`\nTargets (release):\n${lines.join('\n')}\n(load after: ${loadavg()[0]!.toFixed(2)})`);
    return lines;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
