// The gpu.js kernel table: for each kernel of src/core/backend.ts, the gpu.js source
// that computes one output element per thread (see codegen.ts), keyed by op, shapes and
// attributes. The CPU kernels (src/backends/cpu) are the reference for every semantic.

import { fillRandom } from '../../core/philox.js';
import { broadcastStrides, sizeOf, stridesOf, type Shape } from '../../core/shape.js';
import type { BinaryKernel, CompareKernel, CoreKernelName, KernelAttrs, KernelName, OutInfo, TensorInfo, UnaryKernel } from '../../core/backend.js';
import { binaryBody, coordinates, idiv, kernelSource, offsets, unaryBody } from './codegen.js';
import type { GpuBackend, GpuHandle } from './gpu-backend.js';

type In = readonly (TensorInfo & { handle: GpuHandle })[];
type GpuKernel<K extends KernelName> = (inputs: In, attrs: KernelAttrs[K], out: OutInfo, be: GpuBackend) => GpuHandle;

/** At most this many tensor arguments per kernel (WebGPU guarantees 8 storage buffers per stage). */
export const MAX_INPUTS = 7;

const dims = (s: Shape) => (s.length === 0 ? 'scalar' : s.join('x'));
function keyOf(op: string, inputs: In, attrs: unknown, out: OutInfo): string {
  return `${op}|${inputs.map((i) => dims(i.shape)).join(',')}->${dims(out.shape)}:${out.dtype}|${JSON.stringify(attrs)}`;
}
const args = (n: number) => Array.from({ length: n }, (_, i) => `a${i}`);

const unary = (op: UnaryKernel): GpuKernel<UnaryKernel> => (inputs, attrs, out, be) =>
  be.launch({
    key: keyOf(op, inputs, attrs, out), inputs: [inputs[0]!.handle], size: sizeOf(out.shape),
    source: kernelSource(['a0'], ['const x = a0[this.thread.x];', ...unaryBody[op]]),
  });

const binary = (op: BinaryKernel | CompareKernel): GpuKernel<BinaryKernel | CompareKernel> => (inputs, attrs, out, be) => {
  const [a, b] = inputs as [In[0], In[0]];
  const body = [
    ...offsets(out.shape, [broadcastStrides(a.shape, out.shape), broadcastStrides(b.shape, out.shape)]),
    'const x = a0[o0];', 'const y = a1[o1];',
    ...binaryBody(op, out.dtype === 'int32'),
  ];
  return be.launch({ key: keyOf(op, inputs, attrs, out), inputs: [a.handle, b.handle], size: sizeOf(out.shape), source: kernelSource(['a0', 'a1'], body) });
};

/** A kernel returning a0[o0], `body` being the statements that compute the offset o0 (pure data movement). */
function copyKernel(op: string, inputs: In, attrs: unknown, out: OutInfo, be: GpuBackend, body: string[]): GpuHandle {
  return be.launch({
    key: keyOf(op, inputs, attrs, out), inputs: [inputs[0]!.handle], size: sizeOf(out.shape),
    source: kernelSource(['a0'], [...body, 'return a0[o0];']),
  });
}

/**
 * Nested literal loops over the reduced dimensions of x (merged where contiguous), folding
 * x[o0 + Σ j·stride] into `acc`. Sums add each innermost run into a partial first, which
 * keeps long float32 sums about √n·ε accurate instead of n·ε.
 */
