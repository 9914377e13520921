// The SIMD128 kernels of float32 tensors other than products, emitted at load time (see
// wasm-emitter.ts), four lanes at a time: σ, tanh and softplus over an array and the LSTM cell's
// forward, Adam's update, the MoE combine and its backward, top-k indices (a row per lane), arithmetic (add, sub, mul, div
// over whole, scalar, row and column operands) and relu's gradient; e^x and Φ in float64
// lanes, two at a time (fdlibm's exp, which is V8's Math.exp: core/special.ts expF64), for
// the exp and normalCdf kernels and the MoE load estimator's P(x, i); and random draws: the
// Philox rounds (integer arithmetic), and normal draws whole, the rounds four blocks at a
// time in i32 lanes and the Box–Muller pairs in float64 lanes (core/philox.ts boxMuller,
// with fdlibm's log for the radius). σ, tanh and softplus run exactly
// the float32 steps of expF32 / sigmoidF32 / tanhF32 / softplusF32 in src/core/special.ts
// (Cephes' expf, tanhf and logf); every kernel is tested bit for bit against its scalar kernel
// (test/backends/cpu-simd-math.test.ts, test/tensor/weighted-index-add.test.ts): f32x4
// arithmetic rounds each lane as IEEE float32 does, subnormals included, as a double
// operation stored to float32 rounds, and nothing here fuses a multiply and an add. Through
// the backend's float32 ops an element costs, in the loops against here: e^x 10.5 against
// 6.6 ns, σ 34 against 2.9, Φ 29 against 13 (2026-12-04, one process). fdlibm's branchy
// algorithms gain little in lanes against V8's own Math.log and Math.log1p (8.5 against
// 9.8 ns for float64 ln; softplus 20 against 19–28), so ln serves the normal draws only;
// float32 softplus runs Cephes' logf in float32 lanes instead (6.4 against 16 ns through the
// op, [1024, 16], 2026-12-06).
//
// Memory: the SIMD matmul's shared memory where tensors live, when there is one (mathModuleBytes
// (true)), else a private one; WasmMath (wasm-math.ts) passes tensors there in place and
// stages the rest. Arrays are whole v128s: lengths are padded to a multiple of 4.

import { ERFC_NR, EXPF, FDLIBM_EXP, FDLIBM_LOG, LOGF, TANHF } from '../../../core/special.js';
import { PHILOX, SINCOS } from '../../../core/philox.js';
import { ModuleBuilder, type Code, type Local } from './wasm-emitter.js';

export type ArithmeticOp = 'add' | 'sub' | 'mul' | 'div';
/** How an arithmetic kernel reads its operands: vectors (v) or one float per row, splat (s). */
export type ArithmeticMode = 'vv' | 'sv' | 'vs';

/**
 * float32 arithmetic, one kernel per op and mode: `rows` rows of `vecs` v128s, out row r =
 * A_r ⊕ B_r, A_r at a + r·aStep (a vector row, or one float splat), likewise B_r; out rows
 * contiguous. Each lane rounds as the scalar kernel's double operation stored to float32
 * does (IEEE single, subnormals kept).
 */
export type ArithmeticExports = {
  [K in `${ArithmeticOp}_${ArithmeticMode}_f32`]: (a: number, b: number, out: number, rows: number, aStep: number, bStep: number, vecs: number) => void;
};

export interface MathExports extends ArithmeticExports {
  /** dst[i] = σ(src[i]) for `vectors` v128s of float32. */
  sigmoid_f32(src: number, dst: number, vectors: number): void;
  tanh_f32(src: number, dst: number, vectors: number): void;
  softplus_f32(src: number, dst: number, vectors: number): void;
  /** The m largest of each of `rows` rows of n float32 at x: indices into out (rows × m i32), flags[r] = 1 where JavaScript must redo row r; slots: 2m v128s of scratch. */
  topk_f32(x: number, rows: number, n: number, m: number, out: number, flags: number, slots: number): void;
  /**
   * The LSTM cell on planes of n = 4·vectors floats: gate pre-activations i, f, g, o at
   * z, z + n, z + 2n, z + 3n (in floats), the cell c, and out's 7 planes h', c', σ(i), σ(f),
   * tanh(g), σ(o), tanh(c') (src/backends/cpu/fused.ts lstmCellForward's layout).
   */
  lstm_f32(z: number, c: number, out: number, vectors: number): void;
  /**
   * Philox4x32-10 blocks number b, b + 1, …, b + count − 1 of the stream (key0, key1), with
   * b = bHi·2³² + bLo, as core/philox.ts philoxBlocks computes them: 4 uint32 words each at dst.
   * Integer arithmetic (i64 products for the high words), so the same bits.
   */
  philox(bLo: number, bHi: number, count: number, key0: number, key1: number, dst: number): void;
  /**
   * The MoE combine (indexing.ts weightedIndexAdd, float32, bit for bit): out [numRows, 4·vecs]
   * zeroed, then out[idx[i]] += w[i] · y[i] for the m rows i of y in order (f32x4 products and
   * sums round as the scalar kernel's fround and float32 stores).
   */
  combine_f32(y: number, w: number, idx: number, out: number, m: number, vecs: number, numRows: number): void;
  /**
   * Its backward (weightedIndexAddBackward): dy[i] = w[i] · dOut[idx[i]], and dw[i] = Σ_j
   * fround(dOut[idx[i], j] · y[i, j]) summed in float64 in column order, then rounded once.
   */
  combineBackward_f32(dOut: number, y: number, w: number, idx: number, dy: number, dw: number, m: number, vecs: number): void;
  /** dst[i] = e^src[i] for `vecs` v128s of float64 (core/special.ts expF64: Math.exp's bits). */
  exp_f64(src: number, dst: number, vecs: number): void;
  /** dst[i] = fround(e^src[i]) for `vecs` v128s of float32, e^x in float64 (the exp kernel's float32 bits). */
  exp_f32(src: number, dst: number, vecs: number): void;
  /** dst[i] = fround(Φ(src[i])) for `vecs` v128s of float32 (core/special.ts normalCdfFloat32). */
  normalCdf_f32(src: number, dst: number, vecs: number): void;
  /** P = Φ((clean − thr) / sd) over planes of 4·vecs floats (gating.ts probInTopK's float32 bits, thresholds given per element). */
  probInTopK_f32(clean: number, thr: number, sd: number, out: number, vecs: number): void;
  /** Its gradients' elementwise part: dClean = dz / sd and dSd = −dz · (z / sd) (gating.ts probInTopKBackward, float32). */
  probInTopKBackward_f32(dP: number, clean: number, thr: number, sd: number, dClean: number, dSd: number, vecs: number): void;
  /**
   * Their per-element thresholds over `rows` rows of 4·vecs float32 (gating.ts thresholds): thr =
   * noisy > tIn ? tIn : tOut, the row's tIn and tOut the float32 pair at tRows + 8·row.
   */
  thresholds_f32(noisy: number, tRows: number, thr: number, rows: number, vecs: number): void;
  /**
   * The thresholds' gradients' sums (gating.ts probInTopKBackward): per row, the float64 sums
   * from 0, in column order, of −dClean over the experts with noisy > tIn and over the others,
   * into the float64 pair at sums + 16·row.
   */
  thresholdSums_f32(noisy: number, dClean: number, tRows: number, sums: number, rows: number, vecs: number): void;
  /**
   * logsumexp's parts over `rows` rows of 4·vecs float32 at x (reduce.ts logsumexpRows, bit for
   * bit): each row's shift (its max, NaN if it holds one, +0 where that is not finite) into
   * shifts (float32), and the float64 sum, in column order from 0, of e^(x − shift) rounded to
   * float32 (e^x in float64 lanes) into sums.
   */
  logsumexpRows_f32(x: number, rows: number, vecs: number, sums: number, shifts: number): void;
  /** Runs a piece of a split kernel call: CHUNKED[id] on the CHUNK_WORDS − 1 argument words after the id at entry. */
  chunk(entry: number): void;
  /**
   * dst[i] = ln src[i] for `vecs` v128s of float64 (fdlibm's log: Math.log's bits): the lanes
   * of the normal draws' radius, exported so that a test checks them against Math.log. The
   * backend's log op stays on Math.log, which is as fast.
   */
  log_f64(src: number, dst: number, vecs: number): void;
  /**
   * The Box–Muller pairs of Philox blocks b … b + count − 1 (b = bHi·2³² + bLo, count a
   * multiple of 4; core/philox.ts fillRandom's normal draws, bit for bit): block j's
   * (r·cos, r·sin) at dst[2j], dst[2j + 1], as float32 (rounded once) or float64.
   */
  normal_f32(bLo: number, bHi: number, count: number, key0: number, key1: number, dst: number): void;
  normal_f64(bLo: number, bHi: number, count: number, key0: number, key1: number, dst: number): void;
  /** relu's gradient dy · (x > 0 ? 1 : 0) over `vecs` v128s (the reluGrad kernel's bits, NaN and −0 included). */
  reluGrad_f32(dy: number, x: number, out: number, vecs: number): void;
  /**
   * Adam's float32 update (fused.ts adamStep, rounding for rounding) over planes of 4·vectors
   * floats from `base`: p, g, m, v in, then p', m', v' out. The scalars are the kernel's
   * float32 constants; coupled / decoupled select the weight decay.
   */
  adam_f32(base: number, vectors: number, b1: number, b2: number, c1: number, c2: number, sq: number, eps: number, stepSize: number,
    wd: number, shrink: number, coupled: number, decoupled: number): void;
}

