// Small helpers the alternating benchmarks share (no imports, so that standalone scripts such
// as moe-timeline and memory-overlap stay free of the harness's tfjs and benchmark.js).

/** The median of some timings (the upper one of the middle two for an even count). */
export const median = (xs: readonly number[]): number => {
  const s = xs.slice().sort((p, q) => p - q);
  return s[s.length >> 1]!;
};
