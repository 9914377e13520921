// Sums over the leading axes of a tensor in the SIMD engine's memory (sum(x, 0) of [N, E]: the
// gate's importance and load) run on the emitted colSums (register.ts `sum`,
// WasmMatmul.columnSums), checked bit for bit against reduce.ts's loop, which sums each column
// in float64 from 0 in row order and rounds once.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { reduce } from '../../src/backends/cpu/reduce.js';
import { WasmMatmul } from '../../src/backends/cpu/wasm/wasm-matmul.js';
import { MIN_ELEMENTS } from '../../src/backends/cpu/wasm/wasm-math.js';
import { HEAP_MIN_BYTES } from '../../src/backends/cpu/pool.js';
import { getBackend } from '../../src/tensor/engine.js';
import { lcgValues, mt, numRuns } from '../helpers.js';

type Float = 'float32' | 'float64';

test('sum over the leading axes on colSums gives reduce.ts\'s bits (float64 in row order, rounded once): both dtypes, NaN, ±∞, −0 and huge values, 2-D and 3-D, taken exactly where rows are whole vectors and the tensor is in the engine\'s memory', () => {
  mt.setBackend('cpu', { simd: true });
  if (mt.backendInfo().tensorsInWasmMemory !== true) { console.log('# skipped: tensors are not placed in the wasm memory here'); return; }
  const engine = (getBackend() as unknown as { simd: { engine(): WasmMatmul } }).simd.engine();
  const specials = [NaN, Infinity, -Infinity, -0, 0, 3.4e38, -3.4e38, 1e-45, 1e300];
  let taken = 0;
  fc.assert(fc.property(
    fc.constantFrom<Float>('float32', 'float64'), fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: 70 }),
    fc.integer({ min: 1, max: 3 }), fc.boolean(), fc.integer(),
    (dtype, rows, cols, lead, special, seed) => {
      const shape = lead === 1 ? [rows, cols] : [lead, rows, cols];
      const n = shape.reduce((a, b) => a * b, 1);
      const v = lcgValues(n, seed, dtype);
      if (special) for (let i = 0; i < n; i += 7) v[i] = specials[(i / 7) % specials.length]!;
      const axes = lead === 1 ? [0] : [0, 1];
      const expected = reduce('sum', v, shape, axes, dtype, cols);
      const x = mt.tensor(v, shape, { dtype });
      const before = engine.columnSumCalls;
      const y = mt.sum(x, axes);
      const got = Array.from(y.dataSync());
      // A tensor of HEAP_MIN_BYTES or more lives in the engine's memory (pool.ts); smaller ones are ordinary arrays.
      const onHeap = n * (dtype === 'float32' ? 4 : 8) >= HEAP_MIN_BYTES;
      const whole = (cols * (dtype === 'float32' ? 4 : 8)) % 16 === 0;
      const expectTaken = onHeap && whole && n >= MIN_ELEMENTS;
      assert.equal(engine.columnSumCalls - before, expectTaken ? 1 : 0, JSON.stringify({ dtype, shape, onHeap, whole }));
      if (expectTaken) taken++;
      assert.deepEqual(got, Array.from(expected), JSON.stringify({ dtype, shape, special }));
      mt.dispose([x, y]);
    }), numRuns(300));
  assert.ok(taken > 30, `${taken} sums on colSums`);
});
