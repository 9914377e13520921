// Special functions in float64: erf, erfc and the standard normal CDF Φ (used by the MoE smooth
// load estimator, paper eq. 9). Accurate to a few ulps over the whole real line.

const SQRT_PI = Math.sqrt(Math.PI);

/** erf(z) for 0 <= z < 1.5 by the all-positive series e^{-z²}·Σ 2ⁿz^{2n+1}/(1·3···(2n+1)). */
function erfSeries(z: number): number {
  let term = z, sum = z;
  const z2 = 2 * z * z;
  for (let n = 1; n < 200; n++) {
    term *= z2 / (2 * n + 1);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return (2 / SQRT_PI) * Math.exp(-z * z) * sum;
}

/**
 * erfc(z) for z >= 1.5 by its continued fraction, evaluated backwards. 100 terms converge
 * to an ulp from z = 1.5 on; switching there (not higher) avoids the cancellation in
 * 1 - erf(z), which cost ~1e-12 relative near z = 2.5.
 */
function erfcContinuedFraction(z: number): number {
  // erfc(z) = e^{-z²}/√π · 1/(z + (1/2)/(z + 1/(z + (3/2)/(z + 2/(z + ...)))))
  let f = z;
  for (let n = 100; n >= 1; n--) f = z + n / 2 / f;
  return Math.exp(-z * z) / SQRT_PI / f;
}

export function erfc(z: number): number {
  if (Number.isNaN(z)) return NaN;
  if (z < 0) return 2 - erfc(-z);
  return z < 1.5 ? 1 - erfSeries(z) : erfcContinuedFraction(z);
}

/** erf(z): the series below 1.5 keeps its relative accuracy near 0 (1 − erfc(z) would not). */
export function erf(z: number): number {
  if (Number.isNaN(z)) return NaN;
  if (z < 0) return -erf(-z);
  return z < 1.5 ? erfSeries(z) : 1 - erfcContinuedFraction(z);
}

/** Φ(x) = P(N(0,1) <= x) = erfc(-x/√2) / 2. */
export function normalCdf(x: number): number {
  return 0.5 * erfc(-x / Math.SQRT2);
}

/**
 * Φ for float32 results: erfc by the Chebyshev-fitted form of Numerical Recipes (§6.2,
 * fractional error < 1.2e-7 everywhere, about float32's resolution), ~20× cheaper than the
 * float64 path above. The CPU backend's SIMD kernel (math-module.ts emitNormalCdf) runs the
 * same float64 steps on two lanes, with expF64 for Math.exp, bit for bit.
 */
export function normalCdfFloat32(x: number): number {
  const z = -x / Math.SQRT2;
  const a = Math.abs(z);
  const t = 1 / (1 + 0.5 * a);
  const r = t * Math.exp(-a * a - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return 0.5 * (z >= 0 ? r : 2 - r);
}

/** normalCdfFloat32's polynomial for the SIMD kernel: q = t·last, then q = t·(c + q) for each c; the exponent (−a·a − offset) + q. */
export const ERFC_NR = {
  last: 0.17087277,
  c: [-0.82215223, 1.48851587, -1.13520398, 0.27886807, -0.18628806, 0.09678418, 0.37409196, 1.00002368],
  offset: 1.26551223,
} as const;

/**
 * fdlibm's e^x (e_exp.c, as in FreeBSD's msun and V8's base::ieee754::exp, exp(1) = Math.E
 * as V8 has it): argument reduction x = k·ln 2 + r with ln 2 in two parts, a degree-5
 * Remez form for e^r, then 2^k. This is what Math.exp computes in V8: the SIMD kernels run
 * these steps on two float64 lanes (math-module.ts emitExpF64), and the scalar kernels keep
 * Math.exp (2.6× faster here than this function in JavaScript), so the two agree because
 * they are the same algorithm; test/backends/cpu-simd-math.test.ts checks expF64, the SIMD
 * lanes and Math.exp bit for bit on random bit patterns and on every branch's edges.
 */
export const FDLIBM_EXP = {
  half: 0.5, ln2Hi: 6.93147180369123816490e-01, ln2Lo: 1.90821492927058770002e-10, invLn2: 1.44269504088896338700e+00,
  overflow: 7.09782712893383973096e+02, underflow: -7.45133219101941108420e+02,
  /** P1 … P5, the innermost (P5) last. */
  p: [1.66666666666666019037e-01, -2.77777777770155933842e-03, 6.61375632143793436117e-05, -1.65339022054652515390e-06, 4.13813679705723846039e-08],
  twoM1000: 9.33263618503218878990e-302, two1023: 8.988465674311579539e307,
  /** High words of |x| where the branches change: 0.5·ln 2, 1.5·ln 2, 2⁻²⁸, 709.78. */
  hiHalfLn2: 0x3fd62e42, hiThreeHalvesLn2: 0x3ff0a2b2, hiTiny: 0x3e300000, hiBig: 0x40862e42,
} as const;

/**
 * fdlibm's log (FreeBSD e_log.c), which V8's Math.log is: ln 2 in two parts and Lg1 … Lg7.
 * The SIMD kernel (math-module.ts emitLogF64) runs its steps with these constants, and
 * test/backends/cpu-simd-math.test.ts checks its lanes against Math.log bit for bit.
 */
export const FDLIBM_LOG = {
  ln2Hi: 6.93147180369123816490e-01, ln2Lo: 1.90821492927058770002e-10,
  /** Lg1 … Lg7. */
  lg: [6.666666666666735130e-01, 3.999999999940941908e-01, 2.857142874366239149e-01, 2.222219843214978396e-01,
    1.818357216161805012e-01, 1.531383769920937332e-01, 1.479819860511658591e-01],
} as const;

const expBits = new Float64Array(1), expWords = new Int32Array(expBits.buffer);
const [EP1, EP2, EP3, EP4, EP5] = FDLIBM_EXP.p as unknown as [number, number, number, number, number];

/** 2^k for an integer k in [−1022, 1023], from its bits. */
function pow2(k: number): number {
  expWords[0] = 0;
  expWords[1] = (0x3ff + k) << 20;
  return expBits[0]!;
}

export function expF64(x: number): number {
  const E = FDLIBM_EXP;
  expBits[0] = x;
  let hx = expWords[1]!;
  const negative = hx < 0;
  hx &= 0x7fffffff;
  if (hx >= E.hiBig) {
    if (x !== x) return x + x;
    if (x > E.overflow) return Infinity; // +∞ too
    if (x < E.underflow) return 0; // −∞ too
  }
  let hi = 0, lo = 0, k = 0;
  if (hx > E.hiHalfLn2) {
    if (hx < E.hiThreeHalvesLn2) {
      if (x === 1) return Math.E;
      k = negative ? -1 : 1;
    } else {
      k = Math.trunc(E.invLn2 * x + (negative ? -E.half : E.half));
    }
    // k·ln2Hi is exact for these k: for k = ±1 this is fdlibm's x ∓ ln2Hi, ±ln2Lo.
    hi = x - k * E.ln2Hi;
    lo = k * E.ln2Lo;
    x = hi - lo;
  } else if (hx < E.hiTiny) {
    return 1 + x;
  }
  const t = x * x;
  const c = x - t * (EP1 + t * (EP2 + t * (EP3 + t * (EP4 + t * EP5))));
  if (k === 0) return 1 - ((x * c) / (c - 2) - x);
  const y = 1 - ((lo - (x * c) / (2 - c)) - hi);
  if (k >= -1021) return k === 1024 ? y * 2 * E.two1023 : y * pow2(k);
  return y * pow2(k + 1000) * E.twoM1000;
}


// σ, tanh and softplus for float32 tensors, in float32 arithmetic: Cephes' expf, tanhf and logf (S. L.
// Moshier, the algorithms PyTorch's and Eigen's vectorized float32 kernels descend from),
// each step rounded to float32 as WebAssembly's f32x4 lanes round it. The CPU backend's SIMD
// kernels (src/backends/cpu/wasm/math-module.ts) run the same steps four lanes at a time, so
// these scalar functions are their reference, bit for bit, and the fallback where SIMD is
// missing. Within 2 float32 ulps of the true value (test/core/special.test.ts); float64
// tensors keep Math.exp and Math.tanh.

const f32 = Math.fround;
/** Cephes expf's constants, as float32. */
export const EXPF = {
  log2e: f32(1.44269504088896341), c1: 0.693359375, c2: f32(-2.12194440e-4), hi: 89, lo: -104,
  p: [1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1].map(f32),
} as const;
/** Cephes tanhf's polynomial on |x| < 0.625, highest power first. */
export const TANHF = { small: 0.625, p: [-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2, 1.33314422036e-1, -3.33332819422e-1].map(f32) } as const;

/** 2^m for m in [−75, 64] (the halves of e^x's scaling), indexed m + 75. */
const POW2 = Float64Array.from({ length: 140 }, (_, i) => 2 ** (i - 75));
/** p[0]·xⁿ + … + p[n] by Horner's rule, each product and sum rounded to float32 (as the SIMD lanes do). */
function hornerF32(p: readonly number[], x: number): number {
  let q = p[0]!;
  for (let i = 1; i < p.length; i++) q = f32(f32(q * x) + p[i]!);
  return q;
}
const LOG2E = EXPF.log2e, C1 = EXPF.c1, C2 = EXPF.c2;

/**
 * e^x in float32 steps (x a float32 value): x clamped to [−104, 89] (beyond, float32's e^x
 * is 0 or ∞), n = nearest(x·log2 e) (ties to even, as f32x4.nearest), r = x − n·ln 2 in two
 * parts, e^r by Cephes' degree-7 form, times 2^n applied as two powers of two so that results
 * below float32's normal range round once, as subnormals.
 */
export function expF32(x: number): number {
  const v = Math.max(Math.min(x, 89), -104);
  if (v !== v) return NaN;
  const t = f32(v * LOG2E);
  let n = Math.round(t);
  if (n - t === 0.5 && (n & 1) !== 0) n -= 1;
  const r = f32(f32(v - f32(n * C1)) - f32(n * C2));
  const z = f32(r * r);
  const q = hornerF32(EXPF.p, r);
  const y = f32(f32(f32(q * z) + r) + 1);
  const n1 = n >> 1;
  return f32(f32(y * POW2[n1 + 75]!) * POW2[n - n1 + 75]!);
}

/** σ(x) = num / (1 + e^−|x|) with num = 1 for x ≥ 0, e^−|x| below (no overflow, one rounding). */
export function sigmoidF32(x: number): number {
  const e = expF32(-Math.abs(x));
  return f32((x >= 0 ? 1 : e) / f32(1 + e));
}

/**
 * Cephes logf's constants, as float32: √2, above which the mantissa is halved; its polynomial
 * on [√½ − 1, √2 − 1], highest power first; ln 2 in two parts (q1 + q2).
 */
export const LOGF = {
  sqrt2: f32(Math.SQRT2), q1: f32(-2.12194440e-4), q2: 0.693359375,
  p: [7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1, -1.6668057665e-1, 2.0000714765e-1,
    -2.4999993993e-1, 3.3333331174e-1].map(f32),
} as const;
const SQRT2F = LOGF.sqrt2, LQ1 = LOGF.q1, LQ2 = LOGF.q2;

/**
 * softplus x = max(x, 0) + log1p(u), u = e^−|x| ∈ (0, 1], in float32 steps without branches:
 * w = 1 + u ∈ [1, 2] written 2^k·m with k = 1 and m = w/2 above √2, else k = 0 and m = w;
 * ln w by Cephes logf on f = m − 1, plus log1p's correction (u − (w − 1)) / w for the rounding
 * of 1 + u (so tiny u gives u, not 0). Every step runs for every x (k·q1 adds a zero where
 * k = 0), as the SIMD kernel's lanes run them. Within 2 float32 ulps of the float64 softplus.
 */
export function softplusF32(x: number): number {
  const u = expF32(-Math.abs(x));
  const w = f32(1 + u);
  const k = w > SQRT2F ? 1 : 0;
  const f = k === 1 ? f32(f32(w * 0.5) - 1) : f32(w - 1);
  const z = f32(f * f);
  let y = f32(f32(hornerF32(LOGF.p, f) * f) * z);
  y = f32(y + f32(LQ1 * k));
  y = f32(y + f32(-0.5 * z));
  let l = f32(f + y);
  l = f32(l + f32(LQ2 * k));
  l = f32(l + f32(f32(u - f32(w - 1)) / w));
  return f32(Math.max(x, 0) + l);
}


/** tanh x: Cephes' odd polynomial for |x| < 0.625, else 1 − 2 / (e^2|x| + 1); x's sign last. */
export function tanhF32(x: number): number {
  const a = Math.abs(x);
  let t: number;
  if (a < 0.625) {
    const z = f32(a * a);
    t = f32(f32(f32(hornerF32(TANHF.p, z) * z) * a) + a);
  } else {
    t = f32(1 - f32(2 / f32(expF32(2 * a) + 1)));
  }
  return x < 0 || (x === 0 && 1 / x < 0) ? -t : t;
}
