// safetensors checkpoints, the format of PyTorch / Hugging Face (huggingface/safetensors):
//
//   [8 bytes]  N, the header length, unsigned 64-bit little-endian
//   [N bytes]  UTF-8 JSON: { "__metadata__"?: {string: string},
//                            name: {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ... }
//              offsets are relative to the data buffer; the JSON may end in padding spaces
//   [rest]     the data buffer: every tensor row-major and little-endian, the ranges covering
//              it exactly (no holes, no overlaps)
//
// mixtape reads and writes F32, F64 and I32 (its three dtypes). The writer lays files out
// as the reference writer does (tensors by descending dtype, then by name; compact JSON;
// the header padded with spaces to a multiple of 8 bytes, so that the data buffer starts
// 8-aligned), so a mixtape file and one from safetensors' save_file hold the same bytes
// (up to the order of metadata keys, which the reference keeps in a HashMap: mixtape sorts
// them). The reader treats the file as hostile: every length and offset is checked before
// it is used, and every problem is an Error that names the file and the problem.

import { randomBytes } from 'node:crypto';
// The default import (not `import { writeSync }`) on purpose: tests replace fs methods with
// node:test's mock.method to simulate a disk that fails in the middle of a save.
import fs from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { DType, TypedArray } from '../core/dtype.js';
import { tensor } from '../tensor/ops/creation.js';
import { Tensor } from '../tensor/tensor.js';

/** The reference reader refuses headers above 100 MB (HeaderTooLarge); so do we, before allocating. */
export const MAX_HEADER_BYTES = 100_000_000;

/**
 * Every safetensors dtype, in the order of the reference's `Dtype` enum. The writer sorts
 * by this order (descending), so F64 tensors come first, then F32, then I32.
 */
const SAFETENSORS_DTYPES = [
  'BOOL', 'F4', 'F6_E2M3', 'F6_E3M2', 'U8', 'I8', 'F8_E5M2', 'F8_E4M3', 'F8_E8M0', 'F8_E4M3FNUZ', 'F8_E5M2FNUZ',
  'I16', 'U16', 'F16', 'BF16', 'I32', 'U32', 'F32', 'C64', 'F64', 'I64', 'U64',
] as const;

interface Format { readonly code: 'F32' | 'F64' | 'I32'; readonly dtype: DType; readonly itemSize: number; readonly rank: number }

const FORMATS: Record<DType, Format> = {
  float32: { code: 'F32', dtype: 'float32', itemSize: 4, rank: SAFETENSORS_DTYPES.indexOf('F32') },
  float64: { code: 'F64', dtype: 'float64', itemSize: 8, rank: SAFETENSORS_DTYPES.indexOf('F64') },
  int32: { code: 'I32', dtype: 'int32', itemSize: 4, rank: SAFETENSORS_DTYPES.indexOf('I32') },
};
const FORMAT_BY_CODE = new Map<string, Format>(Object.values(FORMATS).map((f) => [f.code, f]));

/**
 * Typed arrays use the host's byte order; the file is little-endian. (Read off a typed
 * array rather than node:os's endianness(), so that parsing and serializing also run in a browser.)
 */
const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** UTF-8 bytes of a string (names and metadata; lone surrogates are rejected before this). */
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Byte-wise order of two byte strings, as Buffer.compare (a shorter prefix sorts first). */
function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1;
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

// ---- errors ------------------------------------------------------------------------------

/** Where an error happened: `loadSafetensors: model.safetensors: <problem>`. */
interface Context { readonly fn: string; readonly source: string }

function problem(ctx: Context, message: string, cause?: unknown): Error {
  return new Error(`${ctx.fn}: ${ctx.source}: ${message}`, cause === undefined ? undefined : { cause });
}

