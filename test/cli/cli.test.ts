// The `mixtape` command line, run as a user runs it (a child process): help, bad input
// (one line on stderr, non-zero exit, no stack trace), train → checkpoint → exact resume,
// Ctrl-C, gradcheck, inspect and report.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { mt } from '../helpers.js';

const entry = join(process.cwd(), 'src/cli/entry.ts');
// Absolute, so the CLI can run with a temporary directory as its working directory.
const tsx = import.meta.resolve('tsx');
const tmp = mkdtempSync(join(tmpdir(), 'mixtape-cli-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function run(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', tsx, entry, ...args], { encoding: 'utf8', cwd: tmp, timeout: 120_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** A failure is one line on stderr starting with "mixtape:", a non-zero exit code, no stack trace. */
function assertCleanError(r: ReturnType<typeof run>, pattern: RegExp, code = 2): void {
  assert.equal(r.code, code, `exit code (stderr: ${r.stderr})`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `expected one line on stderr, got:\n${r.stderr}`);
  assert.match(lines[0]!, /^mixtape: /);
  assert.match(lines[0]!, pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
}

const REQUIRED = (process.env.MIXTAPE_GPU_REQUIRED ?? '').split(',').map((s) => s.trim()).filter(Boolean);

const small = ['--steps', '6', '--eval-every', '3', '--batch', '4', '--seq-len', '8', '--d', '8', '--expert-hidden', '8', '--experts', '4', '--domains', '4', '--quiet'];

describe('mixtape CLI', () => {
  test('--help lists the commands; each command has --help', () => {
    const r = run('--help');
    assert.equal(r.code, 0);
    for (const c of ['train', 'compare', 'report', 'gradcheck', 'inspect']) assert.match(r.stdout, new RegExp(`\\b${c}\\b`));
    for (const c of ['train', 'compare', 'report', 'gradcheck', 'inspect']) assert.match(run(c, '--help').stdout, /Usage: mixtape/);
    assert.match(run('train', '--help').stdout, /--gpu-mode headlessgl\|webgpu/);
  });

  test('bad input: unknown command or flag, impossible configurations, bad numbers', () => {
    assertCleanError(run('fly'), /unknown command 'fly'/);
    assertCleanError(run('train', '--expertz', '4'), /unknown flag --expertz/);
    assertCleanError(run('train', '--experts', '4', '--k', '5'), /--k 5 is larger than --experts 4/);
    assertCleanError(run('train', '--steps', 'ten'), /--steps must be an integer, got 'ten'/);
    assertCleanError(run('train', '--lr=-1'), /--lr must be a positive number, got -1/);
    assertCleanError(run('train', '--lr', '-1'), /--lr needs a value; write a value that starts with '-' as --lr=-X/);
    assertCleanError(run('train', '--model', 'hmoe', '--experts', '6', '--groups', '4'), /--experts 6 must be divisible by --groups 4/);
    assertCleanError(run('train', '--gating', 'bogus'), /unknown --gating 'bogus'/);
    assertCleanError(run('train', '--backend', 'tpu'), /--backend must be cpu or gpu, got 'tpu'/);
    assertCleanError(run('train', '--backend', 'gpu', '--gpu-mode', 'webgl2'), /--gpu-mode must be headlessgl or webgpu, got 'webgl2'/);
    assertCleanError(run('train', '--gpu-mode', 'webgpu'), /--gpu-mode webgpu needs --backend gpu \(the backend is cpu\)/);
    assertCleanError(run('compare', '--backend', 'cpu', '--gpu-mode', 'headlessgl'), /--gpu-mode headlessgl needs --backend gpu/);
  });

  test('bad input: missing, empty and binary text files', () => {
    writeFileSync(join(tmp, 'empty.txt'), '');
    writeFileSync(join(tmp, 'binary.bin'), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 1, 2]));
    writeFileSync(join(tmp, 'latin1.txt'), Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a]));
    assertCleanError(run('train', '--text', 'nope.txt'), /--text nope.txt: no such file/);
    assertCleanError(run('train', '--text', 'empty.txt'), /--text empty.txt: the file is empty/);
    assertCleanError(run('train', '--text', 'binary.bin'), /--text binary.bin: looks like a binary file/);
    assertCleanError(run('train', '--text', 'latin1.txt'), /--text latin1.txt: is not valid UTF-8 text/);
  });

  test('train writes a run directory; resume continues to exactly the numbers of an uninterrupted run', () => {
    const full = join(tmp, 'full'), split = join(tmp, 'split');
    assert.equal(run('train', ...small, '--out', full).code, 0);
    for (const f of ['config.json', 'metrics.jsonl', 'checkpoint.safetensors']) assert.ok(existsSync(join(full, f)), f);
    const first = run('train', ...small.map((a) => (a === '6' ? '3' : a)), '--out', split);
    assert.equal(first.code, 0, first.stderr);
    assertCleanError(run('train', ...small, '--out', split), /already holds a run; pass --resume/);
    const resumed = run('train', '--out', split, '--resume', '--steps', '6', '--quiet');
    assert.equal(resumed.code, 0, resumed.stderr);
    const strip = (dir: string) => readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => {
      const r = JSON.parse(l) as Record<string, unknown>;
      delete r.elapsed; delete r.tokensPerSec; delete r.gflops; // timings
      return r;
    });
    assert.deepEqual(strip(split), strip(full));
    assert.deepEqual(readFileSync(join(split, 'checkpoint.safetensors')).subarray(-4096), readFileSync(join(full, 'checkpoint.safetensors')).subarray(-4096));
  });

  test('--expert swiglu trains MoE with Mixtral-named SwiGLU experts, resumes, and refuses bad combinations', () => {
    assertCleanError(run('train', '--expert', 'geglu'), /unknown --expert 'geglu' \(expected mlp or swiglu\)/);
    assertCleanError(run('train', '--model', 'hmoe', '--expert', 'swiglu'), /--expert swiglu needs --model moe or dense/);
    const dir = join(tmp, 'swiglu');
    const r = run('train', ...small, '--expert', 'swiglu', '--out', dir);
    assert.equal(r.code, 0, r.stderr);
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { expert?: string };
    assert.equal(config.expert, 'swiglu');
    const { tensors } = mt.parseSafetensors(readFileSync(join(dir, 'checkpoint.safetensors')));
    assert.deepEqual(tensors['moe.experts.0.w1.weight']!.shape, [5, 8]); // round(2/3 · 8) = 5
    assert.ok(!('moe.experts.0.fc1.weight' in tensors));
    assertCleanError(run('train', '--out', dir, '--resume', '--steps', '8', '--expert', 'mlp'), /trained with expert = "swiglu", but the flags say "mlp"/);
    const resumed = run('train', '--out', dir, '--resume', '--steps', '8', '--quiet');
    assert.equal(resumed.code, 0, resumed.stderr);
  });

  test('a checkpoint from another configuration is refused in one line', () => {
    const dir = join(tmp, 'other');
    assert.equal(run('train', ...small, '--out', dir).code, 0);
    assertCleanError(run('train', '--out', dir, '--resume', '--experts', '8'), /trained with experts = 4, but the flags say 8/);
    writeFileSync(join(tmp, 'not-a-checkpoint.safetensors'), 'hello');
    assertCleanError(run('inspect', 'not-a-checkpoint.safetensors'), /not-a-checkpoint\.safetensors/, 1);
  });

  test('Ctrl-C saves a checkpoint and exits cleanly; the run can be resumed', async () => {
    const dir = join(tmp, 'interrupted');
    const child = spawn(process.execPath, ['--import', tsx, entry, 'train', ...small.map((a) => (a === '6' ? '400' : a === '3' ? '1000' : a)), '--out', dir, '--progress-json'], { cwd: tmp });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
    const code = await new Promise<number>((resolve) => {
      let sent = false;
      child.stdout.on('data', (c: Buffer) => {
        if (!sent && /"step":5\b/.test(c.toString())) { sent = true; child.kill('SIGINT'); }
      });
      child.on('close', (c) => resolve(c ?? -1));
    });
    assert.equal(code, 130);
    assert.match(stderr, /^mixtape: interrupted at step \d+; checkpoint saved in .*--resume\)\n$/);
    assert.ok(existsSync(join(dir, 'checkpoint.safetensors')));
    const resumed = run('train', '--out', dir, '--resume', '--steps', '12', '--quiet');
    assert.equal(resumed.code, 0, resumed.stderr);
  });

  // On the GPU, in each gpu.js mode the CLI offers (headlessgl is the default, so it runs
  // without --gpu-mode). As test/gpu/gpu-env.ts: a mode that cannot start here is skipped
  // with its reason, unless MIXTAPE_GPU_REQUIRED lists it; either way the refusal must be
  // one clean line (exit 2) that names the mode and the reason, and the CLI must exit (a
  // live Dawn device would keep it running past the timeout).
  for (const mode of ['headlessgl', 'webgpu'] as const) {
    test(`train --backend gpu${mode === 'webgpu' ? ' --gpu-mode webgpu' : ''} trains on the device (${mode})${mode === 'webgpu' ? ', resumes there' : ''}, or says why it cannot start`, (t) => {
      const dir = join(tmp, `gpu-${mode}`), split = join(tmp, `gpu-${mode}-split`);
      const gpuSmall = [...small.map((a) => (a === '6' ? '3' : a === '3' ? '2' : a)), '--backend', 'gpu', ...(mode === 'webgpu' ? ['--gpu-mode', mode] : [])];
      const r = run('train', ...gpuSmall, '--out', dir);
      if (r.code !== 0 && /cannot start/.test(r.stderr)) {
        // Native libraries (the Vulkan loader, Dawn) may print warnings first; the CLI's own error is the last line.
        const last = r.stderr.trim().split('\n').pop()!;
        assert.equal(r.code, 2, r.stderr);
        assert.match(last, new RegExp(`^mixtape: --backend gpu: the gpu backend \\(mode '${mode}'\\) cannot start: \\S`));
        if (mode === 'headlessgl' && !process.env.DISPLAY) assert.match(last, /there is no X display/);
        assert.doesNotMatch(r.stderr, /\n\s+at .*(\.[cm]?[jt]s:\d+|node:)/, 'no JavaScript stack trace');
        assert.equal(existsSync(dir), false, 'nothing is written when the backend cannot start');
        const reason = last.replace(/^mixtape: /, '');
        if (REQUIRED.includes(mode)) assert.fail(`MIXTAPE_GPU_REQUIRED includes ${mode}, but it cannot start: ${reason}`);
        console.log(`# skipping the CLI on gpu ${mode}: ${reason}`);
        t.skip(`gpu mode ${mode} cannot start here: only the refusal was checked`);
        return;
      }
      assert.equal(r.code, 0, r.stderr);
      const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { backend: string; gpuMode: string };
      assert.deepEqual([config.backend, config.gpuMode], ['gpu', mode]);
      const records = (d: string) => readFileSync(join(d, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      const metrics = records(dir);
      assert.deepEqual(metrics.map((m) => `${m.type}${m.step}`), ['train1', 'train2', 'val2', 'train3', 'val3']);
      for (const m of metrics) {
        assert.ok(Number.isFinite(m.loss) && (m.loss as number) > 0, `loss ${String(m.loss)} at ${m.type} ${m.step}`);
        // Counted on the device from the routing (no readback of its own): k = 2 experts for each of 4 × 8 tokens.
        if (m.type === 'train') assert.equal((m.expertCounts as number[]).reduce((a, b) => a + b, 0), 4 * 8 * 2);
      }
      const { tensors, metadata } = mt.loadSafetensors(join(dir, 'checkpoint.safetensors'));
      assert.equal(metadata.step, '3');
      assert.ok(Object.keys(tensors).some((k) => k.startsWith('optimizer.')) && 'moe.gate.w_gate' in tensors, Object.keys(tensors).join(' '));
      for (const [name, w] of Object.entries(tensors)) assert.ok(w.dataSync().every(Number.isFinite), `${name} holds a non-finite value`);
      // webgpu (async readbacks only): resume on the device (the mode comes from the
      // checkpoint) to the numbers of the uninterrupted run.
      if (mode !== 'webgpu') return;
      const first = run('train', ...gpuSmall.map((a) => (a === '3' ? '2' : a)), '--out', split);
      assert.equal(first.code, 0, first.stderr);
      const resumed = run('train', '--out', split, '--resume', '--steps', '3', '--quiet');
      assert.equal(resumed.code, 0, resumed.stderr);
      assert.equal((JSON.parse(readFileSync(join(split, 'config.json'), 'utf8')) as { gpuMode: string }).gpuMode, mode);
      const strip = (d: string) => records(d).map((m) => { delete m.elapsed; delete m.tokensPerSec; delete m.gflops; return m; });
      assert.deepEqual(strip(split), strip(dir));
    });
  }

  test('gradcheck prints the worst error per parameter and passes', () => {
    const r = run('gradcheck', '--experts', '3', '--k', '2', '--d', '2', '--hidden', '2', '--batch', '4');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /gate\.w_gate/);
    assert.match(r.stdout, /experts\.2\.fc2\.bias/);
    assert.match(r.stdout, /all \d+ checks passed/);
    assert.equal(run('gradcheck', '--noise', 'off', '--experts', '2', '--k', '1', '--d', '2', '--hidden', '2').code, 0);
  });

  test('gradcheck checks every gating kind (router gates, the MoE layer; capacity, z-loss, shared experts); bad combinations are usage errors', () => {
    for (const [gating, ...extra] of [['switch', '--capacity-factor', '0.5'], ['expert-choice', '--w-z-loss', '0.1'], ['deepseek', '--shared-experts', '1'], ['batchwise']]) {
      const r = run('gradcheck', '--gating', gating!, '--experts', '4', '--d', '2', '--hidden', '2', ...extra);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, new RegExp(`MoE \\(${gating} gating\\)`));
      if (gating !== 'hash') assert.match(r.stdout, new RegExp(`${gating} gates Σ r·G\\(x\\)\\s+gate\\.w_gate`));
      assert.match(r.stdout, /all \d+ checks passed/);
    }
    assert.match(run('gradcheck', '--gating', 'batchwise', '--experts', '3', '--d', '2', '--hidden', '2').stdout, /L_batchwise \(eq\. 20\)\s+gate\.thresholds/);
    const bad = run('gradcheck', '--gating', 'softmax', '--capacity-factor', '1');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /capacityFactor applies to token-choice routers/);
    assert.equal(run('gradcheck', '--gating', 'nope').code, 2);
  });

  test('compare trains the MoE, the compute-matched dense model and the unbalanced MoE, then writes one report', () => {
    const dir = join(tmp, 'cmp');
    const r = run('compare', ...small, '--out', dir);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /report: .*cmp\/report\.html/);
    const manifest = JSON.parse(readFileSync(join(dir, 'compare.json'), 'utf8')) as { runs: string[] };
    assert.deepEqual(manifest.runs, ['moe-4', 'dense', 'moe-4-no-balancing']);
    const configs = manifest.runs.map((d) => JSON.parse(readFileSync(join(dir, d, 'config.json'), 'utf8')) as { model: string; wLoad: number; steps: number; expertHidden: number; opsPerToken: { excludingSoftmax: number } });
    assert.deepEqual(configs.map((c) => [c.model, c.wLoad, c.steps]), [['moe', 0.1, 6], ['dense', 0.1, 6], ['moe', 0, 6]]);
    // Compute-matched: the dense block's multiply-adds equal the k experts' (gating aside).
    assert.equal(configs[0]!.opsPerToken.excludingSoftmax - configs[1]!.opsPerToken.excludingSoftmax, 2 * 8 * 4);
    assert.match(readFileSync(join(dir, 'report.html'), 'utf8'), /MoE-4, no balancing losses/);
  });

  test('inspect prints the configuration and routing; report writes a self-contained HTML file', () => {
    const dir = join(tmp, 'full');
    const r = run('inspect', join(dir, 'checkpoint.safetensors'), '--batch', '4');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /4 experts, k = 2/);
    assert.match(r.stdout, /CV\(load\)/);
    assert.match(r.stdout, /domain × expert routing/);
    const rep = run('report', dir);
    assert.equal(rep.code, 0, rep.stderr);
    const html = readFileSync(join(dir, 'report.html'), 'utf8');
    assert.match(html, /<svg/);
    assert.doesNotMatch(html, /https?:\/\//);
  });
});

