// The movement ops (reshape flatten squeeze unsqueeze permute transpose broadcastTo slice
// pad concat stack split), against plain-loop references.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { mt, numRuns, ravel, shapeArb, size } from '../helpers.js';
import { broadcastShapesArb, forEachIndex, smallIntsArb } from './ref.js';

const values = (t: mt.Tensor) => Array.from(t.dataSync());
const DTYPES: mt.DType[] = ['float64', 'float32', 'int32'];

/** A shape with integer values (exact in every dtype) and a dtype. */
const tensorArb = (shape: fc.Arbitrary<number[]>) =>
  fc.tuple(shape.chain((s) => fc.tuple(fc.constant(s), smallIntsArb(size(s), 1000))), fc.constantFrom(...DTYPES));

const make = (vals: number[], shape: readonly number[], dtype: mt.DType) => mt.tensor(vals, shape, { dtype });

/** out[index] = x[f(index)] over outShape: the reference for gathers of elements. */
function pick(vals: readonly number[], shape: readonly number[], outShape: readonly number[], from: (index: number[]) => number[] | null): number[] {
  const out: number[] = [];
  forEachIndex(outShape, (index) => {
    const src = from(index);
    out.push(src === null ? 0 : vals[ravel(src, shape)]!);
  });
  return out;
}

function check(y: mt.Tensor, shape: readonly number[], expected: readonly number[], dtype: mt.DType, what: string) {
  assert.equal(y.dtype, dtype, what);
  assert.deepEqual([...y.shape], shape, `${what} shape`);
  assert.deepEqual(values(y), expected, what);
}

const spellAxis = (a: number, rank: number, negative: boolean) => (negative ? a - rank : a);

