// The layering of docs/ARCHITECTURE.md, checked: every relative import in src/ must go to a
// layer that the table between the `layers:begin` and `layers:end` markers allows. The table
// is read from the document itself, so the document and the code cannot drift apart.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { test } from 'node:test';

const SRC = 'src';

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).sort().flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sourceFiles(path) : name.endsWith('.ts') ? [path] : [];
  });
}

function readTable(): Map<string, string[]> {
  const doc = readFileSync('docs/ARCHITECTURE.md', 'utf8');
  const block = /<!-- layers:begin -->\s*```\n([\s\S]*?)```\s*<!-- layers:end -->/.exec(doc);
  assert.ok(block, 'docs/ARCHITECTURE.md has no layers table between its markers');
  const table = new Map<string, string[]>();
  for (const line of block[1]!.split('\n')) {
    const [layer, ...allowed] = line.trim().split(/\s+/);
    if (layer) table.set(layer, allowed);
  }
  return table;
}

/** The table row of a file under src/: 'core', 'backends/cpu', 'backends/*', 'backends', 'index.ts', ... */
function layerOf(path: string, table: Map<string, string[]>): { row: string; folder: string } {
  const parts = relative(SRC, path).split(/[\\/]/);
  if (parts.length === 1) return { row: parts[0]!, folder: parts[0]! };
  if (parts[0] === 'backends') {
    if (parts.length === 2) return { row: 'backends', folder: 'backends' };
    const folder = `backends/${parts[1]}`;
    return { row: table.has(folder) ? folder : 'backends/*', folder };
  }
  return { row: parts[0]!, folder: parts[0]! };
}

function allows(allowed: readonly string[], from: { folder: string }, to: { folder: string }): boolean {
  if (allowed.includes('*') || to.folder === from.folder) return true;
  return allowed.some((a) =>
    a === to.folder
    || (a === 'backends/*' && to.folder === from.folder)
    || (a === 'backends' && (to.folder === 'backends' || to.folder.startsWith('backends/'))));
}

const IMPORT = /(?:\bfrom\s*|\bimport\s*\(?\s*|\bdeclare module\s+)['"](\.{1,2}\/[^'"]+)['"]/g;

test('every import in src/ follows the layer table of docs/ARCHITECTURE.md', () => {
  const table = readTable();
  const files = sourceFiles(SRC);
  assert.ok(files.length > 50, `found only ${files.length} source files`);
  const violations: string[] = [];
  let checked = 0;
  for (const file of files) {
    const from = layerOf(file, table);
    const allowed = table.get(from.row);
    if (!allowed) { violations.push(`${file}: its layer '${from.row}' is not in the table`); continue; }
    // Comments may show imports as examples: only code counts.
    const code = readFileSync(file, 'utf8').split('\n').filter((l) => !/^\s*(\/\/|\*|\/\*)/.test(l)).join('\n');
    for (const m of code.matchAll(IMPORT)) {
      const target = normalize(join(dirname(file), m[1]!));
      if (!target.startsWith(SRC)) { violations.push(`${file}: imports ${m[1]} outside src/`); continue; }
      checked++;
      const to = layerOf(target.replace(/\.js$/, '.ts'), table);
      if (!allows(allowed, from, to)) violations.push(`${file} (${from.row}) imports ${m[1]} (${to.folder})`);
    }
  }
  assert.ok(checked > 200, `checked only ${checked} imports`);
  assert.deepEqual(violations, []);
});

test('the layer check catches an upward import', () => {
  const table = readTable();
  const tensor = layerOf('src/tensor/engine.ts', table);
  assert.equal(allows(table.get(tensor.row)!, tensor, layerOf('src/backends/cpu/cpu-backend.ts', table)), false);
  assert.equal(allows(table.get(tensor.row)!, tensor, layerOf('src/autograd/node.ts', table)), false);
  const cpu = layerOf('src/backends/cpu/matmul.ts', table);
  assert.equal(allows(table.get(cpu.row)!, cpu, layerOf('src/tensor/tensor.ts', table)), false);
  assert.equal(allows(table.get(cpu.row)!, cpu, layerOf('src/backends/gpu/device.ts', table)), false);
  const other = layerOf('src/backends/wasm/kernels.ts', table);
  assert.equal(other.row, 'backends/*');
  assert.equal(allows(table.get(other.row)!, other, layerOf('src/backends/cpu/cpu-backend.ts', table)), true);
  assert.equal(allows(table.get(other.row)!, other, layerOf('src/backends/gpu/device.ts', table)), false);
});
