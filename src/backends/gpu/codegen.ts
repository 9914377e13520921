// Source generation for gpu.js kernels. Every tensor lives on the device as a flat float32
// array (row-major, as on the CPU), and every kernel computes one output element per
// thread: this.thread.x is the flat output index. Shapes, strides and loop bounds are
// written into the source as literals, so each (op, shapes, attributes) compiles once and
// every loop bound is a compile-time constant (gpu.js cuts loops with a runtime bound at
// loopMaxIterations, 1000 by default, without a word).
//
// Index arithmetic is done in float32 (it is exact for integers below 2^24, the element
// limit of this backend). Division is the one inexact step: WGSL allows 2.5 ulp, so each
// quotient is corrected by one in either direction (idiv below).

import type { Shape } from '../../core/shape.js';
import type { BinaryKernel, CompareKernel, UnaryKernel } from '../../core/backend.js';

/** A literal for kernel source: integers as written, other finite floats with full precision. */
export function lit(v: number): string {
  if (!Number.isFinite(v)) throw new Error(`gpu backend: cannot write ${v} as a kernel literal`);
  return Number.isInteger(v) ? String(v) : v.toPrecision(17).replace(/\.?0+(e|$)/, '$1');
}

/** Statements declaring q = ⌊r / d⌋ exactly, for integer-valued r >= 0 and a literal d >= 1. */
export function idiv(q: string, r: string, d: number): string[] {
  if (d === 1) return [`let ${q} = ${r};`];
  return [
    `let ${q} = Math.floor(${r} / ${d});`,
    `if (${q} * ${d} > ${r}) { ${q} = ${q} - 1; }`,
    `if (${q} * ${d} + ${d} <= ${r}) { ${q} = ${q} + 1; }`,
  ];
}

/**
 * Merges neighbouring dimensions that every operand walks contiguously (stride[d] =
 * stride[d+1]·shape[d+1]), and drops size-1 dimensions: fewer divisions per thread.
 */
function collapse(shape: Shape, strides: readonly (readonly number[])[]): { shape: number[]; strides: number[][] } {
  const outShape: number[] = [];
  const out: number[][] = strides.map(() => []);
  for (let d = 0; d < shape.length; d++) {
    const n = shape[d]!;
    if (n === 1) continue;
    const last = outShape.length - 1;
    if (last >= 0 && strides.every((s, j) => out[j]![last] === s[d]! * n)) {
      outShape[last] = outShape[last]! * n;
      strides.forEach((s, j) => { out[j]![last] = s[d]!; });
    } else {
      outShape.push(n);
      strides.forEach((s, j) => out[j]!.push(s[d]!));
    }
  }
  return { shape: outShape, strides: out };
}

/**
 * Statements that split the flat output index over `shape` and declare, for each operand j,
 * `o<j>` = Σ_d coordinate_d · strides[j][d] (its element for this thread).
 */
export function offsets(shape: Shape, strides: readonly (readonly number[])[]): string[] {
  const c = collapse(shape, strides);
  const lines = c.strides.map((_, j) => `let o${j} = 0;`);
  if (c.shape.length === 0) return lines;
  if (c.shape.length === 1) {
    c.strides.forEach((s, j) => { if (s[0] !== 0) lines.push(`o${j} = this.thread.x * ${s[0]};`); });
    return lines;
  }
  lines.push('let r = this.thread.x;');
  for (let d = c.shape.length - 1; d >= 0; d--) {
    const coord = `k${d}`;
    if (d === 0) {
      lines.push(`const ${coord} = r;`);
    } else {
      lines.push(...idiv(`q${d}`, 'r', c.shape[d]!), `const ${coord} = r - q${d} * ${c.shape[d]};`, `r = q${d};`);
    }
    c.strides.forEach((s, j) => { if (s[d] !== 0) lines.push(`o${j} = o${j} + ${coord} * ${s[d]};`); });
  }
  return lines;
}

