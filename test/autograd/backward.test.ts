// The autograd engine: accumulation, deep graphs, higher order, modes, errors.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { assertClose, leaf, mt } from '../helpers.js';

describe('backward', () => {
  test('fan-out accumulates: d(x·x + x)/dx = 2x + 1', () => {
    const x = leaf([1, -2, 3], [3]);
    x.mul(x).add(x).sum().backward();
    assert.deepEqual(Array.from(x.grad!.dataSync()), [3, -3, 7]);
  });

  test('an LSTM-like chain of 10,000 ops runs backward without stack overflow and is exact', () => {
    // h ← tanh(w·h + 0.1), 5,000 steps of 2 ops each; dh_T/dw by the chain rule in a plain loop.
    const steps = 5000;
    const w = mt.tensor([0.9], { dtype: 'float64', requiresGrad: true });
    let h = mt.tensor([0.5], { dtype: 'float64' });
    mt.tidy(() => {
      for (let t = 0; t < steps; t++) h = mt.keep(mt.tanh(mt.add(mt.mul(w, h), 0.1)));
    });
    h.backward();
    let hv = 0.5, dhdw = 0;
    for (let t = 0; t < steps; t++) {
      const next = Math.tanh(0.9 * hv + 0.1);
      dhdw = (1 - next * next) * (hv + 0.9 * dhdw);
      hv = next;
    }
    assertClose([h.item()], [hv], { rtol: 1e-12 });
    assertClose(w.grad!.dataSync(), [dhdw], { rtol: 1e-9, what: 'dh/dw' });
  });

  test('backward(grad) for a non-scalar output is vᵀJ; without grad it is an error', () => {
    const x = leaf([1, 2, 3], [3]);
    const y = x.mul(x);
    assert.throws(() => y.backward(), /backward: grad can be implicitly created only for one-element outputs; output 0 has shape \[3\]/);
    y.backward(mt.tensor([1, 0, -1], { dtype: 'float64' }));
    assert.deepEqual(Array.from(x.grad!.dataSync()), [2, 0, -6]);
    assert.throws(() => x.mul(2).backward(mt.tensor([1, 2], { dtype: 'float64' })), /gradient for output 0 has shape \[2\] \(float64\) but the output has shape \[3\] \(float64\)/);
  });

  test('a second backward through a released graph is a clear error; retainGraph allows it and accumulates', () => {
    const x = leaf([2], [1]);
    const y = x.exp().mul(3).sum();
    y.backward();
    assert.throws(() => y.backward(), /backward through the graph a second time .*retainGraph: true/);
    const x2 = leaf([2], [1]);
    const z = x2.exp().sum();
    z.backward(undefined, { retainGraph: true });
    z.backward();
    assertClose(x2.grad!.dataSync(), [2 * Math.exp(2)], { rtol: 1e-15 });
  });

  test("PyTorch's forms: backward(options), backward(number) for a one-element output; other forms are clear errors", () => {
    const x = leaf([2], [1]);
    const z = x.exp().sum();
    z.backward({ retainGraph: true }); // loss.backward(retain_graph=True)
    z.backward(2); // loss.backward(torch.tensor(2.)): dz/dx scaled by 2
    assertClose(x.grad!.dataSync(), [3 * Math.exp(2)], { rtol: 1e-15 });
    const x2 = leaf([1, 2, 3], [3]);
    const y = x2.mul(x2);
    assert.throws(() => y.backward(2), /backward: a number gradient \(2\) needs a one-element output, but this tensor has shape \[3\]/);
    assert.throws(() => y.sum().backward({ retainGraf: true } as never), /backward: unknown option 'retainGraf' \(expected retainGraph or createGraph\)/);
    assert.throws(() => y.sum().backward({ retainGraph: 1 } as never), /backward: option retainGraph must be true or false, got number 1/);
    assert.throws(() => y.sum().backward([1] as never), /backward: the gradient must be a Tensor, a number or omitted, got an array/);
    assert.throws(() => y.sum().backward('1' as never), /backward: the gradient must be a Tensor, a number or omitted, got the string '1'/);
    assert.throws(() => y.sum().backward(undefined, true as never), /backward: options must be an object like \{ retainGraph: true \}, got boolean true/);
    assert.throws(() => y.sum().backward({ retainGraph: true }, {}), /backward: got an options object as the gradient and a second argument/);
    assert.throws(() => y.sum().backward(NaN), /backward: the gradient must be finite, got NaN/);
    const before = mt.memory().liveHandles;
    const w = leaf([1], [1]);
    mt.tidy(() => w.mul(3).sum().backward(0.5));
    assert.deepEqual(Array.from(w.grad!.dataSync()), [1.5]);
    assert.equal(mt.memory().liveHandles, before + 2, 'the number gradient is freed (w and w.grad stay)');
  });

  test('createGraph gives gradients of gradients: d²(x³)/dx² = 6x, d³ = 6', () => {
    const x = leaf([1.5, -2], [2]);
    const [g1] = mt.autograd.grad(x.pow(3).sum(), [x], { createGraph: true });
    assertClose(g1!.dataSync(), [3 * 2.25, 3 * 4]);
    const [g2] = mt.autograd.grad(g1!.sum(), [x], { createGraph: true });
    assertClose(g2!.dataSync(), [9, -12]);
    const [g3] = mt.autograd.grad(g2!.sum(), [x]);
    assertClose(g3!.dataSync(), [6, 6]);
  });

  test('noGrad records nothing; requiresGrad, isLeaf and gradFn describe the graph', () => {
    const x = leaf([1, 2], [2]);
    const y = mt.noGrad(() => x.mul(2));
    assert.equal(y.requiresGrad, false);
    assert.equal(y.gradFn, null);
    const z = x.mul(2).sum();
    assert.equal(z.requiresGrad, true);
    assert.equal(z.isLeaf, false);
    assert.equal(z.gradFn, 'sum');
    assert.equal(x.isLeaf, true);
    assert.throws(() => z.backward(undefined) === undefined && y.backward(), /does not require grad and has no grad_fn/);
    assert.throws(() => { mt.tensor([1], { dtype: 'int32' }).requiresGrad = true; }, /only float tensors can require gradients, this one is int32/);
  });

  test('detach cuts the graph', () => {
    const x = leaf([3], [1]);
    x.mul(x.detach()).sum().backward();
    assert.deepEqual(Array.from(x.grad!.dataSync()), [3]);
  });

  test('leaf gradients accumulate across backward calls until zeroGrad', () => {
    const x = leaf([1, 2], [2]);
    x.mul(3).sum().backward();
    x.mul(3).sum().backward();
    assert.deepEqual(Array.from(x.grad!.dataSync()), [6, 6]);
    x.zeroGrad();
    assert.equal(x.grad, null);
  });

  test('grad and valueAndGrad (function transforms) leave the arguments untouched', () => {
    const f = (a: mt.Tensor, b: mt.Tensor) => a.mul(b).sum();
    const a = mt.tensor([1, 2], { dtype: 'float64' }), b = mt.tensor([3, 4], { dtype: 'float64' });
    const ga = mt.grad(f)(a, b) as mt.Tensor;
    assert.deepEqual(Array.from(ga.dataSync()), [3, 4]);
    const { value, grad } = mt.valueAndGrad(f, { argnums: [0, 1] })(a, b);
    assert.equal(value.item(), 11);
    assert.deepEqual((grad as mt.Tensor[]).map((g) => Array.from(g.dataSync())), [[3, 4], [1, 2]]);
    assert.equal(a.requiresGrad, false);
    assert.equal(a.grad, null);
    assert.throws(() => mt.grad((t: mt.Tensor) => t.mul(2))(a), /grad: f must return a one-element Tensor, got shape \[2\]/);
    assert.throws(() => mt.grad(f, { argnums: 2 })(a, b), /grad: argnums 2 is out of range for 2 arguments/);
  });

  test('autograd.grad w.r.t. an intermediate tensor, allowUnused, and unused inputs', () => {
    const x = leaf([1, 2], [2]);
    const h = x.mul(2);
    const y = h.square().sum();
    const unused = leaf([5], [1]);
    const [gh, gu] = mt.autograd.grad(y, [h, unused], { allowUnused: true });
    assert.deepEqual(Array.from(gh!.dataSync()), [4, 8]);
    assert.deepEqual(Array.from(gu!.dataSync()), [0]);
    assert.equal(x.grad, null);
    const y2 = x.square().sum();
    assert.throws(() => mt.autograd.grad(y2, [unused]), /inputs\[0\] \(shape \[1\]\) was not used in computing the outputs/);
  });

  test('the broadcast-gradient reduction names the op when a shape cannot match', async () => {
    const { sumToShape } = await import('../../src/autograd/backward.js');
    const g = mt.ones([2, 3]);
    assert.throws(() => sumToShape(g, [4], 'mul', 1), /backward of mul: the gradient for input 1 has shape \[2, 3\], which does not reduce to the input's shape \[4\]/);
    assert.deepEqual(sumToShape(g, [3], 'mul', 1).toArray(), [2, 2, 2]);
    assert.deepEqual(sumToShape(g, [2, 1], 'mul', 1).toArray(), [[3], [3]]);
  });

  test('mixed float32/float64 operands promote, and the float32 side gets a float32 gradient', () => {
    const a = mt.tensor([1, 2], { requiresGrad: true });
    const b = mt.tensor([0.5, 0.25], { dtype: 'float64', requiresGrad: true });
    const y = a.mul(b);
    assert.equal(y.dtype, 'float64');
    y.sum().backward();
    assert.equal(a.grad!.dtype, 'float32');
    assert.deepEqual(Array.from(a.grad!.dataSync()), [0.5, 0.25]);
    assert.equal(b.grad!.dtype, 'float64');
  });
});
