// The ops the tensor layer records for autograd: each is a graph node's `op` and has one
// gradient rule in src/autograd/rules.ts. The rule table is mapped over this type and runOp
// takes only these names, so an op recorded without a rule is a compile error.
//
// Most are the kernel of the same name; `reshape` has no kernel (it shares the input's data)
// and `topk` records a `gather` of its indices (top-k's gradient is gather's). `checkpoint`
// is no kernel either: autograd's checkpoint() records it for a whole function whose
// activations it recomputes in backward (src/autograd/checkpoint.ts).

export type RecordedOp =
  | 'neg' | 'abs' | 'exp' | 'log' | 'sqrt' | 'tanh' | 'sigmoid' | 'relu' | 'softplus' | 'normalCdf'
  | 'add' | 'sub' | 'mul' | 'div' | 'pow' | 'maximum' | 'minimum' | 'where'
  | 'sum' | 'max' | 'min' | 'matmul'
  | 'reshape' | 'permute' | 'broadcastTo' | 'slice' | 'pad' | 'assembleSlices' | 'concat'
  | 'gather' | 'scatterAdd' | 'indexSelect' | 'indexAdd' | 'cast'
  | 'checkpoint';