describe('movement', () => {
  test('reshape (with -1) keeps the row-major data; view is reshape; clone copies', () => {
    const arb = fc.tuple(tensorArb(shapeArb(4, 4)), fc.array(fc.integer(), { minLength: 4, maxLength: 4 }), fc.boolean(), fc.option(fc.nat(3)));
    fc.assert(fc.property(arb, ([[[shape, vals], dtype], keys, merge, infer]) => {
      let target = shape.map((d, i) => [keys[i]!, d] as const).sort((p, q) => p[0] - q[0]).map((p) => p[1]);
      if (merge && target.length >= 2) target = [target[0]! * target[1]!, ...target.slice(2)];
      const spelled = infer !== null && target.length > 0 ? target.map((d, i) => (i === infer % target.length ? -1 : d)) : target;
      const x = make(vals, shape, dtype);
      const y = x.reshape(spelled), v = mt.reshape(x, spelled), w = x.view(target), c = x.clone();
      for (const t of [y, v, w]) check(t, target, vals, dtype, `reshape [${shape}] → [${spelled}]`);
      check(c, shape, vals, dtype, 'clone');
      mt.dispose([x, y, v, w, c]);
    }), numRuns(50));
  });

  test('flatten(startAxis, endAxis) merges that range of axes', () => {
    const arb = tensorArb(shapeArb(4, 3)).chain(([[shape, vals], dtype]) => {
      const r = Math.max(shape.length, 1);
      return fc.tuple(fc.constant([shape, vals, dtype] as const), fc.integer({ min: 0, max: r - 1 }), fc.integer({ min: 0, max: r - 1 }), fc.boolean(), fc.boolean());
    });
    fc.assert(fc.property(arb, ([[shape, vals, dtype], s0, e0, negS, negE]) => {
      const [s, e] = s0 <= e0 ? [s0, e0] : [e0, s0];
      const x = make(vals, shape, dtype);
      const expected = shape.length === 0 ? [1] : [...shape.slice(0, s), size(shape.slice(s, e + 1)), ...shape.slice(e + 1)];
      const y = shape.length === 0 ? x.flatten() : x.flatten(spellAxis(s, shape.length, negS), spellAxis(e, shape.length, negE));
      check(y, expected, vals, dtype, `flatten [${shape}] ${s}..${e}`);
      check(mt.flatten(x), [size(shape)], vals, dtype, 'flatten all');
      x.dispose();
    }), numRuns(50));
  });

  test('squeeze removes size-1 axes (all, or the named ones that are 1); unsqueeze inserts one', () => {
    const arb = tensorArb(shapeArb(4, 2)).chain(([[shape, vals], dtype]) => fc.tuple(
      fc.constant([shape, vals, dtype] as const),
      fc.shuffledSubarray(shape.map((_, i) => i)), fc.boolean(), fc.integer({ min: 0, max: shape.length }), fc.boolean()));
    fc.assert(fc.property(arb, ([[shape, vals, dtype], axes, neg, at, negAt]) => {
      const x = make(vals, shape, dtype);
      check(x.squeeze(), shape.filter((d) => d !== 1), vals, dtype, 'squeeze()');
      const spelled = axes.map((a) => spellAxis(a, shape.length, neg));
      check(mt.squeeze(x, spelled), shape.filter((d, i) => !(axes.includes(i) && d === 1)), vals, dtype, `squeeze([${spelled}])`);
      if (axes.length > 0) check(x.squeeze(spelled[0]!), shape.filter((d, i) => !(i === axes[0] && d === 1)), vals, dtype, 'squeeze(axis)');
      const u = x.unsqueeze(negAt ? at - shape.length - 1 : at);
      check(u, [...shape.slice(0, at), 1, ...shape.slice(at)], vals, dtype, `unsqueeze(${at})`);
      x.dispose();
    }), numRuns(50));
  });

  test('permute and transpose move elements: out[i] = x[i permuted]', () => {
    const arb = tensorArb(shapeArb(4, 3)).chain(([[shape, vals], dtype]) => fc.tuple(
      fc.constant([shape, vals, dtype] as const),
      fc.shuffledSubarray(shape.map((_, i) => i), { minLength: shape.length, maxLength: shape.length }),
      fc.array(fc.boolean(), { minLength: shape.length, maxLength: shape.length }),
      fc.nat(), fc.nat()));
    fc.assert(fc.property(arb, ([[shape, vals, dtype], perm, negs, i0, i1]) => {
      const x = make(vals, shape, dtype);
      const outShape = perm.map((p) => shape[p]!);
      const y = x.permute(perm.map((p, i) => spellAxis(p, shape.length, negs[i]!)));
      check(y, outShape, pick(vals, shape, outShape, (index) => {
        const src = new Array<number>(shape.length);
        perm.forEach((p, i) => { src[p] = index[i]!; });
        return src;
      }), dtype, `permute [${shape}] by [${perm}]`);
      if (shape.length >= 1) {
        const a = i0 % shape.length, b = i1 % shape.length;
        const tShape = [...shape];
        [tShape[a], tShape[b]] = [shape[b]!, shape[a]!];
        const t = mt.transpose(x, a, spellAxis(b, shape.length, true));
        check(t, tShape, pick(vals, shape, tShape, (index) => {
          const src = [...index];
          [src[a], src[b]] = [index[b]!, index[a]!];
          return src;
        }), dtype, `transpose(${a}, ${b})`);
      }
      if (shape.length >= 2) {
        const r = shape.length;
        const tShape = [...shape.slice(0, -2), shape[r - 1]!, shape[r - 2]!];
        check(x.transpose(), tShape, pick(vals, shape, tShape, (index) => [...index.slice(0, -2), index[r - 1]!, index[r - 2]!]), dtype, 'transpose()');
      }
      x.dispose();
    }), numRuns(50));
  });

  test('broadcastTo / expand repeat along size-1 and new leading axes', () => {
    const arb = broadcastShapesArb(1).chain(({ base, shapes: [s] }) => fc.tuple(fc.constant([base, s!] as const), smallIntsArb(size(s!), 1000), fc.constantFrom(...DTYPES)));
    fc.assert(fc.property(arb, ([[base, shape], vals, dtype]) => {
      const x = make(vals, shape, dtype);
      const expected = pick(vals, shape, base, (index) => {
        const off = base.length - shape.length;
        return shape.map((d, i) => (d === 1 ? 0 : index[i + off]!));
      });
      check(x.broadcastTo(base), base, expected, dtype, `broadcastTo [${shape}] → [${base}]`);
      check(x.expand(base), base, expected, dtype, 'expand');
      x.dispose();
    }), numRuns(50));
  });

  test('slice(begin, size): negative begin counts from the end, size -1 runs to the end, short lists keep whole axes', () => {
    const arb = tensorArb(shapeArb(3, 4)).chain(([[shape, vals], dtype]) => fc.tuple(
      fc.constant([shape, vals, dtype] as const),
      fc.tuple(...shape.map((d) => fc.integer({ min: 0, max: d }).chain((b) => fc.tuple(fc.constant(b), fc.integer({ min: 0, max: d - b }), fc.boolean(), fc.boolean())))),
      fc.integer({ min: 0, max: shape.length }), fc.integer({ min: 0, max: shape.length })));
    fc.assert(fc.property(arb, ([[shape, vals, dtype], spec, nBegin, nSize]) => {
      const begin = spec.map(([b, , negB], i) => (negB && b < shape[i]! ? b - shape[i]! : b)).slice(0, nBegin);
      const sizes = spec.map(([b, c, , toEnd], i) => (toEnd && b + c === shape[i]! ? -1 : c)).slice(0, nSize);
      // What the reference reads: an axis without a begin starts at 0, one without a size runs to the end.
      const starts = shape.map((_, i) => (i < nBegin ? spec[i]![0] : 0));
      const outShape = shape.map((d, i) => (i < nSize && sizes[i] !== -1 ? sizes[i]! : d - starts[i]!));
      fc.pre(outShape.every((c, i) => starts[i]! + c <= shape[i]!));
      const x = make(vals, shape, dtype);
      const y = x.slice(begin, sizes);
      check(y, outShape, pick(vals, shape, outShape, (index) => index.map((v, i) => v + starts[i]!)), dtype, `slice [${shape}] begin [${begin}] size [${sizes}]`);
      mt.dispose([x, y]);
    }), numRuns(50));
    const x = mt.tensor([[1, 2, 3], [4, 5, 6]]);
    assert.deepEqual(x.slice([0, -2]).toArray(), [[2, 3], [5, 6]]);
    assert.deepEqual(x.slice([-1, 1], [-1, 1]).toArray(), [[5]]);
    assert.deepEqual(x.slice([1]).toArray(), [[4, 5, 6]]);
    assert.deepEqual(x.slice([0, 3], [2, 0]).toArray(), [[], []]);
  });

  test('pad surrounds with zeros', () => {
    const arb = tensorArb(shapeArb(3, 3)).chain(([[shape, vals], dtype]) => fc.tuple(
      fc.constant([shape, vals, dtype] as const),
      fc.array(fc.nat(2), { minLength: shape.length, maxLength: shape.length }),
      fc.array(fc.nat(2), { minLength: shape.length, maxLength: shape.length })));
    fc.assert(fc.property(arb, ([[shape, vals, dtype], before, after]) => {
      const x = make(vals, shape, dtype);
      const outShape = shape.map((d, i) => d + before[i]! + after[i]!);
      const expected = pick(vals, shape, outShape, (index) => {
        const src = index.map((v, i) => v - before[i]!);
        return src.every((v, i) => v >= 0 && v < shape[i]!) ? src : null;
      });
      check(x.pad(before, after), outShape, expected, dtype, `pad [${shape}] [${before}] [${after}]`);
      x.dispose();
    }), numRuns(50));
  });

  test('concat along any axis (sizes may differ on it, including 0); stack along a new axis', () => {
    const arb = fc.tuple(shapeArb(3, 3, 1), fc.nat(), fc.array(fc.nat(3), { minLength: 1, maxLength: 3 }), fc.boolean(), fc.constantFrom(...DTYPES))
      .chain(([shape, ai, lens, neg, dtype]) => {
        const a = ai % shape.length;
        const shapes = lens.map((len) => shape.map((d, i) => (i === a ? len : d)));
        return fc.tuple(fc.constant({ shapes, a, neg, dtype }), fc.tuple(...shapes.map((s) => smallIntsArb(size(s), 1000))));
      });
    fc.assert(fc.property(arb, ([{ shapes, a, neg, dtype }, vals]) => {
      const xs = shapes.map((s, j) => make(vals[j]!, s, dtype));
      const outShape = shapes[0]!.map((d, i) => (i === a ? shapes.reduce((n, s) => n + s[a]!, 0) : d));
      const expected: number[] = [];
      forEachIndex(outShape, (index) => {
        let j = 0, at = index[a]!;
        while (at >= shapes[j]![a]!) { at -= shapes[j]![a]!; j++; }
        expected.push(vals[j]![ravel(index.map((v, i) => (i === a ? at : v)), shapes[j]!)]!);
      });
      const y = mt.concat(xs, spellAxis(a, outShape.length, neg));
      check(y, outShape, expected, dtype, `concat axis ${a}`);
      mt.dispose([...xs, y]);
    }), numRuns(50));

    const sArb = fc.tuple(shapeArb(3, 3), fc.integer({ min: 1, max: 3 }), fc.nat(), fc.boolean(), fc.constantFrom(...DTYPES))
      .chain(([shape, k, ai, neg, dtype]) => fc.tuple(fc.constant({ shape, a: ai % (shape.length + 1), neg, dtype }),
        fc.array(smallIntsArb(size(shape), 1000), { minLength: k, maxLength: k })));
    fc.assert(fc.property(sArb, ([{ shape, a, neg, dtype }, vals]) => {
      const xs = vals.map((v) => make(v, shape, dtype));
      const outShape = [...shape.slice(0, a), vals.length, ...shape.slice(a)];
      const expected: number[] = [];
      forEachIndex(outShape, (index) => expected.push(vals[index[a]!]![ravel(index.filter((_, i) => i !== a), shape)]!));
      const y = mt.stack(xs, spellAxis(a, shape.length + 1, neg));
      check(y, outShape, expected, dtype, `stack axis ${a} of [${shape}]`);
      mt.dispose([...xs, y]);
    }), numRuns(50));
  });

  test('chunk into equal sections, split by given sizes; the pieces concatenate back', () => {
    const arb = fc.tuple(shapeArb(3, 3, 1), fc.nat(), fc.oneof(
      fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 })).map(([count, len]) => ({ sections: count, lens: new Array<number>(count).fill(len) })),
      fc.array(fc.nat(3), { minLength: 1, maxLength: 4 }).map((lens) => ({ sections: null, lens }))), fc.constantFrom(...DTYPES))
      .chain(([base, ai, spec, dtype]) => {
        const a = ai % base.length;
        const shape = base.map((d, i) => (i === a ? spec.lens.reduce((s, v) => s + v, 0) : d));
        return fc.tuple(fc.constant({ shape, a, spec, dtype }), smallIntsArb(size(shape), 1000));
      });
    fc.assert(fc.property(arb, ([{ shape, a, spec, dtype }, vals]) => {
      const x = make(vals, shape, dtype);
      const parts = spec.sections !== null ? x.chunk(spec.sections, a) : mt.split(x, spec.lens, a - shape.length);
      assert.equal(parts.length, spec.lens.length);
      let start = 0;
      parts.forEach((p, j) => {
        const pShape = shape.map((d, i) => (i === a ? spec.lens[j]! : d));
        check(p, pShape, pick(vals, shape, pShape, (index) => index.map((v, i) => (i === a ? v + start : v))), dtype, `split piece ${j}`);
        start += spec.lens[j]!;
      });
      const back = mt.concat(parts, a);
      check(back, shape, vals, dtype, 'concat(split(x))');
      mt.dispose([x, ...parts, back]);
    }), numRuns(50));
    assert.deepEqual(mt.tensor([[1, 2, 3], [4, 5, 6]]).split([1, 2], 1).map((p) => p.toArray()), [[[1], [4]], [[2, 3], [5, 6]]]);
  });
});
