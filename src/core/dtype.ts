// Data types. mixtape has three: float32 (the default, and the only float type a GPU
// backend stores), float64 (CPU backend; gradcheck runs in it) and int32 (indices, masks).
// There is no bool dtype: comparisons return int32 0/1 masks.

export type DType = 'float32' | 'float64' | 'int32';
export type TypedArray = Float32Array | Float64Array | Int32Array;

export const DTYPES: readonly DType[] = ['float32', 'float64', 'int32'];

export function isDType(value: unknown): value is DType {
  return value === 'float32' || value === 'float64' || value === 'int32';
}

export function isFloat(dtype: DType): boolean {
  return dtype !== 'int32';
}

export function allocate(dtype: DType, size: number): TypedArray {
  switch (dtype) {
    case 'float32': return new Float32Array(size);
    case 'float64': return new Float64Array(size);
    case 'int32': return new Int32Array(size);
  }
}

export function dtypeOfArray(values: TypedArray): DType {
  if (values instanceof Float32Array) return 'float32';
  if (values instanceof Float64Array) return 'float64';
  return 'int32';
}

export function bytesPerElement(dtype: DType): number {
  return dtype === 'float64' ? 8 : 4;
}

/**
 * PyTorch's promotion for two tensor operands: equal dtypes stay; int32 with a float gives
 * the float; float32 with float64 gives float64.
 */
export function promoteTypes(a: DType, b: DType): DType {
  if (a === b) return a;
  if (a === 'float64' || b === 'float64') return 'float64';
  return 'float32';
}

/** Promotion of a tensor dtype with a plain JS number operand (PyTorch's "wrapped number"). */
export function promoteWithNumber(dtype: DType, value: number): DType {
  if (dtype === 'int32' && !Number.isInteger(value)) return 'float32';
  return dtype;
}

/** The float dtype an op like exp() computes in: int32 is promoted to float32, as in PyTorch. */
export function floatTypeOf(dtype: DType): DType {
  return dtype === 'int32' ? 'float32' : dtype;
}
