// The HTML report: loading run directories (errors name the file, an interrupted run's
// last line is skipped), the rendered content (charts, table numbers, escaping,
// self-containedness), and a real render in headless Chromium with no console error.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { domainExpertInformation, type LoadedRun, loadReportInput, loadRun, renderReport } from '../../src/report/render.js';
import type { TrainRecord } from '../../src/report/schema.js';
import { esc, fmt, logTicks, niceTicks } from '../../src/report/svg.js';
import { Browser, chromiumMissing } from './chromium.js';
import { config, FLOORS, writeCompare, writeRouterCompare, writeRun } from './synthetic-runs.js';

let root: string;
let compareDir: string;
let runs: LoadedRun[];
let html: string;

before(() => {
  root = mkdtempSync(join(tmpdir(), 'mixtape-report-test-'));
  compareDir = writeCompare(join(root, 'compare'));
  runs = loadReportInput(compareDir);
  html = renderReport(runs, { note: 'synthetic <test> compare' });
});
after(() => rmSync(root, { recursive: true, force: true }));

const count = (text: string, needle: string | RegExp): number =>
  typeof needle === 'string' ? text.split(needle).length - 1 : (text.match(needle) ?? []).length;

/** The summary table's rows, each as its cells' text (tags stripped). */
function tableRows(page: string): string[][] {
  const tbody = /<tbody>(.*?)<\/tbody>/s.exec(page)![1]!;
  return [...tbody.matchAll(/<tr>(.*?)<\/tr>/gs)].map((m) => [...m[1]!.matchAll(/<td[^>]*>(.*?)<\/td>/gs)].map((c) => c[1]!.replace(/<[^>]+>/g, '').trim()));
}

/** Text no well-formed report contains: a failed computation or a missing value printed raw. */
function assertNoGarbage(page: string): void {
  for (const bad of ['NaN', 'undefined', 'Infinity', '[object']) assert.ok(!page.includes(bad), `report contains "${bad}"`);
}

describe('report: loading run directories', () => {
  test('a compare directory gives its runs in manifest order; a truncated last line is skipped', () => {
    assert.deepEqual(runs.map((r) => r.config.label), ['dense baseline', 'MoE-8 <k=2> & "balanced"', 'MoE-8 no balancing']);
    const moe = runs[1]!;
    assert.equal(moe.train.length, 400);
    assert.equal(moe.train.at(-1)!.step, 400, 'the half-written step 401 is dropped');
    assert.equal(moe.val.length, 8);
    assert.equal(runs[0]!.train[0]!.cvLoad, null);
    // A single run directory works too.
    assert.deepEqual(loadReportInput(join(compareDir, 'moe')).map((r) => r.train.length), [400]);
  });

  test('missing or invalid files are errors naming the file (and the line)', () => {
    const dir = join(root, 'bad');
    mkdirSync(dir, { recursive: true });
    assert.throws(() => loadReportInput(dir), /bad: not a run directory/);
    assert.throws(() => loadRun(dir), (e: Error) => e.message.includes(join(dir, 'config.json')) && /not found/.test(e.message));
    writeFileSync(join(dir, 'config.json'), '{"model": "moe",');
    assert.throws(() => loadRun(dir), (e: Error) => e.message.startsWith(join(dir, 'config.json')) && /invalid JSON/.test(e.message));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config({}), label: 7 }));
    assert.throws(() => loadRun(dir), /config\.json: field "label" must be a string/);
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config({})));
    assert.throws(() => loadRun(dir), (e: Error) => e.message.includes(join(dir, 'metrics.jsonl')) && /not found/.test(e.message));
    const rec = JSON.stringify({ type: 'train', step: 1, loss: 2 });
    writeFileSync(join(dir, 'metrics.jsonl'), `${rec}\n${rec}\n{"type":"tr\n${rec}\n`);
    assert.throws(() => loadRun(dir), /metrics\.jsonl:3: invalid JSON/, 'only the final line may be cut short');
    writeFileSync(join(dir, 'metrics.jsonl'), `${rec}\n{"type":"val","step":1}\n`);
    assert.throws(() => loadRun(dir), /metrics\.jsonl:2: .*"loss"/);
    writeFileSync(join(dir, 'compare.json'), JSON.stringify({ runs: 'moe' }));
    assert.throws(() => loadReportInput(dir), /compare\.json: "runs" must be/);
    writeFileSync(join(dir, 'compare.json'), JSON.stringify({ runs: ['nowhere'] }));
    assert.throws(() => loadReportInput(dir), /nowhere[/\\]config\.json: file not found/);
  });

  test('a resumed run that logs a step again keeps the later record, in step order', () => {
    const dir = join(root, 'resumed');
    writeRun(dir, config({ steps: 20, evalEvery: 10 }), { finalLoss: 2, routing: 'balanced' });
    const again = { ...JSON.parse(readFileSync(join(dir, 'metrics.jsonl'), 'utf8').split('\n')[14]!), loss: 9.5 };
    writeFileSync(join(dir, 'metrics.jsonl'), readFileSync(join(dir, 'metrics.jsonl'), 'utf8') + JSON.stringify(again) + '\n');
    const run = loadRun(dir);
    assert.equal(run.train.length, 20);
    assert.deepEqual(run.train.map((r) => r.step), Array.from({ length: 20 }, (_, i) => i + 1));
    assert.equal(run.train.find((r) => r.step === again.step)!.loss, 9.5);
  });
});

