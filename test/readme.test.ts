// The README's API tour runs as written: every ```ts block is executed in order, and what
// each console.log prints is compared with the `// …` result the README writes after it
// (on the same line, or on the next line when the log line has no comment of its own),
// wherever that comment is a literal: numbers, true/false/null, JSON arrays, bare words
// for printed strings (`// int32 float64`), or the whole text of a printed message.
// Prose after the literal (`// [12, 30]   (reductions ...)`, `// 2: w and w.grad`) is
// allowed; a comment that is prose only (`// 2w·exp(w²)`) is listed as skipped.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';

interface Block { code: string; firstLine: number }

/** The README's ts blocks, each with the README line number of its first code line. */
function tsBlocks(readme: string): Block[] {
  return [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => ({
    code: m[1]!,
    firstLine: readme.slice(0, m.index! + '```ts\n'.length).split('\n').length,
  }));
}

/** A console.log call site and the README's comment about what it prints (null: none). */
interface LogSite { line: number; comment: string | null }

/** The console.log sites of a block (line numbers within the block) and their comments. */
function logSites(code: string): LogSite[] {
  const lines = code.split('\n');
  const sites: LogSite[] = [];
  lines.forEach((text, i) => {
    if (!text.includes('console.log(')) return;
    const trailing = /\);?\s*(?:\}\s*)?\/\/ (.*)$/.exec(text);
    const next = /^\s*\/\/ (.*)$/.exec(lines[i + 1] ?? '');
    sites.push({ line: i, comment: trailing ? trailing[1]! : next ? next[1]! : null });
  });
  return sites;
}

/** Rewrites each `console.log(` as a call that also reports its arguments as JSON, tagged with the line. */
function instrument(code: string): string {
  const report = 'const __readmeLog = (line: number, ...args: unknown[]) => { '
    + "process.stdout.write('\\u0001' + JSON.stringify({ line, args }) + '\\n'); console.log(...args); };\n";
  return report + code.split('\n').map((text, i) => text.replaceAll('console.log(', `__readmeLog(${i}, `)).join('\n');
}

/** The comment's leading whitespace-separated tokens, brackets kept whole, up to where its prose starts. */
function leadingTokens(comment: string): string[] {
  // Prose starts at two spaces, at ": " or at " (".
  const literal = comment.split(/\s{2,}|:\s|\s\(/)[0]!.trim();
  const tokens: string[] = [];
  let depth = 0, current = '';
  for (const ch of literal) {
    if (ch === '[' || ch === '{') depth++;
    if (ch === ']' || ch === '}') depth--;
    if (/\s/.test(ch) && depth === 0) {
      if (current) tokens.push(current);
      current = '';
    } else current += ch;
  }
  if (current) tokens.push(current);
  return tokens;
}

/** A comment token as a value: JSON (numbers, booleans, null, arrays), a bare word for a printed string, else undefined. */
function tokenValue(token: string, printed: unknown): unknown {
  try {
    return JSON.parse(token) as unknown;
  } catch {
    return typeof printed === 'string' && /^[A-Za-z_][\w.-]*$/.test(token) ? token : undefined;
  }
}

/**
 * The values the comment states for the printed arguments, or why it states none: a single
 * printed string is the whole comment; otherwise one literal token per argument.
 */
function expectedValues(comment: string, args: readonly unknown[]): { values: unknown[] } | { skip: string } {
  if (args.length === 1 && typeof args[0] === 'string') return { values: [comment] };
  const tokens = leadingTokens(comment);
  if (tokens.length !== args.length) return { skip: `${tokens.length} words for ${args.length} printed values` };
  const values = tokens.map((t, i) => tokenValue(t, args[i]));
  const bad = values.findIndex((v) => v === undefined);
  return bad >= 0 ? { skip: `"${tokens[bad]}" is not a literal` } : { values };
}

test('every ts block of README.md runs and prints the results its comments state', () => {
  const readme = readFileSync('README.md', 'utf8');
  const blocks = tsBlocks(readme);
  assert.ok(blocks.length >= 5, `expected the API tour's blocks, found ${blocks.length}`);
  const dir = mkdtempSync(join(tmpdir(), 'mixtape-readme-'));
  let compared = 0;
  try {
    // GPU examples need a GPU mode (Xvfb or a WebGPU adapter): they run where the GPU tests are required.
    const gpuRequired = (process.env.MIXTAPE_GPU_REQUIRED ?? '').includes('webgpu');
    blocks.forEach(({ code, firstLine }, i) => {
      if (code.includes("setBackend('gpu'") && !gpuRequired) {
        console.log(`# README block ${i} (GPU) skipped: MIXTAPE_GPU_REQUIRED does not include webgpu`);
        return;
      }
      const file = join(dir, `block-${i}.mts`);
      writeFileSync(file, instrument(code).replace(/from 'mixtape'/g, `from '${resolve('src/index.ts')}'`));
      const out = execFileSync(process.execPath, ['--import', 'tsx', file], { encoding: 'utf8' });
      const calls = out.split('\n').filter((l) => l.startsWith('\u0001')).map((l) => JSON.parse(l.slice(1)) as { line: number; args: unknown[] });
      assert.ok(calls.length > 0, `block ${i} printed nothing`);
      for (const site of logSites(code)) {
        const where = `README.md:${firstLine + site.line}`;
        const printed = calls.filter((c) => c.line === site.line);
        assert.ok(printed.length > 0, `${where}: this console.log never ran`);
        if (site.comment === null) continue;
        for (const { args } of printed) {
          const expected = expectedValues(site.comment, args);
          if ('skip' in expected) {
            console.log(`# ${where} skipped, not a literal (${expected.skip}): // ${site.comment}`);
            continue;
          }
          assert.deepEqual(args, expected.values, `${where}: printed ${JSON.stringify(args)}, the README says // ${site.comment}`);
          console.log(`# ${where} compared: ${JSON.stringify(args)} = // ${site.comment}`);
          compared++;
        }
      }
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.ok(compared >= 10, `expected the tour's literal results to be compared, compared ${compared}`);
});
