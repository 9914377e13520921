// Training sanity: a character-level LSTM language model learns a small generated text,
// and a fixed seed gives identical losses.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { mt } from '../helpers.js';

/** A seeded text from a tiny grammar: enough structure for an LSTM to learn quickly. */
function makeText(length: number, seed: number): string {
  const gen = new mt.Generator(seed);
  const u = mt.rand([length], { dtype: 'float64', generator: gen }).dataSync();
  const subjects = ['the cat', 'a dog', 'my bird'], verbs = ['sees', 'likes', 'finds'], objects = ['the ball.', 'a tree.', 'my hat.'];
  let text = '', i = 0;
  while (text.length < length) {
    const pick = (list: string[]) => list[Math.floor(u[i++ % u.length]! * list.length)]!;
    text += `${pick(subjects)} ${pick(verbs)} ${pick(objects)} `;
  }
  return text.slice(0, length);
}

class CharLM extends mt.Module {
  embed: mt.Embedding;
  lstm: mt.LSTM;
  head: mt.Linear;
  constructor(vocab: number, hidden: number) {
    super();
    this.embed = new mt.Embedding(vocab, 16);
    this.lstm = new mt.LSTM({ inputSize: 16, hiddenSize: hidden, batchFirst: true });
    this.head = new mt.Linear(hidden, vocab);
  }
  forward(ids: mt.Tensor): mt.Tensor {
    return this.head.forward(this.lstm.forward(this.embed.forward(ids)).output);
  }
}

function train(steps: number, seed: number): number[] {
  mt.manualSeed(seed);
  const text = makeText(4000, 7);
  const chars = [...new Set(text)].sort();
  const ids = Int32Array.from(text, (ch) => chars.indexOf(ch));
  const model = new CharLM(chars.length, 48);
  const opt = new mt.Adam(model.parameters(), { lr: 0.01 });
  const batch = 16, seq = 24;
  const gen = new mt.Generator(seed + 1);
  const losses: number[] = [];
  for (let step = 0; step < steps; step++) {
    const starts = mt.rand([batch], { dtype: 'float64', generator: gen }).dataSync();
    const x = new Int32Array(batch * seq), y = new Int32Array(batch * seq);
    starts.forEach((u, b) => {
      const s = Math.floor(u * (ids.length - seq - 1));
      x.set(ids.subarray(s, s + seq), b * seq);
      y.set(ids.subarray(s + 1, s + seq + 1), b * seq);
    });
    opt.zeroGrad();
    const loss = mt.tidy(() => {
      const logits = model.forward(mt.tensor(x, [batch, seq]));
      const l = mt.crossEntropy(logits, mt.tensor(y, [batch, seq]));
      l.backward();
      return l.item();
    });
    mt.clipGradNorm(model.parameters(), 1);
    opt.step();
    losses.push(loss);
  }
  return losses;
}

describe('training sanity', () => {
  test('a char-level LSTM LM learns the generated text: mean loss of the last 20 steps < 0.9 nats (from ~2.9)', () => {
    const losses = train(250, 1);
    const tail = losses.slice(-20).reduce((a, b) => a + b, 0) / 20;
    console.log(`# char LM: first loss ${losses[0]!.toFixed(3)}, mean of last 20 ${tail.toFixed(3)} nats`);
    assert.ok(losses[0]! > 2.5, `initial loss ${losses[0]} should be near log(vocab)`);
    assert.ok(tail < 0.9, `final loss ${tail} should be below 0.9 nats`);
  });

  test('the same seed gives identical losses; another seed does not', () => {
    const a = train(8, 5), b = train(8, 5), c = train(8, 6);
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
  });
});