function reduceLoops(kind: 'sum' | 'max' | 'min' | 'prod', dimsR: number[], stridesR: number[]): { lines: string[]; loop: number } {
  // Merge neighbours walked contiguously; split a long innermost run into blocks of 64.
  const ds: number[] = [], ss: number[] = [];
  dimsR.forEach((d, i) => {
    const last = ds.length - 1;
    if (last >= 0 && ss[last] === stridesR[i]! * d) { ds[last] = ds[last]! * d; ss[last] = stridesR[i]!; } else { ds.push(d); ss.push(stridesR[i]!); }
  });
  const lines: string[] = [];
  let index = 'o0';
  let loop = 1;
  let guard: string | null = null;
  const inner = ds.length - 1;
  ds.forEach((d, i) => {
    if (kind === 'sum' && i === inner && d > 128) {
      const blocks = Math.ceil(d / 64);
      lines.push(`for (let jb = 0; jb < ${blocks}; jb++) {`, 'let part = 0;', 'for (let ji = 0; ji < 64; ji++) {', 'const j = jb * 64 + ji;');
      if (blocks * 64 !== d) guard = `j < ${d}`;
      index += ` + j * ${ss[i]}`;
      loop = Math.max(loop, blocks, 64);
      return;
    }
    if (kind === 'sum' && i === inner) lines.push('let part = 0;');
    lines.push(`for (let j${i} = 0; j${i} < ${d}; j${i}++) {`);
    index += ` + j${i} * ${ss[i]}`;
    loop = Math.max(loop, d);
  });
  const read = `a0[${index}]`;
  let body: string;
  if (kind === 'sum') body = `part += ${read};`;
  else if (kind === 'prod') body = `acc = acc * ${read};`;
  else body = `const v = ${read}; if (v ${kind === 'max' ? '>' : '<'} acc) { acc = v; }`;
  lines.push(guard ? `if (${guard}) { ${body} }` : body);
  // Close the loops; a sum adds its partial after the innermost (or block) loop.
  const opened = lines.filter((l) => l.startsWith('for')).length;
  for (let i = opened - 1; i >= 0; i--) {
    lines.push('}');
    if (kind === 'sum' && i === opened - 1) lines.push('acc += part;');
  }
  return { lines, loop };
}

function reduction(kind: 'sum' | 'max' | 'min' | 'prod'): GpuKernel<'sum' | 'max' | 'min' | 'prod'> {
  return (inputs, attrs, out, be) => {
    const x = inputs[0]!;
    const strides = stridesOf(x.shape);
    const kept = x.shape.map((_, i) => i).filter((i) => !attrs.axes.includes(i));
    const reducedDims = attrs.axes.map((a) => x.shape[a]!);
    if (sizeOf(reducedDims) === 0) return be.fill(out, kind === 'sum' ? 0 : kind === 'prod' ? 1 : NaN);
    if (reducedDims.length === 0) return be.copy(x.handle, out); // over no axis: the identity
    const { lines, loop } = reduceLoops(kind, reducedDims, attrs.axes.map((a) => strides[a]!));
    const body = [
      ...offsets(kept.map((i) => x.shape[i]!), [kept.map((i) => strides[i]!)]),
      kind === 'sum' ? 'let acc = 0;' : kind === 'prod' ? 'let acc = 1;' : 'let acc = a0[o0];',
      ...lines,
      'return acc;',
    ];
    return be.launch({ key: keyOf(kind, inputs, attrs, out), inputs: [x.handle], size: sizeOf(out.shape), loop, source: kernelSource(['a0'], body) });
  };
}

/** Inclusive running sum: element j of a row adds the row's first j + 1 entries (a literal loop). */
const cumsum: GpuKernel<'cumsum'> = (inputs, attrs, out, be) => {
  const x = inputs[0]!;
  const n = x.shape[attrs.axis]!, inner = sizeOf(x.shape.slice(attrs.axis + 1));
  const body = [
    ...coordinates([sizeOf(x.shape.slice(0, attrs.axis)), n, inner]),
    `const base = c0 * ${n * inner} + c2;`,
    'let acc = 0;',
    `for (let j = 0; j < ${n}; j++) {`,
    `if (j <= c1) { acc += a0[base + j * ${inner}]; }`,
    '}', 'return acc;',
  ];
  return be.launch({ key: keyOf('cumsum', inputs, attrs, out), inputs: [x.handle], size: sizeOf(out.shape), loop: n, source: kernelSource(['a0'], body) });
};

