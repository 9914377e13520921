// What an expert's product costs by the width of its segment's last panel, and whether the
// weights' cold stream costs more where the product switches experts.
//
// Panels: 256 experts sharing one weight (warm, in L2), every segment c rows, for the forward's
// x[seg]·W_eᵀ (d 256 → 512, run swapped: W_e · x[seg]ᵀ on gemmT's tiles) and the backward's
// dy[seg]·W_e (256 → 512, W_e the second layer's [256, 512] weight, W_eᵀ read in place). Each c
// is given in units of one column of a whole panel (c = 8's time / 8): a panel of c < 8 real
// columns costs what those units say, against c if the tiles wasted nothing. An MoE layer's segments end in such panels (at E = 256
// an expert sees about 8 rows).
//
// Switches: 64 experts of 32 rows, each its own weight (cold, 32 MiB in all), against one
// segment of 32 rows through one weight of 64 × 512 rows (the same 32 MiB read the same way,
// with no switch of expert), and against every expert sharing one weight (warm).
//
// Contenders alternate round by round in one process; medians. Run from a bundle:
//   npx esbuild bench/expert-products.ts --bundle --platform=node --format=esm --packages=external \
//     --outfile=dist/bench/expert-products.mjs && node dist/bench/expert-products.mjs [threads] [rounds]

import * as mt from '../src/index.js';
import { groupedMatmul } from '../src/tensor/ops/fused.js';
import { median } from './stats.js';

const threads = Number(process.argv[2] ?? 1), rounds = Number(process.argv[3] ?? 15);
mt.setBackend('cpu', { threads });
const d = 256, h = 512;
mt.manualSeed(0);

/** Times each case, the cases alternating round by round after 5 untimed rounds; medians in ms. */
function alternate(cases: readonly (readonly [string, () => void])[]): number[] {
  for (let r = 0; r < 5; r++) for (const [, f] of cases) f();
  const times = cases.map(() => [] as number[]);
  for (let r = 0; r < rounds; r++) {
    cases.forEach(([, f], i) => { const t0 = performance.now(); f(); times[i]!.push(performance.now() - t0); });
  }
  return times.map(median);
}

const product = (x: mt.Tensor, ws: readonly mt.Tensor[], sizes: readonly number[], transposeB: boolean) => () =>
  mt.noGrad(() => mt.tidy(() => { groupedMatmul(x, ws, sizes, { transposeB }); }));

console.log(`Expert products, ${threads} thread(s), ${rounds} alternating rounds, medians`);
const E = 256, widths = [1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 16];
// Both read rows of 256 and write rows of 512: x[seg] · W₁ᵀ (W₁ [512, 256]), dy[seg] · W₂ (W₂ [256, 512]).
for (const [name, transposeB] of [['forward x[seg]·W_eᵀ', true], ['backward dy[seg]·W_e', false]] as const) {
  const w = transposeB ? mt.randn([h, d]) : mt.randn([d, h]), ws = new Array<mt.Tensor>(E).fill(w);
  const xs = widths.map((c) => mt.randn([E * c, d]));
  const ms = alternate(widths.map((c, i) => [`c=${c}`, product(xs[i]!, ws, new Array<number>(E).fill(c), transposeB)] as const));
  const unit = ms[widths.indexOf(8)]! / 8;
  console.log(`  ${name}, ${E} segments of c rows, warm: ` + widths.map((c, i) => `c=${c} ${ms[i]!.toFixed(2)} ms (${(ms[i]! / unit).toFixed(2)})`).join(', '));
  mt.dispose([w, ...xs]);
}

const rows = 32, experts = 64;
const x = mt.randn([experts * rows, d]), one = mt.randn([rows, d]), shared = mt.randn([h, d]);
const own = Array.from({ length: experts }, () => mt.randn([h, d]));
// Four long weights, taken in turn, so that each is cold when used (4 × 32 MiB against a 32 MiB L3).
const long = Array.from({ length: 4 }, () => mt.randn([experts * h, d]));
let next = 0;
const [warm, cold, stream] = alternate([
  ['warm', product(x, new Array<mt.Tensor>(experts).fill(shared), new Array<number>(experts).fill(rows), true)],
  ['cold', product(x, own, new Array<number>(experts).fill(rows), true)],
  ['one stream', () => product(one, [long[next++ % long.length]!], [rows], true)()],
]);
console.log(`  ${experts} experts × ${rows} rows, x[seg]·W_eᵀ 256 → 512: warm ${warm!.toFixed(2)} ms, cold ${cold!.toFixed(2)} (+${(cold! - warm!).toFixed(2)}); `
  + `one cold weight of ${experts} × ${h} rows, ${rows} rows, no switch: ${stream!.toFixed(2)} (+${(stream! - warm!).toFixed(2)})`);
mt.dispose([x, one, shared, ...own, ...long]);
