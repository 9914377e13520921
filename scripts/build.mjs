// Bundles src/index.ts into dist/index.js (Node ESM). Type declarations come from
// `tsc -p tsconfig.build.json` (esbuild does not emit them); `npm run build` runs both.
import { build } from 'esbuild';

await build({
  entryPoints: ['src/index.ts'],
  outfile: 'dist/index.js',
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: true,
  packages: 'external',
  logLevel: 'warning',
});
console.log('built dist/index.js');
