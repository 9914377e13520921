// The GPU backend in a real browser: headless Chromium loads gpu.js's browser build (the
// global GPU) and mixtape's browser bundle (built here with scripts/browser-bundle.mjs, the
// options of dist/mixtape.browser.js), served over http://127.0.0.1 (a secure context, which
// WebGPU needs; ES modules from file:// are unreliable). In the page, for each of 'webgl2' and
// 'webgpu': setBackend('gpu', {mode}), await ready(), check that the kernel class that really
// ran is WebGL2Kernel / WebGPUKernel (no silent CPU fallback), then run ops, an LSTM and an MoE
// layer forward and backward on the GPU (float32) and on the CPU backend (float64) in the same
// page; this side compares them with the float32 tolerance of test/gpu/gpu-env.ts.
//
// A mode that cannot start is skipped with its reason, unless MIXTAPE_GPU_REQUIRED names it
// as browser-webgl2 / browser-webgpu (`npm run test:all` does): then it fails. Chromium is
// /usr/bin/chromium or $CHROMIUM; without it every test here is skipped (and the required
// modes fail).

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, extname, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { build, type Plugin } from 'esbuild';
import { browserBuildOptions } from '../../scripts/browser-bundle.mjs';
import { Browser, chromiumMissing, pageError } from '../report/chromium.js';
import type { CaseResult, Evaluation } from './page.js';

type Mode = 'webgl2' | 'webgpu';
const MODES: readonly Mode[] = ['webgl2', 'webgpu'];
const CLASS: Record<Mode, string> = { webgl2: 'WebGL2Kernel', webgpu: 'WebGPUKernel' };
const REQUIRED = (process.env.MIXTAPE_GPU_REQUIRED ?? '').split(',').map((s) => s.trim()).filter(Boolean);

/**
 * Chromium's GPU flags (replacing the report test's --disable-gpu). On this machine (no GPU,
 * Chromium 156, Mesa 25 llvmpipe/lavapipe) headless Chromium gives:
 * - WebGL2 through ANGLE on SwiftShader (Chromium's own software Vulkan): `--use-angle=swiftshader
 *   --enable-unsafe-swiftshader`. Without the second flag Chromium still falls back to
 *   SwiftShader but logs "Automatic fallback to software WebGL has been deprecated" as an error
 *   (the fallback is going away). `--use-angle=gl` / `--use-angle=vulkan` give no WebGL2 context
 *   in headless mode here, and `--ozone-platform=x11` crashed the GPU
 *   process under Xvfb.
 * - WebGPU only with `--enable-unsafe-webgpu` (headless Linux Chromium offers no adapter
 *   otherwise); requestAdapter() then returns Dawn's Vulkan adapter on SwiftShader (vendor
 *   google, architecture swiftshader, isFallbackAdapter true). Mesa's lavapipe is never
 *   offered, even with `--enable-features=Vulkan --use-vulkan=native`,
 *   VK_ICD_FILENAMES=lvp_icd.json, `--use-webgpu-adapter=default` or `--ignore-gpu-blocklist`:
 *   Chromium exposes no CPU adapter but its own SwiftShader.
 * No X display is needed (headless); the suite runs under xvfb-run anyway.
 */
const DEFAULT_GPU_FLAGS = ['--use-angle=swiftshader', '--enable-unsafe-swiftshader', '--enable-unsafe-webgpu'];
/** MIXTAPE_CHROMIUM_GPU_FLAGS (space-separated) replaces them, e.g. to try a real GPU's drivers. */
const GPU_FLAGS = process.env.MIXTAPE_CHROMIUM_GPU_FLAGS?.split(/\s+/).filter(Boolean) ?? DEFAULT_GPU_FLAGS;

const require = createRequire(import.meta.url);
const GPU_JS = join(dirname(require.resolve('gpu.js/package.json')), 'dist', 'gpu-browser.min.js');

const TYPES: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.map': 'application/json' };
const PAGE = `<!doctype html>
<meta charset="utf-8"><title>mixtape gpu in the browser</title><link rel="icon" href="data:,">
<script src="./gpu-browser.min.js"></script>
<script type="module" src="./page.js"></script>
`;

/** page.ts imports ../../src/index.js for its types; in the page it is the bundle next to it. */
const useBundle: Plugin = {
  name: 'use-mixtape-browser-bundle',
  setup(b) { b.onResolve({ filter: /\/src\/index\.js$/ }, () => ({ path: './mixtape.browser.js', external: true })); },
};

// ---- setup: bundle, serve, start Chromium, open the page ------------------------------------

let dir: string | undefined;
let server: Server | undefined;
let browser: Browser | undefined;
/** Console errors, uncaught exceptions and failed loads of the page, in order. */
const pageErrors: string[] = [];
let bundleText = '';
let environment: Record<string, unknown> = {};

