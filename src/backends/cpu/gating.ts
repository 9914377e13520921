// Noisy top-k gating's per-row math in one pass each way (the topkGates, probInTopK and
// cvSquared fused kernels, src/core/backend.ts): the softmax over each row's k best logits
// scattered into the gates, the load estimator's P(x, i), and the balancing losses' cv²
// (Shazeer et al. 2017, eqs. 5, 9, 7 and 11). Composed from core ops they are about a hundred
// small kernels per step, forward and backward.
//
// Every intermediate is rounded to the dtype where the composition stores it (`round`:
// Math.fround for float32, nothing for float64), sums run in float64 from 0 in the order the
// sum kernel adds, and a gradient scattered into zeros is 0 + g (−0 becomes +0, as there):
// the bits of the composition, which test/tensor/gating-kernels.test.ts compares.

import { normalCdf, normalCdfFloat32 } from '../../core/special.js';
import type { TypedArray } from '../../core/dtype.js';
import { cpuPool } from './pool.js';

/**
 * probInTopK's elementwise part on SIMD (wasm-math.ts), float32, each element's threshold
 * given: the same bits as the loops below. A method returns false to leave the job to them.
 */
export interface ProbInTopKPlanes {
  forward(clean: Float32Array, thr: Float32Array, sd: Float32Array, out: Float32Array): boolean;
  backward(dP: Float32Array, clean: Float32Array, thr: Float32Array, sd: Float32Array, dClean: Float32Array, dSd: Float32Array): boolean;
  /** thr from noisy and each row's (tIn, tOut) in tRows, as `thresholds` picks them; false where it declines. */
  thresholds?(noisy: Float32Array, tRows: Float32Array, thr: Float32Array, E: number): boolean;
  /** Each row's float64 sums of −dClean where noisy > tIn and elsewhere into sums (two a row), as the loops add them; false where it declines. */
  thresholdSums?(noisy: Float32Array, dClean: Float32Array, tRows: Float32Array, sums: Float64Array, E: number): boolean;
}

/** Each row's thresholds (tIn, tOut): its (k+1)-th largest noisy logit, for experts inside the top k, and its k-th (from the pool: give it back). */
function rowThresholds(noisy: TypedArray, indices: Int32Array, E: number, m: number, k: number, rows: number): Float32Array {
  const tRows = cpuPool.take('float32', 2 * rows, false) as Float32Array;
  for (let n = 0, base = 0, ib = 0; n < rows; n++, base += E, ib += m) {
    tRows[2 * n] = noisy[base + indices[ib + k]!]!;
    tRows[2 * n + 1] = noisy[base + indices[ib + k - 1]!]!;
  }
  return tRows;
}

/** Each element's threshold into thr, from its row's (tIn, tOut): tIn for experts inside the top k (noisy > tIn), else tOut. On the planes where they take it (E a multiple of 4). */
function thresholds(planes: ProbInTopKPlanes, noisy: Float32Array, tRows: Float32Array, E: number, thr: Float32Array): void {
  if (planes.thresholds?.(noisy, tRows, thr, E) === true) return;
  for (let base = 0, r = 0; base < thr.length; base += E, r += 2) {
    const tIn = tRows[r]!, tOut = tRows[r + 1]!;
    for (let i = base; i < base + E; i++) thr[i] = noisy[i]! > tIn ? tIn : tOut;
  }
}

/** Each row's float64 sums of −dClean over the experts inside the top k (noisy > tIn) and over the others into sums (two a row), on the planes where they take it. */
function thresholdSums(planes: ProbInTopKPlanes, noisy: Float32Array, dClean: Float32Array, tRows: Float32Array, E: number, sums: Float64Array): void {
  if (planes.thresholdSums?.(noisy, dClean, tRows, sums, E) === true) return;
  for (let base = 0, r = 0; base < noisy.length; base += E, r += 2) {
    const tIn = tRows[r]!;
    let sumIn = 0, sumOut = 0;
    for (let i = base; i < base + E; i++) {
      if (noisy[i]! > tIn) sumIn += -dClean[i]!;
      else sumOut += -dClean[i]!;
    }
    sums[r] = sumIn;
    sums[r + 1] = sumOut;
  }
}

/** Whether the planes take this job: float32 operands throughout. */
function onPlanes(planes: ProbInTopKPlanes | null, ...arrays: TypedArray[]): boolean {
  return planes !== null && arrays.every((a) => a instanceof Float32Array);
}

const identity = (v: number) => v;

function checkIndices(op: string, indices: Int32Array, E: number): void {
  for (let i = 0; i < indices.length; i++) {
    const j = indices[i]!;
    if (!(j >= 0 && j < E)) throw new Error(`${op}: index ${j} is out of range for ${E} experts`);
  }
}