/**
 * A stable sort of each last-axis row in two passes of O(n) per thread: the rank of each
 * entry (how many entries come before it: a better value, or an equal one at a lower index),
 * then, for each output slot, the entry of that rank. NaN ordering is the CPU's only where
 * the device compares NaN as the CPU does (WebGPU does not promise it).
 */
const argsort: GpuKernel<'argsort'> = (inputs, attrs, out, be) => {
  const x = inputs[0]!;
  const n = x.shape[x.shape.length - 1] ?? 1;
  const better = attrs.descending ? '>' : '<';
  const rowOf = [...idiv('row', 'this.thread.x', n), `const i = this.thread.x - row * ${n};`, `const base = row * ${n};`];
  const rank = [
    ...rowOf, 'const v = a0[this.thread.x];', 'let r = 0;',
    `for (let j = 0; j < ${n}; j++) {`,
    'const u = a0[base + j];',
    `if (u ${better} v || (u === v && j < i)) { r = r + 1; }`,
    '}', 'return r;',
  ];
  const size = sizeOf(out.shape);
  const ranks = be.launch({ key: keyOf('argsort.rank', inputs, attrs, out), inputs: [x.handle], size, loop: n, source: kernelSource(['a0'], rank) });
  const place = [
    ...rowOf, 'let at = 0;',
    `for (let j = 0; j < ${n}; j++) {`,
    'if (a0[base + j] === i) { at = j; }',
    '}', 'return at;',
  ];
  const indices = be.launch({ key: keyOf('argsort.place', inputs, attrs, out), inputs: [ranks], size, loop: n, source: kernelSource(['a0'], place) });
  be.decRef(ranks);
  return indices;
};

/** Index of the first extreme along one axis (ties to the lowest index). */
function argReduction(kind: 'argmax' | 'argmin'): GpuKernel<'argmax' | 'argmin'> {
  return (inputs, attrs, out, be) => {
    const x = inputs[0]!;
    const n = x.shape[attrs.axis] ?? 1, inner = sizeOf(x.shape.slice(attrs.axis + 1));
    const outer = sizeOf(x.shape.slice(0, attrs.axis));
    const body = [
      ...offsets([outer, inner], [[n * inner, 1]]),
      'let best = a0[o0];', 'let at = 0;',
      `for (let j = 1; j < ${n}; j++) {`,
      `const v = a0[o0 + j * ${inner}];`,
      `if (v ${kind === 'argmax' ? '>' : '<'} best) { best = v; at = j; }`,
      '}', 'return at;',
    ];
    return be.launch({ key: keyOf(kind, inputs, attrs, out), inputs: [x.handle], size: sizeOf(out.shape), loop: n, source: kernelSource(['a0'], body) });
  };
}

const matmul: GpuKernel<'matmul'> = (inputs, attrs, out, be) => {
  const [a, b] = inputs as [In[0], In[0]];
  const aCols = a.shape[a.shape.length - 1]!, bCols = b.shape[b.shape.length - 1]!;
  const k = attrs.transposeA ? a.shape[a.shape.length - 2]! : aCols;
  if (k === 0) return be.fill(out, 0);
  // op(A)(r, p) and op(B)(p, c) through strides: a transpose is only a swap.
  const [aR, aP] = attrs.transposeA ? [1, aCols] : [aCols, 1];
  const [bP, bC] = attrs.transposeB ? [1, bCols] : [bCols, 1];
  const batch = out.shape.slice(0, -2);
  const batchStrides = (t: In[0]) => broadcastStrides(t.shape.slice(0, -2), batch).map((s) => s * sizeOf(t.shape.slice(-2)));
  const body = [
    ...offsets(out.shape, [[...batchStrides(a), aR, 0], [...batchStrides(b), 0, bC]]),
    'let acc = 0;',
    `for (let p = 0; p < ${k}; p++) {`,
    `acc += a0[o0 + p * ${aP}] * a1[o1 + p * ${bP}];`,
    '}', 'return acc;',
  ];
  return be.launch({ key: keyOf('matmul', inputs, attrs, out), inputs: [a.handle, b.handle], size: sizeOf(out.shape), loop: k, source: kernelSource(['a0', 'a1'], body) });
};

