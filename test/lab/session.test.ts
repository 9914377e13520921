// The lab's session on the CPU backend in Node: settings checks in the page's words, steps
// that train (loss falls toward the synthetic corpus's floors), routing of a typed
// sequence, frozen and zeroed experts, and a checkpoint that `mixtape inspect` reads.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as mt from '../../src/index.js';
import { inspect } from '../../src/cli/inspect.js';
import { checkSettings, DEFAULT_SETTINGS, LabSession, sessionFromCheckpoint, settingsOfRun, startBackend, textFromBytes, webgpuProblem } from '../../src/lab/session.js';
import type { RunConfig } from '../../src/report/schema.js';

test('impossible settings get a message naming them', () => {
  assert.match(checkSettings({ ...DEFAULT_SETTINGS, experts: 4, k: 5 })!, /k \(5\) is larger than experts \(4\)/);
  assert.match(checkSettings({ ...DEFAULT_SETTINGS, model: 'hmoe', experts: 6, groups: 4 })!, /divisible by groups/);
  assert.match(checkSettings({ ...DEFAULT_SETTINGS, lr: -1 })!, /learning rate/);
  assert.equal(checkSettings(DEFAULT_SETTINGS), null);
  assert.throws(() => new LabSession({ ...DEFAULT_SETTINGS, k: 9 }), /k \(9\) is larger than experts \(8\)/);
  assert.deepEqual([...mt.GATING_KINDS].slice(0, 3), ['noisy-topk', 'softmax', 'batchwise']);
});

test('binary and non-UTF-8 text is refused with its name', () => {
  assert.throws(() => textFromBytes(new Uint8Array([0x61, 0, 0x62]), 'a.bin'), /a\.bin: looks like a binary file/);
  assert.throws(() => textFromBytes(new Uint8Array([0x61, 0xff, 0xfe]), 'latin.txt'), /latin\.txt: is not valid UTF-8/);
  assert.equal(textFromBytes(new TextEncoder().encode('héllo'), 'ok.txt'), 'héllo');
});

