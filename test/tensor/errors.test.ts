// Every bad input is an error that names the op and what is wrong (shapes, axis, value),
// asserted by message.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { mt } from '../helpers.js';

const f32 = (shape: number[]) => mt.zeros(shape);
const f64 = (shape: number[]) => mt.zeros(shape, { dtype: 'float64' });
const i32 = (values: number[], shape?: number[]) => mt.tensor(values, shape ?? [values.length], { dtype: 'int32' });

describe('shape errors', () => {
  test('broadcasting: the message names the op and both shapes', () => {
    const a = f32([2, 3]), b = f32([4]);
    assert.throws(() => mt.add(a, b), /^Error: add: shapes \[2, 3\] and \[4\] cannot be broadcast together \(dimension -1 is 3 vs 4\)$/);
    assert.throws(() => a.mul(f32([3, 3])), /mul: shapes \[2, 3\] and \[3, 3\] cannot be broadcast together \(dimension -2 is 2 vs 3\)/);
    assert.throws(() => mt.sub(b, a), /sub: shapes \[4\] and \[2, 3\] cannot be broadcast/);
    const ops = { div: mt.div, pow: mt.pow, maximum: mt.maximum, minimum: mt.minimum, equal: mt.equal, notEqual: mt.notEqual,
      less: mt.less, lessEqual: mt.lessEqual, greater: mt.greater, greaterEqual: mt.greaterEqual };
    for (const [name, op] of Object.entries(ops)) {
      assert.throws(() => op(a, b), new RegExp(`^Error: ${name}: shapes \\[2, 3\\] and \\[4\\] cannot be broadcast together`));
    }
    assert.throws(() => mt.where(i32([1, 0]), a, a), /where: shapes \[2\] and \[2, 3\] cannot be broadcast/);
    assert.throws(() => mt.where(i32([1, 0, 1]), a, b), /where: shapes \[2, 3\] and \[4\] cannot be broadcast/);
    assert.throws(() => a.broadcastTo([3, 3]), /broadcastTo: shapes \[2, 3\] and \[3, 3\] cannot be broadcast/);
    assert.throws(() => a.broadcastTo([3]), /broadcastTo: a tensor of shape \[2, 3\] cannot be broadcast to \[3\]/);
  });

  test('matmul: inner dimensions, dtypes, batch dimensions, rank 0', () => {
    assert.throws(() => mt.matmul(f32([2, 3]), f32([4, 5])), /^Error: matmul: inner dimensions differ: a \[2, 3\] has 3 columns, b \[4, 5\] has 4 rows$/);
    assert.throws(() => mt.matmul(f32([3, 2]), f32([3, 5]), { transposeA: true, transposeB: true }), /matmul: inner dimensions differ: a \[3, 2\]ᵀ has 3 columns, b \[3, 5\]ᵀ has 5 rows/);
    assert.throws(() => mt.matmul(f32([3]), f32([4])), /matmul: inner dimensions differ: a \[3\] contributes 3, b \[4\] contributes 4/);
    assert.throws(() => mt.matmul(f32([2, 3]), f64([3, 2])), /^Error: matmul: dtype mismatch, a is float32 and b is float64$/);
    assert.throws(() => mt.matmul(f64([2, 3]), f32([3, 2])), /matmul: dtype mismatch, a is float64 and b is float32/);
    assert.throws(() => mt.matmul(f32([2, 2, 3]), f32([3, 3, 4])), /matmul \(batch dimensions\): shapes \[2\] and \[3\] cannot be broadcast/);
    assert.throws(() => mt.matmul(f32([]), f32([2])), /matmul: both operands need at least 1 dimension, got shapes \[\] and \[2\]/);
    assert.throws(() => mt.matmul(f32([3]), f32([3, 2]), { transposeA: true }), /matmul: a 1-D operand cannot be transposed/);
  });

  test('reshape to an incompatible size, and the other movement ops', () => {
    const x = f32([2, 3]);
    assert.throws(() => x.reshape([4]), /^Error: reshape: cannot reshape a tensor of shape \[2, 3\] \(6 elements\) into \[4\] \(4 elements\)$/);
    assert.throws(() => x.reshape([4, -1]), /reshape: cannot reshape a tensor of shape \[2, 3\] \(6 elements\) into \[4, -1\]/);
    assert.throws(() => x.reshape([-1, -1]), /reshape: only one dimension can be -1, got \[-1, -1\]/);
    assert.throws(() => x.reshape([-2, -3]), /reshape: shape must hold non-negative integers, got \[-2, -3\]/);
    assert.throws(() => x.reshape([1.5, 4]), /reshape: shape must hold non-negative integers, got \[1.5, 4\]/);
    assert.throws(() => mt.concat([x, f32([2, 4])], 0), /concat: xs\[1\] has shape \[2, 4\], incompatible with xs\[0\] \[2, 3\] along axis 0/);
    assert.throws(() => mt.concat([x, f64([2, 3])]), /concat: dtype mismatch, xs\[0\] is float32 and xs\[1\] is float64/);
    assert.throws(() => mt.concat([]), /concat: needs a non-empty array of tensors/);
    assert.throws(() => mt.concat([f32([])]), /concat: zero-dimensional tensors cannot be concatenated \(use stack\)/);
    assert.throws(() => mt.stack([x, f32([3, 2])]), /stack: xs\[1\] has shape \[3, 2\] but xs\[0\] has \[2, 3\]/);
    assert.throws(() => x.split(0, 1), /split: argument 'splitSize' must be an integer >= 1, got 0/);
    assert.throws(() => x.chunk(0, 1), /chunk: argument 'chunks' must be an integer >= 1, got 0/);
    assert.throws(() => x.split([1, 1], 1), /split: sizes \[1, 1\] do not add up to 3, the size of axis 1/);
    assert.throws(() => x.slice([0, 2], [2, 2]), /slice: begin \[0, 2\] with size \[2, 2\] is out of range for shape \[2, 3\] \(axis 1\)/);
    assert.throws(() => x.slice([-3]), /slice: begin \[-3\] with size \[\] is out of range for shape \[2, 3\] \(axis 0\)/);
    assert.throws(() => x.slice([0, 0, 0]), /slice: begin \[0, 0, 0\] \/ size \[\] have more entries than the rank of shape \[2, 3\]/);
    assert.throws(() => x.slice([0.5]), /slice: argument 'begin' must be an integer, got 0.5/);
    assert.throws(() => x.pad([1], [1]), /pad: before \[1\] and after \[1\] need one entry per axis of shape \[2, 3\]/);
    assert.throws(() => x.pad([0, -1], [0, 0]), /pad: argument 'before' must be an integer >= 0, got -1/);
    assert.throws(() => x.permute([0]), /permute: perm \[0\] must list all 2 axes of a tensor of shape \[2, 3\]/);
    assert.throws(() => x.permute([1, 1]), /permute: perm \[1, 1\] repeats an axis/);
  });
});

