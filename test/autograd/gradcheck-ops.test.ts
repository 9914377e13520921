// Every differentiable primitive (and the compositions built on them) passes gradcheck in
// float64 over random small shapes, broadcasting included. Values are built from integers
// and kept away from kinks (relu, abs), ties (max, maximum, topk) and poles (log, div).

import { describe, test } from 'node:test';
import fc from 'fast-check';
import { distinctValuesArb, leaf, mt, numRuns, shapeArb, size, valuesArb } from '../helpers.js';

type T = mt.Tensor;

/** gradcheck (slow, full Jacobian) and, where asked, gradgradcheck. */
function check(fn: (...xs: T[]) => T | T[], inputs: T[], second = false): void {
  mt.tidy(() => {
    mt.gradcheck(fn, inputs);
    if (second) mt.gradgradcheck(fn, inputs);
  });
  mt.dispose(inputs);
}

/** A shape and a second shape that broadcasts against it (dims set to 1, leading dims dropped). */
const broadcastPairArb = shapeArb(3, 3).chain((shape) =>
  fc.tuple(
    fc.constant(shape),
    fc.array(fc.boolean(), { minLength: shape.length, maxLength: shape.length }),
    fc.integer({ min: 0, max: shape.length }),
    fc.boolean(),
  ).map(([s, ones, drop, swap]) => {
    const other = s.map((d, i) => (ones[i] ? 1 : d)).slice(drop);
    return swap ? [other, s] as const : [s, other] as const;
  }));

const unaryCases: [string, (x: T) => T, { positive?: boolean }][] = [
  ['neg', (x) => x.neg(), {}],
  ['abs', (x) => x.abs(), {}],
  ['exp', (x) => x.exp(), {}],
  ['log', (x) => x.log(), { positive: true }],
  ['sqrt', (x) => x.sqrt(), { positive: true }],
  ['tanh', (x) => x.tanh(), {}],
  ['sigmoid', (x) => x.sigmoid(), {}],
  ['relu', (x) => x.relu(), {}],
  ['softplus', (x) => x.softplus(), {}],
  ['normalCdf', (x) => x.normalCdf(), {}],
];

describe('gradcheck: unary ops', () => {
  for (const [name, fn, { positive }] of unaryCases) {
    test(`${name} (and its second derivative)`, () => {
      fc.assert(fc.property(shapeArb(3, 3).chain((s) => fc.tuple(fc.constant(s), valuesArb(size(s), { maxInt: 160 }))), ([shape, values]) => {
        const v = positive ? values.map(Math.abs) : values;
        check(fn, [leaf(v, shape)], name !== 'relu' && name !== 'abs' && name !== 'neg');
      }), numRuns(12));
    });
  }
});

const binaryCases: [string, (a: T, b: T) => T][] = [
  ['add', (a, b) => a.add(b)],
  ['sub', (a, b) => a.sub(b)],
  ['mul', (a, b) => a.mul(b)],
  ['div', (a, b) => a.div(b)],
];