/** Statements declaring the coordinate `c<d>` of every dimension of `shape` (no merging). */
export function coordinates(shape: Shape): string[] {
  const lines = ['let r = this.thread.x;'];
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] === 1) { lines.push(`const c${d} = 0;`); continue; }
    if (d === 0) { lines.push(`const c${d} = r;`); continue; }
    lines.push(...idiv(`q${d}`, 'r', shape[d]!), `const c${d} = r - q${d} * ${shape[d]};`, `r = q${d};`);
  }
  return lines;
}

/** `function(args) { body }` as gpu.js parses it. */
export function kernelSource(args: readonly string[], body: readonly string[]): string {
  return `function(${args.join(', ')}) {\n  ${body.join('\n  ')}\n}`;
}

/**
 * sin or cos written out (Cephes' sinf/cosf): x − k·π/2 in three parts (Cody–Waite, exact
 * products for |k| < 2^12 or so), then a minimax polynomial on [−π/4, π/4] chosen by the
 * quadrant k mod 4. GPU sin/cos are not bound to float32 accuracy: SwiftShader's are off
 * by 1.6e-4 at x = 1.5, beyond any float32 tolerance.
 */
function trigonometric(fn: 'sin' | 'cos'): string[] {
  // quadrant q: sin x = [s, c, −s, −c][q], cos x = [c, −s, −c, s][q]
  const pick = fn === 'sin' ? ['s', 'c', '-s', '-c'] : ['c', '-s', '-c', 's'];
  return [
    'const k = Math.floor(x * 0.63661977236758134 + 0.5);',
    'const r = ((x - k * 1.5703125) - k * 0.0004837512969970703125) - k * 0.0000000754978995489188216;',
    'const z = r * r;',
    'const s = r + r * z * (-0.16666654611 + z * (0.0083321608736 + z * -0.00019515295891));',
    'const c = 1 - 0.5 * z + z * z * (0.041666645683 + z * (-0.0013887316255 + z * 0.000024433157118));',
    'const q = k - 4 * Math.floor(k * 0.25);',
    `if (q < 0.5) { return ${pick[0]}; }`,
    `if (q < 1.5) { return ${pick[1]}; }`,
    `if (q < 2.5) { return ${pick[2]}; }`,
    `return ${pick[3]};`,
  ];
}

/**
 * Unary maps as statements over x, ending in a return. Written for float32 on GPUs:
 * tanh from exp(-2|x|) (GLSL's tanh is NaN past |x| ≈ 44), softplus as
 * max(x, 0) + log(1 + exp(-|x|)), Φ by Numerical Recipes' erfc (fractional error < 1.2e-7).
 * log1p/expm1/erf take a Taylor series near 0, where GPU log(1 + x) and exp(x) − 1 lose all
 * relative accuracy (7 % at 1e-3 on llvmpipe) and 1 − erfc(x) too; round sends halves to the
 * even neighbour (torch.round) from x − ⌊x⌋, which is exact in float32 (x + 0.5 is not).
 */
