// The ops the tensor layer records for autograd: each is a graph node's `op` and has one
// gradient rule in src/autograd/rules.ts. The rule table is mapped over this type and runOp
// takes only these names, so an op recorded without a rule is a compile error.
//
// Most are the kernel of the same name; `reshape` has no kernel (it shares the input's data)
// and `topk` and `sort` record a `gather` of their indices (their gradient is gather's).
// `norm` and `std` have no kernel either: their forward is composed of other ops, run
// without recording, and recorded as one node whose rule holds PyTorch's convention at the
// points where the composition's gradient would be 0·∞ (a zero norm, a zero deviation).
// `lstmCell`, `lstmSequence`, `groupedMatmul`, `weightedIndexAdd`, `topkGates`, `probInTopK` and `cvSquared` are fused kernels' nodes (src/tensor/ops/fused.ts), recorded
// only where the backend runs that kernel.
// `checkpoint` is no kernel either: autograd's checkpoint() records it for a whole function
// whose activations it recomputes in backward (src/autograd/checkpoint.ts).

export type RecordedOp =
  | 'neg' | 'abs' | 'exp' | 'log' | 'sqrt' | 'tanh' | 'sigmoid' | 'relu' | 'softplus' | 'normalCdf'
  | 'log1p' | 'expm1' | 'sin' | 'cos' | 'floor' | 'ceil' | 'round' | 'erf'
  | 'add' | 'sub' | 'mul' | 'div' | 'pow' | 'maximum' | 'minimum' | 'where'
  | 'sum' | 'max' | 'min' | 'prod' | 'cumsum' | 'norm' | 'std' | 'matmul'
  | 'reshape' | 'permute' | 'broadcastTo' | 'slice' | 'flip' | 'pad' | 'assembleSlices' | 'concat'
  | 'gather' | 'scatterAdd' | 'indexSelect' | 'indexAdd' | 'cast'
  | 'lstmCell' | 'lstmSequence' | 'groupedMatmul' | 'weightedIndexAdd' | 'topkGates' | 'probInTopK' | 'cvSquared'
  | 'checkpoint';

/** The attributes of the recorded ops that have no kernel of their own (axes normalized, sorted). */
export interface CompositeAttrs {
  norm: { p: number; axes: readonly number[] };
  std: { axes: readonly number[]; correction: number };
}