describe('axis errors', () => {
  test('axis out of range names the op, the axis and the rank', () => {
    const x = f32([2, 3]);
    assert.throws(() => x.sum(2), /^Error: sum: axis 2 is out of range for a tensor of rank 2 \(expected -2 to 1\)$/);
    assert.throws(() => x.sum([0, -3]), /sum: axis -3 is out of range for a tensor of rank 2/);
    assert.throws(() => x.mean(5, true), /mean: axis 5 is out of range for a tensor of rank 2/);
    assert.throws(() => x.max(-3), /max: axis -3 is out of range/);
    assert.throws(() => x.min(2), /min: axis 2 is out of range/);
    assert.throws(() => x.logsumexp(2), /logsumexp: axis 2 is out of range for a tensor of rank 2/);
    assert.throws(() => x.argmax(2), /argmax: axis 2 is out of range for a tensor of rank 2/);
    assert.throws(() => x.argmin(-3), /argmin: axis -3 is out of range/);
    assert.throws(() => x.softmax(2), /^Error: softmax: axis 2 is out of range for a tensor of rank 2 \(expected -2 to 1\)$/);
    assert.throws(() => x.logSoftmax(-3), /logSoftmax: axis -3 is out of range for a tensor of rank 2/);
    assert.throws(() => mt.concat([x, x], 2), /^Error: concat: axis 2 is out of range for a tensor of rank 2/);
    assert.throws(() => mt.stack([x, x], 4), /stack: axis 4 is out of range for a tensor of rank 3/);
    assert.throws(() => x.permute([0, 2]), /^Error: permute: perm 2 is out of range for a tensor of rank 2/);
    assert.throws(() => x.gather(2, i32([0, 0, 0, 0], [2, 2])), /^Error: gather: axis 2 is out of range for a tensor of rank 2/);
    assert.throws(() => x.indexSelect(-3, i32([0])), /indexSelect: axis -3 is out of range for a tensor of rank 2/);
    assert.throws(() => x.split(1, 2), /split: axis 2 is out of range/);
    assert.throws(() => x.unsqueeze(4), /unsqueeze: axis 4 is out of range for a tensor of rank 3/);
    assert.throws(() => x.squeeze(2), /squeeze: axis 2 is out of range/);
    assert.throws(() => x.transpose(0, 2), /transpose: axis1 2 is out of range/);
    assert.throws(() => x.flatten(0, 3), /flatten: endAxis 3 is out of range/);
    assert.throws(() => x.flatten(1, 0), /flatten: startAxis 1 comes after endAxis 0/);
  });

  test('non-integer and repeated axes', () => {
    const x = f32([2, 3]);
    assert.throws(() => x.sum(0.5), /sum: axis must be an integer, got 0.5/);
    assert.throws(() => x.sum(NaN), /sum: axis must be an integer, got NaN/);
    assert.throws(() => x.sum([1, -1]), /sum: axis 1 appears twice in \[1, -1\]/);
    assert.throws(() => x.softmax(0.5), /softmax: axis must be an integer, got 0.5/);
  });

  test('reducing an empty axis with max/min/argmax', () => {
    const e = f32([2, 0]);
    assert.throws(() => e.max(1), /max: cannot reduce over axis 1 of size 0 \(shape \[2, 0\]\)/);
    assert.throws(() => e.min(), /min: cannot reduce over axis 1 of size 0/);
    assert.throws(() => e.argmax(1), /argmax: cannot reduce over axis 1 of size 0/);
    assert.throws(() => e.argmin(), /argmin: cannot reduce an empty tensor/);
  });
});

