// Router z-loss (ST-MoE, Zoph et al. 2022, eq. 5): L_z = (1/N) Σ_x (logsumexp_i logits(x)_i)².
// It pushes the router's logits toward small magnitudes, where the softmax's exponentials are
// well conditioned (the paper's fix for instabilities in bfloat16); weight 1e-3 in the paper.

import { tidy } from '../../tensor/engine.js';
import { logsumexp, mean } from '../../tensor/ops/reduction.js';
import type { Tensor } from '../../tensor/tensor.js';

/** mean over rows of logsumexp(logits [N, E])²: a 0-d tensor. */
export function routerZLoss(logits: Tensor): Tensor {
  return tidy(() => mean(logsumexp(logits, -1).square()));
}
