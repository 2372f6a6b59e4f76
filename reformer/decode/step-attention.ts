/**
 * Attention layers for one decode step: the input is the new position's `[1, 1, d_model]`, and the
 * keys and values of the earlier positions come from the layer's cache (`StepCollector.extend`).
 * Parameters are those of the whole-window layers (`reformer/attention/layers.ts`), so a step model
 * reads the trained weights under the same names.
 *
 * Full and local attention compute exactly what the whole-window layers compute for that row: the
 * same logits, masked with the same constants. Keys from positions the window layer never shows a
 * query (after it; before a local window) are masked, and contribute exact zeros. LSH attention
 * computes the incremental semantics in docs/attention.md ("Incremental decoding").
 */
import type { Tensor } from '../../compiler/ir/graph.ts';
import * as ops from '../../dsl/ops.ts';
import { tensorField, type ApplyContext, type Layer, type Params, type SymbolicParams } from '../../dsl/layer.ts';
import { MASK_FORBIDDEN, MASK_SELF, normalizeKeys, penalise } from '../attention/chunks.ts';
import { drawRotations, hashBuckets, type BucketSpec } from '../attention/hashing.ts';
import type { StepCollector } from './cache-slots.ts';

export interface StepHeads {
  readonly nHeads: number;
  readonly dHead: number;
}

/** `[1, 1, d_model] · W` split into heads: `[1, h, 1, d]`. */
function project(params: SymbolicParams, name: string, layer: string, x: Tensor, o: StepHeads): Tensor {
  const w = tensorField(params, name, layer);
  const y = ops.reshape(ops.matmul(ops.reshape(x, [1, x.shape[2]!]), w), [1, 1, o.nHeads, o.dHead]);
  return ops.transpose(y, [0, 2, 1, 3]);
}

/** Heads `[1, h, 1, d]` back to `[1, 1, d_model]` through `wo`. */
function merge(params: SymbolicParams, layer: string, heads: Tensor): Tensor {
  const wo = tensorField(params, 'wo', layer);
  const [, h, , d] = heads.shape as [number, number, number, number];
  return ops.reshape(ops.matmul(ops.reshape(ops.transpose(heads, [0, 2, 1, 3]), [1, h * d]), wo), [1, 1, wo.shape[1]!]);
}

/** Key positions `[1, 1, 1, L]` of the cache. */
const keyPositions = (c: StepCollector) => ops.iota(c.graph, [1, 1, 1, c.seqLen], 3);

/** `q [1,h,1,d]` against keys `[1,h,n,d]`: logits `[1,h,1,n]`. */
const scores = (q: Tensor, keys: Tensor) => ops.matmul(q, ops.transpose(keys, [0, 1, 3, 2]));

/**
 * Softmax attention over the cached positions (`cacheLogits [1,h,R,L]`, masked, so that only
 * positions before the step's count) and the step's own key (`selfLogit [1,h,R,1]`), for R rows
 * (LSH rounds). Summed in the order of the whole-window softmax: cached positions, then the step's
 * own, the masked rest adding exact zeros, so full and local attention match the window's row bit
 * for bit in float64. No `[L, d]` tensor is built: the cache is read in place.
 */
function attendCacheAndSelf(cacheLogits: Tensor, selfLogit: Tensor, values: Tensor, value: Tensor): { out: Tensor; lse: Tensor } {
  const m = ops.stopGradient(ops.maximum(ops.max(cacheLogits, -1, true), selfLogit));
  const eCache = ops.exp(ops.sub(cacheLogits, m));
  const eSelf = ops.exp(ops.sub(selfLogit, m));
  const s = ops.add(ops.sum(eCache, -1, true), eSelf);
  const out = ops.add(ops.matmul(ops.div(eCache, s), values), ops.mul(ops.div(eSelf, s), value));
  return { out, lse: ops.add(ops.log(s), m) };
}

/** A step layer named like the window layer it stands for, so its layer path (and salts) are the same. */
function stepLayer(name: string, apply: (params: SymbolicParams, x: Tensor, ctx: ApplyContext) => Tensor): Layer {
  return {
    name,
    nIn: 1,
    nOut: 1,
    init: (): Params => {
      throw new Error(`${name} (decode step) reads the whole-window layer's parameters and has none of its own`);
    },
    apply: (params, [x], ctx) => [apply(params, x!, ctx)],
  };
}

export interface FullStepOptions extends StepHeads {
  readonly sharedQK: boolean;
}