describe('value errors', () => {
  test('topk: k negative, too large, non-integer or NaN', () => {
    const x = f32([2, 4]);
    for (const k of [-1, 5, 1.5, NaN, Infinity]) {
      assert.throws(() => x.topk(k), new RegExp(`^Error: topk: k must be an integer from 0 to 4 \\(the size of the last axis of shape \\[2, 4\\]\\), got ${String(k)}$`));
    }
    assert.throws(() => mt.topk(f32([3]), 4, { largest: false }), /topk: k must be an integer from 0 to 3 .* got 4/);
  });

  test('tensor(): wrong number of values for the shape, ragged arrays, bad elements', () => {
    assert.throws(() => mt.tensor([1, 2, 3, 4, 5], [2, 3]), /^Error: tensor: got 5 values for shape \[2, 3\], which needs 6$/);
    assert.throws(() => mt.tensor(new Float32Array(4), [3]), /tensor: got 4 values for shape \[3\], which needs 3/);
    assert.throws(() => mt.tensor([[1, 2], [3]]), /^Error: tensor: ragged nested array at index \[1\]: expected 2 elements, got 1$/);
    assert.throws(() => mt.tensor([[1, 2], 3] as unknown as number[][]), /tensor: ragged nested array at index \[1\]: expected 2 elements, got a number/);
    assert.throws(() => mt.tensor([[1], [[2]]] as unknown as number[][]), /tensor: ragged nested array at index \[1, 0\]: expected a number, got an array/);
    assert.throws(() => mt.tensor([[[1, 2]], [[3, 4, 5]]]), /tensor: ragged nested array at index \[1, 0\]: expected 2 elements, got 3/);
    assert.throws(() => mt.tensor([[], [1]]), /tensor: ragged nested array at index \[1\]: expected 0 elements, got 1/);
    assert.throws(() => mt.tensor(['a'] as unknown as number[]), /tensor: ragged nested array at index \[0\]: expected a number, got string/);
    assert.throws(() => mt.tensor(null as unknown as number[]), /tensor: values must be a number, an array or a typed array, got null/);
    assert.throws(() => mt.tensor([1], { dtype: 'int64' as mt.DType }), /tensor: unknown dtype 'int64' \(expected 'float32', 'float64' or 'int32'\)/);
  });

  test('non-finite or non-integer values where they are not allowed', () => {
    assert.throws(() => mt.tensor([1, NaN], { dtype: 'int32' }), /^Error: tensor: element 1 \(NaN\) is not representable as int32$/);
    assert.throws(() => mt.tensor([Infinity], { dtype: 'int32' }), /tensor: element 0 \(Infinity\) is not representable as int32/);
    assert.throws(() => mt.tensor([0, 0, 1.5], { dtype: 'int32' }), /tensor: element 2 \(1.5\) is not representable as int32/);
    assert.throws(() => mt.tensor([2 ** 31], { dtype: 'int32' }), /tensor: element 0 \(2147483648\) is not representable as int32/);
    assert.throws(() => mt.tensor(new Float64Array([0.5]), { dtype: 'int32' }), /tensor: element 0 \(0.5\) is not representable as int32/);
    assert.throws(() => mt.full([2], NaN, { dtype: 'int32' }), /full: value NaN is not representable as int32/);
    assert.throws(() => mt.full([2], 0.5, { dtype: 'int32' }), /full: value 0.5 is not representable as int32/);
    assert.throws(() => mt.arange(0, Infinity), /^Error: arange: end must be a finite number, got Infinity$/);
    assert.throws(() => mt.arange(NaN), /arange: (start|end) must be a finite number, got NaN/);
    assert.throws(() => mt.arange(0, 5, -Infinity), /arange: step must be a finite number, got -Infinity/);
    assert.throws(() => mt.arange(0, 5, 0), /arange: step must be nonzero/);
    assert.throws(() => mt.arange(0, 5, -1), /arange: step -1 never reaches end 5 from start 0/);
    assert.throws(() => mt.tensor([1, NaN, 2], { dtype: 'float64' }).int(), /^Error: cast: cannot convert the non-finite value NaN to int32$/);
    assert.throws(() => mt.cast(mt.tensor([-Infinity]), 'int32'), /cast: cannot convert the non-finite value -Infinity to int32/);
    assert.throws(() => mt.cast(f32([1]), 'bool' as mt.DType), /cast: unknown dtype 'bool'/);
    assert.throws(() => f32([1]).add(NaN), /add: argument 'b' must be a number, got NaN/);
    assert.throws(() => mt.add(1, 2), /add: at least one operand must be a Tensor/);
    assert.throws(() => mt.normal([2], 0, -1), /normal: std must be a finite non-negative number, got -1/);
    assert.throws(() => mt.manualSeed(-1), /manualSeed: seed must be a non-negative safe integer, got -1/);
    assert.throws(() => mt.manualSeed(1.5), /manualSeed: seed must be a non-negative safe integer, got 1.5/);
    assert.throws(() => mt.rand([2], { dtype: 'int32' }), /rand: dtype must be float32 or float64, got int32/);
    assert.throws(() => mt.clamp(f32([2]), 1, 0), /clamp: min 1 is greater than max 0/);
    assert.throws(() => mt.clamp(f32([2])), /clamp: give at least one of min and max/);
  });

  test('shapes with negative, non-integer or NaN dimensions', () => {
    for (const [make, name] of [[mt.zeros, 'zeros'], [mt.ones, 'ones'], [mt.randn, 'randn'], [mt.rand, 'rand']] as const) {
      assert.throws(() => make([2, -1]), new RegExp(`^Error: ${name}: shape must hold non-negative integers, got \\[2, -1\\]$`));
      assert.throws(() => make([1.5]), new RegExp(`${name}: shape must hold non-negative integers, got \\[1.5\\]`));
      assert.throws(() => make([NaN, 2]), new RegExp(`${name}: shape must hold non-negative integers, got \\[NaN, 2\\]`));
      assert.throws(() => make([Infinity]), new RegExp(`${name}: shape must hold non-negative integers, got \\[Infinity\\]`));
    }
    assert.throws(() => mt.full([-3], 1), /full: shape must hold non-negative integers, got \[-3\]/);
    assert.throws(() => mt.zeros([2], { dtype: 'half' as mt.DType }), /^Error: zeros: unknown dtype 'half'/);
    assert.throws(() => mt.onesLike(f32([2]), { dtype: 'half' as mt.DType }), /^Error: onesLike: unknown dtype 'half'/);
    assert.throws(() => mt.ones([2], { dtype: 'int32', requiresGrad: true }), /requiresGrad: only float tensors can require gradients/);
    assert.throws(() => mt.tensor([1, 2], [2, -1]), /tensor: shape must hold non-negative integers, got \[2, -1\]/);
    assert.throws(() => mt.tensor([1, 2], [NaN]), /tensor: shape must hold non-negative integers, got \[NaN\]/);
    assert.throws(() => mt.zeros(3 as unknown as number[]), /zeros: shape must be an array of non-negative integers, got 3/);
    assert.throws(() => f32([2]).broadcastTo([2, -2]), /broadcastTo: shape must hold non-negative integers, got \[2, -2\]/);
  });

  test('dropout p outside [0, 1]; mean/softmax/logsumexp/dropout of int32', () => {
    const x = f32([3]);
    for (const p of [-0.1, 1.5, NaN, Infinity]) {
      assert.throws(() => mt.dropout(x, p), new RegExp(`^Error: dropout: p must be a probability in \\[0, 1\\], got ${String(p)}$`));
    }
    const i = i32([1, 2]);
    assert.throws(() => i.mean(), /^Error: mean: argument 'x' must be a float tensor, got int32 \(cast it first\)$/);
    assert.throws(() => i.softmax(), /softmax: argument 'x' must be a float tensor, got int32/);
    assert.throws(() => i.logSoftmax(), /logSoftmax: argument 'x' must be a float tensor, got int32/);
    assert.throws(() => i.logsumexp(), /logsumexp: argument 'x' must be a float tensor, got int32/);
    assert.throws(() => i.dropout(0.5), /dropout: argument 'x' must be a float tensor, got int32/);
  });
});

