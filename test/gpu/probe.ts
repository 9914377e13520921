// Starting a GPU mode and running one kernel, shared by the Node GPU suites (gpu-env.ts) and
// the in-page half of the browser test (test/browser/page.ts). No Node imports, and mixtape
// comes in as an argument: the page passes its browser bundle.

import type * as Mixtape from '../../src/index.js';

/** Starts `mode` and checks one kernel's result: the backend's info, or the reason it cannot run. */
export async function probeGpu(mt: typeof Mixtape, mode: 'headlessgl' | 'webgpu' | 'webgl2'): Promise<{ info?: Record<string, unknown>; reason?: string }> {
  try {
    mt.setBackend('gpu', { mode });
    await mt.ready();
    const y = mt.tensor([1, 2, 3]).add(1);
    const v = Array.from(await y.data());
    y.dispose();
    if (v.join() !== '2,3,4') return { reason: `a probe kernel computed [${v.join(', ')}] instead of [2, 3, 4]` };
    return { info: mt.backendInfo() };
  } catch (e) {
    return { reason: (e as Error).message };
  }
}
