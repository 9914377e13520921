// Expert specialisation as the paper shows it (Appendix E, Table 9): for each expert, the
// contexts it is most strongly gated on — the input tokens with the highest gate values
// for that expert over the validation set, each with a few tokens around it. A reader sees
// whether experts specialise by syntax (one per punctuation mark, one per capital letter)
// or by meaning (one per topic).

/** One context: the text before the token, the token, the text after, and the gate value. */
export interface GatedContext {
  gate: number;
  before: string;
  token: string;
  after: string;
}

/** The routing of N positions: the k chosen experts of each and their gate values, row-major [N, k]. */
export interface PositionRouting {
  indices: ArrayLike<number>;
  gates: ArrayLike<number>;
  k: number;
}

export interface ContextOptions {
  /** Contexts per expert (default 5). */
  top?: number;
  /** Tokens shown before and after the gated one (defaults 8 and 3: characters; use about 3 and 1 for words). */
  before?: number;
  after?: number;
}

/**
 * Per expert, its `top` distinct contexts with the highest gate values, best first (ties:
 * the earlier position). `tokens` [N] are the input ids of the routed positions, cut into
 * sequences of `seqLen` (a context never crosses a sequence); `decode` turns ids into text
 * as the corpus does (so that word-level contexts keep their spaces).
 */
export function topGatedContexts(
  routing: PositionRouting, tokens: ArrayLike<number>, seqLen: number, numExperts: number,
  decode: (ids: number[]) => string, options: ContextOptions = {},
): GatedContext[][] {
  const { indices, gates, k } = routing;
  const N = tokens.length;
  if (indices.length !== N * k || gates.length !== N * k) {
    throw new Error(`topGatedContexts: routing has ${indices.length} indices and ${gates.length} gates, expected ${N} positions × k ${k} = ${N * k}`);
  }
  if (!(Number.isInteger(seqLen) && seqLen >= 1)) throw new Error(`topGatedContexts: seqLen must be a positive integer, got ${seqLen}`);
  const top = options.top ?? 5, before = options.before ?? 8, after = options.after ?? 3;
  const perExpert: number[][] = Array.from({ length: numExperts }, () => []);
  for (let i = 0; i < N * k; i++) {
    const e = indices[i]!;
    if (!(e >= 0 && e < numExperts)) throw new Error(`topGatedContexts: expert index ${e} at position ${Math.floor(i / k)} is out of range for ${numExperts} experts`);
    if (gates[i]! > 0) perExpert[e]!.push(i);
  }
  // decode(prefix + token) minus decode(token) keeps the corpus's separator on the right side.
  const strip = (text: string, part: string, fromEnd: boolean) =>
    fromEnd ? text.slice(0, text.length - part.length) : text.slice(part.length);
  return perExpert.map((slots) => {
    slots.sort((a, b) => gates[b]! - gates[a]! || a - b);
    const out: GatedContext[] = [];
    const seen = new Set<string>();
    for (const slot of slots) {
      if (out.length >= top) break;
      const n = Math.floor(slot / k), rowStart = n - (n % seqLen), rowEnd = rowStart + seqLen;
      const id = tokens[n]!;
      const token = decode([id]);
      const prev = Array.from({ length: n - Math.max(rowStart, n - before) }, (_, j) => tokens[Math.max(rowStart, n - before) + j]!);
      const next = Array.from({ length: Math.min(rowEnd, N, n + 1 + after) - (n + 1) }, (_, j) => tokens[n + 1 + j]!);
      const context: GatedContext = {
        gate: gates[slot]!,
        before: prev.length ? strip(decode([...prev, id]), token, true) : '',
        token,
        after: next.length ? strip(decode([id, ...next]), token, false) : '',
      };
      const key = `${context.before}\u0000${context.token}\u0000${context.after}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push(context);
    }
    return out;
  });
}

/** Line breaks and tabs as visible marks, so that a context stays on one line. */
export function visibleText(s: string): string {
  return s.replace(/\r?\n/g, '⏎').replace(/\t/g, '⇥');
}

/** One line of text for a context, the token in brackets: "he sa[t] on". */
export function formatContext(c: GatedContext): string {
  return `${visibleText(c.before)}[${visibleText(c.token)}]${visibleText(c.after)}`;
}