describe('index errors', () => {
  test('out-of-range indices in gather / scatterAdd / indexSelect / indexAdd / oneHot', () => {
    const x = f32([2, 3]);
    assert.throws(() => x.gather(1, i32([0, 3], [2, 1])), /^Error: gather: index 3 is out of range for axis 1 of size 3$/);
    assert.throws(() => x.gather(0, i32([-1, 0, 0], [1, 3])), /gather: index -1 is out of range for axis 0 of size 2/);
    assert.throws(() => x.scatterAdd(1, i32([5], [1, 1]), f32([1, 1])), /scatterAdd: index 5 is out of range for axis 1 of size 3/);
    // Index rows matching x's (the matrix fast path): the same errors.
    assert.throws(() => x.gather(1, i32([0, 1, -1, 2], [2, 2])), /^Error: gather: index -1 is out of range for axis 1 of size 3$/);
    assert.throws(() => x.scatterAdd(1, i32([0, 3], [2, 1]), f32([2, 1])), /^Error: scatterAdd: index 3 is out of range for axis 1 of size 3$/);
    assert.throws(() => x.indexSelect(0, i32([0, 2])), /^Error: indexSelect: index 2 is out of range for axis 0 of size 2$/);
    assert.throws(() => x.indexSelect(1, i32([-1])), /indexSelect: index -1 is out of range for axis 1 of size 3/);
    assert.throws(() => x.indexAdd(0, i32([2]), f32([1, 3])), /indexAdd: index 2 is out of range for axis 0 of size 2/);
    assert.throws(() => i32([0, 4]).oneHot(4), /^Error: oneHot: index 4 is out of range for depth 4$/);
    assert.throws(() => i32([-1]).oneHot(3), /oneHot: index -1 is out of range for depth 3/);
  });

  test('index tensors must be int32 (and shaped right)', () => {
    const x = f32([2, 3]);
    assert.throws(() => x.gather(1, f32([2, 1])), /^Error: gather: index must be an int32 tensor, got float32$/);
    assert.throws(() => x.scatterAdd(1, f64([2, 1]), f32([2, 1])), /scatterAdd: index must be an int32 tensor, got float64/);
    assert.throws(() => x.indexSelect(0, f32([1])), /indexSelect: index must be an int32 tensor, got float32/);
    assert.throws(() => x.indexAdd(0, f32([1]), f32([1, 3])), /indexAdd: index must be an int32 tensor, got float32/);
    assert.throws(() => mt.oneHot(f32([2]), 3), /oneHot: index must be an int32 tensor, got float32/);
    assert.throws(() => mt.oneHot(i32([0]), 0), /oneHot: argument 'numClasses' must be an integer >= 1, got 0/);
    assert.throws(() => x.gather(1, i32([0, 0], [2])), /gather: index of shape \[2\] must have the same rank as x \[2, 3\]/);
    assert.throws(() => x.gather(1, i32([0, 0, 0], [3, 1])), /gather: index of shape \[3, 1\] is larger than x \[2, 3\] on axis 0/);
    assert.throws(() => x.scatterAdd(1, i32([0, 0], [2, 1]), f32([2, 2])), /scatterAdd: src of shape \[2, 2\] must have the shape of index \[2, 1\]/);
    assert.throws(() => x.scatterAdd(1, i32([0, 0], [2, 1]), f64([2, 1])), /scatterAdd: dtype mismatch, x is float32 and src is float64/);
    assert.throws(() => x.indexSelect(0, i32([0, 0], [1, 2])), /indexSelect: index must be 1-D, got shape \[1, 2\]/);
    assert.throws(() => x.indexAdd(0, i32([0]), f32([2, 3])), /indexAdd: src has shape \[2, 3\] but x \[2, 3\] with 1 indices on axis 0 needs \[1, 3\]/);
  });
});