/** into = p[0]·xⁿ + … + p[n] over the float32 lanes of x by Horner's rule (core/special.ts hornerF32, step for step). */
function emitHorner(c: Code, into: Local, x: Local, p: readonly number[]): void {
  c.f32x4Const(p[0]!).set(into);
  for (let k = 1; k < p.length; k++) c.get(into).get(x).f32x4Mul().f32x4Const(p[k]!).f32x4Add().set(into);
}

/** Emits e^x of the v128 in `x` (clobbering the scratch locals); leaves the result on the stack. */
function emitExp(c: Code, x: Local, t: { r: Local; q: Local; n: Local; i: Local }): void {
  const { log2e, c1, c2, hi, lo, p } = EXPF;
  // v = max(min(x, 89), −104); n = nearest(v · log2 e)
  c.get(x).f32x4Const(hi).f32x4Min().f32x4Const(lo).f32x4Max().set(x);
  c.get(x).f32x4Const(log2e).f32x4Mul().f32x4Nearest().set(t.n);
  // r = (v − n·c1) − n·c2
  c.get(x).get(t.n).f32x4Const(c1).f32x4Mul().f32x4Sub().get(t.n).f32x4Const(c2).f32x4Mul().f32x4Sub().set(t.r);
  // q = Horner over p; y = ((q · r²) + r) + 1
  emitHorner(c, t.q, t.r, p);
  c.get(t.q).get(t.r).get(t.r).f32x4Mul().f32x4Mul().get(t.r).f32x4Add().f32x4Const(1).f32x4Add();
  // · 2^n1 · 2^n2, n1 = n >> 1, n2 = n − n1, each 2^m built as the bits (m + 127) << 23.
  c.get(t.n).i32x4TruncSatF32x4S().set(t.i);
  c.get(t.i).i32(1).i32x4ShrS().i32x4Const(127).i32x4Add().i32(23).i32x4Shl().f32x4Mul();
  c.get(t.i).get(t.i).i32(1).i32x4ShrS().i32x4Sub().i32x4Const(127).i32x4Add().i32(23).i32x4Shl().f32x4Mul();
}

interface Scratch { a: Local; e: Local; r: Local; q: Local; n: Local; i: Local }

function scratch(c: Code): Scratch {
  return { a: c.local('v128'), e: c.local('v128'), r: c.local('v128'), q: c.local('v128'), n: c.local('v128'), i: c.local('v128') };
}

/** σ of the v128 in x, left on the stack: (x ≥ 0 ? 1 : e) / (1 + e), e = e^−|x|. */
function emitSigmoid(c: Code, x: Local, s: Scratch): void {
  c.get(x).f32x4Abs().f32x4Neg().set(s.e);
  emitExp(c, s.e, s);
  c.set(s.e);
  c.f32x4Const(1).get(s.e).get(x).f32x4Const(0).f32x4Ge().v128Bitselect();
  c.f32x4Const(1).get(s.e).f32x4Add().f32x4Div();
}

/** tanh of the v128 in x, left on the stack (x itself is kept). */
function emitTanh(c: Code, x: Local, s: Scratch): void {
  const p = TANHF.p;
  c.get(x).f32x4Abs().set(s.a);
  // Large |x|: 1 − 2 / (e^2|x| + 1)
  c.get(s.a).get(s.a).f32x4Add().set(s.e);
  emitExp(c, s.e, s);
  c.set(s.e);
  c.f32x4Const(1).f32x4Const(2).get(s.e).f32x4Const(1).f32x4Add().f32x4Div().f32x4Sub().set(s.e);
  // Small |x|: ((q · z) · |x|) + |x|, z = x², q by Horner
  c.get(s.a).get(s.a).f32x4Mul().set(s.r);
  emitHorner(c, s.q, s.r, p);
  c.get(s.q).get(s.r).f32x4Mul().get(s.a).f32x4Mul().get(s.a).f32x4Add();
  // select by |x| < 0.625, then x's sign bit (the result is ≥ +0 before it)
  c.get(s.e).get(s.a).f32x4Const(TANHF.small).f32x4Lt().v128Bitselect();
  c.get(x).i32x4Const(-0x80000000).v128And().v128Or();
}

interface SoftplusScratch extends Scratch { u: Local; w: Local; f: Local; z: Local; y: Local; k: Local }

function softplusScratch(c: Code): SoftplusScratch {
  return { ...scratch(c), u: c.local('v128'), w: c.local('v128'), f: c.local('v128'), z: c.local('v128'), y: c.local('v128'), k: c.local('v128') };
}

/** softplus of the v128 in x, left on the stack (x kept): core/special.ts softplusF32, step for step. */
function emitSoftplus(c: Code, x: Local, s: SoftplusScratch): void {
  const { sqrt2, q1, q2, p } = LOGF;
  // u = e^−|x|, w = 1 + u; k = 1 (else 0) and f = w/2 − 1 (else w − 1) where w > √2
  c.get(x).f32x4Abs().f32x4Neg().set(s.u);
  emitExp(c, s.u, s);
  c.set(s.u);
  c.f32x4Const(1).get(s.u).f32x4Add().set(s.w);
  c.get(s.w).f32x4Const(sqrt2).f32x4Gt().set(s.a);
  c.f32x4Const(1).f32x4Const(0).get(s.a).v128Bitselect().set(s.k);
  c.get(s.w).f32x4Const(0.5).f32x4Mul().f32x4Const(1).f32x4Sub().get(s.w).f32x4Const(1).f32x4Sub().get(s.a).v128Bitselect().set(s.f);
  // z = f², y = Horner over p, then ((y·f)·z + k·q1) + (−½·z)
  c.get(s.f).get(s.f).f32x4Mul().set(s.z);
  emitHorner(c, s.y, s.f, p);
  c.get(s.y).get(s.f).f32x4Mul().get(s.z).f32x4Mul().f32x4Const(q1).get(s.k).f32x4Mul().f32x4Add()
    .f32x4Const(-0.5).get(s.z).f32x4Mul().f32x4Add().set(s.y);
  // ln w = (f + y) + k·q2; log1p u = ln w + (u − (w − 1)) / w; + max(x, 0)
  c.get(x).f32x4Const(0).f32x4Max();
  c.get(s.f).get(s.y).f32x4Add().f32x4Const(q2).get(s.k).f32x4Mul().f32x4Add();
  c.get(s.u).get(s.w).f32x4Const(1).f32x4Sub().f32x4Sub().get(s.w).f32x4Div().f32x4Add();
  c.f32x4Add();
}

/** for (v = 0; v < vectors; v++) body(byte offset of vector v) */
function eachVector(c: Code, vectors: Local, body: (offset: Local) => void): void {
  const v = c.local('i32'), off = c.local('i32');
  c.forRange(v, 0, vectors, 1, () => {
    c.get(v).i32(4).i32Shl().set(off);
    body(off);
  });
}

/** dst[v] = emit(src[v]) for `vectors` v128s, with the scratch locals `locals` declares. */
function emitUnary<S>(mod: ModuleBuilder, name: string, locals: (c: Code) => S, emit: (c: Code, x: Local, s: S) => void): void {
  mod.func(name, ['i32', 'i32', 'i32'], [], (c, src, dst, vectors) => {
    const x = c.local('v128'), s = locals(c);
    eachVector(c, vectors!, (off) => {
      c.get(src!).get(off).i32Add().v128Load().set(x);
      c.get(dst!).get(off).i32Add();
      emit(c, x, s);
      c.v128Store();
    });
  });
}

function emitLstm(mod: ModuleBuilder): void {
  mod.func('lstm_f32', ['i32', 'i32', 'i32', 'i32'], [], (c, z, cell, out, vectors) => {
    const plane = c.local('i32'); // bytes per plane
    const x = c.local('v128'), s = scratch(c);
    const si = c.local('v128'), sf = c.local('v128'), tg = c.local('v128'), so = c.local('v128'), cn = c.local('v128'), tc = c.local('v128');
    const base = c.local('i32'), dst = c.local('i32');
    c.get(vectors!).i32(4).i32Shl().set(plane);
    eachVector(c, vectors!, (off) => {
      c.get(z!).get(off).i32Add().set(base);
      const gate = (g: number, into: Local, f: 'sigmoid' | 'tanh') => {
        c.get(base);
        for (let k = 0; k < g; k++) c.get(plane).i32Add();
        c.v128Load().set(x);
        if (f === 'sigmoid') emitSigmoid(c, x, s);
        else emitTanh(c, x, s);
        c.set(into);
      };
      gate(0, si, 'sigmoid');
      gate(1, sf, 'sigmoid');
      gate(2, tg, 'tanh');
      gate(3, so, 'sigmoid');
      // c' = σ(f)·c + σ(i)·tanh(g); h' = σ(o)·tanh(c')
      c.get(sf).get(cell!).get(off).i32Add().v128Load().f32x4Mul().get(si).get(tg).f32x4Mul().f32x4Add().set(cn);
      emitTanh(c, cn, s);
      c.set(tc);
      c.get(out!).get(off).i32Add().set(dst);
      const store = (value: () => void) => { c.get(dst); value(); c.v128Store(); c.get(dst).get(plane).i32Add().set(dst); };
      store(() => c.get(so).get(tc).f32x4Mul());
      for (const l of [cn, si, sf, tg, so, tc]) store(() => c.get(l));
    });
  });
}

