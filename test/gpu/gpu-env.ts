// Which gpu.js modes the GPU tests run in, and the CPU-vs-GPU comparison they share.
//
// MIXTAPE_GPU_MODES (default "headlessgl,webgpu"): the modes to try. A mode that cannot
// start is skipped with its reason printed, unless it is listed in MIXTAPE_GPU_REQUIRED
// (.ci/run sets "headlessgl,webgpu"): then the suite fails. Every suite also checks that
// the kernel class that really ran is the mode's own (no silent CPU fallback passes).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { mt } from '../helpers.js';
import { probeGpu } from './probe.js';

export type Mode = 'headlessgl' | 'webgpu';
const CLASS: Record<Mode, string> = { headlessgl: 'HeadlessGLKernel', webgpu: 'WebGPUKernel' };

const list = (v: string | undefined, fallback: string) => (v ?? fallback).split(',').map((s) => s.trim()).filter(Boolean);
export const MODES = list(process.env.MIXTAPE_GPU_MODES, 'headlessgl,webgpu') as Mode[];
export const REQUIRED = list(process.env.MIXTAPE_GPU_REQUIRED, '') as Mode[];

/** Starts `mode` once and runs one kernel; the reason it cannot run, or null. */
async function probe(mode: Mode): Promise<string | null> {
  try {
    const { info, reason } = await probeGpu(mt, mode);
    if (reason !== undefined) return reason;
    return info!.kernelClass === CLASS[mode] ? null : `it runs ${String(info!.kernelClass)}, not ${CLASS[mode]}`;
  } finally {
    mt.shutdownGpu(); // a live Dawn device keeps Node running; suites start their own
  }
}

const reasons = new Map<Mode, string | null>();
for (const mode of MODES) reasons.set(mode, await probe(mode));

/**
 * describe() once per mode: the body's tests run with that GPU backend active. Skipped
 * (with the reason printed) when the mode cannot start, or failed when it is required.
 */
export function gpuSuite(title: string, body: (mode: Mode) => void): void {
  for (const mode of MODES) {
    const reason = reasons.get(mode) ?? null;
    const name = `${title} [gpu ${mode}]`;
    if (reason !== null) {
      if (REQUIRED.includes(mode)) {
        test(`${name}: the mode runs (required by MIXTAPE_GPU_REQUIRED)`, () => { assert.fail(`gpu mode ${mode} cannot run: ${reason}`); });
      } else {
        console.log(`# skipping ${name}: ${reason}`);
        test(name, { skip: `gpu mode ${mode} cannot run here: ${reason.split('. ')[0]}` }, () => {});
      }
      continue;
    }
    describe(name, { concurrency: false }, () => {
      before(async () => {
        mt.setBackend('gpu', { mode });
        await mt.ready();
        await mt.tensor([1]).neg().data(); // a first kernel: the device then describes itself
        const info = mt.backendInfo();
        console.log(`# ${name}: mode ${info.mode}, kernel class ${info.kernelClass}, device ${JSON.stringify(info.device)}`);
      });
      after(() => {
        mt.setBackend('gpu', { mode });
        assert.equal(mt.backendInfo().kernelClass, CLASS[mode]);
        mt.shutdownGpu();
      });
      body(mode);
    });
  }
}

// ---- CPU float64 vs GPU float32 -------------------------------------------------------------

export interface Input { values: readonly number[]; shape: readonly number[]; int?: boolean; grad?: boolean }

/** A deterministic upstream gradient for backward: small, signed, varied. */
function upstream(n: number): number[] {
  return Array.from({ length: n }, (_, i) => (((i * 7 + 3) % 11) - 5) / 4);
}

const EPS32 = 2 ** -24;

/**
 * Tolerance of a float32 GPU result against the float64 CPU result: per element
 * |gpu − ref| ≤ c·ε32·√K·(|ref| + max|ref|), K the longest sum behind an element (the
 * notes' rule: rounding errors of a K-term float32 sum grow like √K·ε; the max|ref| term
 * covers cancellation near zero). c = 64 leaves room for transcendental functions and
 * for summation orders of real GPUs.
 */