export const unaryBody: Record<UnaryKernel, string[]> = {
  neg: ['return -x;'],
  abs: ['return Math.abs(x);'],
  sign: ['if (x > 0) { return 1; }', 'if (x < 0) { return -1; }', 'return x;'],
  exp: ['return Math.exp(x);'],
  log: ['return Math.log(x);'],
  sqrt: ['return Math.sqrt(x);'],
  tanh: ['const t = Math.exp(-2 * Math.abs(x));', 'const y = (1 - t) / (1 + t);', 'if (x < 0) { return -y; }', 'return y;'],
  sigmoid: ['return 1 / (1 + Math.exp(-x));'],
  relu: ['if (x > 0) { return x; }', 'return 0;'],
  softplus: ['return Math.max(x, 0) + Math.log(1 + Math.exp(-Math.abs(x)));'],
  normalCdf: [
    'const z = -x * 0.70710678118654752;',
    'const a = Math.abs(z);',
    'const t = 1 / (1 + 0.5 * a);',
    'const e = t * Math.exp(-a * a - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + ' +
      't * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));',
    'if (z >= 0) { return 0.5 * e; }',
    'return 1 - 0.5 * e;',
  ],
  // |x| < 0.1: Σ (−1)ⁿ⁺¹xⁿ/n to x⁸ (error < x⁹/9 ≈ 1e-10).
  log1p: [
    'if (Math.abs(x) < 0.1) { return x * (1 - x * (0.5 - x * (0.33333333333333333 - x * (0.25 - x * (0.2 - x * (0.16666666666666667 - x * (0.14285714285714286 - x * 0.125))))))); }',
    'return Math.log(1 + x);',
  ],
  // |x| < 0.1: Σ xⁿ/n! to x⁷ (error < x⁸/8! ≈ 2.5e-13).
  expm1: [
    'if (Math.abs(x) < 0.1) { return x * (1 + x * 0.5 * (1 + x * 0.33333333333333333 * (1 + x * 0.25 * (1 + x * 0.2 * (1 + x * 0.16666666666666667 * (1 + x * 0.14285714285714286)))))); }',
    'return Math.exp(x) - 1;',
  ],
  sin: trigonometric('sin'),
  cos: trigonometric('cos'),
  floor: ['return Math.floor(x);'],
  ceil: ['return Math.ceil(x);'],
  round: [
    'const f = Math.floor(x);',
    'const d = x - f;',
    'if (d > 0.5) { return f + 1; }',
    'if (d < 0.5) { return f; }',
    'const half = Math.floor(f * 0.5);',
    'if (f - half * 2 === 1) { return f + 1; }',
    'return f;',
  ],
  // |x| < 0.5: 2/√π · Σ (−1)ⁿx²ⁿ⁺¹/(n!(2n+1)) to x¹¹ (error < 2e-8); beyond, 1 − erfc as in Φ.
  erf: [
    'const a = Math.abs(x);',
    'if (a < 0.5) {',
    'const s = x * x;',
    'return 1.1283791670955126 * x * (1 - s * (0.33333333333333333 - s * (0.1 - s * (0.023809523809523810 - s * (0.0046296296296296296 - s * 0.00075757575757575758)))));',
    '}',
    'const t = 1 / (1 + 0.5 * a);',
    'const e = t * Math.exp(-a * a - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + ' +
      't * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));',
    'if (x < 0) { return e - 1; }',
    'return 1 - e;',
  ],
};

/**
 * Binary ops as statements over x and y, ending in a return. pow handles what GPU pow
 * leaves undefined: x < 0 (sign from an odd integer exponent), 0⁰ = 1 and 0^y.
 */
export function binaryBody(op: BinaryKernel | CompareKernel, intResult: boolean): string[] {
  switch (op) {
    case 'add': return ['return x + y;'];
    case 'sub': return ['return x - y;'];
    case 'mul': return ['return x * y;'];
    case 'div': return ['return x / y;'];
    case 'maximum': return ['if (x > y) { return x; }', 'return y;'];
    case 'minimum': return ['if (x < y) { return x; }', 'return y;'];
    case 'equal': return ['if (x === y) { return 1; }', 'return 0;'];
    case 'notEqual': return ['if (x !== y) { return 1; }', 'return 0;'];
    case 'less': return ['if (x < y) { return 1; }', 'return 0;'];
    case 'lessEqual': return ['if (x <= y) { return 1; }', 'return 0;'];
    case 'greater': return ['if (x > y) { return 1; }', 'return 0;'];
    case 'greaterEqual': return ['if (x >= y) { return 1; }', 'return 0;'];
    case 'pow': return [
      'if (y === 0) { return 1; }',
      'const ax = Math.abs(x);',
      'let p = 0;',
      'if (ax > 0) { p = Math.pow(ax, y); }',
      'if (ax === 0 && y < 0) { p = 1 / ax; }',
      'if (x < 0 && Math.floor(y) !== y) { return (ax - ax) / (ax - ax); }', // NaN, as Math.pow
      // an odd integer exponent keeps the sign of a negative base
      'const half = Math.floor(y * 0.5);',
      'if (x < 0 && Math.floor(y) === y && y - half * 2 === 1) { p = -p; }',
      ...(intResult ? ['return Math.floor(p + 0.5);'] : ['return p;']),
    ];
  }
}