function emitAdam(mod: ModuleBuilder): void {
  mod.func('adam_f32', ['i32', 'i32', 'f32', 'f32', 'f32', 'f32', 'f32', 'f32', 'f32', 'f32', 'f32', 'i32', 'i32'], [],
    (c, base, vectors, b1, b2, c1, c2, sq, eps, stepSize, wd, shrink, coupled, decoupled) => {
      const plane = c.local('i32'), at = c.local('i32');
      const p = c.local('v128'), g = c.local('v128'), m = c.local('v128'), v = c.local('v128'), param = c.local('v128');
      const splat = (x: Local) => c.get(x).f32x4Splat();
      c.get(vectors!).i32(4).i32Shl().set(plane);
      eachVector(c, vectors!, (off) => {
        c.get(base!).get(off).i32Add().set(at);
        const load = (k: number, into: Local) => { c.get(at); for (let j = 0; j < k; j++) c.get(plane).i32Add(); c.v128Load().set(into); };
        load(0, p); load(1, g); load(2, m); load(3, v);
        // g += p·wd (L2, coupled); param = p·shrink (AdamW) or p
        c.get(coupled!).if(() => { c.get(g).get(p); splat(wd!); c.f32x4Mul().f32x4Add().set(g); });
        c.get(p).set(param);
        c.get(decoupled!).if(() => { c.get(p); splat(shrink!); c.f32x4Mul().set(param); });
        // m = m·b1 + g·c1; v = v·b2 + (g·g)·c2
        c.get(m); splat(b1!); c.f32x4Mul().get(g); splat(c1!); c.f32x4Mul().f32x4Add().set(m);
        c.get(v); splat(b2!); c.f32x4Mul().get(g).get(g).f32x4Mul(); splat(c2!); c.f32x4Mul().f32x4Add().set(v);
        // p' = param − (m / (√v / sq + eps))·stepSize, stored at plane 4; m', v' at planes 5, 6
        const store = (k: number, value: () => void) => { c.get(at); for (let j = 0; j < k; j++) c.get(plane).i32Add(); value(); c.v128Store(); };
        store(4, () => {
          c.get(param).get(m).get(v).f32x4Sqrt(); splat(sq!); c.f32x4Div(); splat(eps!); c.f32x4Add().f32x4Div(); splat(stepSize!); c.f32x4Mul().f32x4Sub();
        });
        store(5, () => c.get(m));
        store(6, () => c.get(v));
      });
    });
}

/** combine_f32 and combineBackward_f32: rows of 4·vecs floats, one splat weight per row. */
function emitCombine(mod: ModuleBuilder): void {
  mod.func('combine_f32', ['i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32'], [], (c, y, w, idx, out, m, vecs, numRows) => {
    const i = c.local('i32'), v = c.local('i32'), rowBytes = c.local('i32'), total = c.local('i32'), at = c.local('i32'), src = c.local('i32'), g = c.local('v128');
    c.get(vecs).i32(4).i32Shl().set(rowBytes);
    c.get(numRows).get(vecs).i32Mul().set(total);
    c.forRange(v, 0, total, 1, () => { c.get(out).get(v).i32(4).i32Shl().i32Add().f32x4Const(0).v128Store(); });
    c.forRange(i, 0, m, 1, () => {
      c.get(w).get(i).i32(2).i32Shl().i32Add().v128Load32Splat().set(g);
      c.get(out).get(idx).get(i).i32(2).i32Shl().i32Add().load('i32').get(rowBytes).i32Mul().i32Add().set(at);
      c.get(y).get(i).get(rowBytes).i32Mul().i32Add().set(src);
      c.forRange(v, 0, vecs, 1, () => {
        c.get(at).get(at).v128Load().get(g).get(src).v128Load().f32x4Mul().f32x4Add().v128Store();
        c.get(at).i32(16).i32Add().set(at);
        c.get(src).i32(16).i32Add().set(src);
      });
    });
  });
  // Each row's ∂w is a chain of float64 adds in column order (the scalar loop's order, so its
  // bits): R rows at a time keep R independent chains in flight instead of one waiting on the
  // add before it.
  const R = 4;
  mod.func('combineBackward_f32', ['i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32'], [], (c, dOut, y, w, idx, dy, dw, m, vecs) => {
    const i = c.local('i32'), v = c.local('i32'), rowBytes = c.local('i32'), mWhole = c.local('i32'), r = c.local('i32');
    const src = Array.from({ length: R }, () => c.local('i32')), row = Array.from({ length: R }, () => c.local('i32'));
    const g = Array.from({ length: R }, () => c.local('v128')), acc = Array.from({ length: R }, () => c.local('f64'));
    const o = c.local('v128'), p = c.local('v128');
    c.get(vecs).i32(4).i32Shl().set(rowBytes);
    c.get(m).get(m).i32(R).i32RemU().i32Sub().set(mWhole);
    // rows i … i + n − 1 (n = R, or 1 for the rows after the last whole group), row t's pointers in slot t.
    const rows = (n: number, first: () => void) => {
      for (let t = 0; t < n; t++) {
        first(); if (t > 0) c.i32(t).i32Add(); c.set(r);
        c.get(w).get(r).i32(2).i32Shl().i32Add().v128Load32Splat().set(g[t]!);
        c.get(dOut).get(idx).get(r).i32(2).i32Shl().i32Add().load('i32').get(rowBytes).i32Mul().i32Add().set(src[t]!);
        c.get(r).get(rowBytes).i32Mul().set(row[t]!);
        c.f64Zero().set(acc[t]!);
      }
      c.forRange(v, 0, vecs, 1, () => {
        for (let t = 0; t < n; t++) {
          c.get(src[t]!).v128Load().set(o);
          c.get(dy).get(row[t]!).i32Add().get(g[t]!).get(o).f32x4Mul().v128Store();
          c.get(o).get(y).get(row[t]!).i32Add().v128Load().f32x4Mul().set(p);
          // Four float64 adds in column order, as the scalar loop's acc += fround(o · y).
          for (let lane = 0; lane < 4; lane++) c.get(acc[t]!).get(p).f32x4ExtractLane(lane).f64PromoteF32().f64Add().set(acc[t]!);
          c.get(src[t]!).i32(16).i32Add().set(src[t]!);
          c.get(row[t]!).i32(16).i32Add().set(row[t]!);
        }
      });
      for (let t = 0; t < n; t++) {
        first(); if (t > 0) c.i32(t).i32Add(); c.set(r);
        c.get(dw).get(r).i32(2).i32Shl().i32Add().get(acc[t]!).f32DemoteF64().store('f32');
      }
    };
    c.forRange(i, 0, mWhole, R, () => rows(R, () => c.get(i)));
    c.forRange(i, mWhole, m, 1, () => rows(1, () => c.get(i)));
  });
}

/** The float32 arithmetic kernels (see MathExports), one per op and splat mode, and reluGrad. */
function emitArithmetic(mod: ModuleBuilder): void {
  for (const op of ['add', 'sub', 'mul', 'div'] as const) {
    for (const mode of ['vv', 'sv', 'vs'] as const) {
      mod.func(`${op}_${mode}_f32`, ['i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32'], [], (c, a, b, out, rows, aStep, bStep, vecs) => {
        const r = c.local('i32'), v = c.local('i32'), aRow = c.local('i32'), bRow = c.local('i32'), o = c.local('i32'), s = c.local('v128');
        c.get(out).set(o);
        c.forRange(r, 0, rows, 1, () => {
          c.get(a).get(r).get(aStep).i32Mul().i32Add().set(aRow);
          c.get(b).get(r).get(bStep).i32Mul().i32Add().set(bRow);
          if (mode === 'sv') c.get(aRow).v128Load32Splat().set(s);
          if (mode === 'vs') c.get(bRow).v128Load32Splat().set(s);
          c.forRange(v, 0, vecs, 1, () => {
            c.get(o);
            if (mode === 'sv') c.get(s); else c.get(aRow).get(v).i32(4).i32Shl().i32Add().v128Load();
            if (mode === 'vs') c.get(s); else c.get(bRow).get(v).i32(4).i32Shl().i32Add().v128Load();
            ({ add: () => c.f32x4Add(), sub: () => c.f32x4Sub(), mul: () => c.f32x4Mul(), div: () => c.f32x4Div() })[op]();
            c.v128Store();
            c.get(o).i32(16).i32Add().set(o);
          });
        });
      });
    }
  }
  mod.func('reluGrad_f32', ['i32', 'i32', 'i32', 'i32'], [], (c, dy, x, out, vecs) => {
    const v = c.local('i32'), off = c.local('i32');
    c.forRange(v, 0, vecs, 1, () => {
      c.get(v).i32(4).i32Shl().set(off);
      c.get(out).get(off).i32Add();
      c.get(dy).get(off).i32Add().v128Load();
      c.f32x4Const(1).f32x4Const(0).get(x).get(off).i32Add().v128Load().f32x4Const(0).f32x4Gt().v128Bitselect();
      c.f32x4Mul().v128Store();
    });
  });
}

