// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11), the
// counter-based generator PyTorch uses on CUDA. Counter-based means element i of any draw is
// a pure function of (key, counter): every backend can produce the same numbers in any order.

/** Philox4x32's round multipliers and key increments (Weyl constants). */
export const PHILOX = { M0: 0xd2511f53, M1: 0xcd9e8d57, W0: 0x9e3779b9, W1: 0xbb67ae85 } as const;
const { M0, M1, W0, W1 } = PHILOX;

/** High 32 bits of the 64-bit product of two uint32s, exactly, in double arithmetic. */
function mulhi(a: number, b: number): number {
  const aLo = a & 0xffff, aHi = a >>> 16, bLo = b & 0xffff, bHi = b >>> 16;
  const lh = aLo * bHi, hl = aHi * bLo;
  const mid = ((aLo * bLo) >>> 16) + (lh & 0xffff) + (hl & 0xffff);
  return (aHi * bHi + (lh >>> 16) + (hl >>> 16) + (mid >>> 16)) >>> 0;
}

/** One Philox4x32-10 block: 4 uint32 words from a 128-bit counter and a 64-bit key. */
export function philox4x32(counter: readonly number[], key: readonly [number, number], out: Uint32Array): void {
  block(counter[0]! >>> 0, counter[1]! >>> 0, counter[2]! >>> 0, counter[3]! >>> 0, key[0] >>> 0, key[1] >>> 0, out, 0);
}

/**
 * Writes Philox4x32-10 blocks number b0, b0 + 1, …, b0 + count − 1 of the stream (key0, key1)
 * into words (4 each, from 0); block b's counter is (b mod 2³², ⌊b / 2³²⌋, 0, 0).
 */
export type PhiloxBlocks = (b0: number, count: number, key0: number, key1: number, words: Uint32Array) => void;

/** PhiloxBlocks in JavaScript: the reference (the CPU backend may pass a WebAssembly one with the same bits). */
export const philoxBlocks: PhiloxBlocks = (b0, count, key0, key1, words) => {
  for (let i = 0, b = b0; i < count; i++, b++) block(b % 4294967296, Math.floor(b / 4294967296), 0, 0, key0, key1, words, 4 * i);
};

/** The ten rounds on words held in locals, written to out at o (no arrays made). */
function block(c0: number, c1: number, c2: number, c3: number, k0: number, k1: number, out: Uint32Array, o: number): void {
  for (let round = 0; round < 10; round++) {
    const hi0 = mulhi(M0, c0), lo0 = Math.imul(M0, c0) >>> 0;
    const hi1 = mulhi(M1, c2), lo1 = Math.imul(M1, c2) >>> 0;
    c0 = (hi1 ^ c1 ^ k0) >>> 0;
    c1 = lo1;
    c2 = (hi0 ^ c3 ^ k1) >>> 0;
    c3 = lo0;
    k0 = (k0 + W0) >>> 0;
    k1 = (k1 + W1) >>> 0;
  }
  out[o] = c0; out[o + 1] = c1; out[o + 2] = c2; out[o + 3] = c3;
}

const TWO_POW_26 = 67108864;
const TWO_POW_53 = 9007199254740992;

/** A 53-bit uniform in [0, 1) from two words; its top 24 bits are the float32 draw. */
function uniform53(w0: number, w1: number): number {
  return ((w0 >>> 5) * TWO_POW_26 + (w1 >>> 6)) / TWO_POW_53;
}

/** Blocks generated per batch (the words of one batch: 64 KB, reused). */
const BATCH = 4096;
/**
 * Blocks per call of a NormalPairs kernel: the pairs land in its own staging memory (512 KB of
 * float32 pairs, 1 MB of float64), and a call this large is one the kernel can split over the
 * threads. With batches of BATCH blocks an MoE gate's [1024, 16] noise came as two calls of
 * ~100 µs, each under the split threshold (wasm-math.ts SPLIT_NS).
 */
const PAIR_BATCH = 1 << 16;
const words = new Uint32Array(4 * BATCH);

/**
 * The Box–Muller pair's sine and cosine: fdlibm's __kernel_sin (iy = 0) and FreeBSD's
 * __kernel_cos (y = 0) minimax coefficients on [−π/4, π/4], and 2π. The SIMD kernel
 * (src/backends/cpu/wasm/math-module.ts) runs the same steps.
 */
export const SINCOS = {
  s: [-1.66666666666666324348e-01, 8.33333333332248946124e-03, -1.98412698298579493134e-04, 2.75573137070700676789e-06, -2.50507602534068634195e-08, 1.58969099521155010221e-10],
  c: [4.16666666666666019037e-02, -1.38888888888741095749e-03, 2.48015872894767294178e-05, -2.75573143513906633035e-07, 2.08757232129817482790e-09, -1.13596475577881948265e-11],
  twoPi: 2 * Math.PI,
} as const;
const [S1, S2, S3, S4, S5, S6] = SINCOS.s, [C1, C2, C3, C4, C5, C6] = SINCOS.c, TWO_PI = SINCOS.twoPi;

