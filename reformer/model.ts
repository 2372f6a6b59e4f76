/**
 * ReformerLM and its full-attention Transformer baseline, assembled from DSL layers only
 * (trax layout, semantics §6):
 *
 *   ShiftRight → Embedding → Dropout → AxialPositionalEmbedding → Dup
 *     → n × Reversible(LayerNorm→Attention, LayerNorm→Chunked(FeedForward))
 *     → Concatenate → LayerNorm(2d) → Dense(vocab)
 */
import * as ops from '../dsl/ops.ts';
import { OptionError } from '../compiler/ir/graph.ts';
import type { Layer } from '../dsl/layer.ts';
import { Dup, Fn, Residual, Serial } from '../dsl/combinators.ts';
import { Dense } from '../dsl/layers/dense.ts';
import { LayerNorm } from '../dsl/layers/layer-norm.ts';
import { Dropout, activation } from '../dsl/layers/activations.ts';
import { Embedding } from '../dsl/layers/embedding.ts';
import { ShiftRight } from '../dsl/layers/lm.ts';
import { Reversible, ReversibleStack } from '../dsl/reversible.ts';
import { Chunked } from '../dsl/chunked.ts';
import { FullAttention, LocalAttention, LSHSelfAttention } from './attention/index.ts';
import { AxialPositionalEmbedding } from './layers/axial-positional.ts';
import type { AttentionKind, ModelConfig } from './config.ts';

/** Overrides applied at evaluation time, e.g. a different number of hash rounds. */
export interface ModelOverrides {
  readonly nHashes?: number;
  /** Evaluate LSH layers as full shared-QK attention. */
  readonly lshAsFull?: boolean;
  /**
   * Fixed rotations for each LSH layer, in layer order (see LSHSelfAttentionOptions.rotations):
   * the same weights, inputs and rotations give the same logits as another implementation.
   */
  readonly lshRotations?: readonly Float32Array[];
}

export const PAD_ID = 0;

function attentionLayer(kind: AttentionKind, cfg: ModelConfig, overrides: ModelOverrides, lshIndex: number): Layer {
  const heads = { nHeads: cfg.nHeads, dHead: cfg.dHead };
  switch (kind) {
    case 'lsh':
      if (overrides.lshAsFull) return FullAttention({ ...heads, causal: true, sharedQK: true });
      return LSHSelfAttention({
        ...heads,
        nHashes: overrides.nHashes ?? cfg.nHashes,
        chunkLen: cfg.chunkLen,
        ...(cfg.nBuckets !== undefined ? { nBuckets: cfg.nBuckets } : {}),
        causal: true,
        dropout: cfg.attentionDropout,
        ...(overrides.lshRotations !== undefined ? { rotations: lshRotationsAt(overrides.lshRotations, lshIndex) } : {}),
      });
    case 'local':
      return LocalAttention({ ...heads, chunkLen: cfg.localChunkLen ?? cfg.chunkLen, causal: true });
    case 'full':
      return FullAttention({ ...heads, causal: true, sharedQK: cfg.sharedQK ?? false });
  }
}

function lshRotationsAt(all: readonly Float32Array[], lshIndex: number): Float32Array {
  const r = all[lshIndex];
  if (r === undefined) throw new OptionError(`model: option 'lshRotations' has ${all.length} entries, but LSH layer ${lshIndex} needs one`);
  return r;
}

/** Position-wise feed-forward, chunked along the sequence when `ffChunkLen` > 0. */
function feedForward(cfg: ModelConfig): Layer {
  const ff = Serial(Dense(cfg.dFF), activation(cfg.ffActivation, 'model.ffActivation'), Dropout(cfg.dropout), Dense(cfg.dModel));
  return cfg.ffChunkLen > 0 && cfg.ffChunkLen < cfg.seqLen ? Chunked(ff, { axis: 1, size: cfg.ffChunkLen }) : ff;
}

const Concatenate = () => Fn('Concatenate', (a, b) => ops.concat([a!, b!], -1), 2, 1);

/** A language model: i32 tokens [B, L] -> logits [B, L, vocab]. */
export function buildModel(cfg: ModelConfig, overrides: ModelOverrides = {}): Layer {
  const embed = [
    ShiftRight({ padId: PAD_ID }),
    Embedding(cfg.vocabSize, cfg.dModel),
    Dropout(cfg.dropout),
    AxialPositionalEmbedding({ shape: cfg.axialShape, dims: cfg.axialDims }),
  ];
  const kindAt = (i: number) => cfg.attention[i % cfg.attention.length]!;
  const lshIndexAt = (i: number) => Array.from({ length: i }, (_, j) => kindAt(j)).filter((k) => k === 'lsh').length;
  const layerNorm = () => LayerNorm({ epsilon: cfg.layerNormEpsilon ?? 1e-6 });
  const attentionAt = (i: number) => attentionLayer(kindAt(i), cfg, overrides, lshIndexAt(i));
  if (cfg.architecture === 'transformer') {
    const blocks = Array.from({ length: cfg.nLayers }, (_, i) =>
      Serial(
        Residual(layerNorm(), attentionAt(i), Dropout(cfg.dropout)),
        Residual(layerNorm(), feedForward(cfg), Dropout(cfg.dropout)),
      ),
    );
    return Serial(...embed, ...blocks, layerNorm(), Dense(cfg.vocabSize));
  }
  const blocks = Array.from({ length: cfg.nLayers }, (_, i) =>
    Reversible(
      Serial(layerNorm(), attentionAt(i), Dropout(cfg.dropout)),
      Serial(layerNorm(), feedForward(cfg), Dropout(cfg.dropout)),
    ),
  );
  return Serial(...embed, Dup(), ReversibleStack(blocks), Concatenate(), layerNorm(), Dense(cfg.vocabSize));
}
