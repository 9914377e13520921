// `npm run bench [-- suite[:filter] ...]`: bundles bench/run-all.ts with esbuild and runs the
// bundle with plain node, as an application built on mixtape runs.
//
// Not under tsx: once tsx has loaded a CommonJS module (benchmark.js and tfjs are), something
// on that path detaches an ArrayBuffer, which invalidates V8's "ArrayBuffer detaching"
// protector for the whole process; every optimized typed-array access is checked from then
// on, and every kernel of both libraries ran 15–20% slower than in a plain node process.
// tsx's keepNames wrapping of named closures costs per-op overhead on top. See BENCHMARKS.md.
import { spawnSync } from 'node:child_process';
import { build } from 'esbuild';

const outfile = 'dist/bench/run-all.mjs';
await build({
  entryPoints: ['bench/run-all.ts'], outfile, bundle: true, format: 'esm', platform: 'node',
  target: 'node20', packages: 'external', sourcemap: true, logLevel: 'warning',
});
const run = spawnSync(process.execPath, ['--enable-source-maps', outfile, ...process.argv.slice(2)], { stdio: 'inherit' });
process.exit(run.status ?? 1);
