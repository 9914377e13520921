// LayerNorm, RMSNorm, GELU and SiLU as PyTorch defines them: parameter names and initial
// values, eps defaults, values against float64 references, gradients by gradcheck, errors.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { assertClose, distinctValuesArb, mt, numRuns, size } from '../helpers.js';

const f64 = (values: number[], shape: number[]) => mt.tensor(values, shape, { dtype: 'float64' });

/** Per row of the last `k` axes: (x − mean)/√(var + eps) and x/√(mean x² + eps), in float64. */
function rowsRef(values: number[], rowSize: number, f: (row: number[]) => number[]): number[] {
  const out: number[] = [];
  for (let i = 0; i < values.length; i += rowSize) out.push(...f(values.slice(i, i + rowSize)));
  return out;
}
const layerNormRow = (eps: number) => (row: number[]) => {
  const m = row.reduce((a, b) => a + b, 0) / row.length;
  const v = row.reduce((a, b) => a + (b - m) ** 2, 0) / row.length;
  return row.map((x) => (x - m) / Math.sqrt(v + eps));
};
const rmsRow = (eps: number) => (row: number[]) => {
  const ms = row.reduce((a, b) => a + b * b, 0) / row.length;
  return row.map((x) => x / Math.sqrt(ms + eps));
};