describe('report: rendered HTML', () => {
  test('has every chart, one <svg class="chart"> each, with titles, captions and floors', () => {
    assert.ok(html.startsWith('<!doctype html>'));
    for (const title of ['mixtape compare: 3 runs', 'Summary', 'Loss vs step', 'Balance: CV(importance) and CV(load)',
      'Expert importance and load over time', 'domain × expert routing', 'Gate entropy']) {
      assert.ok(html.includes(`>${esc(title)}`) || html.includes(esc(title)), `missing title ${title}`);
    }
    // loss + CV + (importance, load) × 2 MoE runs + 1 domain × expert + entropy.
    assert.equal(count(html, '<svg class="chart"'), 8);
    assert.equal(count(html, '<figcaption>'), 6);
    for (const label of [`known domain ${FLOORS.knownDomain}`, `Bayes ${FLOORS.bayes}`, `pooled bigram ${FLOORS.pooledBigram}`]) {
      assert.ok(html.includes(`>${label}</text>`), `floor line "${label}"`);
    }
    assert.match(html, /Experts are reordered by the domain/);
    // Domain d of the synthetic data prefers experts 2d and 2d+1.
    const expertAxis = (page: string): string[] => {
      const svg = /<svg class="chart"[^>]*aria-label="[^"]*domain × expert routing".*?<\/svg><figcaption>/s.exec(page)![0];
      return [...svg.matchAll(/text-anchor="middle">(e\d+)<\/text>/g)].map((m) => m[1]!);
    };
    assert.deepEqual(expertAxis(html).map((e) => Math.floor(Number(e.slice(1)) / 2)), [0, 0, 1, 1, 2, 2, 3, 3], 'experts grouped by dominant domain');
    const unordered = renderReport(runs, { reorderExperts: false });
    assert.deepEqual(expertAxis(unordered), ['e0', 'e1', 'e2', 'e3', 'e4', 'e5', 'e6', 'e7']);
    assert.ok(!unordered.includes('reordered'), 'the caption says whether experts were reordered');
    assertNoGarbage(html);
    assert.equal(renderReport(runs, { note: 'synthetic <test> compare' }), html, 'deterministic');
  });

  test('the summary table has the right numbers and highlights the best validation loss', () => {
    const rows = tableRows(html);
    assert.equal(rows.length, 3);
    const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
    runs.forEach((run, i) => {
      const row = rows[i]!;
      assert.equal(row[0], esc(run.config.label));
      assert.equal(row[6], mean(run.train.slice(-40).map((r) => r.loss)).toFixed(3), 'final train loss: mean of the last 10 %');
      const best = run.val.reduce((a, b) => (b.loss < a.loss ? b : a));
      assert.equal(row[7], `${best.loss.toFixed(3)} @${best.step}`);
      assert.equal(row[8], best.perplexity.toFixed(2));
      assert.equal(row[9], run.val.at(-1)!.loss.toFixed(3));
      assert.equal(row[10], run.val.at(-1)!.perplexity.toFixed(2));
    });
    const [dense, moe, nobal] = rows as [string[], string[], string[]];
    assert.deepEqual(dense.slice(1, 6), ['dense', '—', '—', '98k', '41.5k']);
    assert.deepEqual(moe.slice(1, 6), ['moe', '8', '2', '123k', '41.5k']);
    assert.equal(moe[11], `+${(runs[1]!.val.at(-1)!.loss - FLOORS.bayes).toFixed(3)}`, 'gap to the Bayes floor');
    assert.equal(nobal[11], '—', 'no floors, no gap');
    assert.equal(dense[12], '—', 'dense: no CV(load)');
    assert.equal(Number(nobal[12]) > Number(moe[12]), true, 'the unbalanced run has the larger CV(load)');
    assert.equal(count(html, 'class="best"'), 1);
    assert.match(html, /<td class="best"[^>]*>1\.\d{3} <small>@\d+<\/small><\/td>/);
    assert.ok(html.includes(`class="best" title="best validation loss">${runs[1]!.val.reduce((a, b) => (b.loss < a.loss ? b : a)).loss.toFixed(3)}`));
  });

  test('text is escaped: labels and notes with < & " never appear raw', () => {
    assert.ok(!html.includes('<k=2>'));
    assert.ok(!html.includes('<test>'));
    assert.ok(html.includes('MoE-8 &lt;k=2&gt; &amp; &quot;balanced&quot;'));
    assert.ok(html.includes('synthetic &lt;test&gt; compare'));
    assert.equal(esc(`<a href='x'>&"</a>`), '&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;');
  });

  test('the file is self-contained: no URL, script, stylesheet link, image or font', () => {
    assert.ok(!/https?:/i.test(html), 'no http:// or https://');
    assert.ok(!/\/\/[a-z0-9.-]+\.[a-z]{2,}/i.test(html), 'no protocol-relative URL');
    for (const tag of ['<script', '<link', '<img', '<iframe', '<object', '<embed', '@import', '@font-face', 'url(', ' src=', ' href=']) {
      assert.ok(!html.toLowerCase().includes(tag), `contains ${tag}`);
    }
    assert.equal(count(html, '<style>'), 1);
  });

  test('a single dense run with no validation records renders without routing charts', () => {
    const dir = writeRun(join(root, 'dense-only'), config({ model: 'dense', label: 'dense', experts: 0, k: 0, floors: undefined, domains: undefined }),
      { finalLoss: 2, routing: null, noVal: true });
    const page = renderReport(loadReportInput(dir));
    assert.ok(page.includes('<title>mixtape report: dense</title>'));
    assert.equal(count(page, '<svg class="chart"'), 1, 'the loss chart only');
    assert.equal(count(page, 'No mixture-of-experts run here'), 3);
    const [row] = tableRows(page) as [string[]];
    assert.deepEqual(row.slice(7, 13), ['—', '—', '—', '—', '—', '—']);
    assert.equal(count(page, 'class="best"'), 0);
    assertNoGarbage(page);
  });

  test('12 runs get 10 distinct colours, then dashes; perfectly balanced runs (CV = 0) still plot', () => {
    const many = Array.from({ length: 12 }, (_, i) => {
      const dir = writeRun(join(root, 'many', `r${i}`), config({ label: `run ${i}`, steps: 60, evalEvery: 20 }),
        { finalLoss: 1.6 + i * 0.03, routing: i % 2 ? 'balanced' : 'collapsed', domainExpert: i === 0, seed: i });
      return loadRun(dir);
    });
    // A strictly balanced gate: CV(load) exactly 0 on every step.
    many[3]!.train = many[3]!.train.map((r): TrainRecord => ({ ...r, cvLoad: 0, load: r.load!.map(() => 1) }));
    const page = renderReport(many);
    for (let c = 0; c < 10; c++) assert.ok(page.includes(`--sw:var(--c${c})`), `legend colour ${c}`);
    assert.equal(count(page, '<i class="sw dash"'), 2 * 3, 'runs 10 and 11, and only they, dashed in the 3 run legends');
    assert.equal(count(page, '<svg class="chart"'), 1 + 1 + 2 * 12 + 1 + 1);
    assert.equal(tableRows(page).length, 12);
    assertNoGarbage(page);
  });

  test('svg helpers: ticks and number formats', () => {
    assert.deepEqual(niceTicks(0, 400, 5), [0, 100, 200, 300, 400]);
    assert.deepEqual(niceTicks(1.43, 4.3, 5), [2, 3, 4]);
    assert.deepEqual(logTicks(0.01, 3), [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2]);
    assert.deepEqual(logTicks(1.5, 4.2), [1.5, 2, 2.5, 3, 3.5, 4]);
    assert.deepEqual([fmt(123_456), fmt(41_472), fmt(1234), fmt(0.5), fmt(1.5713, 4), fmt(0)], ['123k', '41.5k', '1234', '0.5', '1.571', '0']);
  });
});

