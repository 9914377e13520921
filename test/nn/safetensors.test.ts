// safetensors checkpoints: round trips of every dtype, the reference writer's exact bytes,
// interop with files written by PyTorch (fixtures from scripts/fixtures/
// make_safetensors_fixtures.py), every kind of corrupt file rejected with a message that
// names it, a fuzz of the reader, and atomic saves.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, mock, test } from 'node:test';
import fc from 'fast-check';
import { decodeLittleEndian, encodeLittleEndian, MAX_HEADER_BYTES } from '../../src/nn/safetensors.js';
import { mt, numRuns } from '../helpers.js';

const FIXTURES = 'test/fixtures/safetensors';
const scratch = fs.mkdtempSync(join(tmpdir(), 'mixtape-safetensors-'));
after(() => fs.rmSync(scratch, { recursive: true, force: true }));

const utf8 = (s: string) => new TextEncoder().encode(s);

/** A file from a header (object or raw JSON text) and data bytes; `length` overrides N. */
function build(header: unknown, data: ArrayLike<number> = [], length?: bigint): Uint8Array {
  const json = utf8(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, length ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

/** Same-valued (NaN and -0 aware), same dtype, same shape. */
function assertSameTensor(actual: mt.Tensor | undefined, expected: mt.Tensor, what: string): void {
  assert.ok(actual instanceof mt.Tensor, `${what}: missing`);
  assert.equal(actual.dtype, expected.dtype, `${what}: dtype`);
  assert.deepEqual(actual.shape, expected.shape, `${what}: shape`);
  const a = actual.dataSync(), e = expected.dataSync();
  assert.equal(a.length, e.length, `${what}: size`);
  for (let i = 0; i < e.length; i++) assert.ok(Object.is(a[i], e[i]), `${what}[${i}]: got ${a[i]}, expected ${e[i]}`);
}

function assertParseError(bytes: Uint8Array, pattern: RegExp): void {
  assert.throws(() => mt.parseSafetensors(bytes, 'corrupt.safetensors'), (error: unknown) => {
    assert.ok(error instanceof Error && Object.getPrototypeOf(error) === Error.prototype, `not a plain Error: ${String(error)}`);
    assert.ok(error.message.startsWith('parseSafetensors: corrupt.safetensors: '), `unprefixed message: ${error.message}`);
    assert.match(error.message, pattern);
    return true;
  });
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const entry = (dtype: string, shape: unknown, offsets: unknown) => ({ dtype, shape, data_offsets: offsets });

function everyDtype(): Record<string, mt.Tensor> {
  return {
    f32: mt.tensor(new Float32Array([1.5, -0, NaN, Infinity, -Infinity, 3.4028234663852886e38, 1.401298464324817e-45, Math.fround(0.1)]), [2, 4]),
    f64: mt.tensor(new Float64Array([Math.PI, -0, NaN, -Infinity, Number.MAX_VALUE, 5e-324]), [3, 1, 2]),
    i32: mt.tensor(new Int32Array([-2147483648, 2147483647, 0, -1, 7, 123456789]), [6]),
    f32_scalar: mt.tensor(new Float32Array([-2.5]), []),
    f64_scalar: mt.tensor(new Float64Array([1 / 3]), []),
    i32_scalar: mt.tensor(new Int32Array([42]), []),
    f32_empty: mt.zeros([0, 3]),
    f64_empty: mt.zeros([4, 0], { dtype: 'float64' }),
    i32_empty: mt.zeros([0], { dtype: 'int32' }),
  };
}

describe('safetensors: round trips', () => {
  test('every dtype, 0-d and empty tensors, special values and metadata, in memory and on disk', () => {
    const dict = everyDtype();
    const metadata = { format: 'pt', epoch: '3', note: 'ünïcode ✓ "quoted"\n', '': 'empty key' };
    const fromBytes = mt.parseSafetensors(mt.serializeSafetensors(dict, metadata));
    const path = join(scratch, 'round-trip.safetensors');
    mt.saveSafetensors(path, dict, metadata);
    const fromFile = mt.loadSafetensors(path);
    for (const loaded of [fromBytes, fromFile]) {
      assert.deepEqual(Object.keys(loaded.tensors).sort(), Object.keys(dict).sort());
      for (const [name, t] of Object.entries(dict)) assertSameTensor(loaded.tensors[name], t, name);
      assert.deepEqual(loaded.metadata, metadata);
    }
    assert.deepEqual(fs.readdirSync(scratch).filter((f) => f.includes('round-trip')), ['round-trip.safetensors']);
  });

  test('no metadata and an empty state dict', () => {
    const loaded = mt.parseSafetensors(mt.serializeSafetensors({}));
    assert.deepEqual(loaded, { tensors: {}, metadata: {} });
  });

  test('names that are not plain identifiers: "__proto__", "", integer-like, astral and control characters', () => {
    const dict: Record<string, mt.Tensor> = {};
    const names = ['__proto__', '', '10', '2', 'tab\tnew\nline', '😀', '\uFFFD', 'constructor'];
    names.forEach((name, i) => Object.defineProperty(dict, name, { value: mt.full([1], i), enumerable: true }));
    const meta: Record<string, string> = {};
    Object.defineProperty(meta, '__proto__', { value: 'kept', enumerable: true });
    const loaded = mt.parseSafetensors(mt.serializeSafetensors(dict, meta));
    assert.deepEqual(Object.keys(loaded.tensors).sort(), [...names].sort());
    names.forEach((name, i) => assert.equal(Object.getOwnPropertyDescriptor(loaded.tensors, name)?.value.item(), i, name));
    assert.equal(Object.getPrototypeOf(loaded.tensors), Object.prototype);
    assert.equal(Object.getOwnPropertyDescriptor(loaded.metadata, '__proto__')?.value, 'kept');
  });

  test('property: random state dicts survive serialize → parse', () => {
    const tensorArb = fc.oneof(
      fc.tuple(fc.constant('float32' as const), fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 3 })),
      fc.tuple(fc.constant('float64' as const), fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 3 })),
      fc.tuple(fc.constant('int32' as const), fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 3 })),
    ).chain(([dtype, shape]) => {
      const n = shape.reduce((a, b) => a * b, 1);
      const value = dtype === 'float32' ? fc.float() : dtype === 'float64' ? fc.double() : fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 });
      return fc.array(value, { minLength: n, maxLength: n }).map((values) => ({ dtype, shape, values }));
    });
    fc.assert(fc.property(
      fc.dictionary(fc.string({ unit: 'binary', maxLength: 6 }).filter((s) => s !== '__metadata__'), tensorArb, { maxKeys: 6 }),
      fc.dictionary(fc.string({ unit: 'binary', maxLength: 6 }), fc.string({ unit: 'binary', maxLength: 6 }), { maxKeys: 3 }),
      (spec, metadata) => {
        const dict: Record<string, mt.Tensor> = {};
        for (const [name, { dtype, shape, values }] of Object.entries(spec)) {
          const typed = dtype === 'float32' ? new Float32Array(values) : dtype === 'float64' ? new Float64Array(values) : new Int32Array(values);
          Object.defineProperty(dict, name, { value: mt.tensor(typed, shape), enumerable: true });
        }
        const bytes = mt.serializeSafetensors(dict, metadata);
        const loaded = mt.parseSafetensors(bytes);
        assert.deepEqual(Object.keys(loaded.tensors).sort(), Object.keys(dict).sort());
        for (const [name, t] of Object.entries(dict)) assertSameTensor(Object.getOwnPropertyDescriptor(loaded.tensors, name)?.value, t, name);
        assert.deepEqual({ ...loaded.metadata }, { ...metadata });
        // Writing what was read gives the same bytes.
        assert.deepEqual(mt.serializeSafetensors(loaded.tensors, loaded.metadata), bytes);
      },
    ), numRuns(60));
  });

  test('unaligned data: a header length that is not a multiple of 8, and bytes at an odd byteOffset', () => {
    const values = new Float64Array([1.25, -7, 1e-310]);
    const ints = new Int32Array([5, -6]);
    const data = new Uint8Array([...new Uint8Array(values.buffer), ...new Uint8Array(ints.buffer)]);
    const file = build({ a: entry('F64', [3], [0, 24]), b: entry('I32', [2], [24, 32]) }, data);
    assert.notEqual((file.length - data.length) % 8, 0, 'the data must start unaligned for this test');
    const padded = new Uint8Array(file.length + 3);
    padded.set(file, 3);
    for (const bytes of [file, padded.subarray(3)]) {
      const { tensors } = mt.parseSafetensors(bytes);
      assert.deepEqual(Array.from(tensors.a!.dataSync()), Array.from(values));
      assert.deepEqual(Array.from(tensors.b!.dataSync()), Array.from(ints));
    }
  });

  test('little-endian explicitly: the DataView path (big-endian hosts) agrees with the typed-array path', () => {
    const cases = [new Float32Array([1.5, -0, NaN, 3e38]), new Float64Array([Math.PI, -1e-300]), new Int32Array([-2147483648, 258])];
    for (const values of cases) {
      const dtype = values instanceof Float32Array ? 'float32' : values instanceof Float64Array ? 'float64' : 'int32';
      const fast = new Uint8Array(values.byteLength + 1), slow = new Uint8Array(values.byteLength + 1);
      encodeLittleEndian(values, fast, 1, true);
      encodeLittleEndian(values, slow, 1, false);
      assert.deepEqual(slow, fast, dtype);
      for (const hostLE of [true, false]) {
        const back = decodeLittleEndian(fast.subarray(1), dtype, hostLE);
        assert.equal(back.constructor, values.constructor);
        assert.ok(Array.from(back).every((v, i) => Object.is(v, values[i])), `${dtype}, hostLE=${hostLE}`);
      }
    }
    // The byte order on disk, spelled out: 258 = 0x00000102 → 02 01 00 00.
    assert.deepEqual(Array.from(mt.serializeSafetensors({ x: mt.tensor(new Int32Array([258])) }).slice(-4)), [2, 1, 0, 0]);
  });
});