/** One causal step of `FullAttention`: attends to every cached position and to itself. */
export function FullAttentionStep(options: FullStepOptions, collector: StepCollector): Layer {
  const name = 'FullAttention';
  const index = collector.nextLayer();
  const shared = options.sharedQK;
  return stepLayer(name, (params, x) => {
    const q = project(params, shared ? 'wqk' : 'wq', name, x, options);
    const key = shared ? normalizeKeys(q) : ops.mul(project(params, 'wk', name, x, options), 1 / Math.sqrt(options.dHead));
    const value = project(params, 'wv', name, x, options);
    const keys = collector.cached(index, 'keys', key, 2);
    const values = collector.cached(index, 'values', value, 2);
    const cacheLogits = penalise(scores(q, keys), ops.ge(keyPositions(collector), collector.position), MASK_FORBIDDEN);
    const selfLogit = shared ? ops.sub(scores(q, key), MASK_SELF) : scores(q, key);
    return merge(params, name, attendCacheAndSelf(cacheLogits, selfLogit, values, value).out);
  });
}

export interface LocalStepOptions extends StepHeads {
  readonly chunkLen: number;
  readonly nChunksBefore: number;
}

/** One causal step of `LocalAttention`: its chunk up to itself, and the `nChunksBefore` chunks before it. */
export function LocalAttentionStep(options: LocalStepOptions, collector: StepCollector): Layer {
  const name = 'LocalAttention';
  const index = collector.nextLayer();
  return stepLayer(name, (params, x) => {
    const q = project(params, 'wq', name, x, options);
    const key = ops.mul(project(params, 'wk', name, x, options), 1 / Math.sqrt(options.dHead));
    const value = project(params, 'wv', name, x, options);
    const keys = collector.cached(index, 'keys', key, 2);
    const values = collector.cached(index, 'values', value, 2);
    const j = keyPositions(collector);
    const t = collector.position;
    const first = ops.sub(ops.sub(t, ops.mod(t, options.chunkLen)), options.chunkLen * options.nChunksBefore);
    const blocked = ops.maximum(ops.lt(j, first), ops.ge(j, t));
    const cacheLogits = penalise(scores(q, keys), blocked, MASK_FORBIDDEN);
    return merge(params, name, attendCacheAndSelf(cacheLogits, scores(q, key), values, value).out);
  });
}

export interface LshStepOptions extends StepHeads {
  readonly nHashes: number;
  readonly chunkLen: number;
  /** Resolved for the window length, as the whole-window layer resolves them (same rotations). */
  readonly bucketFactors: BucketSpec;
}

/**
 * One causal step of `LSHSelfAttention` with a bucket-indexed cache: the new position is hashed
 * with the window layer's rotations (same seed and salt), and in each round attends to the cached
 * positions of its bucket, the last `chunkLen − 1` positions, and itself (at −1e5); rounds combine
 * by their log-normalisers. Keys are cached normalised, with their buckets.
 */
export function LSHSelfAttentionStep(options: LshStepOptions, collector: StepCollector): Layer {
  const name = 'LSHSelfAttention';
  const index = collector.nextLayer();
  const H = options.nHashes;
  return stepLayer(name, (params, x, ctx) => {
    const qk = project(params, 'wqk', name, x, options);
    const rotations = drawRotations(qk, ctx.seed(), ctx.salt('rotations'), H, options.bucketFactors);
    const bucket = hashBuckets(qk, rotations, H, options.bucketFactors); // [1,h,H,1]
    const key = normalizeKeys(qk);
    const value = project(params, 'wv', name, x, options);
    const keys = collector.cached(index, 'keys', key, 2);
    const values = collector.cached(index, 'values', value, 2);
    const buckets = collector.cached(index, 'buckets', bucket, 3); // [1,h,H,L]
    const j = keyPositions(collector);
    const t = collector.position;
    const rows = buckets.shape as [number, number, number, number];
    const recent = ops.broadcastTo(ops.gt(j, ops.sub(t, options.chunkLen)), rows);
    const seen = ops.maximum(ops.eq(buckets, ops.broadcastTo(bucket, rows)), recent);
    const blocked = ops.maximum(ops.sub(1, seen), ops.broadcastTo(ops.ge(j, t), rows));
    const cacheLogits = penalise(ops.broadcastTo(scores(qk, keys), rows), blocked, MASK_FORBIDDEN);
    const selfLogit = ops.broadcastTo(ops.sub(scores(qk, key), MASK_SELF), [1, rows[1], H, 1]);
    const { out, lse } = attendCacheAndSelf(cacheLogits, selfLogit, values, value); // [1,h,H,dV], [1,h,H,1]
    return merge(params, name, H === 1 ? out : ops.sum(ops.mul(ops.softmax(lse, 2), out), 2, true));
  });
}