describe('report: router comparison (compare --gatings)', () => {
  /** The rows of the router table, each as its cells' text (tags stripped). */
  const routerRows = (page: string): string[][] => {
    const tbody = /<table class="routers">.*?<tbody>(.*?)<\/tbody>/s.exec(page)![1]!;
    return [...tbody.matchAll(/<tr>(.*?)<\/tr>/gs)].map((m) => [...m[1]!.matchAll(/<td[^>]*>(.*?)<\/td>/gs)].map((c) => c[1]!.replace(/<[^>]+>/g, '').trim()));
  };

  test('I(domain; expert): 0 when routing ignores the domain, log₂ D when each domain has its own expert', () => {
    assert.equal(domainExpertInformation([[5, 5], [5, 5]]), 0);
    assert.ok(Math.abs(domainExpertInformation([[7, 0, 0, 0], [0, 3, 0, 0], [0, 0, 9, 0], [0, 0, 0, 1]])! - (() => {
      const p = [7, 3, 9, 1].map((n) => n / 20);
      return -p.reduce((a, q) => a + q * Math.log2(q), 0); // = H(domain) when the expert determines the domain
    })()) < 1e-12);
    assert.ok(Math.abs(domainExpertInformation([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])! - 2) < 1e-12);
    assert.equal(domainExpertInformation([[0, 0]]), null);
  });

  test('one row per router: matched compute, loss against the floors and dense, CV(load), peak load, dropped fraction, router z, specialisation', () => {
    const dir = writeRouterCompare(join(root, 'routers'));
    const rruns = loadReportInput(dir);
    const page = renderReport(rruns);
    assert.ok(page.includes('<h2>Router comparison</h2>'));
    const rows = routerRows(page);
    assert.deepEqual(rows.map((r) => r[0]), ['noisy-topk', 'switch', 'expert-choice', 'hash', 'deepseek'], 'every MoE run, not the dense one');
    assert.deepEqual(rows.map((r) => r[2]), ['2 × 128', '1 × 256', '2 × 128', '1 × 256', '3 × 86'], 'experts per token × hidden');
    assert.equal(rows[1]![1], 'switch cf 1.25');
    assert.equal(rows[4]![1], 'deepseek +1 shared');
    const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
    const dense = rruns.find((r) => r.config.model === 'dense')!.val.at(-1)!.loss;
    rows.forEach((row, i) => {
      const run = rruns[i]!, last = run.val.at(-1)!.loss;
      const signed = (v: number) => (v >= 0 ? '+' : '') + v.toFixed(3);
      assert.equal(row[4], last.toFixed(4));
      assert.deepEqual(row.slice(5, 9), [signed(last - FLOORS.bayes), signed(last - FLOORS.knownDomain), signed(last - FLOORS.pooledBigram), signed(last - dense)]);
      assert.equal(row[9], mean(run.train.slice(-40).map((r) => r.cvLoad!)).toFixed(3));
      const peak = mean(run.train.slice(-40).map((r) => (Math.max(...r.expertCounts!) / r.expertCounts!.reduce((a, b) => a + b, 0)) * r.expertCounts!.length));
      assert.equal(row[11], peak.toFixed(2));
      const de = run.val.at(-1)!.domainExpert!;
      assert.equal(row[15], `${domainExpertInformation(de)!.toFixed(3)} bits`);
    });
    // Only Switch dropped routes; noisy-topk recorded no dropping at all.
    assert.equal(rows[0]![12], '—');
    assert.equal(rows[1]![12], `${fmt(mean(rruns[1]!.train.map((r) => r.droppedFraction!)) * 100, 3)} %`);
    assert.equal(rows[2]![12], '0 %');
    assert.equal(rows[3]![14], '—', 'hash: no router logits, no z-loss');
    assert.equal(rows[1]![14], mean(rruns[1]!.train.slice(-40).map((r) => r.routerZLoss!)).toPrecision(3));
    // The collapsed (hash) run has the highest peak load and the balanced ones are near 1.
    assert.ok(Number(rows[3]![11]) > 2 && rows.filter((_, i) => i !== 3).every((r) => Number(r[11]) < 2), rows.map((r) => r[11]).join(' '));
    assert.match(page, /Expert Choice in a language model: each expert chooses among the tokens of the same time step/);
    assert.ok(page.includes('Expert utilisation over time: peak/mean load per router'));
    assert.ok(page.includes('Dropped fraction over time'));
    assertNoGarbage(page);
    assert.equal(renderReport(rruns), page, 'deterministic');
  });

  test('no router section when all MoE runs use one gating kind', () => {
    assert.ok(!html.includes('Router comparison'));
  });
});