/** A name or value for an error message: JSON-quoted (control characters stay visible) and cut short. */
function show(value: unknown, max = 80): string {
  let s: string;
  try { s = JSON.stringify(value) ?? String(value); } catch { s = String(value); }
  return s.length > max ? `${s.slice(0, max)}...` : s;
}

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `${typeof value} ${show(value, 40)}`;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A lone UTF-16 surrogate cannot be written as UTF-8 (TextEncoder would silently replace it). */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Sets an own enumerable property. Plain assignment would treat a tensor named
 * "__proto__" as a prototype change instead of storing it.
 */
function setOwn<T>(record: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(record, key, { value, enumerable: true, writable: true, configurable: true });
}

// ---- byte order --------------------------------------------------------------------------

/**
 * @internal Decodes one tensor's little-endian bytes. On a little-endian host the bytes are
 * copied into a fresh buffer (which also fixes the alignment: a tensor may start at any
 * byte offset in the file, typed arrays need offsets that are multiples of their item size);
 * elsewhere they are read one by one through a DataView. `hostIsLittleEndian` is a
 * parameter so that tests can run the DataView path.
 */
export function decodeLittleEndian(bytes: Uint8Array, dtype: DType, hostIsLittleEndian = HOST_IS_LITTLE_ENDIAN): TypedArray {
  const n = bytes.length / FORMATS[dtype].itemSize;
  if (hostIsLittleEndian) {
    const copy = bytes.slice().buffer;
    switch (dtype) {
      case 'float32': return new Float32Array(copy, 0, n);
      case 'float64': return new Float64Array(copy, 0, n);
      case 'int32': return new Int32Array(copy, 0, n);
    }
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case 'float32': { const out = new Float32Array(n); for (let i = 0; i < n; i++) out[i] = view.getFloat32(4 * i, true); return out; }
    case 'float64': { const out = new Float64Array(n); for (let i = 0; i < n; i++) out[i] = view.getFloat64(8 * i, true); return out; }
    case 'int32': { const out = new Int32Array(n); for (let i = 0; i < n; i++) out[i] = view.getInt32(4 * i, true); return out; }
  }
}

/** @internal Writes `values` little-endian into `out` at byte `offset`; the DataView path as above. */
export function encodeLittleEndian(values: TypedArray, out: Uint8Array, offset: number, hostIsLittleEndian = HOST_IS_LITTLE_ENDIAN): void {
  if (hostIsLittleEndian) {
    out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), offset);
    return;
  }
  const view = new DataView(out.buffer, out.byteOffset + offset, values.byteLength);
  if (values instanceof Float64Array) for (let i = 0; i < values.length; i++) view.setFloat64(8 * i, values[i]!, true);
  else if (values instanceof Float32Array) for (let i = 0; i < values.length; i++) view.setFloat32(4 * i, values[i]!, true);
  else for (let i = 0; i < values.length; i++) view.setInt32(4 * i, values[i]!, true);
}

// ---- writing -----------------------------------------------------------------------------

/**
 * `read` holds values already read back (asynchronously) by name; tensors missing from it
 * are read with dataSync().
 */
