// Fused kernels (src/tensor/ops/fused.ts, src/backends/cpu/fused.ts): the LSTM cell in one
// kernel gives the composed ops' forward bit for bit, their gradients to rounding, and the
// composed path runs on a backend that does not offer the kernel.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { composedLstmCell, composedLstmSequence, lstmCell, lstmSequence } from '../../src/tensor/ops/fused.js';
import { getBackend } from '../../src/tensor/engine.js';
import { assertClose, mt, numRuns } from '../helpers.js';
import { registerUnfusedCpu, useUnfusedCpu } from './unfused-cpu.js';

const bits = (t: mt.Tensor) => Array.from(t.dataSync());

/** h', c' and the gradients of Σ(h'·wh) + Σ(c'·wc) with respect to z and c. */
function cellAndGrads(cell: typeof lstmCell, zv: number[], cv: number[], wv: number[], B: number, H: number, dtype: 'float32' | 'float64') {
  const z = mt.tensor(zv, [B, 4 * H], { dtype, requiresGrad: true });
  const c = mt.tensor(cv, [B, H], { dtype, requiresGrad: true });
  const wh = mt.tensor(wv.slice(0, B * H), [B, H], { dtype }), wc = mt.tensor(wv.slice(B * H), [B, H], { dtype });
  const out = cell(z, c);
  out.h.mul(wh).sum().add(out.c.mul(wc).sum()).backward();
  return { h: bits(out.h), c: bits(out.c), dz: bits(z.grad!), dc: bits(c.grad!) };
}

const cellArb = fc.record({ B: fc.integer({ min: 1, max: 4 }), H: fc.integer({ min: 1, max: 6 }), seed: fc.integer({ min: 0, max: 1e6 }) });

for (const dtype of ['float32', 'float64'] as const) {
  test(`lstmCell (${dtype}): the fused kernel's h', c' equal the composed ops' bit for bit; gradients agree to rounding`, () => {
    fc.assert(fc.property(cellArb, ({ B, H, seed }) => {
      mt.manualSeed(seed);
      // Pre-activations up to ±8: saturated gates included.
      const zv = Array.from(mt.randn([B * 4 * H]).mul(4).dataSync()), cv = Array.from(mt.randn([B * H]).dataSync());
      const wv = Array.from(mt.randn([2 * B * H]).dataSync());
      const fused = cellAndGrads(lstmCell, zv, cv, wv, B, H, dtype);
      const composed = cellAndGrads(composedLstmCell, zv, cv, wv, B, H, dtype);
      assert.deepEqual(fused.h, composed.h);
      assert.deepEqual(fused.c, composed.c);
      // The fused backward rounds once, the composed rules after every op. ∂c = (∂c' + ∂h'·σ(o)·(1 − tanh²c'))·σ(f)
      // can cancel to near 0, where the composed rounding errors are relative to the upstream
      // gradients (the terms), not to the result: an absolute tolerance of a few roundings of
      // the largest upstream value (CI met |diff| 1.4e-7 on a result of 8e-3 with terms ~1).
      const eps = dtype === 'float64' ? 2 ** -53 : 2 ** -24, upstream = Math.max(...wv.map(Math.abs));
      const tol = { rtol: dtype === 'float64' ? 1e-13 : 2e-6, atol: 16 * eps * upstream };
      assertClose(fused.dz, composed.dz, { ...tol, what: 'dz' });
      assertClose(fused.dc, composed.dc, { ...tol, what: 'dc' });
    }), numRuns(40));
  });
}

