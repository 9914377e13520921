// Matmul: square float32 against tfjs-cpu, square float64 (mixtape only: tfjs has no
// float64), and the three layouts A·B, A·Bᵀ, Aᵀ·B read in place.

import { mt, tf, type Case, type Suite } from './harness.js';

const SIZES = [64, 128, 256, 512, 1024];
const LAYOUT_SIZES = [256, 512];
const LAYOUTS = [
  { name: 'A·B', transposeA: false, transposeB: false },
  { name: 'A·Bᵀ', transposeA: false, transposeB: true },
  { name: 'Aᵀ·B', transposeA: true, transposeB: false },
] as const;

const owned: { dispose(): void }[] = [];

/** The same random n×n float32 matrix in both libraries. */
function pair(n: number, seed: number): [mt.Tensor, tf.Tensor] {
  const a = mt.randn([n, n], { generator: new mt.Generator(seed) });
  const t = tf.tensor2d(a.dataSync() as Float32Array, [n, n]);
  owned.push(a, t);
  return [a, t];
}

/** Fewer, longer samples for the sizes where one tfjs call takes seconds. */
const optionsFor = (n: number) => (n >= 1024 ? { maxTime: 2, minSamples: 3 } : n >= 512 ? { maxTime: 2, minSamples: 4 } : undefined);

export const matmulSuite: Suite = {
  name: 'matmul',
  title: 'matmul: n×n · n×n (GFLOP/s = 2n³ / time; ratio = mixtape / tfjs-cpu)',
  cases(): Case[] {
    const cases: Case[] = [];
    for (const n of SIZES) {
      const [a, ta] = pair(n, 1), [b, tb] = pair(n, 2);
      cases.push({
        name: `float32 ${n}`,
        metric: { kind: 'gflops', flops: 2 * n ** 3 },
        mixtape: () => mt.tidy(() => { a.matmul(b).dataSync(); }),
        tfjs: () => tf.tidy(() => { tf.matMul(ta, tb).dataSync(); }),
        options: optionsFor(n),
      });
    }
    for (const n of SIZES) {
      const a = mt.randn([n, n], { dtype: 'float64', generator: new mt.Generator(3) });
      const b = mt.randn([n, n], { dtype: 'float64', generator: new mt.Generator(4) });
      owned.push(a, b);
      cases.push({
        name: `float64 ${n}`,
        metric: { kind: 'gflops', flops: 2 * n ** 3 },
        mixtape: () => mt.tidy(() => { a.matmul(b).dataSync(); }),
        options: optionsFor(n),
      });
    }
    for (const n of LAYOUT_SIZES) {
      const [a, ta] = pair(n, 5), [b, tb] = pair(n, 6);
      for (const { name, transposeA, transposeB } of LAYOUTS) {
        cases.push({
          name: `float32 ${n} ${name}`,
          metric: { kind: 'gflops', flops: 2 * n ** 3 },
          mixtape: () => mt.tidy(() => { a.matmul(b, { transposeA, transposeB }).dataSync(); }),
          tfjs: () => tf.tidy(() => { tf.matMul(ta, tb, transposeA, transposeB).dataSync(); }),
          options: optionsFor(n),
        });
      }
    }
    return cases;
  },
  teardown() { for (const t of owned.splice(0)) t.dispose(); },
};