function serialize(ctx: Context, stateDict: Record<string, Tensor>, metadata: Record<string, string> | undefined, read?: ReadonlyMap<string, TypedArray>): Uint8Array {
  if (!isPlainObject(stateDict)) throw problem(ctx, `the state dict must be an object mapping names to tensors, got ${typeName(stateDict)}`);
  if (metadata !== undefined && !isPlainObject(metadata)) throw problem(ctx, `metadata must be an object of strings, got ${typeName(metadata)}`);
  const metaEntries = Object.entries(metadata ?? {});
  for (const [key, value] of metaEntries) {
    if (typeof value !== 'string') throw problem(ctx, `metadata value for key ${show(key)} must be a string, got ${typeName(value)}`);
    if (LONE_SURROGATE.test(key) || LONE_SURROGATE.test(value)) throw problem(ctx, `metadata entry ${show(key)} holds a lone UTF-16 surrogate, which UTF-8 cannot encode`);
  }

  const items = Object.entries(stateDict).map(([name, t]) => {
    if (!(t instanceof Tensor)) throw problem(ctx, `the value for ${show(name)} is not a Tensor (got ${typeName(t)})`);
    if (t.isDisposed) throw problem(ctx, `tensor ${show(name)} was disposed`);
    if (name === '__metadata__') throw problem(ctx, 'a tensor cannot be named "__metadata__": the format reserves that key for the metadata');
    if (LONE_SURROGATE.test(name)) throw problem(ctx, `tensor name ${show(name)} holds a lone UTF-16 surrogate, which UTF-8 cannot encode`);
    return { name, tensor: t, format: FORMATS[t.dtype], utf8: utf8(name) };
  });
  // The reference writer's order: descending dtype, then name. Rust compares names as UTF-8
  // bytes (= code points), which is not JS's UTF-16 order for characters above U+FFFF.
  items.sort((a, b) => b.format.rank - a.format.rank || compareBytes(a.utf8, b.utf8));

  // The header, written by hand rather than by JSON.stringify(object): JS objects list
  // integer-like keys ("0", "10") first, which would break the order above.
  const parts: string[] = [];
  if (metaEntries.length > 0) {
    const sorted = metaEntries.map(([k, v]) => ({ k, v, utf8: utf8(k) })).sort((a, b) => compareBytes(a.utf8, b.utf8));
    parts.push(`"__metadata__":{${sorted.map(({ k, v }) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`);
  }
  const values: TypedArray[] = [];
  let offset = 0;
  for (const { name, tensor: t, format } of items) {
    const data = read?.get(name) ?? t.dataSync();
    if (data.length !== t.size) throw problem(ctx, `tensor ${show(name)} read back ${data.length} values for shape [${t.shape.join(', ')}]`);
    const nbytes = t.size * format.itemSize;
    parts.push(`${JSON.stringify(name)}:{"dtype":"${format.code}","shape":[${t.shape.join(',')}],"data_offsets":[${offset},${offset + nbytes}]}`);
    values.push(data);
    offset += nbytes;
  }
  const json = utf8(`{${parts.join(',')}}`);
  // Pad with spaces so that the data buffer starts at a multiple of 8 (8 + N ≡ 0 mod 8).
  const headerLength = json.length + ((8 - (json.length % 8)) % 8);
  if (headerLength > MAX_HEADER_BYTES) throw problem(ctx, `the header would be ${headerLength} bytes, over the ${MAX_HEADER_BYTES}-byte limit that safetensors readers accept`);

  const out = new Uint8Array(8 + headerLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLength);
  let at = 8 + headerLength;
  for (const v of values) {
    encodeLittleEndian(v, out, at);
    at += v.byteLength;
  }
  return out;
}

/**
 * The safetensors bytes of a state dict: F32, F64 and I32 tensors by name, plus optional
 * string metadata (e.g. `{ format: 'pt' }`, which transformers expects).
 */
export function serializeSafetensors(stateDict: Record<string, Tensor>, metadata?: Record<string, string>): Uint8Array {
  return serialize({ fn: 'serializeSafetensors', source: 'state dict' }, stateDict, metadata);
}

/**
 * Writes a state dict as a safetensors file, atomically: the bytes go to a temporary file
 * in the same directory, which is fsynced and then renamed over `path`. A save that fails
 * or is interrupted leaves the previous file as it was (and no temporary file behind).
 */
export function saveSafetensors(path: string, stateDict: Record<string, Tensor>, metadata?: Record<string, string>): void {
  const ctx: Context = { fn: 'saveSafetensors', source: path };
  const bytes = serialize(ctx, stateDict, metadata);
  writeAtomically(ctx, path, bytes);
}

/**
 * Reads every live tensor of a state dict with `await t.data()`, one after another (the
 * only way to the host in webgpu mode). Anything else is left to serialize's checks.
 */
