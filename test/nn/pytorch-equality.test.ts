// Linear, Embedding, LSTMCell, LSTM, the losses and the optimizers give PyTorch's float64
// values and gradients to within 1e-9 relative. Fixtures: test/fixtures/nn/torch_nn.json,
// made by scripts/fixtures/make_nn_fixtures.py (Debian's python3-torch).

import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { assertClose, mt } from '../helpers.js';

interface Flat { shape: number[]; values: number[] }
type Case = Record<string, unknown>;
const fixture = JSON.parse(readFileSync('test/fixtures/nn/torch_nn.json', 'utf8')) as { torch_version: string; cases: Record<string, Case> };
const cases = fixture.cases;

const tol = { rtol: 1e-9, atol: 1e-12 };
const t64 = (f: Flat, requiresGrad = false) => mt.tensor(f.values, f.shape, { dtype: 'float64', requiresGrad });
const ti32 = (f: Flat) => mt.tensor(f.values, f.shape, { dtype: 'int32' });
const load = (m: mt.Module, state: Record<string, Flat>) => m.loadStateDict(Object.fromEntries(Object.entries(state).map(([k, v]) => [k, t64(v)])));
const expectGrads = (m: mt.Module, grads: Record<string, number[]>) => {
  for (const [name, p] of m.namedParameters()) assertClose(p.grad!.dataSync(), grads[name]!, { ...tol, what: `grad of ${name}` });
};
const expect = (t: mt.Tensor, f: Flat, what: string) => {
  if (t.shape.join() !== f.shape.join()) throw new Error(`${what}: shape [${t.shape}] vs PyTorch [${f.shape}]`);
  assertClose(t.dataSync(), f.values, { ...tol, what });
};

