// topGatedContexts (Appendix E, Table 9) on a hand-made routing: which contexts each expert
// is most strongly gated on, best first, distinct, within the sequence, in characters or words.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formatContext, topGatedContexts } from '../../src/report/expert-contexts.js';

// Characters: two sequences of 6 ("the ca", "t sat."), k = 2 of 3 experts per position.
const chars = 'the cat sat.';
const vocab = [...new Set(chars)].sort();
const ids = Array.from(chars, (ch) => vocab.indexOf(ch));
const decodeChars = (xs: number[]) => xs.map((i) => vocab[i]).join('');

// Position:   t    h    e   ' '   c    a  | t   ' '   s    a    t    .
// expert 0 takes the vowels strongly, expert 1 the spaces and the '.', expert 2 the rest.
const routing = {
  k: 2,
  indices: [2, 0, 2, 0, 0, 2, 1, 2, 2, 1, 0, 2, 2, 1, 1, 2, 2, 0, 0, 2, 2, 0, 1, 2],
  gates: [0.9, 0.1, 0.8, 0.2, 0.7, 0.3, 0.95, 0.05, 0.6, 0.4, 0.85, 0.15, 0.7, 0.3, 0.9, 0.1, 0.75, 0.25, 0.8, 0.2, 0.6, 0.4, 0.99, 0.01],
};

describe('topGatedContexts', () => {
  test('per expert, the highest gates first, with the characters around them inside the sequence', () => {
    const table = topGatedContexts(routing, ids, 6, 3, decodeChars, { top: 3, before: 2, after: 1 });
    assert.equal(table.length, 3);
    // Expert 0: 'a' of "cat" (0.85), 'a' of "sat" (0.8), 'e' (0.7).
    assert.deepEqual(table[0]!.map(formatContext), [' c[a]', ' s[a]t', 'th[e] ']);
    assert.deepEqual(table[0]!.map((c) => c.gate), [0.85, 0.8, 0.7]);
    // Expert 1: '.' (0.99), ' ' after "the" (0.95), ' ' before "sat" (0.9); the first context of
    // sequence 2 has no left context from sequence 1.
    assert.deepEqual(table[1]!.map(formatContext), ['at[.]', 'he[ ]c', 't[ ]s']);
    // Expert 2: the first 't' has no left context (the start of the text).
    assert.deepEqual(table[2]!.map(formatContext), ['[t]h', 't[h]e', 't [s]a']);
  });

  test('identical contexts are listed once; an expert never chosen gets an empty list', () => {
    const text = 'abab';
    const v = ['a', 'b'];
    const tokens = Array.from(text, (ch) => v.indexOf(ch));
    const r = { k: 1, indices: [0, 0, 0, 0], gates: [0.5, 0.9, 0.5, 0.9] };
    const table = topGatedContexts(r, tokens, 2, 2, (xs) => xs.map((i) => v[i]).join(''), { top: 5, before: 1, after: 0 });
    assert.deepEqual(table[0]!.map(formatContext), ['a[b]', '[a]']);
    assert.deepEqual(table[1], []);
  });

  test('words keep their spaces: the context is decoded as the corpus decodes it', () => {
    const words = ['the', 'cat', 'sat', 'on', 'mat'];
    const tokens = [0, 1, 2, 3, 0, 4];
    const r = { k: 1, indices: [0, 0, 1, 0, 0, 1], gates: [1, 1, 1, 1, 1, 0.5] };
    const table = topGatedContexts(r, tokens, 6, 2, (xs) => xs.map((i) => words[i]).join(' '), { top: 2, before: 2, after: 1 });
    assert.deepEqual(table[1]!.map((c) => [c.before, c.token, c.after]), [['the cat ', 'sat', ' on'], ['on the ', 'mat', '']]);
    assert.equal(formatContext({ gate: 1, before: 'a\n', token: 'b', after: '\tc' }), 'a⏎[b]⇥c');
  });

  test('bad routing is a clear error', () => {
    assert.throws(() => topGatedContexts({ k: 2, indices: [0], gates: [1] }, [0, 1], 2, 2, String), /topGatedContexts: routing has 1 indices and 1 gates, expected 2 positions × k 2 = 4/);
    assert.throws(() => topGatedContexts({ k: 1, indices: [0, 5], gates: [1, 1] }, [0, 1], 2, 2, String), /expert index 5 at position 1 is out of range for 2 experts/);
  });
});