describe('safetensors: the reference layout', () => {
  // The byte vectors of huggingface/safetensors' own tests (safetensors/src/tensor.rs:
  // test_serialization, test_empty, test_serialization_forced_alignement).
  test('reproduces the reference implementation\'s test vectors byte for byte', () => {
    const attn = mt.tensor(new Float32Array([0, 1, 2, 3, 4, 5]), [1, 2, 3]);
    assert.deepEqual(Array.from(mt.serializeSafetensors({ 'attn.0': attn })), [
      64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100,
      116, 121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34,
      58, 91, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102, 115,
      101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 0, 0, 0, 0, 0, 0, 128, 63,
      0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64,
    ]);
    assert.deepEqual(Array.from(mt.serializeSafetensors({})), [8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]);
    assert.deepEqual(Array.from(mt.serializeSafetensors({}, { framework: 'pt' })), [
      40, 0, 0, 0, 0, 0, 0, 0, 123, 34, 95, 95, 109, 101, 116, 97, 100, 97, 116, 97, 95,
      95, 34, 58, 123, 34, 102, 114, 97, 109, 101, 119, 111, 114, 107, 34, 58, 34, 112,
      116, 34, 125, 125, 32, 32, 32, 32, 32,
    ]);
    assert.deepEqual(Array.from(mt.serializeSafetensors({ attn0: attn.reshape([1, 1, 2, 3]) })), [
      72, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 48, 34, 58, 123, 34, 100, 116,
      121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34, 58,
      91, 49, 44, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102,
      115, 101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 32, 32, 32, 32, 32,
      32, 32, 0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0,
      160, 64,
    ]);
  });

  test('tensors sorted by descending dtype (F64, F32, I32), then by name as UTF-8 bytes; metadata first; padded to 8', () => {
    const dict: Record<string, mt.Tensor> = {
      b: mt.zeros([1], { dtype: 'int32' }), '\uFFFD': mt.zeros([1]), '😀': mt.zeros([1]), '10': mt.zeros([2]), '2': mt.zeros([1]),
      z: mt.zeros([1], { dtype: 'float64' }), a: mt.zeros([1], { dtype: 'int32' }), y: mt.zeros([3], { dtype: 'float64' }),
    };
    const bytes = mt.serializeSafetensors(dict, { z: '1', a: '2' });
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assert.equal(n % 8, 0);
    const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    assert.match(text, /^\{"__metadata__":\{"a":"2","z":"1"\},"y":/);
    assert.match(text, /\} *$/);
    assert.equal(text.trimEnd().length + (n - text.trimEnd().length), n);
    // Key order as written (JSON.parse would list "10" and "2" first).
    const order = [...text.matchAll(/"((?:[^"\\]|\\.)*)":\{"dtype"/g)].map((m) => JSON.parse(`"${m[1]}"`));
    // U+FFFD (EF BF BD) sorts before U+1F600 (F0 9F 98 80) in UTF-8, though not in UTF-16.
    assert.deepEqual(order, ['y', 'z', '10', '2', '\uFFFD', '😀', 'a', 'b']);
    const header = JSON.parse(text);
    assert.deepEqual(header.y.data_offsets, [0, 24]);
    assert.deepEqual(header.b.data_offsets, [header.a.data_offsets[1], header.a.data_offsets[1] + 4]);
  });
});