describe(`equality with PyTorch ${fixture.torch_version} (float64)`, () => {
  test('Linear on a batched input: output and gradients', () => {
    const c = cases.linear as { state: Record<string, Flat>; x: Flat; r: Flat; y: Flat; grads: Record<string, number[]>; x_grad: Flat };
    const lin = new mt.Linear(4, 3, { dtype: 'float64' });
    load(lin, c.state);
    const x = t64(c.x!, true);
    const y = lin.forward(x);
    expect(y, c.y, 'y');
    y.mul(t64(c.r)).sum().backward();
    expectGrads(lin, c.grads);
    expect(x.grad!, c.x_grad!, 'x.grad');
  });

  test('Embedding with repeated indices: output and accumulated gradient', () => {
    const c = cases.embedding as { state: Record<string, Flat>; indices: Flat; r: Flat; y: Flat; grads: Record<string, number[]> };
    const emb = new mt.Embedding(10, 4, { dtype: 'float64' });
    load(emb, c.state);
    const y = emb.forward(ti32(c.indices));
    expect(y, c.y, 'y');
    y.mul(t64(c.r)).sum().backward();
    expectGrads(emb, c.grads);
  });

  test('LSTMCell with an initial state', () => {
    const c = cases.lstm_cell as Record<string, Flat> & { state: Record<string, Flat>; grads: Record<string, number[]> };
    const cell = new mt.LSTMCell(3, 4, { dtype: 'float64' });
    load(cell, c.state);
    const x = t64(c.x!, true), h0 = t64(c.h0!, true), c0 = t64(c.c0!, true);
    const { h, c: c1 } = cell.forward(x, { h: h0, c: c0 });
    expect(h, c.h1!, 'h1');
    expect(c1, c.c1!, 'c1');
    h.mul(t64(c.r1!)).sum().add(c1.mul(t64(c.r2!)).sum()).backward();
    expectGrads(cell, c.grads);
    expect(x.grad!, c.x_grad!, 'x.grad');
    expect(h0.grad!, c.h0_grad!, 'h0.grad');
    expect(c0.grad!, c.c0_grad!, 'c0.grad');
  });

  for (const name of ['lstm_1layer_seq_first_state', 'lstm_1layer_batch_first', 'lstm_2layer_seq_first', 'lstm_2layer_batch_first_state']) {
    test(`LSTM ${name.replace(/_/g, ' ')}: output, h, c and every gradient`, () => {
      const c = cases[name] as Record<string, Flat> & {
        num_layers: number; batch_first: boolean; with_state: boolean; input_size: number; hidden_size: number;
        state: Record<string, Flat>; grads: Record<string, number[]>;
      };
      const lstm = new mt.LSTM({ inputSize: c.input_size, hiddenSize: c.hidden_size, numLayers: c.num_layers, batchFirst: c.batch_first, dtype: 'float64' });
      load(lstm, c.state);
      const x = t64(c.x!, true);
      const h0 = c.with_state ? t64(c.h0!, true) : null, c0 = c.with_state ? t64(c.c0!, true) : null;
      const out = lstm.forward(x, h0 && c0 ? { h: h0, c: c0 } : undefined);
      expect(out.output, c.output!, 'output');
      expect(out.h, c.h!, 'h_n');
      expect(out.c, c.c!, 'c_n');
      out.output.mul(t64(c.r_out!)).sum().add(out.h.mul(t64(c.r_h!)).sum()).add(out.c.mul(t64(c.r_c!)).sum()).backward();
      expectGrads(lstm, c.grads);
      expect(x.grad!, c.x_grad!, 'x.grad');
      if (h0 && c0) {
        expect(h0.grad!, c.h0_grad!, 'h0.grad');
        expect(c0.grad!, c.c0_grad!, 'c0.grad');
      }
    });
  }

  test('crossEntropy: mean over non-ignored targets, sum, and a [2, 3, C] batch', () => {
    const c = cases.cross_entropy as Record<string, Flat> & { loss_mean: number; loss_sum: number; loss3: number };
    const logits = t64(c.logits!, true);
    const mean = mt.crossEntropy(logits, ti32(c.targets!));
    assertClose([mean.item()], [c.loss_mean], { ...tol, what: 'mean loss' });
    mean.backward();
    expect(logits.grad!, c.grad_mean!, 'grad (mean)');
    logits.zeroGrad();
    const sum = mt.crossEntropy(logits, ti32(c.targets!), { reduction: 'sum' });
    assertClose([sum.item()], [c.loss_sum], { ...tol, what: 'sum loss' });
    sum.backward();
    expect(logits.grad!, c.grad_sum!, 'grad (sum)');
    const logits3 = t64(c.logits3!, true);
    const loss3 = mt.crossEntropy(logits3, ti32(c.targets3!));
    assertClose([loss3.item()], [c.loss3], { ...tol, what: '[2, 3, C] loss' });
    loss3.backward();
    expect(logits3.grad!, c.grad3!, 'grad ([2, 3, C])');
  });

  test('mse', () => {
    const c = cases.mse as Record<string, Flat> & { loss: number };
    const a = t64(c.a!, true);
    const loss = mt.mse(a, t64(c.b!));
    assertClose([loss.item()], [c.loss], tol);
    loss.backward();
    expect(a.grad!, c.grad!, 'grad');
  });

  const optimizers: [string, (ps: mt.Tensor[]) => mt.Optimizer][] = [
    ['adam_one_step', (ps) => new mt.Adam(ps, { lr: 1e-2 })],
    ['adam', (ps) => new mt.Adam(ps, { lr: 1e-2, betas: [0.8, 0.99], eps: 1e-6, weightDecay: 0.1 })],
    ['adam_amsgrad', (ps) => new mt.Adam(ps, { lr: 1e-2, amsgrad: true })],
    ['adamw', (ps) => new mt.AdamW(ps, { lr: 1e-2, weightDecay: 0.1 })],
    ['sgd_momentum', (ps) => new mt.SGD(ps, { lr: 0.1, momentum: 0.9, dampening: 0.1, weightDecay: 0.01 })],
    ['sgd_nesterov', (ps) => new mt.SGD(ps, { lr: 0.1, momentum: 0.9, nesterov: true })],
  ];
  for (const [name, make] of optimizers) {
    test(`${name} steps equal torch.optim's`, () => {
      const c = cases[name] as { start: Record<string, Flat>; grads: Record<string, Flat>[]; end: Record<string, Flat> };
      const p = t64(c.start.p!, true), q = t64(c.start.q!, true);
      const opt = make([p, q]);
      for (const g of c.grads) {
        p.grad = mt.keep(t64(g.p!));
        q.grad = mt.keep(t64(g.q!));
        opt.step();
      }
      expect(p, c.end.p!, 'p');
      expect(q, c.end.q!, 'q');
    });
  }
});