describe('report: in headless Chromium', () => {
  test('report.html renders with no console error, no request, and a non-trivial screenshot', async (t) => {
    const missing = chromiumMissing();
    if (missing) {
      t.skip(`chromium not installed: ${missing}`);
      return;
    }
    const dir = join(root, 'browser');
    mkdirSync(dir, { recursive: true });
    const reportPath = join(compareDir, 'report.html');
    writeFileSync(reportPath, html);
    // A page with known faults, to prove the detector sees them.
    const faulty = join(dir, 'faulty.html');
    writeFileSync(faulty, '<!doctype html><p>x</p><img src="missing.png"><script>console.error("INJECTED"); null.boom;</script>');

    const browser = await Browser.launch();
    try {
      const bad = await browser.open(faulty);
      assert.ok(bad.errors.some((e) => e === 'console.error: INJECTED'), `injected console.error seen: ${bad.errors.join('; ')}`);
      assert.ok(bad.errors.some((e) => e.startsWith('exception: TypeError')), 'uncaught exception seen');
      assert.ok(bad.errors.some((e) => e.includes('Failed to load resource') && e.includes('missing.png')), 'failed load seen');
      assert.equal(bad.requests.length, 1);

      const good = await browser.open(reportPath);
      assert.deepEqual(good.errors, [], 'no console error');
      assert.deepEqual(good.requests, [], 'the report loads nothing');
      const layout = await browser.evaluate<{ charts: number[][]; scrollWidth: number; title: string }>(`({
        charts: [...document.querySelectorAll('svg.chart')].map((s) => { const r = s.getBoundingClientRect(); return [r.width, r.height]; }),
        scrollWidth: document.documentElement.scrollWidth, title: document.title })`);
      assert.equal(layout.title, 'mixtape compare: 3 runs');
      assert.equal(layout.charts.length, 8);
      for (const [w, h] of layout.charts) assert.ok(w! > 300 && h! > 100, `chart rendered at ${w}×${h}`);
      assert.ok(layout.scrollWidth <= 1280, `no horizontal overflow (${layout.scrollWidth} px)`);

      for (const scheme of ['light', 'dark'] as const) {
        const png = await browser.screenshot(join(dir, `report-${scheme}.png`), scheme);
        assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47], 'PNG signature');
        assert.ok(png.length > 100_000, `${scheme} screenshot is ${png.length} bytes`);
        assert.ok(png.readUInt32BE(20) > 2000, 'full page height');
      }
    } finally {
      await browser.close();
    }
  });
});
