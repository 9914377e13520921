// A small WebAssembly binary emitter: TypeScript writes the module's bytes at load time, so
// the SIMD kernels need no toolchain and no .wasm file (the way jax-js's wasmblr builds its
// kernels). It covers what our kernels use: one imported memory, imported functions,
// functions with typed locals, structured control flow, integer arithmetic, SIMD128 and the
// atomics of the threads proposal. The binary format is in the WebAssembly core specification §5
// (https://webassembly.github.io/spec/core/binary/); SIMD and atomics opcodes follow a
// prefix byte (0xfd, 0xfe) as an unsigned LEB128 number.

export type ValType = 'i32' | 'i64' | 'f32' | 'f64' | 'v128';

const VALTYPE: Record<ValType, number> = { i32: 0x7f, i64: 0x7e, f32: 0x7d, f64: 0x7c, v128: 0x7b };

/** Unsigned LEB128 (§5.2.2): 7 bits per byte, low first, high bit = more bytes follow. */
export function uleb(value: number): number[] {
  const out: number[] = [];
  let v = value >>> 0;
  do {
    const byte = v & 0x7f;
    v >>>= 7;
    out.push(v === 0 ? byte : byte | 0x80);
  } while (v !== 0);
  return out;
}

/** Signed LEB128, for i32.const / i64.const immediates (two's complement, sign-extended). */
export function sleb(value: number | bigint): number[] {
  const out: number[] = [];
  let v = BigInt(value);
  for (;;) {
    const byte = Number(v & 0x7fn);
    v >>= 7n;
    const done = (v === 0n && (byte & 0x40) === 0) || (v === -1n && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

function utf8(name: string): number[] {
  const bytes = [...new TextEncoder().encode(name)];
  return [...uleb(bytes.length), ...bytes];
}

/** A vector: its length, then its items (§5.1.3). */
function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

/** A local variable (or parameter) of a function being emitted: its index. */
export interface Local { readonly index: number; readonly type: ValType }

/** Natural alignment exponents (log2 bytes) of the memory accesses we emit. */
const ALIGN = { i32: 2, i64: 3, f32: 2, f64: 3, v128: 4 } as const;

/**
 * One function's body. Each method appends one instruction (with its immediates); blocks
 * and loops take a callback for their body, so the nesting in TypeScript is the nesting in
 * wasm. Branch depths count enclosing labels from the innermost (0).
 */
export class Code {
  readonly bytes: number[] = [];
  private readonly locals: Local[] = [];

  constructor(readonly params: Local[]) {}

  /** A fresh local of a type (zero-initialised at each call, as wasm defines). */
  local(type: ValType): Local {
    const l = { index: this.params.length + this.locals.length, type };
    this.locals.push(l);
    return l;
  }

  /** The locals section of the body: runs of equal types (§5.5.13). */
  localDecls(): number[] {
    const runs: number[][] = [];
    for (let i = 0; i < this.locals.length;) {
      let j = i;
      while (j < this.locals.length && this.locals[j]!.type === this.locals[i]!.type) j++;
      runs.push([...uleb(j - i), VALTYPE[this.locals[i]!.type]]);
      i = j;
    }
    return vec(runs);
  }

  private op(...bytes: number[]): this { this.bytes.push(...bytes); return this; }
  private simd(code: number, ...imm: number[]): this { return this.op(0xfd, ...uleb(code), ...imm); }
  private atomic(code: number, ...imm: number[]): this { return this.op(0xfe, ...uleb(code), ...imm); }
  private memarg(align: number, offset: number): number[] { return [...uleb(align), ...uleb(offset)]; }

  // ---- control (§5.4.1) ----
  block(body: () => void): this { this.op(0x02, 0x40); body(); return this.op(0x0b); }
  loop(body: () => void): this { this.op(0x03, 0x40); body(); return this.op(0x0b); }
  if(then: () => void, otherwise?: () => void): this {
    this.op(0x04, 0x40);
    then();
    if (otherwise) { this.op(0x05); otherwise(); }
    return this.op(0x0b);
  }
  br(depth: number): this { return this.op(0x0c, ...uleb(depth)); }
  brIf(depth: number): this { return this.op(0x0d, ...uleb(depth)); }
  return(): this { return this.op(0x0f); }
  call(func: number): this { return this.op(0x10, ...uleb(func)); }
  drop(): this { return this.op(0x1a); }

  // ---- variables ----
  get(l: Local): this { return this.op(0x20, ...uleb(l.index)); }
  set(l: Local): this { return this.op(0x21, ...uleb(l.index)); }
  tee(l: Local): this { return this.op(0x22, ...uleb(l.index)); }

  // ---- scalar memory and numbers ----
  load(type: 'i32' | 'f32' | 'f64', offset = 0): this {
    return this.op({ i32: 0x28, f32: 0x2a, f64: 0x2b }[type], ...this.memarg(ALIGN[type], offset));
  }
  store(type: 'i32' | 'f32' | 'f64', offset = 0): this {
    return this.op({ i32: 0x36, f32: 0x38, f64: 0x39 }[type], ...this.memarg(ALIGN[type], offset));
  }
  i32(value: number): this { return this.op(0x41, ...sleb(value | 0)); }
  i64(value: bigint): this { return this.op(0x42, ...sleb(value)); }
  f32Zero(): this { return this.op(0x43, 0, 0, 0, 0); }
  f64Zero(): this { return this.op(0x44, 0, 0, 0, 0, 0, 0, 0, 0); }
  i32Eqz(): this { return this.op(0x45); }
  i32Eq(): this { return this.op(0x46); }
  i32Ne(): this { return this.op(0x47); }
  i32LtS(): this { return this.op(0x48); }
  i32LtU(): this { return this.op(0x49); }
  i32GtS(): this { return this.op(0x4a); }
  i32LeS(): this { return this.op(0x4c); }
  i32GeS(): this { return this.op(0x4e); }
  i32GeU(): this { return this.op(0x4f); }
  i32Add(): this { return this.op(0x6a); }
  i32Sub(): this { return this.op(0x6b); }
  i32Mul(): this { return this.op(0x6c); }
  i32DivU(): this { return this.op(0x6e); }
  i32RemU(): this { return this.op(0x70); }
  i32And(): this { return this.op(0x71); }
  i32Or(): this { return this.op(0x72); }
  i32Shl(): this { return this.op(0x74); }
  i32ShrU(): this { return this.op(0x76); }
  i32Xor(): this { return this.op(0x73); }
  i32WrapI64(): this { return this.op(0xa7); }
  i64ExtendI32U(): this { return this.op(0xad); }
  i64Add(): this { return this.op(0x7c); }
  i64Mul(): this { return this.op(0x7e); }
  i64Or(): this { return this.op(0x84); }
  i64Shl(): this { return this.op(0x86); }
  i64ShrU(): this { return this.op(0x88); }
  f64Add(): this { return this.op(0xa0); }
  f32DemoteF64(): this { return this.op(0xb6); }
  f64PromoteF32(): this { return this.op(0xbb); }
  select(): this { return this.op(0x1b); }

  // ---- SIMD128 (opcodes after 0xfd) ----
  v128Load(offset = 0): this { return this.simd(0x00, ...this.memarg(4, offset)); }
  /** One 32-bit value, broadcast to the four lanes. */
  v128Load32Splat(offset = 0): this { return this.simd(0x09, ...this.memarg(2, offset)); }
  /** One 64-bit value, broadcast to the two lanes. */
  v128Load64Splat(offset = 0): this { return this.simd(0x0a, ...this.memarg(3, offset)); }
  v128Store(offset = 0): this { return this.simd(0x0b, ...this.memarg(4, offset)); }
  /** Stores lane `lane` of a v128 as 32 (64) bits: (address, vector) → (). */
  v128Store32Lane(lane: number, offset = 0): this { return this.simd(0x5a, ...this.memarg(2, offset), lane); }
  v128Store64Lane(lane: number, offset = 0): this { return this.simd(0x5b, ...this.memarg(3, offset), lane); }
  /** Bytes of the result chosen from the 32 bytes of the two operands (0–15 first, 16–31 second). */
  i8x16Shuffle(lanes: readonly number[]): this {
    if (lanes.length !== 16 || lanes.some((l) => l < 0 || l > 31)) throw new Error(`i8x16Shuffle: 16 lanes in 0..31, got ${lanes}`);
    return this.simd(0x0d, ...lanes);
  }
  /** A v128 constant: four float32 lanes of `value` (rounded to float32). */
  f32x4Const(value: number): this {
    const lane = [...new Uint8Array(new Float32Array([value]).buffer)];
    return this.simd(0x0c, ...lane, ...lane, ...lane, ...lane);
  }
  /** A v128 constant: four i32 lanes of `value`. */
  i32x4Const(value: number): this {
    const lane = [...new Uint8Array(new Int32Array([value]).buffer)];
    return this.simd(0x0c, ...lane, ...lane, ...lane, ...lane);
  }
  /** A v128 constant of four given i32 lanes. */
  i32x4Lanes(values: readonly [number, number, number, number]): this {
    return this.simd(0x0c, ...new Uint8Array(new Int32Array(values).buffer));
  }
  /** A v128 constant: two float64 lanes of `value`. */
  f64x2Const(value: number): this {
    const lane = [...new Uint8Array(new Float64Array([value]).buffer)];
    return this.simd(0x0c, ...lane, ...lane);
  }
  /** A v128 constant: two i64 lanes of `value`. */
  i64x2Const(value: bigint): this {
    const lane = [...new Uint8Array(new BigInt64Array([value]).buffer)];
    return this.simd(0x0c, ...lane, ...lane);
  }
  v128And(): this { return this.simd(0x4e); }
  v128Or(): this { return this.simd(0x50); }
  /** (a, b, mask) → bits of a where mask is 1, of b where 0. */
  v128Bitselect(): this { return this.simd(0x52); }
  f32x4Eq(): this { return this.simd(0x41); }
  f32x4Lt(): this { return this.simd(0x43); }
  f32x4Ge(): this { return this.simd(0x46); }
  f32x4Ne(): this { return this.simd(0x42); }
  f32x4Gt(): this { return this.simd(0x44); }
  f64x2Eq(): this { return this.simd(0x47); }
  f64x2Ne(): this { return this.simd(0x48); }
  f64x2Lt(): this { return this.simd(0x49); }
  f64x2Gt(): this { return this.simd(0x4a); }
  f64x2Ge(): this { return this.simd(0x4c); }
  /** Round to the nearest integer, ties to even. */
  f32x4Nearest(): this { return this.simd(0x6a); }
  /** (v, shift i32) → v << shift in each i32 lane. */
  i32x4Shl(): this { return this.simd(0xab); }
  /** (v, shift i32) → v >> shift (arithmetic) in each i32 lane. */
  i32x4ShrS(): this { return this.simd(0xac); }
  i32x4Add(): this { return this.simd(0xae); }
  i32x4Sub(): this { return this.simd(0xb1); }
  /** One float32 (an f32 on the stack), broadcast to the four lanes. */
  f32x4Splat(): this { return this.simd(0x13); }
  /** Lane `lane` of an f32x4, as an f32. */
  f32x4ExtractLane(lane: number): this { return this.simd(0x1f, lane); }
  f64x2ExtractLane(lane: number): this { return this.simd(0x21, lane); }
  /** (v, f32) → v with lane `lane` replaced. */
  f32x4ReplaceLane(lane: number): this { return this.simd(0x20, lane); }
  /** Lane `lane` of an i32x4, as an i32. */
  i32x4ExtractLane(lane: number): this { return this.simd(0x1b, lane); }
  /** All ones in each i32 lane where the two are equal. */
  i32x4Eq(): this { return this.simd(0x37); }
  f32x4Sqrt(): this { return this.simd(0xe3); }
  f32x4Abs(): this { return this.simd(0xe0); }
  f32x4Neg(): this { return this.simd(0xe1); }
  f32x4Add(): this { return this.simd(0xe4); }
  f32x4Sub(): this { return this.simd(0xe5); }
  f32x4Mul(): this { return this.simd(0xe6); }
  f32x4Div(): this { return this.simd(0xe7); }
  /** IEEE minimum (NaN if either lane is NaN). */
  f32x4Min(): this { return this.simd(0xe8); }
  f32x4Max(): this { return this.simd(0xe9); }
  /** float32 lanes (integral here) → i32 lanes, saturating; NaN → 0. */
  i32x4TruncSatF32x4S(): this { return this.simd(0xf8); }
  f64x2Abs(): this { return this.simd(0xec); }
  f64x2Neg(): this { return this.simd(0xed); }
  f64x2Add(): this { return this.simd(0xf0); }
  f64x2Sub(): this { return this.simd(0xf1); }
  f64x2Mul(): this { return this.simd(0xf2); }
  f64x2Div(): this { return this.simd(0xf3); }
  /** Round toward zero (C's (int) cast of an in-range value). */
  f64x2Trunc(): this { return this.simd(0x7a); }
  /** The two low float32 lanes → two float64 lanes (exact). */
  f64x2PromoteLowF32x4(): this { return this.simd(0x5f); }
  /** Two float64 lanes → the two low float32 lanes (rounded to nearest, as Math.fround), the high two 0. */
  f32x4DemoteF64x2Zero(): this { return this.simd(0x5e); }
  /** Two float64 lanes (integral here) → the two low i32 lanes, saturating; the high two 0. */
  i32x4TruncSatF64x2SZero(): this { return this.simd(0xfc); }
  /** The two low i32 lanes → two i64 lanes, sign-extended. */
  i64x2ExtendLowI32x4S(): this { return this.simd(0xc7); }
  /** 1 where every lane is nonzero (a comparison's lanes all true), else 0. */
  i64x2AllTrue(): this { return this.simd(0xc3); }
  /** (v, shift i32) → v << shift in each i64 lane. */
  i64x2Shl(): this { return this.simd(0xcb); }
  i64x2Add(): this { return this.simd(0xce); }
  i64x2Sub(): this { return this.simd(0xd1); }
  /** (v, shift i32) → v >> shift (logical) in each i64 lane. */
  i64x2ShrU(): this { return this.simd(0xcd); }
  i64x2Eq(): this { return this.simd(0xd6); }
  i64x2GtS(): this { return this.simd(0xd9); }
  i64x2LtS(): this { return this.simd(0xd8); }
  /** (v, shift i32) → v >> shift (logical) in each i32 lane. */
  i32x4ShrU(): this { return this.simd(0xad); }
  v128Xor(): this { return this.simd(0x51); }
  /** One i32 (on the stack) broadcast to the four lanes. */
  i32x4Splat(): this { return this.simd(0x11); }
  /** The low 32 bits of each lane's product. */
  i32x4Mul(): this { return this.simd(0xb5); }
  i32x4LtU(): this { return this.simd(0x3a); }
  /** Lanes 0, 1 (low) or 2, 3 (high) of two i32x4s multiplied unsigned into two i64 lanes. */
  i64x2ExtmulLowI32x4U(): this { return this.simd(0xde); }
  i64x2ExtmulHighI32x4U(): this { return this.simd(0xdf); }
  f64x2Sqrt(): this { return this.simd(0xef); }
  /** Round toward −∞. */
  f64x2Floor(): this { return this.simd(0x75); }
  /** The two low i32 lanes → two float64 lanes (exact), signed. */
  f64x2ConvertLowI32x4S(): this { return this.simd(0xfe); }
  /** The two low i32 lanes → two float64 lanes (exact), unsigned. */
  f64x2ConvertLowI32x4U(): this { return this.simd(0xff); }

  // ---- bulk memory (after 0xfc) ----
  /** (address, byte value, count) → nothing: count bytes from address set to the value. */
  memoryFill(): this { return this.op(0xfc, ...uleb(11), 0x00); }
  /** (destination, source, count) → nothing: count bytes copied (the ranges may overlap). */
  memoryCopy(): this { return this.op(0xfc, ...uleb(10), 0x00, 0x00); }

  // ---- atomics (threads proposal, after 0xfe); alignment must be natural ----
  /** (address, count) → woken: wakes up to count waiters on the i32 at address. */
  atomicNotify(offset = 0): this { return this.atomic(0x00, ...this.memarg(2, offset)); }
  /** (address, expected, timeout ns i64, -1 = forever) → 0 woken, 1 not-equal, 2 timed out. */
  atomicWait32(offset = 0): this { return this.atomic(0x01, ...this.memarg(2, offset)); }
  i32AtomicLoad(offset = 0): this { return this.atomic(0x10, ...this.memarg(2, offset)); }
  i32AtomicStore(offset = 0): this { return this.atomic(0x17, ...this.memarg(2, offset)); }
  /** (address, value) → old value. */
  i32AtomicAdd(offset = 0): this { return this.atomic(0x1e, ...this.memarg(2, offset)); }
  /** (address, expected, replacement) → old value; stores only when old = expected. */
  i32AtomicCmpxchg(offset = 0): this { return this.atomic(0x48, ...this.memarg(2, offset)); }

  // ---- structured helpers ----
  /** for (i = start; i < end; i += step) body(), with end and step i32 locals or constants. */
  forRange(i: Local, start: number | Local, end: Local, step: number | Local, body: () => void): this {
    const push = (v: number | Local) => (typeof v === 'number' ? this.i32(v) : this.get(v));
    push(start).set(i);
    return this.block(() => this.loop(() => {
      this.get(i).get(end).i32GeS().brIf(1);
      body();
      this.get(i); push(step); this.i32Add().set(i).br(0);
    }));
  }
}

interface FuncDef { name: string | null; params: ValType[]; results: ValType[]; code: Code }

interface FuncImport { name: string; params: ValType[]; results: ValType[] }

export interface MemoryImport { shared: boolean; initialPages: number; maximumPages: number }

/**
 * A module importing one memory (`env.memory`), optionally functions (`env.<name>`, declared
 * before any function of its own), and defining functions. Functions are referred to by index
 * (imports first, then definitions in declaration order), so they can call each other.
 */
export class ModuleBuilder {
  private readonly funcs: FuncDef[] = [];
  private readonly imported: FuncImport[] = [];

  constructor(private readonly memory: MemoryImport) {}

  /** Declares an imported function `env.<name>`; returns its index for `call`. */
  importFunc(name: string, params: ValType[], results: ValType[]): number {
    if (this.funcs.length > 0) throw new Error(`wasm emitter: import ${name} must come before the module's own functions`);
    this.imported.push({ name, params, results });
    return this.imported.length - 1;
  }

  /**
   * Declares a function; `body` emits its code given its parameters as locals. Returns its
   * index for `call`. A named function is exported under its name, but for a name starting
   * with '$' (an internal one): every name goes into the module's name section, so that a
   * profile (node --cpu-prof, a browser's profiler) shows it instead of wasm-function[i].
   */
  func(name: string | null, params: ValType[], results: ValType[], body: (c: Code, ...args: Local[]) => void): number {
    const { index, define } = this.declare(name, params, results);
    define(body);
    return index;
  }

  /** Declares a function whose body is emitted later (for mutual or forward calls). */
  declare(name: string | null, params: ValType[], results: ValType[]): { index: number; define(body: (c: Code, ...args: Local[]) => void): void } {
    const code = new Code(params.map((type, index) => ({ index, type })));
    const index = this.imported.length + this.funcs.length;
    this.funcs.push({ name, params, results, code });
    return { index, define: (body) => body(code, ...code.params) };
  }

  /** The index and parameter types of the module's own function `name` (for a dispatcher that calls it). */
  lookup(name: string): { index: number; params: readonly ValType[] } {
    const at = this.funcs.findIndex((f) => f.name === name);
    if (at < 0) throw new Error(`wasm emitter: no function ${name}`);
    return { index: this.imported.length + at, params: this.funcs[at]!.params };
  }

  bytes(): Uint8Array {
    const section = (id: number, payload: number[]) => [id, ...uleb(payload.length), ...payload];
    // Types: one per function, imports first (duplicates are legal; dedupe would only save bytes).
    const signatures = [...this.imported, ...this.funcs];
    const types = vec(signatures.map((f) => [0x60, ...vec(f.params.map((t) => [VALTYPE[t]])), ...vec(f.results.map((t) => [VALTYPE[t]]))]));
    const { shared, initialPages, maximumPages } = this.memory;
    // Limits flag: bit 0 = has maximum, bit 1 = shared (threads proposal).
    const limits = [shared ? 0x03 : 0x01, ...uleb(initialPages), ...uleb(maximumPages)];
    const imports = vec([
      [...utf8('env'), ...utf8('memory'), 0x02, ...limits],
      ...this.imported.map((f, i) => [...utf8('env'), ...utf8(f.name), 0x00, ...uleb(i)]),
    ]);
    const offset = this.imported.length;
    const funcIndex = vec(this.funcs.map((_, i) => uleb(offset + i)));
    const exports = vec(this.funcs.flatMap((f, i) => (f.name === null || f.name.startsWith('$') ? [] : [[...utf8(f.name), 0x00, ...uleb(offset + i)]])));
    const codes = vec(this.funcs.map((f) => {
      const body = [...f.code.localDecls(), ...f.code.bytes, 0x0b];
      return [...uleb(body.length), ...body];
    }));
    // The name section (a custom section, §7.4.1): subsection 1, the functions' names by index.
    const named = [...this.imported.map((f) => f.name), ...this.funcs.map((f, i) => f.name ?? `$f${offset + i}`)];
    const functionNames = vec(named.map((name, i) => [...uleb(i), ...utf8(name.startsWith('$') ? name.slice(1) : name)]));
    const names = [...utf8('name'), 0x01, ...uleb(functionNames.length), ...functionNames];
    return new Uint8Array([
      0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // "\0asm", version 1
      ...section(1, types), ...section(2, imports), ...section(3, funcIndex),
      ...section(7, exports), ...section(10, codes), ...section(0, names),
    ]);
  }
}
