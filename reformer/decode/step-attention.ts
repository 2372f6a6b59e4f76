/**
 * Attention layers for a decode run of T consecutive positions (one step, or a block): the input
 * is their `[1, T, d_model]`, and the keys and values of the earlier positions come from the
 * layer's cache (`StepCollector.cached`).
 * Parameters are those of the whole-window layers (`reformer/attention/layers.ts`), so a step model
 * reads the trained weights under the same names.
 *
 * Full and local attention compute exactly what the whole-window layers compute for those rows: the
 * same logits, masked with the same constants. Keys from positions the window layer never shows a
 * query (after it; before a local window) are masked, and contribute exact zeros. LSH attention
 * computes the incremental semantics in docs/attention.md ("Incremental decoding").
 */
import type { Tensor } from '../../compiler/ir/graph.ts';
import * as ops from '../../dsl/ops.ts';
import { tensorField, type ApplyContext, type Layer, type Params, type SymbolicParams } from '../../dsl/layer.ts';
import { MASK_FORBIDDEN, MASK_SELF, normalizeKeys, penalise, softmaxWithLse } from '../attention/chunks.ts';
import { drawRotations, hashBuckets, type BucketSpec } from '../attention/hashing.ts';
import type { StepCollector } from './cache-slots.ts';

export interface StepHeads {
  readonly nHeads: number;
  readonly dHead: number;
}

/** `[1, T, d_model] · W` split into heads: `[1, h, T, d]`. */
function project(params: SymbolicParams, name: string, layer: string, x: Tensor, o: StepHeads): Tensor {
  const w = tensorField(params, name, layer);
  const [, T, dModel] = x.shape as [number, number, number];
  const y = ops.reshape(ops.matmul(ops.reshape(x, [T, dModel]), w), [1, T, o.nHeads, o.dHead]);
  return ops.transpose(y, [0, 2, 1, 3]);
}

/** Heads `[1, h, T, d]` back to `[1, T, d_model]` through `wo`. */
function merge(params: SymbolicParams, layer: string, heads: Tensor): Tensor {
  const wo = tensorField(params, 'wo', layer);
  const [, h, T, d] = heads.shape as [number, number, number, number];
  return ops.reshape(ops.matmul(ops.reshape(ops.transpose(heads, [0, 2, 1, 3]), [T, h * d]), wo), [1, T, wo.shape[1]!]);
}

/** Positions of the cached keys, `[1, 1, 1, L]`. */
const cachePositions = (c: StepCollector) => ops.iota(c.graph, [1, 1, 1, c.seqLen], 3);

/** `q [1,h,T,d]` against keys `[1,h,n,d]`: logits `[1,h,T,n]`. */
const scores = (q: Tensor, keys: Tensor) => ops.matmul(q, ops.transpose(keys, [0, 1, 3, 2]));

/**
 * Softmax attention of R query rows over the cached positions (`cacheLogits [1,h,R,L]`) and the
 * run's own positions (`runLogits [1,h,R,T]`), both already masked (cached positions from the
 * run's first on are closed). The sums run over the cached positions, then the run's, the closed
 * ones adding exact zeros: the order of the whole-window softmax, so full and local attention match
 * the window's rows bit for bit in float64. One position (T = 1) reads the cache in place; a run of
 * several joins the cache and the run's rows.
 */
function attendCacheAndRun(cacheLogits: Tensor, runLogits: Tensor, values: Tensor, runValues: Tensor): { out: Tensor; lse: Tensor } {
  if (runLogits.shape[3] !== 1) {
    const soft = softmaxWithLse(ops.concat([cacheLogits, runLogits], 3));
    return { out: ops.matmul(soft.p, ops.concat([values, runValues], 2)), lse: soft.lse };
  }
  const m = ops.stopGradient(ops.maximum(ops.max(cacheLogits, -1, true), runLogits));
  const eCache = ops.exp(ops.sub(cacheLogits, m));
  const eSelf = ops.exp(ops.sub(runLogits, m));
  const s = ops.add(ops.sum(eCache, -1, true), eSelf);
  const out = ops.add(ops.matmul(ops.div(eCache, s), values), ops.mul(ops.div(eSelf, s), runValues));
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

/** Causal `FullAttention` for a run of positions: every cached position, and the run's up to itself. */
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
    const qPos = collector.positions(4, 2);
    const runPos = collector.positions(4, 3);
    const cacheLogits = penalise(scores(q, keys), ops.ge(cachePositions(collector), collector.position), MASK_FORBIDDEN);
    let runLogits = penalise(scores(q, key), ops.gt(runPos, qPos), MASK_FORBIDDEN);
    if (shared) runLogits = penalise(runLogits, ops.eq(runPos, qPos), MASK_SELF);
    return merge(params, name, attendCacheAndRun(cacheLogits, runLogits, values, value).out);
  });
}

export interface LocalStepOptions extends StepHeads {
  readonly chunkLen: number;
  readonly nChunksBefore: number;
}