test('lstmCell records one node on the CPU and composes the cell where the backend has no fused kernel', () => {
  const z = mt.randn([2, 12], { dtype: 'float64' }).requiresGrad_(), c = mt.randn([2, 3], { dtype: 'float64' }).requiresGrad_();
  assert.equal(getBackend().supports?.('lstmCell'), true);
  const fused = lstmCell(z, c);
  // h' is a slice (reshaped) of the fused node's [7, B, H] result.
  assert.equal(fused.h.gradFn, 'reshape');
  const expected = { h: bits(fused.h), c: bits(fused.c) };
  useUnfusedCpu();
  const z2 = mt.tensor(bits(z), [2, 12], { dtype: 'float64', requiresGrad: true }), c2 = mt.tensor(bits(c), [2, 3], { dtype: 'float64', requiresGrad: true });
  const composed = lstmCell(z2, c2);
  assert.deepEqual({ h: bits(composed.h), c: bits(composed.c) }, expected);
  assert.equal(composed.h.gradFn, 'mul'); // h' = σ(o)·tanh(c'), composed
  // The float64 gradient check passes on both paths.
  assert.ok(mt.gradcheck((a, b) => { const s = lstmCell(a!, b!); return [s.h, s.c]; }, [z2, c2]));
  mt.setBackend('cpu');
  assert.ok(mt.gradcheck((a, b) => { const s = lstmCell(a!, b!); return [s.h, s.c]; }, [z, c]));
  assert.ok(mt.gradgradcheck((a, b) => lstmCell(a!, b!).h, [z, c]));
});

test('lstmCell: wrong shapes or dtypes name the op, the argument and the shapes', () => {
  const z = mt.zeros([2, 12]), c = mt.zeros([2, 4]);
  assert.throws(() => lstmCell(z, c), /lstmCell: z must be \[B, 4H\] and c \[B, H\] of one dtype, got z float32 \[2, 12\] and c float32 \[2, 4\]/);
  assert.throws(() => lstmCell(mt.zeros([2, 12], { dtype: 'int32' }), mt.zeros([2, 3])), /lstmCell/);
});

/** Parameters after `steps` Adam/AdamW updates on the current backend, and the optimizer's buffers. */
function adamRun(Opt: typeof mt.Adam, options: mt.AdamOptions, dtype: 'float32' | 'float64', seed: number) {
  mt.manualSeed(seed);
  const p = mt.randn([5, 7], { dtype }).requiresGrad_();
  const q = mt.randn([7], { dtype }).requiresGrad_();
  const opt = new Opt([p, q], { lr: 0.05, ...options });
  for (let s = 0; s < 4; s++) {
    opt.zeroGrad();
    p.matmul(q).tanh().square().sum().backward();
    opt.step();
  }
  const state = opt.stateDict();
  return { p: bits(p), q: bits(q), buffers: Object.fromEntries(Object.entries(state.tensors).map(([k, t]) => [k, bits(t)])), scalars: state.scalars };
}

for (const dtype of ['float32', 'float64'] as const) {
  test(`Adam and AdamW (${dtype}): the fused adamStep gives the composed update's parameters and buffers bit for bit`, () => {
    registerUnfusedCpu();
    const cases: [typeof mt.Adam, mt.AdamOptions][] = [
      [mt.Adam, {}], [mt.Adam, { weightDecay: 0.1, betas: [0.8, 0.99], eps: 1e-6 }], [mt.AdamW, {}], [mt.AdamW, { weightDecay: 0.3 }],
    ];
    for (const [Opt, options] of cases) {
      for (const seed of [1, 2]) {
        mt.setBackend('cpu');
        const fused = adamRun(Opt, options, dtype, seed);
        mt.setBackend('cpu-unfused');
        const composed = adamRun(Opt, options, dtype, seed);
        assert.deepEqual(fused, composed, `${Opt.name} ${JSON.stringify(options)}`);
      }
    }
  });
}

test('clipGradNormTensor: the fused sumOfSquares and scaleAll give the composed norm and gradients bit for bit (float32 and float64 gradients)', () => {
  registerUnfusedCpu();
  const run = (maxNorm: number) => {
    mt.manualSeed(3);
    const params = [mt.randn([6, 5]), mt.randn([5]), mt.randn([4, 3], { dtype: 'float64' }), mt.randn([7])].map((p) => p.requiresGrad_());
    params.forEach((p, i) => { p.grad = mt.randn(p.shape, { dtype: p.dtype }).mul(i + 1); });
    const norm = mt.clipGradNormTensor(params, maxNorm);
    return { norm: bits(norm), grads: params.map((p) => bits(p.grad!)) };
  };
  for (const maxNorm of [0.5, 1e6]) {
    mt.setBackend('cpu');
    const fused = run(maxNorm);
    mt.setBackend('cpu-unfused');
    const composed = run(maxNorm);
    assert.deepEqual(fused, composed, `maxNorm ${maxNorm}`);
  }
  mt.setBackend('cpu');
  assert.ok(getBackend().supports?.('sumOfSquares') && getBackend().supports?.('scaleAll'), 'the CPU backend ran the fused kernels');
});

