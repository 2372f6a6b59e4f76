/** Small random language models for the decoding tests: configurations, parameters, whole-window logits. */
import fc from 'fast-check';
import { InitKey, flattenParams, type Params } from '../../dsl/layer.ts';
import type { HostTensor } from '../../compiler/ir/host-tensor.ts';
import type { GraphRunner } from '../../runtime/runner.ts';
import { defaultRunConfig, type AttentionKind, type ModelConfig } from '../../reformer/config.ts';
import { buildModel, PAD_ID } from '../../reformer/model.ts';
import { logitsGraph, objectiveFeeds } from '../../reformer/train/objective.ts';

export interface TinyModel {
  readonly config: ModelConfig;
  readonly paramTree: Params;
  readonly params: ReadonlyMap<string, HostTensor>;
}

export interface TinyOptions {
  readonly architecture: 'reformer' | 'transformer';
  readonly attention: readonly AttentionKind[];
  readonly seqLen: 8 | 16;
  readonly chunkLen: number;
  readonly nLayers: number;
  readonly nHeads: number;
  readonly nHashes?: number;
  readonly sharedQK?: boolean;
  readonly vocabSize?: number;
  readonly seed: number;
}

/** A ReformerLM (or Transformer) of width 8 with random parameters. */
export function tinyModel(o: TinyOptions): TinyModel {
  const L = o.seqLen;
  const config: ModelConfig = {
    ...defaultRunConfig.model,
    architecture: o.architecture,
    vocabSize: o.vocabSize ?? 12,
    seqLen: L,
    dModel: 8,
    dFF: 12,
    nHeads: o.nHeads,
    dHead: 4,
    nLayers: o.nLayers,
    attention: o.attention,
    nHashes: o.nHashes ?? 2,
    chunkLen: o.chunkLen,
    sharedQK: o.sharedQK ?? false,
    ffChunkLen: L / 2,
    axialShape: [2, L / 2],
    axialDims: [3, 5],
    dropout: 0.1,
    attentionDropout: 0.1,
  };
  const paramTree = buildModel(config).init(new InitKey(o.seed), [{ shape: [1, L], dtype: 'i32' }]);
  return { config, paramTree, params: new Map(flattenParams(paramTree)) };
}

const kind = fc.constantFrom<AttentionKind>('full', 'local');

/** Models whose layers are full and local attention only (the exact cases), both architectures. */
export const exactModels = fc
  .record({
    architecture: fc.constantFrom<'reformer' | 'transformer'>('reformer', 'transformer'),
    attention: fc.array(kind, { minLength: 1, maxLength: 2 }),
    seqLen: fc.constantFrom<8 | 16>(8, 16),
    chunkLen: fc.constantFrom(2, 4),
    nLayers: fc.integer({ min: 1, max: 2 }),
    nHeads: fc.integer({ min: 1, max: 2 }),
    sharedQK: fc.boolean(),
    seed: fc.integer({ min: 0, max: 1 << 20 }),
  })
  .map(tinyModel);

/** Logits `[L, V]` of the whole-window model on one window of tokens (padded to L). */
export async function windowLogits(runner: GraphRunner, m: TinyModel, window: readonly number[]): Promise<HostTensor> {
  const L = m.config.seqLen;
  const { graph } = logitsGraph(buildModel(m.config), m.paramTree, 1, L);
  const tokens = new Int32Array(L).fill(PAD_ID);
  tokens.set(window);
  const [logits] = await runner.run(graph, objectiveFeeds(graph, m.params, { tokens: { shape: [1, L], dtype: 'i32', data: tokens } }, 0));
  return logits!;
}

/** Token ids in [1, V): never the padding id. */
export const tokensOf = (V: number, min: number, max: number) => fc.array(fc.integer({ min: 1, max: V - 1 }), { minLength: min, maxLength: max });