/** Causal `LocalAttention` for a run of positions: each one's chunk up to itself, and the `nChunksBefore` chunks before it. */
export function LocalAttentionStep(options: LocalStepOptions, collector: StepCollector): Layer {
  const name = 'LocalAttention';
  const index = collector.nextLayer();
  return stepLayer(name, (params, x) => {
    const q = project(params, 'wq', name, x, options);
    const key = ops.mul(project(params, 'wk', name, x, options), 1 / Math.sqrt(options.dHead));
    const value = project(params, 'wv', name, x, options);
    const keys = collector.cached(index, 'keys', key, 2);
    const values = collector.cached(index, 'values', value, 2);
    const qPos = collector.positions(4, 2);
    const runPos = collector.positions(4, 3);
    const j = cachePositions(collector);
    const first = ops.sub(ops.sub(qPos, ops.mod(qPos, options.chunkLen)), options.chunkLen * options.nChunksBefore);
    const cacheLogits = penalise(scores(q, keys), ops.maximum(ops.lt(j, first), ops.ge(j, collector.position)), MASK_FORBIDDEN);
    const runLogits = penalise(scores(q, key), ops.maximum(ops.lt(runPos, first), ops.gt(runPos, qPos)), MASK_FORBIDDEN);
    return merge(params, name, attendCacheAndRun(cacheLogits, runLogits, values, value).out);
  });
}

export interface LshStepOptions extends StepHeads {
  readonly nHashes: number;
  readonly chunkLen: number;
  /** Resolved for the window length, as the whole-window layer resolves them (same rotations). */
  readonly bucketFactors: BucketSpec;
}

/**
 * Causal `LSHSelfAttention` for a run of positions, with a bucket-indexed cache: each position is
 * hashed with the window layer's rotations (same seed and salt), and in each round attends to the
 * earlier positions of its bucket, the last `chunkLen − 1` positions, and itself (at −1e5); rounds
 * combine by their log-normalisers. Keys are cached normalised, with their buckets.
 */
export function LSHSelfAttentionStep(options: LshStepOptions, collector: StepCollector): Layer {
  const name = 'LSHSelfAttention';
  const index = collector.nextLayer();
  const H = options.nHashes;
  return stepLayer(name, (params, x, ctx) => {
    const qk = project(params, 'wqk', name, x, options);
    const [, h, T, d] = qk.shape as [number, number, number, number];
    const L = collector.seqLen;
    const rotations = drawRotations(qk, ctx.seed(), ctx.salt('rotations'), H, options.bucketFactors);
    const bucket = hashBuckets(qk, rotations, H, options.bucketFactors); // [1,h,H,T]
    const key = normalizeKeys(qk);
    const value = project(params, 'wv', name, x, options);
    const keys = collector.cached(index, 'keys', key, 2);
    const values = collector.cached(index, 'values', value, 2);
    const buckets = collector.cached(index, 'buckets', bucket, 3); // [1,h,H,L]
    // masks over [1, h, H, T (queries), n (keys)]
    const qPos = collector.positions(5, 3);
    const queryBucket = ops.reshape(bucket, [1, h, H, T, 1]);
    const closed = (keyBuckets: Tensor, keyPos: Tensor, later: Tensor) => {
      const shape = [1, h, H, T, keyPos.shape[4]!];
      const same = ops.eq(ops.broadcastTo(keyBuckets, shape), ops.broadcastTo(queryBucket, shape));
      const open = ops.maximum(same, ops.broadcastTo(ops.gt(keyPos, ops.sub(qPos, options.chunkLen)), shape));
      return ops.maximum(ops.sub(1, open), ops.broadcastTo(later, shape));
    };
    const byRound = (logits: Tensor) => ops.broadcastTo(ops.reshape(logits, [1, h, 1, T, logits.shape[3]!]), [1, h, H, T, logits.shape[3]!]);
    const rows = (t: Tensor) => ops.reshape(t, [1, h, H * T, t.shape[4]!]);
    const j = ops.iota(collector.graph, [1, 1, 1, 1, L], 4);
    const runPos = collector.positions(5, 4);
    const cacheLogits = penalise(byRound(scores(qk, keys)), closed(ops.reshape(buckets, [1, h, H, 1, L]), j, ops.ge(j, collector.position)), MASK_FORBIDDEN);
    const runClosed = closed(ops.reshape(bucket, [1, h, H, 1, T]), runPos, ops.gt(runPos, qPos));
    const runLogits = penalise(penalise(byRound(scores(qk, key)), runClosed, MASK_FORBIDDEN), ops.eq(runPos, qPos), MASK_SELF);
    const { out, lse } = attendCacheAndRun(rows(cacheLogits), rows(runLogits), values, value); // [1,h,H·T,d], [1,h,H·T,1]
    if (H === 1) return merge(params, name, out);
    const perRound = ops.reshape(out, [1, h, H, T, d]);
    return merge(params, name, ops.sum(ops.mul(ops.softmax(ops.reshape(lse, [1, h, H, T, 1]), 2), perRound), 2));
  });
}
