// The CPU backend's caching allocator (src/backends/cpu/pool.ts): reused buffers come back
// zeroed and sized exactly, the cache stays under its limit, and tensors never share memory.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { BufferPool, sizeClass } from '../../src/backends/cpu/pool.js';
import { mt } from '../helpers.js';

test('size classes: at least the request, at most 25% more, and a class is its own class', () => {
  fc.assert(fc.property(fc.integer({ min: 16384, max: 2 ** 31 }), (bytes) => {
    const c = sizeClass(bytes);
    assert.ok(c >= bytes && c <= bytes * 1.25, `${bytes} → ${c}`);
    assert.equal(sizeClass(c), c);
  }), { numRuns: 2000 });
});

test('a freed buffer is handed out again zeroed, with the requested length and dtype', () => {
  const pool = new BufferPool();
  pool.limitBytes = 1 << 30;
  const a = pool.take('float32', 10_000);
  a.fill(7);
  pool.give(a);
  assert.equal(pool.cachedBytes, sizeClass(40_000));
  // 9,000 float64 = 72,000 bytes is another class; 9,500 float32 = 38,000 bytes shares a's.
  const b = pool.take('float64', 9_000);
  assert.equal(pool.hits, 0);
  const c = pool.take('float32', 9_500);
  assert.equal(pool.hits, 1);
  assert.equal(c.buffer, a.buffer);
  assert.ok(c instanceof Float32Array && c.length === 9_500);
  assert.ok(c.every((v) => v === 0), 'reused memory is zeroed');
  assert.equal(pool.cachedBytes, 0);
  const d = pool.take('int32', 9_500);
  assert.notEqual(d.buffer, a.buffer, 'a buffer in use is not handed out twice');
  assert.ok(b.length === 9_000);
});

test('the cache holds at most its limit; small and foreign arrays are not kept', () => {
  const pool = new BufferPool();
  pool.limitBytes = 100_000;
  const big = [pool.take('float32', 10_000), pool.take('float32', 10_000), pool.take('float32', 10_000)];
  for (const t of big) pool.give(t);
  assert.equal(pool.cachedBytes, 2 * sizeClass(40_000), 'the third would exceed the limit');
  pool.give(new Float32Array(100)); // under the minimum
  pool.give(new Float32Array(new ArrayBuffer(50_000), 4, 100)); // a view at an offset: not ours
  pool.give(new Float32Array(12_345)); // not a class size
  assert.equal(pool.cachedBytes, 2 * sizeClass(40_000));
  pool.empty();
  assert.equal(pool.cachedBytes, 0);
});

test('through the engine: results computed on reused buffers are exact, and freed bytes are cached, not live', () => {
  const base = mt.memory();
  const x = mt.tidy(() => mt.arange(50_000).reshape([250, 200]));
  for (let round = 0; round < 3; round++) {
    // Each round frees buffers the next one reuses; the values must not leak across.
    const y = mt.tidy(() => x.mul(2).add(1).sum(1));
    const v = y.dataSync();
    for (let i = 0; i < 250; i++) {
      const first = i * 200;
      assert.equal(v[i], 2 * (200 * first + (199 * 200) / 2) + 200, `row ${i}, round ${round}`);
    }
    y.dispose();
  }
  x.dispose();
  const after = mt.memory();
  assert.equal(after.liveHandles, base.liveHandles);
  assert.equal(after.bytes, base.bytes);
  assert.ok((after.cachedBytes ?? 0) > 0, 'freed results are cached for reuse');
});
