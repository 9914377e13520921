// One composite using every op and layer added for PyTorch parity (split chunk cat var std
// prod cumsum sort argsort maskedFill eye tril triu linspace norm flip repeat any all log1p
// expm1 sin cos floor ceil round erf gelu silu, LayerNorm, RMSNorm, GELU, SiLU, a SwiGLU
// expert) gives PyTorch's float64 values and gradients to within 1e-9 relative. Fixture:
// test/fixtures/parity/torch_parity.json, made by scripts/fixtures/make_parity_fixtures.py.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { assertClose, mt } from '../helpers.js';

interface Flat { shape: number[]; values: number[] }
const fixture = JSON.parse(readFileSync('test/fixtures/parity/torch_parity.json', 'utf8')) as {
  torch: string; inputs: Record<string, Flat>; outputs: Record<string, Flat & { weights: number[] }>; loss: number; grads: Record<string, number[]>;
};
const tol = { rtol: 1e-9, atol: 1e-12 };
const t64 = (f: Flat) => mt.tensor(f.values, f.shape, { dtype: 'float64' });

test(`the parity composite equals PyTorch ${fixture.torch} (float64): every intermediate, the loss and every gradient`, () => {
  const [N, D] = fixture.inputs.x!.shape as [number, number];
  const H = fixture.inputs['expert.w1.weight']!.shape[0]!;
  const x = t64(fixture.inputs.x!).requiresGrad_();
  const ln = new mt.LayerNorm(D, { dtype: 'float64' });
  const rms = new mt.RMSNorm(D, { eps: 1e-6, dtype: 'float64' });
  const expert = new mt.SwiGLUExpert(D, H, D, { dtype: 'float64' });
  ln.loadStateDict({ weight: t64(fixture.inputs['ln.weight']!), bias: t64(fixture.inputs['ln.bias']!) });
  rms.loadStateDict({ weight: t64(fixture.inputs['rms.weight']!) });
  expert.loadStateDict(Object.fromEntries(['w1', 'w2', 'w3'].map((w) => [`${w}.weight`, t64(fixture.inputs[`expert.${w}.weight`]!)])));

  const out: Record<string, mt.Tensor> = {};
  let h = ln.forward(x);
  out.layerNorm = h;
  h = rms.forward(h);
  out.rmsNorm = h;
  const a = new mt.GELU().forward(h).add(new mt.GELU({ approximate: 'tanh' }).forward(h).mul(0.5)).add(new mt.SiLU().forward(h).mul(0.25));
  out.activations = a;
  const s = expert.forward(a);
  out.swiglu = s;

  const [c0, c1] = s.chunk(2, 1) as [mt.Tensor, mt.Tensor];
  const [s0, s1] = mt.split(s, 3, 1) as [mt.Tensor, mt.Tensor]; // torch.split: chunks of 3, the last of 1
  const q = mt.cat([c1, c0.mul(2)], 1).add(s1.cat([s0], 1).mul(0.5));
  out.chunkSplitCat = q;
  const m = mt.tril(q).add(q.triu(1).mul(0.5)).add(mt.eye(N, D, { dtype: 'float64' }).mul(mt.linspace(0.5, 1.5, D, { dtype: 'float64' })));
  out.triangles = m;
  const f = m.flip(0).mul(m).add(mt.flip(m, [0, 1]).mul(0.1));
  out.flip = f;
  const r = f.repeat(2, 1);
  const c = r.cumsum(1).mul(0.5).add(mt.cumsum(r, 0).mul(0.1));
  out.cumsum = c;

  out.var = c.var(0);
  out.varAll = mt.var(c, undefined, { correction: 0 });
  out.std = mt.std(c, 1);
  out.sortDescending = c.sort(1, true).values;
  out.argsortGather = c.gather(0, mt.argsort(c, 0));
  out.norm2 = c.norm(2, 1);
  out.norm3 = mt.norm(c, 3);
  out.normInf = c.norm(Infinity, 0);
  out.norm1 = c.norm(1, [0, 1], true);
  out.prod = c.slice([0, 0], [-1, 3]).mul(0.3).add(1).prod(1);
  out.smooth = c.sin().square().log1p().add(c.cos().mul(0.1).expm1()).add(c.mul(0.7).erf());
  out.steps = c.floor().add(c.mul(0.5).ceil()).add(c.mul(2).round()).mul(c);
  const hot = c.greater(0.25);
  out.masked = c.maskedFill(hot, -1.5).mul(hot.any(1, true).double()).add(c.mul(mt.all(c.greater(-2), 0).double()));

  let loss = mt.zeros([], { dtype: 'float64' });
  for (const [name, expected] of Object.entries(fixture.outputs)) {
    const got = out[name];
    assert.ok(got, `the composite lacks output ${name}`);
    assert.deepEqual(got.shape, expected.shape, `${name}: shape`);
    assertClose(got.dataSync(), expected.values, { ...tol, what: name });
    loss = loss.add(got.mul(mt.tensor(expected.weights, expected.shape, { dtype: 'float64' })).sum());
  }
  assert.deepEqual(Object.keys(out).sort(), Object.keys(fixture.outputs).sort());
  assertClose([loss.item()], [fixture.loss], { ...tol, what: 'loss' });
  loss.backward();
  assertClose(x.grad!.dataSync(), fixture.grads.x!, { ...tol, what: 'grad of x' });
  for (const [module, prefix] of [[ln, 'ln'], [rms, 'rms'], [expert, 'expert']] as const) {
    for (const [name, p] of module.namedParameters()) assertClose(p.grad!.dataSync(), fixture.grads[`${prefix}.${name}`]!, { ...tol, what: `grad of ${prefix}.${name}` });
  }
});