/** Σ pieces placed at their boxes (+ an optional running total), at most MAX_INPUTS per kernel. */
function assemble(pieces: In, begins: readonly (readonly number[])[], out: OutInfo, be: GpuBackend, total: GpuHandle | null): GpuHandle {
  const lines = [...coordinates(out.shape), total ? 'let acc = a0[this.thread.x];' : 'let acc = 0;'];
  const first = total ? 1 : 0;
  pieces.forEach((p, i) => {
    const strides = stridesOf(p.shape);
    const inside = p.shape.map((d, k) => `c${k} >= ${begins[i]![k]} && c${k} < ${begins[i]![k]! + d}`);
    const offset = p.shape.map((_, k) => `(c${k} - ${begins[i]![k]}) * ${strides[k]}`).join(' + ') || '0';
    lines.push(`if (${inside.join(' && ') || 'true'}) { acc += a${first + i}[${offset}]; }`);
  });
  lines.push('return acc;');
  const inputs = total ? [total, ...pieces.map((p) => p.handle)] : pieces.map((p) => p.handle);
  const key = `assembleSlices|${total ? 'acc,' : ''}${pieces.map((p) => dims(p.shape)).join(',')}->${dims(out.shape)}:${out.dtype}|${JSON.stringify(begins)}`;
  return be.launch({ key, inputs, size: sizeOf(out.shape), source: kernelSource(args(inputs.length), lines) });
}

const assembleSlices: GpuKernel<'assembleSlices'> = (inputs, attrs, out, be) => {
  const live = inputs.map((p, i) => ({ p, b: attrs.begins[i]! })).filter(({ p }) => sizeOf(p.shape) > 0);
  if (live.length === 0) return be.fill(out, 0);
  let total: GpuHandle | null = null;
  for (let i = 0; i < live.length; ) {
    const take = live.slice(i, i + (total ? MAX_INPUTS - 1 : MAX_INPUTS));
    const next = assemble(take.map((t) => t.p), take.map((t) => t.b), out, be, total);
    if (total) be.decRef(total);
    total = next;
    i += take.length;
  }
  return total!;
};

const concat: GpuKernel<'concat'> = (inputs, attrs, out, be) => {
  const axis = attrs.axis;
  const live = inputs.filter((x) => sizeOf(x.shape) > 0);
  if (live.length > MAX_INPUTS) {
    // Concatenation is associative: join groups, then join the groups.
    const groups: GpuHandle[] = [], infos: (TensorInfo & { handle: GpuHandle })[] = [];
    for (let i = 0; i < live.length; i += MAX_INPUTS) {
      const group = live.slice(i, i + MAX_INPUTS);
      const shape = [...out.shape];
      shape[axis] = group.reduce((s, x) => s + x.shape[axis]!, 0);
      const h = concat(group, attrs, { shape, dtype: out.dtype }, be);
      groups.push(h);
      infos.push({ handle: h, shape, dtype: out.dtype });
    }
    const result = concat(infos, attrs, out, be);
    for (const h of groups) be.decRef(h);
    return result;
  }
  const outer = sizeOf(out.shape.slice(0, axis)), inner = sizeOf(out.shape.slice(axis + 1));
  const lines = [...coordinates([outer, out.shape[axis]!, inner])];
  let start = 0;
  live.forEach((x, i) => {
    const d = x.shape[axis]!;
    lines.push(`if (c1 < ${start + d}) { return a${i}[(c0 * ${d} + c1 - ${start}) * ${inner} + c2]; }`);
    start += d;
  });
  lines.push('return 0;');
  return be.launch({ key: keyOf('concat', live, attrs, out), inputs: live.map((x) => x.handle), size: sizeOf(out.shape), source: kernelSource(args(live.length), lines) });
};