describe('lifetime, gradients and backends', () => {
  test('using a disposed tensor names the op, the argument and the shape', () => {
    const x = f32([2, 3]);
    const id = x.id;
    x.dispose();
    assert.throws(() => x.add(1), new RegExp(`^Error: add: argument 'a' \\(tensor #${id}, shape \\[2, 3\\]\\) was disposed$`));
    assert.throws(() => mt.mul(f32([1]), x), new RegExp(`mul: argument 'b' \\(tensor #${id}, shape \\[2, 3\\]\\) was disposed`));
    assert.throws(() => x.sum(), /sum: argument 'x' \(tensor #\d+, shape \[2, 3\]\) was disposed/);
    assert.throws(() => mt.matmul(x, f32([3, 1])), /matmul: argument 'a' .* was disposed/);
    assert.throws(() => mt.concat([f32([2, 3]), x]), /concat: argument 'xs\[1\]' .* was disposed/);
    assert.throws(() => x.dataSync(), new RegExp(`dataSync: tensor #${id} of shape \\[2, 3\\] was disposed`));
    assert.throws(() => x.toArray(), /dataSync: tensor #\d+ of shape \[2, 3\] was disposed/);
    assert.throws(() => x.detach(), /detach: tensor #\d+ of shape \[2, 3\] was disposed/);
    assert.equal(String(x), 'tensor(<disposed>, shape=[2, 3], dtype=float32)');
    x.dispose(); // disposing twice is a no-op
    assert.throws(() => mt.add(f32([1]), [1] as unknown as mt.Tensor), /add: argument 'b' must be a Tensor, got an array/);
  });

  test('requiresGrad on an int32 tensor', () => {
    const i = i32([1, 2]);
    assert.throws(() => { i.requiresGrad = true; }, /^Error: requiresGrad: only float tensors can require gradients, this one is int32$/);
    assert.throws(() => i.requiresGrad_(), /requiresGrad: only float tensors can require gradients, this one is int32/);
    assert.throws(() => mt.tensor([1], { dtype: 'int32', requiresGrad: true }), /requiresGrad: only float tensors can require gradients, this one is int32/);
    assert.throws(() => mt.arange(3, undefined, 1, { requiresGrad: true }), /requiresGrad: only float tensors/);
    assert.throws(() => f32([2]).item(), /item: only one-element tensors can be converted to a number, this one has shape \[2\]/);
  });

  test("setBackend('gpu') refuses with a reason; unknown backends too", () => {
    assert.throws(() => mt.setBackend('gpu', { mode: 'webgl2' }), /^Error: setBackend: the gpu backend \(mode 'webgl2'\) cannot start: WebGL2 needs a browser \(a canvas\)\. In Node use/);
    assert.throws(() => mt.setBackend('gpu', { mode: 'cuda' as 'webgpu' }), /^Error: setBackend: unknown gpu mode 'cuda' \(expected 'headlessgl', 'webgpu' or 'webgl2'\)$/);
    assert.throws(() => mt.setBackend('tpu' as mt.BackendName), /setBackend: unknown backend 'tpu' \(registered: 'cpu', 'gpu'/);
    mt.setBackend('cpu');
    assert.equal(mt.backendInfo().name, 'cpu');
  });

  test('setBackend names a misspelt or foreign option instead of starting with the defaults', () => {
    const threads = mt.backendInfo().threads as number;
    mt.setBackend('cpu', { threads: 1 });
    assert.throws(() => mt.setBackend('cpu', { thread: 2 } as never), /^Error: setBackend\('cpu', \{ thread \}\): unknown option 'thread' \(the cpu backend takes 'threads', 'simd'\)$/);
    assert.throws(() => mt.setBackend('cpu', { mode: 'webgpu' } as never), /unknown option 'mode' \(the cpu backend takes 'threads', 'simd'\)/);
    assert.throws(() => mt.setBackend('gpu', { threads: 2 } as never), /^Error: setBackend\('gpu', \{ threads \}\): unknown option 'threads' \(the gpu backend takes 'mode'\)$/);
    assert.throws(() => mt.setBackend('cpu', 2 as never), /^Error: setBackend\('cpu', options\): options must be an object, got 2$/);
    assert.throws(() => mt.setBackend('cpu', [] as never), /options must be an object, got an array/);
    // Refused before anything changed: still the cpu backend, still one thread.
    assert.equal(mt.backendInfo().name, 'cpu');
    assert.equal(mt.backendInfo().threads, 1);
    mt.setBackend('cpu', {});
    mt.setBackend('cpu', undefined);
    assert.equal(mt.backendInfo().name, 'cpu');
    mt.setBackend('cpu', { threads });
  });
});
