// Pure shape arithmetic: sizes, strides, axis normalization, NumPy broadcasting.

export type Shape = readonly number[];

export function sizeOf(shape: Shape): number {
  let n = 1;
  for (let i = 0; i < shape.length; i++) n *= shape[i]!;
  return n;
}

export function stridesOf(shape: Shape): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i]!;
  }
  return strides;
}

export function shapeToString(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

export function shapesEqual(a: Shape, b: Shape): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Checks that every dimension is a finite non-negative integer. */
export function assertValidShape(shape: unknown, op: string, arg = 'shape'): asserts shape is Shape {
  if (!Array.isArray(shape)) throw new Error(`${op}: ${arg} must be an array of non-negative integers, got ${String(shape)}`);
  for (const d of shape) {
    if (typeof d !== 'number' || !Number.isInteger(d) || d < 0) {
      throw new Error(`${op}: ${arg} must hold non-negative integers, got [${shape.map(String).join(', ')}]`);
    }
  }
}

/** Normalizes a possibly negative axis; `rank` axes are valid, as in PyTorch. */
export function normalizeAxis(axis: number, rank: number, op: string, arg = 'axis'): number {
  if (!Number.isInteger(axis)) throw new Error(`${op}: ${arg} must be an integer, got ${axis}`);
  const r = Math.max(rank, 1);
  if (axis < -r || axis >= r) {
    throw new Error(`${op}: ${arg} ${axis} is out of range for a tensor of rank ${rank} (expected ${-r} to ${r - 1})`);
  }
  return axis < 0 ? axis + r : axis;
}

/** Normalizes `axis` (undefined = all axes) into a sorted list of distinct axes. */
export function normalizeAxes(axis: number | readonly number[] | undefined, rank: number, op: string): number[] {
  if (axis === undefined) return Array.from({ length: rank }, (_, i) => i);
  const list = typeof axis === 'number' ? [axis] : [...axis];
  const out = list.map((a) => normalizeAxis(a, rank, op));
  const seen = new Set<number>();
  for (const a of out) {
    if (seen.has(a)) throw new Error(`${op}: axis ${a} appears twice in [${list.join(', ')}]`);
    seen.add(a);
  }
  // A rank-0 tensor accepts axis 0/-1 as PyTorch does; it reduces nothing.
  return rank === 0 ? [] : out.sort((x, y) => x - y);
}

/** NumPy broadcasting of two shapes; the error names the op and both shapes. */
export function broadcastShapes(a: Shape, b: Shape, op: string): number[] {
  const rank = Math.max(a.length, b.length);
  const out = new Array<number>(rank);
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new Error(
        `${op}: shapes ${shapeToString(a)} and ${shapeToString(b)} cannot be broadcast together (dimension ${i - rank} is ${da} vs ${db})`,
      );
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Strides of `shape` seen from a broadcast `outShape`: 0 on broadcast dimensions. */
export function broadcastStrides(shape: Shape, outShape: Shape): number[] {
  const strides = stridesOf(shape);
  const offset = outShape.length - shape.length;
  const out = new Array<number>(outShape.length).fill(0);
  for (let i = 0; i < shape.length; i++) out[i + offset] = shape[i] === 1 ? 0 : strides[i]!;
  return out;
}

/** The shape of a reduction: reduced axes removed, or kept as 1. */
export function reducedShape(shape: Shape, axes: readonly number[], keepdims: boolean): number[] {
  const out: number[] = [];
  for (let i = 0; i < shape.length; i++) {
    if (axes.includes(i)) {
      if (keepdims) out.push(1);
    } else {
      out.push(shape[i]!);
    }
  }
  return out;
}