async function readAll(stateDict: Record<string, Tensor>): Promise<Map<string, TypedArray>> {
  const read = new Map<string, TypedArray>();
  if (!isPlainObject(stateDict)) return read;
  for (const [name, t] of Object.entries(stateDict)) {
    if (t instanceof Tensor && !t.isDisposed) read.set(name, await t.data());
  }
  return read;
}

/**
 * serializeSafetensors with asynchronous readbacks (`await t.data()`), for backends that
 * have no synchronous ones (the GPU backend in webgpu mode). The same bytes.
 */
export async function serializeSafetensorsAsync(stateDict: Record<string, Tensor>, metadata?: Record<string, string>): Promise<Uint8Array> {
  return serialize({ fn: 'serializeSafetensorsAsync', source: 'state dict' }, stateDict, metadata, await readAll(stateDict));
}

/**
 * saveSafetensors with asynchronous readbacks (`await t.data()`, which every backend and
 * GPU mode supports): the tensors are read first, then the file is written atomically
 * exactly as saveSafetensors writes it (same bytes; a failed save leaves the previous file).
 */
export async function saveSafetensorsAsync(path: string, stateDict: Record<string, Tensor>, metadata?: Record<string, string>): Promise<void> {
  const ctx: Context = { fn: 'saveSafetensorsAsync', source: path };
  const bytes = serialize(ctx, stateDict, metadata, await readAll(stateDict));
  writeAtomically(ctx, path, bytes);
}

/** Whether a process with this id runs on this machine (signal 0 only checks; EPERM means it runs as another user). */
export function processIsRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the temporary files that saves of `path` by processes no longer running left
 * behind (`.NAME.<pid>.<hex>.tmp`: a save killed between its write and its rename, e.g. by
 * kill -9). Returns the names removed. A live process's temporary is left alone.
 */
export function removeStaleTemporaries(path: string): string[] {
  const target = resolve(path);
  const dir = dirname(target);
  const prefix = `.${basename(target)}.`;
  const removed: string[] = [];
  let names: string[];
  try { names = fs.readdirSync(dir); } catch { return removed; }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const m = /^(\d+)\.[0-9a-f]+\.tmp$/.exec(name.slice(prefix.length));
    if (!m || processIsRunning(Number(m[1]))) continue;
    try {
      fs.unlinkSync(join(dir, name));
      removed.push(name);
    } catch { /* removed by someone else meanwhile, or not ours to remove: leave it */ }
  }
  return removed;
}