export function assertNear(gpu: ArrayLike<number>, ref: ArrayLike<number>, K: number, what: string, c = 64, atol = 0): void {
  assert.equal(gpu.length, ref.length, `${what}: length ${gpu.length} vs ${ref.length}`);
  let scale = 0;
  for (let i = 0; i < ref.length; i++) if (Number.isFinite(ref[i]!)) scale = Math.max(scale, Math.abs(ref[i]!));
  for (let i = 0; i < ref.length; i++) {
    const g = gpu[i]!, r = ref[i]!;
    if (g === r || (Number.isNaN(g) && Number.isNaN(r))) continue;
    const tol = c * EPS32 * Math.sqrt(Math.max(K, 1)) * (Math.abs(r) + scale) + atol + 1e-30;
    if (!(Math.abs(g - r) <= tol)) {
      assert.fail(`${what}: element ${i}: gpu ${g}, cpu float64 ${r} (|diff| ${Math.abs(g - r)} > tol ${tol}, K ${K})`);
    }
  }
}

/**
 * An absolute tolerance for a gradient that is a difference of terms as large as the
 * upstream gradient, such as softmax's y ⊙ (dy − Σ y·dy) and logSoftmax's dy − softmax·Σ dy:
 * the float32 rounding error of the K-term sum is relative to |dy| (at most 5/4 here), not to
 * the result, which cancels to ~0 on a nearly one-hot row (e.g. 5.6e-7 with an error of 8e-9).
 */
export function cancellationAtol(K: number, c = 64): number {
  return c * EPS32 * Math.sqrt(Math.max(K, 1)) * MAX_UPSTREAM;
}
const MAX_UPSTREAM = 5 / 4;

/**
 * An absolute tolerance for logsumexp's forward, m + log Σ e^(x − m): its float32 rounding
 * error is relative to the inputs (m, and log Σ, up to log K above it), not to the result,
 * which cancels near zero (logsumexp of [−0.75, −0.625] is 0.0076, and the float32 steps
 * round at the scale of 0.625: 9.9e-8 off, 1.7 ulps of it).
 */
export function inputScaleAtol(K: number, maxAbsInput: number, c = 64): number {
  return c * EPS32 * Math.sqrt(Math.max(K, 1)) * (maxAbsInput + Math.log(Math.max(K, 1)));
}

export interface Result { y: number[]; grads: (number[] | null)[] }

/** Runs build on the active backend; float inputs in `dtype`, backward with the fixed upstream. */
async function evaluate(build: (...xs: mt.Tensor[]) => mt.Tensor, inputs: readonly Input[], dtype: 'float32' | 'float64'): Promise<Result> {
  const made = mt.tidy(() => {
    const xs = inputs.map((i) => mt.tensor(i.values.map(Math.fround), i.shape, { dtype: i.int ? 'int32' : dtype, requiresGrad: !!i.grad }));
    const y = build(...xs);
    if (inputs.some((i) => i.grad) && y.requiresGrad) y.backward(mt.tensor(upstream(y.size), y.shape, { dtype: y.dtype }));
    return { xs, y };
  });
  const y = Array.from(await made.y.data());
  const grads: (number[] | null)[] = [];
  for (const x of made.xs) grads.push(x.grad ? Array.from(await x.grad.data()) : null);
  mt.dispose(made);
  return { y, grads };
}

/**
 * The op's forward value and input gradients on the GPU (float32) against the CPU
 * (float64) on the same float32-representable inputs. Integer outputs must be equal.
 */