/** philox(bLo, bHi, count, key0, key1, dst): the ten rounds unrolled, one block per iteration. */
function emitPhilox(mod: ModuleBuilder): void {
  mod.func('philox', ['i32', 'i32', 'i32', 'i32', 'i32', 'i32'], [], (c, bLo, bHi, count, key0, key1, dst) => {
    const b = c.local('i64'), i = c.local('i32'), p0 = c.local('i64'), p1 = c.local('i64');
    const [c0, c1, c2, c3, k0, k1] = Array.from({ length: 6 }, () => c.local('i32')) as [Local, Local, Local, Local, Local, Local];
    c.get(bHi).i64ExtendI32U().i64(32n).i64Shl().get(bLo).i64ExtendI32U().i64Or().set(b);
    c.forRange(i, 0, count, 1, () => {
      c.get(b).i32WrapI64().set(c0);
      c.get(b).i64(32n).i64ShrU().i32WrapI64().set(c1);
      c.i32(0).set(c2).i32(0).set(c3);
      c.get(key0).set(k0).get(key1).set(k1);
      for (let round = 0; round < 10; round++) {
        // (hi, lo) of M0·c0 and M1·c2 as u64 products.
        c.i64(BigInt(PHILOX.M0)).get(c0).i64ExtendI32U().i64Mul().set(p0);
        c.i64(BigInt(PHILOX.M1)).get(c2).i64ExtendI32U().i64Mul().set(p1);
        c.get(p1).i64(32n).i64ShrU().i32WrapI64().get(c1).i32Xor().get(k0).i32Xor().set(c0);
        c.get(p1).i32WrapI64().set(c1);
        c.get(p0).i64(32n).i64ShrU().i32WrapI64().get(c3).i32Xor().get(k1).i32Xor().set(c2);
        c.get(p0).i32WrapI64().set(c3);
        c.get(k0).i32(PHILOX.W0).i32Add().set(k0);
        c.get(k1).i32(PHILOX.W1).i32Add().set(k1);
      }
      c.get(dst).get(c0).store('i32', 0).get(dst).get(c1).store('i32', 4).get(dst).get(c2).store('i32', 8).get(dst).get(c3).store('i32', 12);
      c.get(dst).i32(16).i32Add().set(dst);
      c.get(b).i64(1n).i64Add().set(b);
    });
  });
}

/** A float64 whose high word is `hi` and low word 0: |x| < it ⟺ the high word of |x| < hi. */
function highWord(hi: number): number {
  return new Float64Array(new Uint32Array([0, hi]).buffer)[0]!;
}
const SIGN64 = -0x8000000000000000n;

/** v128 locals: emitExpF64's (a … kk), emitNormalCdf's (z, u, w) and emitViaF64's float64 half (lanes). */
interface F64Scratch { a: Local; k: Local; b: Local; hi: Local; lo: Local; r: Local; t: Local; q: Local; c: Local; y: Local; kk: Local; z: Local; u: Local; w: Local; lanes: Local }

function f64Scratch(c: Code): F64Scratch {
  return Object.fromEntries(['a', 'k', 'b', 'hi', 'lo', 'r', 't', 'q', 'c', 'y', 'kk', 'z', 'u', 'w', 'lanes'].map((n) => [n, c.local('v128')])) as unknown as F64Scratch;
}

/**
 * e^x of the two float64 lanes of x, left on the stack (x kept): core/special.ts expF64 —
 * fdlibm's exp, V8's Math.exp — step for step, its branches as lane selects; with `fast`, a
 * vector whose lanes need none of those selects skips them (below).
 */
function emitExpF64(c: Code, x: Local, s: F64Scratch, fast = true): void {
  const E = FDLIBM_EXP;
  const copysign = (value: number) => c.get(x).i64x2Const(SIGN64).v128And().f64x2Const(value).v128Or();
  c.get(x).f64x2Abs().set(s.a);
  // k = trunc(x / ln 2 ± ½); ±1 where |x| < 1.5 ln 2; 0 where |x| ≤ 0.5 ln 2 (mask b: above it)
  c.get(x).f64x2Const(E.invLn2).f64x2Mul();
  copysign(E.half);
  c.f64x2Add().f64x2Trunc().set(s.k);
  copysign(1);
  c.get(s.k).get(s.a).f64x2Const(highWord(E.hiThreeHalvesLn2)).f64x2Lt().v128Bitselect().set(s.k);
  c.get(s.a).f64x2Const(highWord(E.hiHalfLn2 + 1)).f64x2Ge().set(s.b);
  c.get(s.k).f64x2Const(0).get(s.b).v128Bitselect().set(s.k);
  // hi = x − k·ln2Hi, lo = k·ln2Lo, r = hi − lo (r = x where k = 0)
  c.get(x).get(s.k).f64x2Const(E.ln2Hi).f64x2Mul().f64x2Sub().set(s.hi);
  c.get(s.k).f64x2Const(E.ln2Lo).f64x2Mul().set(s.lo);
  c.get(s.hi).get(s.lo).f64x2Sub().set(s.r);
  // t = r², c = r − t·(P1 + t·(P2 + t·(P3 + t·(P4 + t·P5))))
  c.get(s.r).get(s.r).f64x2Mul().set(s.t);
  const p = E.p;
  c.get(s.t).f64x2Const(p[4]!).f64x2Mul().set(s.q);
  for (let i = 3; i >= 0; i--) c.f64x2Const(p[i]!).get(s.q).f64x2Add().get(s.t).f64x2Mul().set(s.q);
  c.get(s.r).get(s.q).f64x2Sub().set(s.c);
  // 1 − ((lo − (r·c)/(2 − c)) − hi). fdlibm takes 1 − ((r·c)/(c − 2) − r) where k = 0; there
  // hi = r and lo = +0, and the two agree bit for bit: c − 2 = −(2 − c) and a/(−b) = −(a/b)
  // exactly, so (r·c)/(c − 2) = −q for q = (r·c)/(2 − c), and 0 − q = −q but for q = ±0, where
  // the sign of a zero inside 1 − (…) does not reach the result. One division, not two.
  c.f64x2Const(1).get(s.lo).get(s.r).get(s.c).f64x2Mul().f64x2Const(2).get(s.c).f64x2Sub().f64x2Div().f64x2Sub().get(s.hi).f64x2Sub().f64x2Sub().set(s.y);
  const scaled = (): void => {
    // · 2^k: y·2·2^1023 for k = 1024, y·2^(k+1000)·2^−1000 below −1021 (each factor 1 where unused)
    c.get(s.k).f64x2Const(1024).f64x2Eq().set(s.b);
    c.get(s.y).f64x2Const(2).f64x2Const(1).get(s.b).v128Bitselect().f64x2Mul().set(s.y);
    c.f64x2Const(1023).get(s.k).get(s.b).v128Bitselect().set(s.kk);
    c.get(s.k).f64x2Const(-1021).f64x2Lt().set(s.b);
    c.get(s.kk).f64x2Const(1000).f64x2Add().get(s.kk).get(s.b).v128Bitselect().set(s.kk);
    c.get(s.y).get(s.kk).i32x4TruncSatF64x2SZero().i64x2ExtendLowI32x4S().i64x2Const(1023n).i64x2Add().i32(52).i64x2Shl().f64x2Mul();
    c.f64x2Const(E.twoM1000).f64x2Const(1).get(s.b).v128Bitselect().f64x2Mul().set(s.y);
    // The early returns, as lane selects: |x| < 2⁻²⁸ → 1 + x; x = 1 → e; overflow → ∞ (+∞ too);
    // underflow → 0 (−∞ too); NaN → x + x.
    c.f64x2Const(1).get(x).f64x2Add().get(s.y).get(s.a).f64x2Const(highWord(E.hiTiny)).f64x2Lt().v128Bitselect().set(s.y);
    c.f64x2Const(Math.E).get(s.y).get(x).f64x2Const(1).f64x2Eq().v128Bitselect().set(s.y);
    c.f64x2Const(Infinity).get(s.y).get(x).f64x2Const(E.overflow).f64x2Gt().v128Bitselect().set(s.y);
    c.f64x2Const(0).get(s.y).get(x).f64x2Const(E.underflow).f64x2Lt().v128Bitselect().set(s.y);
    c.get(x).get(x).f64x2Add().get(s.y).get(x).get(x).f64x2Ne().v128Bitselect().set(s.y);
  };
  if (!fast) { scaled(); c.get(s.y); return; }
  // Both lanes inside 2⁻²⁸ ≤ |x| < 708 and x ≠ 1 (NaN fails the comparisons): −1021 ≤ k ≤ 1021,
  // so y·2^k is one multiply by a normal power of two, and none of `scaled`'s selects would
  // change a lane: the pair skips them (the same bits: each skipped select keeps y, each
  // skipped factor is 1). Measured (one thread, 262144 float32
  // values, one process alternating): e^x 1.23 → 0.89 ms, logsumexp rows 1.60 → 1.32, P(x, i)'s
  // gradient 2.04 → 1.67. Φ (emitNormalCdf) takes the full steps: with the shortcut its P(x, i)
  // ran 10% slower (2.86 → 3.15 ms), whatever the lanes.
  c.get(s.a).f64x2Const(2 ** -28).f64x2Ge().get(s.a).f64x2Const(708).f64x2Lt().v128And()
    .get(x).f64x2Const(1).f64x2Ne().v128And().i64x2AllTrue();
  c.if(() => {
    c.get(s.y).get(s.k).i32x4TruncSatF64x2SZero().i64x2ExtendLowI32x4S().i64x2Const(1023n).i64x2Add().i32(52).i64x2Shl().f64x2Mul().set(s.y);
  }, scaled);
  c.get(s.y);
}

