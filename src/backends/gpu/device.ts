// Starting gpu.js in one explicit mode, and nothing else: a mode that cannot run is an
// error that says why and how to fix it. gpu.js's own 'gpu' mode would silently pick
// WebAssembly when there is no display, and still call itself 'gpu'.
//
// gpu.js and its native helpers (`gl`, `webgpu`) are loaded only when a GPU backend is
// asked for, so that the CPU path works on machines where they are missing or failed to
// build.

/** The gpu.js modes mixtape runs: Node + headless-gl, WebGPU (Node via Dawn, or a browser), browser WebGL2. */
export type GpuMode = 'headlessgl' | 'webgpu' | 'webgl2';
export const GPU_MODES: readonly GpuMode[] = ['headlessgl', 'webgpu', 'webgl2'];

/** The kernel classes each mode must really run; anything else is a fallback and an error. */
export const KERNEL_CLASS: Record<GpuMode, string> = {
  headlessgl: 'HeadlessGLKernel',
  webgpu: 'WebGPUKernel',
  webgl2: 'WebGL2Kernel',
};

/** The parts of gpu.js 2.24 this backend uses (it ships no types we want to depend on). */
export interface GpuJsKernel {
  (...args: unknown[]): unknown;
  kernel: { constructor: { name: string }; fallbackReason?: unknown };
  setOutput(output: number[]): void;
  destroy(): void;
}
export interface GpuJsInstance {
  Kernel: { name: string };
  context?: unknown;
  createKernel(source: string, settings: Record<string, unknown>): GpuJsKernel;
  destroy(): void;
}
interface GpuJsModule {
  GPU: { new (settings: { mode: string }): GpuJsInstance; isWebGPUAvailable?(): Promise<boolean> };
  WebGPUContext?: { acquire(): Promise<{ adapter: { info?: Record<string, unknown> } }>; destroy(): Promise<void> };
}

type Require = (id: string) => unknown;

/** Node's require, reached without a static import of a node: module (browsers have none). */
function nodeRequire(): Require | null {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const mod = proc?.getBuiltinModule?.('module') as { createRequire(from: string): Require } | undefined;
  return mod ? mod.createRequire(import.meta.url) : null;
}

function fail(mode: GpuMode, why: string, fix: string): never {
  throw new Error(`setBackend: the gpu backend (mode '${mode}') cannot start: ${why}. ${fix}`);
}

function loadGpuJs(mode: GpuMode, req: Require | null): GpuJsModule {
  const global = (globalThis as { GPU?: unknown }).GPU;
  if (req === null) {
    // gpu.js's browser build hangs every export off the global GPU (GPU.WebGPUContext, ...):
    // webgpu mode needs WebGPUContext to ask for the adapter that ready() waits on.
    if (typeof global === 'function') {
      const GPU = global as GpuJsModule['GPU'] & { WebGPUContext?: GpuJsModule['WebGPUContext'] };
      return { GPU, WebGPUContext: GPU.WebGPUContext };
    }
    fail(mode, 'gpu.js is not loaded', 'In a browser, load gpu.js 2.24.1 (its browser build defines the global GPU) before mixtape');
  }
  try {
    return req('gpu.js') as GpuJsModule;
  } catch (e) {
    fail(mode, `the gpu.js package cannot be loaded (${(e as Error).message.split('\n')[0]})`, 'Run `npm ci` (gpu.js is a dependency of mixtape)');
  }
}

/** Checks what headless-gl needs (the built addon, an X display, a context) before gpu.js would. */
function checkHeadlessGL(req: Require | null): void {
  const mode = 'headlessgl';
  if (req === null) fail(mode, 'headless-gl runs in Node only', "In a browser use {mode: 'webgl2'} or {mode: 'webgpu'}");
  let createContext: (w: number, h: number) => unknown;
  try {
    createContext = req('gl') as typeof createContext;
  } catch (e) {
    fail(mode, `the 'gl' addon (headless-gl) is not built or cannot load (${(e as Error).message.split('\n')[0]})`,
      'Install its build dependencies and rebuild it: as root `bash scripts/setup.sh`, or ' +
      '`apt-get install build-essential python3 pkg-config libx11-dev libxi-dev libxext-dev libgl1-mesa-dev && npm rebuild gl`');
  }
  const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env ?? {};
  if (!env.DISPLAY) {
    fail(mode, 'there is no X display (DISPLAY is not set); headless-gl creates its GL context through X',
      'Run under a virtual display: `xvfb-run -a <command>` (apt-get install xvfb xauth libgl1-mesa-dri)');
  }
  if (!createContext(1, 1)) {
    fail(mode, `headless-gl could not create a WebGL context on display ${env.DISPLAY}`,
      'Check that the X server runs and offers GLX (`xvfb-run -a glxinfo -B` from mesa-utils), e.g. run under `xvfb-run -a`');
  }
}