/**
 * One row's softmax over x at indices[ib … ib+k-1], into e (exps) and g (gates); returns the
 * row sum. max as the max kernel takes it (NaN propagates), then x − max, exp, Σ, ÷.
 */
function rowSoftmax(x: TypedArray, base: number, indices: Int32Array, ib: number, k: number, round: (v: number) => number, e: Float64Array, g: Float64Array): number {
  let a = -Infinity;
  for (let j = 0; j < k; j++) {
    const v = x[base + indices[ib + j]!]!;
    a = a !== a || v !== v ? NaN : v > a ? v : a;
  }
  let s = 0;
  for (let j = 0; j < k; j++) {
    e[j] = round(Math.exp(round(x[base + indices[ib + j]!]! - a)));
    s += e[j]!;
  }
  s = round(s);
  for (let j = 0; j < k; j++) g[j] = round(e[j]! / s);
  return s;
}

/** topkGates: out (zeroed here) gets softmax(x at each row's first k indices) at those indices. */
export function topkGates(x: TypedArray, indices: Int32Array, E: number, m: number, k: number, float32: boolean, out: TypedArray): void {
  checkIndices('topkGates', indices, E);
  const round = float32 ? Math.fround : identity, N = out.length / E;
  const e = new Float64Array(k), g = new Float64Array(k);
  out.fill(0);
  for (let n = 0; n < N; n++) {
    rowSoftmax(x, n * E, indices, n * m, k, round, e, g);
    for (let j = 0; j < k; j++) out[n * E + indices[n * m + j]!] = 0 + g[j]!;
  }
}

/**
 * topkGates' gradient, as the composition's rules give it: ∂e = dg / s + Σ_j −(dg_j · (g_j / s))
 * (div's two inputs, the second summed over the row), ∂(x − max) = ∂e · e, scattered into zeros.
 */
export function topkGatesBackward(dy: TypedArray, x: TypedArray, indices: Int32Array, E: number, m: number, k: number, float32: boolean, dx: TypedArray): void {
  checkIndices('topkGatesBackward', indices, E);
  const round = float32 ? Math.fround : identity, N = dx.length / E;
  const e = new Float64Array(k), g = new Float64Array(k);
  dx.fill(0);
  for (let n = 0; n < N; n++) {
    const base = n * E, ib = n * m;
    const s = rowSoftmax(x, base, indices, ib, k, round, e, g);
    let ds = 0;
    for (let j = 0; j < k; j++) ds += -round(dy[base + indices[ib + j]!]! * round(g[j]! / s));
    ds = round(ds);
    for (let j = 0; j < k; j++) {
      const i = base + indices[ib + j]!;
      const de = round(round(dy[i]! / s) + ds);
      dx[i] = 0 + round(de * e[j]!);
    }
  }
}

/** probInTopK: Φ((clean − threshold) / stddev), threshold picked per element as in balancing.ts. */
export function probInTopK(
  clean: TypedArray, noisy: TypedArray, stddev: TypedArray, indices: Int32Array, E: number, m: number, k: number, float32: boolean, out: TypedArray,
  planes: ProbInTopKPlanes | null = null,
): void {
  checkIndices('probInTopK', indices, E);
  if (onPlanes(planes, clean, noisy, stddev, out)) {
    const thr = cpuPool.take('float32', out.length, false) as Float32Array, tRows = rowThresholds(noisy, indices, E, m, k, out.length / E);
    thresholds(planes!, noisy as Float32Array, tRows, E, thr);
    const done = planes!.forward(clean as Float32Array, thr, stddev as Float32Array, out as Float32Array);
    cpuPool.give(thr);
    cpuPool.give(tRows);
    if (done) return;
  }
  const round = float32 ? Math.fround : identity, cdf = float32 ? normalCdfFloat32 : normalCdf, N = out.length / E;
  for (let n = 0; n < N; n++) {
    // The row's thresholds: the (k+1)-th largest noisy logit (for experts inside the top k), else the k-th.
    const base = n * E, tIn = noisy[base + indices[n * m + k]!]!, tOut = noisy[base + indices[n * m + k - 1]!]!;
    for (let i = base; i < base + E; i++) {
      const threshold = noisy[i]! > tIn ? tIn : tOut;
      out[i] = cdf(round(round(clean[i]! - threshold) / stddev[i]!));
    }
  }
}

/**
 * probInTopK's gradients, as the composition's rules give them: ∂z = dP · (exp(z² · −½) ·
 * 1/√(2π)), ∂clean = ∂z / σ, ∂σ = −(∂z · (z / σ)), and each threshold's gradient the row's
 * float64 sum of −∂clean over the experts that used it, scattered into zeros.
 */
