// Single-thread memory bandwidth as plain JS loops see it: the rate at which an MoE step can
// stream expert weights that do not fit in cache (E = 256 experts of d = 256, hidden 512 hold
// 268 MB of float32 weights). Run: `npx tsx bench/memory-bandwidth.ts` (no CommonJS import,
// so tsx's ArrayBuffer-detaching path is not taken; see BENCHMARKS.md).

const n = 64 * 1024 * 1024; // 256 MiB of float32, far beyond the last-level cache
const a = new Float32Array(n).fill(1), b = new Float32Array(n);
const gb = (bytes: number, ms: number) => (bytes / ms / 1e6).toFixed(1);
const rows: string[] = [];
for (let round = 0; round < 4; round++) {
  let t = performance.now();
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0; // four independent sums, so the adds do not bound the loop
  for (let i = 0; i < n; i += 4) { s0 += a[i]!; s1 += a[i + 1]!; s2 += a[i + 2]!; s3 += a[i + 3]!; }
  const read = performance.now() - t;
  t = performance.now();
  for (let i = 0; i < n; i++) b[i] = s0 + i;
  const write = performance.now() - t;
  t = performance.now();
  b.set(a);
  const copy = performance.now() - t;
  if (round > 0 && s1 + s2 + s3 > 0) rows.push(`read ${gb(4 * n, read)} GB/s, write ${gb(4 * n, write)} GB/s, copy (TypedArray.set) ${gb(8 * n, copy)} GB/s moved`);
}
console.log(`256 MiB float32, single thread, rounds 2-4:\n${rows.join('\n')}`);