/** An LSTM layer's outputs and the gradients of Σ(hs·w) + Σ(h·wh) + Σ(c·wc) for every input (the biases when `withBias`). */
function sequenceAndGrads(seq: typeof lstmSequence, L: number, B: number, H: number, seed: number, dtype: 'float32' | 'float64', withBias: boolean) {
  mt.manualSeed(seed);
  const xw = mt.randn([L, B, 4 * H], { dtype }).mul(2).requiresGrad_(), h0 = mt.randn([B, H], { dtype }).requiresGrad_();
  const c0 = mt.randn([B, H], { dtype }).requiresGrad_(), w = mt.randn([4 * H, H], { dtype }).mul(0.5).requiresGrad_();
  const b = mt.randn([4 * H], { dtype }).requiresGrad_();
  const ws = mt.randn([L, B, H], { dtype }), wh = mt.randn([B, H], { dtype }), wc = mt.randn([B, H], { dtype });
  const out = withBias ? seq(xw, h0, c0, w, b) : seq(xw, h0, c0, w);
  out.hs.mul(ws).sum().add(out.h.mul(wh).sum()).add(out.c.mul(wc).sum()).backward();
  const upstream = Math.max(...[ws, wh, wc].flatMap((t) => bits(t).map(Math.abs)));
  const inputs = withBias ? [xw, h0, c0, w, b] : [xw, h0, c0, w];
  return { values: { hs: bits(out.hs), h: bits(out.h), c: bits(out.c) }, grads: inputs.map((t) => bits(t.grad!)), upstream };
}

for (const dtype of ['float32', 'float64'] as const) {
  test(`lstmSequence (${dtype}): one kernel's outputs equal the per-step ops' bit for bit; gradients agree to rounding`, () => {
    fc.assert(fc.property(fc.record({ L: fc.integer({ min: 1, max: 6 }), B: fc.integer({ min: 1, max: 4 }), H: fc.integer({ min: 1, max: 9 }), seed: fc.integer({ min: 0, max: 1e6 }), withBias: fc.boolean() }), ({ L, B, H, seed, withBias }) => {
      const fused = sequenceAndGrads(lstmSequence, L, B, H, seed, dtype, withBias);
      const composed = sequenceAndGrads(composedLstmSequence, L, B, H, seed, dtype, withBias);
      assert.deepEqual(fused.values, composed.values);
      // Summed in another order (W_hh's gradient is one product over the steps; the cell's
      // backward rounds once): rounding differences, relative to the upstream terms where they cancel.
      // Measured over 200 seeds: |diff| ≤ 0.33·eps·(1 + |g|)·L·H; allowed: 4·eps·L·H, relative and absolute.
      const eps = dtype === 'float64' ? 2 ** -53 : 2 ** -24;
      const tol = { rtol: 4 * L * H * eps, atol: 4 * L * H * eps * Math.max(1, fused.upstream) };
      ['xw', 'h0', 'c0', 'wHH', 'bias'].slice(0, fused.grads.length).forEach((name, i) => assertClose(fused.grads[i]!, composed.grads[i]!, { ...tol, what: `d${name}` }));
    }), numRuns(30));
  });
}

