// The router flags (#13): --gating switch, --capacity-factor, --w-z-loss, --aux-loss-weight:
// one clear error per bad configuration, and a short run that records the router fields.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { configFromFlags } from '../../src/cli/main.js';
import type { RunConfig, TrainRecord, ValRecord } from '../../src/report/schema.js';

const tmp = mkdtempSync(join(tmpdir(), 'mixtape-routers-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('router flags', () => {
  const bad: [Record<string, string>, string][] = [
    [{ gating: 'switch', k: '2' }, '--gating switch routes each token to 1 expert, got --k 2'],
    [{ gating: 'switch', model: 'hmoe' }, '--gating switch needs --model moe (the hierarchical MoE has its own noisy top-k gates)'],
    [{ gating: 'gshard', k: '1' }, '--gating gshard routes each token to its top 2 experts, got --k 1'],
    [{ gating: 'gshard', experts: '1', k: '2' }, '--k 2 is larger than --experts 1: each token picks k of the experts'],
    [{ gating: 'gshard', model: 'hmoe' }, '--gating gshard needs --model moe (the hierarchical MoE has its own noisy top-k gates)'],
    [{ gating: 'hash', k: '2' }, '--gating hash sends each token to the 1 expert its id hashes to, got --k 2'],
    [{ gating: 'hash', 'w-z-loss': '0.001' }, '--gating hash has no router logits, so --w-z-loss must be 0, got 0.001'],
    [{ gating: 'expert-choice', model: 'hmoe' }, '--gating expert-choice needs --model moe (the hierarchical MoE has its own noisy top-k gates)'],
    [{ 'shared-experts': '1' }, '--shared-experts needs --gating deepseek (the gating is noisy-topk)'],
    [{ gating: 'deepseek', 'shared-experts': '16' }, '--shared-experts 16 must be fewer than --experts 16'],
    [{ gating: 'deepseek', 'score-function': 'tanh' }, "--score-function must be sigmoid or softmax, got 'tanh'"],
    [{ gating: 'deepseek', 'bias-update-rate': '-1' }, '--bias-update-rate must be a non-negative number, got -1'],
    [{ 'capacity-factor': '0' }, '--capacity-factor must be a positive number, got 0'],
    [{ 'capacity-factor': '-0.5' }, '--capacity-factor must be a positive number, got -0.5'],
    [{ 'capacity-factor': '1', gating: 'batchwise' }, '--capacity-factor applies to token-choice routers (noisy-topk, switch, gshard, hash, deepseek) and expert-choice, not --gating batchwise'],
    [{ 'capacity-factor': '1', model: 'hmoe' }, '--capacity-factor needs --model moe (the model is hmoe)'],
    [{ 'w-z-loss': '-1' }, '--w-z-loss must be a non-negative number, got -1'],
    [{ gating: 'gshard', 'aux-loss-weight': '-0.1' }, '--aux-loss-weight must be a non-negative number, got -0.1'],
    [{ 'aux-loss-weight': '0.1' }, '--aux-loss-weight needs --gating switch or gshard (the gating is noisy-topk)'],
    [{ gating: 'deepseek', 'aux-loss-weight': '0.1' }, '--aux-loss-weight needs --gating switch or gshard (the gating is deepseek)'],
    [{ 'seq-aux-loss-weight': '0.001' }, '--seq-aux-loss-weight needs --gating deepseek (the gating is noisy-topk)'],
    [{ gating: 'deepseek', 'seq-aux-loss-weight': '-1' }, '--seq-aux-loss-weight must be a non-negative number, got -1'],
    [{ gating: 'hash', model: 'hmoe' }, '--gating hash needs --model moe (the hierarchical MoE has its own noisy top-k gates)'],
    [{ gating: 'hash', model: 'rmoe' }, '--model rmoe routes with noisy top-k gating; --gating hash is not available for it'],
    [{ gating: 'deepseek', model: 'rmoe' }, '--model rmoe routes with noisy top-k gating; --gating deepseek is not available for it'],
    [{ k: '17' }, '--k 17 is larger than --experts 16: each token picks k of the experts'],
    [{ gating: 'deepseek', k: '5', experts: '4' }, '--k 5 is larger than --experts 4: each token picks k of the experts'],
    [{ gating: 'expert-choice', experts: '4', 'capacity-factor': '5' }, '--gating expert-choice: --capacity-factor 5 (experts per token on average) cannot exceed --experts 4'],
    [{ gating: 'expert-choice', backend: 'gpu', 'gpu-mode': 'webgpu' }, '--gating expert-choice routes on the host (a synchronous readback in the middle of each forward pass), which --gpu-mode webgpu does not offer: use --gpu-mode headlessgl or --backend cpu'],
    [{ gating: 'hash', backend: 'gpu', 'gpu-mode': 'webgpu' }, '--gating hash routes on the host (a synchronous readback in the middle of each forward pass), which --gpu-mode webgpu does not offer: use --gpu-mode headlessgl or --backend cpu'],
    [{ gating: 'switch', 'capacity-factor': '1', backend: 'gpu', 'gpu-mode': 'webgpu' }, '--capacity-factor routes on the host (a synchronous readback in the middle of each forward pass), which --gpu-mode webgpu does not offer: use --gpu-mode headlessgl or --backend cpu'],
    [{ gating: 'switch', 'capacity-factor': 'Infinity' }, "--capacity-factor must be a number, got 'Infinity'"],
  ];
  for (const [flags, message] of bad) {
    test(`${JSON.stringify(flags)}: ${message}`, () => {
      assert.throws(() => configFromFlags(flags), (e: Error) => e.name === 'UsageError' && e.message === message);
    });
  }

  test('--gating switch defaults --k to 1; router options are recorded only when given', () => {
    const c: RunConfig = configFromFlags({ gating: 'switch', 'capacity-factor': '1.25', 'w-z-loss': '0.001', 'aux-loss-weight': '0.02' });
    assert.equal(c.k, 1);
    assert.equal(c.capacityFactor, 1.25);
    assert.equal(c.wZLoss, 0.001);
    assert.equal(c.auxLossWeight, 0.02);
    const plain = configFromFlags({});
    assert.equal(plain.k, 2);
    for (const key of ['capacityFactor', 'wZLoss', 'auxLossWeight'] as const) assert.ok(!(key in plain), `${key} must be absent from a run that did not set it`);
  });

  test('a short switch run with dropping records droppedFraction, droppedPerExpert and routerZLoss in every train record', () => {
    const out = join(tmp, 'switch');
    const r = spawnSync(process.execPath, ['--import', import.meta.resolve('tsx'), join(process.cwd(), 'src/cli/entry.ts'), 'train', '--gating', 'switch', '--capacity-factor', '0.5',
      '--w-z-loss', '1e-3', '--steps', '4', '--eval-every', '4', '--batch', '4', '--seq-len', '8', '--d', '8', '--expert-hidden', '8', '--experts', '4', '--domains', '4', '--quiet', '--out', out], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, r.stderr);
    const train = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as TrainRecord).filter((x) => x.type === 'train');
    assert.equal(train.length, 4);
    for (const rec of train) {
      // Capacity ⌈0.5·1·32/4⌉ = 4 of 32 tokens per expert: at least half of the routes are dropped.
      assert.ok(rec.droppedFraction! >= 0.5 && rec.droppedFraction! < 1, `droppedFraction ${rec.droppedFraction}`);
      assert.equal(rec.droppedPerExpert!.length, 4);
      assert.ok(rec.expertCounts!.every((n) => n <= 4), `counts ${rec.expertCounts}`);
      assert.ok(Number.isFinite(rec.routerZLoss!) && rec.routerZLoss! > 0);
    }
  });

  test('every flat MoE run records the router fields: a default noisy-topk run has droppedFraction 0 and its router z-loss', () => {
    const out = join(tmp, 'noisy');
    const r = spawnSync(process.execPath, ['--import', import.meta.resolve('tsx'), join(process.cwd(), 'src/cli/entry.ts'), 'train', '--steps', '2', '--eval-every', '2',
      '--batch', '4', '--seq-len', '4', '--d', '4', '--expert-hidden', '4', '--experts', '4', '--domains', '4', '--quiet', '--out', out], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, r.stderr);
    const train = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as TrainRecord).filter((x) => x.type === 'train');
    assert.equal(train.length, 2);
    for (const rec of train) {
      assert.equal(rec.droppedFraction, 0);
      assert.deepEqual(rec.droppedPerExpert, [0, 0, 0, 0]);
      assert.ok(Number.isFinite(rec.routerZLoss!) && rec.routerZLoss! >= 0, `routerZLoss ${rec.routerZLoss}`);
    }
  });

  for (const gating of ['expert-choice', 'gshard', 'hmoe'] as const) {
    test(`${gating}: the validation's domain × expert table counts the routes taken (its total is the expert counts')`, () => {
      const out = join(tmp, `de-${gating}`);
      const flags = gating === 'hmoe' ? ['--model', 'hmoe', '--groups', '2'] : ['--gating', gating];
      const r = spawnSync(process.execPath, ['--import', import.meta.resolve('tsx'), join(process.cwd(), 'src/cli/entry.ts'), 'train', ...flags, '--steps', '2', '--eval-every', '2',
        '--batch', '4', '--seq-len', '4', '--d', '4', '--expert-hidden', '4', '--experts', '4', '--domains', '4', '--quiet', '--out', out], { encoding: 'utf8', timeout: 120_000 });
      assert.equal(r.status, 0, r.stderr);
      const val = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as ValRecord).filter((x) => x.type === 'val');
      const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
      for (const rec of val) assert.equal(sum(rec.domainExpert!.flat()), sum(rec.expertCounts!));
    });
  }

  const cli = (...args: string[]) => spawnSync(process.execPath, ['--import', import.meta.resolve('tsx'), join(process.cwd(), 'src/cli/entry.ts'), ...args], { encoding: 'utf8', timeout: 120_000 });

  test('compare --gatings: one clear error for an unsupported router', () => {
    const r = cli('compare', '--gatings', 'switch,softmax', '--out', join(tmp, 'bad'));
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stderr.trim(), "mixtape: --gatings: unknown or unsupported router 'softmax' (expected a comma-separated list of noisy-topk, switch, gshard, hash, expert-choice, deepseek)");
  });

  test('compare --gatings: router-specific flags need their router in the list', () => {
    const r1 = cli('compare', '--gatings', 'noisy-topk,hash', '--aux-loss-weight', '0.1', '--out', join(tmp, 'bad-aux'));
    assert.equal(r1.status, 2, r1.stderr);
    assert.equal(r1.stderr.trim(), 'mixtape: --aux-loss-weight needs switch or gshard in --gatings');
    const r2 = cli('compare', '--gatings', 'switch,gshard', '--seq-aux-loss-weight', '0.1', '--out', join(tmp, 'bad-seq'));
    assert.equal(r2.status, 2, r2.stderr);
    assert.equal(r2.stderr.trim(), 'mixtape: --shared-experts, --score-function, --bias-update-rate and --seq-aux-loss-weight need deepseek in --gatings');
  });

  test('deepseek --seq-aux-loss-weight: recorded in config.json, the sequence-wise loss is the auxLoss of every step (0 without it)', () => {
    const flags = ['train', '--gating', 'deepseek', '--experts', '4', '--k', '2', '--steps', '2', '--eval-every', '2', '--batch', '4', '--seq-len', '4', '--d', '4', '--expert-hidden', '4', '--domains', '4', '--quiet'];
    const on = join(tmp, 'ds-seq'), off = join(tmp, 'ds-noseq');
    assert.equal(cli(...flags, '--seq-aux-loss-weight', '0.01', '--out', on).status, 0);
    assert.equal(cli(...flags, '--out', off).status, 0);
    const aux = (dir: string) => readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as TrainRecord).filter((x) => x.type === 'train').map((x) => x.auxLoss);
    assert.equal((JSON.parse(readFileSync(join(on, 'config.json'), 'utf8')) as RunConfig).seqAuxLossWeight, 0.01);
    // Σ fᵢPᵢ is 1 at balance (fᵢ = 1) and at most E/k = 2, so α·Σ fᵢPᵢ is near 0.01 and below 0.02.
    for (const a of aux(on)) assert.ok(a > 0.001 && a <= 0.02, `auxLoss ${a}`);
    assert.deepEqual(aux(off), [0, 0]);
  });

  test('compare --gatings trains one MoE per router with matched active compute (a·hidden = k·h), plus the dense baseline', () => {
    const out = join(tmp, 'compare');
    const r = cli('compare', '--gatings', 'noisy-topk,switch,gshard', '--experts', '4', '--k', '2', '--expert-hidden', '6', '--steps', '2', '--eval-every', '2',
      '--batch', '4', '--seq-len', '4', '--d', '4', '--domains', '4', '--quiet', '--out', out);
    assert.equal(r.status, 0, r.stderr);
    const config = (dir: string) => JSON.parse(readFileSync(join(out, dir, 'config.json'), 'utf8')) as RunConfig;
    assert.deepEqual([config('router-noisy-topk').k, config('router-noisy-topk').expertHidden], [2, 6]);
    assert.deepEqual([config('router-switch').k, config('router-switch').expertHidden, config('router-switch').gating], [1, 12, 'switch']);
    assert.deepEqual([config('router-gshard').k, config('router-gshard').expertHidden], [2, 6]);
    assert.equal(config('dense').model, 'dense');
  });

  test('compare --gatings --fine-grained M: the deepseek run splits each expert into M (M·E experts, M·k routed, hidden matched with the shared experts)', () => {
    const out = join(tmp, 'compare-fine');
    const r = cli('compare', '--gatings', 'deepseek,switch', '--fine-grained', '2', '--shared-experts', '1', '--experts', '4', '--k', '2', '--expert-hidden', '10', '--steps', '2', '--eval-every', '2',
      '--batch', '4', '--seq-len', '4', '--d', '4', '--domains', '4', '--quiet', '--out', out);
    assert.equal(r.status, 0, r.stderr);
    const config = (dir: string) => JSON.parse(readFileSync(join(out, dir, 'config.json'), 'utf8')) as RunConfig;
    const ds = config('router-deepseek');
    // a = 2·2 routed + 1 shared = 5 experts per token of hidden ⌈2·10/5⌉ = 4: 5·4 = 20 = k·h.
    assert.deepEqual([ds.experts, ds.k, ds.sharedExperts, ds.expertHidden], [8, 4, 1, 4]);
    assert.deepEqual([config('router-switch').experts, config('router-switch').k, config('router-switch').expertHidden], [4, 1, 20]);
    const bad = cli('compare', '--gatings', 'switch,gshard', '--fine-grained', '2', '--out', join(tmp, 'bad-fine'));
    assert.equal(bad.status, 2, bad.stderr);
    assert.equal(bad.stderr.trim(), "mixtape: --fine-grained splits the deepseek run's experts: it needs deepseek in --gatings");
    const zero = cli('compare', '--gatings', 'deepseek', '--fine-grained', '0', '--out', join(tmp, 'bad-fine0'));
    assert.equal(zero.status, 2, zero.stderr);
    assert.equal(zero.stderr.trim(), 'mixtape: --fine-grained must be a positive integer, got 0');
  });

  test('deepseek: the bias is checkpointed, so a resumed run equals an uninterrupted one', () => {
    const flags = ['--gating', 'deepseek', '--experts', '4', '--k', '2', '--shared-experts', '1', '--bias-update-rate', '0.05', '--eval-every', '2',
      '--batch', '4', '--seq-len', '4', '--d', '4', '--expert-hidden', '4', '--domains', '4', '--quiet'];
    const whole = join(tmp, 'ds-whole'), parts = join(tmp, 'ds-parts');
    assert.equal(cli('train', ...flags, '--steps', '4', '--out', whole).status, 0);
    assert.equal(cli('train', ...flags, '--steps', '2', '--out', parts).status, 0);
    const r = cli('train', '--out', parts, '--resume', '--steps', '4', '--quiet');
    assert.equal(r.status, 0, r.stderr);
    const losses = (dir: string) => readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as TrainRecord).filter((x) => x.type === 'train').map((x) => [x.step, x.loss, x.expertCounts]);
    assert.deepEqual(losses(parts), losses(whole));
  });
});
