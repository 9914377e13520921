// `mixtape lab [RUN_DIR]`: starts the lab's server (src/lab/server.ts), prints its URL and
// serves until Ctrl-C. The page script is dist/lab.js, next to this bundle (dist/cli.js).

import { existsSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startLabServer } from '../lab/server.js';
import { UsageError } from './run.js';

export async function labCommand(runDir: string | undefined, port: number): Promise<void> {
  if (runDir !== undefined) {
    if (!existsSync(runDir)) throw new UsageError(`lab: no such directory ${runDir}`);
    if (!statSync(runDir).isDirectory()) throw new UsageError(`lab: ${runDir} is a file; give the run directory that holds it`);
  }
  const assets = dirname(fileURLToPath(import.meta.url));
  if (!existsSync(join(assets, 'lab.js'))) throw new UsageError(`lab: the page script ${join(assets, 'lab.js')} is missing; build it with node scripts/build.mjs`);
  const gpuJs = join(dirname(createRequire(import.meta.url).resolve('gpu.js/package.json')), 'dist', 'gpu-browser.min.js');
  const lab = await startLabServer({ assets, gpuJs, runDir, port }).catch((e: NodeJS.ErrnoException) => {
    throw e.code === 'EADDRINUSE' ? new UsageError(`lab: port ${port} is in use; pick another --port or leave it out for a free one`) : e;
  });
  console.log(`mixtape lab: ${lab.url}${runDir ? ` (run directory ${runDir})` : ''}  — open it in a browser; Ctrl-C stops the server`);
  await new Promise<void>((resolve) => {
    const stop = () => { process.off('SIGINT', stop); process.off('SIGTERM', stop); void lab.close().then(resolve); };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