export function probInTopKBackward(
  dP: TypedArray, clean: TypedArray, noisy: TypedArray, stddev: TypedArray, indices: Int32Array, E: number, m: number, k: number, float32: boolean,
  dClean: TypedArray, dNoisy: TypedArray, dStddev: TypedArray, planes: ProbInTopKPlanes | null = null,
): void {
  checkIndices('probInTopKBackward', indices, E);
  const round = float32 ? Math.fround : identity, N = dP.length / E;
  if (onPlanes(planes, dP, clean, noisy, stddev, dClean, dStddev)) {
    const thr = cpuPool.take('float32', dP.length, false) as Float32Array, tRows = rowThresholds(noisy, indices, E, m, k, N);
    thresholds(planes!, noisy as Float32Array, tRows, E, thr);
    const done = planes!.backward(dP as Float32Array, clean as Float32Array, thr, stddev as Float32Array, dClean as Float32Array, dStddev as Float32Array);
    cpuPool.give(thr);
    if (done) {
      // The thresholds' gradients: each row's float64 sums of −∂clean, as the loop below.
      const sums = cpuPool.take('float64', 2 * N, false) as Float64Array;
      thresholdSums(planes!, noisy as Float32Array, dClean as Float32Array, tRows, E, sums);
      dNoisy.fill(0);
      for (let n = 0, base = 0, ib = 0; n < N; n++, base += E, ib += m) {
        dNoisy[base + indices[ib + k]!] = 0 + round(sums[2 * n]!);
        dNoisy[base + indices[ib + k - 1]!] = 0 + round(sums[2 * n + 1]!);
      }
      cpuPool.give(sums);
    }
    cpuPool.give(tRows);
    if (done) return;
  }
  const density = round(1 / Math.sqrt(2 * Math.PI)), half = round(-0.5);
  dNoisy.fill(0);
  for (let n = 0; n < N; n++) {
    const base = n * E, ib = n * m, tIn = noisy[base + indices[ib + k]!]!, tOut = noisy[base + indices[ib + k - 1]!]!;
    let sumIn = 0, sumOut = 0;
    for (let i = base; i < base + E; i++) {
      const inside = noisy[i]! > tIn, sigma = stddev[i]!;
      const z = round(round(clean[i]! - (inside ? tIn : tOut)) / sigma);
      const dz = round(dP[i]! * round(round(Math.exp(round(round(z * z) * half))) * density));
      const dd = round(dz / sigma);
      dClean[i] = dd;
      dStddev[i] = -round(dz * round(z / sigma));
      sumIn += inside ? -dd : 0;
      sumOut += inside ? 0 : -dd;
    }
    dNoisy[base + indices[ib + k]!] = 0 + round(sumIn);
    dNoisy[base + indices[ib + k - 1]!] = 0 + round(sumOut);
  }
}

/** cv²'s intermediates, as the composition stores them. */
interface CvParts { n: number; m: number; d: Float64Array; den: number; out: number }

function cvParts(v: TypedArray, round: (x: number) => number): CvParts {
  const n = v.length;
  // mean: the sum (float64 from 0, then stored), divided by the count.
  let s = 0;
  for (let i = 0; i < n; i++) s += v[i]!;
  const m = round(round(s) / n);
  // v − m, squared, and their mean.
  const d = new Float64Array(n);
  let s2 = 0;
  for (let i = 0; i < n; i++) {
    d[i] = round(v[i]! - m);
    s2 += round(d[i]! * d[i]!);
  }
  const variance = round(round(s2) / n);
  // m² + 1e-10 (the constant stored in the dtype), then the quotient.
  const den = round(round(m * m) + round(1e-10));
  return { n, m, d, den, out: round(variance / den) };
}

/** cvSquared: Var(v) / (Mean(v)² + 1e-10) over all of v, the composition's bits. */
export function cvSquared(v: TypedArray, float32: boolean): number {
  return cvParts(v, float32 ? Math.fround : identity).out;
}

/**
 * cvSquared's gradient for dy, as the composition's rules give it: div's (∂var = dy / den,
 * ∂den = −(dy · (out / den))), add's, mul(m, m)'s two products summed, mean's division and
 * broadcast, mul(d, d)'s two products summed, sub's (∂m = Σ −∂d), then ∂v = ∂d + ∂m / n.
 */
export function cvSquaredBackward(dy: number, v: TypedArray, float32: boolean, dv: TypedArray): void {
  const round = float32 ? Math.fround : identity;
  const { n, m, d, den, out } = cvParts(v, round);
  const dVar = round(dy / den), dDen = -round(dy * round(out / den));
  const dmSquare = round(dDen * m);
  const dmFromSquare = round(dmSquare + dmSquare);
  const dq = round(dVar / n);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const e = round(dq * d[i]!);
    d[i] = round(e + e); // ∂d, in place of d
    sum += -d[i]!;
  }
  const ds = round(round(dmFromSquare + round(sum)) / n);
  for (let i = 0; i < n; i++) dv[i] = round(d[i]! + ds);
}
