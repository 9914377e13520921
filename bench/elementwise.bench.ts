// Elementwise float32 ops on 1e5 and 1e6 elements: add, mul, exp, ln (of positive values),
// add of a broadcast row vector ([rows, 1000] + [1000]), and standard normal draws.

import { mt, tf, type Case, type Suite } from './harness.js';

const COLS = 1000;
const SIZES = [1e5, 1e6];
const owned: { dispose(): void }[] = [];

function pair(shape: number[], seed: number): [mt.Tensor, tf.Tensor] {
  const a = mt.randn(shape, { generator: new mt.Generator(seed) });
  const t = tf.tensor(a.dataSync() as Float32Array, shape);
  owned.push(a, t);
  return [a, t];
}

export const elementwiseSuite: Suite = {
  name: 'elementwise',
  title: `elementwise float32 (time per op; ratio = mixtape speed / tfjs-cpu speed)`,
  cases(): Case[] {
    const cases: Case[] = [];
    for (const size of SIZES) {
      const shape = [size / COLS, COLS];
      const [a, ta] = pair(shape, 1), [b, tb] = pair(shape, 2), [row, trow] = pair([COLS], 3);
      const positive = a.abs().add(0.5), tpositive = tf.tensor(positive.dataSync() as Float32Array, shape);
      owned.push(positive, tpositive);
      const label = size === 1e6 ? '1e6' : '1e5';
      const metric = { kind: 'time', unit: 'ms' } as const;
      cases.push(
        { name: `add ${label}`, metric, mixtape: () => mt.tidy(() => { a.add(b).dataSync(); }), tfjs: () => tf.tidy(() => { tf.add(ta, tb).dataSync(); }) },
        { name: `mul ${label}`, metric, mixtape: () => mt.tidy(() => { a.mul(b).dataSync(); }), tfjs: () => tf.tidy(() => { tf.mul(ta, tb).dataSync(); }) },
        { name: `exp ${label}`, metric, mixtape: () => mt.tidy(() => { a.exp().dataSync(); }), tfjs: () => tf.tidy(() => { tf.exp(ta).dataSync(); }) },
        { name: `log ${label}`, metric, mixtape: () => mt.tidy(() => { positive.log().dataSync(); }), tfjs: () => tf.tidy(() => { tf.log(tpositive).dataSync(); }) },
        { name: `randn ${label}`, metric, mixtape: () => mt.tidy(() => { mt.randn(shape).dataSync(); }), tfjs: () => tf.tidy(() => { tf.randomNormal(shape).dataSync(); }) },
        {
          name: `add row-broadcast ${label}`, metric,
          mixtape: () => mt.tidy(() => { a.add(row).dataSync(); }),
          tfjs: () => tf.tidy(() => { tf.add(ta, trow).dataSync(); }),
        },
      );
    }
    return cases;
  },
  teardown() { for (const t of owned.splice(0)) t.dispose(); },
};