test('lstmSequence records one node on the CPU; gradcheck and gradgradcheck pass; bad shapes name the op and the arguments', () => {
  mt.manualSeed(11);
  const [L, B, H] = [4, 2, 3];
  const xw = mt.randn([L, B, 4 * H], { dtype: 'float64' }).requiresGrad_(), h0 = mt.randn([B, H], { dtype: 'float64' }).requiresGrad_();
  const c0 = mt.randn([B, H], { dtype: 'float64' }).requiresGrad_(), w = mt.randn([4 * H, H], { dtype: 'float64' }).mul(0.5).detach().requiresGrad_();
  assert.equal(getBackend().supports?.('lstmSequence'), true);
  const out = lstmSequence(xw, h0, c0, w);
  assert.equal(out.hs.gradFn, 'reshape'); // a slice of the one node's [L, 7, B, H] result
  const bias = mt.randn([4 * H], { dtype: 'float64' }).requiresGrad_();
  const f = (a?: mt.Tensor, b?: mt.Tensor, c?: mt.Tensor, d?: mt.Tensor, e?: mt.Tensor) => { const o = lstmSequence(a!, b!, c!, d!, e); return [o.hs, o.c]; };
  assert.ok(mt.gradcheck(f, [xw, h0, c0, w]));
  assert.ok(mt.gradcheck(f, [xw, h0, c0, w, bias]));
  assert.ok(mt.gradgradcheck((a, b, c, d, e) => lstmSequence(a!, b!, c!, d!, e).hs, [xw, h0, c0, w, bias]));
  assert.throws(() => lstmSequence(mt.zeros([3, 2, 8]), mt.zeros([2, 3]), mt.zeros([2, 3]), mt.zeros([12, 3])),
    /lstmSequence: xw must be \[L, B, 4H\], h0 and c0 \[B, H\], wHH \[4H, H\], bias \[4H\], of one dtype; got xw float32 \[3, 2, 8\], h0 float32 \[2, 3\]/);
  assert.throws(() => lstmSequence(mt.zeros([3, 2, 12]), mt.zeros([2, 3]), mt.zeros([2, 3]), mt.zeros([12, 3]), mt.zeros([3])), /lstmSequence: .* got .*, bias float32 \[3\]/);
  assert.throws(() => lstmSequence(mt.zeros([0, 2, 12]), mt.zeros([2, 3]), mt.zeros([2, 3]), mt.zeros([12, 3])), /lstmSequence: xw has no steps/);
});

test('logsumexpRows and gateEntropyRows: logsumexp without a gradient and gateEntropy give the composition\'s bits (float32 and float64, NaN, ±Infinity, zero and negative gates)', () => {
  registerUnfusedCpu();
  const special = fc.constantFrom(0, -0, Infinity, -Infinity, NaN, 1, 88.7, -104, 1e-30);
  const arb = fc.record({
    rows: fc.integer({ min: 1, max: 5 }), n: fc.integer({ min: 1, max: 40 }), batch: fc.integer({ min: 1, max: 2 }), keepdims: fc.boolean(),
    dtype: fc.constantFrom<mt.DType>('float32', 'float64'), seed: fc.integer({ min: 0, max: 1e6 }),
    specials: fc.array(fc.tuple(fc.nat(), special), { maxLength: 6 }), scale: fc.constantFrom(1e-3, 1, 30, 1e4),
  });
  fc.assert(fc.property(arb, ({ rows, n, batch, keepdims, dtype, seed, specials, scale }) => {
    const shape = [batch, rows, n];
    const run = () => {
      mt.manualSeed(seed);
      const v = Array.from(mt.randn(shape, { dtype: 'float64' }).dataSync(), (z) => z * scale);
      for (const [i, s] of specials) v[i % v.length] = s;
      const x = mt.tensor(v, shape, { dtype });
      // Gates: a softmax with some entries zeroed (and, in the specials, negative or NaN).
      const g = mt.tensor(v.map((z, i) => (i % 3 === 0 ? 0 : Number.isFinite(z) ? Math.exp(-Math.abs(z)) : z)), shape, { dtype });
      const leaf = x.clone().requiresGrad_();
      const lse = mt.noGrad(() => mt.logsumexp(leaf, -1, keepdims));
      return { lse: bits(mt.logsumexp(x, -1, keepdims)), lseNoGrad: bits(lse), shape: [...lse.shape], entropy: bits(mt.gateEntropy(g)) };
    };
    mt.setBackend('cpu');
    const fused = run();
    mt.setBackend('cpu-unfused');
    const composed = run();
    mt.setBackend('cpu');
    assert.deepEqual(fused, composed);
  }), numRuns(150));
  assert.ok(getBackend().supports?.('logsumexpRows') && getBackend().supports?.('gateEntropyRows'), 'the CPU backend has the fused kernels');
});