/** Φ of the two float64 lanes of v (core/special.ts normalCdfFloat32, step for step), left on the stack; v is clobbered. */
function emitNormalCdf(c: Code, v: Local, s: F64Scratch): void {
  const { z, u: tt, w: p } = s;
  // z = −v / √2, a = |z|, t = 1 / (1 + ½a)
  c.get(v).f64x2Neg().f64x2Const(Math.SQRT2).f64x2Div().set(z);
  c.f64x2Const(1).f64x2Const(1).f64x2Const(0.5).get(z).f64x2Abs().f64x2Mul().f64x2Add().f64x2Div().set(tt);
  // q = t·last, then q = t·(c + q) for each c
  c.get(tt).f64x2Const(ERFC_NR.last).f64x2Mul().set(p);
  for (const k of ERFC_NR.c) c.get(tt).f64x2Const(k).get(p).f64x2Add().f64x2Mul().set(p);
  // r = t·exp((−a·a − offset) + q)
  c.get(z).f64x2Abs().f64x2Neg().get(z).f64x2Abs().f64x2Mul().f64x2Const(ERFC_NR.offset).f64x2Sub().get(p).f64x2Add().set(v);
  c.get(tt);
  emitExpF64(c, v, s, false);
  c.f64x2Mul().set(p);
  // ½·(z ≥ 0 ? r : 2 − r)
  c.f64x2Const(0.5).get(p).f64x2Const(2).get(p).f64x2Sub().get(z).f64x2Const(0).f64x2Ge().v128Bitselect().f64x2Mul();
}

interface LogScratch { sub: Local; xs: Local; hx: Local; k: Local; i: Local; f: Local; dk: Local; r: Local; sv: Local; z: Local; w: Local; hfsq: Local; y: Local }

function logScratch(c: Code): LogScratch {
  return Object.fromEntries(['sub', 'xs', 'hx', 'k', 'i', 'f', 'dk', 'r', 'sv', 'z', 'w', 'hfsq', 'y'].map((n) => [n, c.local('v128')])) as unknown as LogScratch;
}

/**
 * ln x of the two float64 lanes of x, left on the stack (x kept): fdlibm's log (V8's
 * Math.log), step for step, its branches as lane selects; integer steps on the high word
 * in i64 lanes. `normal`: the caller's x is always a positive normal finite number (the
 * normal draws' 1 − u ≥ 2⁻⁵³), and the selects for subnormals, zeros, negatives, ∞ and NaN
 * are left out (each would keep the lane as it is there: the same bits).
 */
function emitLogF64(c: Code, x: Local, s: LogScratch, normal = false): void {
  const { ln2Hi, ln2Lo, lg } = FDLIBM_LOG;
  const [Lg1, Lg2, Lg3, Lg4, Lg5, Lg6, Lg7] = lg;
  const i64 = (v: number) => c.i64x2Const(BigInt(v));
  if (normal) {
    c.get(x).set(s.xs);
    c.get(s.xs).i32(32).i64x2ShrU().set(s.hx);
    c.get(s.hx).i32(20).i64x2ShrU();
    i64(1023); c.i64x2Sub().set(s.k);
  } else {
    // Subnormals (and 0, negatives: replaced at the end) scaled by 2⁵⁴, k starting at −54.
    c.get(x).f64x2Const(2 ** -1022).f64x2Lt().set(s.sub);
    c.get(x).f64x2Const(2 ** 54).f64x2Mul().get(x).get(s.sub).v128Bitselect().set(s.xs);
    // hx = the high word; k = (hx >> 20) − 1023; hx &= 0xfffff
    c.get(s.xs).i32(32).i64x2ShrU().set(s.hx);
    c.get(s.hx).i32(20).i64x2ShrU();
    i64(1023 + 54); i64(1023); c.get(s.sub).v128Bitselect().i64x2Sub().set(s.k);
  }
  c.get(s.hx); i64(0xfffff); c.v128And().set(s.hx);
  // i = (hx + 0x95f64) & 0x100000; x normalized to [√2/2, √2): high word hx | (i ^ 0x3ff00000)
  c.get(s.hx); i64(0x95f64); c.i64x2Add(); i64(0x100000); c.v128And().set(s.i);
  c.get(s.xs); i64(0xffffffff); c.v128And();
  c.get(s.hx).get(s.i); i64(0x3ff00000); c.v128Xor().v128Or().i32(32).i64x2Shl().v128Or();
  // f = x − 1; k += i >> 20
  c.f64x2Const(1).f64x2Sub().set(s.f);
  c.get(s.k).get(s.i).i32(20).i64x2ShrU().i64x2Add().set(s.k);
  c.get(s.k).get(s.k).i8x16Shuffle([0, 1, 2, 3, 8, 9, 10, 11, 0, 1, 2, 3, 8, 9, 10, 11]).f64x2ConvertLowI32x4S().set(s.dk);
  // dk·ln2Hi − ((a − dk·ln2Lo) − f), a on the stack. fdlibm takes f − a where k = 0; there dk
  // is +0, and the two agree bit for bit: a − (+0) = a, and +0 − (a − f) = f − a, both sides
  // +0 where a = f (f = x − 1 is never −0). So the lanes compute only this form.
  const join = (a: () => void) => {
    c.get(s.dk).f64x2Const(ln2Hi).f64x2Mul(); a(); c.get(s.dk).f64x2Const(ln2Lo).f64x2Mul().f64x2Sub().get(s.f).f64x2Sub().f64x2Sub();
  };
  // |f| < 2⁻²⁰: R = f·f·(½ − f/3); dk·ln2Hi − ((R − dk·ln2Lo) − f)
  c.get(s.f).get(s.f).f64x2Mul().f64x2Const(0.5).f64x2Const(0.33333333333333333).get(s.f).f64x2Mul().f64x2Sub().f64x2Mul().set(s.r);
  join(() => c.get(s.r));
  c.set(s.y);
  // s = f / (2 + f), z = s², w = z², R = z·(Lg1 + w·(Lg3 + w·(Lg5 + w·Lg7))) + w·(Lg2 + w·(Lg4 + w·Lg6))
  c.get(s.f).f64x2Const(2).get(s.f).f64x2Add().f64x2Div().set(s.sv);
  c.get(s.sv).get(s.sv).f64x2Mul().set(s.z);
  c.get(s.z).get(s.z).f64x2Mul().set(s.w);
  c.get(s.z).f64x2Const(Lg1).get(s.w).f64x2Const(Lg3).get(s.w).f64x2Const(Lg5).get(s.w).f64x2Const(Lg7).f64x2Mul().f64x2Add()
    .f64x2Mul().f64x2Add().f64x2Mul().f64x2Add().f64x2Mul();
  c.get(s.w).f64x2Const(Lg2).get(s.w).f64x2Const(Lg4).get(s.w).f64x2Const(Lg6).f64x2Mul().f64x2Add().f64x2Mul().f64x2Add().f64x2Mul();
  c.f64x2Add().set(s.r);
  c.f64x2Const(0.5).get(s.f).f64x2Mul().get(s.f).f64x2Mul().set(s.hfsq);
  // 0x6147a ≤ hx ≤ 0x6b851: hfsq = ½f²; dk·ln2Hi − ((hfsq − (s·(hfsq + R) + dk·ln2Lo)) − f)
  // (fdlibm's f − (hfsq − s·(hfsq + R)) where k = 0, the same bits as above: s·(hfsq + R) > 0 here)
  c.get(s.dk).f64x2Const(ln2Hi).f64x2Mul().get(s.hfsq);
  c.get(s.sv).get(s.hfsq).get(s.r).f64x2Add().f64x2Mul().get(s.dk).f64x2Const(ln2Lo).f64x2Mul().f64x2Add().f64x2Sub().get(s.f).f64x2Sub().f64x2Sub();
  // otherwise: dk·ln2Hi − ((s·(f − R) − dk·ln2Lo) − f) (fdlibm's f − s·(f − R) where k = 0)
  join(() => c.get(s.sv).get(s.f).get(s.r).f64x2Sub().f64x2Mul());
  // which: ((hx − 0x6147a) | (0x6b851 − hx)) > 0
  c.get(s.hx); i64(0x6147a); c.i64x2Sub(); i64(0x6b851); c.get(s.hx).i64x2Sub().v128Or(); i64(0); c.i64x2GtS();
  c.v128Bitselect();
  // the small-f branch where ((2 + hx) & 0xfffff) < 3
  c.set(s.r).get(s.y).get(s.r).get(s.hx); i64(2); c.i64x2Add(); i64(0xfffff); c.v128And(); i64(3); c.i64x2LtS().v128Bitselect().set(s.y);
  if (normal) { c.get(s.y); return; }
  // x = ±0 → −∞; x < 0 → NaN; +∞ and NaN → x + x
  c.f64x2Const(-Infinity).get(s.y).get(x).f64x2Const(0).f64x2Eq().v128Bitselect().set(s.y);
  c.f64x2Const(NaN).get(s.y).get(x).f64x2Const(0).f64x2Lt().v128Bitselect().set(s.y);
  c.get(x).get(x).f64x2Add().get(s.y).get(x).f64x2Const(Infinity).f64x2Eq().get(x).get(x).f64x2Ne().v128Or().v128Bitselect();
}