/** Provides navigator.gpu in Node from the `webgpu` package (Dawn); browsers have their own. */
function provideWebGPU(req: Require | null): void {
  const nav = (globalThis as { navigator?: { gpu?: unknown } }).navigator;
  if (nav?.gpu) return;
  const mode = 'webgpu';
  if (req === null) fail(mode, 'this browser has no WebGPU (navigator.gpu is missing)', "Use a browser with WebGPU enabled, or {mode: 'webgl2'}");
  let dawn: { create(flags: string[]): unknown; globals: Record<string, unknown> };
  try {
    dawn = req('webgpu') as typeof dawn;
  } catch (e) {
    fail(mode, `the optional 'webgpu' package (Dawn for Node) cannot be loaded (${(e as Error).message.split('\n')[0]})`,
      'Install it: `npm install webgpu@0.4.0` (it is an optional dependency of mixtape)');
  }
  Object.assign(globalThis, dawn.globals);
  const gpu = dawn.create([]);
  if (nav) Object.defineProperty(nav, 'gpu', { value: gpu, configurable: true });
  else Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
}

export interface Device {
  readonly mode: GpuMode;
  readonly gpu: GpuJsInstance;
  /** Resolves once the device is really usable (webgpu: an adapter answered); rejects saying why not. */
  readonly ready: Promise<void>;
  /** What the adapter says it is, once known (renderer / vendor / architecture). */
  describe(): Record<string, unknown>;
  /** Frees the device; the process may then exit (Dawn keeps Node alive while a device lives). */
  shutdown(): void;
}

export function startDevice(mode: GpuMode): Device {
  if (!GPU_MODES.includes(mode)) {
    throw new Error(`setBackend: unknown gpu mode '${String(mode)}' (expected 'headlessgl', 'webgpu' or 'webgl2')`);
  }
  const req = nodeRequire();
  if (mode === 'headlessgl') checkHeadlessGL(req);
  // WebGL2 draws on a canvas: a document's, or an OffscreenCanvas in a browser's Web Worker
  // (gpu.js makes one there itself). Node has neither.
  const scope = globalThis as { document?: unknown; OffscreenCanvas?: unknown };
  if (mode === 'webgl2' && scope.document === undefined && (req !== null || typeof scope.OffscreenCanvas !== 'function')) {
    fail(mode, 'WebGL2 needs a browser (a canvas)', "In Node use {mode: 'headlessgl'} (under xvfb-run) or {mode: 'webgpu'}");
  }
  if (mode === 'webgpu') provideWebGPU(req);
  const lib = loadGpuJs(mode, req);
  let gpu: GpuJsInstance;
  try {
    gpu = new lib.GPU({ mode });
  } catch (e) {
    fail(mode, `gpu.js could not start this mode (${(e as Error).message})`, 'See the GPU section of the README for the setup of each mode');
  }
  if (gpu.Kernel.name !== KERNEL_CLASS[mode]) {
    gpu.destroy();
    fail(mode, `gpu.js chose ${gpu.Kernel.name} instead of ${KERNEL_CLASS[mode]}`, 'This is a fallback mixtape refuses; check the setup of this mode');
  }
  const info: Record<string, unknown> = {};
  let ready: Promise<void> = Promise.resolve();
  if (mode === 'webgpu') {
    const ctx = lib.WebGPUContext;
    ready = (ctx ? ctx.acquire() : Promise.reject(new Error('gpu.js has no WebGPUContext'))).then(
      ({ adapter }) => {
        const a = adapter.info ?? {};
        for (const key of ['vendor', 'architecture', 'device', 'description']) if (a[key]) info[key] = a[key];
      },
      (e: Error) => {
        throw new Error(`setBackend: the gpu backend (mode 'webgpu') cannot start: no WebGPU adapter (${e.message.split('\n')[0]}). ` +
          (req === null
            ? "The browser offers no WebGPU adapter: check chrome://gpu (headless Chromium needs --enable-unsafe-webgpu), or use {mode: 'webgl2'}"
            : 'Without a GPU, install a Vulkan driver: Mesa lavapipe >= 25 (mesa-vulkan-drivers; on Debian 12 from bookworm-backports, see scripts/setup.sh)'));
      },
    );
    ready.catch(() => {}); // reported where it is awaited (ready(), or the first op)
  }
  let alive = true;
  return {
    mode, gpu, ready,
    describe() {
      if (mode !== 'webgpu' && !info.renderer && gpu.context) {
        const gl = gpu.context as { getExtension(n: string): { UNMASKED_RENDERER_WEBGL: number } | null; getParameter(p: number): unknown; RENDERER: number; VERSION: number };
        const ext = gl.getExtension('WEBGL_debug_renderer_info');
        info.renderer = String(gl.getParameter(ext ? ext.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
        info.version = String(gl.getParameter(gl.VERSION));
      }
      return { ...info };
    },
    shutdown() {
      if (!alive) return;
      alive = false;
      gpu.destroy();
      if (mode === 'webgpu') void lib.WebGPUContext?.destroy();
    },
  };
}
