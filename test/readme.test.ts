// The README's API tour runs as written: every ```ts block is executed in order.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';

test('every ts block of README.md runs without error', () => {
  const readme = readFileSync('README.md', 'utf8');
  const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
  assert.ok(blocks.length >= 5, `expected the API tour's blocks, found ${blocks.length}`);
  const dir = mkdtempSync(join(resolve('test'), '.readme-'));
  try {
    // GPU examples need a GPU mode (Xvfb or a WebGPU adapter): they run where the GPU tests are required.
    const gpuRequired = (process.env.MIXTAPE_GPU_REQUIRED ?? '').includes('webgpu');
    blocks.forEach((code, i) => {
      if (code.includes("setBackend('gpu'") && !gpuRequired) {
        console.log(`# README block ${i} (GPU) skipped: MIXTAPE_GPU_REQUIRED does not include webgpu`);
        return;
      }
      const file = join(dir, `block-${i}.ts`);
      writeFileSync(file, code.replace(/from 'mixtape'/g, `from '${resolve('src/index.ts')}'`));
      const out = execFileSync(process.execPath, ['--import', 'tsx', file], { encoding: 'utf8' });
      assert.ok(out.length > 0, `block ${i} printed nothing`);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
