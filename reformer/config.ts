/**
 * Model and training configuration: plain JSON, validated with messages that name the option,
 * the value and what would fit.
 */
import { OptionError } from '../compiler/ir/graph.ts';

export type AttentionKind = 'lsh' | 'local' | 'full';

export interface ModelConfig {
  /** 'reformer' (reversible, LSH/local cycle) or 'transformer' (residual, full attention baseline). */
  readonly architecture: 'reformer' | 'transformer';
  readonly vocabSize: number;
  /** Sequence length L. */
  readonly seqLen: number;
  readonly dModel: number;
  readonly dFF: number;
  readonly nHeads: number;
  readonly dHead: number;
  readonly nLayers: number;
  /** Attention types, cycled over the layers, e.g. ['local', 'lsh']. */
  readonly attention: readonly AttentionKind[];
  readonly nHashes: number;
  readonly chunkLen: number;
  /** LSH buckets; default 2·L/chunkLen. */
  readonly nBuckets?: number;
  /**
   * Full-attention layers share one query/key projection, with LSH attention's key normalisation
   * and self mask (the paper's shared-QK Transformer); their parameters then match an LSH layer's.
   * Default false.
   */
  readonly sharedQK?: boolean;
  /** Chunk length of local attention layers when it differs from chunkLen (HF's local_attn_chunk_length). */
  readonly localChunkLen?: number;
  /** Feed-forward chunk length along the sequence (0 = unchunked). */
  readonly ffChunkLen: number;
  readonly ffActivation: 'relu' | 'gelu';
  /** Epsilon of every LayerNorm (HF's layer_norm_eps); default 1e-6. */
  readonly layerNormEpsilon?: number;
  /** Axial positional embedding factorisation; n1·n2 = seqLen and e1+e2 = dModel. */
  readonly axialShape: readonly [number, number];
  readonly axialDims: readonly [number, number];
  readonly dropout: number;
  readonly attentionDropout: number;
}

export interface TrainConfig {
  readonly batchSize: number;
  readonly optimizer: 'adafactor' | 'adam';
  /**
   * The constant of the warm-up + rsqrt-decay schedule, lr(t) = learningRate · min(1, t/warmup) /
   * √max(t, warmup); it is not the peak: the peak, at step warmupSteps, is learningRate/√warmupSteps.
   */
  readonly learningRate: number;
  readonly warmupSteps: number;
  readonly steps: number;
  readonly gradClip: number;
  readonly evalEvery: number;
  readonly evalBatches: number;
  readonly checkpointEvery: number;
  readonly keepCheckpoints: number;
  /**
   * Train with the memory schedules (reversible backward, chunked layers); false = plain backprop
   * of the same graph, for comparison.
   */
  readonly reversible: boolean;
}

export interface RunConfig {
  readonly model: ModelConfig;
  readonly train: TrainConfig;
}

/** A small default that trains visibly on 2 CPU cores in minutes. */
export const defaultRunConfig: RunConfig = {
  model: {
    architecture: 'reformer',
    vocabSize: 258,
    seqLen: 128,
    dModel: 64,
    dFF: 128,
    nHeads: 2,
    dHead: 32,
    nLayers: 2,
    attention: ['local', 'lsh'],
    nHashes: 2,
    chunkLen: 32,
    ffChunkLen: 64,
    ffActivation: 'relu',
    layerNormEpsilon: 1e-6,
    axialShape: [8, 16],
    axialDims: [32, 32],
    dropout: 0.05,
    attentionDropout: 0,
  },
  train: {
    batchSize: 8,
    optimizer: 'adam',
    learningRate: 3e-3,
    warmupSteps: 50,
    steps: 300,
    gradClip: 1,
    evalEvery: 100,
    evalBatches: 4,
    checkpointEvery: 100,
    keepCheckpoints: 2,
    reversible: true,
  },
};

