// Which of the five scalar CPU matmul kernels computes C (m×n) = op(A) (m×k) · op(B) (k×n).
// They run for int32, for products below MIN_MACS (4096) multiply-adds, and everywhere with
// setBackend('cpu', { simd: false }) or without WebAssembly SIMD; the other float32 and
// float64 products run on the SIMD kernels (src/backends/cpu/wasm/), which sum each entry
// over k in order in the result's dtype (a float32 result is accumulated in float32).
// The choice depends on the shape and the transposes only, never on the dtype, and is the
// same for every matrix of a batch. The first row that matches wins:
//
//   kernel     file          when
//   in-place   in-place.ts   n ≥ 8 and m < 96 and k ≥ 16, or
//                            n ≥ 8 and Aᵀ·B and m ≥ 8 and k < 96
//   packed     packed.ts     m ≥ 8 and n ≥ 8 and k ≥ 16 and m·n·k ≥ 24³
//   dot-bt     thin.ts       A·Bᵀ
//   small-k    thin.ts       k < 16
//   rows-b     thin.ts       the rest: B not transposed, k ≥ 16, and either n < 8 (the gate
//                            logits x·W_g with fewer than 8 experts, matrix·vector, and their
//                            weight gradients xᵀ·dy) or the corner m ≥ 96, n ≥ 8,
//                            k ∈ {16, 17}, m·n·k < 24³, not Aᵀ·B
//
// Why:
// - in-place: few rows against a wide weight (x·Wᵀ and dy·W of an MoE expert). Packing the
//   weight costs a multiply-add per element, used only m times; in place ran 6.6–6.8
//   GFLOP/s against 6.1–6.6 packed at 48 and 63 rows, about equal at 96. Aᵀ·B with a short
//   k is an expert's weight gradient dyᵀ·x over its few examples (k is the example count).
// - packed: everything large; its thresholds are the measured crossovers where packing both
//   operands pays off (every dimension about 8–16, the product about 24³ multiply-adds).
// - dot-bt: with B transposed both operands are read along k, so four dot products share
//   each read of A.
// - small-k: a 2×4 tile of C stays in registers for the whole short sum.
// - rows-b: four rows of C share each row of B read; no packing for a thin C.
//
// Precision of a float32 (or int32) result — which kernel runs decides it, the dtype does not:
//
//   in-place, packed, dot-bt, small-k   each entry is summed in float64 (a local, or the
//                                       packed kernel's float64 accumulator) and rounded to
//                                       float32 once, when it is stored.
//   rows-b                              each product is added into C itself, so a float32 C
//                                       is rounded after every one of the k steps: float32
//                                       accumulation. (A float64 C is float64 either way;
//                                       int32 results agree while sums stay below 2⁵³.)
//
// So a float32 [200×300]·[300×4] product, the gate logits at E = 4, is accumulated in
// float32 (rows-b: with randn operands 722 of its 800 entries differ in the last bits from
// the float64 sum rounded once), while [200×300]·[300×8] is float64-accumulated (packed).
// The difference is within float32's rounding error of a k-term sum, and changing it
// would change numbers; test/backends/cpu-matmul-kernels.test.ts pins this table and
// these precision claims.

export type MatmulKernel = 'in-place' | 'packed' | 'dot-bt' | 'small-k' | 'rows-b';

/** Rows below which the in-place kernel is at or above the packed one (see the table). */
const IN_PLACE_ROWS = 96;

/** The kernel for one m×n×k product; the table above says why. */
export function chooseMatmulKernel(m: number, n: number, k: number, transposeA: boolean, transposeB: boolean): MatmulKernel {
  if (n >= 8 && ((m < IN_PLACE_ROWS && k >= 16) || (transposeA && !transposeB && m >= 8 && k < IN_PLACE_ROWS))) return 'in-place';
  if (m >= 8 && n >= 8 && k >= 16 && m * n * k >= 24 * 24 * 24) return 'packed';
  if (transposeB) return 'dot-bt';
  if (k < 16) return 'small-k';
  return 'rows-b';
}