/** Bytes of the high 32-bit halves of two i64x2s' lanes (their products' high words), in lane order. */
const HIGH_WORDS = [4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31];
/** i32 lanes 2 and 3 moved to lanes 0 and 1. */
const HIGH_LANES = [8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15];

/**
 * normal_f32 / normal_f64(bLo, bHi, count, key0, key1, dst): the Box–Muller pairs of Philox
 * blocks b … b + count − 1 (b = bHi·2³² + bLo, count a multiple of 4), block j's pair at
 * dst[2j], dst[2j + 1]: core/philox.ts fillRandom's normal draws (its blocks, uniform53 and
 * boxMuller), bit for bit. The rounds run on four blocks at once, one per i32 lane (the
 * 32 × 32 → 64-bit products as extended multiplies); the pairs two blocks at a time in
 * float64 lanes.
 */
function emitNormal(mod: ModuleBuilder, single: boolean): void {
  mod.func(single ? 'normal_f32' : 'normal_f64', ['i32', 'i32', 'i32', 'i32', 'i32', 'i32'], [], (c, bLo, bHi, count, key0, key1, dst) => {
    const b = c.local('i64'), j = c.local('i32'), lo = c.local('v128'), carry = c.local('v128');
    const [c0, c1, c2, c3, k0, k1, m0, m1, p] = Array.from({ length: 9 }, () => c.local('v128')) as [Local, Local, Local, Local, Local, Local, Local, Local, Local];
    const u1 = c.local('v128'), u2 = c.local('v128'), t = c.local('v128'), rr = c.local('v128');
    const q = c.local('v128'), x = c.local('v128'), z = c.local('v128'), v = c.local('v128'), w = c.local('v128'), sin = c.local('v128'), cos = c.local('v128');
    const rc = c.local('v128'), rs = c.local('v128'), m = c.local('v128'), s = logScratch(c);
    const [S1, S2, S3, S4, S5, S6] = SINCOS.s, [C1, C2, C3, C4, C5, C6] = SINCOS.c;
    c.i32(PHILOX.M0).i32x4Splat().set(m0).i32(PHILOX.M1).i32x4Splat().set(m1);
    c.get(bHi!).i64ExtendI32U().i64(32n).i64Shl().get(bLo!).i64ExtendI32U().i64Or().set(b);
    /** The pairs of the blocks in lanes 0 and 1 of the words c0 … c3 (after the rounds), stored at dst. */
    const pairs = () => {
      // u = ((hi >>> 5)·2²⁶ + (lo >>> 6))·2⁻⁵³ (uniform53)
      c.get(c0).i32(5).i32x4ShrU().f64x2ConvertLowI32x4U().f64x2Const(2 ** 26).f64x2Mul()
        .get(c1).i32(6).i32x4ShrU().f64x2ConvertLowI32x4U().f64x2Add().f64x2Const(2 ** -53).f64x2Mul().set(u1);
      c.get(c2).i32(5).i32x4ShrU().f64x2ConvertLowI32x4U().f64x2Const(2 ** 26).f64x2Mul()
        .get(c3).i32(6).i32x4ShrU().f64x2ConvertLowI32x4U().f64x2Add().f64x2Const(2 ** -53).f64x2Mul().set(u2);
      // r = √(−2·ln(1 − u1))
      c.f64x2Const(1).get(u1).f64x2Sub().set(t);
      c.f64x2Const(-2);
      // 1 − u1 ≥ 2⁻⁵³: ln without its selects for subnormals and specials (randn over 262144
      // float32 values, one thread: 2.43–2.59 → 2.37–2.38 ms).
      emitLogF64(c, t, s, true);
      c.f64x2Mul().f64x2Sqrt().set(rr);
      // q = ⌊4·u2 + ½⌋, x = (u2 − q/4)·2π
      c.get(u2).f64x2Const(4).f64x2Mul().f64x2Const(0.5).f64x2Add().f64x2Floor().set(q);
      c.get(u2).get(q).f64x2Const(0.25).f64x2Mul().f64x2Sub().f64x2Const(SINCOS.twoPi).f64x2Mul().set(x);
      c.get(x).get(x).f64x2Mul().set(z);
      c.get(z).get(x).f64x2Mul().set(v);
      c.get(z).get(z).f64x2Mul().set(w);
      // sin x = x + v·(S1 + z·(S2 + z·(S3 + z·(S4 + z·(S5 + z·S6)))))
      c.get(x).get(v).f64x2Const(S1).get(z).f64x2Const(S2).get(z).f64x2Const(S3).get(z).f64x2Const(S4).get(z).f64x2Const(S5).get(z).f64x2Const(S6)
        .f64x2Mul().f64x2Add().f64x2Mul().f64x2Add().f64x2Mul().f64x2Add().f64x2Mul().f64x2Add().f64x2Mul().f64x2Add().f64x2Mul().f64x2Add().set(sin);
      // cos x = one + (((1 − one) − ½z) + z·poly), one = 1 − ½z,
      // poly = z·(C1 + z·(C2 + z·C3)) + w·w·(C4 + z·(C5 + z·C6))
      c.get(z).f64x2Const(C1).get(z).f64x2Const(C2).get(z).f64x2Const(C3).f64x2Mul().f64x2Add().f64x2Mul().f64x2Add().f64x2Mul();
      c.get(w).get(w).f64x2Mul().f64x2Const(C4).get(z).f64x2Const(C5).get(z).f64x2Const(C6).f64x2Mul().f64x2Add().f64x2Mul().f64x2Add().f64x2Mul();
      c.f64x2Add().set(t);
      c.f64x2Const(1).f64x2Const(0.5).get(z).f64x2Mul().f64x2Sub().set(v); // one
      c.get(v).f64x2Const(1).get(v).f64x2Sub().f64x2Const(0.5).get(z).f64x2Mul().f64x2Sub().get(z).get(t).f64x2Mul().f64x2Add().f64x2Add().set(cos);
      // quadrant q mod 4: (cos, sin) of 2πu2 = (c, s), (−s, c), (−c, −s), (s, −c)
      c.get(cos).set(rc).get(sin).set(rs);
      const quadrant = (k: number, cv: () => void, sv: () => void) => {
        c.get(q).f64x2Const(k).f64x2Eq().set(m);
        cv(); c.get(rc).get(m).v128Bitselect().set(rc);
        sv(); c.get(rs).get(m).v128Bitselect().set(rs);
      };
      quadrant(1, () => c.get(sin).f64x2Neg(), () => c.get(cos));
      quadrant(2, () => c.get(cos).f64x2Neg(), () => c.get(sin).f64x2Neg());
      quadrant(3, () => c.get(sin), () => c.get(cos).f64x2Neg());
      c.get(rr).get(rc).f64x2Mul().set(rc);
      c.get(rr).get(rs).f64x2Mul().set(rs);
      if (single) {
        // [c_a, s_a, c_b, s_b] as float32
        c.get(dst!).get(rc).f32x4DemoteF64x2Zero().get(rs).f32x4DemoteF64x2Zero()
          .i8x16Shuffle([0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23]).v128Store();
        c.get(dst!).i32(16).i32Add().set(dst!);
      } else {
        c.get(dst!).get(rc).get(rs).i8x16Shuffle([0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23]).v128Store();
        c.get(dst!).get(rc).get(rs).i8x16Shuffle([8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31]).v128Store(16);
        c.get(dst!).i32(32).i32Add().set(dst!);
      }
    };
    c.forRange(j, 0, count!, 4, () => {
      // Counters of blocks b … b + 3: (low word, high word + its carry), 0, 0.
      c.get(b).i32WrapI64().i32x4Splat().set(lo);
      c.get(lo).i32x4Lanes([0, 1, 2, 3]).i32x4Add().set(c0);
      c.get(c0).get(lo).i32x4LtU().set(carry);
      c.get(b).i64(32n).i64ShrU().i32WrapI64().i32x4Splat().get(carry).i32x4Sub().set(c1);
      c.i32x4Const(0).set(c2).i32x4Const(0).set(c3);
      c.get(key0!).i32x4Splat().set(k0).get(key1!).i32x4Splat().set(k1);
      for (let round = 0; round < 10; round++) {
        // (hi, lo) of M0·c0 and M1·c2; c0 = hi1 ^ c1 ^ k0, c1 = lo1, c2 = hi0 ^ c3 ^ k1, c3 = lo0
        c.get(c0).get(m0).i64x2ExtmulLowI32x4U().get(c0).get(m0).i64x2ExtmulHighI32x4U().i8x16Shuffle(HIGH_WORDS).set(p); // hi0
        c.get(c0).get(m0).i32x4Mul().set(t); // lo0
        c.get(p).get(c3).v128Xor().get(k1).v128Xor().set(u1); // new c2
        c.get(c2).get(m1).i64x2ExtmulLowI32x4U().get(c2).get(m1).i64x2ExtmulHighI32x4U().i8x16Shuffle(HIGH_WORDS).get(c1).v128Xor().get(k0).v128Xor().set(c0);
        c.get(c2).get(m1).i32x4Mul().set(c1);
        c.get(u1).set(c2);
        c.get(t).set(c3);
        c.get(k0).i32(PHILOX.W0).i32x4Splat().i32x4Add().set(k0);
        c.get(k1).i32(PHILOX.W1).i32x4Splat().i32x4Add().set(k1);
      }
      pairs();
      for (const word of [c0, c1, c2, c3]) c.get(word).get(word).i8x16Shuffle(HIGH_LANES).set(word);
      pairs();
      c.get(b).i64(4n).i64Add().set(b);
    });
  });
}

