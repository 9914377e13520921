// Learning-rate schedules against their closed forms.

import { test } from 'node:test';
import { assertClose, mt } from '../helpers.js';

test('schedules: StepLR, CosineAnnealingLR, LinearLR (warm-up) and WarmupCosineLR follow their closed forms', () => {
  const p = mt.tensor([1], { requiresGrad: true });
  const lrs = (s: mt.LRScheduler, n: number) => [s.optimizer.lr, ...Array.from({ length: n }, () => s.step())];
  assertClose(lrs(new mt.StepLR(new mt.SGD([p], { lr: 1 }), 2, 0.5), 5), [1, 1, 0.5, 0.5, 0.25, 0.25], { rtol: 1e-15 });
  assertClose(lrs(new mt.CosineAnnealingLR(new mt.SGD([p], { lr: 1 }), 4), 4), [1, (1 + Math.SQRT1_2) / 2, 0.5, (1 - Math.SQRT1_2) / 2, 0], { rtol: 1e-12, atol: 1e-15 });
  assertClose(lrs(new mt.LinearLR(new mt.SGD([p], { lr: 1 }), 0.25, 1, 3), 4), [0.25, 0.5, 0.75, 1, 1], { rtol: 1e-15 });
  const wc = lrs(new mt.WarmupCosineLR(new mt.SGD([p], { lr: 1 }), 2, 6), 6);
  assertClose(wc, [1 / 3, 2 / 3, 1, 0.75, 0.25, 0, 0].slice(0, 3).concat([(1 + Math.cos(Math.PI / 4)) / 2, 0.5, (1 + Math.cos(3 * Math.PI / 4)) / 2, 0]), { rtol: 1e-12, atol: 1e-15 });
});
