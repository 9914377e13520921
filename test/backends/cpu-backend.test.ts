// The backend interface and the CPU backend's bookkeeping.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Handle, KernelTable } from '../../src/core/backend.js';
import { CpuBackend } from '../../src/backends/cpu/cpu-backend.js';
import type { GradRules } from '../../src/autograd/rules.js';
import { runOp } from '../../src/tensor/engine.js';
import { mt } from '../helpers.js';

test('a kernel table or gradient-rule table with a missing entry, or a recorded op without a rule, does not compile', () => {
  // Checked by `tsc --noEmit` (part of npm test): each @ts-expect-error must see an error.
  const partialKernels = {} as Omit<KernelTable<Handle>, 'matmul'>;
  // @ts-expect-error: 'matmul' is missing
  const kernels: KernelTable<Handle> = partialKernels;
  const partialRules = {} as Omit<GradRules, 'exp'>;
  // @ts-expect-error: the rule for 'exp' is missing
  const rules: GradRules = partialRules;
  assert.ok(kernels !== undefined && rules !== undefined);
  // runOp records only ops that have a rule: 'sign' has none (its gradient is zero almost everywhere).
  // @ts-expect-error: 'sign' is not a recorded op
  const record = () => runOp('sign', [mt.tensor([1])], {}, { shape: [1], dtype: 'float32' }, 'sign');
  assert.equal(typeof record, 'function');
});

test('handles are reference-counted; a freed handle cannot be read or freed again', () => {
  const be = new CpuBackend();
  const h = be.upload(new Float32Array([1, 2, 3]));
  const { cachedBytes, ...counts } = be.memory();
  assert.deepEqual(counts, { liveHandles: 1, bytes: 12, uploads: 1, readbacks: 0, kernelsCompiled: 0 });
  assert.equal(typeof cachedBytes, 'number');
  be.incRef(h);
  be.decRef(h);
  assert.deepEqual(Array.from(be.readSync(h, 'float32')), [1, 2, 3]);
  be.decRef(h);
  assert.equal(be.memory().liveHandles, 0);
  assert.equal(be.memory().bytes, 0);
  assert.throws(() => be.readSync(h, 'float32'), /read of freed handle/);
  assert.throws(() => be.decRef(h), /freed twice/);
  assert.throws(() => be.readSync(be.upload(new Int32Array(1)), 'float32'), /holds int32, not float32/);
});

test('upload copies: later changes to the source array do not reach the tensor', () => {
  const src = new Float64Array([1, 2]);
  const t = mt.tensor(src);
  src[0] = 99;
  assert.deepEqual(Array.from(t.dataSync()), [1, 2]);
  assert.equal(t.dtype, 'float64');
});

test('backendInfo says what really runs; the GPU is refused with a reason, never a silent fallback', () => {
  assert.deepEqual(
    { name: mt.backendInfo().name, mode: mt.backendInfo().mode, kernelClass: mt.backendInfo().kernelClass },
    { name: 'cpu', mode: 'cpu', kernelClass: 'typed-array' },
  );
  // WebGL2 needs a browser: in Node it is refused whatever the machine has.
  assert.throws(() => mt.setBackend('gpu', { mode: 'webgl2' }), /setBackend: the gpu backend \(mode 'webgl2'\) cannot start: WebGL2 needs a browser/);
  assert.throws(() => mt.setBackend('tpu' as 'cpu'), /unknown backend 'tpu'/);
  assert.equal(mt.backendInfo().name, 'cpu');
});

test('await data() reads back asynchronously and counts as a readback', async () => {
  const t = mt.tensor([[1, 2], [3, 4]], { dtype: 'int32' });
  const before = mt.memory().readbacks;
  const values = await t.data();
  assert.ok(values instanceof Int32Array);
  assert.deepEqual(Array.from(values), [1, 2, 3, 4]);
  assert.equal(mt.memory().readbacks, before + 1);
});