/** Lanes 2 and 3 of a v128 moved to lanes 0 and 1 (for promoting the high half of an f32x4). */
const HIGH_HALF = [8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15];
/** Two demoted halves (float32 lanes 0 and 1 of each) joined into one f32x4. */
const JOIN_HALVES = [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23];

/**
 * f(four float32 lanes in `x`) computed in float64 two lanes at a time, each lane rounded to
 * float32 once (as Math.fround of the scalar double result); left on the stack.
 */
function emitViaF64(c: Code, x: Local, lanes: Local, body: (v: Local) => void): void {
  c.get(x).f64x2PromoteLowF32x4().set(lanes);
  body(lanes);
  c.f32x4DemoteF64x2Zero();
  c.get(x).get(x).i8x16Shuffle(HIGH_HALF).f64x2PromoteLowF32x4().set(lanes);
  body(lanes);
  c.f32x4DemoteF64x2Zero();
  c.i8x16Shuffle(JOIN_HALVES);
}

/** e^x over float64 and float32 arrays, and Φ over float32, computed in float64 lanes. */
function emitF64Unary(mod: ModuleBuilder): void {
  emitUnary(mod, 'exp_f64', f64Scratch, emitExpF64);
  emitUnary(mod, 'exp_f32', f64Scratch, (c, x, s) => emitViaF64(c, x, s.lanes, (v) => emitExpF64(c, v, s)));
  emitUnary(mod, 'log_f64', logScratch, emitLogF64);
  emitUnary(mod, 'normalCdf_f32', f64Scratch, (c, x, s) => emitViaF64(c, x, s.lanes, (v) => emitNormalCdf(c, v, s)));
}

/**
 * logsumexpRows_f32 (see MathExports): per row a pass for the max (f32x4.max propagates NaN,
 * as the loop's check does; which of ±0 it keeps cannot reach the result), then e^(x − shift)
 * a vector at a time, its four lanes added to the row's float64 sum in column order. No
 * shifted or exponentiated copy of x is written.
 */
function emitLogsumexpRows(mod: ModuleBuilder): void {
  mod.func('logsumexpRows_f32', ['i32', 'i32', 'i32', 'i32', 'i32'], [], (c, x, rows, vecs, sums, shifts) => {
    const r = c.local('i32'), v = c.local('i32'), row = c.local('i32'), at = c.local('i32');
    const m = c.local('v128'), e = c.local('v128'), t = c.local('v128'), acc = c.local('f64'), s = f64Scratch(c);
    c.get(x).set(row);
    c.forRange(r, 0, rows!, 1, () => {
      c.f32x4Const(-Infinity).set(m);
      c.get(row).set(at);
      c.forRange(v, 0, vecs!, 1, () => {
        c.get(m).get(at).v128Load().f32x4Max().set(m);
        c.get(at).i32(16).i32Add().set(at);
      });
      c.get(m).get(m).get(m).i8x16Shuffle([8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7]).f32x4Max().set(m);
      c.get(m).get(m).get(m).i8x16Shuffle([4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11]).f32x4Max().set(m);
      // shift = m where m − m = 0 (finite), else +0
      c.get(m).get(m).get(m).f32x4Sub().f32x4Const(0).f32x4Eq().v128And().set(m);
      c.get(shifts!).get(r).i32(2).i32Shl().i32Add().get(m).v128Store32Lane(0);
      c.f64Zero().set(acc);
      c.get(row).set(at);
      c.forRange(v, 0, vecs!, 1, () => {
        c.get(at).v128Load().get(m).f32x4Sub().set(t);
        emitViaF64(c, t, s.lanes, (w) => emitExpF64(c, w, s));
        c.set(e);
        for (let lane = 0; lane < 4; lane++) c.get(acc).get(e).f32x4ExtractLane(lane).f64PromoteF32().f64Add().set(acc);
        c.get(at).i32(16).i32Add().set(at);
      });
      c.get(sums!).get(r).i32(3).i32Shl().i32Add().get(acc).store('f64');
      c.get(at).set(row);
    });
  });
}

/**
 * The load estimator's P(x, i) = Φ((clean − threshold) / stddev) and its gradients, float32
 * (src/backends/cpu/gating.ts probInTopK, probInTopKBackward, bit for bit), over planes of
 * 4·vecs floats; the caller picks each element's threshold and sums the thresholds' gradients.
 */
function emitProbInTopK(mod: ModuleBuilder): void {
  mod.func('probInTopK_f32', ['i32', 'i32', 'i32', 'i32', 'i32'], [], (c, clean, thr, sd, out, vecs) => {
    const x = c.local('v128'), s = f64Scratch(c);
    eachVector(c, vecs!, (off) => {
      c.get(clean!).get(off).i32Add().v128Load().get(thr!).get(off).i32Add().v128Load().f32x4Sub()
        .get(sd!).get(off).i32Add().v128Load().f32x4Div().set(x);
      c.get(out!).get(off).i32Add();
      emitViaF64(c, x, s.lanes, (v) => emitNormalCdf(c, v, s));
      c.v128Store();
    });
  });
  mod.func('probInTopKBackward_f32', ['i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32'], [], (c, dP, clean, thr, sd, dClean, dSd, vecs) => {
    const z = c.local('v128'), e = c.local('v128'), sigma = c.local('v128'), dz = c.local('v128'), s = f64Scratch(c);
    const density = Math.fround(1 / Math.sqrt(2 * Math.PI));
    eachVector(c, vecs!, (off) => {
      c.get(sd!).get(off).i32Add().v128Load().set(sigma);
      c.get(clean!).get(off).i32Add().v128Load().get(thr!).get(off).i32Add().v128Load().f32x4Sub().get(sigma).f32x4Div().set(z);
      // dz = dP · (fround(exp((z·z)·(−½))) · density)
      c.get(z).get(z).f32x4Mul().f32x4Const(-0.5).f32x4Mul().set(e);
      emitViaF64(c, e, s.lanes, (v) => emitExpF64(c, v, s));
      c.f32x4Const(density).f32x4Mul().get(dP!).get(off).i32Add().v128Load().f32x4Mul().set(dz);
      c.get(dClean!).get(off).i32Add().get(dz).get(sigma).f32x4Div().v128Store();
      c.get(dSd!).get(off).i32Add().get(dz).get(z).get(sigma).f32x4Div().f32x4Mul().f32x4Neg().v128Store();
    });
  });
}

/**
 * thresholds_f32 and thresholdSums_f32 (see MathExports): a row's tIn and tOut splat, and each
 * vector's lanes picked by noisy > tIn (false for NaN, as the loops' comparison). The sums add
 * each lane's −dClean to one sum and +0 to the other, as gating.ts's own loop does: a sum from
 * +0 is never −0, so adding +0 leaves its bits.
 */