async function setUp(): Promise<void> {
  dir = mkdtempSync(join(tmpdir(), 'mixtape-browser-test-'));
  const started = Date.now();
  await Promise.all([
    build({ ...browserBuildOptions, entryPoints: ['src/index.ts'], outfile: join(dir, 'mixtape.browser.js') }),
    build({ ...browserBuildOptions, entryPoints: ['test/browser/page.ts'], outfile: join(dir, 'page.js'), plugins: [useBundle] }),
  ]);
  bundleText = readFileSync(join(dir, 'mixtape.browser.js'), 'utf8');
  writeFileSync(join(dir, 'index.html'), PAGE);
  writeFileSync(join(dir, 'gpu-browser.min.js'), readFileSync(GPU_JS));
  const root = dir;
  server = createServer((req, res) => {
    const name = basename(new URL(req.url ?? '/', 'http://x').pathname) || 'index.html';
    try {
      const body = readFileSync(join(root, name));
      res.writeHead(200, { 'content-type': TYPES[extname(name)] ?? 'application/octet-stream', 'cache-control': 'no-store' });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => { server!.once('error', reject); server!.listen(0, '127.0.0.1', resolve); });
  const address = server.address() as { port: number };
  browser = await Browser.launch({ gpuFlags: GPU_FLAGS, timeoutMs: 120_000 });
  browser.listen((m) => { const e = pageError(m); if (e !== null) pageErrors.push(e); });
  const load = await browser.open(`http://127.0.0.1:${address.port}/index.html`);
  if (load.errors.length > 0) throw new Error(`the test page did not load cleanly:\n  ${load.errors.join('\n  ')}`);
  if (!(await browser.evaluate<boolean>('typeof mixtapeBrowserTest === "object"'))) throw new Error('the page script did not run (mixtapeBrowserTest is missing)');
  environment = await inPage<Record<string, unknown>>('mixtapeBrowserTest.environment()');
  console.log(`# browser test: bundled and loaded in ${Date.now() - started} ms; ${JSON.stringify(environment)}`);
}

/** Evaluates `expression` (a promise) in the page; errors carry the page's console errors since the call. */
async function inPage<T>(expression: string): Promise<T> {
  const from = pageErrors.length;
  try {
    return await browser!.evaluate<T>(expression, { awaitPromise: true });
  } catch (e) {
    throw new Error(`${(e as Error).message}${errorsSince(from)}`);
  }
}

function errorsSince(from: number): string {
  const errors = pageErrors.slice(from);
  return errors.length ? `\npage errors:\n  ${errors.join('\n  ')}` : '';
}

let setupError: string | null = chromiumMissing();
const chromiumAbsent = setupError !== null;
if (setupError === null) {
  try {
    await setUp();
  } catch (e) {
    setupError = `${(e as Error).message}${errorsSince(0)}`;
  }
}

// ---- comparison: float32 GPU vs float64 CPU (the rule of test/gpu/gpu-env.ts) --------------

const EPS32 = 2 ** -24;

/**
 * Per element |gpu − ref| ≤ c·ε32·√K·(|ref| + max|ref|) + atol, K the longest sum behind an
 * element: rounding errors of a K-term float32 sum grow like √K·ε, the max|ref| term covers
 * cancellation near zero, c = 64 leaves room for transcendental functions and summation orders.
 */
function assertNear(gpu: readonly number[], ref: readonly number[], K: number, what: string, c = 64, atol = 0): void {
  assert.equal(gpu.length, ref.length, `${what}: length ${gpu.length} vs ${ref.length}`);
  let scale = 0;
  for (const r of ref) if (Number.isFinite(r)) scale = Math.max(scale, Math.abs(r));
  for (let i = 0; i < ref.length; i++) {
    const g = gpu[i]!, r = ref[i]!;
    if (g === r || (Number.isNaN(g) && Number.isNaN(r))) continue;
    const tol = c * EPS32 * Math.sqrt(Math.max(K, 1)) * (Math.abs(r) + scale) + atol + 1e-30;
    if (!(Math.abs(g - r) <= tol)) assert.fail(`${what}: element ${i}: gpu ${g}, cpu float64 ${r} (|diff| ${Math.abs(g - r)} > tol ${tol}, K ${K})`);
  }
}

function compare(r: CaseResult): void {
  assert.equal(r.leakedHandles, 0, `${r.name}: the gpu backend leaked ${r.leakedHandles} handles`);
  const { cpu, gpu }: { cpu: Evaluation; gpu: Evaluation } = r;
  assert.equal(gpu.outs.length, cpu.outs.length, `${r.name}: number of outputs`);
  cpu.outs.forEach((o, i) => {
    if (o.int) assert.deepEqual(gpu.outs[i]!.values, o.values, `${r.name} output ${i} (int32) differs`);
    else assertNear(gpu.outs[i]!.values, o.values, r.K, `${r.name} output ${i}`);
  });
  assert.deepEqual(Object.keys(gpu.grads).sort(), Object.keys(cpu.grads).sort(), `${r.name}: the same gradients exist`);
  for (const [name, g] of Object.entries(cpu.grads)) assertNear(gpu.grads[name]!, g, r.K, `${r.name} gradient of ${name}`);
}

/** Runs a group of cases in the page and compares each; failures carry the page's errors. */
async function runGroup(mode: Mode, group: 'ops' | 'lstm' | 'moe' | 'parity'): Promise<void> {
  const from = pageErrors.length;
  const started = Date.now();
  const { results, info } = await inPage<{ results: CaseResult[]; info: Record<string, unknown> }>(`mixtapeBrowserTest.run('${mode}', '${group}')`);
  try {
    assert.equal(info.kernelClass, CLASS[mode], `after the ${group} cases the backend runs ${String(info.kernelClass)}`);
    assert.ok(results.length > 0, `no ${group} case ran`);
    for (const r of results) compare(r);
  } catch (e) {
    (e as Error).message += errorsSince(from);
    throw e;
  }
  console.log(`# browser ${mode} ${group}: ${results.length} case(s) in ${Date.now() - started} ms`);
}

// ---- the tests ------------------------------------------------------------------------------

// Every mode is probed before any test is registered: node:test starts running registered
// tests (and the root after() hook once they are done) while this module still awaits.
const probes = new Map<Mode, { info?: Record<string, unknown>; reason?: string }>();
for (const mode of MODES) {
  if (setupError !== null) { probes.set(mode, { reason: setupError }); continue; }
  try {
    const p = await inPage<{ info?: Record<string, unknown>; reason?: string }>(`mixtapeBrowserTest.probe('${mode}')`);
    if (p.info && p.info.kernelClass !== CLASS[mode]) p.reason = `it runs ${String(p.info.kernelClass)}, not ${CLASS[mode]}`;
    probes.set(mode, p);
  } catch (e) {
    probes.set(mode, { reason: (e as Error).message });
  }
}

after(async () => {
  await browser?.close();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('browser bundle (dist/mixtape.browser.js) in Chromium', () => {
  if (chromiumAbsent) {
    test('loads and runs', { skip: setupError! }, () => {});
    return;
  }
  test('loads with gpu.js as a global and no node: module; file IO fails clearly; safetensors bytes round-trip', async () => {
    if (setupError !== null) assert.fail(`the browser test page cannot run: ${setupError}`);
    assert.doesNotMatch(bundleText, /from\s*["']node:|require\(["']node:/, 'the browser bundle imports a node: module');
    assert.doesNotMatch(bundleText, /WebGL2FunctionNode|kernelRunShortcut/, 'gpu.js is not bundled (it comes from the global GPU)');
    const r = await inPage<Record<string, any>>('mixtapeBrowserTest.bundleChecks()');
    assert.deepEqual(r.roundTrip, [1.5, -2, 3]);
    assert.deepEqual(r.metadata, { format: 'pt' });
    assert.match(r.saveError, /file IO needs Node/);
    assert.match(r.loadError, /file IO needs Node/);
    assert.match(r.headlessgl, /headless-gl runs in Node only/);
    assert.match(r.text, /^tensor\(\[1\.5,-2,3\]/);
  });
});

for (const mode of MODES) {
  const name = `gpu backend in Chromium [${mode}]`;
  const { info, reason } = probes.get(mode)!;
  if (reason !== undefined) {
    if (REQUIRED.includes(`browser-${mode}`)) {
      test(`${name}: the mode runs (required by MIXTAPE_GPU_REQUIRED)`, () => { assert.fail(`browser gpu mode ${mode} cannot run: ${reason}`); });
    } else {
      console.log(`# skipping ${name}: ${reason}`);
      test(name, { skip: `browser gpu mode ${mode} cannot run here: ${reason.split('. ')[0]}` }, () => {});
    }
    continue;
  }
  describe(name, { concurrency: false }, () => {
    test(`runs ${CLASS[mode]} in the page (no CPU fallback)`, () => {
      console.log(`# ${name}: mode ${String(info!.mode)}, kernel class ${String(info!.kernelClass)}, device ${JSON.stringify(info!.device)}`);
      assert.equal(info!.name, 'gpu');
      assert.equal(info!.mode, mode);
      assert.equal(info!.kernelClass, CLASS[mode]);
    });
    test('ops forward and backward equal the CPU float64 backend (matmul, broadcasting, softmax, reductions, exp/tanh/sigmoid, gather)', async () => {
      await runGroup(mode, 'ops');
    });
    test('LSTM (2 layers) forward and backward equal the CPU float64 backend', async () => {
      await runGroup(mode, 'lstm');
    });
    test('MoE layer (device dispatch, given noise) forward and backward equal the CPU float64 backend', async () => {
      await runGroup(mode, 'moe');
    });
    test('PyTorch-parity ops and layers (new kernels, compositions, LayerNorm/RMSNorm/GELU/SiLU, SwiGLU experts) equal the CPU float64 backend', async () => {
      await runGroup(mode, 'parity');
    });
  });
}