describe('gradcheck: binary ops with broadcasting', () => {
  for (const [name, fn] of binaryCases) {
    test(`${name}`, () => {
      fc.assert(fc.property(
        broadcastPairArb.chain(([sa, sb]) => fc.tuple(fc.constant(sa), fc.constant(sb), valuesArb(size(sa)), valuesArb(size(sb)))),
        ([sa, sb, va, vb]) => check(fn, [leaf(va, sa), leaf(vb, sb)], true),
      ), numRuns(15));
    });
  }

  test('pow (positive base, any exponent)', () => {
    fc.assert(fc.property(
      broadcastPairArb.chain(([sa, sb]) => fc.tuple(fc.constant(sa), fc.constant(sb), valuesArb(size(sa), { maxInt: 100 }), valuesArb(size(sb), { maxInt: 100 }))),
      ([sa, sb, va, vb]) => check((a, b) => a.pow(b), [leaf(va.map((v) => Math.abs(v) + 0.25), sa), leaf(vb.map((v) => v / 2), sb)], true),
    ), numRuns(15));
  });

  for (const name of ['maximum', 'minimum'] as const) {
    test(`${name} (no ties)`, () => {
      fc.assert(fc.property(
        broadcastPairArb.chain(([sa, sb]) => fc.tuple(fc.constant(sa), fc.constant(sb), distinctValuesArb(size(sa) + size(sb)))),
        ([sa, sb, v]) => check((a, b) => a[name](b), [leaf(v.slice(0, size(sa)), sa), leaf(v.slice(size(sa)), sb)]),
      ), numRuns(15));
    });
  }

  test('where (three-way broadcasting; the condition is not differentiable)', () => {
    fc.assert(fc.property(
      broadcastPairArb.chain(([sa, sb]) => fc.tuple(fc.constant(sa), fc.constant(sb), valuesArb(size(sa)), valuesArb(size(sb)),
        fc.array(fc.integer({ min: 0, max: 1 }), { minLength: size(sa), maxLength: size(sa) }))),
      ([sa, sb, va, vb, cond]) => {
        const c = mt.tensor(cond, sa, { dtype: 'int32' });
        check((a, b) => mt.where(c, a, b), [leaf(va, sa), leaf(vb, sb)], true);
        c.dispose();
      },
    ), numRuns(15));
  });

  test('number operands on either side', () => {
    fc.assert(fc.property(shapeArb(2, 3).chain((s) => fc.tuple(fc.constant(s), valuesArb(size(s)))), ([s, v]) => {
      check((x) => mt.sub(2, x).mul(x).div(3).add(mt.div(1.5, x)), [leaf(v, s)], true);
    }), numRuns(10));
  });
});

/** A random subset of axes of a shape (possibly empty = all when `undefined`). */
const axesArb = (rank: number) => fc.oneof(
  fc.constant(undefined),
  fc.subarray(Array.from({ length: rank }, (_, i) => i)).map((axes) => axes.map((a, i) => (i % 2 ? a - rank : a))),
);

describe('gradcheck: reductions', () => {
  for (const name of ['sum', 'mean', 'logsumexp'] as const) {
    test(`${name} over random axes, keepdims or not`, () => {
      fc.assert(fc.property(
        shapeArb(3, 3, 1).chain((s) => fc.tuple(fc.constant(s), valuesArb(size(s)), axesArb(s.length), fc.boolean())),
        ([s, v, axes, keepdims]) => check((x) => x[name](axes, keepdims), [leaf(v, s)], true),
      ), numRuns(15));
    });
  }
  for (const name of ['max', 'min'] as const) {
    test(`${name} over random axes (distinct values)`, () => {
      fc.assert(fc.property(
        shapeArb(3, 3, 1).chain((s) => fc.tuple(fc.constant(s), distinctValuesArb(size(s)), axesArb(s.length), fc.boolean())),
        ([s, v, axes, keepdims]) => check((x) => x[name](axes, keepdims), [leaf(v, s)], true),
      ), numRuns(15));
    });
  }
});

describe('gradcheck: matmul', () => {
  test('2-D and batched with broadcast batch dims, every transpose layout', () => {
    fc.assert(fc.property(
      fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 }),
        fc.constantFrom([], [2], [2, 1]), fc.constantFrom([], [2], [1, 2]), fc.boolean(), fc.boolean()),
      ([m, k, n, batchA, batchB, tA, tB]) => {
        const sa = [...batchA, ...(tA ? [k, m] : [m, k])], sb = [...batchB, ...(tB ? [n, k] : [k, n])];
        const va = Array.from({ length: size(sa) }, (_, i) => ((i * 7) % 11) / 4 - 1.3);
        const vb = Array.from({ length: size(sb) }, (_, i) => ((i * 5) % 13) / 5 - 1.1);
        check((a, b) => mt.matmul(a, b, { transposeA: tA, transposeB: tB }), [leaf(va, sa), leaf(vb, sb)], true);
      },
    ), numRuns(20));
  });

  test('1-D operands (vector·matrix, matrix·vector, dot)', () => {
    check((a, b) => mt.matmul(a, b), [leaf([1, -2, 0.5], [3]), leaf([1, 2, 3, 4, 5, 6], [3, 2])], true);
    check((a, b) => mt.matmul(a, b), [leaf([1, -2, 0.5, 2, 1, 0], [2, 3]), leaf([0.5, 2, -1], [3])], true);
    check((a, b) => mt.matmul(a, b), [leaf([1, -2, 0.5], [3]), leaf([0.5, 2, -1], [3])], true);
  });
});