test('steps train, routing shows k experts per token, frozen experts stay put, the checkpoint opens', async () => {
  await startBackend('cpu');
  const s = new LabSession({ ...DEFAULT_SETTINGS, experts: 4, k: 2 });
  const first = await s.trainStep();
  for (let i = 0; i < 24; i++) await s.trainStep();
  const last = s.history.at(-1)!;
  assert.equal(s.step, 25);
  assert.ok(last.loss < first.loss, `loss ${first.loss} → ${last.loss}`);
  assert.ok(last.loss > s.corpus.floors!.knownDomain, 'no loss below the known-domain floor');
  assert.equal(last.importance!.length, 4);
  assert.ok(s.domainExpert!.flat().reduce((a, b) => a + b, 0) === 25 * 8 * 16 * 2, 'every routed token counted k times');

  const routed = await s.route(s.sampleSequence());
  assert.equal(routed.length, 16);
  for (const r of routed) {
    assert.equal(r.experts.length, 2);
    assert.ok(r.gates[0]! >= r.gates[1]! && Math.abs(r.gates[0]! + r.gates[1]! - 1) < 1e-5, `gates ${r.gates}`);
    assert.equal(r.noise!.length, 2);
  }
  assert.throws(() => s.encode('a?'), /'\?' is not in this corpus's vocabulary/);

  s.setFrozen(1, true);
  const before = await Promise.all(s.expertParameters(1).map(async (p) => Array.from(await p.data())));
  const other = Array.from(await s.expertParameters(0)[0]!.data());
  await s.trainStep();
  const after = await Promise.all(s.expertParameters(1).map(async (p) => Array.from(await p.data())));
  assert.deepEqual(after, before, 'a frozen expert keeps its weights');
  assert.notDeepEqual(Array.from(await s.expertParameters(0)[0]!.data()), other, 'the others train');
  s.zeroExpert(2);
  for (const p of s.expertParameters(2)) assert.ok(Array.from(await p.data()).every((v) => v === 0));

  const bytes = await s.checkpoint();
  const opened = sessionFromCheckpoint(bytes, 'lab.safetensors');
  assert.equal(opened.step, 26);
  assert.deepEqual(Array.from(await opened.session.expertParameters(2)[0]!.data()).every((v) => v === 0), true);
  assert.throws(() => sessionFromCheckpoint(mt.serializeSafetensors({ w: mt.tensor([1]) }), 'plain.safetensors'), /not a mixtape checkpoint/);

  const dir = mkdtempSync(join(tmpdir(), 'mixtape-lab-ckpt-'));
  const lines: string[] = [];
  const log = console.log;
  console.log = (...a: unknown[]) => { lines.push(a.join(' ')); };
  try {
    writeFileSync(join(dir, 'checkpoint.safetensors'), bytes);
    await inspect(join(dir, 'checkpoint.safetensors'), 4);
  } finally {
    console.log = log;
    rmSync(dir, { recursive: true, force: true });
  }
  assert.ok(lines.some((l) => /step 26/.test(l)) && lines.some((l) => /CV\(importance\)/.test(l)), lines.join('\n'));
  assert.ok(s.metricsJsonl().split('\n').filter(Boolean).every((l) => JSON.parse(l).type === 'train'));
  s.dispose(); opened.session.dispose();
});

test('a pasted text trains at character level; its characters route', async () => {
  await startBackend('cpu');
  const text = 'the quick brown fox jumps over the lazy dog. '.repeat(20);
  const s = new LabSession({ ...DEFAULT_SETTINGS, experts: 4, k: 1, d: 8, expertHidden: 8, data: { kind: 'text', name: 'pasted text', text } });
  assert.equal(s.corpus.vocabSize, new Set(text).size);
  assert.equal(s.corpus.floors, undefined);
  assert.equal(s.domainExpert, null);
  const r = await s.trainStep();
  assert.ok(Number.isFinite(r.loss) && r.importance!.length === 4);
  const routed = await s.route('lazy dog');
  assert.deepEqual(routed.map((t) => t.token).join(''), 'lazy dog');
  assert.ok(routed.every((t) => t.experts.length === 1 && Math.abs(t.gates[0]! - 1) < 1e-6));
  assert.throws(() => s.encode('Z'), /'Z' is not in this corpus's vocabulary/);
  assert.throws(() => settingsOfRunText(), /trained on the text file/);
  s.dispose();
});

function settingsOfRunText(): void {
  settingsOfRun({ data: 'notes.txt' } as RunConfig);
}

test('router settings: k fixed by the gating, capacity and z-loss where they apply, one message each', () => {
  const s = { ...DEFAULT_SETTINGS, experts: 4 };
  assert.match(checkSettings({ ...s, gating: 'switch', k: 2 })!, /gating switch routes each token to 1 expert: set k = 1 \(got 2\)/);
  assert.match(checkSettings({ ...s, gating: 'gshard', k: 1 })!, /gating gshard routes each token to its top 2 experts: set k = 2/);
  assert.match(checkSettings({ ...s, gating: 'softmax', capacityFactor: 1 })!, /a capacity factor applies to .* not gating softmax/);
  assert.match(checkSettings({ ...s, capacityFactor: -1 })!, /capacity factor must be a positive number/);
  assert.match(checkSettings({ ...s, gating: 'hash', k: 1, wZLoss: 0.1 })!, /gating hash has no router logits/);
  assert.match(checkSettings({ ...s, sharedExperts: 1 })!, /shared experts need gating deepseek/);
  assert.match(checkSettings({ ...s, gating: 'deepseek', sharedExperts: 4 })!, /shared experts \(4\) must be fewer than experts \(4\)/);
  assert.match(checkSettings({ ...s, model: 'hmoe', groups: 2, gating: 'switch', k: 1 })!, /hierarchical MoE routes with its own noisy top-k gates/);
  assert.equal(checkSettings({ ...s, gating: 'expert-choice', capacityFactor: 1.5, wZLoss: 0.01 }), null);
  // Browser WebGPU has no synchronous readback: routing read on the host inside the forward pass is refused there.
  for (const [gating, k] of [['hash', 1], ['expert-choice', 2]] as const) assert.match(webgpuProblem({ ...s, gating, k })!, new RegExp(`gating '${gating}' .* on the host inside the forward pass, and WebGPU in a browser has no synchronous readback: train these settings on WebGL2 or the CPU`));
  assert.match(webgpuProblem({ ...s, capacityFactor: 1 })!, /capacityFactor drops the routes over capacity on the host/);
  // DeepSeek's bias update runs on the device: it trains on WebGPU.
  for (const gating of ['noisy-topk', 'softmax', 'batchwise', 'switch', 'gshard', 'deepseek'] as const) assert.equal(webgpuProblem({ ...s, gating, k: gating === 'switch' ? 1 : 2 }), null);
  assert.equal(webgpuProblem({ ...s, model: 'dense', gating: 'hash' }), null);
});

const js = (v: unknown) => JSON.stringify(v);

test('every gating kind trains in a session (capacity factor 1 where it applies), its checkpoint reopens, and its float64 gradient checks pass', async () => {
  const { host } = await import('../../src/lab/host.js');
  for (const gating of mt.GATING_KINDS) {
    const capacity = ['softmax', 'batchwise'].includes(gating) ? null : 1;
    const settings = {
      ...DEFAULT_SETTINGS, gating, experts: 4, k: gating === 'switch' || gating === 'hash' ? 1 : 2, d: 8, expertHidden: 8, batch: 4, seqLen: 8,
      capacityFactor: capacity, wZLoss: gating === 'hash' ? 0 : 0.01, sharedExperts: gating === 'deepseek' ? 1 : 0,
    };
    const summary = await host.build(settings, 'cpu');
    assert.equal(summary.settings.gating, gating);
    const [record] = await host.step(1);
    assert.ok(Number.isFinite(record!.loss), `${gating}: loss ${record!.loss}`);
    if (capacity !== null) assert.ok(record!.droppedFraction !== undefined && record!.droppedFraction >= 0 && record!.droppedFraction < 1, `${gating}: dropped ${record!.droppedFraction}`);
    else assert.equal(record!.droppedFraction, undefined);
    // The domain × expert table counts the dispatched routes: as many as the experts processed.
    const table = host.domainExpert()!;
    assert.equal(table.flat().reduce((a, b) => a + b, 0), record!.expertCounts!.reduce((a, b) => a + b, 0), `${gating}: ${js(table)} vs ${js(record!.expertCounts)}`);
    if (capacity !== null && record!.droppedFraction! > 0) assert.ok(record!.expertCounts!.reduce((a, b) => a + b, 0) < settings.batch * settings.seqLen * settings.k, `${gating}: dropped routes are not counted`);
    const reopened = host.openCheckpoint(await host.checkpoint(), `${gating}.safetensors`);
    assert.deepEqual({ ...reopened.settings, data: null }, { ...settings, noise: true, data: null }, `${gating}: the checkpoint keeps the router settings`);
    const { rows, config } = host.gradcheck();
    assert.equal(config.gating, gating);
    assert.ok(rows.length > 0 && rows.some((r) => r.check.startsWith('MoE')), `${gating}: ${rows.map((r) => r.check).join(', ')}`);
    assert.ok(rows.every((r) => r.ok), `${gating}: ${rows.filter((r) => !r.ok).map((r) => `${r.check} ${r.parameter} ${r.maxAbs}`).join('; ')}`);
    assert.ok(rows.some((r) => r.maxAbs > 0), `${gating}: some gradient is nonzero`);
  }
});

test('a backend that cannot start (WebGL2 in Node) is a message; the model stays and trains on its backend', async () => {
  const { host } = await import('../../src/lab/host.js');
  const settings = { ...DEFAULT_SETTINGS, experts: 4, d: 8, expertHidden: 8, batch: 4, seqLen: 8 };
  const built = await host.build(settings, 'cpu');
  await host.step(1);
  await assert.rejects(host.build({ ...settings, experts: 6 }, 'webgl2'), /^Error: webgl2 cannot start: /);
  assert.equal(mt.backendInfo().name, 'cpu');
  const [record] = await host.step(1);
  assert.equal(record!.step, 2);
  assert.equal(record!.importance!.length, built.experts);
});