describe('safetensors: interop with PyTorch (fixtures from scripts/fixtures/make_safetensors_fixtures.py)', () => {
  type Spec = { dtype: mt.DType; shape: number[]; values: number[] };
  const readJson = (file: string) => JSON.parse(fs.readFileSync(join(FIXTURES, file), 'utf8')) as { torch_version?: string; metadata: Record<string, string>; tensors: Record<string, Spec> };
  const fromSpec = (spec: Record<string, Spec>) =>
    Object.fromEntries(Object.entries(spec).map(([name, { dtype, shape, values }]) => [name, mt.tensor(values, shape, { dtype })]));

  test('loads a file torch wrote: names, dtypes, shapes, exact values, metadata; re-saving gives the same bytes', () => {
    const expected = readJson('torch_written.json');
    const path = join(FIXTURES, 'torch_written.safetensors');
    const { tensors, metadata } = mt.loadSafetensors(path);
    assert.deepEqual(metadata, expected.metadata);
    assert.equal(metadata.format, 'pt');
    assert.deepEqual(Object.keys(tensors).sort(), Object.keys(expected.tensors).sort());
    for (const [name, spec] of Object.entries(expected.tensors)) {
      assertSameTensor(tensors[name], mt.tensor(spec.values, spec.shape, { dtype: spec.dtype }), `${name} (torch ${expected.torch_version})`);
    }
    assert.deepEqual(mt.serializeSafetensors(tensors, metadata), new Uint8Array(fs.readFileSync(path)));
  });

  test('mixtape_written.safetensors (which torch checked) is what serializeSafetensors writes, byte for byte', () => {
    const expected = readJson('mixtape_written.json');
    const committed = new Uint8Array(fs.readFileSync(join(FIXTURES, 'mixtape_written.safetensors')));
    assert.deepEqual(mt.serializeSafetensors(fromSpec(expected.tensors), expected.metadata), committed);
    const loaded = mt.parseSafetensors(committed, 'mixtape_written.safetensors');
    for (const [name, t] of Object.entries(fromSpec(expected.tensors))) assertSameTensor(loaded.tensors[name], t, name);
    assert.deepEqual(loaded.metadata, expected.metadata);
  });
});