function emitThresholds(mod: ModuleBuilder): void {
  const rowPair = (c: Code, tRows: Local, r: Local, tIn: Local, tOut: Local | null) => {
    c.get(tRows).get(r).i32(3).i32Shl().i32Add().load('f32').f32x4Splat().set(tIn);
    if (tOut !== null) c.get(tRows).get(r).i32(3).i32Shl().i32Add().load('f32', 4).f32x4Splat().set(tOut);
  };
  mod.func('thresholds_f32', ['i32', 'i32', 'i32', 'i32', 'i32'], [], (c, noisy, tRows, thr, rows, vecs) => {
    const r = c.local('i32'), v = c.local('i32'), at = c.local('i32'), tIn = c.local('v128'), tOut = c.local('v128');
    c.i32(0).set(at);
    c.forRange(r, 0, rows!, 1, () => {
      rowPair(c, tRows!, r, tIn, tOut);
      c.forRange(v, 0, vecs!, 1, () => {
        c.get(thr!).get(at).i32Add().get(tIn).get(tOut).get(noisy!).get(at).i32Add().v128Load().get(tIn).f32x4Gt().v128Bitselect().v128Store();
        c.get(at).i32(16).i32Add().set(at);
      });
    });
  });
  mod.func('thresholdSums_f32', ['i32', 'i32', 'i32', 'i32', 'i32', 'i32'], [], (c, noisy, dClean, tRows, sums, rows, vecs) => {
    const r = c.local('i32'), v = c.local('i32'), at = c.local('i32'), tIn = c.local('v128'), inside = c.local('v128'), d = c.local('v128');
    const sumIn = c.local('f64'), sumOut = c.local('f64'), x = c.local('f64');
    c.i32(0).set(at);
    c.forRange(r, 0, rows!, 1, () => {
      rowPair(c, tRows!, r, tIn, null);
      c.f64Zero().set(sumIn).f64Zero().set(sumOut);
      c.forRange(v, 0, vecs!, 1, () => {
        c.get(noisy!).get(at).i32Add().v128Load().get(tIn).f32x4Gt().set(inside);
        c.get(dClean!).get(at).i32Add().v128Load().f32x4Neg().set(d);
        for (let lane = 0; lane < 4; lane++) {
          c.get(d).f32x4ExtractLane(lane).f64PromoteF32().set(x);
          c.get(sumIn).get(x).f64Zero().get(inside).i32x4ExtractLane(lane).select().f64Add().set(sumIn);
          c.get(sumOut).f64Zero().get(x).get(inside).i32x4ExtractLane(lane).select().f64Add().set(sumOut);
        }
        c.get(at).i32(16).i32Add().set(at);
      });
      c.get(sums!).get(r).i32(4).i32Shl().i32Add().get(sumIn).store('f64');
      c.get(sums!).get(r).i32(4).i32Shl().i32Add().get(sumOut).store('f64', 8);
    });
  });
}

/**
 * The m largest of each row of x (rows × n float32), largest first, ties to the lower index
 * (indexing.ts topkIndices' fast path): four rows at a time, one per lane, each lane keeping
 * its m best values and their indices in `slots` (2m v128s) by a branch-free insertion
 * network — column j goes in at the first slot it beats (f32x4.gt: strictly, so an equal
 * later value never moves ahead), the slots below shifting down. Indices into out (rows × m
 * i32); flags[r] = 1 where row r holds a NaN or fewer than m values above −∞, which the
 * caller redoes in JavaScript (NaN ranks first there), else 0.
 */
function emitTopk(mod: ModuleBuilder): void {
  mod.func('topk_f32', ['i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32'], [], (c, x, rows, n, m, out, flags, slots) => {
    const r0 = c.local('i32'), j = c.local('i32'), sl = c.local('i32'), at = c.local('i32'), rowBytes = c.local('i32');
    const a = [c.local('i32'), c.local('i32'), c.local('i32'), c.local('i32')];
    const v = c.local('v128'), jv = c.local('v128'), bad = c.local('v128'), cs = c.local('v128'), cp = c.local('v128');
    const idx = (s: Local | number) => { if (typeof s === 'number') c.i32(s); else c.get(s); c.i32(5).i32Shl().get(slots!).i32Add(); };
    c.get(n!).i32(2).i32Shl().set(rowBytes);
    c.forRange(r0, 0, rows!, 4, () => {
      // Lane i reads row min(r0 + i, rows − 1); lanes past the end repeat the last row and are not written.
      a.forEach((ai, i) => {
        c.get(r0).i32(i).i32Add().tee(ai).get(rows!).i32(1).i32Sub().tee(at).get(ai).get(at).i32LtS().select();
        c.get(rowBytes).i32Mul().get(x!).i32Add().set(ai);
      });
      c.i32x4Const(0).set(bad);
      c.forRange(sl, 0, m!, 1, () => {
        idx(sl); c.f32x4Const(-Infinity).v128Store();
        idx(sl); c.i32x4Const(-1).v128Store(16);
      });
      c.forRange(j, 0, n!, 1, () => {
        c.get(j).i32(2).i32Shl().set(at);
        c.get(a[0]!).get(at).i32Add().load('f32').f32x4Splat();
        for (let i = 1; i < 4; i++) c.get(a[i]!).get(at).i32Add().load('f32').f32x4ReplaceLane(i);
        c.set(v);
        c.get(bad).get(v).get(v).f32x4Ne().v128Or().set(bad);
        c.get(j).i32x4Splat().set(jv);
        // From the last slot up: slot s takes slot s − 1's where v beats that, else v where v beats slot s.
        c.get(m!).i32(1).i32Sub().set(sl);
        c.get(v); idx(sl); c.v128Load().f32x4Gt().set(cs);
        c.block(() => c.loop(() => {
          c.get(sl).i32Eqz().brIf(1);
          c.get(v); idx(sl); c.i32(-32).i32Add(); c.v128Load().f32x4Gt().set(cp);
          idx(sl);
          idx(sl); c.i32(-32).i32Add(); c.v128Load();
          c.get(v); idx(sl); c.v128Load(); c.get(cs).v128Bitselect();
          c.get(cp).v128Bitselect().v128Store();
          idx(sl);
          idx(sl); c.i32(-32).i32Add(); c.v128Load(16);
          c.get(jv); idx(sl); c.v128Load(16); c.get(cs).v128Bitselect();
          c.get(cp).v128Bitselect().v128Store(16);
          c.get(cp).set(cs);
          c.get(sl).i32(1).i32Sub().set(sl);
          c.br(0);
        }));
        idx(0); c.get(v); idx(0); c.v128Load(); c.get(cs).v128Bitselect().v128Store();
        idx(0); c.get(jv); idx(0); c.v128Load(16); c.get(cs).v128Bitselect().v128Store(16);
      });
      // A slot still at index −1 (values of −∞ only) sends the row to JavaScript too.
      c.forRange(sl, 0, m!, 1, () => {
        c.get(bad); idx(sl); c.v128Load(16).i32x4Const(-1).i32x4Eq().v128Or().set(bad);
      });
      for (let i = 0; i < 4; i++) {
        c.get(r0).i32(i).i32Add().get(rows!).i32LtS().if(() => {
          c.forRange(sl, 0, m!, 1, () => {
            c.get(r0).i32(i).i32Add().get(m!).i32Mul().get(sl).i32Add().i32(2).i32Shl().get(out!).i32Add();
            idx(sl); c.v128Load(16).i32x4ExtractLane(i).store('i32');
          });
          c.get(r0).i32(i).i32Add().i32(2).i32Shl().get(flags!).i32Add();
          c.get(bad).i32x4ExtractLane(i).i32(0).i32Ne().store('i32');
        });
      }
    });
  });
}

/**
 * The kernels a thread pool job may run in pieces (`chunk`): each piece writes its own
 * elements or rows and reads nothing another piece writes, so a job split over threads
 * computes every element exactly as one call does. A piece's id is its index here.
 */
export const CHUNKED = [
  'sigmoid_f32', 'tanh_f32', 'softplus_f32', 'exp_f32', 'exp_f64', 'normalCdf_f32', 'reluGrad_f32',
  'probInTopK_f32', 'probInTopKBackward_f32', 'combineBackward_f32', 'normal_f32', 'normal_f64', 'topk_f32', 'logsumexpRows_f32', 'thresholds_f32', 'thresholdSums_f32',
  ...(['add', 'sub', 'mul', 'div'] as const).flatMap((op) => (['vv', 'sv', 'vs'] as const).map((mode) => `${op}_${mode}_f32` as const)),
] as const;
export type ChunkedKernel = typeof CHUNKED[number];
/** Words of a piece: its id, then the kernel's (i32) arguments. */
export const CHUNK_WORDS = 9;

/**
 * chunk(entry): runs CHUNKED[id] on the arguments that follow its id at entry (i32 words) —
 * the function the SIMD matmul's thread pool calls for a job's pieces (gemm-module.ts).
 */
function emitChunk(mod: ModuleBuilder): void {
  const kernels = CHUNKED.map((name) => mod.lookup(name));
  for (const [i, k] of kernels.entries()) {
    if (k.params.length > CHUNK_WORDS - 1 || k.params.some((t) => t !== 'i32')) throw new Error(`math module: ${CHUNKED[i]} cannot be a piece`);
  }
  mod.func('chunk', ['i32'], [], (c, entry) => {
    const id = c.local('i32');
    c.get(entry).load('i32').set(id);
    for (const [i, k] of kernels.entries()) {
      c.get(id).i32(i).i32Eq().if(() => {
        k.params.forEach((_, a) => c.get(entry).load('i32', 4 * (a + 1)));
        c.call(k.index).return();
      });
    }
  });
}

/** The module's bytes; `shared`: it imports a shared memory (the SIMD matmul's, where tensors live). */
export function mathModuleBytes(shared = false): Uint8Array {
  const mod = new ModuleBuilder({ shared, initialPages: 1, maximumPages: 32768 });
  emitUnary(mod, 'sigmoid_f32', scratch, emitSigmoid);
  emitUnary(mod, 'tanh_f32', scratch, emitTanh);
  emitUnary(mod, 'softplus_f32', softplusScratch, emitSoftplus);
  emitLstm(mod);
  emitAdam(mod);
  emitPhilox(mod);
  emitCombine(mod);
  emitArithmetic(mod);
  emitProbInTopK(mod);
  emitLogsumexpRows(mod);
  emitThresholds(mod);
  emitTopk(mod);
  emitF64Unary(mod);
  emitNormal(mod, true);
  emitNormal(mod, false);
  emitChunk(mod);
  return mod.bytes();
}
