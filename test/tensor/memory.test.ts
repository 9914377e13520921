// memory() counters and scoped lifetimes: tidy, keep, dispose, and graphs that hold
// their saved tensors exactly as long as needed.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { assertClose, mt } from '../helpers.js';

const live = () => mt.memory().liveHandles;

describe('memory', () => {
  test('tidy disposes every intermediate and keeps what it returns (arrays, objects, Maps)', () => {
    const x = mt.randn([4, 4]);
    const base = live();
    const out = mt.tidy(() => {
      const a = x.exp().add(1).mul(x);
      const b = a.sum(1).softmax();
      return { pair: [a, b], map: new Map([['c', b.neg()]]) };
    });
    assert.equal(live(), base + 3);
    mt.dispose(out);
    assert.equal(live(), base);
    assert.equal(mt.memory().bytes >= 0, true);
  });

  test('tidy keeps what it returns by its quick paths too: one tensor, a short flat array with nulls, a long flat array', () => {
    const x = mt.randn([3]);
    const base = live();
    const one = mt.tidy(() => x.exp().add(1));
    assert.equal(live(), base + 1);
    assert.ok(!one.isDisposed);
    const short = mt.tidy(() => { const a = x.mul(2), b = x.add(3); x.neg(); return [a, null, b, undefined]; });
    assert.equal(live(), base + 3);
    assert.ok(short.every((t) => t === null || t === undefined || !t.isDisposed));
    const long = mt.tidy(() => { const ts = Array.from({ length: 12 }, (_, i) => x.add(i)); x.exp(); return ts; });
    assert.equal(live(), base + 15);
    assert.deepEqual(Array.from(long[11]!.dataSync()), Array.from(x.dataSync(), (v) => Math.fround(v + 11)));
    mt.dispose([one, ...short.filter((t): t is mt.Tensor => t instanceof mt.Tensor), ...long]);
    assert.equal(live(), base);
  });

  test('a full forward + backward inside tidy returns to baseline, leaving only the kept gradients', () => {
    const w = mt.randn([8, 4], { dtype: 'float64' }).requiresGrad_();
    const b = mt.zeros([4], { dtype: 'float64', requiresGrad: true });
    const x = mt.randn([16, 8], { dtype: 'float64' });
    const base = live();
    for (let step = 0; step < 3; step++) {
      mt.tidy(() => {
        const h = x.matmul(w).add(b).tanh();
        const loss = h.logSoftmax(-1).mean().neg();
        loss.backward();
      });
    }
    assert.equal(live(), base + 2, 'only w.grad and b.grad remain');
    w.zeroGrad(); b.zeroGrad();
    assert.equal(live(), base);
  });

  test('the graph survives tidy disposing its intermediates; backward after tidy works and frees it', () => {
    const w = mt.tensor([0.5, -1], { dtype: 'float64', requiresGrad: true });
    const base = live();
    const loss = mt.tidy(() => w.exp().mul(w).sum());
    assert.ok(live() > base + 1, 'the graph holds its saved tensors');
    loss.backward();
    assert.equal(live(), base + 2, 'loss and w.grad');
    assertClose(w.grad!.dataSync(), [Math.exp(0.5) * 1.5, 0]);
    loss.dispose(); w.zeroGrad();
    assert.equal(live(), base);
  });

  test('a forward-only graph (parameters requiring grad, no backward) is freed with its output', () => {
    const w = mt.randn([3, 3]).requiresGrad_();
    const base = live();
    const y = mt.tidy(() => w.matmul(w).relu().sum(0).exp());
    assert.ok(live() > base + 1);
    y.dispose();
    assert.equal(live(), base);
  });

  test('createGraph graphs are freed too', () => {
    const x = mt.tensor([1.5, 2], { dtype: 'float64', requiresGrad: true });
    const base = live();
    mt.tidy(() => {
      const [g] = mt.autograd.grad(x.pow(3).sum(), [x], { createGraph: true });
      const [g2] = mt.autograd.grad(g!.sum(), [x]);
      assert.deepEqual(Array.from(g2!.dataSync()), [9, 12]);
    });
    assert.equal(live(), base);
  });

  test('keep exempts a tensor from tidy; using a disposed tensor is an error naming it', () => {
    const base = live();
    let kept!: mt.Tensor, dropped!: mt.Tensor;
    mt.tidy(() => { kept = mt.keep(mt.ones([2])); dropped = mt.ones([3]); });
    assert.equal(live(), base + 1);
    assert.equal(dropped.isDisposed, true);
    assert.throws(() => dropped.add(1), /add: argument 'a' \(tensor #\d+, shape \[3\]\) was disposed/);
    assert.throws(() => dropped.dataSync(), /dataSync: tensor #\d+ of shape \[3\] was disposed/);
    kept.dispose();
    kept.dispose(); // disposing twice is harmless
    assert.equal(live(), base);
  });

  test('a failing op frees the scalars and casts it made for its operands', () => {
    const a = mt.tensor([1, 2, 3]), b = mt.tensor([1, 2], { dtype: 'float64' });
    const z = mt.zeros([4]), cond = mt.ones([2], { dtype: 'int32' }), a2 = a.mul(2);
    const base = live();
    assert.throws(() => a.add(b), /cannot be broadcast/);        // a cast of a to float64
    assert.throws(() => a2.add(z.add(1)).sub(1), /cannot be broadcast/);
    assert.throws(() => mt.where(cond, 1.5, a), /cannot be broadcast/); // a scalar for 1.5
    assert.throws(() => a.less(b), /cannot be broadcast/);
    assert.throws(() => a.add(Number.NaN), /add: argument 'b' must be a number/);
    assert.equal(live(), base + 1, 'only z.add(1) survives');
  });

  test('an exception inside tidy still frees its tensors', () => {
    const base = live();
    assert.throws(() => mt.tidy(() => { mt.ones([5]).exp(); throw new Error('boom'); }), /boom/);
    assert.equal(live(), base);
  });

  test('tidy refuses async functions instead of leaking silently', () => {
    const base = live();
    assert.throws(() => mt.tidy((async () => mt.ones([2])) as unknown as () => mt.Tensor), /tidy: fn must be synchronous/);
    assert.equal(live(), base);
  });

  test('counters: uploads, readbacks and bytes move as documented', () => {
    const before = mt.memory();
    const t = mt.tensor([1, 2, 3, 4]);
    const mid = mt.memory();
    assert.equal(mid.uploads, before.uploads + 1);
    assert.equal(mid.bytes, before.bytes + 16);
    t.dataSync();
    assert.equal(mt.memory().readbacks, mid.readbacks + 1);
    t.dispose();
    assert.equal(mt.memory().bytes, before.bytes);
    assert.deepEqual(Object.keys(mt.memory()).sort(), ['bytes', 'cachedBytes', 'kernelsCompiled', 'liveHandles', 'readbacks', 'uploads']);
  });

  test('reshape is a view: no copy, one more reference to the same data', () => {
    const x = mt.ones([2, 3]);
    const bytes = mt.memory().bytes;
    const y = x.reshape([3, 2]);
    assert.equal(mt.memory().bytes, bytes);
    x.dispose();
    assert.deepEqual(y.toArray(), [[1, 1], [1, 1], [1, 1]]);
    y.dispose();
  });
});

describe('running out of memory', () => {
  test('tensor creation and ops that cannot allocate their result name the op, the shape and the bytes', () => {
    // 4 TB: V8 refuses the ArrayBuffer at once (no memory is touched).
    assert.throws(() => mt.zeros([1e6, 1e6]), /^OutOfMemoryError: zeros: out of memory allocating the result \[1000000, 1000000\] float32: 3\.6 TiB \(4\.00e\+12 bytes\)$/);
    assert.throws(() => mt.randn([1e6, 1e6], { dtype: 'float64' }), /^OutOfMemoryError: randn: out of memory allocating the result \[1000000, 1000000\] float64: 7\.3 TiB/);
    assert.throws(() => mt.full([1e9, 1e9, 1e9], 1), /^OutOfMemoryError: full: out of memory allocating the result \[1000000000, 1000000000, 1000000000\] float32/);
    const base = mt.memory().liveHandles;
    const a = mt.ones([1e6, 1]), b = mt.ones([1, 1e6]);
    assert.throws(() => a.matmul(b), (e: unknown) => e instanceof mt.OutOfMemoryError && e.op === 'matmul' && e.bytes === 4e12 && /^matmul: .*\[1000000, 1000000\] float32/.test(e.message));
    a.dispose(); b.dispose();
    assert.equal(mt.memory().liveHandles, base, 'nothing leaks from the failed op');
  });
});
