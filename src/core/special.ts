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
 * float64 path above.
 */
export function normalCdfFloat32(x: number): number {
  const z = -x / Math.SQRT2;
  const a = Math.abs(z);
  const t = 1 / (1 + 0.5 * a);
  const r = t * Math.exp(-a * a - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return 0.5 * (z >= 0 ? r : 2 - r);
}