/**
 * One Box–Muller pair from two uniforms in [0, 1): r = √(−2 ln(1 − u1)) (Math.log is fdlibm's
 * log, which the SIMD kernel repeats), then (r·cos 2πu2, r·sin 2πu2) into pair[0], pair[1].
 * The angle is reduced before it is rounded: u2 = q/4 + f exactly, |f| ≤ 1/8, so 2πu2 =
 * q·π/2 + x with x = 2πf, one rounding; sin x and cos x come from the kernels above and the
 * quadrant q picks signs and order: within 2 ulp of Math.cos and Math.sin of the reduced angle
 * (test/backends/cpu-simd-math.test.ts). The same float64 steps run in JavaScript and in the
 * SIMD kernel's lanes; here a pair cost 30 ns in JavaScript against 39 with Math.sin and
 * Math.cos of 2πu2, and a normal draw 12 ns on the SIMD kernel against 42 before it.
 */
export function boxMuller(u1: number, u2: number, pair: Float64Array): void {
  const r = Math.sqrt(-2 * Math.log(1 - u1));
  const q = Math.floor(u2 * 4 + 0.5), f = u2 - q * 0.25, x = f * TWO_PI;
  const z = x * x, v = z * x, w = z * z;
  const sin = x + v * (S1 + z * (S2 + z * (S3 + z * (S4 + z * (S5 + z * S6)))));
  const poly = z * (C1 + z * (C2 + z * C3)) + w * w * (C4 + z * (C5 + z * C6));
  const hz = 0.5 * z, one = 1 - hz, cos = one + (((1 - one) - hz) + z * poly);
  // 2πu2 = q·π/2 + x: quadrant q mod 4 (q = 4 is a whole turn).
  const quadrant = q & 3;
  const c = quadrant === 0 ? cos : quadrant === 1 ? -sin : quadrant === 2 ? -cos : sin;
  const s = quadrant === 0 ? sin : quadrant === 1 ? cos : quadrant === 2 ? -sin : -cos;
  pair[0] = r * c;
  pair[1] = r * s;
}
const pair = new Float64Array(2);

/**
 * Box–Muller pairs of Philox blocks b0 … b0 + count − 1 (count ≤ 65536), block j's pair at
 * [2j, 2j + 1], rounded to float32 when `single`: what the CPU backend's SIMD kernel returns
 * (a view it reuses). fillRandom without one computes the pairs itself, with the same bits.
 */
export type NormalPairs = (b0: number, count: number, key0: number, key1: number, single: boolean) => Float32Array | Float64Array;

/**
 * Fills `out` with draws number `counter`, `counter + 1`, ... of the stream `key`.
 * Each Philox block gives two values: two uniforms, or the Box–Muller pair (cos, sin).
 * float32 uniforms are the float64 ones truncated to 24 bits, so they stay below 1.
 * (Blocks come in batches from `blocks`, normal pairs from `pairs` when given.)
 */
export function fillRandom(
  out: Float32Array | Float64Array,
  distribution: 'uniform' | 'normal',
  key: readonly [number, number],
  counter: number,
  blocks: PhiloxBlocks = philoxBlocks,
  pairs: NormalPairs | null = null,
): void {
  const single = out instanceof Float32Array, normal = distribution === 'normal';
  const n = out.length, key0 = key[0] >>> 0, key1 = key[1] >>> 0;
  // Element i of the draw is value (counter + i) of the stream: block (counter+i)>>1, half (counter+i)&1.
  let b = Math.floor(counter / 2), half = counter % 2, j = 0, batch = 0;
  if (normal && pairs !== null) {
    for (let i = 0; i < n; half = 0) {
      batch = Math.min(PAIR_BATCH, Math.ceil((n - i + half) / 2));
      const values = pairs(b, batch, key0, key1, single), take = Math.min(n - i, 2 * batch - half);
      out.set(values.subarray(half, half + take), i);
      i += take;
      b += batch;
    }
    return;
  }
  for (let i = 0; i < n; b++, half = 0, j++) {
    if (j === batch) {
      // The blocks the remaining values need: the first may give only its second value.
      batch = Math.min(BATCH, Math.ceil((n - i + half) / 2));
      blocks(b, batch, key0, key1, words);
      j = 0;
    }
    const w = 4 * j;
    const u1 = uniform53(words[w]!, words[w + 1]!), u2 = uniform53(words[w + 2]!, words[w + 3]!);
    if (normal) {
      boxMuller(u1, u2, pair);
      if (half === 0) out[i++] = pair[0]!;
      if (i < n) out[i++] = pair[1]!;
    } else if (single) {
      if (half === 0) out[i++] = Math.floor(u1 * 16777216) / 16777216;
      if (i < n) out[i++] = Math.floor(u2 * 16777216) / 16777216;
    } else {
      if (half === 0) out[i++] = u1;
      if (i < n) out[i++] = u2;
    }
  }
}
