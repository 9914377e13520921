// The routers after 2017 (capacity and dropping, Switch, router z-loss, ...) give the values
// and gradients of an independent PyTorch float64 reference, written from each paper's
// equations, to within 1e-9 relative. The reference runs every expert on every row times its
// kept gate, so it also checks sparse dispatch under token dropping. Fixtures:
// test/fixtures/moe/torch_routers.json, made by scripts/fixtures/make_router_fixtures.py.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { assertClose, mt } from '../helpers.js';

interface Flat { shape: number[]; values: number[] }
interface RouterCase {
  router: mt.GatingKind; N: number; d: number; h: number; out: number; E: number; k: number;
  capacity_factor: number | null; capacity: number | null; w_z_loss: number; aux_loss_weight: number;
  w_importance: number; w_load: number;
  state: Record<string, Flat>; x: Flat; noise: Flat; jitter: Flat | null; random_routing: boolean; uniform: Flat | null; token_ids: number[] | null; r: Flat;
  output: Flat; aux_loss: number; loss: number;
  stats: {
    gates: Flat; indices: Flat; importance: Flat; load: Flat; expert_counts: number[];
    cv_importance: number; cv_load: number; gate_entropy: number; router_z_loss: number | null;
    dropped_fraction: number; dropped_per_expert: number[];
  };
  grads: Record<string, number[]>; x_grad: Flat;
  score_function: 'sigmoid' | 'softmax'; shared: number; bias_update_rate: number; bias_after: number[] | null; seq_aux_loss_weight?: number;
}
const fixture = JSON.parse(readFileSync('test/fixtures/moe/torch_routers.json', 'utf8')) as { torch_version: string; cases: Record<string, RouterCase> };

const tol = { rtol: 1e-9, atol: 1e-12 };
const t64 = (f: Flat, requiresGrad = false) => mt.tensor(f.values, f.shape, { dtype: 'float64', requiresGrad });
const expect = (t: mt.Tensor, f: Flat, what: string) => {
  assert.deepEqual([...t.shape], f.shape, `${what}: shape [${t.shape}] vs PyTorch [${f.shape}]`);
  assertClose(t.dataSync(), f.values, { ...tol, what });
};
const scalar = (got: number, want: number, what: string) => assertClose([got], [want], { ...tol, what });

function makeMoE(c: RouterCase): mt.MoE {
  const moe = new mt.MoE({
    inputSize: c.d, outputSize: c.out, hiddenSize: c.h, numExperts: c.E, k: c.k, gating: c.router, dtype: 'float64',
    wImportance: c.w_importance, wLoad: c.w_load, wZLoss: c.w_z_loss,
    ...(c.router === 'switch' || c.router === 'gshard' ? { auxLossWeight: c.aux_loss_weight } : {}),
    ...(c.capacity_factor !== null ? { capacityFactor: c.capacity_factor } : {}),
    ...(c.router === 'gshard' ? { randomRouting: c.random_routing } : {}),
    ...(c.router === 'deepseek' ? { sharedExperts: c.shared, scoreFunction: c.score_function, biasUpdateRate: c.bias_update_rate, seqAuxLossWeight: c.seq_aux_loss_weight ?? 0 } : {}),
  });
  moe.loadStateDict(Object.fromEntries(Object.entries(c.state).map(([k, v]) => [k, t64(v)])));
  return moe.train();
}

