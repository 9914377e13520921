// The built-in synthetic corpus (its exact loss floors) and text corpora.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { SyntheticCorpus } from '../../src/data/synthetic.js';
import { TextCorpus } from '../../src/data/text.js';
import { assertClose } from '../helpers.js';

describe('synthetic multi-domain corpus', () => {
  test('every transition follows its domain table; a step always gives the same batch', () => {
    const c = new SyntheticCorpus({ domains: 4, vocab: 12, successors: 3 });
    const b = c.trainBatch(7, 5, 9);
    for (let r = 0; r < 5; r++) {
      const d = b.domains![r]!;
      for (let t = 0; t < 9; t++) {
        const a = b.x[r * 9 + t]!, next = b.y[r * 9 + t]!;
        assert.ok(c.next[d]![a]!.includes(next), `row ${r} step ${t}: ${a} → ${next} is not in domain ${d}`);
        if (t > 0) assert.equal(a, b.y[r * 9 + t - 1]);
      }
    }
    assert.deepEqual(c.trainBatch(7, 5, 9), b);
    assert.notDeepEqual(c.trainBatch(8, 5, 9).x, b.x);
  });

  test('the floors are exact: known domain = ln s; Bayes = a brute-force posterior; pooled bigram; ln V', () => {
    const c = new SyntheticCorpus({ domains: 3, vocab: 6, successors: 2, validationDocs: 40 });
    const T = 5;
    const floors = c.floorsFor(T);
    assert.equal(floors.knownDomain, Math.log(2));
    assert.equal(floors.uniform, Math.log(6));
    // Bayes: for each validation sequence, P(next | prefix) = Σ_d P(d | prefix) P_d(next | prev),
    // the posterior recomputed from scratch (products of transition probabilities).
    let bayes = 0, pooledDen = 0;
    for (const b of c.validation(64, T)) {
      for (let r = 0; r < b.domains!.length; r++) {
        for (let t = 0; t < T; t++) {
          const like = [0, 1, 2].map((d) => {
            let p = 1;
            for (let u = 0; u < t; u++) p *= c.prob(d, b.x[r * T + u]!, b.y[r * T + u]!);
            return p;
          });
          const z = like.reduce((s, v) => s + v, 0);
          const p = like.reduce((s, w, d) => s + (w / z) * c.prob(d, b.x[r * T + t]!, b.y[r * T + t]!), 0);
          bayes -= Math.log(p);
          pooledDen++;
        }
      }
    }
    assertClose([floors.bayes], [bayes / pooledDen], { rtol: 1e-12 });
    assert.ok(floors.knownDomain < floors.bayes && floors.bayes < floors.pooledBigram && floors.pooledBigram < floors.uniform);
  });

  test('bad settings are clear errors', () => {
    assert.throws(() => new SyntheticCorpus({ successors: 40, vocab: 32 }), /successors \(40\) cannot exceed vocab \(32\)/);
    assert.throws(() => new SyntheticCorpus({ domains: 0 }), /domains must be an integer >= 1, got 0/);
  });
});

describe('text corpus', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mixtape-text-'));
  const path = join(dir, 'tiny.txt');
  writeFileSync(path, 'the cat sat on the mat. the dog sat on the log. '.repeat(20));

  test('character level: sorted vocabulary, 90/10 split, windows that predict the next character', () => {
    const c = new TextCorpus(path);
    assert.equal(c.decode(Array.from({ length: c.vocabSize }, (_, i) => i)), [...new Set('the cat sat on the mat. the dog sat on the log. ')].sort().join(''));
    const b = c.trainBatch(3, 2, 10);
    assert.equal(c.decode(b.x.subarray(1, 10)), c.decode(b.y.subarray(0, 9)));
    const v = c.validation(4, 10);
    assert.ok(v.length > 0 && v[0]!.x.length === 4 * 10);
  });

  test('word level: words and punctuation are tokens', () => {
    const c = new TextCorpus(path, { level: 'word' });
    assert.ok(c.vocab.includes('cat') && c.vocab.includes('.') && c.vocab.includes('<unk>'));
    assert.match(c.decode(c.trainBatch(0, 1, 6).x), /^[a-z.]+( [a-z.]+){5}$/);
  });
});
