// The lab's Web Worker: runs the host (src/lab/host.ts) off the page's thread, on every
// backend (the CPU, WebGPU, WebGL2 on an OffscreenCanvas), so a training step never blocks
// the page. Each message is {id, method, args};
// the answer is {id, result} or {id, error} with the error's message.

import { host, type HostMethod } from './host.js';

interface WorkerScope {
  onmessage: ((e: { data: { id: number; method: HostMethod; args: unknown[] } }) => void) | null;
  postMessage(message: unknown, transfer?: unknown[]): void;
}
const scope = globalThis as unknown as WorkerScope;

scope.onmessage = async ({ data: { id, method, args } }) => {
  try {
    const result = await (host[method] as (...a: unknown[]) => unknown)(...args);
    scope.postMessage({ id, result }, result instanceof Uint8Array ? [result.buffer] : []);
  } catch (e) {
    scope.postMessage({ id, error: (e as Error).message ?? String(e) });
  }
};