const pad: GpuKernel<'pad'> = (inputs, attrs, out, be) => {
  const x = inputs[0]!;
  if (sizeOf(x.shape) === 0) return be.fill(out, 0);
  const strides = stridesOf(x.shape);
  const inside = x.shape.map((d, k) => `c${k} >= ${attrs.before[k]} && c${k} < ${attrs.before[k]! + d}`);
  const offset = x.shape.map((_, k) => `(c${k} - ${attrs.before[k]}) * ${strides[k]}`).join(' + ') || '0';
  const lines = [...coordinates(out.shape), `if (${inside.join(' && ') || 'true'}) { return a0[${offset}]; }`, 'return 0;'];
  return be.launch({ key: keyOf('pad', inputs, attrs, out), inputs: [x.handle], size: sizeOf(out.shape), source: kernelSource(['a0'], lines) });
};

/** Offset in x of the output coordinates c0.., the axis coordinate replaced by `idx`. */
function offsetWithIndex(xShape: Shape, rank: number, axis: number, idx: string): string {
  const strides = stridesOf(xShape);
  const terms: string[] = [];
  for (let k = 0; k < rank; k++) terms.push(k === axis ? `${idx} * ${strides[k]}` : `c${k} * ${strides[k]}`);
  return terms.join(' + ') || '0';
}

const gather: GpuKernel<'gather'> = (inputs, attrs, out, be) => {
  const [x, index] = inputs as [In[0], In[0]];
  be.checkIndex('gather', index, x.shape[attrs.axis]!, attrs.axis);
  const lines = [...coordinates(out.shape), 'const idx = a1[this.thread.x];', `return a0[${offsetWithIndex(x.shape, x.shape.length, attrs.axis, 'idx')}];`];
  return be.launch({ key: keyOf('gather', inputs, attrs, out), inputs: [x.handle, index.handle], size: sizeOf(out.shape), source: kernelSource(['a0', 'a1'], lines) });
};

const indexSelect: GpuKernel<'indexSelect'> = (inputs, attrs, out, be) => {
  const [x, index] = inputs as [In[0], In[0]];
  be.checkIndex('indexSelect', index, x.shape[attrs.axis]!, attrs.axis);
  const lines = [...coordinates(out.shape), `const idx = a1[c${attrs.axis}];`, `return a0[${offsetWithIndex(x.shape, x.shape.length, attrs.axis, 'idx')}];`];
  return be.launch({ key: keyOf('indexSelect', inputs, attrs, out), inputs: [x.handle, index.handle], size: sizeOf(out.shape), source: kernelSource(['a0', 'a1'], lines) });
};

/** out = x plus, for each output element, the src entries whose index equals its axis coordinate. */
const scatterAdd: GpuKernel<'scatterAdd'> = (inputs, attrs, out, be) => {
  const [x, index, src] = inputs as [In[0], In[0], In[0]];
  be.checkIndex('scatterAdd', index, x.shape[attrs.axis]!, attrs.axis);
  if (sizeOf(index.shape) === 0) return be.copy(x.handle, out);
  const axis = attrs.axis, L = index.shape[axis]!;
  const iStrides = stridesOf(index.shape);
  const within = index.shape.map((d, k) => (k === axis || d === x.shape[k] ? null : `c${k} < ${d}`)).filter((s) => s !== null);
  const base = index.shape.map((_, k) => (k === axis ? null : `c${k} * ${iStrides[k]}`)).filter((s) => s !== null).join(' + ') || '0';
  const lines = [
    ...coordinates(out.shape), 'let acc = a0[this.thread.x];',
    ...(within.length ? [`if (${within.join(' && ')}) {`] : ['{']),
    `const base = ${base};`,
    `for (let j = 0; j < ${L}; j++) {`,
    `const at = base + j * ${iStrides[axis]};`,
    `if (a1[at] === c${axis}) { acc += a2[at]; }`,
    '}', '}', 'return acc;',
  ];
  return be.launch({ key: keyOf('scatterAdd', inputs, attrs, out), inputs: [x.handle, index.handle, src.handle], size: sizeOf(out.shape), loop: L, source: kernelSource(['a0', 'a1', 'a2'], lines) });
};