/** Every key a config may name (optional ones included, which the defaults leave out). */
const modelKeys: readonly (keyof ModelConfig)[] = [...(Object.keys(defaultRunConfig.model) as (keyof ModelConfig)[]), 'nBuckets', 'localChunkLen', 'sharedQK'];
const trainKeys: readonly (keyof TrainConfig)[] = Object.keys(defaultRunConfig.train) as (keyof TrainConfig)[];

function fail(option: string, message: string): never {
  throw new OptionError(`config option '${option}' ${message}`);
}

function checkKeys(section: string, given: object, allowed: readonly string[]): void {
  for (const key of Object.keys(given)) {
    if (!allowed.includes(key)) fail(section ? `${section}.${key}` : key, `is unknown; allowed: ${allowed.join(', ')}`);
  }
}

function posInt(option: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) fail(option, `must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}
function nonNegInt(option: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) fail(option, `must be a non-negative integer, got ${JSON.stringify(v)}`);
  return v;
}
function positiveNumber(option: string, v: unknown): number {
  if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) fail(option, `must be a positive number, got ${JSON.stringify(v)}`);
  return v;
}
function rate(option: string, v: unknown): number {
  if (typeof v !== 'number' || !(v >= 0 && v < 1)) fail(option, `must be a number in [0, 1), got ${JSON.stringify(v)}`);
  return v;
}
function oneOf<T extends string>(option: string, v: unknown, allowed: readonly T[]): T {
  if (typeof v !== 'string' || !allowed.includes(v as T)) fail(option, `must be one of ${allowed.join(', ')}; got ${JSON.stringify(v)}`);
  return v as T;
}
function bool(option: string, v: unknown): boolean {
  if (typeof v !== 'boolean') fail(option, `must be true or false, got ${JSON.stringify(v)}`);
  return v;
}
function pairOf(option: string, v: unknown): [number, number] {
  if (!Array.isArray(v) || v.length !== 2) fail(option, `must be a pair [a, b], got ${JSON.stringify(v)}`);
  return [posInt(`${option}[0]`, v[0]), posInt(`${option}[1]`, v[1])];
}

export function validateModelConfig(raw: unknown): ModelConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail('model', 'must be an object');
  checkKeys('model', raw, modelKeys);
  const m = { ...defaultRunConfig.model, ...(raw as Partial<ModelConfig>) } as Record<string, unknown>;
  const attention = m.attention;
  if (!Array.isArray(attention) || attention.length === 0) fail('model.attention', `must be a non-empty list of lsh, local, full`);
  const cfg: ModelConfig = {
    architecture: oneOf('model.architecture', m.architecture, ['reformer', 'transformer'] as const),
    vocabSize: posInt('model.vocabSize', m.vocabSize),
    seqLen: posInt('model.seqLen', m.seqLen),
    dModel: posInt('model.dModel', m.dModel),
    dFF: posInt('model.dFF', m.dFF),
    nHeads: posInt('model.nHeads', m.nHeads),
    dHead: posInt('model.dHead', m.dHead),
    nLayers: posInt('model.nLayers', m.nLayers),
    attention: attention.map((a, i) => oneOf(`model.attention[${i}]`, a, ['lsh', 'local', 'full'] as const)),
    nHashes: posInt('model.nHashes', m.nHashes),
    chunkLen: posInt('model.chunkLen', m.chunkLen),
    ...(m.nBuckets !== undefined ? { nBuckets: posInt('model.nBuckets', m.nBuckets) } : {}),
    ...(m.sharedQK !== undefined ? { sharedQK: bool('model.sharedQK', m.sharedQK) } : {}),
    ...(m.localChunkLen !== undefined ? { localChunkLen: posInt('model.localChunkLen', m.localChunkLen) } : {}),
    ffChunkLen: nonNegInt('model.ffChunkLen', m.ffChunkLen),
    ffActivation: oneOf('model.ffActivation', m.ffActivation, ['relu', 'gelu'] as const),
    layerNormEpsilon: positiveNumber('model.layerNormEpsilon', m.layerNormEpsilon),
    axialShape: pairOf('model.axialShape', m.axialShape),
    axialDims: pairOf('model.axialDims', m.axialDims),
    dropout: rate('model.dropout', m.dropout),
    attentionDropout: rate('model.attentionDropout', m.attentionDropout),
  };
  const L = cfg.seqLen;
  if (cfg.axialShape[0] * cfg.axialShape[1] !== L) {
    fail('model.axialShape', `[${cfg.axialShape.join(', ')}] has product ${cfg.axialShape[0] * cfg.axialShape[1]} but seqLen is ${L}; choose factors of ${L}`);
  }
  if (cfg.axialDims[0] + cfg.axialDims[1] !== cfg.dModel) {
    fail('model.axialDims', `[${cfg.axialDims.join(', ')}] sums to ${cfg.axialDims[0] + cfg.axialDims[1]} but dModel is ${cfg.dModel}`);
  }
  const usesChunks = cfg.attention.some((a) => a !== 'full');
  if (usesChunks && L % cfg.chunkLen !== 0) {
    fail('model.chunkLen', `${cfg.chunkLen} does not divide seqLen ${L}`);
  }
  if (cfg.localChunkLen !== undefined && L % cfg.localChunkLen !== 0) fail('model.localChunkLen', `${cfg.localChunkLen} does not divide seqLen ${L}`);
  if (cfg.nBuckets !== undefined && cfg.nBuckets % 2 !== 0) fail('model.nBuckets', `must be even, got ${cfg.nBuckets}`);
  if (cfg.ffChunkLen > 0 && L % cfg.ffChunkLen !== 0) fail('model.ffChunkLen', `${cfg.ffChunkLen} does not divide seqLen ${L}`);
  return cfg;
}

export function validateTrainConfig(raw: unknown): TrainConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail('train', 'must be an object');
  checkKeys('train', raw, trainKeys);
  const t = { ...defaultRunConfig.train, ...(raw as Partial<TrainConfig>) } as Record<string, unknown>;
  const positive = (option: string, v: unknown) => {
    if (typeof v !== 'number' || !(v > 0)) fail(option, `must be a positive number, got ${JSON.stringify(v)}`);
    return v;
  };
  return {
    batchSize: posInt('train.batchSize', t.batchSize),
    optimizer: oneOf('train.optimizer', t.optimizer, ['adafactor', 'adam'] as const),
    learningRate: positive('train.learningRate', t.learningRate),
    warmupSteps: nonNegInt('train.warmupSteps', t.warmupSteps),
    steps: posInt('train.steps', t.steps),
    gradClip: positive('train.gradClip', t.gradClip),
    evalEvery: posInt('train.evalEvery', t.evalEvery),
    evalBatches: posInt('train.evalBatches', t.evalBatches),
    checkpointEvery: posInt('train.checkpointEvery', t.checkpointEvery),
    keepCheckpoints: posInt('train.keepCheckpoints', t.keepCheckpoints),
    reversible: bool('train.reversible', t.reversible),
  };
}

/** Validates a whole run config; missing entries take the defaults. */
export function validateRunConfig(raw: unknown): RunConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new OptionError('config must be a JSON object with "model" and/or "train"');
  checkKeys('', raw, ['model', 'train']);
  const r = raw as { model?: unknown; train?: unknown };
  return { model: validateModelConfig(r.model ?? {}), train: validateTrainConfig(r.train ?? {}) };
}

/** Seeds are unsigned 32-bit integers (every random stream hashes them as such). */
export const MAX_SEED = 2 ** 32 - 1;

/** Checks a seed; a larger value would silently alias a smaller one, so it is refused. */
export function checkSeed(option: string, seed: number): number {
  if (!Number.isInteger(seed) || seed < 0 || seed > MAX_SEED) throw new OptionError(`${option} must be an integer from 0 to ${MAX_SEED}, got ${seed}`);
  return seed;
}
