// A corpus from any UTF-8 text file: characters (default) or words as tokens, the last
// 10% held out for validation. Missing, empty or binary files are clear errors.

import { readFileSync, statSync } from 'node:fs';
import { uniforms } from './synthetic.js';
import type { Batch, Corpus } from './corpus.js';

export interface TextOptions {
  /** 'char' (default) or 'word'. */
  level?: 'char' | 'word';
  /** Word level: keep the most frequent words, map the rest to <unk>. */
  maxVocab?: number;
  /** Fraction held out for validation (default 0.1). */
  validationFraction?: number;
  /** Cap on validation tokens (default 50,000), to keep evaluation quick. */
  maxValidationTokens?: number;
  seed?: number;
  /** The text itself (already decoded, see decodeText); `path` then only names it. The lab page has no files. */
  content?: string;
}

export class TextCorpus implements Corpus {
  readonly name: string;
  readonly vocabSize: number;
  readonly vocab: string[];
  private readonly train: Int32Array;
  private readonly valid: Int32Array;
  private readonly level: 'char' | 'word';
  private readonly seed: number;

  constructor(readonly path: string, options: TextOptions = {}) {
    this.level = options.level ?? 'char';
    this.seed = options.seed ?? 0;
    const text = options.content ?? readText(path);
    const tokens = this.level === 'char' ? Array.from(text) : text.match(/[\p{L}\p{N}']+|[^\s\p{L}\p{N}]/gu) ?? [];
    const counts = new Map<string, number>();
    for (const t of tokens) counts.set(t, (counts.get(t) ?? 0) + 1);
    let vocab = [...counts.keys()].sort();
    if (this.level === 'word') {
      const max = options.maxVocab ?? 5000;
      vocab = [...counts.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, max).map(([w]) => w).sort();
      vocab.push('<unk>');
    }
    this.vocab = vocab;
    this.vocabSize = vocab.length;
    const index = new Map(vocab.map((t, i) => [t, i]));
    const unk = index.get('<unk>') ?? 0;
    const ids = Int32Array.from(tokens, (t) => index.get(t) ?? unk);
    const fraction = options.validationFraction ?? 0.1;
    const split = Math.floor(ids.length * (1 - fraction));
    this.train = ids.subarray(0, split);
    this.valid = ids.subarray(split, split + (options.maxValidationTokens ?? 50_000));
    if (this.train.length < 2 || this.valid.length < 2) {
      throw new Error(`--text ${path}: ${ids.length} ${this.level === 'char' ? 'characters' : 'words'} is too short to split into training and validation text`);
    }
    this.name = `${path} (${this.level}-level, ${this.vocabSize} tokens in the vocabulary, ${this.train.length} training tokens)`;
  }

  trainBatch(step: number, batch: number, seqLen: number): Batch {
    if (this.train.length < seqLen + 1) throw new Error(`--text ${this.path}: the training text (${this.train.length} tokens) is shorter than one sequence (${seqLen + 1})`);
    const starts = uniforms(batch, this.seed * 1_000_003 + step + 1);
    const x = new Int32Array(batch * seqLen), y = new Int32Array(batch * seqLen);
    starts.forEach((v, r) => {
      const s = Math.floor(v * (this.train.length - seqLen - 1));
      x.set(this.train.subarray(s, s + seqLen), r * seqLen);
      y.set(this.train.subarray(s + 1, s + seqLen + 1), r * seqLen);
    });
    return { x, y };
  }

  validation(batch: number, seqLen: number): Batch[] {
    const windows = Math.floor((this.valid.length - 1) / seqLen);
    if (windows < 1) throw new Error(`--text ${this.path}: the validation text (${this.valid.length} tokens) is shorter than one sequence (${seqLen + 1}); use a shorter --seq-len`);
    const out: Batch[] = [];
    for (let w = 0; w < windows; w += batch) {
      const n = Math.min(batch, windows - w);
      const x = new Int32Array(n * seqLen), y = new Int32Array(n * seqLen);
      for (let r = 0; r < n; r++) {
        const s = (w + r) * seqLen;
        x.set(this.valid.subarray(s, s + seqLen), r * seqLen);
        y.set(this.valid.subarray(s + 1, s + seqLen + 1), r * seqLen);
      }
      out.push({ x, y });
    }
    return out;
  }

  decode(ids: ArrayLike<number>): string {
    return Array.from(ids, (i) => this.vocab[i] ?? '?').join(this.level === 'word' ? ' ' : '');
  }
}

/** Reads a UTF-8 text file, refusing missing, empty, binary or non-UTF-8 files with one clear line. */
export function readText(path: string): string {
  let size: number;
  try {
    const st = statSync(path);
    if (st.isDirectory()) throw new Error(`--text ${path}: is a directory, not a text file`);
    size = st.size;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`--text ${path}: no such file`);
    if ((e as NodeJS.ErrnoException).code === 'EACCES') throw new Error(`--text ${path}: permission denied`);
    throw e;
  }
  if (size === 0) throw new Error(`--text ${path}: the file is empty`);
  return decodeText(readFileSync(path), `--text ${path}`);
}

/**
 * Bytes as UTF-8 text, refusing empty, binary (NUL bytes), non-UTF-8 or whitespace-only
 * input with one line that starts with `what` (the CLI's file, or the lab page's dropped file).
 */
export function decodeText(bytes: Uint8Array, what: string): string {
  if (bytes.length === 0) throw new Error(`${what}: the file is empty`);
  if (bytes.includes(0)) throw new Error(`${what}: looks like a binary file (it contains NUL bytes), not UTF-8 text`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new Error(`${what}: is not valid UTF-8 text`);
  }
  if (text.trim().length === 0) throw new Error(`${what}: the file holds only whitespace`);
  return text;
}
