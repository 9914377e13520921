// Layers on the GPU against the CPU in float64: LSTM and the MoE layer, forward and
// backward, from the same float32 weights. Seeded random numbers are the CPU's.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mt } from '../helpers.js';
import { gatingCase } from '../moe/moe-helpers.js';
import { assertNear, compareLayer, gpuSuite } from './gpu-env.js';

gpuSuite('layers', (mode) => {
  test('LSTM (2 layers, batchFirst) forward and backward equal the CPU', async () => {
    const [B, T, I, H] = [3, 5, 4, 6];
    await compareLayer(mode, 'LSTM', {
      arch: () => new mt.LSTM({ inputSize: I, hiddenSize: H, numLayers: 2, batchFirst: true, generator: new mt.Generator(11) }),
      setup: () => [mt.randn([B, T, I], { generator: new mt.Generator(12) }).requiresGrad_()],
      run: (m, [xs]) => { const r = (m as mt.LSTM).forward(xs!); return [r.output, r.h, r.c]; },
    }, 4 * H * T);
  });

  test('MoE layer (noisy top-k, given noise) forward and backward equal the CPU', async () => {
    const [N, d, E, k] = [24, 6, 5, 2];
    await compareLayer(mode, 'MoE', {
      arch: () => new mt.MoE({ inputSize: d, outputSize: 4, hiddenSize: 7, numExperts: E, k, generator: new mt.Generator(5) }),
      setup: (m) => {
        // Noisy logits planned with a 0.3 margin between experts: float32 never flips a route.
        const c = mt.tidy(() => {
          const g = gatingCase(N, d, E, 7);
          return { x: g.x.float(), wGate: g.wGate.float(), wNoise: g.wNoise.float(), noise: g.noise.float() };
        });
        m.loadStateDict({ 'gate.w_gate': c.wGate, 'gate.w_noise': c.wNoise }, { strict: false });
        mt.dispose([c.wGate, c.wNoise]);
        return [c.x.requiresGrad_(), c.noise];
      },
      run: (m, [xs, noise]) => {
        const r = (m as mt.MoE).forward(xs!, { noise: noise! });
        return [r.output, r.auxLoss, r.stats.gates, r.stats.load];
      },
    }, N * 4);
  });

  test('recurrent MoE (device dispatch, checkpointed every 2 steps) forward and backward equal the CPU', async () => {
    // Eval mode (no noise) with large gate weights: float32 never flips a route on these inputs.
    const [B, T, I, H, E] = [5, 4, 3, 4, 4];
    await compareLayer(mode, 'recurrent MoE', {
      arch: () => new mt.RecurrentMoE({ inputSize: I, hiddenSize: H, numExperts: E, k: 2, batchFirst: true, generator: new mt.Generator(8) }).eval() as mt.Module,
      setup: (m) => {
        const w = mt.tensor(Array.from({ length: (I + H) * E }, (_, i) => 3 * Math.sin(1.7 * i + 0.3)), [I + H, E]);
        m.loadStateDict({ 'cell.gate.w_gate': w }, { strict: false });
        w.dispose();
        return [mt.randn([B, T, I], { generator: new mt.Generator(9) }).requiresGrad_()];
      },
      run: (m, [xs]) => {
        const r = (m as mt.RecurrentMoE).forward(xs!, undefined, { checkpointEvery: 2 });
        return [r.output, r.h, r.c, r.stats.gates];
      },
    }, 4 * H * T);
  });

  test('hierarchical MoE (noisy top-k at both levels, given noise) forward and backward equal the CPU', async () => {
    // The CPU runs float64 with sparse dispatch (its default), the GPU float32 with device dispatch.
    const [N, d, a, b] = [16, 5, 3, 3];
    await compareLayer(mode, 'hierarchical MoE', {
      arch: () => new mt.HierarchicalMoE({ inputSize: d, outputSize: 4, hiddenSize: 6, numGroups: a, expertsPerGroup: b, kPrimary: 2, kSecondary: 2, generator: new mt.Generator(6) }),
      setup: (m) => {
        const h = m as mt.HierarchicalMoE;
        // Every gate's noisy logits planned with a 0.3 margin (noise solved for them): float32 never flips a route.
        const made = mt.tidy(() => {
          const x = gatingCase(N, d, a, 21).x;
          const pin = (gate: mt.NoisyTopKGating, E: number, seed: number) => {
            const c = gatingCase(N, d, E, seed);
            gate.loadStateDict({ w_gate: c.wGate.float(), w_noise: c.wNoise.float() });
            return mt.tensor(c.H, [N, E], { dtype: 'float64' }).sub(x.matmul(c.wGate)).div(x.matmul(c.wNoise).softplus().add(0.01)).float();
          };
          return { x: x.float(), noise: [pin(h.primary, a, 22), ...h.groups.map((g, i) => pin(g.gate, b, 23 + i))] };
        });
        return [made.x.requiresGrad_(), ...made.noise];
      },
      run: (m, [xs, primary, ...secondary]) => {
        const r = (m as mt.HierarchicalMoE).forward(xs!, { noise: { primary: primary!, secondary } });
        return [r.output, r.auxLoss, r.stats.gates, r.stats.importance, r.stats.load, r.stats.secondaryLoad];
      },
    }, N * 4);
  });

  test('MoE with its own noise: seeded randn on the GPU is the CPU\'s, so routing and output match', async () => {
    const run = async () => {
      const gen = new mt.Generator(99);
      const moe = new mt.MoE({ inputSize: 5, outputSize: 3, hiddenSize: 6, numExperts: 4, k: 2, generator: gen });
      const w = mt.tensor(Array.from({ length: 20 }, (_, i) => Math.sin(i) * 2), [5, 4]);
      moe.loadStateDict({ 'gate.w_gate': w }, { strict: false });
      const x = mt.randn([16, 5], { generator: gen });
      const { output, stats } = moe.forward(x);
      const out = { y: Array.from(await output.data()), idx: Array.from(await stats.indices.data()) };
      mt.dispose([moe.parameters(), w, x, output, stats]);
      return out;
    };
    mt.setBackend('cpu');
    const cpu = await run();
    mt.setBackend('gpu', { mode });
    const gpu = await run();
    assert.deepEqual(gpu.idx, cpu.idx);
    assertNear(gpu.y, cpu.y, 16, 'MoE output with generated noise');
  });

  test('seeded rand/randn/dropout on the GPU are exactly the CPU\'s (float32)', async () => {
    const draw = async () => {
      mt.manualSeed(1234);
      const u = mt.rand([3, 7]), z = mt.randn([33]);
      const d = mt.dropout(mt.ones([40]), 0.5);
      const out = [Array.from(await u.data()), Array.from(await z.data()), Array.from(await d.data())];
      mt.dispose([u, z, d]);
      return out;
    };
    mt.setBackend('cpu');
    const cpu = await draw();
    mt.setBackend('gpu', { mode });
    const gpu = await draw();
    assert.deepEqual(gpu, cpu);
  });
});
