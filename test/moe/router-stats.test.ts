// One stats shape for every router (#13): the same fields from every gating kind, so one
// metrics format and one report serve all; routerZLoss wherever there are router logits (not
// hash routing), biases where there is a bias (DeepSeek), batchwiseLoss for batchwise gating.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { mt } from '../helpers.js';

const COMMON = ['cvImportance', 'cvLoad', 'droppedFraction', 'droppedPerExpert', 'expertCounts', 'gateEntropy', 'gates', 'importance', 'indices', 'load'];

describe('MoE stats: the same fields for every router', () => {
  for (const gating of mt.GATING_KINDS) {
    test(`${gating}`, () => {
      const [B, T, d, E] = [3, 4, 3, 4];
      const k = gating === 'switch' || gating === 'hash' ? 1 : 2;
      const moe = new mt.MoE({ inputSize: d, outputSize: 2, hiddenSize: 3, numExperts: E, k, gating, generator: new mt.Generator(3) });
      const x = mt.randn([B, T, d], { generator: new mt.Generator(4) });
      const tokenIds = mt.tensor(Array.from({ length: B * T }, (_, i) => i), [B, T], { dtype: 'int32' });
      const { stats } = moe.forward(x, gating === 'hash' ? { tokenIds } : {});
      const extra = [...(gating === 'hash' ? [] : ['routerZLoss']), ...(gating === 'deepseek' ? ['biases'] : []), ...(gating === 'batchwise' ? ['batchwiseLoss'] : [])];
      const keys = [...new Set([...Object.keys(stats), ...('expertCounts' in stats ? ['expertCounts'] : [])])].sort();
      assert.deepEqual(keys, [...COMMON, ...extra].sort());
      assert.equal(stats.expertCounts.length, E);
      assert.equal(stats.droppedPerExpert!.length, E);
      assert.equal(stats.droppedFraction, 0, 'no capacity factor: nothing dropped');
      for (const name of ['cvImportance', 'cvLoad', 'gateEntropy', ...(gating === 'hash' ? [] : ['routerZLoss'])] as const) {
        const v = stats[name as 'cvLoad']!;
        assert.equal(v.rank, 0, `${name} is a scalar`);
        assert.ok(Number.isFinite(v.item()), `${name} is finite`);
      }
    });
  }
});