/** out = x plus, for each output element, the src slices whose (1-D) index equals its axis coordinate. */
const indexAdd: GpuKernel<'indexAdd'> = (inputs, attrs, out, be) => {
  const [x, index, src] = inputs as [In[0], In[0], In[0]];
  be.checkIndex('indexAdd', index, x.shape[attrs.axis]!, attrs.axis);
  const m = index.shape[0]!;
  if (m === 0) return be.copy(x.handle, out);
  const lines = [
    ...coordinates(out.shape), 'let acc = a0[this.thread.x];',
    `for (let j = 0; j < ${m}; j++) {`,
    `if (a1[j] === c${attrs.axis}) { acc += a2[${offsetWithIndex(src.shape, src.shape.length, attrs.axis, 'j')}]; }`,
    '}', 'return acc;',
  ];
  return be.launch({ key: keyOf('indexAdd', inputs, attrs, out), inputs: [x.handle, index.handle, src.handle], size: sizeOf(out.shape), loop: m, source: kernelSource(['a0', 'a1', 'a2'], lines) });
};

const oneHot: GpuKernel<'oneHot'> = (inputs, attrs, out, be) => {
  const index = inputs[0]!;
  be.checkIndex('oneHot', index, attrs.depth, -1);
  const lines = [...idiv('i', 'this.thread.x', attrs.depth), `const c = this.thread.x - i * ${attrs.depth};`, 'if (a0[i] === c) { return 1; }', 'return 0;'];
  return be.launch({ key: keyOf('oneHot', inputs, attrs, out), inputs: [index.handle], size: sizeOf(out.shape), source: kernelSource(['a0'], lines) });
};

/**
 * Slot s of each row is found by s+1 selection passes over the row, each taking the best
 * entry ordered after the previous pass's winner in (value, then lower index) order: ties go
 * to the lowest index, as on the CPU.
 */
const topkIndices: GpuKernel<'topkIndices'> = (inputs, attrs, out, be) => {
  const x = inputs[0]!;
  const n = x.shape[x.shape.length - 1] ?? 1, k = attrs.k;
  const better = attrs.largest ? '>' : '<';
  const lines = [
    ...idiv('row', 'this.thread.x', k), `const slot = this.thread.x - row * ${k};`, `const base = row * ${n};`,
    'let prevV = 0;', 'let prevI = -1;',
    `for (let p = 0; p < ${k}; p++) {`,
    'if (p <= slot) {',
    'let bestV = 0;', 'let bestI = -1;',
    `for (let j = 0; j < ${n}; j++) {`,
    'const v = a0[base + j];',
    `const after = prevI < 0 || (v ${attrs.largest ? '<' : '>'} prevV) || (v === prevV && j > prevI);`,
    `if (after && (bestI < 0 || v ${better} bestV)) { bestV = v; bestI = j; }`,
    '}',
    'prevV = bestV;', 'prevI = bestI;',
    '}', '}',
    'return prevI;',
  ];
  return be.launch({ key: keyOf('topkIndices', inputs, attrs, out), inputs: [x.handle], size: sizeOf(out.shape), loop: Math.max(n, k), source: kernelSource(['a0'], lines) });
};

