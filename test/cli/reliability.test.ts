// The `mixtape` binary (node bin/mixtape.js over the bundle that scripts/build.mjs makes),
// used as a hostile or careless user would: two processes on one run directory, hostile
// checkpoint metadata, killed saves, flags a resume cannot honour, configurations that do
// not fit in memory, a text too short, an output directory that cannot exist, Ctrl-C
// during compare. Every failure must be one line, a non-zero exit code, and no file changed.

import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { build } from 'esbuild';
import fc from 'fast-check';
import { mt } from '../helpers.js';
import { checkCheckpoint } from '../../src/cli/checkpoint-metadata.js';
import { UsageError } from '../../src/cli/errors.js';

const bin = join(process.cwd(), 'bin/mixtape.js');
const tmp = mkdtempSync(join(tmpdir(), 'mixtape-reliability-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

// The binary runs dist/cli.js: bundle the current sources first (as scripts/build.mjs does),
// written to a temporary name and renamed, so that a concurrent reader never sees half a file.
before(async () => {
  const result = await build({
    bundle: true, format: 'esm', platform: 'node', target: 'node20', packages: 'external', logLevel: 'warning',
    entryPoints: ['src/cli/entry.ts'], outfile: 'dist/cli.js', write: false,
  });
  mkdirSync('dist', { recursive: true });
  const temp = `dist/.cli.js.${process.pid}.tmp`;
  writeFileSync(temp, result.outputFiles[0]!.contents);
  renameSync(temp, 'dist/cli.js');
});

interface Result { code: number; stdout: string; stderr: string; ms: number }

function run(args: string[], timeout = 120_000): Result {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', cwd: tmp, timeout });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, ms: Date.now() - t0 };
}

/** One line on stderr starting with "mixtape:", the exit code, no stack trace. */
function assertCleanError(r: Result, pattern: RegExp, code = 2): void {
  assert.equal(r.code, code, `exit code (stderr: ${r.stderr})`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `expected one line on stderr, got:\n${r.stderr}`);
  assert.match(lines[0]!, /^mixtape: /);
  assert.match(lines[0]!, pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at |TypeError|ReferenceError/);
}

/** The bytes of every file in a directory (hashed), to check that a refused command changed nothing. */
function snapshot(dir: string): Record<string, string> {
  return Object.fromEntries(readdirSync(dir).sort().map((f) => [f, createHash('sha256').update(readFileSync(join(dir, f))).digest('hex')]));
}

const small = ['--eval-every', '2', '--batch', '4', '--seq-len', '8', '--d', '8', '--expert-hidden', '8', '--experts', '4', '--domains', '4', '--quiet'];

/** A finished 4-step run (checkpoint at step 4), copied fresh for each use. */
let baseRun = '';
function freshRun(name: string): string {
  if (!baseRun) {
    baseRun = join(tmp, 'base');
    const r = run(['train', ...small, '--steps', '4', '--out', baseRun]);
    assert.equal(r.code, 0, r.stderr);
  }
  const dir = join(tmp, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir);
  for (const f of readdirSync(baseRun)) writeFileSync(join(dir, f), readFileSync(join(baseRun, f)));
  return dir;
}

/** Rewrites one metadata field of a run's checkpoint (undefined deletes it). */
function setMetadata(dir: string, field: string, value: string | undefined): void {
  const path = join(dir, 'checkpoint.safetensors');
  const { tensors, metadata } = mt.loadSafetensors(path);
  if (value === undefined) delete metadata[field];
  else metadata[field] = value;
  mt.saveSafetensors(path, tensors, metadata);
  mt.dispose(tensors);
}

/** The pid of a process that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

function waitFor(what: string, ok: () => boolean, ms = 90_000): Promise<void> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const poll = () => {
      if (ok()) resolve();
      else if (Date.now() - t0 > ms) reject(new Error(`timed out waiting for ${what}`));
      else setTimeout(poll, 50);
    };
    poll();
  });
}

function exited(child: ChildProcess): Promise<{ code: number | null; stderr: string }> {
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => { stderr += c.toString(); });
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stderr })));
}

const metricsLines = (dir: string) => readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { type: string; step: number });

describe('mixtape binary: run directories are never corrupted', () => {
  test('two processes on one --out: the second is refused naming the first; a stale lock of a dead process is reported and taken over', async () => {
    const dir = join(tmp, 'locked');
    const first = spawn(process.execPath, [bin, 'train', ...small, '--steps', '100000', '--eval-every', '100000', '--out', dir, '--progress-json'], { cwd: tmp });
    const done = exited(first);
    let progressed = false;
    first.stdout!.on('data', (c: Buffer) => { if (/"type":"progress"/.test(c.toString())) progressed = true; });
    try {
      await waitFor('the first run to train', () => progressed);
      const busy = new RegExp(`${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is in use by mixtape train \\(process ${first.pid}, since .*\\); wait for it to finish or choose another --out`);
      const before = snapshot(dir);
      assertCleanError(run(['train', ...small, '--steps', '4', '--experts', '8', '--out', dir]), busy);
      assertCleanError(run(['train', '--out', dir, '--resume', '--quiet']), busy);
      assertCleanError(run(['report', dir]), /is in use by mixtape train/);
      assert.deepEqual(Object.keys(snapshot(dir)), Object.keys(before), 'the refused commands wrote nothing');
    } finally {
      first.kill('SIGINT');
    }
    const { code, stderr } = await done;
    assert.equal(code, 130, stderr);
    // Every step once, in order: nobody else wrote into the directory.
    const steps = metricsLines(dir).filter((r) => r.type === 'train').map((r) => r.step);
    assert.deepEqual(steps, steps.map((_, i) => i + 1));
    assert.equal(existsSync(join(dir, '.mixtape-lock')), false, 'the lock is removed when the run stops');

    // A lock left by a process killed with kill -9: reported in one line, taken over, and the run resumes.
    const pid = deadPid();
    writeFileSync(join(dir, '.mixtape-lock'), JSON.stringify({ pid, host: (await import('node:os')).hostname(), command: 'train', since: '2026-01-01T00:00:00.000Z' }));
    const resumed = run(['train', '--out', dir, '--resume', '--steps', String(steps.length + 2), '--quiet']);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stderr, new RegExp(`^mixtape: .* was locked by mixtape train \\(process ${pid}, since 2026-01-01T00:00:00.000Z\\), which is no longer running: lock taken over\\n`));
    assert.equal(existsSync(join(dir, '.mixtape-lock')), false);
  });

  test('hostile checkpoint metadata: refused in one line by train --resume and inspect, and metrics.jsonl keeps every line', () => {
    const cases: [string, string | undefined, RegExp][] = [
      ['step', 'banana', /step must be a whole number of steps, got "banana"/],
      ['step', '-5', /step must be a whole number of steps, got "-5"/],
      ['step', '7', /step 7 is beyond the run's 4 steps/],
      ['mixtape_config', 'null', /mixtape_config\.? ?must be an object, got null/],
      ['rng', '{"key":[1],"counter":0}', /rng must be \{"key": \[two 32-bit unsigned integers\]/],
      ['optimizer', '{"step":3,"lr":0.01}', /optimizer\.step is 3 but the checkpoint's step is 4/],
    ];
    const config = JSON.parse(mt.loadSafetensors(join(freshRun('meta'), 'checkpoint.safetensors')).metadata.mixtape_config!) as Record<string, unknown>;
    for (const [key, value, pattern] of [['floors', {}, /mixtape_config\.floors\.knownDomain must be a non-negative number, got nothing/], ['opsPerToken', null, /mixtape_config\.opsPerToken must be an object, got null/], ['experts', 8, /does not fit this model configuration|experts/]] as const) {
      cases.push(['mixtape_config', JSON.stringify({ ...config, [key]: value }), pattern]);
    }
    for (const [field, value, pattern] of cases) {
      const dir = freshRun('meta');
      setMetadata(dir, field, value);
      const before = snapshot(dir);
      assert.equal(metricsLines(dir).length, 6);
      assertCleanError(run(['train', '--out', dir, '--resume', '--quiet']), pattern);
      assert.deepEqual(snapshot(dir), before, `${field} = ${value}: files changed`);
      assertCleanError(run(['inspect', join(dir, 'checkpoint.safetensors')]), pattern);
    }
  });

  test('fuzz (in process): random types and values in every metadata field are refused with a UsageError or accepted as valid, never a TypeError', () => {
    const path = join(freshRun('fuzz-in-process'), 'checkpoint.safetensors');
    const { tensors, metadata } = mt.loadSafetensors(path);
    const config = JSON.parse(metadata.mixtape_config!) as Record<string, unknown>;
    const anyValue = fc.oneof(
      fc.constantFrom(null, true, false, 0, -1, 1, 4, 1e300, -0.5, 0.5, 1e-9, '', 'banana', '4', '-5', 'NaN', [], {}, [1, 2], { a: 1 }),
      fc.integer(), fc.double(), fc.string(), fc.jsonValue(),
    );
    const mutation = fc.oneof(
      fc.record({ where: fc.constant('config' as const), key: fc.constantFrom(...Object.keys(config), 'floors', 'groups', 'gpuMode'), value: anyValue }),
      fc.record({ where: fc.constant('metadata' as const), key: fc.constantFrom('format', 'mixtape_config', 'step', 'rng', 'optimizer'), value: fc.oneof(fc.string(), anyValue.map((v) => JSON.stringify(v) ?? 'undefined')) }),
    );
    fc.assert(fc.property(mutation, (m) => {
      const meta = { ...metadata };
      if (m.where === 'config') meta.mixtape_config = JSON.stringify({ ...config, [m.key]: m.value });
      else meta[m.key] = String(m.value);
      try {
        const state = checkCheckpoint(path, meta, tensors);
        // Accepted: then every field has its type and the step fits.
        assert.ok(Number.isSafeInteger(state.step) && state.step >= 0 && state.step <= state.config.steps);
        assert.equal(typeof state.config.experts, 'number');
      } catch (e) {
        assert.ok(e instanceof UsageError, `${JSON.stringify(m)}: ${(e as Error).stack}`);
        assert.doesNotMatch((e as Error).message, /\n/);
        assert.match((e as Error).message, /checkpoint\.safetensors: /);
      }
    }), { numRuns: 400, seed: 15 });
    mt.dispose(tensors);
  });

  test('fuzz (binary): a mutated metadata field never gives exit 0 with corrupted files, nor a stack trace', () => {
    const config = JSON.parse(mt.loadSafetensors(join(freshRun('fuzz'), 'checkpoint.safetensors')).metadata.mixtape_config!) as Record<string, unknown>;
    const value = fc.oneof(fc.constantFrom(null, true, 0, -1, 3, 4, 1e9, 0.5, '', 'banana', '4', [], {}), fc.integer({ min: -10, max: 10 }), fc.string({ maxLength: 4 }));
    const mutation = fc.oneof(
      fc.record({ where: fc.constant('config' as const), key: fc.constantFrom(...Object.keys(config)), value }),
      fc.record({ where: fc.constant('metadata' as const), key: fc.constantFrom('step', 'rng', 'optimizer', 'format'), value: value.map((v) => (typeof v === 'string' ? v : JSON.stringify(v))) }),
    );
    fc.assert(fc.property(mutation, fc.boolean(), (m, inspect) => {
      const dir = freshRun('fuzz');
      if (m.where === 'config') setMetadata(dir, 'mixtape_config', JSON.stringify({ ...config, [m.key]: m.value }));
      else setMetadata(dir, m.key, String(m.value));
      const before = snapshot(dir);
      const r = inspect ? run(['inspect', join(dir, 'checkpoint.safetensors'), '--batch', '2']) : run(['train', '--out', dir, '--resume', '--quiet']);
      assert.doesNotMatch(r.stderr, /\n\s+at |TypeError|ReferenceError/, `${JSON.stringify(m)}: ${r.stderr}`);
      if (r.code !== 0) {
        assert.equal(r.stderr.trim().split('\n').length, 1, `${JSON.stringify(m)}: ${r.stderr}`);
        assert.deepEqual(snapshot(dir), before, `${JSON.stringify(m)}: refused, yet files changed`);
      } else if (!inspect) {
        // Accepted (a harmless change such as the label): the run is whole, every step once.
        const steps = metricsLines(dir).filter((x) => x.type === 'train').map((x) => x.step);
        assert.deepEqual(steps, [1, 2, 3, 4], `${JSON.stringify(m)}: exit 0 with metrics ${steps.join(',')}`);
      }
    }), { numRuns: 14, seed: 15 });
  });

  test('inspect never opens the data path a checkpoint names; --text FILE routes a batch of the text', () => {
    const text = join(tmp, 'trained-on.txt');
    writeFileSync(text, 'the quick brown fox jumps over the lazy dog. '.repeat(20));
    const dir = join(tmp, 'text-run');
    assert.equal(run(['train', ...small, '--steps', '2', '--text', text, '--out', dir]).code, 0);
    // The path in the checkpoint now names nothing; inspect must not go looking for it.
    unlinkSync(text);
    const r = run(['inspect', join(dir, 'checkpoint.safetensors')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /routing: not shown; the model was trained on the text file .*trained-on\.txt: pass --text FILE/);
    writeFileSync(text, 'the quick brown fox jumps over the lazy dog. '.repeat(20));
    const routed = run(['inspect', join(dir, 'checkpoint.safetensors'), '--text', text]);
    assert.equal(routed.code, 0, routed.stderr);
    assert.match(routed.stdout, /CV\(load\)/);
    writeFileSync(join(tmp, 'other.txt'), 'zzzz yyyy '.repeat(40));
    assertCleanError(run(['inspect', join(dir, 'checkpoint.safetensors'), '--text', 'other.txt']), /--text other\.txt: its vocabulary has \d+ tokens but the model was trained on \d+/);
  });

  test('the temporaries of saves killed before their rename are removed on the next resume; a live process\'s are kept', () => {
    const dir = freshRun('temporaries');
    const stale = `.checkpoint.safetensors.${deadPid()}.0123456789ab.tmp`, live = `.checkpoint.safetensors.${process.pid}.ba9876543210.tmp`;
    writeFileSync(join(dir, stale), 'half a checkpoint');
    writeFileSync(join(dir, live), 'being written');
    const r = run(['train', '--out', dir, '--resume', '--steps', '6', '--quiet']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(existsSync(join(dir, stale)), false, 'the dead process\'s temporary is removed');
    assert.equal(existsSync(join(dir, live)), true);
  });
});

describe('mixtape binary: flags and limits', () => {
  test('--resume refuses a flag that differs from the checkpoint and says in one line which changeable ones changed', () => {
    const dir = freshRun('flags');
    const before = snapshot(dir);
    assertCleanError(run(['train', '--out', dir, '--resume', '--dropout', '0.5', '--eval-every', '7']), /trained with dropout = 0, but the flags say 0\.5 \(a resume may change only --steps, --eval-every, --label, --backend and --gpu-mode\)/);
    assertCleanError(run(['train', '--out', dir, '--resume', '--domains', '8']), /trained with domains = 4, but the flags say 8/);
    assertCleanError(run(['train', '--out', dir, '--resume', '--steps', '3']), /--steps 3 is below the checkpoint's step 4/);
    assert.deepEqual(snapshot(dir), before);
    const r = run(['train', '--out', dir, '--resume', '--eval-every', '7', '--steps', '7', '--quiet']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^mixtape: resuming .*flags at step 4 with --steps 7 \(was 4\), --eval-every 7 \(was 2\)\n$/);
    assert.equal((JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { evalEvery: number }).evalEvery, 7);
    assert.deepEqual(metricsLines(dir).filter((x) => x.type === 'val').map((x) => x.step), [2, 4, 7]);
  });

  test('a configuration that cannot fit in memory is refused at once with the figure and the flag', () => {
    for (const [flag, value] of [['experts', '10000000'], ['batch', '100000000'], ['d', '200000']] as const) {
      const r = run(['train', `--${flag}`, value, '--out', join(tmp, `huge-${flag}`)], 30_000);
      assertCleanError(r, new RegExp(`^mixtape: --${flag} ${value} needs about [\\d.]+ [TPE]iB of memory \\(.*\\), more than the [\\d.]+ [GTM]iB this machine has; use a smaller --${flag}$`));
      assert.ok(r.ms < 20_000, `--${flag} took ${r.ms} ms to refuse`);
      assert.equal(existsSync(join(tmp, `huge-${flag}`)), false);
    }
  });

  test('--text too short for one validation sequence fails before step 1, writing nothing', () => {
    writeFileSync(join(tmp, 'hundred.txt'), 'abcdefghij'.repeat(10));
    const r = run(['train', '--text', 'hundred.txt', '--steps', '50', '--out', join(tmp, 'short-text')]);
    assertCleanError(r, /--text hundred\.txt: the validation text \(10 tokens\) is shorter than one sequence \(17\); use a shorter --seq-len/);
    assert.equal(existsSync(join(tmp, 'short-text')), false);
  });

  test('--out that cannot be created or written fails at once (never hangs)', { skip: existsSync('/proc/self') ? false : 'no /proc here' }, () => {
    const r = run(['train', ...small, '--steps', '2', '--out', '/proc/mixtape-run'], 30_000);
    assertCleanError(r, /^mixtape: --out \/proc\/mixtape-run: cannot create the directory \/proc\/mixtape-run/);
    writeFileSync(join(tmp, 'a-file'), '');
    assertCleanError(run(['train', ...small, '--steps', '2', '--out', join(tmp, 'a-file', 'run')]), /a-file\/run \(a part of the path is not a directory\)/);
  });
});

describe('mixtape binary: Ctrl-C during compare', () => {
  test('stops every run, each saving its checkpoint; compare --resume continues every run to its end', async () => {
    const dir = join(tmp, 'cmp');
    const steps = 600;
    const child = spawn(process.execPath, [bin, 'compare', ...small, '--steps', String(steps), '--eval-every', '500', '--parallel', '2', '--out', dir, '--quiet'], { cwd: tmp });
    const done = exited(child);
    const trained = (d: string) => existsSync(join(dir, d, 'metrics.jsonl')) && metricsLines(join(dir, d)).length >= 3;
    await waitFor('both first runs to train', () => trained('moe-4') && trained('dense'));
    const started = Date.now();
    child.kill('SIGINT');
    const { code, stderr } = await done;
    assert.equal(code, 130, stderr);
    assert.ok(Date.now() - started < 30_000, 'compare stopped promptly');
    assert.match(stderr.trim().split('\n').pop()!, /^mixtape: interrupted; the runs saved their checkpoints in .*cmp \(continue with: mixtape compare --out .*cmp --resume\)$/);
    for (const d of ['moe-4', 'dense']) {
      const step = Number(mt.loadSafetensors(join(dir, d, 'checkpoint.safetensors')).metadata.step);
      assert.ok(step > 0 && step < steps, `${d} saved at step ${step}`);
    }
    assert.equal(existsSync(join(dir, 'moe-4-no-balancing', 'checkpoint.safetensors')), false, 'the third run never started');
    assertCleanError(run(['compare', ...small, '--out', dir]), /already holds a compare; pass --resume/);
    assertCleanError(run(['compare', '--out', dir, '--resume', '--experts', '8']), /started with --experts 4, but the flags say --experts 8/);

    const resumed = run(['compare', '--out', dir, '--resume', '--quiet'], 600_000);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stdout, /report: .*cmp\/report\.html/);
    for (const d of ['moe-4', 'dense', 'moe-4-no-balancing']) {
      const trainSteps = metricsLines(join(dir, d)).filter((x) => x.type === 'train').map((x) => x.step);
      assert.deepEqual(trainSteps, Array.from({ length: steps }, (_, i) => i + 1), `${d}: every step once`);
    }
  });
});