describe('LayerNorm and RMSNorm', () => {
  test('PyTorch parameter names, shapes and initial values', () => {
    const ln = new mt.LayerNorm([2, 3], { dtype: 'float64' });
    assert.deepEqual(ln.namedParameters().map(([n, p]) => [n, p.shape]), [['weight', [2, 3]], ['bias', [2, 3]]]);
    assert.deepEqual(Array.from(ln.weight!.dataSync()), [1, 1, 1, 1, 1, 1]);
    assert.deepEqual(Array.from(ln.bias!.dataSync()), [0, 0, 0, 0, 0, 0]);
    assert.equal(ln.eps, 1e-5);
    assert.deepEqual(new mt.LayerNorm(4, { bias: false }).namedParameters().map(([n]) => n), ['weight']);
    assert.deepEqual(new mt.LayerNorm(4, { elementwiseAffine: false }).namedParameters(), []);
    const rms = new mt.RMSNorm(4);
    assert.deepEqual(rms.namedParameters().map(([n, p]) => [n, p.shape]), [['weight', [4]]]);
    assert.deepEqual(new mt.RMSNorm(4, { elementwiseAffine: false }).namedParameters(), []);
  });

  test('values against float64 references over random shapes; weight and bias applied per element', () => {
    const arb = fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 2, max: 5 }), fc.integer({ min: 1, max: 2 }))
      .chain(([rows, n, k]) => fc.tuple(fc.constant([rows, ...(k === 2 ? [2, n] : [n])]), distinctValuesArb(rows * n * k), fc.constant(k)));
    fc.assert(fc.property(arb, ([shape, v, k]) => {
      const normalized = shape.slice(-k), rowSize = size(normalized);
      const x = f64(v, [...shape]);
      assertClose(Array.from(new mt.LayerNorm(normalized, { dtype: 'float64' }).forward(x).dataSync()), rowsRef(v, rowSize, layerNormRow(1e-5)), { rtol: 1e-12, atol: 1e-13, what: 'LayerNorm' });
      // RMSNorm's default eps is float64's machine epsilon here (torch.finfo(float64).eps).
      assertClose(Array.from(new mt.RMSNorm(normalized, { dtype: 'float64' }).forward(x).dataSync()), rowsRef(v, rowSize, rmsRow(2 ** -52)), { rtol: 1e-12, what: 'RMSNorm' });
      const w = Array.from({ length: rowSize }, (_, i) => 0.5 + i / 4), b = Array.from({ length: rowSize }, (_, i) => i / 8 - 0.3);
      const ln = new mt.LayerNorm(normalized, { dtype: 'float64', eps: 0.01 });
      ln.weight!.assign(f64(w, normalized)); ln.bias!.assign(f64(b, normalized));
      const ref = rowsRef(v, rowSize, layerNormRow(0.01)).map((y, i) => y * w[i % rowSize]! + b[i % rowSize]!);
      assertClose(Array.from(ln.forward(x).dataSync()), ref, { rtol: 1e-12, atol: 1e-13, what: 'LayerNorm affine' });
      const rms = new mt.RMSNorm(normalized, { dtype: 'float64', eps: 0.01 });
      rms.weight!.assign(f64(w, normalized));
      assertClose(Array.from(rms.forward(x).dataSync()), rowsRef(v, rowSize, rmsRow(0.01)).map((y, i) => y * w[i % rowSize]!), { rtol: 1e-12, what: 'RMSNorm affine' });
    }), numRuns(25));
    assert.equal(mt.rmsNorm(mt.tensor([[3, 4]]), [2]).dtype, 'float32'); // default eps = 2^-23 for float32
  });

  test('gradcheck with respect to the input, weight and bias', () => {
    const x = f64([0.5, -1.25, 2, 0.75, 1.5, -0.5], [2, 3]).requiresGrad_();
    const w = f64([1.5, -0.5, 0.75], [3]).requiresGrad_(), b = f64([0.1, 0.2, -0.3], [3]).requiresGrad_();
    assert.ok(mt.gradcheck((xx, ww, bb) => mt.layerNorm(xx, [3], ww, bb, 1e-3), [x, w, b]));
    assert.ok(mt.gradcheck((xx, ww) => mt.rmsNorm(xx, [3], ww, 1e-3), [x, w]));
    assert.ok(mt.gradgradcheck((xx, ww, bb) => mt.layerNorm(xx, [3], ww, bb, 1e-3), [x, w, b]));
  });

  test('bad input names the layer and the shapes', () => {
    assert.throws(() => new mt.LayerNorm(4).forward(mt.zeros([2, 3])), /layerNorm: expected input with shape \[\*, 4\], got \[2, 3\]/);
    assert.throws(() => new mt.RMSNorm([2, 3]).forward(mt.zeros([3, 2])), /rmsNorm: expected input with shape \[\*, 2, 3\], got \[3, 2\]/);
    assert.throws(() => new mt.LayerNorm(0), /LayerNorm: normalizedShape must be a positive integer, got 0/);
    assert.throws(() => new mt.RMSNorm(3, { eps: -1 }), /RMSNorm: eps must be a non-negative number, got -1/);
    assert.throws(() => mt.layerNorm(mt.zeros([2, 3]), [3], mt.ones([2])), /layerNorm: weight has shape \[2\], expected \[3\]/);
  });
});

describe('GELU and SiLU modules', () => {
  test('forward as the functions; tanh approximation selectable; bad option refused', () => {
    const x = mt.tensor([-2, -0.5, 0, 1, 3], { dtype: 'float64' });
    assert.deepEqual(Array.from(new mt.GELU().forward(x).dataSync()), Array.from(mt.gelu(x).dataSync()));
    assert.deepEqual(Array.from(new mt.GELU({ approximate: 'tanh' }).forward(x).dataSync()), Array.from(x.gelu({ approximate: 'tanh' }).dataSync()));
    assert.deepEqual(Array.from(new mt.SiLU().forward(x).dataSync()), Array.from(x.silu().dataSync()));
    assert.deepEqual(new mt.GELU().namedParameters(), []);
    assert.throws(() => new mt.GELU({ approximate: 'erf' as 'tanh' }), /GELU: approximate must be 'none' or 'tanh', got 'erf'/);
    const seq = new mt.Sequential(new mt.Linear(3, 4), new mt.GELU(), new mt.LayerNorm(4), new mt.SiLU());
    assert.deepEqual(seq.namedParameters().map(([n]) => n), ['0.weight', '0.bias', '2.weight', '2.bias']);
  });
});
