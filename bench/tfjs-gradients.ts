// tfjs-core ships its gradient functions only as ES modules with directory imports, which
// Node cannot load. esbuild bundles them once into a CommonJS file; they register into
// tfjs's global gradient registry, which the core loaded by the harness shares.

import { createRequire } from 'node:module';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildSync } from 'esbuild';

let done = false;

export function registerTfjsGradients(): void {
  if (done) return;
  const require = createRequire(import.meta.url);
  const entry = require.resolve('@tensorflow/tfjs-core/dist/register_all_gradients.js');
  const outfile = join(mkdtempSync(join(tmpdir(), 'mixtape-bench-')), 'tfjs-gradients.cjs');
  buildSync({ entryPoints: [entry], bundle: true, platform: 'node', format: 'cjs', outfile, logLevel: 'warning' });
  require(outfile);
  done = true;
}