describe('safetensors: corrupt and hostile files are clear errors', () => {
  const f32x2 = new Uint8Array(new Float32Array([1, 2]).buffer);

  test('the 8-byte length: too short, over the 100 MB limit, past the end of the file', () => {
    assertParseError(new Uint8Array(0), /the file is 0 bytes, too short to hold the 8-byte header length/);
    assertParseError(new Uint8Array(7), /the file is 7 bytes, too short/);
    assertParseError(build({}, [], 2n ** 64n - 1n), /header length 18446744073709551615 is over the 100000000-byte limit/);
    assertParseError(build({}, [], BigInt(MAX_HEADER_BYTES + 1)), /header length 100000001 is over the 100000000-byte limit/);
    assertParseError(build({}, [], BigInt(MAX_HEADER_BYTES)), /header length 100000000 runs past the end of the file \(10 bytes in all\)/);
    assertParseError(build({}, [], 3n), /the header length 3 runs past the end of the file \(10 bytes in all\)/);
    assertParseError(build('{"a":1}', [], 3n), /the header is not valid JSON/); // cut mid-token
  });

  test('the header text: invalid UTF-8, invalid JSON, a BOM, not an object', () => {
    const bad = build('{"a":1}');
    bad[10] = 0xff;
    assertParseError(bad, /the header is not valid UTF-8/);
    assertParseError(build('{"a": {'), /the header is not valid JSON/);
    assertParseError(build('\uFEFF{}'), /the header is not valid JSON/);
    assertParseError(build(''), /the header is not valid JSON/);
    for (const [text, got] of [['[]', 'an array'], ['null', 'null'], ['"x"', 'string "x"'], ['3', 'number 3']] as const) {
      assertParseError(build(text), new RegExp(`the header must be a JSON object, got ${got}`));
    }
    // Padding spaces (and other JSON whitespace) are fine.
    assert.deepEqual(mt.parseSafetensors(build('{}   \n ')).tensors, {});
  });

  test('dtypes: unknown ones are named; real safetensors dtypes mixtape lacks are "not supported"', () => {
    assertParseError(build({ w: entry('Q7', [2], [0, 8]) }, f32x2), /tensor "w": unknown dtype "Q7" \(safetensors dtypes are BOOL, .*F32.*\)/);
    assertParseError(build({ w: entry('f32', [2], [0, 8]) }, f32x2), /unknown dtype "f32"/);
    for (const code of ['F16', 'BF16', 'I64', 'U8', 'BOOL', 'F8_E4M3', 'U32']) {
      assertParseError(build({ w: entry(code, [2], [0, 8]) }, f32x2), new RegExp(`tensor "w": dtype ${code} is not supported by mixtape \\(it reads F32, F64 and I32\\)`));
    }
    assertParseError(build({ w: { shape: [2], data_offsets: [0, 8] } }, f32x2), /tensor "w": dtype must be a string, got undefined/);
    assertParseError(build({ w: entry(3 as unknown as string, [2], [0, 8]) }, f32x2), /dtype must be a string, got number 3/);
  });

  test('tensor entries: not an object; shape not an array of non-negative integers', () => {
    assertParseError(build({ w: [1, 2] }, f32x2), /tensor "w": expected an object with dtype, shape and data_offsets, got an array/);
    assertParseError(build({ w: 'F32' }, f32x2), /tensor "w": expected an object/);
    for (const shape of [undefined, 2, '2', [-2], [2.5], ['2'], [null], [[2]], [2 ** 53]]) {
      assertParseError(build({ w: entry('F32', shape, [0, 8]) }, f32x2), /tensor "w": shape must be an array of non-negative integers/);
    }
  });

  test('data_offsets: malformed, reversed, out of range, wrong byte count', () => {
    for (const offsets of [undefined, [0], [0, 8, 8], [0, '8'], [0.5, 8], [-8, 8], { 0: 0, 1: 8 }, [0, 2 ** 53]]) {
      assertParseError(build({ w: entry('F32', [2], offsets) }, f32x2), /tensor "w": data_offsets must be two non-negative integers \[begin, end\]/);
    }
    assertParseError(build({ w: entry('F32', [0], [8, 0]) }, f32x2), /tensor "w": data_offsets \[8, 0\] end before they begin/);
    assertParseError(build({ w: entry('F32', [4], [0, 16]) }, f32x2), /tensor "w": data_offsets \[0, 16\] run past the end of the data buffer \(8 bytes\)/);
    assertParseError(build({ w: entry('F32', [3], [0, 8]) }, f32x2), /tensor "w": shape \[3\] of F32 needs 12 bytes, but data_offsets \[0, 8\] hold 8/);
    assertParseError(build({ w: entry('F64', [2], [0, 8]) }, f32x2), /shape \[2\] of F64 needs 16 bytes/);
    // numel beyond 2^53: an error, not a crash or an allocation.
    assertParseError(build({ w: entry('F32', [2 ** 40, 2 ** 40], [0, 8]) }, f32x2), /needs 4835703278458516698824704 bytes, but data_offsets \[0, 8\] hold 8/);
  });

  test('coverage of the data buffer: overlaps, holes, trailing bytes', () => {
    const data = new Uint8Array(16);
    assertParseError(build({ a: entry('F32', [2], [0, 8]), b: entry('F32', [2], [4, 12]), c: entry('F32', [1], [12, 16]) }, data),
      /tensor "b" \(bytes 4 to 12\) overlaps tensor "a" \(bytes 0 to 8\)/);
    assertParseError(build({ a: entry('F32', [2], [0, 8]), b: entry('F32', [2], [0, 8]), c: entry('F32', [2], [8, 16]) }, data), /overlaps/);
    assertParseError(build({ a: entry('F32', [2], [0, 8]), z: entry('F32', [0], [4, 4]), c: entry('F32', [2], [8, 16]) }, data), /tensor "z" \(bytes 4 to 4\) overlaps tensor "a"/);
    assertParseError(build({ a: entry('F32', [1], [0, 4]), b: entry('F32', [2], [8, 16]) }, data),
      /the data buffer has a hole: bytes 4 to 8 belong to no tensor \(tensor "b" starts at 8\)/);
    assertParseError(build({ b: entry('F32', [2], [8, 16]) }, data), /hole: bytes 0 to 8/);
    assertParseError(build({ a: entry('F32', [2], [0, 8]) }, data), /the tensors cover 8 bytes but the data buffer holds 16: 8 trailing bytes belong to no tensor/);
    assertParseError(build({}, [1]), /cover 0 bytes but the data buffer holds 1/);
    // Any order in the header is fine, as are empty tensors at a boundary.
    const ok = mt.parseSafetensors(build({ b: entry('F32', [2], [8, 16]), e: entry('I32', [0, 10 ** 15], [8, 8]), a: entry('F32', [2], [0, 8]) }, data));
    assert.deepEqual(ok.tensors.e!.shape, [0, 10 ** 15]);
    assert.equal(ok.tensors.e!.dtype, 'int32');
  });

  test('__metadata__: values must be strings; null means none', () => {
    assertParseError(build({ __metadata__: { format: 'pt', epoch: 3 } }), /"__metadata__" value for key "epoch" must be a string, got number 3/);
    assertParseError(build({ __metadata__: { nested: { a: 'b' } } }), /value for key "nested" must be a string, got an object/);
    assertParseError(build({ __metadata__: ['pt'] }), /"__metadata__" must be an object of strings, got an array/);
    assertParseError(build({ __metadata__: 'pt' }), /"__metadata__" must be an object of strings, got string "pt"/);
    assert.deepEqual(mt.parseSafetensors(build({ __metadata__: null })).metadata, {});
  });

  test('long or odd names are quoted and cut short in messages', () => {
    const name = `${'x'.repeat(500)}\n`;
    assert.throws(() => mt.parseSafetensors(build({ [name]: entry('Q7', [], [0, 0]) })), (e: Error) => e.message.length < 400 && /tensor "x+\.\.\.: unknown dtype/.test(e.message));
    assertParseError(build({ 'a\nb': entry('Q7', [], [0, 0]) }), /tensor "a\\nb": unknown dtype/);
  });

  test('loadSafetensors names the file: missing, a directory, truncated, corrupt', () => {
    assert.throws(() => mt.loadSafetensors(join(scratch, 'missing.safetensors')), /^Error: loadSafetensors: .*missing\.safetensors: cannot open the file \(ENOENT/);
    assert.throws(() => mt.loadSafetensors(scratch), /^Error: loadSafetensors: .*mixtape-safetensors-\w+: not a regular file/);
    const good = mt.serializeSafetensors(everyDtype(), { format: 'pt' });
    const truncated = join(scratch, 'truncated.safetensors');
    fs.writeFileSync(truncated, good.subarray(0, 40));
    assert.throws(() => mt.loadSafetensors(truncated), /^Error: loadSafetensors: .*truncated\.safetensors: the header length \d+ runs past the end of the file \(40 bytes in all\)/);
    fs.writeFileSync(truncated, good.subarray(0, good.length - 1));
    assert.throws(() => mt.loadSafetensors(truncated), /truncated\.safetensors: tensor "\w+": data_offsets \[\d+, \d+\] run past the end of the data buffer/);
    const tiny = join(scratch, 'tiny.safetensors');
    fs.writeFileSync(tiny, 'abc');
    assert.throws(() => mt.loadSafetensors(tiny), /loadSafetensors: .*tiny\.safetensors: the file is 3 bytes, too short/);
  });

  test('loadSafetensors checks the length before reading: an absurd header length costs 8 bytes of reading', (t) => {
    const path = join(scratch, 'absurd.safetensors');
    fs.writeFileSync(path, build({}, new Uint8Array(100), 90_000_000n));
    const reads: number[] = [];
    const realRead = fs.readSync;
    t.mock.method(fs, 'readSync', (...args: Parameters<typeof fs.readSync>) => {
      reads.push(args[1].byteLength);
      return (realRead as (...a: unknown[]) => number)(...args);
    });
    assert.throws(() => mt.loadSafetensors(path), /absurd\.safetensors: the header length 90000000 runs past the end of the file \(110 bytes in all\)/);
    assert.deepEqual(reads, [8]);
  });

  test('fuzz: random truncations and byte mutations either parse or throw a parseSafetensors: Error', () => {
    const valid = mt.serializeSafetensors({ ...everyDtype(), 'x.weight': mt.arange(12).reshape([3, 4]).float() }, { format: 'pt', note: 'ü' });
    const headerEnd = 8 + Number(new DataView(valid.buffer).getBigUint64(0, true));
    const mutation = fc.tuple(
      // Mostly inside the 8-byte length and the JSON, where the interesting failures are.
      fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 0, max: headerEnd - 1 }) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: valid.length - 1 }) }),
      fc.oneof(fc.integer({ min: 0, max: 255 }), fc.constantFrom(...utf8('{}[]",:0123456789-. eE'))),
    );
    // Edits of the parsed header, re-encoded with a correct length: these get past the JSON
    // parser to the checks of dtypes, shapes, offsets and coverage.
    const header = JSON.parse(new TextDecoder().decode(valid.subarray(8, headerEnd))) as Record<string, Record<string, unknown>>;
    const names = Object.keys(header);
    const jsonValue = fc.oneof(
      fc.integer({ min: -4, max: 400 }), fc.constantFrom('F32', 'F64', 'I32', 'BF16', 'x', null, true, 1.5),
      fc.array(fc.integer({ min: -1, max: 400 }), { maxLength: 3 }), fc.dictionary(fc.string({ maxLength: 3 }), fc.string({ maxLength: 3 }), { maxKeys: 2 }),
    );
    const headerEdit = fc.tuple(fc.constantFrom(...names), fc.constantFrom('dtype', 'shape', 'data_offsets', 'data_offsets.0', 'data_offsets.1', 'whole'), jsonValue);
    const caseArb = fc.oneof(
      fc.integer({ min: 0, max: valid.length - 1 }).map((k) => valid.slice(0, k)),
      fc.array(mutation, { minLength: 1, maxLength: 6 }).map((edits) => {
        const bytes = valid.slice();
        for (const [at, value] of edits) bytes[at] = value;
        return bytes;
      }),
      fc.array(headerEdit, { minLength: 1, maxLength: 3 }).map((edits) => {
        const edited = structuredClone(header) as Record<string, unknown>;
        for (const [name, field, value] of edits) {
          const info = edited[name];
          if (field === 'whole' || !isObject(info)) edited[name] = value;
          else if (field.startsWith('data_offsets.') && Array.isArray(info.data_offsets)) info.data_offsets[Number(field.slice(-1))] = value;
          else info[field] = value;
        }
        return build(edited, valid.subarray(headerEnd));
      }),
    );
    let rejected = 0;
    fc.assert(fc.property(caseArb, (bytes) => {
      try {
        mt.parseSafetensors(bytes, 'fuzz');
      } catch (error) {
        if (!(error instanceof Error) || Object.getPrototypeOf(error) !== Error.prototype || !error.message.startsWith('parseSafetensors: fuzz: ')) throw error;
        rejected++;
      }
    }), numRuns(200));
    assert.ok(rejected > 0, 'the fuzz should reach the error paths');
  });
});

