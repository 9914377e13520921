// What autograd gives the tensor layer (see src/tensor/autograd-hooks.ts): recording a
// node, dropping one, and Tensor.backward. src/index.ts installs it.

import type { AutogradHooks } from '../tensor/autograd-hooks.js';
import { backward } from './backward.js';
import { record, release } from './node.js';

export const autogradHooks: AutogradHooks = { record, releaseNode: release, backward };
