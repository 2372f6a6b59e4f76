/**
 * The decode form of a language model built by `buildModel`, for runs of consecutive positions:
 * the same layer tree, with every layer that looks along the sequence replaced by its decode form.
 * Position-wise layers (embedding, LayerNorm, dense, feed-forward, dropout in eval mode, the
 * reversible and residual combinators) are the model's own layer objects, applied to the run's
 * `[1, T, d_model]`; the tree keeps its shape, so parameters keep their paths and layers their
 * scopes (and so their random salts).
 *
 * - `ShiftRight` becomes the identity: each position is fed the token before it.
 * - `AxialPositionalEmbedding` adds the embeddings of the run's positions.
 * - `Chunked(ff)` becomes `ff` (a run is one chunk).
 * - attention layers become the step layers of `step-attention.ts`, reading and extending caches.
 */
import * as ops from '../../dsl/ops.ts';
import { Residual, Serial } from '../../dsl/combinators.ts';
import { Reversible, ReversibleStack, type ReversibleBlock } from '../../dsl/reversible.ts';
import { noParams, tensorField, type Layer } from '../../dsl/layer.ts';
import type { AttentionKind, ModelConfig } from '../config.ts';
import { resolveLsh } from '../attention/options.ts';
import { FullAttentionStep, LocalAttentionStep, LSHSelfAttentionStep } from './step-attention.ts';
import type { StepCollector } from './cache-slots.ts';

const ATTENTION = new Set(['FullAttention', 'LocalAttention', 'LSHSelfAttention']);

/** The identity in place of `ShiftRight`, under its name (so sibling paths do not move). */
const shiftedByCaller: Layer = { name: 'ShiftRight', nIn: 1, nOut: 1, init: () => noParams, apply: (_p, [x]) => [x!] };

/** Adds `concat(E1[t div n2], E2[t mod n2])` for each position t of the run (the axial table's rows). */
function axialAt(collector: StepCollector): Layer {
  const name = 'AxialPositionalEmbedding';
  return {
    name,
    nIn: 1,
    nOut: 1,
    init: () => noParams,
    apply(params, [x]) {
      const e1 = tensorField(params, 'e1', name);
      const e2 = tensorField(params, 'e2', name);
      const n2 = e2.shape[0]!;
      const t = collector.positions(2, 0); // [T, 1]
      const rows = (table: typeof e1, index: typeof t) => ops.gather(table, ops.broadcastTo(index, [collector.width, table.shape[1]!]), 0);
      const embedding = ops.concat([rows(e1, ops.div(t, n2)), rows(e2, ops.mod(t, n2))], -1); // [T, d_model]
      return [ops.add(x!, ops.reshape(embedding, [1, ...embedding.shape]))];
    },
  };
}

function attentionStep(kind: AttentionKind, cfg: ModelConfig, collector: StepCollector): Layer {
  const heads = { nHeads: cfg.nHeads, dHead: cfg.dHead };
  switch (kind) {
    case 'full':
      return FullAttentionStep({ ...heads, sharedQK: cfg.sharedQK ?? false }, collector);
    case 'local':
      return LocalAttentionStep({ ...heads, chunkLen: cfg.localChunkLen ?? cfg.chunkLen, nChunksBefore: 1 }, collector);
    case 'lsh': {
      const lsh = { nHashes: cfg.nHashes, chunkLen: cfg.chunkLen, causal: true, ...(cfg.nBuckets !== undefined ? { nBuckets: cfg.nBuckets } : {}) };
      const resolved = resolveLsh('LSHSelfAttention', '', lsh, cfg.seqLen);
      return LSHSelfAttentionStep({ ...heads, nHashes: resolved.nHashes, chunkLen: resolved.chunkLen, bucketFactors: resolved.bucketFactors }, collector);
    }
  }
}

/**
 * The step model of `model` (= `buildModel(cfg)`) for runs of `collector.width` = T positions:
 * tokens `[1, T]` (i32, each the token before its position) → logits `[1, T, vocab]`. Caches and
 * the run's first position are graph inputs declared through `collector`.
 */
export function stepModel(model: Layer, cfg: ModelConfig, collector: StepCollector): Layer {
  let attention = 0;
  const kindAt = (i: number) => cfg.attention[i % cfg.attention.length]!;
  const rebuild = (layer: Layer): Layer => {
    if (ATTENTION.has(layer.name)) return attentionStep(kindAt(attention++), cfg, collector);
    switch (layer.name) {
      case 'ShiftRight':
        return shiftedByCaller;
      case 'AxialPositionalEmbedding':
        return axialAt(collector);
      case 'Chunked':
        return rebuild(layer.children![0]!);
      case 'Serial':
        return Serial(...layer.children!.map(rebuild));
      case 'Residual':
        return Residual(...layer.children![0]!.children!.map(rebuild));
      case 'Reversible':
        return Reversible(rebuild(layer.children![0]!), rebuild(layer.children![1]!));
      case 'ReversibleStack':
        return ReversibleStack(layer.children!.map((b) => rebuild(b) as ReversibleBlock));
      default:
        if (layer.children !== undefined) throw new Error(`decode: no step form for combinator ${layer.name}`);
        return layer;
    }
  };
  return rebuild(model);
}
