// Bundles the library (src/index.ts → dist/index.js) and the command line
// (src/cli/entry.ts → dist/cli.js) as Node ESM, and the library for browsers
// (src/index.ts → dist/mixtape.browser.js, see scripts/browser-bundle.mjs) and the lab page
// (src/lab/page.ts → dist/lab.js). Type
// declarations come from `tsc -p tsconfig.build.json` (esbuild emits none); `npm run build`
// runs both.
import { build } from 'esbuild';
import { browserBuildOptions } from './browser-bundle.mjs';

const common = { bundle: true, format: 'esm', platform: 'node', target: 'node20', sourcemap: true, packages: 'external', logLevel: 'warning' };
await build({ ...common, entryPoints: ['src/index.ts'], outfile: 'dist/index.js' });
await build({ ...common, entryPoints: ['src/cli/entry.ts'], outfile: 'dist/cli.js' });
await build({ ...browserBuildOptions, entryPoints: ['src/index.ts'], outfile: 'dist/mixtape.browser.js' });
// The lab's page script and its worker (where the model trains, on every backend) (served by `mixtape lab`, src/lab/server.ts), next to dist/cli.js.
await build({ ...browserBuildOptions, entryPoints: { lab: 'src/lab/page.ts', 'lab-worker': 'src/lab/worker.ts' }, outdir: 'dist' });
console.log('built dist/index.js, dist/cli.js, dist/mixtape.browser.js, dist/lab.js and dist/lab-worker.js');
