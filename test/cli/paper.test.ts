// The command line for the paper's remaining pieces: --model rmoe with --checkpoint-every
// (§3.1), achieved GFLOP/s in the progress line, metrics and report (Table 1), and the
// contexts each expert is gated on for a --text model, in inspect and the report (App. E).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { progressLine } from '../../src/cli/progress.js';

const entry = join(process.cwd(), 'src/cli/entry.ts');
const tsx = import.meta.resolve('tsx');
const tmp = mkdtempSync(join(tmpdir(), 'mixtape-paper-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function run(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', tsx, entry, ...args], { encoding: 'utf8', cwd: tmp, timeout: 180_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

const small = ['--steps', '4', '--eval-every', '4', '--batch', '4', '--seq-len', '8', '--d', '8', '--expert-hidden', '8', '--experts', '4', '--quiet'];

interface Train { type: 'train'; tokensPerSec: number; gflops: number; cvLoad: number | null }
const records = (dir: string) => readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);

describe('mixtape CLI: recurrent MoE, GFLOP/s, expert contexts', () => {
  test('train --model rmoe --checkpoint-every 3: routing stats and GFLOP/s in metrics.jsonl; checkpointing changes the losses only in rounding', () => {
    const plain = join(tmp, 'rmoe'), ckpt = join(tmp, 'rmoe-ckpt');
    const a = run('train', '--model', 'rmoe', ...small, '--domains', '4', '--out', plain);
    assert.equal(a.code, 0, a.stderr);
    const b = run('train', '--model', 'rmoe', '--checkpoint-every', '3', ...small, '--domains', '4', '--out', ckpt);
    assert.equal(b.code, 0, b.stderr);
    const config = JSON.parse(readFileSync(join(ckpt, 'config.json'), 'utf8')) as { checkpointEvery: number; opsPerToken: { total: number; trainingFlops: number } };
    assert.equal(config.checkpointEvery, 3);
    // 6 FLOPs per forward multiply-add: 2 per multiply-add, backward = 2 × forward, softmax included.
    assert.equal(config.opsPerToken.trainingFlops, 6 * config.opsPerToken.total);
    const trains = records(ckpt).filter((r) => r.type === 'train') as unknown as Train[];
    assert.equal(trains.length, 4);
    for (const r of trains) {
      assert.ok(r.cvLoad !== null && Number.isFinite(r.cvLoad), 'routing statistics');
      assert.ok(Math.abs(r.gflops - (config.opsPerToken.trainingFlops * r.tokensPerSec) / 1e9) <= 1e-9 * r.gflops, 'gflops = FLOPs/token × tokens/s');
    }
    // The recurrent MoE's checkpointed gradients are bit-equal; the LSTMs' input projections
    // are summed per segment instead of in one matmul, so their gradients differ in rounding.
    const losses = (dir: string) => records(dir).map((r) => r.loss as number);
    const [x, y] = [losses(ckpt), losses(plain)];
    assert.equal(x.length, y.length);
    x.forEach((v, i) => assert.ok(Math.abs(v - y[i]!) <= 1e-5 * Math.abs(y[i]!), `loss ${i}: ${v} vs ${y[i]}`));
    const val = records(ckpt).find((r) => r.type === 'val') as { domainExpert: number[][] };
    assert.equal(val.domainExpert.length, 4);
  });

  test('bad flags: --checkpoint-every 0, rmoe with another gating', () => {
    const r = run('train', '--checkpoint-every', '0');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^mixtape: --checkpoint-every must be a positive integer, got 0$/m);
    assert.match(run('train', '--model', 'rmoe', '--gating', 'softmax').stderr, /--model rmoe routes with noisy top-k gating; --gating softmax is not available for it/);
  });

  test('compare --model rmoe matches the dense block to the k recurrent experts (expert hidden 4d)', () => {
    const dir = join(tmp, 'cmp');
    const r = run('compare', '--model', 'rmoe', ...small, '--steps', '2', '--eval-every', '2', '--no-unbalanced', '--out', dir);
    assert.equal(r.code, 0, r.stderr);
    const cfg = (d: string) => JSON.parse(readFileSync(join(dir, d, 'config.json'), 'utf8')) as { model: string; expertHidden: number; opsPerToken: { excludingSoftmax: number } };
    const [rmoe, dense] = [cfg('moe-4'), cfg('dense')];
    assert.deepEqual([rmoe.model, dense.model, dense.expertHidden], ['rmoe', 'dense', 32]);
    // Equal multiply-adds per token apart from the noisy gate's two [2d, E] matmuls.
    assert.equal(rmoe.opsPerToken.excludingSoftmax - dense.opsPerToken.excludingSoftmax, 2 * 16 * 4);
    const html = readFileSync(join(dir, 'report.html'), 'utf8');
    assert.match(html, /<th>GFLOP\/s<\/th>/);
  });

  test('a --text model: inspect and the report show the contexts each expert is most strongly gated on', () => {
    const text = join(tmp, 'story.txt');
    writeFileSync(text, 'The cat sat on the mat. The dog sat on the log. A bird sang in the tree.\n'.repeat(40));
    const dir = join(tmp, 'text');
    const t = run('train', '--text', text, ...small, '--steps', '3', '--eval-every', '3', '--out', dir);
    assert.equal(t.code, 0, t.stderr);
    const val = records(dir).find((r) => r.type === 'val') as { expertContexts: { gate: number; before: string; token: string; after: string }[][] };
    assert.equal(val.expertContexts.length, 4);
    const all = val.expertContexts.flat();
    assert.ok(all.length > 0);
    for (const list of val.expertContexts) for (let i = 1; i < list.length; i++) assert.ok(list[i - 1]!.gate >= list[i]!.gate, 'best first');
    for (const c of all) assert.ok(text.length > 0 && 'The cat sat on the mat. The dog sat on the log. A bird sang in the tree.\n'.repeat(2).includes(c.before + c.token + c.after));
    const i = run('inspect', join(dir, 'checkpoint.safetensors'), '--text', text); // inspect never opens the path a checkpoint names
    assert.equal(i.code, 0, i.stderr);
    assert.match(i.stdout, /contexts each expert is most strongly gated on/);
    assert.match(i.stdout, /expert  0: «.*\[.+\].*» \d\.\d\d/);
    assert.equal(run('report', dir).code, 0);
    assert.match(readFileSync(join(dir, 'report.html'), 'utf8'), /contexts each expert is most strongly gated on/);
  });

  test('the progress line shows GFLOP/s when known', () => {
    const line = progressLine({ step: 5, total: 10, tokensPerSec: 1200, gflops: 0.5, loss: 2, cvLoad: null, elapsed: 5 });
    assert.match(line, /1\.2k tok\/s {2}0\.50 GFLOP\/s/);
    assert.doesNotMatch(progressLine({ step: 5, total: 10, tokensPerSec: 1200, loss: 2, cvLoad: null, elapsed: 5 }), /GFLOP/);
  });
});