function writeAtomically(ctx: Context, path: string, bytes: Uint8Array): void {
  const target = resolve(path);
  const dir = dirname(target);
  removeStaleTemporaries(target);
  // Same directory: rename() is atomic only within one file system.
  const temp = join(dir, `.${basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let fd: number | undefined;
  let created = false;
  try {
    fd = fs.openSync(temp, 'wx', 0o666); // 'wx': never reuse an existing file
    created = true;
    for (let at = 0; at < bytes.length;) {
      const written = fs.writeSync(fd, bytes, at, bytes.length - at);
      if (written <= 0) throw new Error(`write made no progress at byte ${at}`);
      at += written;
    }
    fs.fsyncSync(fd); // the data is on disk before the rename makes it visible
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(temp, target);
  } catch (error) {
    if (fd !== undefined) try { fs.closeSync(fd); } catch { /* already failing; report the first error */ }
    if (created) try { fs.unlinkSync(temp); } catch { /* best effort */ }
    throw problem(ctx, `could not write the file (${(error as Error).message ?? String(error)}); the previous file, if any, is unchanged`, error);
  }
  // Make the rename itself durable. Directories cannot be opened or fsynced everywhere
  // (Windows), and the new file is already complete, so this is best effort.
  try {
    const dfd = fs.openSync(dir, 'r');
    try { fs.fsyncSync(dfd); } finally { fs.closeSync(dfd); }
  } catch { /* see above */ }
}

// ---- reading -----------------------------------------------------------------------------

interface Entry { name: string; format: Format; shape: number[]; begin: number; end: number }
interface Header { entries: Entry[]; metadata: Record<string, string> }
export interface SafetensorsContents { tensors: Record<string, Tensor>; metadata: Record<string, string> }

/** N from the first 8 bytes, checked against the limit and the file size before anything is allocated. */
function readHeaderLength(ctx: Context, first8: Uint8Array, fileSize: number): number {
  if (fileSize < 8) throw problem(ctx, `the file is ${fileSize} bytes, too short to hold the 8-byte header length (is it a safetensors file?)`);
  const n = new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw problem(ctx, `the header length ${n} is over the ${MAX_HEADER_BYTES}-byte limit (a corrupt file, or not a safetensors file)`);
  }
  if (8n + n > BigInt(fileSize)) throw problem(ctx, `the header length ${n} runs past the end of the file (${fileSize} bytes in all)`);
  return Number(n);
}

/** Parses and validates the JSON header against a data buffer of `dataLength` bytes. */
function parseHeader(ctx: Context, headerBytes: Uint8Array, dataLength: number): Header {
  let text: string;
  try {
    // fatal: invalid UTF-8 is an error, not U+FFFD; ignoreBOM: keep a BOM, which JSON rejects.
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch {
    throw problem(ctx, 'the header is not valid UTF-8');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (error) {
    throw problem(ctx, `the header is not valid JSON (${(error as Error).message})`);
  }
  if (!isPlainObject(header)) throw problem(ctx, `the header must be a JSON object, got ${typeName(header)}`);

  const metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (info === null) continue; // the reference reads null as "no metadata"
      if (!isPlainObject(info)) throw problem(ctx, `"__metadata__" must be an object of strings, got ${typeName(info)}`);
      for (const [key, value] of Object.entries(info)) {
        if (typeof value !== 'string') throw problem(ctx, `"__metadata__" value for key ${show(key)} must be a string, got ${typeName(value)}`);
        setOwn(metadata, key, value);
      }
      continue;
    }
    const what = `tensor ${show(name)}`;
    if (!isPlainObject(info)) throw problem(ctx, `${what}: expected an object with dtype, shape and data_offsets, got ${typeName(info)}`);

    const code = info.dtype;
    if (typeof code !== 'string') throw problem(ctx, `${what}: dtype must be a string, got ${typeName(code)}`);
    const format = FORMAT_BY_CODE.get(code);
    if (format === undefined) {
      if ((SAFETENSORS_DTYPES as readonly string[]).includes(code)) {
        throw problem(ctx, `${what}: dtype ${code} is not supported by mixtape (it reads F32, F64 and I32); convert the tensor before saving`);
      }
      throw problem(ctx, `${what}: unknown dtype ${show(code)} (safetensors dtypes are ${SAFETENSORS_DTYPES.join(', ')})`);
    }

    const shape = info.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
      throw problem(ctx, `${what}: shape must be an array of non-negative integers, got ${show(shape)}`);
    }

    const offsets = info.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && (o as number) >= 0)) {
      throw problem(ctx, `${what}: data_offsets must be two non-negative integers [begin, end], got ${show(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    if (begin > end) throw problem(ctx, `${what}: data_offsets [${begin}, ${end}] end before they begin`);
    if (end > dataLength) throw problem(ctx, `${what}: data_offsets [${begin}, ${end}] run past the end of the data buffer (${dataLength} bytes)`);

    // In BigInt: the element count of an absurd shape can pass 2^53, where doubles round.
    const nbytes = (shape as number[]).reduce((a, d) => a * BigInt(d), BigInt(format.itemSize));
    if (nbytes !== BigInt(end - begin)) {
      throw problem(ctx, `${what}: shape [${(shape as number[]).join(', ')}] of ${code} needs ${nbytes} bytes, but data_offsets [${begin}, ${end}] hold ${end - begin}`);
    }
    entries.push({ name, format, shape: shape as number[], begin, end });
  }

  // The ranges must tile the data buffer: sorted by offset, each starts where the last ended.
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  let previous: Entry | undefined;
  for (const e of sorted) {
    if (e.begin < covered) {
      throw problem(ctx, `tensor ${show(e.name)} (bytes ${e.begin} to ${e.end}) overlaps tensor ${show(previous!.name)} (bytes ${previous!.begin} to ${previous!.end})`);
    }
    if (e.begin > covered) throw problem(ctx, `the data buffer has a hole: bytes ${covered} to ${e.begin} belong to no tensor (tensor ${show(e.name)} starts at ${e.begin})`);
    covered = e.end;
    previous = e;
  }
  if (covered !== dataLength) {
    throw problem(ctx, `the tensors cover ${covered} bytes but the data buffer holds ${dataLength}: ${dataLength - covered} trailing bytes belong to no tensor`);
  }
  return { entries, metadata };
}

/** Builds the tensors of a validated header from the data buffer. */
function decodeTensors(entries: readonly Entry[], data: Uint8Array): Record<string, Tensor> {
  const tensors: Record<string, Tensor> = {};
  for (const { name, format, shape, begin, end } of entries) {
    setOwn(tensors, name, tensor(decodeLittleEndian(data.subarray(begin, end), format.dtype), shape));
  }
  return tensors;
}

/**
 * Reads safetensors bytes (a whole file). `source` names them in error messages. Throws an
 * Error starting with `parseSafetensors:` for anything that is not a valid file of F32, F64
 * and I32 tensors.
 */
export function parseSafetensors(bytes: Uint8Array, source = 'the given bytes'): SafetensorsContents {
  const ctx: Context = { fn: 'parseSafetensors', source };
  if (!(bytes instanceof Uint8Array)) throw problem(ctx, `expected a Uint8Array, got ${typeName(bytes)}`);
  const n = readHeaderLength(ctx, bytes, bytes.length);
  const { entries, metadata } = parseHeader(ctx, bytes.subarray(8, 8 + n), bytes.length - 8 - n);
  return { tensors: decodeTensors(entries, bytes.subarray(8 + n)), metadata };
}

/**
 * Loads a safetensors file: its tensors by name (dtypes preserved) and its metadata. Reads
 * the 8-byte length first and checks it before reading the header, and validates the whole
 * header before reading the data, so a corrupt file costs no more memory than its size.
 */
export function loadSafetensors(path: string): SafetensorsContents {
  const ctx: Context = { fn: 'loadSafetensors', source: path };
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (error) {
    throw problem(ctx, `cannot open the file (${(error as Error).message})`, error);
  }
  try {
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) throw problem(ctx, 'not a regular file');
    const size = stat.size;
    const n = readHeaderLength(ctx, readExactly(ctx, fd, 0, Math.min(8, size)), size);
    const { entries, metadata } = parseHeader(ctx, readExactly(ctx, fd, 8, n), size - 8 - n);
    return { tensors: decodeTensors(entries, readExactly(ctx, fd, 8 + n, size - 8 - n)), metadata };
  } finally {
    fs.closeSync(fd);
  }
}

/** `length` bytes at `position`; the file shrinking under us is an error, not a short read. */
function readExactly(ctx: Context, fd: number, position: number, length: number): Uint8Array {
  let buffer: Uint8Array;
  try {
    buffer = new Uint8Array(length);
  } catch (error) {
    throw problem(ctx, `cannot allocate ${length} bytes to read the file`, error);
  }
  const CHUNK = 1 << 30; // one read() call moves at most ~2 GB
  for (let at = 0; at < length;) {
    let read: number;
    try {
      read = fs.readSync(fd, buffer, at, Math.min(CHUNK, length - at), position + at);
    } catch (error) {
      throw problem(ctx, `read failed at byte ${position + at} (${(error as Error).message})`, error);
    }
    if (read === 0) throw problem(ctx, `the file ended at byte ${position + at}, before the ${position + length} bytes its size promised (did it change while being read?)`);
    at += read;
  }
  return buffer;
}