describe('safetensors: saving', () => {
  test('bad state dicts and metadata are named errors', () => {
    const x = mt.ones([2]);
    assert.throws(() => mt.serializeSafetensors({ w: [1, 2] as unknown as mt.Tensor }), /^Error: serializeSafetensors: state dict: the value for "w" is not a Tensor \(got an array\)/);
    assert.throws(() => mt.serializeSafetensors({ __metadata__: x }), /a tensor cannot be named "__metadata__"/);
    assert.throws(() => mt.serializeSafetensors({ w: x }, { epoch: 3 as unknown as string }), /serializeSafetensors: state dict: metadata value for key "epoch" must be a string, got number 3/);
    assert.throws(() => mt.serializeSafetensors({ w: x }, ['pt'] as unknown as Record<string, string>), /metadata must be an object of strings, got an array/);
    assert.throws(() => mt.serializeSafetensors({ 'bad\uD800': x }), /lone UTF-16 surrogate/);
    assert.throws(() => mt.serializeSafetensors(null as unknown as Record<string, mt.Tensor>), /the state dict must be an object mapping names to tensors, got null/);
    const gone = mt.ones([2]);
    gone.dispose();
    assert.throws(() => mt.saveSafetensors(join(scratch, 'never.safetensors'), { gone }), /^Error: saveSafetensors: .*never\.safetensors: tensor "gone" was disposed/);
    assert.equal(fs.existsSync(join(scratch, 'never.safetensors')), false);
  });

  describe('atomic saves: a failed save leaves the previous file intact and no temporary file', () => {
    const dir = join(scratch, 'atomic');
    const path = join(dir, 'model.safetensors');
    const good = { w: mt.tensor([1, 2, 3]), step: mt.tensor(new Int32Array([5]), []) };
    const setUp = () => {
      fs.rmSync(dir, { recursive: true, force: true });
      fs.mkdirSync(dir);
      mt.saveSafetensors(path, good, { format: 'pt' });
      return fs.readFileSync(path);
    };
    const assertUntouched = (before: Buffer) => {
      assert.deepEqual(fs.readdirSync(dir), ['model.safetensors']);
      assert.deepEqual(fs.readFileSync(path), before);
      const { tensors } = mt.loadSafetensors(path);
      assert.deepEqual(tensors.w!.toArray(), [1, 2, 3]);
    };

    test('serialization throws midway (a tensor whose read fails)', () => {
      const before = setUp();
      const broken = mt.zeros([4]);
      Object.defineProperty(broken, 'dataSync', { value: () => { throw new Error('device lost'); } });
      assert.throws(() => mt.saveSafetensors(path, { ...good, z: mt.ones([2]), broken }), /device lost/);
      assertUntouched(before);
    });

    test('the disk fails midway through writing the temporary file', (t) => {
      const before = setUp();
      const realWrite = fs.writeSync;
      let calls = 0;
      t.mock.method(fs, 'writeSync', (fd: number, buffer: Uint8Array, offset: number, length: number) => {
        if (++calls === 1) return (realWrite as (...a: unknown[]) => number)(fd, buffer, offset, Math.min(length, 16)); // a short write
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      });
      assert.throws(() => mt.saveSafetensors(path, { w: mt.tensor([9, 9, 9]) }),
        /^Error: saveSafetensors: .*model\.safetensors: could not write the file \(ENOSPC: no space left on device, write\); the previous file, if any, is unchanged/);
      assert.equal(calls, 2);
      assertUntouched(before);
    });

    test('fsync fails, or the rename fails', (t) => {
      for (const method of ['fsyncSync', 'renameSync'] as const) {
        const before = setUp();
        const m = t.mock.method(fs, method, () => { throw new Error(`EIO: i/o error, ${method}`); });
        assert.throws(() => mt.saveSafetensors(path, { w: mt.tensor([9, 9, 9]) }), new RegExp(`could not write the file \\(EIO: i/o error, ${method}\\)`));
        m.mock.restore();
        assertUntouched(before);
      }
    });

    test('a successful save replaces the file and leaves nothing else behind', () => {
      setUp();
      mt.saveSafetensors(path, { w: mt.tensor([7, 8]) });
      assert.deepEqual(fs.readdirSync(dir), ['model.safetensors']);
      const { tensors, metadata } = mt.loadSafetensors(path);
      assert.deepEqual(tensors.w!.toArray(), [7, 8]);
      assert.deepEqual(metadata, {});
    });

    test('saveSafetensorsAsync reads with data() only and writes the same bytes, atomically', async (t) => {
      const before = setUp();
      const dict = everyDtype(), metadata = { format: 'pt', step: '7' };
      const expected = mt.serializeSafetensors(dict, metadata);
      // No synchronous readback anywhere (as on the GPU backend in webgpu mode).
      const sync = t.mock.method(mt.Tensor.prototype, 'dataSync', () => { throw new Error('dataSync called'); });
      assert.deepEqual(await mt.serializeSafetensorsAsync(dict, metadata), expected);
      await mt.saveSafetensorsAsync(path, dict, metadata);
      sync.mock.restore();
      assert.deepEqual(new Uint8Array(fs.readFileSync(path)), expected);
      assert.deepEqual(fs.readdirSync(dir), ['model.safetensors']);
      // A failing write leaves the previous file; errors name the async function.
      mt.saveSafetensors(path, good, { format: 'pt' });
      const m = t.mock.method(fs, 'renameSync', () => { throw new Error('EIO: i/o error, renameSync'); });
      await assert.rejects(mt.saveSafetensorsAsync(path, { w: mt.tensor([9, 9, 9]) }), /^Error: saveSafetensorsAsync: .*model\.safetensors: could not write the file \(EIO/);
      m.mock.restore();
      assertUntouched(before);
      const gone = mt.ones([2]);
      gone.dispose();
      await assert.rejects(mt.saveSafetensorsAsync(path, { gone }), /^Error: saveSafetensorsAsync: .*: tensor "gone" was disposed/);
      await assert.rejects(mt.serializeSafetensorsAsync({ w: [1] as unknown as mt.Tensor }), /^Error: serializeSafetensorsAsync: state dict: the value for "w" is not a Tensor/);
      assertUntouched(before);
    });

    test('a directory that does not exist', () => {
      assert.throws(() => mt.saveSafetensors(join(scratch, 'no', 'such', 'dir', 'm.safetensors'), good), /saveSafetensors: .*m\.safetensors: could not write the file \(ENOENT/);
    });
  });
});

describe('safetensors: temporaries of saves that were killed', () => {
  test('the next save removes the temporaries of processes no longer running, and leaves a live process\'s and other files', () => {
    const dir = fs.mkdtempSync(join(scratch, 'stale-'));
    const path = join(dir, 'model.safetensors');
    const exited = Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);
    const stale = `.model.safetensors.${exited}.00aa11bb22cc.tmp`, live = `.model.safetensors.${process.pid}.ddee00ff1122.tmp`;
    const others = ['.other.safetensors.1.00aa11bb22cc.tmp', '.model.safetensors.x.tmp', 'notes.txt'];
    for (const name of [stale, live, ...others]) fs.writeFileSync(join(dir, name), 'x');
    mt.saveSafetensors(path, { w: mt.ones([2]) });
    assert.deepEqual(fs.readdirSync(dir).sort(), [live, ...others, 'model.safetensors'].sort());
  });
});
