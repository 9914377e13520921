#!/usr/bin/env node
// The `mixtape` command. Runs the bundled CLI (dist/cli.js, made by `npm run build`, which
// `npm ci` runs through the prepare script).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const bundle = new URL('../dist/cli.js', import.meta.url);
if (!existsSync(fileURLToPath(bundle))) {
  console.error('mixtape: dist/cli.js is missing; run `npm run build` (or `bash scripts/setup.sh`) in the mixtape folder first');
  process.exit(1);
}
await import(bundle.href);
