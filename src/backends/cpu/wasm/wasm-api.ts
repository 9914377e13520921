// The few WebAssembly JS-API members the SIMD kernels use, typed here because the project's
// TypeScript lib (es2022, no DOM) declares no WebAssembly global. undefined where the
// JavaScript engine has no WebAssembly.

export interface WasmMemory { readonly buffer: ArrayBuffer | SharedArrayBuffer; grow(pages: number): number }
// eslint-disable-next-line @typescript-eslint/no-empty-interface
export interface WasmModule {}
export interface WasmInstance { readonly exports: Record<string, unknown> }

export interface WasmApi {
  Memory: new (descriptor: { initial: number; maximum?: number; shared?: boolean }) => WasmMemory;
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (module: WasmModule, imports: Record<string, Record<string, unknown>>) => WasmInstance;
  validate(bytes: Uint8Array): boolean;
}

export const wasmApi = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