export async function parity(mode: Mode, what: string, build: (...xs: mt.Tensor[]) => mt.Tensor, inputs: readonly Input[], K = 1, c = 64, atol = 0, gradAtol = atol): Promise<void> {
  mt.setBackend('cpu');
  const ref = await evaluate(build, inputs, 'float64');
  mt.setBackend('gpu', { mode });
  const live = mt.memory().liveHandles;
  const got = await evaluate(build, inputs, 'float32');
  assert.equal(mt.memory().liveHandles, live, `${what}: the gpu backend leaked handles`);
  assertNear(got.y, ref.y, K, `${what} forward`, c, atol);
  ref.grads.forEach((g, i) => {
    if (g === null) return;
    assert.ok(got.grads[i], `${what}: input ${i} has a gradient on the CPU but not on the GPU`);
    assertNear(got.grads[i]!, g, K, `${what} gradient of input ${i}`, c, gradAtol);
  });
}

// ---- a layer on the CPU (float64) vs the GPU (float32) --------------------------------------

/** arch() makes the module; setup() (once, on the CPU) may set its weights and makes the inputs. */
export interface Build { arch: () => mt.Module; setup: (m: mt.Module) => mt.Tensor[]; run: (m: mt.Module, xs: mt.Tensor[]) => mt.Tensor[] }

/** Host copies of every named parameter (to rebuild the same module on another backend). */
function weightsOf(m: mt.Module): Map<string, { values: number[]; shape: readonly number[] }> {
  return new Map(m.namedParameters().map(([name, p]) => [name, { values: Array.from(p.dataSync()), shape: p.shape }]));
}

/**
 * Builds the module on the CPU in float32 (its weights), evaluates outputs and gradients
 * on the CPU in float64 and on the GPU in float32 from those weights and inputs, and
 * compares: the outputs (each reduced to a loss-weighted sum for backward), the gradients of
 * every input and parameter.
 */
export async function compareLayer(mode: Mode, what: string, build: Build, K: number): Promise<void> {
  mt.setBackend('cpu');
  const proto = build.arch();
  const protoInputs = build.setup(proto);
  const weights = weightsOf(proto);
  const inputValues = protoInputs.map((t) => ({ values: Array.from(t.dataSync()), shape: t.shape, dtype: t.dtype, grad: t.requiresGrad }));
  mt.dispose([protoInputs, proto.parameters()]);

  const evaluate = async (dtype: 'float32' | 'float64') => {
    const module = build.arch(), run = build.run;
    const made = mt.tidy(() => {
      if (dtype === 'float64') module.to('float64');
      for (const [name, p] of module.namedParameters()) {
        const w = weights.get(name)!;
        p.assign(mt.tensor(w.values, w.shape, { dtype }));
      }
      const xs = inputValues.map((i) => mt.tensor(i.values, i.shape, { dtype: i.dtype === 'int32' ? 'int32' : dtype, requiresGrad: i.grad }));
      const outs = run(module, xs);
      // Σ_j Σ_i w_i·out_j[i] with fixed weights: every output element gets a distinct cotangent.
      const loss = outs.map((o) => o.mul(mt.tensor(Array.from({ length: o.size }, (_, i) => ((i % 5) - 2) / 3), o.shape, { dtype })).sum())
        .reduce((a, b) => a.add(b));
      loss.backward();
      return { outs, xs };
    });
    const outs: number[][] = [], grads = new Map<string, number[]>();
    for (const o of made.outs) outs.push(Array.from(await o.data()));
    for (const [i, x] of made.xs.entries()) if (x.grad) grads.set(`input ${i}`, Array.from(await x.grad.data()));
    for (const [name, p] of module.namedParameters()) if (p.grad) grads.set(name, Array.from(await p.grad.data()));
    mt.dispose([made, module.parameters()]);
    return { outs, grads };
  };

  const ref = await evaluate('float64');
  mt.setBackend('gpu', { mode });
  const live = mt.memory().liveHandles;
  const got = await evaluate('float32');
  assert.equal(mt.memory().liveHandles, live, `${what}: leaked handles on the gpu`);
  ref.outs.forEach((o, i) => assertNear(got.outs[i]!, o, K, `${what} output ${i}`));
  assert.deepEqual([...got.grads.keys()].sort(), [...ref.grads.keys()].sort(), `${what}: the same gradients exist`);
  for (const [name, g] of ref.grads) assertNear(got.grads.get(name)!, g, K, `${what} gradient of ${name}`);
}