export function makeKernels(): { [K in CoreKernelName]: GpuKernel<K> } {
  return {
    neg: unary('neg'), abs: unary('abs'), sign: unary('sign'), exp: unary('exp'), log: unary('log'),
    sqrt: unary('sqrt'), tanh: unary('tanh'), sigmoid: unary('sigmoid'), relu: unary('relu'),
    softplus: unary('softplus'), normalCdf: unary('normalCdf'),
    log1p: unary('log1p'), expm1: unary('expm1'), sin: unary('sin'), cos: unary('cos'),
    floor: unary('floor'), ceil: unary('ceil'), round: unary('round'), erf: unary('erf'),
    add: binary('add'), sub: binary('sub'), mul: binary('mul'), div: binary('div'), pow: binary('pow'),
    maximum: binary('maximum'), minimum: binary('minimum'),
    equal: binary('equal'), notEqual: binary('notEqual'), less: binary('less'), lessEqual: binary('lessEqual'),
    greater: binary('greater'), greaterEqual: binary('greaterEqual'),
    where: (inputs, attrs, out, be) => {
      const body = [
        ...offsets(out.shape, inputs.map((t) => broadcastStrides(t.shape, out.shape))),
        'if (a0[o0] !== 0) { return a1[o1]; }', 'return a2[o2];',
      ];
      return be.launch({ key: keyOf('where', inputs, attrs, out), inputs: inputs.map((t) => t.handle), size: sizeOf(out.shape), source: kernelSource(['a0', 'a1', 'a2'], body) });
    },
    sum: reduction('sum'), max: reduction('max'), min: reduction('min'), prod: reduction('prod'),
    cumsum,
    argmax: argReduction('argmax'), argmin: argReduction('argmin'),
    matmul,
    permute: (inputs, attrs, out, be) => {
      const strides = stridesOf(inputs[0]!.shape);
      return copyKernel('permute', inputs, attrs, out, be, offsets(out.shape, [attrs.perm.map((p) => strides[p]!)]));
    },
    broadcastTo: (inputs, attrs, out, be) =>
      copyKernel('broadcastTo', inputs, attrs, out, be, offsets(out.shape, [broadcastStrides(inputs[0]!.shape, out.shape)])),
    slice: (inputs, attrs, out, be) => {
      const strides = stridesOf(inputs[0]!.shape);
      const start = attrs.begin.reduce((s, b, d) => s + b * strides[d]!, 0);
      const body = offsets(out.shape, [strides]);
      if (start !== 0) body.push(`o0 = o0 + ${start};`);
      return copyKernel('slice', inputs, attrs, out, be, body);
    },
    // x reversed along axes: the flipped axes walk backwards from their last element.
    flip: (inputs, attrs, out, be) => {
      const x = inputs[0]!;
      const strides = stridesOf(x.shape);
      const start = attrs.axes.reduce((s, d) => s + (x.shape[d]! - 1) * strides[d]!, 0);
      const body = offsets(out.shape, [strides.map((s, d) => (attrs.axes.includes(d) ? -s : s))]);
      if (start !== 0) body.push(`o0 = o0 + ${start};`);
      return copyKernel('flip', inputs, attrs, out, be, body);
    },
    pad,
    assembleSlices,
    concat,
    gather, scatterAdd, indexSelect, indexAdd, oneHot, topkIndices, argsort,
    cast: (inputs, _attrs, out, be) => {
      const x = inputs[0]!;
      // int32 values are stored as exact floats already: a float view shares the data.
      if (out.dtype !== 'int32') return be.share(x.handle);
      if (x.dtype === 'int32') return be.share(x.handle);
      const lines = ['const x = a0[this.thread.x];', 'if (x < 0) { return -Math.floor(-x); }', 'return Math.floor(x);'];
      return be.launch({ key: keyOf('cast', inputs, {}, out), inputs: [x.handle], size: sizeOf(out.shape), source: kernelSource(['a0'], lines) });
    },
    fill: (_inputs, { value }, out, be) => be.fill(out, value),
    // Philox runs on the host and the values are uploaded: the GPU draws exactly the CPU's numbers.
    random: (_inputs, { distribution, key, counter }, out, be) => {
      if (out.dtype === 'int32') throw new Error('random: int32 output is not supported');
      const values = new Float32Array(sizeOf(out.shape));
      fillRandom(values, distribution, key, counter);
      return be.uploadFloats(values, null);
    },
  };
}