describe('mixtape train --threads', () => {
  test('1 and 2 threads give the same losses bit for bit, on products large enough to be split', () => {
    // d 256, batch 32 × 16: the LSTM's input projection is 512 × 256 × 1024 ≈ 134M multiply-adds,
    // above the 2^24 from which a product is split over the threads.
    const big = ['--steps', '2', '--eval-every', '2', '--batch', '32', '--seq-len', '16', '--d', '256', '--expert-hidden', '64', '--experts', '4', '--quiet'];
    const losses = (threads: string) => {
      const out = join(tmp, `threads-${threads}`);
      const r = run('train', ...big, '--threads', threads, '--out', out);
      assert.equal(r.code, 0, r.stderr);
      return readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; loss: number }).map((m) => [m.type, m.loss]);
    };
    const one = losses('1');
    assert.equal(one.length, 3); // two steps and one validation
    assert.deepEqual(losses('2'), one);
  });

  test('a bad --threads is one clear error', () => {
    assertCleanError(run('train', ...small, '--threads', '0', '--out', join(tmp, 't0')), /--threads must be an integer from 1 to 64, got '0'/);
    assertCleanError(run('train', ...small, '--threads', 'two', '--out', join(tmp, 't1')), /--threads must be an integer from 1 to 64, got 'two'/);
    assertCleanError(run('train', ...small, '--threads', '2', '--backend', 'gpu', '--out', join(tmp, 't2')), /--threads 2: threads are the CPU backend's; this run uses --backend gpu/);
  });
});