describe('gradcheck: movement', () => {
  test('reshape, flatten, squeeze, unsqueeze', () => {
    check((x) => x.reshape([3, -1]).unsqueeze(1).squeeze(1).flatten().mul(x.reshape([6])), [leaf([1, 2, 3, -4, 5, 6], [2, 3])], true);
  });

  test('permute with random permutations', () => {
    fc.assert(fc.property(
      shapeArb(4, 3, 1).chain((s) => fc.tuple(fc.constant(s), valuesArb(size(s)),
        fc.shuffledSubarray(s.map((_, i) => i), { minLength: s.length, maxLength: s.length }))),
      ([s, v, perm]) => check((x) => x.permute(perm).mul(x.permute(perm)), [leaf(v, s)]),
    ), numRuns(15));
  });

  test('broadcastTo', () => {
    fc.assert(fc.property(broadcastPairArb.chain(([sa, sb]) => {
      const small = sa.length <= sb.length ? sa : sb;
      const big = small === sa ? sb : sa;
      const target = big.map((d, i) => Math.max(d, small[small.length - big.length + i] ?? 1));
      return fc.tuple(fc.constant(small), fc.constant(target), valuesArb(size(small)));
    }), ([s, target, v]) => check((x) => x.broadcastTo(target), [leaf(v, s)])), numRuns(15));
  });

  test('slice and pad', () => {
    fc.assert(fc.property(
      shapeArb(3, 4, 1).chain((s) => fc.tuple(fc.constant(s), valuesArb(size(s)),
        fc.tuple(...s.map((d) => fc.integer({ min: 0, max: d - 1 }))),
        fc.array(fc.integer({ min: 0, max: 2 }), { minLength: s.length, maxLength: s.length }))),
      ([s, v, begin, padding]) => {
        const sz = s.map((d, i) => d - begin[i]!);
        check((x) => x.slice(begin, sz).pad(padding, [...padding].reverse()), [leaf(v, s)], true);
      },
    ), numRuns(15));
  });

  test('concat, stack, split and chunk', () => {
    fc.assert(fc.property(
      shapeArb(3, 3, 1).chain((s) => fc.tuple(fc.constant(s), fc.integer({ min: 0, max: s.length - 1 }), valuesArb(size(s)), valuesArb(size(s)))),
      ([s, axis, va, vb]) => {
        check((a, b) => mt.concat([a, b, a], axis), [leaf(va, s), leaf(vb, s)]);
        check((a, b) => mt.stack([a, b], -1).mul(2), [leaf(va, s), leaf(vb, s)]);
        check((a) => { const [p, q] = mt.chunk(mt.concat([a, a], axis), 2, axis); return p!.mul(q!.exp()); }, [leaf(va, s)]);
      },
    ), numRuns(10));
  });
});

