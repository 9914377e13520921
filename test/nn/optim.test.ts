// Optimizer mechanics beyond the PyTorch fixtures: zeroGrad, skipping parameters without
// gradients, state save/restore, clipping, errors.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { assertClose, mt } from '../helpers.js';

describe('optimizers', () => {
  test('SGD minimizes a quadratic; zeroGrad clears gradients; a parameter without a gradient is left alone', () => {
    const x = mt.tensor([3, -2], { dtype: 'float64', requiresGrad: true });
    const frozen = mt.tensor([1], { dtype: 'float64', requiresGrad: true });
    const opt = new mt.SGD([x, frozen], { lr: 0.1 });
    for (let i = 0; i < 100; i++) {
      opt.zeroGrad();
      mt.tidy(() => x.square().sum().backward());
      opt.step();
    }
    assert.ok(Math.hypot(...x.dataSync()) < 1e-8);
    assert.deepEqual(Array.from(frozen.dataSync()), [1]);
    opt.zeroGrad();
    assert.equal(x.grad, null);
  });

  test('Adam state round-trips: a restored optimizer continues with identical numbers', () => {
    const run = (restoreAt: number | null) => {
      const p = mt.tensor([0.5, -1.5, 2], { dtype: 'float64', requiresGrad: true });
      let opt = new mt.Adam([p], { lr: 0.05 });
      for (let i = 0; i < 10; i++) {
        if (i === restoreAt) {
          const saved = opt.stateDict();
          opt = new mt.Adam([p], { lr: 0.05 });
          opt.loadStateDict(saved);
        }
        opt.zeroGrad();
        mt.tidy(() => p.sub(1).pow(4).sum().backward());
        opt.step();
      }
      return Array.from(p.dataSync());
    };
    assert.deepEqual(run(5), run(null));
  });

  test('a training step leaks nothing: parameters, optimizer buffers and gradients only', () => {
    const lin = new mt.Linear(4, 3);
    const opt = new mt.AdamW(lin.parameters(), { lr: 1e-2 });
    const x = mt.randn([8, 4]);
    const stepOnce = () => { opt.zeroGrad(); mt.tidy(() => lin.forward(x).square().mean().backward()); opt.step(); };
    stepOnce();
    const base = mt.memory().liveHandles;
    for (let i = 0; i < 20; i++) stepOnce();
    assert.equal(mt.memory().liveHandles, base);
  });

  test('clipGradNormTensor equals clipGradNorm (float64 and float32, clipped or not) and never reads back', () => {
    for (const dtype of ['float64', 'float32'] as const) {
      for (const maxNorm of [0.5, 3, 1e6]) {
        const gen = new mt.Generator(7);
        const shapes = [[3, 4], [5], [2, 2, 3]];
        const make = () => shapes.map((s) => mt.zeros(s, { dtype, requiresGrad: true }));
        const [a, b] = [make(), make()];
        const frozen = mt.tensor([1, 2], { dtype, requiresGrad: true }); // no gradient: skipped by both
        shapes.forEach((s, i) => {
          const g = mt.randn(s, { generator: gen, dtype: 'float64' }).dataSync(); // joint norm ≈ 5
          a[i]!.grad = mt.keep(mt.tensor(g, s, { dtype }));
          b[i]!.grad = mt.keep(mt.tensor(g, s, { dtype }));
        });
        const expected = mt.clipGradNorm([...a, frozen], maxNorm);
        const before = mt.memory();
        const norm = mt.clipGradNormTensor([...b, frozen], maxNorm);
        const after = mt.memory();
        assert.equal(after.readbacks, before.readbacks, 'clipGradNormTensor read back');
        assert.equal(after.liveHandles, before.liveHandles + 1, 'only the returned norm stays alive');
        assert.deepEqual(norm.shape, []);
        assert.equal(norm.dtype, 'float64', 'the norm is formed in float64 on the CPU');
        assert.equal(norm.item(), expected, `${dtype}, maxNorm ${maxNorm}: the norm`);
        a.forEach((p, i) => {
          assert.equal(b[i]!.grad!.dtype, dtype);
          assert.deepEqual(Array.from(b[i]!.grad!.dataSync()), Array.from(p.grad!.dataSync()), `${dtype}, maxNorm ${maxNorm}: gradient ${i}`);
        });
        assert.equal(frozen.grad, null);
        norm.dispose();
      }
    }
    const none = mt.clipGradNormTensor([mt.tensor([1], { requiresGrad: true })], 1);
    assert.deepEqual([none.shape, none.item()], [[], 0]);
    assert.throws(() => mt.clipGradNormTensor([], 0), /clipGradNormTensor: maxNorm must be positive, got 0/);
  });

  test('clipGradNormTensor follows PyTorch on a non-finite norm: infinite scales by 0, NaN gives NaN', () => {
    const p = mt.tensor([1, 2], { dtype: 'float64', requiresGrad: true });
    p.grad = mt.keep(mt.tensor([Infinity, 3], { dtype: 'float64' }));
    assert.equal(mt.clipGradNormTensor([p], 1).item(), Infinity);
    assert.deepEqual(Array.from(p.grad.dataSync()), [NaN, 0]); // inf·0 = NaN, as in PyTorch
    p.grad = mt.keep(mt.tensor([NaN, 3], { dtype: 'float64' }));
    assert.ok(Number.isNaN(mt.clipGradNormTensor([p], 1).item()));
    assert.ok(Array.from(p.grad.dataSync()).every(Number.isNaN));
  });

  test('clipGradNorm scales gradients to the max norm and returns the norm before clipping', () => {
    const a = mt.tensor([3], { dtype: 'float64', requiresGrad: true }), b = mt.tensor([4], { dtype: 'float64', requiresGrad: true });
    a.grad = mt.keep(mt.tensor([3], { dtype: 'float64' }));
    b.grad = mt.keep(mt.tensor([4], { dtype: 'float64' }));
    assert.equal(mt.clipGradNorm([a, b], 1), 5);
    assertClose([a.grad.item(), b.grad.item()], [3 / (5 + 1e-6), 4 / (5 + 1e-6)], { rtol: 1e-15 });
    assert.equal(mt.clipGradNorm([a, b], 10), Math.hypot(3 / (5 + 1e-6), 4 / (5 + 1e-6)));
    assert.throws(() => mt.clipGradNorm([a], 0), /clipGradNorm: maxNorm must be positive, got 0/);
  });

  test('bad hyperparameters are clear errors', () => {
    const p = mt.tensor([1], { requiresGrad: true });
    assert.throws(() => new mt.SGD([], { lr: 0.1 }), /SGD: got an empty parameter list/);
    assert.throws(() => new mt.SGD([mt.tensor([1])], { lr: 0.1 }), /SGD: params\[0\] is not a leaf tensor that requires grad/);
    assert.throws(() => new mt.Adam([p], { lr: -1 }), /Adam: invalid learning rate -1/);
    assert.throws(() => new mt.Adam([p], { betas: [0.9, 1] }), /Adam: betas must be in \[0, 1\), got \[0.9, 1\]/);
    assert.throws(() => new mt.SGD([p], { lr: 0.1, nesterov: true }), /SGD: nesterov needs a positive momentum and zero dampening/);
    assert.throws(() => new mt.StepLR(new mt.SGD([p], { lr: 1 }), 0), /StepLR: stepSize must be a positive integer, got 0/);
  });
});
