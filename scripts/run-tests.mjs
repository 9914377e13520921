#!/usr/bin/env node
// Runs every test/**/*.test.ts through node's built-in test runner (with tsx), over an
// explicit file list: Node 20 does not expand globs and silently runs 0 tests on a
// directory. Fails when no test ran. Extra arguments are file filters (substrings).

import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function findTests(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...findTests(path));
    else if (name.endsWith('.test.ts')) out.push(path);
  }
  return out;
}

const filters = process.argv.slice(2);
const files = findTests('test').filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)));
if (files.length === 0) {
  console.error(`run-tests: no test files matched ${filters.join(' ') || 'test/**/*.test.ts'}`);
  process.exit(1);
}

const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', ...files], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
// The summary's "ℹ tests N" line, read line by line (a long "failing tests:" section may follow it).
let partial = '';
let ran = 0;
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  const lines = (partial + chunk.toString()).split('\n');
  partial = lines.pop() ?? '';
  for (const line of lines) {
    const m = /^\S* ?tests (\d+)$/.exec(line);
    if (m) ran = Number(m[1]);
  }
});
child.on('close', (code) => {
  if (ran === 0) {
    console.error('run-tests: 0 tests ran; failing');
    process.exit(1);
  }
  process.exit(code ?? 1);
});