describe('gradcheck: indexing', () => {
  const indexed = shapeArb(3, 3, 1).chain((s) => fc.tuple(
    fc.constant(s), valuesArb(size(s)), fc.integer({ min: 0, max: s.length - 1 }), fc.integer({ min: 1, max: 4 }),
    fc.array(fc.nat(), { minLength: 64, maxLength: 64 })));

  test('gather and scatterAdd (torch.gather / scatter_add), repeated indices included', () => {
    fc.assert(fc.property(indexed, ([s, v, axis, len, raw]) => {
      const ishape = s.map((d, i) => (i === axis ? len : d));
      const index = mt.tensor(Array.from({ length: size(ishape) }, (_, i) => raw[i % raw.length]! % s[axis]!), ishape, { dtype: 'int32' });
      const src = Array.from({ length: size(ishape) }, (_, i) => (i % 5) / 2 - 1);
      check((x) => x.gather(axis, index).square(), [leaf(v, s)], true);
      check((x, y) => x.scatterAdd(axis, index, y).square(), [leaf(v, s), leaf(src, ishape)], true);
      index.dispose();
    }), numRuns(15));
  });

  test('indexSelect and indexAdd, repeated indices included', () => {
    fc.assert(fc.property(indexed, ([s, v, axis, len, raw]) => {
      const index = mt.tensor(Array.from({ length: len }, (_, i) => raw[i]! % s[axis]!), [len], { dtype: 'int32' });
      const sshape = s.map((d, i) => (i === axis ? len : d));
      const src = Array.from({ length: size(sshape) }, (_, i) => (i % 7) / 3 - 1);
      check((x) => x.indexSelect(axis, index).square(), [leaf(v, s)], true);
      check((x, y) => x.indexAdd(axis, index, y).square(), [leaf(v, s), leaf(src, sshape)], true);
      index.dispose();
    }), numRuns(15));
  });

  test('topk values (distinct inputs), largest and smallest', () => {
    fc.assert(fc.property(
      fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 6 })).chain(([r, n]) =>
        fc.tuple(fc.constant([r, n]), distinctValuesArb(r * n), fc.integer({ min: 1, max: n }), fc.boolean())),
      ([s, v, k, largest]) => check((x) => x.topk(k, { largest }).values.mul(x.slice([0, 0], [s[0]!, k])), [leaf(v, s)]),
    ), numRuns(15));
  });
});

describe('gradcheck: compositions', () => {
  test('softmax and logSoftmax over any axis', () => {
    fc.assert(fc.property(
      shapeArb(3, 3, 1).chain((s) => fc.tuple(fc.constant(s), valuesArb(size(s)), fc.integer({ min: -s.length, max: s.length - 1 }))),
      ([s, v, axis]) => {
        const w = leaf(v.map((x) => x * 0.7 + 0.1), s);
        check((x) => x.softmax(axis).mul(w.detach()), [leaf(v, s)], true);
        check((x) => x.logSoftmax(axis).mul(w.detach()), [leaf(v, s)], true);
        w.dispose();
      },
    ), numRuns(12));
  });

  test('clamp away from its bounds, and dropout with a fixed generator', () => {
    fc.assert(fc.property(shapeArb(2, 4, 1).chain((s) => fc.tuple(fc.constant(s), valuesArb(size(s)), fc.nat())), ([s, v, seed]) => {
      check((x) => x.clamp(-1.1, 1.1).mul(x), [leaf(v, s)]);
      check((x) => mt.dropout(x, 0.4, true, { generator: new mt.Generator(seed) }).mul(x), [leaf(v, s)], true);
    }), numRuns(10));
  });

  test('a small LSTM-like cell: matmul, sigmoid, tanh, slices, products', () => {
    const x = leaf([0.5, -1, 0.25, 2, 1, -0.5], [2, 3]);
    const w = leaf(Array.from({ length: 3 * 8 }, (_, i) => ((i * 7) % 9) / 9 - 0.4), [3, 8]);
    const h0 = leaf([0.1, -0.2, 0.3, 0.4], [2, 2]);
    check((xx, ww, h) => {
      const z = xx.matmul(ww);
      const [i, f, g, o] = mt.chunk(z, 4, 1) as [T, T, T, T];
      const c = f.sigmoid().mul(h).add(i.sigmoid().mul(g.tanh()));
      return o.sigmoid().mul(c.tanh());
    }, [x, w, h0], true);
  });
});
