// `mixtape inspect CHECKPOINT`: the stored configuration and the routing statistics on one
// validation batch.

import * as mt from '../index.js';
import { formatContext } from '../report/expert-contexts.js';
import type { Corpus } from '../data/corpus.js';
import type { RunConfig } from '../report/schema.js';
import { checkMemory } from './memory-estimate.js';
import { evaluate, loadWeights, makeCorpus, makeModel, readCheckpoint, dataOf, UsageError, type AnyLM } from './run.js';

/**
 * `text`: the text file to take the validation batch from, for a checkpoint trained on one.
 * The path stored in the checkpoint is never opened: a checkpoint is someone else's file,
 * and inspecting it must not read whatever path it names.
 */
export async function inspect(path: string, batch: number, text?: string): Promise<void> {
  if (!(batch >= 1)) throw new UsageError(`--batch must be a positive integer, got ${batch}`);
  const ckpt = readCheckpoint(path);
  const c = ckpt.config;
  checkMemory(c, "the checkpoint's ");
  const model = makeModel(c);
  loadWeights(model, ckpt, path);
  model.eval();
  console.log(`checkpoint ${path} (step ${ckpt.step} of ${c.steps})`);
  console.log(`  model ${c.model}${c.model === 'dense' ? '' : `, ${c.experts} experts, k = ${c.k}${c.groups ? `, ${c.groups} groups` : ''}, gating ${c.gating}`}`);
  console.log(`  d = ${c.modelSize}, expert hidden ${c.expertHidden}, vocabulary ${c.vocabSize}, ${c.parameters} parameters, ${c.opsPerToken.excludingSoftmax} multiply-adds per token (excluding the softmax)${c.opsPerToken.trainingFlops ? `, ${c.opsPerToken.trainingFlops} FLOPs per token per training step` : ''}`);
  console.log(`  trained with batch ${c.batch}, sequence length ${c.seqLen}, lr ${c.lr}, seed ${c.seed}, balancing weights ${c.wImportance} / ${c.wLoad}, data ${c.data}`);
  if (c.floors) console.log(`  corpus floors (nats/token): known domain ${c.floors.knownDomain.toFixed(4)}, Bayes ${c.floors.bayes.toFixed(4)}, pooled bigram ${c.floors.pooledBigram.toFixed(4)}`);
  if (c.data !== 'synthetic' && text === undefined) {
    console.log(`routing: not shown; the model was trained on the text file ${c.data.replace(/^word:/, '')}: pass --text FILE to route one of its validation batches`);
    return;
  }
  const data = c.data === 'synthetic' ? dataOf(c) : { text: text!, wordLevel: c.data.startsWith('word:') };
  let corpus;
  try {
    corpus = makeCorpus(data, c.seed, c.seqLen);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (corpus.vocabSize !== c.vocabSize) throw new UsageError(`--text ${text}: its vocabulary has ${corpus.vocabSize} tokens but the model was trained on ${c.vocabSize}: not the text it was trained on`);
  const b = corpus.validation(batch, c.seqLen)[0]!;
  const rows = b.x.length / c.seqLen;
  mt.noGrad(() => mt.tidy(() => {
    const x = mt.tensor(b.x, [rows, c.seqLen], { dtype: 'int32' }), y = mt.tensor(b.y, [rows, c.seqLen], { dtype: 'int32' });
    const out = model.forward(x);
    const loss = mt.crossEntropy(out.logits, y).item();
    console.log(`validation batch: ${rows} sequences × ${c.seqLen} tokens, loss ${loss.toFixed(4)} nats/token`);
    const s = out.stats;
    if (!s) { console.log('  (dense model: no routing)'); return; }
    const imp = Array.from(s.importance.dataSync()), load = Array.from(s.load.dataSync());
    const total = rows * c.seqLen;
    console.log(`  CV(importance) ${s.cvImportance.item().toFixed(4)}  CV(load) ${s.cvLoad.item().toFixed(4)}  gate entropy ${s.gateEntropy.item().toFixed(4)} nats`);
    console.log('  expert  tokens  share   importance  load');
    s.expertCounts.forEach((count, e) => {
      console.log(`  ${String(e).padStart(6)}  ${String(count).padStart(6)}  ${((count / (total * (c.model === 'dense' ? 1 : c.k))) * 100).toFixed(1).padStart(5)}%  ${imp[e]!.toFixed(3).padStart(10)}  ${load[e]!.toFixed(3).padStart(6)}`);
    });
    if (b.domains && corpus.domains) {
      const idx = s.indices.dataSync(), k = s.indices.shape[1]!;
      const table = Array.from({ length: corpus.domains }, () => new Array<number>(s.expertCounts.length).fill(0));
      for (let n = 0; n < idx.length / k; n++) for (let j = 0; j < k; j++) table[b.domains[Math.floor(n / c.seqLen)]!]![idx[n * k + j]!]!++;
      console.log('  domain × expert routing (tokens; each row is one domain of the synthetic corpus):');
      table.forEach((row, d) => { if (row.some((v) => v > 0)) console.log(`    domain ${String(d).padStart(2)}: ${row.map((v) => String(v).padStart(4)).join('')}`); });
    }
  }));
  if (c.model !== 'dense' && !corpus.domains) await printContexts(model, corpus, c);
}

/**
 * Text corpora (Appendix E, Table 9): per expert, the validation contexts with the highest
 * gate values for it, from one pass over the validation set.
 */
async function printContexts(model: AnyLM, corpus: Corpus, c: RunConfig): Promise<void> {
  const val = await evaluate(model, corpus, c);
  if (!val.expertContexts) return;
  console.log(`  contexts each expert is most strongly gated on (validation set, ${c.data.startsWith('word:') ? 'words' : 'characters'} around the [token], best first):`);
  val.expertContexts.forEach((contexts, e) => {
    const shown = contexts.map((x) => `«${formatContext(x)}» ${x.gate.toFixed(2)}`);
    console.log(`    expert ${String(e).padStart(2)}: ${shown.length ? shown.join('  ') : '(never chosen)'}`);
  });
}