describe(`router equality with PyTorch ${fixture.torch_version} (float64)`, () => {
  const titles: [string, string][] = [
    ['noisy_topk_capacity', 'noisy top-k, k = 2 of 4, capacityFactor 0.75: routes dropped'],
    ['noisy_topk_capacity_none_dropped', 'noisy top-k, capacityFactor 4: nothing dropped'],
    ['noisy_topk_z_loss', 'noisy top-k with router z-loss 1e-3'],
    ['switch', 'Switch top-1, α = 0.01'],
    ['switch_z_jitter', 'Switch with router z-loss 1e-3 and given input jitter'],
    ['switch_capacity', 'Switch, capacityFactor 1, α = 0.05: routes dropped'],
    ['gshard_random_routing', 'GShard top-2 with random routing (u given): second experts skipped'],
    ['gshard_no_random_routing', 'GShard top-2 without random routing, router z-loss 1e-3'],
    ['expert_choice', 'Expert Choice over [4, 2, d]: each expert takes 2 tokens per time step'],
    ['expert_choice_z', 'Expert Choice over [6, 3, d], E = 3, capacity factor 1, router z-loss'],
    ['deepseek_sigmoid', 'DeepSeek: 8 experts, k = 3 by sigmoid + bias, 1 shared expert, γ = 0.01'],
    ['deepseek_softmax', 'DeepSeek: softmax affinities, 2 shared experts, router z-loss'],
    ['deepseek_capacity', 'DeepSeek with capacityFactor 0.75: routes dropped'],
    ['deepseek_seq_aux', 'DeepSeek-V3 sequence-wise balance loss (α = 0.1) over [3, 4, d]: three sequences of 4'],
    ['deepseek_seq_aux_softmax_capacity', 'DeepSeek sequence-wise loss (α = 0.3) on an [8, d] input (one sequence), softmax, router z-loss, routes dropped'],
    ['hash', 'hash routing of the token ids (no router, no auxiliary loss)'],
    ['hash_capacity', 'hash routing with capacityFactor 0.5: routes dropped'],
    ['gshard_capacity', 'GShard with random routing and capacityFactor 0.5, α = 0.1: routes skipped and dropped'],
  ];
  for (const [name, title] of titles) {
    test(`${title}: output, auxLoss, stats and every gradient`, () => {
      const c = fixture.cases[name]!;
      const moe = makeMoE(c);
      const x = t64(c.x, true);
      const { output, auxLoss, stats } = moe.forward(x, {
        ...(c.router === 'noisy-topk' ? { noise: t64(c.noise) } : {}), ...(c.jitter ? { jitter: t64(c.jitter) } : {}),
        ...(c.uniform ? { uniform: t64(c.uniform) } : {}),
        ...(c.token_ids ? { tokenIds: mt.tensor(c.token_ids, [c.N], { dtype: 'int32' }) } : {}),
      });
      expect(output, c.output, 'output');
      scalar(auxLoss.item(), c.aux_loss, 'auxLoss');
      expect(stats.gates, c.stats.gates, 'stats.gates (after dropping)');
      assert.deepEqual(Array.from(stats.indices.dataSync()), c.stats.indices.values, 'stats.indices');
      expect(stats.importance, c.stats.importance, 'stats.importance');
      expect(stats.load, c.stats.load, 'stats.load');
      assert.deepEqual(stats.expertCounts, c.stats.expert_counts, 'stats.expertCounts');
      if (c.capacity !== null) assert.ok(stats.expertCounts.every((n) => n <= c.capacity!), `counts ${stats.expertCounts} within capacity ${c.capacity}`);
      scalar(stats.cvImportance.item(), c.stats.cv_importance, 'stats.cvImportance');
      scalar(stats.cvLoad.item(), c.stats.cv_load, 'stats.cvLoad');
      scalar(stats.gateEntropy.item(), c.stats.gate_entropy, 'stats.gateEntropy');
      if (c.stats.router_z_loss === null) assert.equal(stats.routerZLoss, undefined, 'no router logits, no z-loss');
      else scalar(stats.routerZLoss!.item(), c.stats.router_z_loss, 'stats.routerZLoss');
      assert.equal(stats.droppedFraction, c.stats.dropped_fraction, 'stats.droppedFraction');
      assert.deepEqual(stats.droppedPerExpert, c.stats.dropped_per_expert, 'stats.droppedPerExpert');
      if (c.bias_after) {
        expect(stats.biases!, c.state['gate.e_score_correction_bias']!, 'stats.biases (the bias this forward selected with)');
        assertClose((moe.gate as mt.DeepSeekGating).e_score_correction_bias.dataSync(), c.bias_after, { ...tol, what: 'bias after the ±γ update' });
      }
      const loss = output.mul(t64(c.r)).sum().add(auxLoss);
      scalar(loss.item(), c.loss, 'loss');
      loss.backward();
      expect(x.grad!, c.x_grad, 'x.grad');
      assert.deepEqual(moe.namedParameters().map(([n]) => n).sort(), Object.keys(c.grads).sort(), 'parameter names');
      for (const [n, p] of moe.namedParameters()) assertClose(p.grad?.dataSync() ?? new Float64Array(p.size), c.grads[n]!, { ...tol, what: `grad of ${n}` });
    });
  }

  test('the dropping cases really drop, and the generous one does not', () => {
    assert.ok(fixture.cases.noisy_topk_capacity!.stats.dropped_fraction > 0);
    assert.ok(fixture.cases.switch_capacity!.stats.dropped_fraction > 0);
    assert.ok(fixture.cases.gshard_capacity!.stats.dropped_fraction > 0);
    assert.ok(fixture.cases.hash_capacity!.stats.dropped_fraction > 0);
    for (const name of ['gshard_random_routing', 'gshard_capacity']) {
      const c = fixture.cases[name]!;
      assert.ok(c.stats.gates.values.filter((v) => v > 0).length < 2 * c.N, `${name}: some second experts are skipped`);
    }
    assert.equal(fixture.cases.noisy_topk_capacity_none_dropped!.stats.dropped_fraction, 0);
    assert.ok(fixture.cases.deepseek_seq_aux_softmax_capacity!.stats.dropped_fraction > 0);
    for (const name of ['deepseek_seq_aux', 'deepseek_seq_aux_softmax_capacity']) assert.ok(fixture.cases[name]!.aux_loss > 0, `${name}: the sequence-wise loss is in auxLoss`);
  });
});
